const s = "abcabc";
console.log(s.indexOf("a", -2), s.indexOf("", 10), s.lastIndexOf("a", 2), s.lastIndexOf("c", -5), s.lastIndexOf("b", NaN));
console.log(s.includes("a", 4), s.startsWith("c", 2), s.endsWith("b", 2), s.endsWith("c", 99), s.startsWith("a", -3));
console.log("a,b,c".split(",", 2), "a,b".split(",", 0), "x y".split(" ", -1), "abc".split("", 2));
console.log(JSON.stringify(" \u00a0x\ufeff\u2028".trim()), JSON.stringify("\x1cx\x85".trim()), JSON.stringify("  y ".trimStart()));
const a = [1, 2, 3, 1, NaN];
console.log(a.indexOf(1, 1), a.includes(2, 2), a.indexOf(1, -2), a.includes(NaN, -1), a.indexOf(3, Infinity));
console.log(a.lastIndexOf(1), a.lastIndexOf(1, 2), a.lastIndexOf(1, -3), a.lastIndexOf(1, NaN), a.lastIndexOf(1, -99));
console.log(a.at(-1), a.at(0), a.at(9), a.at(-Infinity), "abc".at(Infinity), "abc".charAt(-Infinity), "abc".charCodeAt(Infinity));
console.log(true.toString(), false.toString(), ({a: 1}).toString(), [1, 2].splice(0, Infinity), (1.5).toFixed(NaN));
let x = NaN;
const y = Infinity;
console.log(x, y, [x, y].indexOf(y));
console.log(Math.min(0, -0), Math.max(-0, 0), Math.min(-0, 0), Math.max(0, -0), Math.min(-0), Math.max(), Math.min(1, NaN, 0));
console.log((-0) ** -1, (-0) ** -2, (-2) ** 1025, (-2) ** 1024, Math.pow(-0, -3), (-2) ** 0.5, 0 ** -1, (-1e300) ** 3);
console.log(JSON.stringify(["ab".repeat(2.7), "ab".repeat(-0.5), "ab".repeat(NaN), "ab".padStart(5.9, "xy"), "ab".padEnd(NaN), "abc".slice(NaN, 2.5), "abc".substring(-Infinity, 1.9)]));
try { "a".repeat(-1); } catch (e) { console.log(e.name); }
try { "a".repeat(Infinity); } catch (e) { console.log(e.name); }
