function knap(weights, values, cap) {
  const dp = new Array(cap + 1).fill(0);
  for (let i = 0; i < weights.length; i++) {
    for (let w = cap; w >= weights[i]; w--) {
      dp[w] = Math.max(dp[w], dp[w - weights[i]] + values[i]);
    }
  }
  return dp[cap];
}
console.log(knap([1, 3, 4, 5], [1, 4, 5, 7], 7), knap([10, 20, 30], [60, 100, 120], 50));
const big = [];
for (let i = 1; i <= 12; i++) big.push(i * i);
console.log(big);
console.log(big.map(x => x / 7));
