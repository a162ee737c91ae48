function queens(n) {
  let count = 0;
  const cols = [];
  function ok(r, c) {
    for (let i = 0; i < r; i++) {
      if (cols[i] === c || Math.abs(cols[i] - c) === r - i) return false;
    }
    return true;
  }
  function place(r) {
    if (r === n) { count++; return; }
    for (let c = 0; c < n; c++) {
      if (ok(r, c)) { cols[r] = c; place(r + 1); }
    }
  }
  place(0);
  return count;
}
for (let n = 1; n <= 7; n++) console.log(n, queens(n));
