// Array.prototype.sort as V8 does it: undefined last and never compared, ToNumber of the comparator's
// result (NaN is 0), and below 64 elements V8's run detection and binary insertion, so that an
// inconsistent comparator ((a, b) => a > b) orders as node orders
console.log([3, 1, 2].sort((a, b) => a > b), [5, 1, 4, 2, 3].sort((a, b) => a > b), [1, 2, 3].sort(() => -1), [1, 2, 3].sort(() => 1));
console.log([3, 1, 2, 9, 7, 5, 4, 8, 6, 0, 11, 15, 13, 12, 14, 10].sort((a, b) => a < b));
const big = [];
for (let i = 0; i < 100; i++) { big.push((i * 37) % 101); }
console.log(big.sort((a, b) => a - b).slice(0, 8), big.sort().slice(0, 8));
console.log([3, undefined, 1, undefined, 2].sort((a, b) => a - b), [3, undefined, 10, 2].sort());
console.log(["b", "a", "c", "a"].sort(), [2, 1, 2, 1].map((v, i) => ({v, i})).sort((x, y) => x.v - y.v).map((o) => o.i));
console.log([1, 2, 3, 4, 5, 6].sort((a, b) => (a % 2) - (b % 2)), [5, 4, 3, 2, 1].sort((a, b) => b < a), [1, 3, 2].sort(() => NaN));
