function greet(name = "world", punct = "!") { return "hello " + name + punct; }
console.log(greet(), greet("js"), greet("js", "?"), greet(undefined, "."));
function count() { return 1; }
console.log(count(1, 2, 3));
const f = function fact(n) { return n <= 1 ? 1 : n * fact(n - 1); };
console.log(f(10), f(20), f(25), typeof f);
