console.log(parseInt("08"), parseInt("0x1f"), parseInt("0X1F", 16), parseInt("1f", 16), parseInt("0x1f", 10), parseInt("z", 36), parseInt("12", 1), parseInt("12", 37));
console.log(parseInt("  -0x10"), parseInt("+42abc"), parseInt("-"), parseInt(""), parseInt("101", 2), parseInt("777", 8), parseInt("9", 8), parseInt("12", 0));
console.log(parseInt("1".repeat(400)), parseInt("-" + "9".repeat(5000)), parseInt("0".repeat(2000) + "7"), parseInt("123456789012345678901234567890"));
console.log(parseInt("\u00a0\ufeff 5"), parseFloat("\ufeff2.5"), parseInt(12.9), parseInt(null, 36), parseInt("11", 2.9), parseInt("ff", "16"));
