console.log(0.1 + 0.2, 1 / 3, 2 / 3, 10 / 4, 7 / 7);
console.log(1e21, 1e-7, 123456789012345680000, 5e-324, 2 ** 53 + 1);
console.log(7 % 3, -7 % 3, 7 % -3, 5.5 % 2, -0 === 0);
console.log(1 / 0, -1 / 0, 0 / 0, Infinity - Infinity);
console.log(Math.floor(-3.5), Math.ceil(-3.5), Math.round(2.5), Math.round(-2.5), Math.trunc(-3.7));
console.log(Math.sqrt(2), Math.abs(-4), Math.pow(2, 10), 2 ** -1, Math.sign(-3));
console.log((3.14159).toFixed(2), (0.5).toFixed(0), (1.45).toFixed(1), (-1.5).toFixed(0));
