function merge(a, b) {
  const out = [];
  let i = 0, j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] <= b[j]) { out.push(a[i]); i++; } else { out.push(b[j]); j++; }
  }
  while (i < a.length) { out.push(a[i]); i++; }
  while (j < b.length) { out.push(b[j]); j++; }
  return out;
}
function sort(a) {
  if (a.length <= 1) return a;
  const mid = Math.floor(a.length / 2);
  return merge(sort(a.slice(0, mid)), sort(a.slice(mid)));
}
console.log(sort([38, 27, 43, 3, 9, 82, 10]).join(","));
console.log(sort(["pear", "apple", "fig", "banana"]));
