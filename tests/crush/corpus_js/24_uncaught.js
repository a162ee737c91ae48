function check(x) {
  if (x > 2) throw new Error("too big: " + x);
  return x;
}
for (let i = 0; i < 5; i++) console.log("check", check(i));
console.log("never");
