console.log([10, 9, 1, 100, 25].sort());
console.log([10, 9, 1, 100, 25].sort((a, b) => a - b));
console.log(["banana", "Apple", "cherry"].sort());
const people = [{ n: "a", age: 30 }, { n: "b", age: 25 }, { n: "c", age: 30 }, { n: "d", age: 25 }];
people.sort((x, y) => x.age - y.age);
console.log(people.map(p => p.n).join(""));
console.log([3, undefined, 1, 2].sort(), [true, false, true].sort());
