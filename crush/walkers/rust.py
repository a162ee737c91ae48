"""The Rust walker: Rust source -> a CAST document (crush/cast.py), or one WalkError.

`walk_bytes(data, filename)` parses with tree-sitter-rust and lowers the subset documented in
docs/crush.md ("Rust"). Rust's meaning is kept by a small static type pass done while lowering:
every expression has a type (`i8`..`i128`, `u8`..`u128`, `isize`, `usize`, `f64`, `bool`, `String`
for String and &str, `Vec<T>`, a struct, a unit-only enum, `()`), and every operator whose meaning
depends on it is the typed operation of that type (`["std.op", "rs.add.i32", a, b]`, crush/rsops.py:
a debug build's overflow panic). An integer literal without a suffix takes the type its context
gives it (the annotated `let`, the other operand, the parameter, the field); a variable bound to
such a literal with no annotation keeps "integer of inferred type" and takes each operation's
other operand's type, i32 when neither says (rustc infers one type per variable from all its
uses; the two differ only when such a variable's arithmetic overflows i32 but not its inferred
type, a documented difference).

- Items: `fn`, `struct` (named fields), `enum` (unit variants), `impl` blocks (associated
  functions and `&self`/`&mut self` methods: the global functions `Type::name`), `#[derive]`
  (Debug, Clone, PartialEq, ... are accepted; `Copy` on a struct is refused, since struct values
  are shared references in CRUSH and only moves keep that unobservable). `main()` runs at the end.
- Capabilities: `exo::fs::read(path)`, `exo::log(text)`, `exo::clock()`, ... are `std.cap`.
- Blocks are expressions: a block, `if`, `match` or `loop` whose value is used is lowered with a
  destination (a `let` variable, an assignment, the function's return), so `break value` and
  statements inside work; in any other expression position only arms that are plain expressions
  are accepted (`std.cond`).
- Refused with their position: closures, traits, generics, lifetimes, tuples, arrays (use vec!),
  chars, references to integers that are written through (`&mut i64`), `Option`/`Result` (but
  `v.pop().unwrap()` and `s.parse::<T>().unwrap()`), slices, pattern bindings other than names,
  `unsafe`, modules and `use`, shadowing a name in the same block with another type is allowed
  (it is a new `let`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import tree_sitter
import tree_sitter_rust

from crush.rsops import BITS, INT_TYPES, bounds
from crush.walkers import WalkError
from crush.walkers.treesitter import Base, CastNode, Node, named, parse, without_bom

__all__ = ["WalkError", "walk", "walk_bytes"]

# char::is_whitespace (Unicode White_Space), what str::trim removes; Python's strip() also removes
# \x1c-\x1f, which are not White_Space
RUST_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009" \
             "\u200a\u2028\u2029\u202f\u205f\u3000"
_LANGUAGE = tree_sitter.Language(tree_sitter_rust.language())
INT = "{integer}"  # an integer literal's type before its context decides
UNIT = "()"
NEVER = "!"

_ARITH = {"+": "add", "-": "sub", "*": "mul", "/": "div", "%": "rem", "<<": "shl", ">>": "shr", "&": "bitand",
          "|": "bitor", "^": "bitxor"}
_COMPARE = {"==": "py.eq", "!=": "py.ne", "<": "py.lt", "<=": "py.le", ">": "py.gt", ">=": "py.ge"}
_UNSUPPORTED = {
    "closure_expression": "closure", "trait_item": "trait", "impl_item_trait": "trait impl", "tuple_expression":
    "tuple", "array_expression": "array (use vec!)", "char_literal": "char", "unsafe_block": "unsafe",
    "mod_item": "module", "use_declaration": "use", "static_item": "static", "type_item": "type alias",
    "union_item": "union", "macro_definition": "macro_rules!", "async_block": "async", "await_expression": "await",
    "try_expression": "? operator", "tuple_pattern": "tuple pattern", "struct_pattern": "struct pattern",
    "tuple_struct_pattern": "enum payload", "slice_pattern": "slice pattern", "ref_pattern": "ref pattern",
    "raw_string_literal": "raw string", "lifetime": "lifetime", "generic_function": "generic call",
    "const_item": "const item", "extern_crate_declaration": "extern crate", "foreign_mod_item": "extern block",
    "label": "loop label", "let_chain": "let chain", "let_condition": "if let", "unit_expression": "() value",
    "associated_type": "associated type", "yield_expression": "yield",
}
# the capabilities a Rust module may call as exo::NAME(...): parameter types, result type
_CAPABILITY_TYPES: dict[str, tuple[list[str], str]] = {
    "fs.read": (["String"], "String"), "fs.list": (["String"], "Vec<String>"),
    "fs.write": (["String", "String"], "i64"),
    "log": (["String"], UNIT), "clock": ([], "f64"), "sleep": (["f64"], UNIT), "yield": ([], UNIT),
    "random": ([], "f64"),
}
_FMT_MACROS = ("println", "print", "format", "panic", "eprintln", "eprint")
_INT_SUFFIX = re.compile(r"^(.*?)(i8|i16|i32|i64|i128|isize|u8|u16|u32|u64|u128|usize|f64|f32)?$")


def walk_bytes(data: bytes, filename: str) -> dict[str, Any]:
    return _Walker(without_bom(data), filename).document()


def walk(source: str, filename: str) -> dict[str, Any]:
    return walk_bytes(source.encode("utf-8", "surrogatepass"), filename)


@dataclass
class _Fn:
    params: list[str]   # parameter types (self first for a method)
    ret: str
    method: bool = False


@dataclass
class _Struct:
    fields: list[tuple[str, str]]


@dataclass
class _Loop:
    dest: str | None     # the variable `break value` assigns, for a `loop` whose value is used
    typ: list[str] = field(default_factory=list)


def is_int(t: str) -> bool:
    return t in BITS or t == INT


class _Walker(Base):
    def __init__(self, data: bytes, filename: str) -> None:
        super().__init__(data, filename)
        self.fns: dict[str, _Fn] = {}
        self.structs: dict[str, _Struct] = {}
        self.enums: dict[str, list[str]] = {}
        self.scopes: list[dict[str, str]] = []
        self.loops: list[_Loop] = []
        self.ret: str = UNIT
        self.counter = 0

    def temp(self, what: str) -> str:
        self.counter += 1
        return f"${what}{self.counter}"

    # --- items --------------------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        root = parse(self.data, _LANGUAGE, self.file)
        items = named(root)
        fns: list[tuple[str, Node, str | None]] = []
        for item in items:
            self.declare(item, fns)
        if "main" in self.fns and self.fns["main"].params:
            raise WalkError(self.file, 1, 1, "unsupported fn main with parameters")
        body: CastNode = ["std.seq"]
        for name, node, self_type in fns:
            body.append(self.at(node, ["std.let", name, self.function(node, name, self_type)]))
        if "main" in self.fns:  # a module without main is a library (crush link)
            body.append(["std.expr", ["std.call", ["std.var", "main"], []]])
        return self.finish("rust", body)

    def declare(self, item: Node, fns: list[tuple[str, Node, str | None]]) -> None:
        t = item.type
        if t == "attribute_item":
            text = self.text(item)
            if not re.fullmatch(r"#\[derive\([A-Za-z, ]*\)\]", text) and not text.startswith("#[allow("):
                raise self.fail(item, "unsupported attribute")
            return
        if t == "function_item":
            name = self.ident(self.field(item, "name"))
            self.signature(item, name, None)
            fns.append((name, item, None))
        elif t == "struct_item":
            name = self.text(self.field(item, "name"))
            body = item.child_by_field_name("body")
            if body is None or body.type != "field_declaration_list":
                raise self.fail(item, "unsupported struct without named fields")
            prev = item.prev_named_sibling
            if prev is not None and prev.type == "attribute_item" and re.search(r"\bCopy\b", self.text(prev)):
                raise self.fail(prev, "unsupported Copy struct (structs are moved or cloned in this subset)")
            self.structs[name] = _Struct([(self.text(self.field(f, "name")), self.type_of(self.field(f, "type")))
                                          for f in named(body)])
        elif t == "enum_item":
            name = self.text(self.field(item, "name"))
            variants = []
            for v in named(self.field(item, "body")):
                if v.type != "enum_variant" or v.child_by_field_name("body") or v.child_by_field_name("value"):
                    raise self.fail(v, "unsupported enum variant with a payload or value")
                variants.append(self.text(self.field(v, "name")))
            self.enums[name] = variants
        elif t == "impl_item":
            if item.child_by_field_name("trait") is not None:
                raise self.fail(item, "unsupported trait impl")
            self_type = self.text(self.field(item, "type"))
            if self_type not in self.structs and self_type not in self.enums:
                raise self.fail(item, f"unsupported impl for {self_type}")
            for fn in named(self.field(item, "body")):
                if fn.type != "function_item":
                    raise self.fail(fn, f"unsupported impl member ({fn.type})")
                name = f"{self_type}::{self.ident(self.field(fn, 'name'))}"
                self.signature(fn, name, self_type)
                fns.append((name, fn, self_type))
        elif t in ("line_comment", "block_comment"):
            return
        else:
            raise self.fail(item, f"unsupported item ({_UNSUPPORTED.get(t, t)})")

    def signature(self, fn: Node, name: str, self_type: str | None) -> None:
        if fn.child_by_field_name("type_parameters") is not None:
            raise self.fail(fn, "unsupported generic function")
        params: list[str] = []
        method = False
        for p in named(self.field(fn, "parameters")):
            if p.type == "self_parameter":
                if self_type is None:
                    raise self.fail(p, "unsupported self outside impl")
                method = True
                params.append(self_type)
            elif p.type == "parameter":
                ptype = self.field(p, "type")
                if ptype.type == "reference_type" and "mut" in self.text(ptype) and \
                        self.type_of(ptype) in (*INT_TYPES, "f64", "bool", "String"):
                    raise self.fail(ptype, "unsupported &mut of a scalar or String (write through a reference)")
                params.append(self.type_of(ptype))
            else:
                raise self.fail(p, f"unsupported parameter ({p.type})")
        ret = fn.child_by_field_name("return_type")
        self.fns[name] = _Fn(params, self.type_of(ret) if ret is not None else UNIT, method)

    def function(self, fn: Node, name: str, self_type: str | None) -> CastNode:
        sig = self.fns[name]
        names: list[str] = []
        scope: dict[str, str] = {}
        for p, ptype in zip(named(self.field(fn, "parameters")), sig.params, strict=True):
            pname = "self" if p.type == "self_parameter" else self.ident(self.field(p, "pattern"))
            names.append(pname)
            scope[pname] = ptype
        self.scopes = [scope]
        self.ret = sig.ret
        body = self.block(self.field(fn, "body"), "return" if sig.ret != UNIT else None, sig.ret)
        return ["std.fn", name, [[n, None] for n in names], body]

    # --- types --------------------------------------------------------------------------------

    def type_of(self, node: Node) -> str:
        with self.enter(node):
            return self._type_of(node)

    def _type_of(self, node: Node) -> str:
        t = node.type
        text = self.text(node)
        if t == "primitive_type":
            if text in BITS or text in ("f64", "bool"):
                return text
            if text == "str":
                return "String"
            raise self.fail(node, f"unsupported type {text}")
        if t == "reference_type":
            inner = self.field(node, "type")
            if node.child_by_field_name("lifetime") is not None:
                raise self.fail(node, "unsupported lifetime")
            return self.type_of(inner)
        if t == "type_identifier":
            if text == "String" or text in self.structs or text in self.enums or text == "Self":
                return text
            raise self.fail(node, f"unsupported type {text}")
        if t == "generic_type" and self.text(self.field(node, "type")) == "Vec":
            args = named(self.field(node, "type_arguments"))
            if len(args) == 1:
                return f"Vec<{self.type_of(args[0])}>"
        if t == "unit_type":
            return UNIT
        raise self.fail(node, f"unsupported type {text[:40]}")

    def lookup(self, node: Node, name: str) -> str:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        raise self.fail(node, f"cannot find value `{name}` in this scope")

    def unify(self, node: Node, a: str, b: str) -> str:
        if b in (a, NEVER):
            return a
        if a == NEVER:
            return b
        if a == INT and b in BITS:
            return b
        if b == INT and a in BITS:
            return a
        if {a, b} == {"Self"} | ({a, b} - {"Self"}):
            return a if a != "Self" else b
        if a.startswith("Vec<") and b.startswith("Vec<"):
            ea, eb = a[4:-1], b[4:-1]
            if ea == "?" or eb == "?":
                return b if ea == "?" else a
            return f"Vec<{self.unify(node, ea, eb)}>"
        raise self.fail(node, f"mismatched types: {a} and {b}")

    # --- statements ---------------------------------------------------------------------------

    def block(self, node: Node, dest: str | None, expect: str | None) -> CastNode:
        """A `{...}` block as a statement; its tail expression goes to `dest` (see `into`), and
        `self.last_type` is left as the block's type."""
        with self.enter(node):
            self.scopes.append({})
            try:
                out: CastNode = ["std.block"]
                children = [c for c in named(node) if c.type not in ("line_comment", "block_comment")]
                tail = UNIT
                for i, child in enumerate(children):
                    last = i == len(children) - 1
                    t = child.type
                    if t == "let_declaration":
                        out.extend(self.let(child))
                        tail = UNIT
                    elif t == "expression_statement":
                        inner = named(child)[0]
                        if last and not self.text(child).endswith(";"):
                            stmt, tail = self.into(inner, dest, expect)
                        else:
                            stmt, tail = self.into(inner, None, None)
                            tail = NEVER if tail == NEVER else UNIT
                        out.append(stmt)
                    elif t in _UNSUPPORTED or t.endswith("_item"):
                        raise self.fail(child, f"unsupported {_UNSUPPORTED.get(t, 'nested item')}")
                    else:  # the tail expression
                        stmt, tail = self.into(child, dest, expect)
                        out.append(stmt)
                self.last_type = tail
                return out
            finally:
                self.scopes.pop()

    def let(self, node: Node) -> Iterator[CastNode]:
        pattern = self.field(node, "pattern")
        if pattern.type != "identifier":
            raise self.fail(pattern, f"unsupported pattern ({_UNSUPPORTED.get(pattern.type, pattern.type)})")
        name = self.ident(pattern)
        ann = node.child_by_field_name("type")
        declared = self.type_of(ann) if ann is not None else None
        value = node.child_by_field_name("value")
        if node.child_by_field_name("alternative") is not None:
            raise self.fail(node, "unsupported let-else")
        if value is None:
            if declared is None:
                raise self.fail(node, "unsupported let without a type or a value")
            self.scopes[-1][name] = declared
            yield self.at(node, ["std.let", name])
            return
        if self.block_like(value):
            stmt, vt = self.into(value, name, declared)
            typ = self.unify(value, declared, vt) if declared else vt
            yield self.at(node, ["std.let", name])
            yield stmt
        else:
            cast, vt = self.expr(value, declared)
            typ = self.unify(value, declared, vt) if declared else vt
            yield self.at(node, ["std.let", name, cast])
        self.scopes[-1][name] = typ

    @staticmethod
    def block_like(node: Node) -> bool:
        return node.type in ("block", "if_expression", "match_expression", "loop_expression")

    def into(self, node: Node, dest: str | None, expect: str | None) -> tuple[CastNode, str]:
        """`node` as a statement whose value goes to `dest`: None (dropped), "return" (the
        function's value) or a variable's name."""
        with self.enter(node):
            return self._into(node, dest, expect)

    def _into(self, node: Node, dest: str | None, expect: str | None) -> tuple[CastNode, str]:
        t = node.type
        if t == "block":
            stmt = self.block(node, dest, expect)
            return stmt, self.last_type
        if t == "if_expression":
            cond = self.condition(self.field(node, "condition"))
            then = self.block(self.field(node, "consequence"), dest, expect)
            then_type = self.last_type
            alt = node.child_by_field_name("alternative")
            if alt is None:
                return self.at(node, ["std.if", cond, then]), UNIT
            other, other_type = self.into(named(alt)[0], dest, expect or (then_type if then_type != NEVER else None))
            return self.at(node, ["std.if", cond, then, other]), self.unify(node, then_type, other_type)
        if t == "match_expression":
            return self.match(node, dest, expect)
        if t == "loop_expression":
            loop = _Loop(dest if dest != "return" else self.temp("loop"))
            self.loops.append(loop)
            try:
                body = self.block(self.field(node, "body"), None, None)
            finally:
                self.loops.pop()
            typ = loop.typ[0] if loop.typ else NEVER
            stmt = self.at(node, ["std.while", ["std.bool", True], body])
            if dest == "return" and loop.typ:
                return ["std.seq", ["std.let", loop.dest], stmt, ["std.return", ["std.var", loop.dest]]], typ
            return stmt, typ
        if t == "while_expression":
            self.loops.append(_Loop(None))
            try:
                stmt = self.at(node, ["std.while", self.condition(self.field(node, "condition")),
                                      self.block(self.field(node, "body"), None, None)])
            finally:
                self.loops.pop()
            self.last_type = UNIT
            return stmt, UNIT
        if t == "for_expression":
            return self.for_loop(node), UNIT
        if t == "return_expression":
            values = named(node)
            if not values:
                return self.at(node, ["std.return", ["std.none"]]), NEVER
            value, vt = self.expr(values[0], self.ret)
            self.unify(node, self.ret, vt)
            return self.at(node, ["std.return", value]), NEVER
        if t == "break_expression":
            if not self.loops:
                raise self.fail(node, "break outside of a loop")
            values = named(node)
            loop = self.loops[-1]
            if values:
                if loop.dest is None:
                    raise self.fail(node, "unsupported break with a value here")
                value, vt = self.expr(values[0], loop.typ[0] if loop.typ else None)
                loop.typ.append(vt)
                return ["std.seq", ["std.set", ["std.var", loop.dest], value], ["std.break"]], NEVER
            return ["std.break"], NEVER
        if t == "continue_expression":
            if named(node):
                raise self.fail(node, "unsupported loop label")
            return ["std.continue"], NEVER
        if t == "assignment_expression":
            return self.assign(node), UNIT
        if t == "call_expression" and self.field(node, "function").type == "field_expression" and \
                self.text(self.field(self.field(node, "function"), "field")) == "push_str":
            return self.push_str(node), UNIT
        if t == "compound_assignment_expr":
            return self.compound(node), UNIT
        if t == "macro_invocation" and self.text(self.field(node, "macro")) in ("println", "print", "panic",
                                                                               "assert", "assert_eq", "eprintln"):
            kind = NEVER if self.text(self.field(node, "macro")) == "panic" else UNIT
            return self.at(node, self.macro_statement(node)), kind
        value, vt = self.expr(node, expect)
        if dest is None:
            return self.at(node, ["std.expr", value]), vt
        if dest == "return":
            self.unify(node, self.ret, vt)
            return self.at(node, ["std.return", value]), vt
        return self.at(node, ["std.set", ["std.var", dest], value]), vt

    last_type: str = UNIT

    def condition(self, node: Node) -> CastNode:
        cast, t = self.expr(node, "bool")
        if t != "bool":
            raise self.fail(node, f"mismatched types: expected bool, found {t}")
        return cast

    def match(self, node: Node, dest: str | None, expect: str | None) -> tuple[CastNode, str]:
        value, vt = self.expr(self.field(node, "value"), None)
        tmp = self.temp("match")
        arms = [a for a in named(self.field(node, "body")) if a.type == "match_arm"]
        typ: str | None = None
        chain: CastNode | None = None
        for arm in reversed(arms):
            pattern = self.field(arm, "pattern")
            self.scopes.append({})
            try:
                test, binding = self.pattern(pattern, tmp, vt)
                guard = pattern.child_by_field_name("condition")
                body_node = self.field(arm, "value")
                if guard is not None:
                    g = self.condition(guard)
                    if binding is not None:  # the guard sees the arm's binding: evaluated in a function of it
                        g = ["std.call", ["std.fn", None, [[binding, None]], ["std.return", g]], [["std.var", tmp]]]
                    test = g if test is None else ["std.cond", test, g, ["std.bool", False]]
                stmt, at = self.into(body_node, dest, expect or typ)
            finally:
                self.scopes.pop()
            if binding is not None:
                stmt = ["std.block", ["std.let", binding, ["std.var", tmp]], stmt]
            typ = at if typ is None else self.unify(arm, at, typ)
            if test is None:
                chain = stmt
            else:
                chain = ["std.if", test, stmt, *([chain] if chain is not None else
                                                [self.unreachable(node)])]
        self.last_type = typ or UNIT
        return ["std.block", ["std.let", tmp, value], self.at(node, chain or ["std.pass"])], typ or UNIT

    def unreachable(self, node: Node) -> CastNode:
        return self.at(node, ["std.raise", ["std.op", "rs.panic", ["std.str", "non-exhaustive match"]]])

    def pattern(self, node: Node, tmp: str, vt: str) -> tuple[CastNode | None, str | None]:
        with self.enter(node):
            return self._pattern(node, tmp, vt)

    def _pattern(self, node: Node, tmp: str, vt: str) -> tuple[CastNode | None, str | None]:
        """(test or None for "always", the name the arm binds or None)."""
        kids = [c for c in named(node) if c != node.child_by_field_name("condition")]
        p = kids[0] if node.type == "match_pattern" and kids else node
        if node.type == "match_pattern" and not kids and self.text(node).startswith("_"):
            return None, None
        t = p.type
        if t == "or_pattern":
            tests = [self.pattern(c, tmp, vt)[0] for c in named(p)]
            out: CastNode = ["std.bool", False]
            for test in reversed(tests):
                if test is None:
                    return None, None
                out = ["std.cond", test, ["std.bool", True], out] if out != ["std.bool", False] else test
            return out, None
        if t == "identifier":
            name = self.text(p)
            if name == "_":
                return None, None
            self.scopes[-1][name] = vt
            return None, name
        if t in ("integer_literal", "negative_literal", "string_literal", "boolean_literal", "float_literal"):
            lit, lt = self.expr(p, vt)
            self.unify(p, vt, lt)
            return ["py.eq", ["std.var", tmp], lit], None
        if t == "range_pattern":
            lo, hi = p.child_by_field_name("left"), p.child_by_field_name("right")
            if lo is None or hi is None or "..=" not in self.text(p):
                raise self.fail(p, "unsupported range pattern (use a..=b)")
            a, _ = self.expr(lo, vt)
            b, _ = self.expr(hi, vt)
            return ["std.cond", ["py.ge", ["std.var", tmp], a], ["py.le", ["std.var", tmp], b],
                    ["std.bool", False]], None
        if t in ("scoped_identifier", "scoped_type_identifier"):
            value, et = self.expr(p, vt)
            self.unify(p, vt, et)
            return ["py.eq", ["std.var", tmp], value], None
        raise self.fail(p, f"unsupported pattern ({_UNSUPPORTED.get(t, t)})")

    def for_loop(self, node: Node) -> CastNode:
        pattern = self.field(node, "pattern")
        if self.text(pattern) == "_":
            name = self.temp("_")
        elif pattern.type != "identifier":
            raise self.fail(pattern, f"unsupported pattern ({_UNSUPPORTED.get(pattern.type, pattern.type)})")
        else:
            name = self.ident(pattern)
        iterable, item = self.iterable(self.field(node, "value"))
        self.loops.append(_Loop(None))
        self.scopes.append({name: item})
        try:
            body = self.block(self.field(node, "body"), None, None)
        finally:
            self.scopes.pop()
            self.loops.pop()
        self.last_type = UNIT
        return ["std.block", ["std.let", name], self.at(node, ["std.for", ["std.var", name], iterable, body])]

    def iterable(self, node: Node) -> tuple[CastNode, str]:
        with self.enter(node):
            return self._iterable(node)

    def _iterable(self, node: Node) -> tuple[CastNode, str]:
        t = node.type
        if t == "parenthesized_expression":
            return self.iterable(named(node)[0])
        if t == "range_expression":
            parts = named(node)
            if len(parts) != 2:
                raise self.fail(node, "unsupported open range")
            (a, at), (b, bt) = self.expr(parts[0], None), self.expr(parts[1], None)
            typ = self.unify(node, at, bt)
            if not is_int(typ):
                raise self.fail(node, f"unsupported range of {typ}")
            if "..=" in self.text(node):
                b = ["py.add", b, ["std.int", "1"]]
            return ["py.call", ["std.builtin", "py.range"], [a, b], []], typ
        if t == "call_expression":
            fn = self.field(node, "function")
            if fn.type == "field_expression":
                method = self.text(self.field(fn, "field"))
                inner = self.field(fn, "value")
                if method == "rev":
                    it, typ = self.iterable(inner)
                    return ["py.call", ["std.builtin", "py.reversed"], [it], []], typ
                if method == "step_by" and inner.type in ("parenthesized_expression", "range_expression"):
                    it, typ = self.iterable(inner)
                    step, _ = self.expr(named(self.field(node, "arguments"))[0], "usize")
                    if it[0] != "py.call" or it[1] != ["std.builtin", "py.range"]:
                        raise self.fail(node, "unsupported step_by")
                    check = ["std.op", "rs.unwrap", ["std.cond", ["py.gt", step, ["std.int", "0"]], step, ["std.none"]]]
                    return ["py.call", ["std.builtin", "py.range"], [*it[2], check], []], typ
                if method in ("iter", "into_iter"):
                    value, vt = self.expr(inner, None)
                    if not vt.startswith("Vec<"):
                        raise self.fail(node, f"unsupported iteration over {vt}")
                    return ["py.call", ["std.builtin", "py.list"], [value], []], vt[4:-1]
        value, vt = self.expr(node, None)
        if vt.startswith("Vec<"):
            return ["py.call", ["std.builtin", "py.list"], [value], []], vt[4:-1]
        raise self.fail(node, f"unsupported iteration over {vt}")

    def assign(self, node: Node) -> CastNode:
        left = self.field(node, "left")
        target, tt = self.place(left)
        value, vt = self.expr(self.field(node, "right"), tt)
        self.unify(node, tt, vt)
        return self.at(node, self.store(target, value))

    def compound(self, node: Node) -> CastNode:
        left = self.field(node, "left")
        op = self.text(self.field(node, "operator"))[:-1]
        target, tt = self.place(left)
        current, _ = self.expr(left, tt)
        value, vt = self.expr(self.field(node, "right"), tt if op not in ("<<", ">>") else None)
        combined = self.arith(node, op, (current, tt), (value, vt))[0]
        return self.at(node, self.store(target, combined))

    @staticmethod
    def store(target: CastNode, value: CastNode) -> CastNode:
        if target[0] == "rs.index":
            return ["std.expr", ["std.op", "rs.set_index", target[1], target[2], value]]
        return ["std.set", target, value]

    def place(self, node: Node) -> tuple[CastNode, str]:
        with self.enter(node):
            return self._place(node)

    def _place(self, node: Node) -> tuple[CastNode, str]:
        t = node.type
        if t == "identifier":
            name = self.text(node)
            return ["std.var", name], self.lookup(node, name)
        if t == "field_expression":
            obj, ot = self.expr(self.field(node, "value"), None)
            fname = self.text(self.field(node, "field"))
            return ["py.index", obj, ["std.str", fname]], self.field_type(node, ot, fname)
        if t == "index_expression":
            seq_node, idx_node = named(node)
            seq, st = self.expr(seq_node, None)
            idx, it = self.expr(idx_node, "usize")
            if not st.startswith("Vec<") or self.unify(idx_node, "usize", it) != "usize":
                raise self.fail(node, f"unsupported indexing of {st}")
            return ["rs.index", seq, idx], st[4:-1]
        if t == "unary_expression" and self.text(node).startswith("*"):
            return self.place(named(node)[0])
        raise self.fail(node, "unsupported assignment target")

    def field_type(self, node: Node, struct: str, name: str) -> str:
        s = self.structs.get(struct)
        if s is None:
            raise self.fail(node, f"no field `{name}` on type {struct}")
        for fname, ftype in s.fields:
            if fname == name:
                return ftype
        raise self.fail(node, f"no field `{name}` on type {struct}")

    # --- expressions --------------------------------------------------------------------------

    def expr(self, node: Node, expect: str | None) -> tuple[CastNode, str]:
        with self.enter(node):
            return self._expr(node, expect)

    def _expr(self, node: Node, expect: str | None) -> tuple[CastNode, str]:
        t = node.type
        if t in _UNSUPPORTED:
            raise self.fail(node, f"unsupported {_UNSUPPORTED[t]}")
        if t in ("integer_literal", "float_literal"):
            return self.number(node, expect, negative=False)
        if t == "negative_literal":
            return self.number(named(node)[0], expect, negative=True)
        if t == "string_literal":
            return ["std.str", self.string(node)], "String"
        if t == "boolean_literal":
            return ["std.bool", self.text(node) == "true"], "bool"
        if t == "identifier":
            name = self.text(node)
            return self.at(node, ["std.var", name]), self.lookup(node, name)
        if t == "self":
            return ["std.var", "self"], self.lookup(node, "self")
        if t == "parenthesized_expression":
            return self.expr(named(node)[0], expect)
        if t == "binary_expression":
            return self.binary(node, expect)
        if t == "unary_expression":
            return self.unary(node, expect)
        if t == "reference_expression":
            return self.expr(self.field(node, "value"), expect)
        if t == "type_cast_expression":
            value, vt = self.expr(self.field(node, "value"), None)
            to = self.type_of(self.field(node, "type"))
            if vt == INT:
                vt = "i32"
            if to not in (*INT_TYPES, "f64") or vt not in (*INT_TYPES, "f64", "bool"):
                raise self.fail(node, f"unsupported cast from {vt} to {to}")
            if vt == "bool":
                value = ["std.cond", value, ["std.int", "1"], ["std.int", "0"]]
            return self.at(node, ["std.op", f"rs.cast.{to}", value]), to
        if t == "field_expression":
            obj, ot = self.expr(self.field(node, "value"), None)
            fname = self.text(self.field(node, "field"))
            return self.at(node, ["py.index", obj, ["std.str", fname]]), self.field_type(node, ot, fname)
        if t == "index_expression":
            target, tt = self.place(node)
            return self.at(node, ["std.op", "rs.index", target[1], target[2]]), tt
        if t == "call_expression":
            return self.call(node, expect)
        if t == "macro_invocation":
            return self.macro_value(node, expect)
        if t == "struct_expression":
            return self.struct(node)
        if t in ("scoped_identifier",):
            path, name = self.text(self.field(node, "path")), self.text(self.field(node, "name"))
            if path in self.enums and name in self.enums[path]:
                return ["std.tuple", ["std.str", path], ["std.str", name]], path
            if path in INT_TYPES and name in ("MAX", "MIN"):
                lo, hi = bounds(path)
                return ["std.int", str(hi if name == "MAX" else lo)], path
            if path == "f64" and name in ("MAX", "MIN", "INFINITY", "NEG_INFINITY", "NAN", "EPSILON"):
                values = {"MAX": 1.7976931348623157e308, "MIN": -1.7976931348623157e308, "INFINITY": "inf",
                          "NEG_INFINITY": "-inf", "NAN": "nan", "EPSILON": 2.220446049250313e-16}
                return ["std.float", values[name]], "f64"
            raise self.fail(node, f"unsupported path {self.text(node)}")
        if self.block_like(node):
            return self.block_value(node, expect)
        raise self.fail(node, f"unsupported expression ({t})")

    def block_value(self, node: Node, expect: str | None) -> tuple[CastNode, str]:
        with self.enter(node):
            return self._block_value(node, expect)

    def _block_value(self, node: Node, expect: str | None) -> tuple[CastNode, str]:
        """An if/match/block in an expression position: plain-expression arms only."""
        if node.type == "block":
            kids = named(node)
            if len(kids) != 1 or kids[0].type in ("let_declaration", "expression_statement"):
                raise self.fail(node, "unsupported block expression here (bind it with let first)")
            return self.expr(kids[0], expect)
        if node.type == "if_expression":
            alt = node.child_by_field_name("alternative")
            if alt is None:
                raise self.fail(node, "unsupported if without else as a value")
            cond = self.condition(self.field(node, "condition"))
            a, at = self.block_value(self.field(node, "consequence"), expect)
            b, bt = self.block_value(named(alt)[0], expect or at)
            return self.at(node, ["std.cond", cond, a, b]), self.unify(node, at, bt)
        raise self.fail(node, f"unsupported {node.type.replace('_expression', '')} expression here "
                              "(bind it with let first)")

    def number(self, node: Node, expect: str | None, negative: bool) -> tuple[CastNode, str]:
        text = self.text(node).replace("_", "")
        m = _INT_SUFFIX.match(text)
        assert m is not None
        digits, suffix = m.group(1), m.group(2)
        if suffix == "f32":
            raise self.fail(node, "unsupported f32")
        is_float = node.type == "float_literal" or suffix == "f64" or (expect == "f64" and suffix is None)
        if is_float:
            if node.type == "integer_literal" and suffix != "f64":
                raise self.fail(node, "mismatched types: expected f64, found integer")
            try:
                value = float(digits) * (-1 if negative else 1)
            except ValueError:  # a suffix that is none (tree-sitter reads `3.99f4` as one float literal)
                raise self.fail(node, f"invalid float literal `{self.text(node)}`") from None
            return ["std.float", value if value not in (float("inf"), float("-inf")) else str(value)], "f64"
        try:
            value = int(digits, 0) if digits[:2].lower() in ("0x", "0o", "0b") else int(digits)
        except ValueError:
            raise self.fail(node, f"invalid integer literal `{self.text(node)}`") from None
        value = -value if negative else value
        typ = suffix or (expect if expect in BITS else INT)
        lo, hi = bounds(typ if typ != INT else "i128")
        if not lo <= value <= (hi if typ != INT else (1 << 128) - 1):
            raise self.fail(node, f"literal out of range for {typ}")
        return ["std.int", str(value)], typ

    def string(self, node: Node) -> str:
        raw = self.text(node)
        if not raw.startswith('"'):
            raise self.fail(node, "unsupported string literal prefix")
        body = raw[1:-1]

        def one(m: re.Match[str]) -> str:
            e = m.group(1)
            simple = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}
            if e in simple:
                return simple[e]
            if e.startswith("x"):
                return chr(int(e[1:], 16))
            if e.startswith("u{"):
                return chr(int(e[2:-1], 16))
            if e.startswith("\n"):
                return ""
            raise self.fail(node, f"unsupported escape \\{e}")
        return re.sub(r"\\(u\{[0-9a-fA-F]{1,6}\}|x[0-7][0-9a-fA-F]|\n[ \t\n]*|.)", one, body, flags=re.S)

    def binary(self, node: Node, expect: str | None) -> tuple[CastNode, str]:
        op = self.text(self.field(node, "operator"))
        ln, rn = self.field(node, "left"), self.field(node, "right")
        if op in ("&&", "||"):
            a, b = self.condition(ln), self.condition(rn)
            return self.at(node, ["py.and" if op == "&&" else "py.or", a, b]), "bool"
        if op in _COMPARE:
            a, at = self.expr(ln, None)
            b, bt = self.expr(rn, at if at != INT else None)
            if at == INT and bt in BITS:
                a, at = self.expr(ln, bt)
            typ = self.unify(node, at, bt)
            if op not in ("==", "!=") and not (is_int(typ) or typ in ("f64", "String", "bool")):
                raise self.fail(node, f"unsupported comparison of {typ}")
            return self.at(node, [_COMPARE[op], a, b]), "bool"
        if op not in _ARITH:
            raise self.fail(node, f"unsupported operator {op}")
        shift = op in ("<<", ">>")
        a, at = self.expr(ln, expect if expect and (is_int(expect) or expect == "f64") else None)
        b, bt = self.expr(rn, None if shift else (at if at != INT else expect))
        if at == INT and bt in BITS and not shift:
            a, at = self.expr(ln, bt)
        return self.arith(node, op, (a, at), (b, bt))

    def arith(self, node: Node, op: str, left: tuple[CastNode, str], right: tuple[CastNode, str]) \
            -> tuple[CastNode, str]:
        (a, at), (b, bt) = left, right
        if op in ("<<", ">>"):
            if not (is_int(at) and is_int(bt)):
                raise self.fail(node, f"unsupported shift of {at} by {bt}")
            typ = at if at != INT else "i32"
            return self.at(node, ["std.op", f"rs.{_ARITH[op]}.{typ}", a, b]), at
        typ = self.unify(node, at, bt)
        if typ == "String" and op == "+":
            return self.at(node, ["py.add", a, b]), "String"
        if typ == "f64":
            if op in ("+", "-", "*"):
                return self.at(node, [f"py.{_ARITH[op]}", a, b]), "f64"
            if op in ("/", "%"):
                return self.at(node, ["std.op", f"rs.{_ARITH[op]}.f64", a, b]), "f64"
        if typ == "bool" and op in ("&", "|", "^"):
            return self.at(node, [f"py.{_ARITH[op]}", a, b]), "bool"
        if not is_int(typ):
            raise self.fail(node, f"unsupported operator {op} on {typ}")
        concrete = typ if typ != INT else "i32"
        return self.at(node, ["std.op", f"rs.{_ARITH[op]}.{concrete}", a, b]), typ

    def unary(self, node: Node, expect: str | None) -> tuple[CastNode, str]:
        text = self.text(node)
        arg = named(node)[0]
        if text.startswith("*"):
            return self.expr(arg, expect)
        if text.startswith("-") and arg.type in ("integer_literal", "float_literal"):
            return self.number(arg, expect, negative=True)
        value, vt = self.expr(arg, expect)
        if text.startswith("!"):
            if vt == "bool":
                return self.at(node, ["py.not", value]), "bool"
            if is_int(vt):
                return self.at(node, ["std.op", f"rs.not.{vt if vt != INT else 'i32'}", value]), vt
        if text.startswith("-"):
            if vt == "f64":
                return self.at(node, ["py.neg", value]), "f64"
            if is_int(vt) and not vt.startswith("u"):
                return self.at(node, ["std.op", f"rs.neg.{vt if vt != INT else 'i32'}", value]), vt
        raise self.fail(node, f"unsupported unary operator on {vt}")

    def struct(self, node: Node) -> tuple[CastNode, str]:
        name = self.text(self.field(node, "name"))
        s = self.structs.get(name if name != "Self" else "")
        if s is None:
            s = self.structs.get(name)
        if s is None:
            raise self.fail(node, f"unsupported struct expression {name}")
        inits = named(self.field(node, "body"))
        names = []
        pairs: list[list[CastNode]] = [[["std.str", "$type"], ["std.str", name]]]
        for init, (fname, ftype) in zip(inits, s.fields, strict=False):
            if init.type == "shorthand_field_initializer":
                given = self.text(init)
                value, vt = self.expr(init, ftype) if False else (["std.var", given], self.lookup(init, given))
            elif init.type == "field_initializer":
                given = self.text(self.field(init, "field"))
                value, vt = self.expr(self.field(init, "value"), ftype)
            else:
                raise self.fail(init, "unsupported struct update syntax")
            if given != fname:
                raise self.fail(init, "unsupported field order (write the fields in declaration order)")
            self.unify(init, ftype, vt)
            names.append(given)
            pairs.append([["std.str", given], value])
        if len(names) != len(s.fields):
            raise self.fail(node, f"missing fields in {name}")
        return self.at(node, ["std.dict", *pairs]), name

    def args(self, node: Node, types: list[str]) -> list[CastNode]:
        given = named(node)
        if len(given) != len(types):
            raise self.fail(node, f"this function takes {len(types)} arguments but {len(given)} were supplied")
        out = []
        for a, t in zip(given, types, strict=True):
            value, vt = self.expr(a, t)
            self.unify(a, t, vt)
            out.append(value)
        return out

    def call(self, node: Node, expect: str | None) -> tuple[CastNode, str]:
        fn = self.field(node, "function")
        args_node = self.field(node, "arguments")
        if fn.type == "identifier":
            name = self.text(fn)
            sig = self.fns.get(name)
            if sig is None or sig.method:
                raise self.fail(fn, f"cannot find function `{name}`")
            return self.at(node, ["std.call", ["std.var", name], self.args(args_node, sig.params)]), sig.ret
        if fn.type == "scoped_identifier":
            path, name = self.text(self.field(fn, "path")), self.text(self.field(fn, "name"))
            if (path, name) in (("String", "new"), ("String", "from")):
                args = self.args(args_node, [] if name == "new" else ["String"])
                return (args[0] if args else ["std.str", ""]), "String"
            if (path, name) == ("Vec", "new"):
                self.args(args_node, [])
                return ["std.list"], expect if expect and expect.startswith("Vec<") else "Vec<?>"
            if path == "exo" or path.startswith("exo::"):
                return self.capability(node, path, name, args_node)
            sig = self.fns.get(f"{path}::{name}")
            if sig is None:
                raise self.fail(fn, f"unsupported function {path}::{name}")
            ret = sig.ret if sig.ret != "Self" else path
            return self.at(node, ["std.call", ["std.var", f"{path}::{name}"],
                                  self.args(args_node, sig.params)]), ret
        if fn.type == "field_expression":
            return self.method(node, fn, args_node, expect)
        raise self.fail(node, "unsupported call")

    def method(self, node: Node, fn: Node, args_node: Node, expect: str | None) -> tuple[CastNode, str]:
        name = self.text(self.field(fn, "field"))
        recv_node = self.field(fn, "value")
        if name == "unwrap" and recv_node.type == "call_expression":
            inner_fn = self.field(recv_node, "function")
            if inner_fn.type == "field_expression" and self.text(self.field(inner_fn, "field")) == "pop":
                seq, st = self.expr(self.field(inner_fn, "value"), None)
                return self.at(node, ["std.op", "rs.pop_unwrap", seq]), st[4:-1] if st.startswith("Vec<") else "?"
            if inner_fn.type == "generic_function":
                raise self.fail(node, "unsupported turbofish (annotate the let: let x: i64 = s.parse().unwrap())")
            if inner_fn.type == "field_expression" and self.text(self.field(inner_fn, "field")) == "parse":
                if expect not in BITS:
                    raise self.fail(node, "unsupported parse without an integer type annotation")
                s, _ = self.expr(self.field(inner_fn, "value"), None)
                return self.at(node, ["std.op", f"rs.parse.{expect}", s]), expect
        recv, rt = self.expr(recv_node, None)
        args = named(args_node)
        if rt in self.structs or rt in self.enums:
            sig = self.fns.get(f"{rt}::{name}")
            if sig is not None and sig.method:
                rest = self.args(args_node, sig.params[1:])
                return self.at(node, ["std.call", ["std.var", f"{rt}::{name}"], [recv, *rest]]), sig.ret
            if name == "clone":
                return self.at(node, ["std.op", "rs.clone", recv]), rt
            raise self.fail(node, f"no method named `{name}` found for {rt}")
        if rt.startswith("Vec<"):
            elem = rt[4:-1]
            if name == "push":
                (value, vt), = [self.expr(a, elem if elem != "?" else None) for a in args]
                if elem == "?":
                    self.retype(recv_node, f"Vec<{vt}>")
                else:
                    self.unify(node, elem, vt)
                return self.at(node, ["py.method", recv, "append", [value], []]), UNIT
            if name == "len" and not args:
                return self.at(node, ["py.call", ["std.builtin", "py.len"], [recv], []]), "usize"
            if name == "is_empty" and not args:
                length = ["py.call", ["std.builtin", "py.len"], [recv], []]
                return self.at(node, ["py.eq", length, ["std.int", "0"]]), "bool"
            if name == "clone" and not args:
                return self.at(node, ["std.op", "rs.clone", recv]), rt
            if name == "contains" and len(args) == 1:
                value, vt = self.expr(args[0], elem)
                return self.at(node, ["py.in", value, recv]), "bool"
            if name in ("swap", "insert", "remove"):
                types = {"swap": ["usize", "usize"], "insert": ["usize", elem], "remove": ["usize"]}[name]
                ret = {"swap": UNIT, "insert": UNIT, "remove": elem}[name]
                return self.at(node, ["std.op", f"rs.{name}", recv, *self.args(args_node, types)]), ret
            if name in ("sort", "sort_unstable", "reverse") and not args:
                if name != "reverse" and not (is_int(elem) or elem in ("String", "bool")):
                    raise self.fail(node, f"unsupported sort of Vec<{elem}>")
                return self.at(node, ["py.method", recv, "sort" if name != "reverse" else "reverse", [], []]), UNIT
            if name == "iter" and not args:
                return recv, rt
            if name == "sum" and recv_node.type == "call_expression" and (is_int(elem) or elem == "f64"):
                typ = expect if expect in BITS and elem == INT else elem
                return self.at(node, ["std.op", f"rs.sum.{typ}", recv]), typ
            if name in ("max", "min") and is_int(elem):
                raise self.fail(node, "unsupported Option (use a loop)")
        if rt == "String":
            if name == "len" and not args:
                return self.at(node, ["std.op", "rs.strlen", recv]), "usize"
            if name in ("to_string", "to_owned", "clone", "as_str") and not args:
                return recv, "String"
            if name in ("to_uppercase", "to_lowercase", "trim") and not args:
                if name != "trim":
                    return self.at(node, ["py.method", recv, name[3:-4], [], []]), "String"
                return self.at(node, ["py.method", recv, "strip", [["std.str", RUST_SPACE]], []]), "String"
            if name in ("contains", "starts_with", "ends_with") and len(args) == 1:
                arg, at = self.expr(args[0], "String")
                self.unify(node, "String", at)
                if name == "contains":
                    return self.at(node, ["py.in", arg, recv]), "bool"
                return self.at(node, ["py.method", recv, name.replace("_", ""), [arg], []]), "bool"
            if name == "repeat" and len(args) == 1:
                arg, _ = self.expr(args[0], "usize")
                return self.at(node, ["py.mul", recv, arg]), "String"
        if name == "to_string" and not args and (is_int(rt) or rt in ("f64", "bool")):
            return self.at(node, ["std.op", "rs.fmt", recv, ["std.str", ""]]), "String"
        if is_int(rt) or rt == "f64":
            typ = rt if rt != INT else (expect if expect in BITS else "i32")
            if name in ("abs", "pow", "wrapping_add", "wrapping_sub", "wrapping_mul") and is_int(rt):
                types = {"abs": [], "pow": ["u32"]}.get(name, [typ])
                return self.at(node, ["std.op", f"rs.{name}.{typ}", recv, *self.args(args_node, types)]), typ
            if name in ("min", "max") and len(args) == 1:
                other, ot = self.expr(args[0], typ)
                self.unify(node, typ, ot)
                if typ == "f64":
                    return self.at(node, ["std.op", f"rs.{name}.f64", recv, other]), "f64"
                return self.at(node, ["py.call", ["std.builtin", f"py.{name}"], [recv, other], []]), typ
            if typ == "f64" and name in ("sqrt", "abs", "floor", "ceil", "round", "trunc", "powi", "powf"):
                types = {"powi": ["i32"], "powf": ["f64"]}.get(name, [])
                return self.at(node, ["std.op", f"rs.{name}.f64", recv, *self.args(args_node, types)]), "f64"
        if name == "clone" and not args:
            return recv, rt
        raise self.fail(node, f"unsupported method {name} on {rt}")

    def capability(self, node: Node, path: str, name: str, args_node: Node) -> tuple[CastNode, str]:
        """`exo::fs::read(path)`, `exo::log(text)`, ...: a capability call (crush/cast.py CAPABILITIES)."""
        cap = ".".join([*path.split("::")[1:], name])
        if cap not in _CAPABILITY_TYPES:
            raise self.fail(node, f"unsupported capability exo::{path[5:] + '::' if path != 'exo' else ''}{name}")
        params, ret = _CAPABILITY_TYPES[cap]
        return self.at(node, ["std.cap", cap, *self.args(args_node, params)]), ret

    def push_str(self, node: Node) -> CastNode:
        """`s.push_str(t)` (a statement): strings are values in CRUSH, so the place is reassigned."""
        fn = self.field(node, "function")
        recv_node = self.field(fn, "value")
        target, tt = self.place(recv_node)
        if tt != "String":
            raise self.fail(node, f"no method named `push_str` found for {tt}")
        args = named(self.field(node, "arguments"))
        if len(args) != 1:
            raise self.fail(node, "push_str takes one argument")
        current, _ = self.expr(recv_node, None)
        arg, at = self.expr(args[0], "String")
        self.unify(node, "String", at)
        return self.at(node, self.store(target, ["py.add", current, arg]))

    def retype(self, node: Node, typ: str) -> None:
        if node.type == "identifier":
            name = self.text(node)
            for scope in reversed(self.scopes):
                if name in scope:
                    scope[name] = typ
                    return
        raise self.fail(node, "unsupported: cannot infer this Vec's element type (annotate it)")

    # --- macros -------------------------------------------------------------------------------

    def macro_args(self, node: Node, wrap: str) -> list[Node]:
        """The arguments of a macro invocation, parsed as Rust expressions: the token tree is
        re-parsed in place (the bytes before it blanked), so positions stay the source's."""
        tree = named(node)[-1]
        if tree.type != "token_tree":
            raise self.fail(node, "unsupported macro")
        prefix = b"fn f(){" + wrap.encode()
        start = tree.start_byte
        if start < len(prefix):
            raise self.fail(node, "unsupported macro position")
        blank = bytes(b if b == 0x0A else 0x20 for b in self.data[:start - len(prefix)])
        data = blank + prefix + self.data[start:tree.end_byte] + b";}"
        root = tree_sitter.Parser(_LANGUAGE).parse(data).root_node
        if root.has_error:
            raise self.fail(tree, "unsupported macro arguments")
        stmt = named(named(self.field(named(root)[0], "body"))[0])[0]
        if wrap:
            return named(self.field(stmt, "arguments"))
        return [stmt]

    def format_args(self, node: Node, args: list[Node]) -> CastNode:
        if not args or args[0].type != "string_literal":
            raise self.fail(node, "unsupported format string (a string literal is required)")
        fmt = self.string(args[0])
        positional = [a for a in args[1:] if a.type != "assignment_expression"]
        named_args = {self.text(self.field(a, "left")): self.field(a, "right")
                      for a in args[1:] if a.type == "assignment_expression"}
        pieces: list[CastNode] = []
        next_arg = 0
        used: set[int] = set()
        pos = 0
        for m in re.finditer(r"\{\{|\}\}|\{([^{}]*)\}|\{|\}", fmt):
            if m.start() > pos:
                pieces.append(["std.str", fmt[pos:m.start()]])
            pos = m.end()
            tok = m.group(0)
            if tok in ("{{", "}}"):
                pieces.append(["std.str", tok[0]])
                continue
            if tok in ("{", "}"):
                raise self.fail(args[0], "invalid format string: unmatched brace")
            key, _, spec = (m.group(1) or "").partition(":")
            if key == "":
                index: int | str = next_arg
                next_arg += 1
            elif key.isdigit():
                index = int(key)
            else:
                index = key
            if isinstance(index, int):
                if index >= len(positional):
                    raise self.fail(args[0], "invalid format string: not enough arguments")
                used.add(index)
                value, _ = self.expr(positional[index], None)
            elif index in named_args:
                value, _ = self.expr(named_args[index], None)
            else:
                value, _ = self.expr_name(args[0], index)
            if spec.endswith(("#?", "e", "E")) or "$" in spec or ".*" in spec:
                raise self.fail(args[0], f"unsupported format spec {spec!r}")
            pieces.append(["std.op", "rs.fmt", value, ["std.str", spec]])
        if pos < len(fmt):
            pieces.append(["std.str", fmt[pos:]])
        if len(used) != len(positional):
            raise self.fail(node, "argument never used in the format string")
        return ["std.op", "rs.concat", *pieces] if pieces else ["std.str", ""]

    def expr_name(self, node: Node, name: str) -> tuple[CastNode, str]:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise self.fail(node, f"unsupported format argument {name!r}")
        return ["std.var", name], self.lookup(node, name)

    def macro_statement(self, node: Node) -> CastNode:
        name = self.text(self.field(node, "macro"))
        if name in ("println", "print"):
            args = self.macro_args(node, "m")
            text = self.format_args(node, args) if args else ["std.str", ""]
            return ["std.expr", ["std.op", f"rs.{name}", text]]
        if name in ("eprintln",):
            args = self.macro_args(node, "m")
            return ["std.expr", self.format_args(node, args)] if args else ["std.pass"]
        if name == "panic":
            args = self.macro_args(node, "m")
            text = self.format_args(node, args) if args else ["std.str", "explicit panic"]
            return ["std.raise", ["std.op", "rs.panic", text]]
        if name == "assert":
            args = self.macro_args(node, "m")
            cond = self.condition(args[0])
            message = self.format_args(node, args[1:]) if len(args) > 1 else \
                ["std.str", f"assertion failed: {self.text(args[0])}"]
            return ["std.if", ["py.not", cond], ["std.raise", ["std.op", "rs.panic", message]]]
        if name == "assert_eq":
            args = self.macro_args(node, "m")
            if len(args) != 2:
                raise self.fail(node, "unsupported assert_eq! with a message")
            a, at = self.expr(args[0], None)
            b, bt = self.expr(args[1], at if at != INT else None)
            self.unify(node, at, bt)
            return ["std.if", ["py.ne", a, b], ["std.raise", ["std.op", "rs.panic", [
                "std.op", "rs.concat", ["std.str", "assertion `left == right` failed\n  left: "],
                ["std.op", "rs.fmt", a, ["std.str", "?"]], ["std.str", "\n right: "],
                ["std.op", "rs.fmt", b, ["std.str", "?"]]]]]]
        raise self.fail(node, f"unsupported macro {name}!")

    def macro_value(self, node: Node, expect: str | None) -> tuple[CastNode, str]:
        name = self.text(self.field(node, "macro"))
        if name == "format":
            return self.at(node, self.format_args(node, self.macro_args(node, "m"))), "String"
        if name == "vec":
            (array,) = self.macro_args(node, "")
            if array.type != "array_expression":
                raise self.fail(node, "unsupported vec! form")
            want = expect[4:-1] if expect and expect.startswith("Vec<") else None
            length = array.child_by_field_name("length")
            if length is not None:
                value, vt = self.expr(named(array)[0], want)
                n, nt = self.expr(length, "usize")
                self.unify(length, "usize", nt)
                return self.at(node, ["std.op", "rs.vec_repeat", value, n]), f"Vec<{vt}>"
            items = []
            elem: str | None = want
            for a in named(array):
                value, vt = self.expr(a, elem if elem != INT else None)
                elem = vt if elem is None else self.unify(a, elem, vt)
                items.append(value)
            if elem == INT:  # re-typed by the first element with a type, as rustc infers it
                items = [self.expr(a, INT)[0] for a in named(array)]
            return self.at(node, ["std.list", *items]), f"Vec<{elem or '?'}>"
        if name in ("println", "print", "panic", "assert", "assert_eq"):
            return ["std.call", ["std.fn", None, [], self.macro_statement(node)], []], UNIT
        raise self.fail(node, f"unsupported macro {name}!")

    def ident(self, node: Node) -> str:
        if node.type != "identifier":
            raise self.fail(node, f"unsupported binding ({_UNSUPPORTED.get(node.type, node.type)})")
        return self.text(node)
