"""The JavaScript walker: JavaScript source -> a CAST document (crush/cast.py), or one WalkError.

`walk_bytes(data, filename)` parses with tree-sitter-javascript and lowers the subset documented
in docs/crush.md ("JavaScript") to CAST. JavaScript's meaning is carried by typed operations
(`["std.op", "js.add", a, b]`, crush/jsops.py); control flow, bindings and functions are `std.*`:

- Block scoping: `let`/`const` are `std.let` where they stand, each `{...}` is a `std.block`;
  function declarations are hoisted to the top of their block. `var` is refused.
- Functions: every parameter defaults to undefined (JavaScript's missing arguments), and each
  function takes EXTRA_PARAMS hidden parameters more, so that a call with a few more arguments
  than declared works as in JavaScript (the array helpers pass (item, index, array)).
- `for (init; cond; update)` becomes a `std.while` with a first-iteration flag (so `continue`
  runs the update); a loop whose `let` variable a closure in its body could capture is refused
  (JavaScript gives each iteration its own binding). `for (x of a)` gives each iteration its own.
- Conditions are `js.truth` (ToBoolean); `a && b` / `a || b` / `a ?? b` keep JavaScript's value
  semantics (the left operand is evaluated once, through a one-parameter function).
- `arr.map/filter/reduce/forEach/some/every/find/findIndex/sort(f)` call JavaScript helpers
  (HELPERS, walked from JavaScript source and prepended when used); other methods are `js.method`.
- Capabilities: `exo.fs.read(path)`, `exo.log(text)`, ... (crush/cast.py CAPABILITIES) are `std.cap`
  when `exo` is not a name of the program.
- Refused, with their position: classes, `this`, `new` (but for Error/TypeError/RangeError/
  Array), destructuring, spread, `var`, `==`/`!=`, getters, generators, async, labels, regular
  expressions, `continue` inside `switch`, `delete`, `in`, `instanceof`, assignment used as a value, `++`/`--`
  inside an expression; builtins outside the subset (`Math.log`, `Map`, `setTimeout`, `parseInt`
  as a value, `s.replace(...)`, `n.toString(2)`, `exo.fs.remove(...)`) unless the program binds the
  name: the VM would raise an error where JavaScript has a value.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import re
from collections.abc import Iterator
from typing import Any

import tree_sitter
import tree_sitter_javascript

from crush.casm import CAP_ARITY
from crush.walkers import WalkError
from crush.walkers.treesitter import Base, CastNode, Node, named, parse, without_bom

__all__ = ["WalkError", "walk", "walk_bytes"]

_LANGUAGE = tree_sitter.Language(tree_sitter_javascript.language())
EXTRA_PARAMS = 4
_HIDDEN = "__crush_"

_BINARY = {"+": "add", "-": "sub", "*": "mul", "/": "div", "%": "mod", "**": "pow", "&": "bitand", "|": "bitor",
           "^": "bitxor", "<<": "shl", ">>": "shr", ">>>": "ushr", "===": "seq", "!==": "sne", "<": "lt",
           "<=": "le", ">": "gt", ">=": "ge"}
_UNARY = {"-": "neg", "+": "pos", "!": "not", "~": "bitnot", "typeof": "typeof"}
_GLOBAL_FUNCS = {"parseInt", "parseFloat", "String", "Number", "isNaN"}
_STATIC = {("Math", n) for n in ("floor", "ceil", "trunc", "round", "abs", "sqrt", "sign", "max", "min", "pow")} | {
    ("JSON", "stringify"), ("Array", "isArray"), ("Object", "keys"), ("String", "fromCharCode"),
    ("console", "log")}
_CONSTANTS = {("Math", "PI"): 3.141592653589793, ("Math", "E"): 2.718281828459045,
              ("Number", "MAX_SAFE_INTEGER"): 9007199254740991.0}
_CALLBACK_METHODS = ("map", "filter", "forEach", "some", "every", "find", "findIndex", "sort", "reduce")
_ERRORS = ("Error", "TypeError", "RangeError")
# construct -> the field holding the name it binds (formal_parameters: each identifier child)
_BINDING_FIELDS = {"variable_declarator": "name", "function_declaration": "name", "function_expression": "name",
                   "function": "name", "catch_clause": "parameter", "for_in_statement": "left",
                   "arrow_function": "parameter", "assignment_pattern": "left"}
# The builtin objects the subset has some members of (Math.floor(), JSON.stringify(), ...): any other
# member, or the object itself as a value, is refused when the program does not bind the name.
_NAMESPACES = frozenset(obj for obj, _ in (*_STATIC, *_CONSTANTS))
# Standard globals outside the subset (ECMAScript's and node's): read without the program binding
# them, they are refused where they stand (the VM would raise NameError where JavaScript has a value).
_OTHER_GLOBALS = frozenset((
    "Map", "Set", "WeakMap", "WeakSet", "WeakRef", "FinalizationRegistry", "Symbol", "Promise", "Proxy", "Reflect",
    "Date", "RegExp", "BigInt", "Boolean", "Function", "Intl", "Atomics", "ArrayBuffer", "SharedArrayBuffer",
    "DataView", "Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array",
    "Uint32Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array", "AggregateError",
    "EvalError", "ReferenceError", "SyntaxError", "URIError", "globalThis", "isFinite", "encodeURI",
    "encodeURIComponent", "decodeURI", "decodeURIComponent", "escape", "unescape", "setTimeout", "setInterval",
    "setImmediate", "clearTimeout", "clearInterval", "queueMicrotask", "structuredClone", "require", "module",
    "exports", "process", "Buffer", "URL", "TextEncoder", "TextDecoder", "fetch", "performance", "window",
    "global", "exo", *_GLOBAL_FUNCS, *_ERRORS, *_NAMESPACES))
# Methods of String, Array, Number, Object and Function.prototype that no value of the subset has:
# a call `x.NAME(...)` is refused (JavaScript would call the builtin; the VM would raise TypeError).
_OTHER_METHODS = frozenset((
    "codePointAt", "isWellFormed", "localeCompare", "match", "matchAll", "normalize", "replace", "replaceAll",
    "search", "toLocaleLowerCase", "toLocaleUpperCase", "toWellFormed", "substr", "trimLeft", "trimRight",
    "anchor", "big", "blink", "bold", "fixed", "fontcolor", "fontsize", "italics", "link", "small", "strike", "sub",
    "sup", "copyWithin", "entries", "findLast", "findLastIndex", "flat", "flatMap", "keys", "reduceRight",
    "toLocaleString", "toReversed", "toSorted", "toSpliced", "values", "with", "toExponential", "toPrecision",
    "valueOf", "hasOwnProperty", "isPrototypeOf", "propertyIsEnumerable", "apply", "bind", "call"))
_UNSUPPORTED = {
    "class_declaration": "class", "class": "class", "this": "this", "spread_element": "spread (...)",
    "array_pattern": "destructuring", "object_pattern": "destructuring", "generator_function_declaration":
    "generator", "generator_function": "generator", "await_expression": "await", "yield_expression": "yield",
    "regex": "regular expression", "labeled_statement": "label",
    "variable_declaration": "var (use let or const)", "import_statement": "import", "export_statement": "export",
    "with_statement": "with", "sequence_expression": "comma operator", "meta_property": "new.target",
    "super": "super", "optional_chain": "optional chaining (?.)",
    "computed_property_name": "computed property name", "method_definition": "method definition",
    "debugger_statement": "debugger", "assignment_pattern": "destructuring default", "rest_pattern": "rest parameter",
    "empty_statement": "empty statement", "jsx_element": "JSX", "html_comment": "HTML comment",
}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0", "\\": "\\", "'": "'",
            '"': '"', "`": "`", "$": "$", "\n": ""}
_ESCAPE = re.compile(r"\\(u\{[0-9a-fA-F]+\}|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|.)", re.S)

# The array methods that call back into guest code, written in the subset itself.
HELPERS = """
function __crush_arr(a, name) {
  if (!Array.isArray(a)) { throw new TypeError(typeof a + "." + name + " is not a function (in this subset)"); }
}
function __crush_map(a, f) {
  __crush_arr(a, "map"); const r = [];
  for (let i = 0; i < a.length; i++) { r.push(f(a[i], i, a)); }
  return r;
}
function __crush_filter(a, f) {
  __crush_arr(a, "filter"); const r = [];
  for (let i = 0; i < a.length; i++) { if (f(a[i], i, a)) { r.push(a[i]); } }
  return r;
}
function __crush_forEach(a, f) {
  __crush_arr(a, "forEach");
  for (let i = 0; i < a.length; i++) { f(a[i], i, a); }
}
function __crush_some(a, f) {
  __crush_arr(a, "some");
  for (let i = 0; i < a.length; i++) { if (f(a[i], i, a)) { return true; } }
  return false;
}
function __crush_every(a, f) {
  __crush_arr(a, "every");
  for (let i = 0; i < a.length; i++) { if (!f(a[i], i, a)) { return false; } }
  return true;
}
function __crush_find(a, f) {
  __crush_arr(a, "find");
  for (let i = 0; i < a.length; i++) { if (f(a[i], i, a)) { return a[i]; } }
  return undefined;
}
function __crush_findIndex(a, f) {
  __crush_arr(a, "findIndex");
  for (let i = 0; i < a.length; i++) { if (f(a[i], i, a)) { return i; } }
  return -1;
}
function __crush_reduce(a, f, acc) {
  __crush_arr(a, "reduce");
  for (let i = 0; i < a.length; i++) { acc = f(acc, a[i], i, a); }
  return acc;
}
function __crush_reduce1(a, f) {
  __crush_arr(a, "reduce");
  if (a.length === 0) { throw new TypeError("Reduce of empty array with no initial value"); }
  let acc = a[0];
  for (let i = 1; i < a.length; i++) { acc = f(acc, a[i], i, a); }
  return acc;
}
function __crush_cmp(x, y, f) {
  if (f === undefined) {
    const s = String(x);
    const t = String(y);
    return s < t ? -1 : (t < s ? 1 : 0);
  }
  const v = Number(f(x, y));
  return v !== v ? 0 : v;
}
function __crush_sort(a, f) {
  __crush_arr(a, "sort");
  const w = [];
  for (let i = 0; i < a.length; i++) { if (a[i] !== undefined) { w.push(a[i]); } }
  const n = w.length;
  if (n < 64) {
    if (n >= 2) {
      let run = 2;
      const down = __crush_cmp(w[1], w[0], f) < 0;
      while (run < n) {
        const order = __crush_cmp(w[run], w[run - 1], f);
        if (down ? order >= 0 : order < 0) { break; }
        run++;
      }
      if (down) {
        for (let i = 0; i < Math.floor(run / 2); i++) { const t = w[i]; w[i] = w[run - 1 - i]; w[run - 1 - i] = t; }
      }
      for (let start = run; start < n; start++) {
        const pivot = w[start];
        let left = 0;
        let right = start;
        while (left < right) {
          const mid = left + ((right - left) >> 1);
          if (__crush_cmp(pivot, w[mid], f) < 0) { right = mid; } else { left = mid + 1; }
        }
        for (let q = start; q > left; q--) { w[q] = w[q - 1]; }
        w[left] = pivot;
      }
    }
  } else {
    let src = w;
    let dst = w.slice(0);
    for (let width = 1; width < n; width = width * 2) {
      for (let lo = 0; lo < n; lo = lo + 2 * width) {
        const mid = Math.min(lo + width, n);
        const hi = Math.min(lo + 2 * width, n);
        let i = lo;
        let j = mid;
        for (let k = lo; k < hi; k++) {
          if (i < mid && (j >= hi || __crush_cmp(src[i], src[j], f) <= 0)) { dst[k] = src[i]; i++; }
          else { dst[k] = src[j]; j++; }
        }
      }
      const t = src; src = dst; dst = t;
    }
    for (let k = 0; k < n; k++) { w[k] = src[k]; }
  }
  for (let k = 0; k < a.length; k++) { a[k] = k < n ? w[k] : undefined; }
  return a;
}
"""


def walk_bytes(data: bytes, filename: str) -> dict[str, Any]:
    return _Walker(without_bom(data), filename).document()


def walk(source: str, filename: str) -> dict[str, Any]:
    return walk_bytes(source.encode("utf-8", "surrogatepass"), filename)


@functools.cache
def _forms(name: str) -> str:
    """What the subset has of the builtin `name`, for a refusal's message ("" if nothing)."""
    forms = sorted({f"{obj}.{member}" + ("()" if (obj, member) in _STATIC else "")
                    for obj, member in (*_STATIC, *_CONSTANTS) if obj == name})
    if name in _GLOBAL_FUNCS or name in _ERRORS:
        forms.append(f"{name}(...)")
    if name in _ERRORS or name == "Array":
        forms.append(f"new {name}(...)")
    return f" (the subset has {', '.join(forms)})" if forms else ""


def _helpers() -> dict[str, CastNode]:
    """name -> the `std.let NAME (std.fn ...)` of each helper (walked once per process; callers
    copy what they use, so the cached trees are never shared by two documents)."""
    walker = _Walker(HELPERS.encode(), "<crush-js-helpers>", hidden=True)
    root = parse(walker.data, _LANGUAGE, walker.file)
    return {walker.text(fn.child_by_field_name("name") or fn): walker.function(fn, walker.text(
        fn.child_by_field_name("name") or fn), declare=True) for fn in named(root)}


class _Walker(Base):
    def __init__(self, data: bytes, filename: str, hidden: bool = False) -> None:
        super().__init__(data, filename)
        self.hidden = hidden
        self.counter = 0
        self.declared: set[str] = set()
        self.scopes: list[dict[str, str]] = [{}]  # name -> "const" or "let" (const assignments are refused)
        self.used_helpers: set[str] = set()

    def temp(self, what: str) -> str:
        self.counter += 1
        return f"${what}{self.counter}"

    def document(self) -> dict[str, Any]:
        root = parse(self.data, _LANGUAGE, self.file)
        self._collect_names(root)
        body = self.statements(named(root))
        helpers = _helpers() if self.used_helpers else {}
        needed = set(self.used_helpers)
        if needed:
            needed |= {"__crush_arr"} | ({"__crush_cmp"} if "__crush_sort" in needed else set())
        prelude = [copy.deepcopy(helpers[name]) for name in sorted(needed)]
        return self.finish("javascript", ["std.seq", *prelude, *body])

    def _collect_names(self, root: Node) -> None:
        """Every name the program binds anywhere (a name bound nowhere may be a global builtin): the
        binding child of each binding construct only (`let x = NaN` binds x, not NaN). Iterative."""
        stack: list[Node] = [root]
        while stack:
            node = stack.pop()
            if node.type == "formal_parameters":
                bound = [c for c in node.named_children if c.type == "identifier"]
            else:
                field = _BINDING_FIELDS.get(node.type)
                child = node.child_by_field_name(field) if field is not None else None
                bound = [child] if child is not None and child.type == "identifier" else []
            self.declared.update(self.text(c) for c in bound)
            stack.extend(node.named_children)

    # --- statements ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def scope(self, names: dict[str, str] | None = None) -> Iterator[None]:
        self.scopes.append(dict(names or {}))
        try:
            yield
        finally:
            self.scopes.pop()

    def statements(self, nodes: list[Node], bindings: dict[str, str] | None = None) -> list[CastNode]:
        """A statement list (a scope, with `bindings` declared in it) with its function
        declarations hoisted to the top."""
        out: list[CastNode] = []
        with self.scope(bindings):
            for n in nodes:
                if n.type == "function_declaration":
                    name = self.ident(n.child_by_field_name("name"))
                    self.scopes[-1][name] = "let"
            for n in nodes:
                if n.type == "function_declaration":
                    name = self.ident(n.child_by_field_name("name"))
                    out.append(self.at(n, self.function(n, name, declare=True)))
            for n in nodes:
                if n.type != "function_declaration":
                    out.extend(self.statement(n))
        return out

    def statement(self, node: Node) -> Iterator[CastNode]:
        with self.enter(node):
            yield from self._statement(node)

    def _statement(self, node: Node) -> Iterator[CastNode]:
        t = node.type
        if t in _UNSUPPORTED:
            raise self.fail(node, f"unsupported {_UNSUPPORTED[t]}")
        if t == "expression_statement":
            yield self.at(node, self.expression_statement(named(node)[0]))
        elif t == "lexical_declaration":
            kind = "const" if self.text(node).startswith("const") else "let"
            for decl in named(node):
                if decl.type != "variable_declarator":
                    continue
                name_node = decl.child_by_field_name("name")
                assert name_node is not None
                name = self.ident(name_node)
                value = decl.child_by_field_name("value")
                init = self.expr(value) if value is not None else ["std.none"]
                if value is not None and value.type in ("arrow_function", "function_expression", "function"):
                    init = self.function(value, name)
                self.scopes[-1][name] = kind
                yield self.at(decl, ["std.let", name, init])
        elif t == "statement_block":
            yield ["std.block", *self.statements(named(node))]
        elif t == "if_statement":
            cond = self.condition(self.field(node, "condition"))
            then = self.block_of(self.field(node, "consequence"))
            alt = node.child_by_field_name("alternative")
            other = self.block_of(named(alt)[0]) if alt is not None else None
            yield self.at(node, ["std.if", cond, then, *([other] if other else [])])
        elif t == "while_statement":
            yield self.at(node, ["std.while", self.condition(self.field(node, "condition")),
                                 self.block_of(self.field(node, "body"))])
        elif t == "do_statement":
            flag = self.temp("do")
            test = ["std.if", ["std.op", "js.not", self.condition(self.field(node, "condition"))], ["std.break"]]
            yield ["std.block", ["std.let", flag, ["std.bool", False]],
                   self.at(node, ["std.while", ["std.bool", True], ["std.seq",
                          ["std.if", ["std.var", flag], test], ["std.set", ["std.var", flag], ["std.bool", True]],
                          self.block_of(self.field(node, "body"))]])]
        elif t == "for_statement":
            yield self.for_loop(node)
        elif t == "switch_statement":
            yield self.switch(node)
        elif t == "for_in_statement":
            yield self.for_of(node)
        elif t == "return_statement":
            values = named(node)
            yield self.at(node, ["std.return", self.expr(values[0]) if values else ["std.none"]])
        elif t == "break_statement":
            if named(node):
                raise self.fail(node, "unsupported label")
            yield ["std.break"]
        elif t == "continue_statement":
            if named(node):
                raise self.fail(node, "unsupported label")
            yield ["std.continue"]
        elif t == "throw_statement":
            yield self.at(node, ["std.raise", ["std.op", "js.throw", self.expr(named(node)[0])]])
        elif t == "try_statement":
            yield from self.try_statement(node)
        elif t in ("comment", "hash_bang_line"):
            return
        elif t == "function_declaration":
            raise self.fail(node, "unsupported function declaration here")
        else:
            raise self.fail(node, f"unsupported statement ({t})")

    def block_of(self, node: Node) -> CastNode:
        stmts = list(self.statement(node))
        return stmts[0] if len(stmts) == 1 else ["std.block", *stmts]

    def for_loop(self, node: Node) -> CastNode:
        init = node.child_by_field_name("initializer")
        cond = node.child_by_field_name("condition")
        update = node.child_by_field_name("increment")
        body = self.field(node, "body")
        if init is not None and init.type == "lexical_declaration" and self._has_function(body):
            raise self.fail(node, "unsupported closure in a for loop with a let variable (each iteration's binding)")
        with self.scope():
            return self._for_loop(node, init, cond, update, body)

    def _for_loop(self, node: Node, init: Node | None, cond: Node | None, update: Node | None,
                  body: Node) -> CastNode:
        flag = self.temp("for")
        out: CastNode = ["std.block"]
        if init is not None and init.type != "empty_statement":
            out.extend(self.statement(init))
        out.append(["std.let", flag, ["std.bool", False]])
        loop: CastNode = ["std.seq"]
        if update is not None:
            loop.append(["std.if", ["std.var", flag], self.at(update, self.expression_statement(update))])
        loop.append(["std.set", ["std.var", flag], ["std.bool", True]])
        if cond is not None and cond.type not in {";", "empty_statement"}:
            c = named(cond)[0] if cond.type == "expression_statement" else cond
            loop.append(self.at(c, ["std.if", ["std.op", "js.not", self.condition(c)], ["std.break"]]))
        loop.append(self.block_of(body))
        out.append(self.at(node, ["std.while", ["std.bool", True], loop]))
        return out

    def switch(self, node: Node) -> CastNode:
        """`switch`: the first clause whose value is === the discriminant (tested in order, the
        default clause skipped) or else the default gives an index; every clause from that index
        on runs (fallthrough) inside a one-pass loop that `break` leaves. A `continue` inside
        would continue that loop instead of the enclosing one, so it is refused."""
        clauses = [c for c in named(self.field(node, "body")) if c.type in ("switch_case", "switch_default")]
        self._refuse_continue(node)
        disc, index = self.temp("switch"), self.temp("case")
        chain: CastNode = ["std.pass"]
        default = next((i for i, c in enumerate(clauses) if c.type == "switch_default"), None)
        if default is not None:
            chain = ["std.set", ["std.var", index], ["std.float", float(default)]]
        for i in reversed(range(len(clauses))):
            c = clauses[i]
            if c.type == "switch_case":
                test = self.at(c, ["std.op", "js.seq", ["std.var", disc], self.expr(self.field(c, "value"))])
                chain = ["std.if", test, ["std.set", ["std.var", index], ["std.float", float(i)]], chain]
        body: CastNode = ["std.seq"]
        for i, c in enumerate(clauses):
            stmts = [s for s in named(c) if s != c.child_by_field_name("value")]
            if stmts:
                runs = ["std.op", "js.le", ["std.var", index], ["std.float", float(i)]]
                body.append(["std.if", runs, ["std.seq", *self.statements(stmts)]])
        body.append(["std.break"])
        return ["std.block", self.at(node, ["std.let", disc, self.expr(self.field(node, "value"))]),
                ["std.let", index, ["std.float", -1.0]], chain,
                ["std.if", ["std.op", "js.ge", ["std.var", index], ["std.float", 0.0]],
                 ["std.while", ["std.bool", True], body]]]

    def _refuse_continue(self, node: Node) -> None:
        stack = list(node.named_children)
        while stack:
            n = stack.pop()
            if n.type == "continue_statement":
                raise self.fail(n, "unsupported continue inside switch")
            if n.type not in ("for_statement", "for_in_statement", "while_statement", "do_statement",
                              "function_declaration", "function_expression", "arrow_function", "function"):
                stack.extend(n.named_children)

    def _has_function(self, node: Node) -> bool:
        stack = [node]
        while stack:
            n = stack.pop()
            if n.type in ("arrow_function", "function_expression", "function_declaration", "function"):
                return True
            stack.extend(n.named_children)
        return False

    def for_of(self, node: Node) -> CastNode:
        op = node.child_by_field_name("operator")
        if op is None or self.text(op) != "of":
            raise self.fail(node, "unsupported for-in (use for-of, or for-of over Object.keys)")
        kind = node.child_by_field_name("kind")
        if kind is None or self.text(kind) == "var":
            raise self.fail(node, "unsupported for-of without let or const")
        left = self.field(node, "left")
        name = self.ident(left)
        item = self.temp("item")
        iterable = self.at(node, ["std.op", "js.iterable", self.expr(self.field(node, "right"))])
        with self.scope({name: self.text(kind)}):
            body = ["std.block", ["std.let", name, ["std.var", item]], self.block_of(self.field(node, "body"))]
        return ["std.block", ["std.let", item], self.at(node, ["std.for", ["std.var", item], iterable, body])]

    def try_statement(self, node: Node) -> Iterator[CastNode]:
        body = ["std.block", *self.statements(named(self.field(node, "body")))]
        handler = node.child_by_field_name("handler")
        final = node.child_by_field_name("finalizer")
        handlers: list[Any] = []
        exc = self.temp("exc")
        if handler is not None:
            param = handler.child_by_field_name("parameter")
            inner: CastNode = ["std.block"]
            bound: dict[str, str] = {}
            if param is not None:
                inner.append(["std.let", self.ident(param), ["std.op", "js.caught", ["std.var", exc]]])
                bound[self.ident(param)] = "let"
            inner.extend(self.statements(named(self.field(handler, "body")), bound))
            handlers.append([None, exc, inner])
        fin = ["std.block", *self.statements(named(self.field(final, "body")))] if final is not None else None
        yield ["std.let", exc]
        yield self.at(node, ["std.try", body, handlers, *([fin] if fin is not None else [])])

    def expression_statement(self, node: Node) -> CastNode:
        with self.enter(node):
            return self._expression_statement(node)

    def _expression_statement(self, node: Node) -> CastNode:
        """An expression whose value is not used: assignments and ++/-- are allowed here."""
        t = node.type
        if t == "parenthesized_expression":
            return self.expression_statement(named(node)[0])
        if t == "assignment_expression":
            return self.assign(self.field(node, "left"), self.expr(self.field(node, "right")), node)
        if t == "augmented_assignment_expression":
            op = self.text(self.field(node, "operator"))[:-1]
            left = self.field(node, "left")
            if op in ("&&", "||", "??"):
                raise self.fail(node, f"unsupported {op}=")
            value = ["std.op", f"js.{_BINARY[op]}", self.read_twice(left), self.expr(self.field(node, "right"))]
            return self.assign(left, self.at(node, value), node)
        if t == "update_expression":
            arg = self.field(node, "argument")
            op = "js.add" if "++" in self.text(node) else "js.sub"
            value = ["std.op", op, ["std.op", "js.num", self.read_twice(arg)], ["std.float", 1.0]]
            return self.assign(arg, self.at(node, value), node)
        return ["std.expr", self.expr(node)]

    def read_twice(self, target: Node) -> CastNode:
        """A target read before it is assigned (`x += 1`): its operands must be simple, since
        they are evaluated twice."""
        for part in ("object", "index"):
            sub = target.child_by_field_name(part)
            if sub is not None and sub.type not in ("identifier", "number", "string", "member_expression",
                                                    "property_identifier"):
                raise self.fail(target, "unsupported compound assignment to a computed target")
        return self.expr(target)

    def assign(self, target: Node, value: CastNode, node: Node) -> CastNode:
        with self.enter(target):
            return self._assign(target, value, node)

    def _assign(self, target: Node, value: CastNode, node: Node) -> CastNode:
        t = target.type
        if t == "identifier":
            name = self.ident(target)
            for scope in reversed(self.scopes):
                if name in scope:
                    if scope[name] == "const":
                        raise self.fail(target, f"unsupported assignment to the constant {name!r} "
                                                "(JavaScript throws TypeError)")
                    break
            return ["std.set", ["std.var", name], value]
        if t == "member_expression":
            prop = self.field(target, "property")
            if self.text(prop) == "length":
                raise self.fail(target, "unsupported assignment to length (use push, pop or splice)")
            return ["std.expr", ["std.op", "js.set", self.expr(self.field(target, "object")),
                                 ["std.str", self.text(prop)], value]]
        if t == "subscript_expression":
            return ["std.expr", ["std.op", "js.set", self.expr(self.field(target, "object")),
                                 self.expr(self.field(target, "index")), value]]
        if t == "parenthesized_expression":
            return self.assign(named(target)[0], value, node)
        raise self.fail(target, "unsupported assignment target")

    # --- expressions --------------------------------------------------------------------------

    def condition(self, node: Node) -> CastNode:
        with self.enter(node):
            return self._condition(node)

    def _condition(self, node: Node) -> CastNode:
        """`node` as a bool (ToBoolean), with && || ! kept short-circuit."""
        t = node.type
        if t == "parenthesized_expression":
            return self.condition(named(node)[0])
        if t == "binary_expression":
            op = self.text(self.field(node, "operator"))
            if op in ("&&", "||"):
                a = self.condition(self.field(node, "left"))
                b = self.condition(self.field(node, "right"))
                return ["std.cond", a, b, ["std.bool", False]] if op == "&&" else ["std.cond", a, ["std.bool", True], b]
            if op in ("===", "!==", "<", "<=", ">", ">="):
                return self.expr(node)
        if t == "unary_expression" and self.text(self.field(node, "operator")) == "!":
            return ["std.op", "js.not", self.condition(self.field(node, "argument"))]
        if t in ("true", "false"):
            return ["std.bool", t == "true"]
        return ["std.op", "js.truth", self.expr(node)]

    def expr(self, node: Node) -> CastNode:
        with self.enter(node):
            return self._expr(node)

    def _expr(self, node: Node) -> CastNode:
        t = node.type
        if t in _UNSUPPORTED:
            raise self.fail(node, f"unsupported {_UNSUPPORTED[t]}")
        if t == "number":
            return ["std.float", self.number(node)]
        if t == "string":
            return ["std.str", self.string(node)]
        if t == "template_string":
            return self.at(node, self.template(node))
        if t in ("true", "false"):
            return ["std.bool", t == "true"]
        if t == "null":
            return ["std.builtin", "js.null"]
        if t == "undefined":
            return ["std.none"]
        if t == "identifier":
            name = self.ident(node)
            if name not in self.declared:
                if name == "NaN":
                    return ["std.float", "nan"]
                if name == "Infinity":
                    return ["std.float", "inf"]
                if name in _OTHER_GLOBALS:
                    raise self.fail(node, f"unsupported {name} here{_forms(name)}")
            return self.at(node, ["std.var", name])
        if t == "parenthesized_expression":
            return self.expr(named(node)[0])
        if t == "array":
            return ["std.list", *(self.expr(c) for c in named(node))]
        if t == "object":
            return self.at(node, ["std.dict", *(self.pair(c) for c in named(node))])
        if t == "binary_expression":
            return self.binary(node)
        if t == "unary_expression":
            op = self.text(self.field(node, "operator"))
            if op not in _UNARY:
                raise self.fail(node, f"unsupported unary operator {op}")
            if op == "!":
                return self.at(node, self.condition(node))
            return self.at(node, ["std.op", f"js.{_UNARY[op]}", self.expr(self.field(node, "argument"))])
        if t == "ternary_expression":
            return self.at(node, ["std.cond", self.condition(self.field(node, "condition")),
                                  self.expr(self.field(node, "consequence")),
                                  self.expr(self.field(node, "alternative"))])
        if t == "member_expression":
            return self.member(node)
        if t == "subscript_expression":
            return self.at(node, ["std.op", "js.get", self.expr(self.field(node, "object")),
                                  self.expr(self.field(node, "index"))])
        if t == "call_expression":
            return self.call(node)
        if t == "new_expression":
            ctor = self.field(node, "constructor")
            name = self.text(ctor)
            if ctor.type != "identifier" or name not in (*_ERRORS, "Array") or name in self.declared:
                raise self.fail(node, "unsupported new (only Error, TypeError, RangeError and Array)")
            args = node.child_by_field_name("arguments")
            values = self.args(args) if args is not None else []
            if name == "Array":
                self._array_length(node, values)
            return self.at(node, ["std.op", f"js.{name}", *values])
        if t in ("arrow_function", "function_expression", "function"):
            return self.function(node, None)
        if t in ("assignment_expression", "augmented_assignment_expression", "update_expression"):
            raise self.fail(node, "unsupported assignment used as a value (use it as a statement)")
        raise self.fail(node, f"unsupported expression ({t})")

    def number(self, node: Node) -> float | str:
        text = self.text(node).replace("_", "")
        try:
            if text[:2].lower() in ("0x", "0b", "0o"):
                value = float(int(text, 0))
            elif re.fullmatch(r"0[0-9]+", text):
                raise self.fail(node, "unsupported legacy octal literal")
            elif text.endswith("n"):
                raise self.fail(node, "unsupported BigInt literal")
            else:
                value = float(text)
        except (ValueError, OverflowError):
            raise self.fail(node, f"unsupported number literal {text[:20]}") from None
        return value if value != float("inf") else "inf"

    def string(self, node: Node) -> str:
        raw = self.text(node)[1:-1]
        return self.unescape(raw, node)

    def unescape(self, raw: str, node: Node) -> str:
        def one(m: re.Match[str]) -> str:
            e = m.group(1)
            if e[0] == "u":
                code = int(e[2:-1] if e[1] == "{" else e[1:], 16)
                if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                    raise self.fail(node, "unsupported escape (surrogate or out of range)")
                return chr(code)
            if e[0] == "x":
                return chr(int(e[1:], 16))
            if e in _ESCAPES:
                return _ESCAPES[e]
            if e.isdigit():
                raise self.fail(node, "unsupported octal escape")
            return e
        return _ESCAPE.sub(one, raw)

    def template(self, node: Node) -> CastNode:
        parts: list[CastNode] = []
        pos = node.start_byte + 1
        for c in node.named_children:
            if c.type == "template_substitution":
                if c.start_byte > pos:
                    parts.append(["std.str", self.unescape(self.data[pos:c.start_byte].decode(), node)])
                parts.append(self.expr(named(c)[0]))
                pos = c.end_byte
        if node.end_byte - 1 > pos:
            parts.append(["std.str", self.unescape(self.data[pos:node.end_byte - 1].decode(), node)])
        return ["std.op", "js.template", *parts]

    def pair(self, node: Node) -> list[CastNode]:
        if node.type == "shorthand_property_identifier":
            name = self.text(node)
            return [["std.str", name], ["std.var", name]]
        if node.type != "pair":
            raise self.fail(node, f"unsupported object member ({node.type})")
        key = self.field(node, "key")
        if key.type in ("property_identifier", "identifier"):
            k = self.text(key)
        elif key.type == "string":
            k = self.string(key)
        elif key.type == "number":
            from crush.jsops import num_str  # noqa: PLC0415 - the VM's module, only for number keys
            n = self.number(key)
            k = num_str(float(n))
        else:
            raise self.fail(key, "unsupported computed property name")
        value = self.field(node, "value")
        if value.type in ("arrow_function", "function_expression", "function"):
            return [["std.str", k], self.function(value, k)]
        return [["std.str", k], self.expr(value)]

    def binary(self, node: Node) -> CastNode:
        op = self.text(self.field(node, "operator"))
        left, right = self.field(node, "left"), self.field(node, "right")
        if op in ("&&", "||", "??"):
            tmp = self.temp("v")
            a = ["std.var", tmp]
            test = ["std.op", "js.truth", a] if op != "??" else \
                ["std.cond", ["std.op", "js.seq", a, ["std.none"]], ["std.bool", False],
                 ["std.op", "js.sne", a, ["std.builtin", "js.null"]]]
            b = self.expr(right)
            chosen = ["std.cond", test, b, a] if op == "&&" else ["std.cond", test, a, b]
            fn = ["std.fn", None, [[tmp, None]], ["std.return", chosen]]
            return self.at(node, ["std.call", fn, [self.expr(left)]])
        if op in ("==", "!="):
            raise self.fail(node, f"unsupported loose equality {op} (use {op}=)")
        if op not in _BINARY:
            raise self.fail(node, f"unsupported operator {op}")
        return self.at(node, ["std.op", f"js.{_BINARY[op]}", self.expr(left), self.expr(right)])

    def member(self, node: Node) -> CastNode:
        obj = self.field(node, "object")
        prop = self.field(node, "property")
        if prop.type != "property_identifier":
            raise self.fail(prop, "unsupported private field")
        key = (self.text(obj), self.text(prop))
        if obj.type == "identifier" and key[0] not in self.declared:
            if key in _CONSTANTS:
                return ["std.float", _CONSTANTS[key]]
            if key in _STATIC:
                raise self.fail(node, f"unsupported use of {key[0]}.{key[1]} as a value (call it)")
            if key[0] in _NAMESPACES:
                raise self.fail(node, f"unsupported {key[0]}.{key[1]}{_forms(key[0])}")
        return self.at(node, ["std.op", "js.get", self.expr(obj), ["std.str", self.text(prop)]])

    def args(self, node: Node) -> list[CastNode]:
        return [self.expr(a) for a in named(node)]

    def call(self, node: Node) -> CastNode:
        fn = self.field(node, "function")
        args_node = self.field(node, "arguments")
        if args_node.type == "template_string":
            raise self.fail(node, "unsupported tagged template")
        args = self.args(args_node)
        if fn.type == "member_expression":
            obj, prop = self.field(fn, "object"), self.field(fn, "property")
            key = (self.text(obj), self.text(prop))
            if obj.type == "identifier" and key[0] not in self.declared and key in _STATIC:
                if key == ("JSON", "stringify") and len(args) != 1:
                    raise self.fail(node, "unsupported JSON.stringify with a replacer or an indentation")
                return self.at(node, ["std.op", f"js.{key[0]}.{key[1]}", *args])
            if obj.type == "identifier" and key[0] not in self.declared and key[0] in _NAMESPACES:
                raise self.fail(fn, f"unsupported {key[0]}.{key[1]}(){_forms(key[0])}")
            name = self.text(prop)
            cap = self.text(fn)[4:]
            if self.text(fn).startswith("exo.") and "exo" not in self.declared:
                if cap not in CAP_ARITY:
                    raise self.fail(fn, f"unsupported capability exo.{cap}() (the capabilities: "
                                        f"{', '.join(f'exo.{c}()' for c in sorted(CAP_ARITY))})")
                low, high = CAP_ARITY[cap]
                if not low <= len(args) <= high:
                    raise self.fail(node, f"exo.{cap}() takes {low}..{high} arguments ({len(args)} given)")
                return self.at(node, ["std.cap", cap, *args])
            if name in _OTHER_METHODS or (name == "toString" and args):
                what = "toString with a radix" if name == "toString" else f"method {name}"
                raise self.fail(prop, f"unsupported {what} (no value of the subset has it)")
            target = self.expr(obj)
            if name in _CALLBACK_METHODS and (name != "sort" or args):
                helper = f"{_HIDDEN}{name}"
                if name == "reduce":
                    if len(args) not in (1, 2):
                        raise self.fail(node, "unsupported reduce arity")
                    helper += "1" if len(args) == 1 else ""
                self.used_helpers.add(helper)
                return self.at(node, ["std.call", ["std.var", helper], [target, *args]])
            if name == "sort":
                self.used_helpers.add(f"{_HIDDEN}sort")
                return self.at(node, ["std.call", ["std.var", f"{_HIDDEN}sort"], [target, ["std.none"]]])
            return self.at(node, ["std.op", "js.method", target, ["std.str", name], *args])
        if fn.type == "identifier":
            name = self.text(fn)
            if name not in self.declared and (name in _GLOBAL_FUNCS or name in _ERRORS or name == "Array"):
                if name == "Array":
                    self._array_length(node, args)
                return self.at(node, ["std.op", f"js.{name}", *args])
        return self.at(node, ["std.call", self.expr(fn), args])

    def _array_length(self, node: Node, args: list[CastNode]) -> None:
        """`Array(n)` / `new Array(n)` makes n holes, which console.log, map, forEach, indexOf, ...
        treat otherwise than undefined: only `new Array(n).fill(v)` is in the subset (every hole filled
        at once: no start or end), and `Array(a, b, ...)` with two or more elements."""
        if len(args) != 1:
            return
        member, call = node.parent, node.parent.parent if node.parent is not None else None
        if member is None or call is None or member.type != "member_expression" or call.type != "call_expression" \
                or self.text(self.field(member, "property")) != "fill" or len(named(self.field(call, "arguments"))) > 1:
            raise self.fail(node, "unsupported Array(n) without .fill(value) (JavaScript's array holes)")

    def function(self, node: Node, name: str | None, declare: bool = False) -> CastNode:
        if self.text(node).startswith("async"):
            raise self.fail(node, "unsupported async function")
        params_node = node.child_by_field_name("parameters")
        params: list[str] = []
        defaults: list[CastNode] = []
        if params_node is None:
            single = node.child_by_field_name("parameter")
            if single is not None:
                params.append(self.ident(single))
        else:
            for p in named(params_node):
                if p.type == "identifier":
                    params.append(self.ident(p))
                elif p.type == "assignment_pattern" and self.field(p, "left").type == "identifier":
                    pname = self.ident(self.field(p, "left"))
                    params.append(pname)
                    defaults.append(["std.if", ["std.op", "js.seq", ["std.var", pname], ["std.none"]],
                                     ["std.set", ["std.var", pname], self.expr(self.field(p, "right"))]])
                else:
                    raise self.fail(p, f"unsupported parameter ({_UNSUPPORTED.get(p.type, p.type)})")
        own = node.child_by_field_name("name")
        if own is not None and not declare:  # a named function expression: its name is bound inside it
            inner = self.ident(own)
            fn = self.function_body(node, inner, params, defaults)
            return self.at(node, ["std.call", ["std.fn", None, [], ["std.seq", ["std.let", inner, fn],
                                                                    ["std.return", ["std.var", inner]]]], []])
        fn = self.function_body(node, name, params, defaults)
        return ["std.let", name, fn] if declare and name is not None else fn

    def function_body(self, node: Node, name: str | None, params: list[str], defaults: list[CastNode]) -> CastNode:
        if len(set(params)) != len(params):
            raise self.fail(node, "unsupported duplicate parameter names")
        body_node = self.field(node, "body")
        with self.scope(dict.fromkeys(params, "let")):
            if body_node.type == "statement_block":
                body = ["std.seq", *defaults, *self.statements(named(body_node))]
            else:
                body = ["std.seq", *defaults, self.at(body_node, ["std.return", self.expr(body_node)])]
        all_params = [[p, ["std.none"]] for p in params] + [[f"$arg{i}", ["std.none"]] for i in range(EXTRA_PARAMS)]
        return self.at(node, ["std.fn", name, all_params, body])

    def ident(self, node: Node | None) -> str:
        if node is None or node.type not in ("identifier", "shorthand_property_identifier"):
            raise self.fail(node, f"unsupported binding ({_UNSUPPORTED.get(node.type, node.type)})") \
                if node is not None else WalkError(self.file, 1, 1, "unsupported binding")
        name = self.text(node)
        if name.startswith(_HIDDEN) and not self.hidden:
            raise self.fail(node, f"unsupported name {name!r} (names starting with {_HIDDEN} are reserved)")
        if name in ("arguments", "eval"):
            raise self.fail(node, f"unsupported {name}")
        return name
