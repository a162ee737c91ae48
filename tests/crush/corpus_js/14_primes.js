function sieve(n) {
  const is = new Array(n + 1).fill(true);
  is[0] = false; is[1] = false;
  for (let i = 2; i * i <= n; i++) {
    if (is[i]) for (let j = i * i; j <= n; j += i) is[j] = false;
  }
  const out = [];
  for (let i = 0; i <= n; i++) if (is[i]) out.push(i);
  return out;
}
const ps = sieve(200);
console.log(ps.length, ps.slice(0, 10).join(" "), ps[ps.length - 1]);
console.log(ps.filter(p => p > 150));
