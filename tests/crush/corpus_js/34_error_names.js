// the names JavaScript gives an unbound name and a too-deep recursion
try { console.log(notDefinedAnywhere); } catch (e) { console.log(e.name); }
function deep(n) { return n === 0 ? 0 : 1 + deep(n - 1); }
try { deep(1e6); } catch (e) { console.log(e.name, String(e).split(":")[0]); }
