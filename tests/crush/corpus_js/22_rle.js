function rle(s) {
  let out = "";
  let i = 0;
  while (i < s.length) {
    let j = i;
    while (j < s.length && s[j] === s[i]) j++;
    out += (j - i) + s[i];
    i = j;
  }
  return out;
}
function unrle(s) {
  let out = "", num = "";
  for (const ch of s) {
    if (ch >= "0" && ch <= "9") num += ch; else { out += ch.repeat(parseInt(num)); num = ""; }
  }
  return out;
}
const t = "aaabccddddde";
console.log(rle(t), unrle(rle(t)) === t, parseInt("42px"), parseFloat("3.5e2x"), Number("12"), Number("x"));
