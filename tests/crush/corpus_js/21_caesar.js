function shift(s, k) {
  let out = "";
  for (const ch of s) {
    const c = ch.charCodeAt(0);
    if (c >= 97 && c <= 122) out += String.fromCharCode((c - 97 + k + 26) % 26 + 97);
    else if (c >= 65 && c <= 90) out += String.fromCharCode((c - 65 + k + 26) % 26 + 65);
    else out += ch;
  }
  return out;
}
const msg = "Attack at Dawn, 5am!";
const enc = shift(msg, 3);
console.log(enc, shift(enc, -3), shift(enc, -3) === msg);
