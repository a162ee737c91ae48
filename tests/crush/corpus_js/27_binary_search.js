function bsearch(a, x) {
  let lo = 0, hi = a.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid] === x) return mid;
    if (a[mid] < x) lo = mid + 1; else hi = mid - 1;
  }
  return -1;
}
const a = [];
for (let i = 0; i < 50; i++) a.push(i * 3);
console.log([0, 3, 147, 148, -1, 75].map(x => bsearch(a, x)));
