// each iteration's let/const binding is its own: closures made in earlier iterations keep theirs
const fs = [];
for (const i of [1, 2, 3]) {
  fs.push(() => i * 10);
}
let n = 0;
while (n < 3) {
  let k = n;
  const label = "k" + k;
  fs.push(() => label + ":" + k);
  k += 100;
  n++;
}
for (const word of "ab") {
  let count = 0;
  fs.push(() => { count += 1; return word + count; });
}
console.log(fs.map((g) => g()), fs[6](), fs[7]());
const counters = [];
for (const start of [10, 20]) {
  let c = start;
  counters.push({ inc: () => { c += 1; return c; }, get: () => c });
}
counters[0].inc();
counters[0].inc();
counters[1].inc();
console.log(counters.map((o) => o.get()));
let self = null;
{
  const again = () => again;
  self = again;
}
console.log(self() === self);
