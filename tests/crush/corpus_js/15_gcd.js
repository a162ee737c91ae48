function gcd(a, b) { while (b !== 0) { const t = b; b = a % b; a = t; } return a; }
const lcm = (a, b) => a / gcd(a, b) * b;
console.log(gcd(48, 18), gcd(17, 5), lcm(4, 6), [2, 3, 4, 5, 6].reduce(lcm));
let x = 1; for (let i = 1; i <= 20; i++) x = lcm(x, i); console.log(x);
