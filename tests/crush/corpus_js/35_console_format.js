// node's util.format placeholders in console.log's first argument
console.log("%s is %d years", "Bob", 42);
console.log("100%", 5);
console.log("%j %%", {a: [1, "x"]});
console.log("a%cb", "color: red", "tail", [1]);
console.log("%%");
console.log("%%", 1);
console.log("%s");
console.log("%d%", 5);
console.log("%s %s", "a");
console.log("x%", "y");
console.log(5, "%s", 3);
console.log("%i|%f|%d|%s|%s|%s", "42.9px", "3.5e2x", "0x10", -0, null, undefined);
console.log("%d %d %s %j", -0, [7], true, undefined);
console.log("%x %s", 1, 2, 3);
console.log("%s:%s", "k");
console.log("%", 1);
console.log("%s%", 1);
