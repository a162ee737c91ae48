function banner(title, width) {
  const pad = "=".repeat(Math.max(0, (width - title.length - 2) / 2));
  return `${pad} ${title} ${pad}`;
}
function mean(xs) { return xs.reduce((a, b) => a + b, 0) / xs.length; }
