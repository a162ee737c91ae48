const p = { name: "Ada", born: 1815, langs: ["en", "fr"] };
p.died = 1852;
p["age"] = p.died - p.born;
console.log(p.name, p.age, p.missing, Object.keys(p));
console.log(p);
const counts = {};
for (const w of "the cat and the hat and the bat".split(" ")) {
  counts[w] = (counts[w] || 0) + 1;
}
console.log(counts);
for (const k of Object.keys(counts)) console.log(k, counts[k]);
console.log({}, [], { a: { b: { c: { d: 1 } } } }, [[1, [2, [3, [4]]]]]);
