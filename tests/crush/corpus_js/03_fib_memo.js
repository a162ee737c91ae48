const memo = {};
function fib(n) {
  if (n < 2) return n;
  if (memo[n] !== undefined) return memo[n];
  const v = fib(n - 1) + fib(n - 2);
  memo[n] = v;
  return v;
}
for (let i = 0; i <= 90; i += 15) console.log(i, fib(i));
console.log(fib(78) === 8944394323791464, fib(80));
