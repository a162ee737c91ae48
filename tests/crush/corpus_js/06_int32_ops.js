console.log(5 & 3, 5 | 3, 5 ^ 3, ~5, 1 << 31, 1 << 32, -8 >> 1, -8 >>> 28);
console.log(2147483647 + 1, (2147483647 + 1) | 0, 4294967296 | 0, 3.9 | 0, -3.9 | 0);
let h = 0;
const s = "hello world";
for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0;
console.log(h, h >>> 0);
console.log(0xff, 0b1010, 0o17, 1_000_000);
