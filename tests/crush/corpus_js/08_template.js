const name = "crush";
const n = 3;
console.log(`hello ${name}, ${n} + ${n} = ${n + n}`);
console.log(`nested ${`inner ${n * 2}`} and ${[1, 2, 3]} and ${null} ${undefined} ${true}`);
const rows = [["a", 1], ["bb", 22], ["ccc", 333]];

for (const r of rows) console.log(`${r[0].padEnd(4, ".")}${String(r[1]).padStart(5)}`);
console.log(`multi
line ${0.5}`);
