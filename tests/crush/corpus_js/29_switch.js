function kind(x) {
  switch (typeof x) {
    case "number":
      if (x === 0) return "zero";
      return x > 0 ? "positive" : "negative";
    case "string":
      return "text";
    default:
      return "other";
  }
}
console.log([0, 5, -2, "s", null, undefined].map(kind).join(" "));
function fall(n) {
  const out = [];
  switch (n) {
    case 1:
      out.push("one");
    case 2:
      out.push("two");
      break;
    default:
      out.push("default");
    case 3:
      out.push("three");
  }
  return out.join("+");
}
for (let i = 0; i <= 4; i++) console.log(i, fall(i));
let log = [];
function probe(v) { log.push(v); return v; }
switch (probe(2)) { case probe(1): log.push("a"); break; case probe(2): log.push("b"); break; case probe(3): log.push("c"); }
console.log(log.join(","));
for (let i = 0; i < 3; i++) {
  switch (i) { case 1: console.log("one in loop"); break; default: console.log("loop", i); }
}
switch (9) { case 1: console.log("never"); }
console.log("end");
