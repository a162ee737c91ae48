"""CAST, the CRUSH abstract syntax tree: the contract between the walkers and the compiler.

A walker (crush/walkers/python.py, javascript.py, rust.py) turns source code into a CAST
*document*; the compiler (crush/compiler.py) lowers it to CASM. CAST is language-neutral in its
structure and explicit about semantics where languages differ: control flow, bindings, functions
and containers are `std.*` nodes every language shares; operators, truthiness, builtins and
methods are namespaced by the language whose meaning they carry (`py.add` is Python's `+`:
arbitrary-precision ints, str and list concatenation; `["std.op", "js.add", A, B]` is JavaScript's,
`["std.op", "rs.add.i64", A, B]` Rust's on i64: the
typed operations of `OPS`, implemented by the VM as builtins of the same names). A walker
never emits a node whose meaning differs from its language's; the compiler never guesses.

The JSON form is stable and versioned (`CAST_VERSION`), in the style of the Viwo design's
S-expressions:

    {"cast": 1, "lang": "python", "file": "prog.py", "body": NODE}

A NODE is a JSON array whose first element is the node's name, followed by its operands:

    ["std.seq",
      ["@", 1, 0, ["std.let", "x", ["std.int", "41"]]],
      ["@", 2, 0, ["py.call", ["std.builtin", "py.print"], [["py.add", ["std.var", "x"], ["std.int", "1"]]], []]]]

`["@", LINE, COL, NODE]` (1-based line, 0-based column, as tree-sitter counts them) gives the
source position of NODE and everything under it without a position of its own; walkers wrap every
statement and every expression that can raise, so that a run-time error names `file:line`.

Each node is a *statement* (S: leaves nothing), an *expression* (E: leaves one value) or a
*target* (T: something assigned to). `NODES` below lists every node with its operand shapes and
its meaning; `check()` validates a document against it (shape only: names are resolved by the
compiler). Shapes:

    E      an expression node         S      a statement node      T   a target node
    [E]    a JSON array of expressions [S]   of statements
    name   an identifier string       str    any string            int a JSON integer
    E?     an expression or null      S?     a statement or null
    *E     the remaining operands are expressions (also *S, *pair)
    params a JSON array of [name, E?] (a parameter with an optional default)
    kwargs a JSON array of [name, E]  (keyword arguments, in source order)
    handlers a JSON array of [name?, name?, S] (exception type or null for any, bound name or null, body)
    parts  a JSON array of str | E    (pieces of a formatted string, see py.fstring)
    spec   a str, or an E that computes the spec when it runs (see py.format)
    value  a JSON scalar (see std.float)

Scoping (what the compiler implements, and what walkers lower their language to):
- A function body and the document body are scopes; `std.block` opens a nested block scope.
- `std.let NAME [E]` declares NAME in the innermost scope (without E: declared but unbound, and
  reading it raises the language's unbound-name error — Python's UnboundLocalError). The Python
  walker declares every local of a function at its top (Python's function-level scoping); the
  JavaScript and Rust walkers declare where the source does (block scoping).
- `std.var NAME` reads the nearest binding: the current function's, an enclosing function's
  (captured by reference in a cell: closures see later assignments, Python's late binding), or a
  global (a binding of the document body), looked up when it runs (NameError if missing).
  `std.gvar NAME` is always the global (Python's `global`).
- Builtins are not names: a walker emits `std.builtin "py.len"` where the source's name refers to
  the builtin (it was not bound in the program). The VM's builtin table is keyed by these names.

Exceptions are values with a type name and a message; the types form the language's hierarchy
(Python: BaseException > Exception > ArithmeticError > ZeroDivisionError, LookupError > IndexError,
KeyError, ...). The VM raises its own errors (ZeroDivisionError, IndexError, KeyError, TypeError,
ValueError, NameError, RecursionError) as such values, catchable by `std.try`. Running out of gas,
exceeding the arena and a refused capability are *traps*, not exceptions: no program can catch them.

Capabilities: `std.cap NAME [E]` is the only way to the outside world (`exo.fs.read(path)` in
Python). NAME is one of `CAPABILITIES`; a document's capabilities are those its `std.cap` nodes
name, and they become the program's declared set (the CASM header) that the verifier and the host
check against the grants before anything runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CAST_VERSION = 1

# The capability operations a program may declare; the VM's host decides which are granted.
CAPABILITIES: Mapping[str, str] = {
    "fs.read": "fs.read(path) -> str: a granted file's text (UTF-8)",
    "fs.list": "fs.list(path) -> list[str]: the sorted names in a granted directory",
    "fs.write": "fs.write(path, text) -> int: write a file under a path granted rw; returns bytes written",
    "fs.stat": "fs.stat(path) -> dict: size, mode, mtime, kind of a granted path",
    "log": "log(text) -> None: one line to the capsule's log (the diagnostic sink)",
    "clock": "clock() -> float: wall-clock seconds since the epoch",
    "sleep": "sleep(seconds) -> None: suspend; the wake time is part of the serialised state",
    "yield": "yield() -> None: a point where the host may pause, checkpoint or reschedule",
    "random": "random() -> float in [0, 1): from a seeded generator whose state is serialised",
    "control.status": "control.status(name?, socket?) -> dict | list: exo_init's capsule status (read-only); "
                      "socket: another control socket, under a granted root",
    "stdin.read": "stdin.read() -> str: the next chunk of the host's standard input ('' at its end)",
    "proc.list": "proc.list() -> list[dict]: the processes the host's /proc shows (its PID namespace's), by pid",
    "tty.info": "tty.info() -> dict: whether stdin and stdout are terminals, and the terminal's rows and columns",
    "tty.key": "tty.key(seconds) -> str: a key typed on the terminal within `seconds`, '' if none (no terminal: "
               "waits `seconds`)",
}


@dataclass(frozen=True)
class NodeSpec:
    kind: str          # "S", "E" or "T" (a target is also readable where noted)
    operands: tuple[str, ...]
    doc: str


def _n(kind: str, operands: str, doc: str) -> NodeSpec:
    return NodeSpec(kind, tuple(operands.split()), doc)


NODES: Mapping[str, NodeSpec] = {
    # --- positions, sequencing, bindings --------------------------------------------------------
    "@": _n("*", "int int node", "source position LINE COL of the wrapped node (kind of the wrapped node)"),
    "std.seq": _n("S", "*S", "run the statements in order"),
    "std.block": _n("S", "*S", "a nested block scope (JS/Rust `{...}`): `std.let` inside is not visible after it"),
    "std.pass": _n("S", "", "do nothing"),
    "std.expr": _n("S", "E", "evaluate E and discard its value"),
    "std.let": _n("S", "name E?", "declare NAME in the innermost scope, bound to E (or unbound)"),
    "std.set": _n("S", "T E", "assign E to the target: E is evaluated first, then the target's operands "
                  "(Python's order: `a[i()] = v()` calls v, then i)"),
    "std.var": _n("T", "name", "the nearest binding of NAME (readable as E, assignable as T)"),
    "std.gvar": _n("T", "name", "the global NAME (readable as E, assignable as T)"),
    "std.unpack": _n("T", "*T", "destructure a sequence of exactly this many items into the targets, "
                     "assigned left to right"),
    "std.builtin": _n("E", "str", "the builtin function or value named (`py.len`, `py.ValueError`)"),
    # --- literals ---------------------------------------------------------------------------------
    "std.none": _n("E", "", "the absence of a value (Python None)"),
    "std.bool": _n("E", "bool", "true or false"),
    "std.int": _n("E", "str", "an integer, as decimal text (arbitrary precision; JSON numbers are not)"),
    "std.float": _n("E", "value", "a float: a JSON number, or \"inf\", \"-inf\", \"nan\""),
    "std.str": _n("E", "str", "a string"),
    "std.list": _n("E", "*E", "a new list of the values"),
    "std.tuple": _n("E", "*E", "a new tuple of the values"),
    "std.dict": _n("E", "*pair", "a new dict; each operand is [KEY_E, VALUE_E], inserted in order"),
    # --- control flow -----------------------------------------------------------------------------
    "std.if": _n("S", "E S S?", "if the condition (a bool, see py.truth) holds run the first, else the second"),
    "std.cond": _n("E", "E E E", "the conditional expression: condition (a bool), then, else"),
    "std.while": _n("S", "E S", "loop while the condition (a bool) holds"),
    "std.for": _n("S", "T E S", "for each item of the iterable (the language's iteration: see py.iter) assign it to T"),
    "std.break": _n("S", "", "leave the innermost loop"),
    "std.continue": _n("S", "", "next iteration of the innermost loop"),
    "std.fn": _n("E", "name? params S", "a function (closure over enclosing bindings); defaults are evaluated here"),
    "std.return": _n("S", "E?", "return from the function (None without a value)"),
    "std.try": _n("S", "S handlers S?", "run the body; an exception matching a handler's type runs that handler; "
                  "the last operand runs in every case (finally)"),
    "std.raise": _n("S", "E?", "raise the exception value (without: re-raise the one being handled)"),
    "std.cap": _n("E", "str *E", "call capability NAME with the arguments (a trap if not granted)"),
    "std.op": _n("E", "str *E", "apply the typed operation NAME to the operands (evaluated left to right): an "
                 "operation of the language whose meaning it carries, `js.add` (JavaScript's `+`), `rs.add.i32` "
                 "(Rust's `+` on i32, panicking on overflow); OPS lists the families"),
    "std.call": _n("E", "E [E]", "call with positional arguments; arity is the callee's rule (a JavaScript "
                   "function's parameters all default to undefined)"),
    # --- Python semantics ---------------------------------------------------------------------------
    "py.call": _n("E", "E [E] kwargs", "call with positional arguments and keyword arguments"),
    "py.method": _n("E", "E name [E] kwargs",
                     "call Python's method NAME of the value's type (list.append, str.split, ...)"),
    "py.truth": _n("E", "E", "Python truthiness as a bool (0, 0.0, '', [], {}, (), None are false)"),
    "py.not": _n("E", "E", "`not`"),
    "py.and": _n("E", "E E", "`a and b`: a if a is falsy, else b (short-circuit)"),
    "py.or": _n("E", "E E", "`a or b`: a if a is truthy, else b (short-circuit)"),
    "py.iter": _n("E", "E", "iter(x): lists, tuples, strings, dicts (keys), ranges, dict views, enumerate/zip"),
    "py.index": _n("T", "E E", "x[k] (readable as E, assignable as T)"),
    "py.slice": _n("E", "E E? E? E?", "x[lo:hi:step] of a list, tuple or string"),
    "py.fstring": _n("E", "parts", "an f-string: literal str pieces and [\"py.format\", E, conv, spec] pieces"),
    "py.format": _n("E", "E str spec", "format(conv(E), SPEC): conv is \"\", \"r\", \"s\"; SPEC a format spec, "
                    "or a py.fstring evaluated after E that builds it (Python's nested fields: f\"{x:>{width}}\")"),
    "py.delitem": _n("S", "E E", "del x[k]"),
    **{f"py.{op}": _n("E", "E E", f"Python binary `{sym}`") for op, sym in (
        ("add", "+"), ("sub", "-"), ("mul", "*"), ("truediv", "/"), ("floordiv", "//"), ("mod", "%"),
        ("pow", "**"), ("lshift", "<<"), ("rshift", ">>"), ("bitand", "&"), ("bitor", "|"), ("bitxor", "^"),
        ("eq", "=="), ("ne", "!="), ("lt", "<"), ("le", "<="), ("gt", ">"), ("ge", ">="),
        ("in", "in"), ("notin", "not in"), ("is", "is"), ("isnot", "is not"))},
    **{f"py.{op}": _n("E", "E", f"Python unary `{sym}`") for op, sym in (
        ("neg", "-"), ("pos", "+"), ("invert", "~"))},
    "py.iadd": _n("E", "E E", "`a += b`: extends a list in place (the same list), else as py.add"),
    "py.imul": _n("E", "E E", "`a *= b`: repeats a list in place (the same list), else as py.mul"),
    "py.ior": _n("E", "E E", "`a |= b`: updates a dict in place (the same dict), else as py.bitor"),
}

# The builtins the Python walker may name (`std.builtin "py.NAME"`). The VM implements each with
# CPython's behaviour for the subset's types.
PY_BUILTINS = (
    "print", "len", "range", "min", "max", "sum", "sorted", "reversed", "str", "int", "float", "bool",
    "abs", "enumerate", "zip", "list", "dict", "tuple", "repr", "isinstance", "round", "divmod",
    "any", "all", "ord", "chr", "hex", "bin", "map", "filter",
    # exception types
    "BaseException", "Exception", "ArithmeticError", "ZeroDivisionError", "OverflowError", "LookupError",
    "IndexError", "KeyError", "ValueError", "TypeError", "NameError", "UnboundLocalError",
    "RuntimeError", "RecursionError", "AssertionError", "NotImplementedError", "StopIteration",
    "AttributeError",  # what calling a method a value's type does not have raises
    "OSError", "FileNotFoundError",  # what the fs.* capabilities raise for a missing or unreadable path
)


# `std.op` names: the language prefix and what the operations mean (crush/jsops.py, crush/rsops.py
# implement them as builtins of the same names; the compiler refuses another prefix, the verifier
# an unknown name). `std.builtin` may also name the values "js.null" (JavaScript's null).
OPS: Mapping[str, str] = {
    "js.": "JavaScript: numbers are doubles; add (+: string concatenation or numeric), sub, mul, div, mod, pow, "
           "the int32 bit operations, seq/sne (===, !==), lt/le/gt/ge, truth (ToBoolean), typeof, get/set "
           "(property access), method, template, throw/caught, console.log, Math.*, ...",
    "rs.": "Rust: integer operations typed by suffix (`rs.add.i64`, `rs.cast.u8`) with debug-build overflow "
           "panics, f64 operations, indexing with bounds panics, formatting (println!), panic",
}
JS_VALUES = ("js.null",)


# How deeply a document's JSON arrays may nest (an `@` wrapper and each node are one level each).
# check() and the compiler recurse over the tree; this bound keeps them within Python's stack, and
# a document nested deeper (a hostile one: 100,000 deep) gets one CastError instead.
MAX_DEPTH = 200


class CastError(ValueError):
    """A document that is not valid CAST: names the path to the offending node."""


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply JSON arrays and objects nest in `value` (iteratively; stops past `limit`)."""
    deepest = 0
    work: list[tuple[Any, int]] = [(value, 1)]
    while work:
        v, d = work.pop()
        if isinstance(v, list | dict):
            deepest = max(deepest, d)
            if deepest > limit:
                break
            work.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


def check(doc: Any) -> None:
    """Raise CastError unless `doc` is a CAST document of this version (shape only)."""
    if not isinstance(doc, dict):
        raise CastError("a CAST document is a JSON object")
    if depth(doc.get("body")) > MAX_DEPTH:
        raise CastError(f"body: nested deeper than {MAX_DEPTH} levels")
    if doc.get("cast") != CAST_VERSION:
        raise CastError(f"unsupported CAST version {doc.get('cast')!r} (this is {CAST_VERSION})")
    for key in ("lang", "file"):
        if not isinstance(doc.get(key), str):
            raise CastError(f"{key}: a string is required")
    _check(doc.get("body"), "S", "body")


def _check(node: Any, want: str, path: str) -> None:
    if not isinstance(node, list) or not node or not isinstance(node[0], str):
        raise CastError(f"{path}: a node is a non-empty array starting with its name, not {_short(node)}")
    name, args = node[0], node[1:]
    spec = NODES.get(name)
    if spec is None:
        raise CastError(f"{path}: unknown node {name!r}")
    here = f"{path}/{name}"
    if name == "@":
        if len(args) != 3 or not all(isinstance(a, int) and not isinstance(a, bool) and a >= 0 for a in args[:2]):
            raise CastError(f"{here}: [\"@\", LINE, COL, NODE] with non-negative integers")
        _check(args[2], want, here)
        return
    if want != "*" and not _fits(spec.kind, want):
        raise CastError(f"{here}: {_KIND[spec.kind]} where {_KIND[want]} is expected")
    _operands(spec.operands, args, here)
    if name == "std.op" and not args[0].startswith(tuple(OPS)):
        raise CastError(f"{here}: {args[0][:40]!r} is not a typed operation (the families: {', '.join(OPS)})")


_KIND = {"S": "a statement", "E": "an expression", "T": "a target", "*": "a node"}


def _fits(kind: str, want: str) -> bool:
    if kind == want:
        return True
    if kind == "T":
        return want == "E"  # targets are readable, std.unpack excepted (checked below)
    if want == "S":
        return False  # an expression is a statement only inside std.expr
    return False


def _operands(shapes: tuple[str, ...], args: list[Any], path: str) -> None:
    i = 0
    for shape in shapes:
        if shape.startswith("*"):
            for j, arg in enumerate(args[i:], start=i):
                _operand(shape[1:], arg, f"{path}[{j}]")
            return
        if i >= len(args):
            if shape.endswith("?"):
                i += 1
                continue
            raise CastError(f"{path}: missing operand {i + 1} ({shape})")
        _operand(shape, args[i], f"{path}[{i}]")
        i += 1
    if i < len(args):
        raise CastError(f"{path}: {len(args) - i} operand(s) too many")


def _operand(shape: str, arg: Any, path: str) -> None:
    optional = shape.endswith("?")
    shape = shape.rstrip("?")
    if optional and arg is None:
        return
    if shape in ("S", "E", "T", "node"):
        _check(arg, "*" if shape == "node" else shape, path)
        if shape == "E" and isinstance(arg, list) and _unwrap(arg)[0] == "std.unpack":
            raise CastError(f"{path}: std.unpack is only a target")
    elif shape in ("[E]", "[S]"):
        if not isinstance(arg, list):
            raise CastError(f"{path}: an array of nodes is expected")
        for j, a in enumerate(arg):
            _check(a, shape[1], f"{path}[{j}]")
    elif shape == "name":
        if not isinstance(arg, str) or not arg:
            raise CastError(f"{path}: a non-empty name is expected, not {_short(arg)}")
    elif shape == "str":
        if not isinstance(arg, str):
            raise CastError(f"{path}: a string is expected, not {_short(arg)}")
    elif shape == "int":
        if not isinstance(arg, int) or isinstance(arg, bool):
            raise CastError(f"{path}: an integer is expected")
    elif shape == "bool":
        if not isinstance(arg, bool):
            raise CastError(f"{path}: true or false is expected")
    elif shape == "value":
        if not (isinstance(arg, int | float) and not isinstance(arg, bool) and math.isfinite(arg)) \
                and arg not in ("inf", "-inf", "nan"):
            raise CastError(f"{path}: a finite number or \"inf\", \"-inf\", \"nan\" is expected")
    elif shape == "pair":
        if not isinstance(arg, list) or len(arg) != 2:
            raise CastError(f"{path}: a [KEY, VALUE] pair is expected")
        _check(arg[0], "E", path + "[0]")
        _check(arg[1], "E", path + "[1]")
    elif shape == "params":
        _pairs(arg, path, optional_value=True)
    elif shape == "kwargs":
        _pairs(arg, path, optional_value=False)
    elif shape == "handlers":
        if not isinstance(arg, list):
            raise CastError(f"{path}: an array of [TYPE?, NAME?, BODY] handlers is expected")
        for j, h in enumerate(arg):
            if not (isinstance(h, list) and len(h) == 3 and all(x is None or isinstance(x, str) for x in h[:2])):
                raise CastError(f"{path}[{j}]: a handler is [TYPE or null, NAME or null, BODY]")
            _check(h[2], "S", f"{path}[{j}]")
    elif shape == "spec":
        if not isinstance(arg, str):
            _check(arg, "E", path)
    elif shape == "parts":
        if not isinstance(arg, list):
            raise CastError(f"{path}: an array of strings and nodes is expected")
        for j, p in enumerate(arg):
            if not isinstance(p, str):
                _check(p, "E", f"{path}[{j}]")
    else:  # pragma: no cover - a typo in NODES
        raise AssertionError(f"unknown operand shape {shape!r}")


def _pairs(arg: Any, path: str, *, optional_value: bool) -> None:
    if not isinstance(arg, list):
        raise CastError(f"{path}: an array of [NAME, VALUE] is expected")
    for j, p in enumerate(arg):
        if not (isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and p[0]):
            raise CastError(f"{path}[{j}]: [NAME, VALUE] is expected")
        if not (optional_value and p[1] is None):
            _check(p[1], "E", f"{path}[{j}]")


def _unwrap(node: list[Any]) -> list[Any]:
    while node and node[0] == "@" and len(node) == 4 and isinstance(node[3], list):
        node = node[3]
    return node


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
