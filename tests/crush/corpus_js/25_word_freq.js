const text = "it was the best of times it was the worst of times it was the age of wisdom";
const freq = {};
for (const w of text.split(" ")) freq[w] = (freq[w] || 0) + 1;
const words = Object.keys(freq);
words.sort((a, b) => freq[b] - freq[a] || (a < b ? -1 : a > b ? 1 : 0));
for (const w of words.slice(0, 5)) console.log(w.padEnd(8), freq[w]);
console.log(words.length, words.map(w => w.length).reduce((a, b) => Math.max(a, b), 0));
