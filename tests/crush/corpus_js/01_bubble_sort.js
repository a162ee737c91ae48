// bubble sort on numbers, printed with join
function bubble(a) {
  const n = a.length;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n - 1 - i; j++) {
      if (a[j] > a[j + 1]) { const t = a[j]; a[j] = a[j + 1]; a[j + 1] = t; }
    }
  }
  return a;
}
console.log(bubble([5, 3, 9, 1, 7, 2, 8]).join(" "));
console.log(bubble([]).length, bubble([1]));
console.log(bubble([2.5, -1, 0, 1e3, -0.5]));
