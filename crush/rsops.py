"""Rust's operations over CRUSH values: the meaning of the `rs.*` typed operations.

The Rust walker (crush/walkers/rust.py) knows every integer expression's type and lowers each
operator to the operation of that type: `["std.op", "rs.add.i32", a, b]` is Rust's `+` on i32 as a
debug build runs it (a result outside i32's range panics with "attempt to add with overflow").
Values are the VM's own (crush/values.py):

    integers  int (the walker's static type says which range applies)
    f64       float;  bool: bool;  String and &str: str
    Vec<T>    list;   struct: dict whose first key "$type" names the struct, then the fields in
              declaration order;  a unit enum variant: the tuple (ENUM, VARIANT)

A panic is an exception of type Panic (crush/values.py), which no Rust code can catch. Formatting
follows Rust's `Display` and `Debug` for these types (`{}`, `{:?}`, width, fill, alignment, sign,
`0`, precision, `x`/`X`/`b`/`o` with `#`). Work is paid for and new strings and containers are
reserved in the arena before they are made; Debug of nested containers stops at MAX_DEPTH.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from crush import arena, gas
from crush.text import Meter
from crush.values import EXC_TYPES, Builtin, ExcValue, exc

Impl = Callable[[Meter, tuple[Any, ...], dict[str, Any]], Any]

BITS = {"i8": 8, "i16": 16, "i32": 32, "i64": 64, "i128": 128, "isize": 64,
        "u8": 8, "u16": 16, "u32": 32, "u64": 64, "u128": 128, "usize": 64}
INT_TYPES = tuple(BITS)
MAX_DEPTH = 100


def bounds(t: str) -> tuple[int, int]:
    bits = BITS[t]
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if t.startswith("i") else (0, (1 << bits) - 1)


def panic(message: str) -> Exception:
    return _Panic(message)


class _Panic(Exception):
    """Raised inside an operation; `table()` wraps every operation to turn it into the guest's
    Panic exception (a GuestError)."""


def _check(t: str, v: int, what: str) -> int:
    lo, hi = bounds(t)
    if not lo <= v <= hi:
        raise panic(f"attempt to {what} with overflow")
    return v


def _wrap(t: str, v: int) -> int:
    hi = bounds(t)[1]
    v &= (1 << BITS[t]) - 1
    return v - (1 << BITS[t]) if v > hi else v


def _int_ops(t: str) -> dict[str, Callable[..., Any]]:
    bits = BITS[t]

    def quotient(a: int, b: int) -> int:  # truncated towards zero, as Rust divides
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b >= 0) else -q

    def div(a: int, b: int) -> int:
        if b == 0:
            raise panic("attempt to divide by zero")
        return _check(t, quotient(a, b), "divide")

    def rem(a: int, b: int) -> int:
        if b == 0:
            raise panic("attempt to calculate the remainder with a divisor of zero")
        _check(t, quotient(a, b), "calculate the remainder")  # MIN % -1 overflows as MIN / -1 does
        r = abs(a) % abs(b)
        return r if a >= 0 else -r

    def shift(left: bool) -> Callable[[int, int], int]:
        def impl(a: int, b: int) -> int:
            if not 0 <= b < bits:
                raise panic(f"attempt to shift {'left' if left else 'right'} with overflow")
            return _wrap(t, a << b) if left else a >> b
        return impl

    def pow_(a: int, b: int) -> int:
        if b < 0 or b > 1 << 32:
            raise panic("attempt to multiply with overflow")
        if a in (0, 1):
            return a if b > 0 else 1
        if a == -1:
            return -1 if b % 2 else 1
        result = 1
        for _ in range(b):  # bounded: |a| >= 2 leaves the type's range (a panic) within 128 steps
            result = _check(t, result * a, "multiply")
        return result

    def checked(op: Callable[[int, int], int]) -> Callable[[int, int], Any]:
        def impl(a: int, b: int) -> Any:
            lo, hi = bounds(t)
            try:
                v = op(a, b)
            except _Panic:
                return None
            return v if lo <= v <= hi else None
        return impl

    return {
        "add": lambda a, b: _check(t, a + b, "add"), "sub": lambda a, b: _check(t, a - b, "subtract"),
        "mul": lambda a, b: _check(t, a * b, "multiply"), "div": div, "rem": rem,
        "neg": lambda a: _check(t, -a, "negate"), "shl": shift(True), "shr": shift(False),
        "bitand": lambda a, b: a & b, "bitor": lambda a, b: a | b, "bitxor": lambda a, b: a ^ b,
        "not": lambda a: _wrap(t, ~a), "pow": pow_, "abs": lambda a: _check(t, abs(a), "negate"),
        "wrapping_add": lambda a, b: _wrap(t, a + b), "wrapping_sub": lambda a, b: _wrap(t, a - b),
        "wrapping_mul": lambda a, b: _wrap(t, a * b),
        "checked_add": checked(lambda a, b: a + b), "checked_mul": checked(lambda a, b: a * b),
        "cast": lambda a: _cast(t, a), "parse": lambda s: _parse(t, s),
    }


def _cast(t: str, v: Any) -> Any:
    """`v as T`: integers wrap, floats truncate toward zero and saturate (NaN is 0), bools are 0/1."""
    if t == "f64":
        return float(v)
    if type(v) is float:
        if math.isnan(v):
            return 0
        lo, hi = bounds(t)
        return int(max(lo, min(hi, math.trunc(v)))) if math.isfinite(v) else (hi if v > 0 else lo)
    return _wrap(t, int(v))


def _parse(t: str, s: str) -> int:
    m = re.fullmatch(r"[+-]?[0-9]+", s)
    if not m or (s.startswith("-") and t.startswith("u")):
        raise panic(f'called `Result::unwrap()` on an `Err` value: ParseIntError {{ kind: '
                    f'{"Empty" if not s else "InvalidDigit"} }}')
    digits = s.lstrip("+-").lstrip("0")
    v = int(s) if len(digits) <= 40 else (-1 if s.startswith("-") else 1) << 130  # past i128 (39 digits) either way
    lo, hi = bounds(t)
    if not lo <= v <= hi:
        raise panic(f"called `Result::unwrap()` on an `Err` value: ParseIntError {{ kind: "
                    f"{'PosOverflow' if v > 0 else 'NegOverflow'} }}")
    return v


def _fdiv(a: float, b: float) -> float:
    if b == 0:
        return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _frem(a: float, b: float) -> float:
    if b == 0 or math.isinf(a) or math.isnan(a) or math.isnan(b):
        return math.nan
    return a if math.isinf(b) else math.fmod(a, b)


def ieee_pow(a: float, b: float) -> float:
    """C's pow (IEEE 754), which is Rust's f64::powf (JavaScript's ** on top of it, crush/jsops.py):
    where Python's math.pow raises, an overflow or a zero to a negative power is an infinity,
    negative when the base is negative (or -0) and the exponent an odd integer; a negative base to a
    non-integer power is NaN."""
    try:
        return float(math.pow(a, b))
    except (OverflowError, ValueError):
        if a < 0 and not b.is_integer():
            return math.nan
        odd = b.is_integer() and b % 2 == 1
        return -math.inf if odd and math.copysign(1.0, a) < 0 else math.inf


def _integral(a: float, n: int) -> float:
    """The integer n that floor/ceil/round/trunc gave for a, as an f64 with a's sign (-0.5's ceil is -0)."""
    return math.copysign(float(n), a)


def _round_half_away(a: float) -> int:
    """f64::round: to the nearest integer, halves away from zero (a - trunc(a) is exact; a + 0.5 is not)."""
    t = math.trunc(a)
    return t + (1 if a > 0 else -1) if abs(a - t) >= 0.5 else t


_FLOAT_OPS: dict[str, Callable[..., Any]] = {
    "div": _fdiv, "rem": _frem,
    "sqrt": lambda a: math.sqrt(a) if a >= 0 else math.nan, "abs": abs,
    "floor": lambda a: _integral(a, math.floor(a)) if math.isfinite(a) else a,
    "ceil": lambda a: _integral(a, math.ceil(a)) if math.isfinite(a) else a,
    "round": lambda a: _integral(a, _round_half_away(a)) if math.isfinite(a) else a,
    "trunc": lambda a: _integral(a, math.trunc(a)) if math.isfinite(a) else a,
    "powi": lambda a, b: ieee_pow(a, float(b)), "powf": ieee_pow,
    "min": lambda a, b: b if math.isnan(a) else a if math.isnan(b) else min(a, b),
    "max": lambda a, b: b if math.isnan(a) else a if math.isnan(b) else max(a, b),
    "cast": float,
}


# --- formatting ----------------------------------------------------------------------------------

def display_float(x: float) -> str:
    """Rust's Display for f64: the shortest digits that round-trip, never an exponent."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    text = format(Decimal(repr(x)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def debug_float(x: float) -> str:
    """Rust's Debug for f64: like Display but always with a fraction or an exponent."""
    if math.isnan(x) or math.isinf(x):
        return display_float(x)
    a = abs(x)
    if a != 0 and (a < 1e-4 or a >= 1e16):
        digits = repr(x)
        if "e" in digits:
            mant, _, e = digits.partition("e")
        else:
            d = Decimal(digits)
            exp = d.adjusted()
            mant = str((d.scaleb(-exp)).normalize())
            e = str(exp)
        return f"{mant}e{int(e)}"
    text = display_float(x)
    return text if "." in text else text + ".0"


# Unicode 14's Other_Grapheme_Extend (PropList.txt; CPython 3.11 and rustc 1.63 to 1.7x carry
# Unicode 14): with the Mn and Me characters, the Grapheme_Extend characters `{:?}` escapes.
_OTHER_GRAPHEME_EXTEND = frozenset((
    0x09BE, 0x09D7, 0x0B3E, 0x0B57, 0x0BBE, 0x0BD7, 0x0CC2, 0x0CD5, 0x0CD6, 0x0D3E, 0x0D57, 0x0DCF, 0x0DDF,
    0x200C, 0x302E, 0x302F, 0xFF9E, 0xFF9F, 0x1133E, 0x11357, 0x114B0, 0x114BD, 0x115AF, 0x11930,
    0x1D165, 0x1D16E, 0x1D16F, 0x1D170, 0x1D171, 0x1D172, *range(0xE0020, 0xE0080)))


def _escape_debug(s: str) -> str:
    """str's Debug: the escapes of char::escape_debug, grapheme extenders (combining marks) included."""
    out = []
    for ch in s:
        if ch in "\"\\":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\0":
            out.append("\\0")
        elif not ch.isprintable() or unicodedata.category(ch) in ("Mn", "Me") or ord(ch) in _OTHER_GRAPHEME_EXTEND:
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def display(vm: Meter, v: Any) -> str:
    t = type(v)
    if t is str:
        return str(v)
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return str(v)
    if t is float:
        return display_float(v)
    if t is ExcValue:
        return str(v.args[0]) if v.args else ""
    raise panic("this value has no Display (unsupported)")


def debug(vm: Meter, v: Any, depth: int = 0) -> str:
    if depth > MAX_DEPTH:
        raise panic("value nested too deep to format")
    vm.charge(gas.ELEMENT)
    t = type(v)
    if t is str:
        return _escape_debug(v)
    if t is float:
        return debug_float(v)
    if t is list:
        return "[" + ", ".join(debug(vm, x, depth + 1) for x in v) + "]"
    if t is tuple and len(v) == 2:
        return str(v[1])
    if t is dict:
        name = v.get("$type", "")
        fields = [f"{k}: {debug(vm, x, depth + 1)}" for k, x in v.items() if k != "$type"]
        return f"{name} {{ {', '.join(fields)} }}" if fields else str(name)
    if v is None:
        return "None"
    return display(vm, v)


_SPEC = re.compile(r"(?:(?P<fill>.)?(?P<align>[<>^]))?(?P<sign>\+)?(?P<alt>#)?(?P<zero>0)?(?P<width>\d+)?"
                   r"(?:\.(?P<prec>\d+))?(?P<kind>\?|x|X|b|o)?")


def format_value(vm: Meter, v: Any, spec: str) -> str:
    """`format!("{:SPEC}", v)` for one value (SPEC without the colon)."""
    m = _SPEC.fullmatch(spec)
    if m is None:
        raise panic(f"unsupported format spec {spec!r}")
    kind, prec = m.group("kind") or "", m.group("prec")
    numeric = type(v) in (int, float)
    if kind in ("x", "X", "b", "o"):
        if type(v) is not int:
            raise panic("unsupported: radix formatting of a non-integer")
        if v < 0:  # Rust prints the two's complement in the value's own width, which the value does not carry
            raise panic("unsupported: radix formatting of a negative integer")
        body = format(v, {"x": "x", "X": "X", "b": "b", "o": "o"}[kind])
        prefix = ("0" + kind.lower() if kind != "X" else "0x") if m.group("alt") else ""
    elif prec is not None and type(v) is float:
        body, prefix = format(v, f".{prec}f"), ""
        if math.isinf(v) or math.isnan(v):
            body = display_float(v)
    elif prec is not None and type(v) is str:
        body, prefix = v[:int(prec)], ""
    else:
        body, prefix = (debug(vm, v) if kind == "?" else display(vm, v)), ""
    negative = body.startswith("-")
    if negative and numeric:
        body = body[1:]
    sign = "-" if negative and numeric else "+" if m.group("sign") and numeric else ""
    width = int(m.group("width") or 0)
    if width > 1 << 16:
        raise panic("format width too large")
    head = sign + prefix
    if m.group("zero") and numeric:  # the 0 flag pads after the sign, whatever the fill and alignment say
        return head + body.rjust(width - len(head), "0")
    text = head + body
    fill = m.group("fill") or " "
    align = m.group("align") or (">" if numeric else "<")
    pad = max(0, width - len(text))
    if align == "<":
        return text + fill * pad
    if align == ">":
        return fill * pad + text
    return fill * (pad // 2) + text + fill * (pad - pad // 2)


# --- the builtins --------------------------------------------------------------------------------

def _fmt(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    text = format_value(vm, args[0], args[1])
    vm.charge(gas.words(len(text)))
    vm.alloc(arena.str_size(text))
    return text


def _concat(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    size = sum(len(a) for a in args)
    vm.charge(gas.words(size))
    vm.alloc(arena.str_size("") + size)
    return "".join(args)


def _print(newline: bool) -> Impl:
    def impl(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        text = args[0] + ("\n" if newline else "")
        vm.charge(gas.words(len(text)))
        vm.write(text)
    return impl


def _panic(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ExcValue:
    vm.alloc(arena.EXCEPTION)
    return ExcValue(EXC_TYPES["Panic"], (args[0],))


def _index(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    seq, i = args
    if not 0 <= i < len(seq):
        raise panic(f"index out of bounds: the len is {len(seq)} but the index is {i}")
    return seq[i]


def _set_index(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    seq, i, v = args
    if not 0 <= i < len(seq):
        raise panic(f"index out of bounds: the len is {len(seq)} but the index is {i}")
    seq[i] = v


def _vec_repeat(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    v, n = args
    if type(v) in (list, dict):
        raise panic("unsupported: vec![x; n] of a non-scalar value")
    vm.charge(n * gas.CELL)
    vm.alloc(arena.LIST + arena.SLOT * n)
    return [v] * n


def _clone(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    def copy(v: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise panic("value nested too deep to clone")
        t = type(v)
        if t is list:
            vm.charge(len(v) * gas.CELL)
            vm.alloc(arena.list_size(v))
            return [copy(x, depth + 1) for x in v]
        if t is dict:
            vm.charge(2 * len(v) * gas.CELL)
            vm.alloc(arena.DICT + 2 * arena.SLOT * len(v))
            return {k: copy(x, depth + 1) for k, x in v.items()}
        return v
    return copy(args[0], 0)


def _strlen(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    s = args[0]
    vm.charge(gas.words(len(s)))
    return len(s.encode("utf-8")) if not s.isascii() else len(s)


def _pop(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if not args[0]:
        raise panic("called `Option::unwrap()` on a `None` value")
    return args[0].pop()


def _remove(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    seq, i = args
    if not 0 <= i < len(seq):
        raise panic(f"removal index (is {i}) should be < len (is {len(seq)})")
    vm.charge(len(seq) * gas.ELEMENT)
    return seq.pop(i)


def _insert(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    seq, i, v = args
    if not 0 <= i <= len(seq):
        raise panic(f"insertion index (is {i}) should be <= len (is {len(seq)})")
    vm.charge(len(seq) * gas.ELEMENT)
    vm.alloc(arena.SLOT)
    seq.insert(i, v)


def _swap(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    seq, i, j = args
    for k in (i, j):
        if not 0 <= k < len(seq):
            raise panic(f"index out of bounds: the len is {len(seq)} but the index is {k}")
    seq[i], seq[j] = seq[j], seq[i]


def _sum(t: str) -> Impl:
    def impl(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        vm.charge(len(args[0]) * gas.ELEMENT)
        if t == "f64":
            return math.fsum(args[0]) if all(math.isfinite(x) for x in args[0]) else sum(args[0], 0.0)
        total = 0
        for x in args[0]:
            total = _check(t, total + x, "add")
        return total
    return impl


def _unwrap(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if args[0] is None:
        raise panic("called `Option::unwrap()` on a `None` value")
    return args[0]


def _guard(fn: Impl) -> Impl:
    """Turn a _Panic raised by an operation into the guest's Panic exception."""
    def impl(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            return fn(vm, args, kwargs)
        except _Panic as e:
            raise exc("Panic", str(e)) from None
    return impl


def _lift(fn: Callable[..., Any]) -> Impl:
    return lambda vm, args, kwargs: fn(*args)


def table() -> dict[str, Builtin]:
    """The `rs.*` builtins: `rs.OP.TYPE` for the typed arithmetic, and the helpers below."""
    impls: dict[str, Impl] = {}
    for t in INT_TYPES:
        impls.update({f"{op}.{t}": _lift(fn) for op, fn in _int_ops(t).items()})
        impls[f"sum.{t}"] = _sum(t)
    impls.update({f"{op}.f64": _lift(fn) for op, fn in _FLOAT_OPS.items()})
    impls["sum.f64"] = _sum("f64")
    impls.update({
        "fmt": _fmt, "concat": _concat, "println": _print(True), "print": _print(False), "panic": _panic,
        "index": _index, "set_index": _set_index, "vec_repeat": _vec_repeat, "clone": _clone, "strlen": _strlen,
        "pop_unwrap": _pop, "remove": _remove, "insert": _insert, "swap": _swap, "unwrap": _unwrap,
    })
    return {f"rs.{name}": Builtin(f"rs.{name}", _guard(impl)) for name, impl in impls.items()}
