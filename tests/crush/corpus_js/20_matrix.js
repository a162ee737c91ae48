function matmul(a, b) {
  const n = a.length, m = b[0].length, k = b.length;
  const out = [];
  for (let i = 0; i < n; i++) {
    const row = [];
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += a[i][t] * b[t][j];
      row.push(s);
    }
    out.push(row);
  }
  return out;
}
const a = [[1, 2], [3, 4]];
let p = [[1, 0], [0, 1]];
for (let i = 0; i < 10; i++) p = matmul(p, a);
console.log(p);
console.log(matmul([[1, 2, 3]], [[4], [5], [6]]));
