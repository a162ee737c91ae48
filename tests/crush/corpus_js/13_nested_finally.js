function f() {
  try {
    try { throw new Error("inner"); }
    finally { console.log("inner finally"); }
  } catch (e) {
    console.log("caught", e.message);
    return "from catch";
  } finally {
    console.log("outer finally");
  }
}
console.log(f());
function g() { for (let i = 0; i < 5; i++) { try { if (i === 2) break; } finally { console.log("f", i); } } return "g"; }
console.log(g());
