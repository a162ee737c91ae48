"""Hypothesis strategies that write Python source inside the walker's subset.

- `int_programs()`: expressions over integers (small, huge and negative) with + - * // % ** << >> & | ^,
  unary operators, comparisons (chained), boolean operators and conditional expressions, printed
  with their exception (ZeroDivisionError, a negative shift's ValueError) if they raise;
- `str_programs()`: string expressions: literals with escapes and non-ASCII text, concatenation,
  repetition, indexing and slicing with negative, None and stepped bounds, methods, f-strings with
  conversions and format specs (nested ones too);
- `programs()`: small whole programs: assignments (tuple, augmented, subscript), if/elif/else,
  bounded while and for loops with break/continue/else, loops over dict items, functions with
  defaults and keyword arguments, closures with nonlocal, comprehensions, chained comparisons,
  conditional expressions, f-strings, del, try/except (tuple handlers too)/else/finally, printing
  as they go.

Every generated program terminates and stays small (values are bounded so that no int needs more
than CPython's 4300 digits to print).
"""

from __future__ import annotations

from hypothesis import strategies as st

# --- integers ---------------------------------------------------------------------------------------

_INT_NAMES = ("a", "b", "c")
_small_ints = st.integers(-20, 20)
_big_ints = st.one_of(st.integers(-(2 ** 100), 2 ** 100), st.sampled_from([0, -1, 1, 2 ** 63, -(2 ** 64), 10 ** 30]))


def _int_leaf() -> st.SearchStrategy[str]:
    return st.one_of(_small_ints.map(str), _big_ints.map(str), st.sampled_from(_INT_NAMES),
                     _small_ints.map(lambda n: f"({n})"))


def _int_node(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(children, st.sampled_from(["+", "-", "*", "//", "%", "&", "|", "^"]), children).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})")
    shift = st.tuples(children, st.sampled_from(["<<", ">>"]), st.integers(-2, 70)).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})")
    power = st.tuples(st.one_of(_small_ints.map(lambda n: f"({n})"), st.sampled_from(_INT_NAMES)),
                      st.integers(0, 4)).map(lambda t: f"({t[0]} ** {t[1]})")
    unary = st.tuples(st.sampled_from(["-", "+", "~"]), children).map(lambda t: f"({t[0]}{t[1]})")
    compare = st.tuples(children, st.lists(st.tuples(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), children),
                                           min_size=1, max_size=3)).map(
        lambda t: "(" + t[0] + "".join(f" {op} {x}" for op, x in t[1]) + ")")
    boolean = st.tuples(children, st.sampled_from(["and", "or"]), children).map(lambda t: f"({t[0]} {t[1]} {t[2]})")
    conditional = st.tuples(children, children, children).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})")
    calls = st.one_of(
        children.map(lambda x: f"abs({x})"),
        st.tuples(children, children).map(lambda t: f"max({t[0]}, {t[1]})"),
        st.tuples(children, children).map(lambda t: f"min({t[0]}, {t[1]}, 0)"),
        children.map(lambda x: f"int(str({x}))"),
        st.tuples(children, children).map(lambda t: f"divmod({t[0]}, {t[1]})[1]"),
        children.map(lambda x: f"(not {x})"),
        children.map(lambda x: f"len(bin({x}))"),
    )
    return st.one_of(binary, shift, power, unary, compare, boolean, conditional, calls)


int_expressions = st.recursive(_int_leaf(), _int_node, max_leaves=10)


@st.composite
def int_programs(draw: st.DrawFn) -> str:
    values = [draw(st.one_of(_small_ints, _big_ints)) for _ in _INT_NAMES]
    lines = [f"{name} = {value}" for name, value in zip(_INT_NAMES, values, strict=True)]
    for expression in draw(st.lists(int_expressions, min_size=1, max_size=4)):
        lines += ["try:", f"    print({expression})",
                  "except ZeroDivisionError as e:", "    print('ZeroDivisionError', e)",
                  "except ValueError as e:", "    print('ValueError', e)"]
    return "\n".join(lines) + "\n"


# --- strings ----------------------------------------------------------------------------------------

_STR_NAMES = ("s", "t")
_text = st.text(alphabet=st.sampled_from(list("abcXYZ 019-_.,'\"\\\t\néß€\U0001f600{}")), max_size=8)


def _str_leaf() -> st.SearchStrategy[str]:
    return st.one_of(_text.map(repr), st.sampled_from(_STR_NAMES))


_bound = st.one_of(st.none(), st.integers(-12, 12))


def _slice(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    def text(v: int | None) -> str:
        return "" if v is None else str(v)

    def render(t: tuple[str, int | None, int | None, int | None]) -> str:
        x, lo, hi, step = t
        return f"{x}[{text(lo)}:{text(hi)}" + (f":{step}]" if step is not None else "]")
    return st.tuples(children, _bound, _bound, st.one_of(st.none(), st.sampled_from([-3, -2, -1, 1, 2, 3]))).map(render)


def _str_node(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    small = st.integers(-2, 12)
    methods = st.one_of(
        st.sampled_from(["upper()", "lower()", "strip()", "title()", "swapcase()", "lstrip('a ')",
                         "rstrip('.')", "capitalize()"]).flatmap(lambda m: children.map(lambda x: f"{x}.{m}")),
        st.tuples(children, _text, _text).map(lambda t: f"{t[0]}.replace({t[1]!r}, {t[2]!r})"),
        st.tuples(children, small).map(lambda t: f"{t[0]}.zfill({t[1]})"),
        st.tuples(children, small, st.sampled_from(["*", " ", "é"])).map(
            lambda t: f"{t[0]}.center({t[1]}, {t[2]!r})"),
        st.tuples(children, small).map(lambda t: f"{t[0]}.ljust({t[1]}) + {t[0]}.rjust({t[1]}, '.')"),
        st.tuples(children, children).map(lambda t: f"'|'.join({t[0]}.split({t[1]} or None))"),
        st.tuples(children, children).map(lambda t: f"str({t[0]}.find({t[1]})) + str({t[0]}.count({t[1]}))"),
        st.tuples(children, children).map(lambda t: f"str({t[0]}.startswith({t[1]})) + str({t[0]} in {t[1]})"),
        children.map(lambda x: f"repr({x})"),
        children.map(lambda x: f"str(len({x}))"),
        children.map(lambda x: f"''.join(sorted({x}))"),
        children.map(lambda x: f"''.join(reversed({x}))"),
    )
    return st.one_of(
        st.tuples(children, children).map(lambda t: f"({t[0]} + {t[1]})"),
        st.tuples(children, st.integers(-1, 3)).map(lambda t: f"({t[0]} * {t[1]})"),
        st.tuples(children, st.integers(-10, 10)).map(lambda t: f"{t[0]}[{t[1]}]"),
        _slice(children),
        methods,
        st.tuples(children, children, children).map(lambda t: f"({t[0]} if {t[1]} < {t[2]} else {t[2]})"),
    )


str_expressions = st.recursive(_str_leaf(), _str_node, max_leaves=6)

# f-strings over names only (CPython 3.11 forbids backslashes and the enclosing quote inside fields)
_fstring_fields = st.sampled_from([
    "{s}", "{s!r}", "{t!s:>8}", "{s:*^9}", "{s:.2}", "{n}", "{n:+08,d}", "{n:x}", "{n:#o}", "{n:>{w}}",
    "{s:{fill}<{w}}", "{f:.3f}", "{f:10.2e}", "{f:g}", "{f:.1%}", "{n=}", "{s = !r}", "{n:_b}", "{{", "}}",
    "{s!r:^{w}.{p}}", "{f:{w}.{p}f}", "{n:{fill}>+{w},}",
])


@st.composite
def fstrings(draw: st.DrawFn) -> str:
    pieces = draw(st.lists(st.one_of(_fstring_fields, st.sampled_from(["x", " ", "é", "-", "\\n", "\\t"])),
                           min_size=1, max_size=5))
    return 'f"' + "".join(pieces) + '"'


@st.composite
def str_programs(draw: st.DrawFn) -> str:
    lines = [f"s = {draw(_text)!r}", f"t = {draw(_text)!r}", f"n = {draw(st.integers(-10 ** 9, 10 ** 9))}",
             f"f = {draw(st.floats(-1e6, 1e6, allow_nan=False))!r}", f"w = {draw(st.integers(0, 12))}",
             f"p = {draw(st.integers(1, 5))}", f"fill = {draw(st.sampled_from(['*', '0', ' ', '#']))!r}"]
    expressions = draw(st.lists(st.one_of(str_expressions, fstrings()), min_size=1, max_size=4))
    for expression in expressions:
        lines += ["try:", f"    print(repr({expression}))",
                  "except IndexError as e:", "    print('IndexError', e)",
                  "except ValueError as e:", "    print('ValueError', e)"]
    return "\n".join(lines) + "\n"


# --- whole programs -----------------------------------------------------------------------------------

_VARS = ("x", "y", "z")


def _simple_expr() -> st.SearchStrategy[str]:
    leaf = st.one_of(st.integers(-9, 99).map(str), st.sampled_from(_VARS))
    return st.recursive(leaf, lambda c: st.one_of(
        st.tuples(c, st.sampled_from(["+", "-", "*", "%", "//"]), c).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(c, st.sampled_from(["<", "==", ">="]), c).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        c.map(lambda x: f"f({x})"),
        st.tuples(c, c).map(lambda t: f"g({t[0]}, k={t[1]})"),
        c.map(lambda x: f"len(items) + {x}"),
        c.map(lambda x: f"items[{x} % len(items)]"),
        c.map(lambda x: f"table.get({x}, -1)"),
        c.map(lambda x: f"sum([i * {x} for i in range(3)])"),
        st.tuples(c, c, c).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
        st.tuples(c, c).map(lambda t: f"(0 <= {t[0]} < 50 != {t[1]})"),
        st.tuples(c, c).map(lambda t: f"({t[0]} and {t[1]} or -1)"),
        c.map(lambda x: f"max(items[-3:], key=lambda v: (v * {x}) % 7)"),
        c.map(lambda x: f"sorted(items, reverse=True)[{x} % len(items)]"),
        c.map(lambda x: f"len(str({x}) * 2)"),
    ), max_leaves=5)


def _statements(depth: int) -> st.SearchStrategy[list[str]]:
    expr = _simple_expr()
    simple = st.one_of(
        # values stay bounded: assignments reduce modulo a prime, *= multiplies by a small constant
        st.tuples(st.sampled_from(_VARS), expr).map(lambda t: [f"{t[0]} = {t[1]} % 10007"]),
        st.tuples(st.sampled_from(_VARS), st.sampled_from(["+=", "-="]), expr).map(
            lambda t: [f"{t[0]} {t[1]} {t[2]} % 10007"]),
        st.tuples(st.sampled_from(_VARS), st.sampled_from(["%=", "//="]), expr).map(
            lambda t: [f"{t[0]} {t[1]} ({t[2]}) or 7"]),
        st.tuples(st.sampled_from(_VARS), st.integers(-3, 3)).map(lambda t: [f"{t[0]} *= {t[1]}"]),
        st.tuples(st.sampled_from(_VARS), st.sampled_from(_VARS)).map(lambda t: [f"{t[0]}, {t[1]} = {t[1]}, {t[0]}"]),
        expr.map(lambda e: [f"items.append({e})"]),
        st.tuples(expr, expr).map(lambda t: [f"table[{t[0]}] = {t[1]}"]),
        expr.map(lambda e: [f"items[{e} % len(items)] += 1"]),
        expr.map(lambda e: [f"print({e})"]),
        st.just(["print(x, y, z, items[-3:], sorted(table.items())[:3])"]),
        st.just(['print(f"{x:>6}|{y!r:^7}|{z:+,}|{items[-1]:x}|{x / 7:.3f}|{x=}")']),
        expr.map(lambda e: [f"if {e} in table:", f"    del table[{e}]"]),
        st.just(["print([a * b for a in items[-4:] if a % 2 for b in range(a % 3)], "
                 "{a: str(a) for a in items[-3:]})"]),
        st.just(["text = '-'.join([str(v) for v in items[-5:]])", "print(text[::-1], text.upper().count('1'))"]),
        st.tuples(expr, expr).map(lambda t: [
            "try:", f"    print(items[{t[0]}])", f"    print(table[{t[1]}])", "except IndexError as err:",
            "    print('IndexError', err)", "except (KeyError, ValueError) as err:", "    print('lookup', repr(err))"]),
        expr.map(lambda e: ["def h(p, q=3):", "    acc = [p]", "    def inner(r):", "        nonlocal p",
                            "        p += r", "        acc.append(p)", "        return p", "    for r in range(q % 4):",
                            "        inner(r)", "    return acc", f"print(h({e}), h(1, q={e}))"]),
    )
    if depth == 0:
        return simple

    body = _statements(depth - 1)
    block = st.lists(body, min_size=1, max_size=3).map(lambda bs: ["    " + line for b in bs for line in b])

    def if_(t: tuple[str, list[str], list[str] | None]) -> list[str]:
        cond, then, other = t
        return [f"if {cond}:", *then] + (["else:", *other] if other else [])

    def for_(t: tuple[str, int, list[str], bool]) -> list[str]:
        name, n, inner, with_else = t
        lines = [f"for {name} in range({n}):", f"    if {name} == 3:", "        break",
                 f"    if {name} == 1:", "        continue", *inner]
        return lines + (["else:", "    print('no break')"] if with_else else [])

    def while_(t: tuple[int, list[str]]) -> list[str]:
        n, inner = t  # one guard per nesting depth: an inner loop must not reset an outer one's
        return [f"guard{depth} = 0", f"while guard{depth} < {n}:", f"    guard{depth} += 1", *inner]

    def try_(t: tuple[list[str], list[str]]) -> list[str]:
        inner, handler = t
        return ["try:", *inner, "    print(100 // (x - y))", "except ZeroDivisionError as e:", "    print('caught', e)",
                *handler, "else:", "    print('no exception')", "finally:", "    print('finally')"]

    def items_loop(inner: list[str]) -> list[str]:
        return ["for key, value in sorted(table.items())[:4]:", "    print(key, value)", *inner]

    def while_else(t: tuple[int, list[str]]) -> list[str]:
        n, inner = t
        return [f"count{depth} = 0", f"while count{depth} < {n}:", f"    count{depth} += 1", *inner,
                f"    if count{depth} == 2:", "        break", "else:", "    print('while ended')"]

    return st.one_of(
        simple,
        block.map(items_loop),
        st.tuples(st.integers(0, 4), block).map(while_else),
        st.tuples(_simple_expr(), block, st.one_of(st.none(), block)).map(if_),
        st.tuples(st.sampled_from(["i", "j"]), st.integers(0, 5), block, st.booleans()).map(for_),
        st.tuples(st.integers(0, 4), block).map(while_),
        st.tuples(block, block).map(try_),
    )


@st.composite
def programs(draw: st.DrawFn) -> str:
    values = draw(st.lists(st.integers(-50, 50), min_size=3, max_size=3))
    lines = [
        "def f(v, step=1):", "    return v * 2 + step",
        "def g(a, k=3):", "    total = 0", "    for n in range(a % 5):", "        total += n * k", "    return total",
        "def counter():", "    count = 0", "    def bump():", "        nonlocal count", "        count += 1",
        "        return count", "    return bump",
        *(f"{name} = {value}" for name, value in zip(_VARS, values, strict=True)),
        "items = [1, 2, 3]", "table = {}", "bump = counter()",
    ]
    for block in draw(st.lists(_statements(2), min_size=1, max_size=5)):
        lines += block
    lines += ["print(x, y, z, items, sorted(table.items()), bump(), bump())"]
    return "\n".join(lines) + "\n"
