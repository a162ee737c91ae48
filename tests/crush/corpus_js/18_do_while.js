let i = 0;
do { i++; if (i === 2) continue; console.log("i", i); } while (i < 4);
let k = 10;
do { console.log("once", k); } while (k < 5);
let n = 27, steps = 0;
while (n !== 1) { n = n % 2 === 0 ? n / 2 : 3 * n + 1; steps++; }
console.log("collatz", steps);
