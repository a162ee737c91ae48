const s = "Hello, World";
console.log(s.length, s.toUpperCase(), s.toLowerCase(), s.indexOf("o"), s.lastIndexOf("o"));
console.log(s.slice(7), s.slice(-5, -1), s.substring(5, 0), s.charAt(4), s[1], s[100]);
console.log(s.split(", "), "a-b-c".split("-").join("+"), "abc".split(""));
console.log("  pad ".trim() + "|", "7".padStart(3, "0"), "x".padEnd(3, "-") + "|", "ab".repeat(3));
console.log(s.includes("World"), s.startsWith("Hell"), s.endsWith("!"), "abc" < "abd", "Z" < "a");
console.log("a" + 1 + 2, 1 + 2 + "a", "3" * "4", "10" - 2, "5" + null, "x" + undefined, true + 1);
