function risky(n) {
  if (n < 0) throw new RangeError("negative: " + n);
  if (n === 0) throw "zero";
  if (n > 100) throw { code: n };
  return Math.sqrt(n);
}
for (const n of [4, -1, 0, 101]) {
  try {
    console.log("ok", risky(n));
  } catch (e) {
    if (typeof e === "string") console.log("string", e);
    else if (e.code !== undefined) console.log("object", e.code);
    else console.log(e.name, e.message);
  } finally {
    console.log("done", n);
  }
}
try { const u = undefined; u.x; } catch (e) { console.log("TypeError?", e.name); }
