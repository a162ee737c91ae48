function counter() {
  let count = 0;
  return { inc: () => { count++; return count; }, get: () => count };
}
const c = counter();
c.inc(); c.inc();
console.log(c.get(), c.inc());
const adders = [1, 2, 3].map(n => x => x + n);
console.log(adders.map(f => f(10)));
function compose(f, g) { return x => f(g(x)); }
console.log(compose(x => x * 2, x => x + 3)(4));
