"""JavaScript's operations over CRUSH values: the meaning of the `js.*` typed operations.

The JavaScript walker (crush/walkers/javascript.py) lowers every operator whose meaning differs
from Python's to `["std.op", "js.NAME", ...]` (crush/cast.py), which the compiler turns into a
call of the builtin `js.NAME` implemented here. Values are the VM's own (crush/values.py):

    JS number     float (always: `1` is 1.0; integer-looking results print without ".0")
    JS string     str (a sequence of code points: strings with characters outside the BMP have
                  a different `length` than in JavaScript, a documented difference)
    boolean       bool
    undefined     None
    null          the builtin value `js.null` (NULL below: a singleton with identity)
    array         list;  object: dict with str keys (insertion order, as JS for non-index keys)
    function      a guest Function (or a builtin)
    thrown value  an exception of type JSThrow whose single argument is the value

Invariants: each operation is JavaScript's for these types (ECMAScript's ToNumber, ToString,
ToInt32, strict equality, relational comparison); work is paid for (gas) and new strings and
containers are reserved in the arena before they are made; nothing recurses without a bound
(`inspect` stops at node's default depth 2, `stringify` at MAX_JSON_DEPTH).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from crush import arena, gas
from crush.rsops import ieee_pow
from crush.text import Meter
from crush.values import EXC_TYPES, Builtin, ExcValue, Function, TailCall, exc

Impl = Callable[[Meter, tuple[Any, ...], dict[str, Any]], Any]

MAX_JSON_DEPTH = 100


def _null_impl(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    raise exc("TypeError", "null is not a function")


NULL = Builtin("js.null", _null_impl)
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


# --- conversions ---------------------------------------------------------------------------------

def num_str(x: float) -> str:
    """ECMAScript Number::toString(x) (radix 10)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    if x < 0:
        return "-" + num_str(-x)
    text = repr(x)
    mant, _, e = text.partition("e")
    whole, _, frac = mant.partition(".")
    digits = (whole + frac).lstrip("0")
    n = len(whole) + (int(e) if e else 0) - (len(whole + frac) - len((whole + frac).lstrip("0")))
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    exp = n - 1
    sign = "+" if exp >= 0 else "-"
    return (digits[0] + ("." + digits[1:] if k > 1 else "")) + "e" + sign + str(abs(exp))


def to_str(vm: Meter, v: Any) -> str:
    """ECMAScript ToString."""
    t = type(v)
    if t is str:
        return str(v)
    if t is float or t is int:
        return num_str(float(v))
    if t is bool:
        return "true" if v else "false"
    if v is None:
        return "undefined"
    if v is NULL:
        return "null"
    if t is list:
        return _join(vm, v, ",", 0)
    if t is dict:
        return "[object Object]"
    if t is ExcValue:
        return _error_text(v)
    return "function () { [native code] }" if t is Builtin else "function () { [code] }"


def _join(vm: Meter, v: list[Any], sep: str, depth: int) -> str:
    """Array.prototype.join (nested arrays joined with ","; bounded nesting)."""
    if depth > MAX_JSON_DEPTH:
        raise exc("RangeError", "Maximum call stack size exceeded (array nested too deep)")
    vm.charge(len(v) * gas.ELEMENT)
    parts = ["" if x is None or x is NULL else _join(vm, x, ",", depth + 1) if type(x) is list else to_str(vm, x)
             for x in v]
    text = sep.join(parts)
    vm.charge(gas.words(len(text)))
    vm.alloc(arena.str_size(text))
    return text


# The VM's own errors under the names JavaScript gives the same failures (an unbound name, a
# recursion past the frame limit); the VM's TypeError is JavaScript's TypeError already.
_JS_NAMES = {"NameError": "ReferenceError", "RecursionError": "RangeError"}


def error_name(e: ExcValue) -> str:
    """`e.name` of an error as JavaScript code sees it."""
    return _JS_NAMES.get(e.etype.name, e.etype.name)


def _error_text(e: ExcValue) -> str:
    return f"{error_name(e)}: {e.args[0] if e.args else ''}"


_NUMERIC = re.compile(r"[+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")


def to_num(v: Any) -> float:
    """ECMAScript ToNumber."""
    t = type(v)
    if t is float:
        return float(v)
    if t is bool or t is int:
        return float(v)
    if v is None:
        return math.nan
    if v is NULL:
        return 0.0
    if t is str:
        s = v.strip(" \t\n\r\v\f\u00a0\ufeff")
        if not s:
            return 0.0
        if re.fullmatch(r"0[xX][0-9a-fA-F]+", s):
            return float(int(s[2:], 16))
        if _NUMERIC.fullmatch(s):
            return float(s.replace("Infinity", "inf"))
        return math.nan
    if t is list:
        if not v:
            return 0.0
        if len(v) == 1 and type(v[0]) in (float, str):
            return to_num(v[0])
    return math.nan


def to_int32(v: Any) -> int:
    x = to_num(v)
    if math.isnan(x) or math.isinf(x):
        return 0
    n = int(x) & 0xFFFFFFFF
    return n - (1 << 32) if n >= 1 << 31 else n


def truth(v: Any) -> bool:
    """ECMAScript ToBoolean."""
    t = type(v)
    if t is bool:
        return bool(v)
    if t is float or t is int:
        return not (v == 0 or math.isnan(v))
    if t is str:
        return len(v) > 0
    return not (v is None or v is NULL)


def type_of(v: Any) -> str:
    t = type(v)
    if t is float or t is int:
        return "number"
    if t is str:
        return "string"
    if t is bool:
        return "boolean"
    if v is None:
        return "undefined"
    if t in (Function, Builtin) and v is not NULL:
        return "function"
    return "object"


def strict_eq(a: Any, b: Any) -> bool:
    ta, tb = type(a), type(b)
    if ta in (float, int) and tb in (float, int):
        return bool(a == b)
    if ta is not tb:
        return False
    if ta in (str, bool):
        return bool(a == b)
    return a is b


# --- operators -----------------------------------------------------------------------------------

def _concat(vm: Meter, a: str, b: str) -> str:
    vm.charge(gas.words(len(a) + len(b)))
    vm.alloc(arena.str_size(a) + len(b))
    return a + b


def _primitive(v: Any) -> bool:
    return type(v) in (float, int, str, bool) or v is None or v is NULL


def add(vm: Meter, a: Any, b: Any) -> Any:
    if not _primitive(a) or not _primitive(b) or type(a) is str or type(b) is str:
        return _concat(vm, to_str(vm, a), to_str(vm, b))
    return to_num(a) + to_num(b)


def _div(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _mod(a: float, b: float) -> float:
    if b == 0 or math.isnan(a) or math.isnan(b) or math.isinf(a):
        return math.nan
    if math.isinf(b):
        return a
    return math.fmod(a, b)


def _pow(a: float, b: float) -> float:
    if math.isnan(b) or (abs(a) == 1 and math.isinf(b)):  # where ECMAScript's ** differs from C's pow
        return math.nan
    return ieee_pow(a, b)


def _compare(vm: Meter, a: Any, b: Any, op: Callable[[Any, Any], bool]) -> bool:
    if type(a) is str and type(b) is str:
        vm.charge(gas.words(min(len(a), len(b))))
        return op(a, b)
    x, y = to_num(a), to_num(b)
    return False if math.isnan(x) or math.isnan(y) else op(x, y)


def _num2(fn: Callable[[float, float], float]) -> Callable[[Meter, Any, Any], Any]:
    return lambda vm, a, b: fn(to_num(a), to_num(b))


def _int2(fn: Callable[[int, int], int]) -> Callable[[Meter, Any, Any], Any]:
    def impl(vm: Meter, a: Any, b: Any) -> float:
        n = fn(to_int32(a), to_int32(b)) & 0xFFFFFFFF
        return float(n - (1 << 32) if n >= 1 << 31 else n)
    return impl


def _ushr(vm: Meter, a: Any, b: Any) -> float:
    return float((to_int32(a) & 0xFFFFFFFF) >> (to_int32(b) & 31))


_BINARY: dict[str, Callable[[Meter, Any, Any], Any]] = {
    "add": add,
    "sub": _num2(lambda a, b: a - b), "mul": _num2(lambda a, b: a * b), "div": _num2(_div),
    "mod": _num2(_mod), "pow": _num2(_pow),
    "bitand": _int2(lambda a, b: a & b), "bitor": _int2(lambda a, b: a | b), "bitxor": _int2(lambda a, b: a ^ b),
    "shl": _int2(lambda a, b: a << (b & 31)), "shr": _int2(lambda a, b: a >> (b & 31)), "ushr": _ushr,
    "lt": lambda vm, a, b: _compare(vm, a, b, lambda x, y: x < y),
    "le": lambda vm, a, b: _compare(vm, a, b, lambda x, y: x <= y),
    "gt": lambda vm, a, b: _compare(vm, a, b, lambda x, y: x > y),
    "ge": lambda vm, a, b: _compare(vm, a, b, lambda x, y: x >= y),
    "seq": lambda vm, a, b: strict_eq(a, b), "sne": lambda vm, a, b: not strict_eq(a, b),
}
_UNARY: dict[str, Callable[[Meter, Any], Any]] = {
    "neg": lambda vm, a: -to_num(a), "pos": lambda vm, a: to_num(a), "not": lambda vm, a: not truth(a),
    "bitnot": lambda vm, a: float(~to_int32(a)), "truth": lambda vm, a: truth(a),
    "typeof": lambda vm, a: type_of(a), "tostr": to_str, "num": lambda vm, a: to_num(a),
}


# --- property access -----------------------------------------------------------------------------

def keys_in_order(d: dict[str, Any]) -> list[str]:
    """An object's own keys in JavaScript's order: array-index keys ascending, then the others in
    insertion order."""
    index = sorted((k for k in d if _array_index(k) is not None and int(k) < 2 ** 32 - 1), key=int)
    if not index:
        return list(d)
    numeric = set(index)
    return index + [k for k in d if k not in numeric]


def _array_index(key: Any) -> int | None:
    if type(key) in (float, int) and not math.isnan(key) and float(key).is_integer() and key >= 0:
        return int(key)
    if type(key) is str and key.isdigit() and (key == "0" or not key.startswith("0")):
        return int(key)
    return None


def get(vm: Meter, obj: Any, key: Any) -> Any:
    """obj[key] / obj.key: arrays and strings by index and `length`, objects by string key."""
    t = type(obj)
    if t is list or t is str:
        if key == "length" and type(key) is str:
            return float(len(obj))
        i = _array_index(key)
        if i is None or i >= len(obj):
            return None
        return obj[i]
    if t is dict:
        return obj.get(to_str(vm, key))
    if obj is None or obj is NULL:
        raise exc("TypeError", f"Cannot read properties of {to_str(vm, obj)} (reading '{to_str(vm, key)}')")
    if t is ExcValue:
        if key == "message":
            return to_str(vm, obj.args[0]) if obj.args else ""
        if key == "name":
            return error_name(obj)
    return None


def set_(vm: Meter, obj: Any, key: Any, value: Any) -> Any:
    t = type(obj)
    if t is list:
        i = _array_index(key)
        if i is None:
            raise exc("TypeError", f"unsupported: setting property {to_str(vm, key)!r} of an array")
        if i >= len(obj):
            if i - len(obj) > 1 << 20:
                raise exc("RangeError", "array too sparse (unsupported)")
            vm.alloc(arena.SLOT * (i + 1 - len(obj)))
            obj.extend([None] * (i + 1 - len(obj)))
        obj[i] = value
        return value
    if t is dict:
        k = to_str(vm, key)
        if k not in obj:
            vm.alloc(2 * arena.SLOT + arena.str_size(k))
        obj[k] = value
        return value
    if obj is None or obj is NULL:
        raise exc("TypeError", f"Cannot set properties of {to_str(vm, obj)} (setting '{to_str(vm, key)}')")
    raise exc("TypeError", f"unsupported: setting a property of a {type_of(obj)}")


# --- methods of strings and arrays (those that do not call back into guest code) -------------------

def _arg(args: tuple[Any, ...], i: int) -> Any:
    return args[i] if i < len(args) else None


def _rel(x: Any, n: int, default: int) -> int:
    if x is None:
        return default
    f = to_num(x)
    if math.isnan(f):
        return 0
    i = int(f) if not math.isinf(f) else (n if f > 0 else -n)
    return max(0, n + i) if i < 0 else min(i, n)


# ECMAScript's WhiteSpace and LineTerminator (what trim removes; Python's isspace differs: it has
# \x1c-\x1f and \x85 and lacks \ufeff)
JS_SPACE = "\t\n\v\f\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
           "\u2028\u2029\u202f\u205f\u3000\ufeff"


def _integer(x: Any) -> int:
    """ToIntegerOrInfinity(x) (undefined and NaN: 0), infinities clipped to +-2**53 (beyond any length)."""
    f = 0.0 if x is None else to_num(x)
    return 0 if math.isnan(f) else int(max(min(f, 2.0 ** 53), -2.0 ** 53))


def _position(x: Any, n: int, default: int) -> int:
    """A position argument of the String.prototype search methods: ToIntegerOrInfinity, clamped to
    [0, n]; `default` when it is undefined."""
    if x is None:
        return default
    f = to_num(x)
    if math.isnan(f):
        return 0
    return int(min(max(f, 0), n))


def _str_method(vm: Meter, s: str, name: str, args: tuple[Any, ...]) -> Any:
    a0 = _arg(args, 0)
    if name in ("toUpperCase", "toLowerCase", "trim", "trimStart", "trimEnd"):
        vm.charge(gas.words(len(s)))
        vm.alloc(arena.str_size(s))
        if name.startswith("trim"):
            return {"trim": s.strip, "trimStart": s.lstrip, "trimEnd": s.rstrip}[name](JS_SPACE)
        return s.upper() if name == "toUpperCase" else s.lower()
    if name in ("charAt", "charCodeAt", "at"):
        i = _integer(a0)
        if name == "at" and i < 0:
            i += len(s)
        if 0 <= i < len(s):
            return s[i] if name != "charCodeAt" else float(ord(s[i]))
        return "" if name == "charAt" else math.nan if name == "charCodeAt" else None
    if name in ("indexOf", "includes", "startsWith", "endsWith", "lastIndexOf"):
        sub = to_str(vm, a0)
        vm.charge(gas.words(len(s)) * max(1, len(sub) // gas.WORD_BYTES))
        n, pos = len(s), _arg(args, 1)
        if name == "lastIndexOf":  # the last match starting at or before the position (NaN: the end)
            f = math.nan if pos is None else to_num(pos)
            return float(s.rfind(sub, 0, _position(pos, n, n) + len(sub) if not math.isnan(f) else n))
        if name == "endsWith":
            return s.endswith(sub, 0, _position(pos, n, n))
        start = _position(pos, n, 0)
        if name == "indexOf":
            return float(s.find(sub, start))
        return s.find(sub, start) >= 0 if name == "includes" else s.startswith(sub, start)
    if name in ("slice", "substring"):
        n = len(s)
        if name == "slice":
            lo, hi = _rel(a0, n, 0), _rel(_arg(args, 1), n, n)
        else:
            def clamp(x: Any, d: int) -> int:
                f = to_num(x) if x is not None else float(d)
                return 0 if math.isnan(f) else int(min(max(f, 0), n))
            lo, hi = clamp(a0, 0), clamp(_arg(args, 1), n)
            lo, hi = min(lo, hi), max(lo, hi)
        vm.alloc(arena.str_size(s[lo:hi]))
        return s[lo:hi]
    if name == "split":
        if a0 is None:
            return [s]
        sep = to_str(vm, a0)
        limit = _arg(args, 1)
        vm.charge(gas.words(len(s)) + len(s) * gas.CELL)
        parts = list(s) if sep == "" else s.split(sep)
        if limit is not None:  # ToUint32(limit) parts at most
            del parts[to_int32(limit) & 0xFFFFFFFF:]
        vm.alloc(arena.list_size(parts) + sum(arena.str_size(p) for p in parts))
        return parts
    if name in ("repeat", "padStart", "padEnd"):
        count = to_num(a0)
        if name == "repeat":
            if math.isinf(count) or _integer(count) < 0:  # NaN and -0.5 are 0 (ToIntegerOrInfinity)
                raise exc("RangeError", f"Invalid count value: {to_str(vm, a0)}")
            size = len(s) * _integer(count)
        else:
            size = max(len(s), _integer(count))
        vm.charge(gas.words(size))
        vm.alloc(arena.str_size(s) + size)
        if name == "repeat":
            return s * _integer(count)
        fill = " " if len(args) < 2 or args[1] is None else to_str(vm, args[1])
        if size <= len(s) or not fill:
            return s
        pad = (fill * (size // len(fill) + 1))[:size - len(s)]
        return pad + s if name == "padStart" else s + pad
    if name == "concat":
        return _concat(vm, s, "".join(to_str(vm, a) for a in args))
    if name == "toString":
        return s
    raise exc("TypeError", f"unsupported string method '{name}'")


def _array_method(vm: Meter, a: list[Any], name: str, args: tuple[Any, ...]) -> Any:
    if name == "push":
        vm.alloc(arena.SLOT * len(args))
        a.extend(args)
        return float(len(a))
    if name == "pop":
        return a.pop() if a else None
    if name == "shift":
        vm.charge(len(a) * gas.ELEMENT)
        return a.pop(0) if a else None
    if name == "unshift":
        vm.charge(len(a) * gas.ELEMENT)
        vm.alloc(arena.SLOT * len(args))
        a[0:0] = args
        return float(len(a))
    if name == "join":
        return _join(vm, a, "," if not args or args[0] is None else to_str(vm, args[0]), 0)
    if name in ("indexOf", "includes"):
        vm.charge(len(a) * gas.ELEMENT)
        x = _arg(args, 0)
        for i in range(_rel(_arg(args, 1), len(a), 0), len(a)):  # fromIndex: negative counts from the end
            y = a[i]
            if strict_eq(x, y) or (name == "includes" and type(x) is float and type(y) is float
                                   and math.isnan(x) and math.isnan(y)):
                return True if name == "includes" else float(i)
        return False if name == "includes" else -1.0
    if name == "lastIndexOf":  # fromIndex (default: the last element) counts from the end when negative
        vm.charge(len(a) * gas.ELEMENT)
        x = _arg(args, 0)
        k = len(a) - 1 if len(args) < 2 else _integer(args[1])
        for i in range(min(k, len(a) - 1) if k >= 0 else max(len(a) + k, -1), -1, -1):
            if strict_eq(x, a[i]):
                return float(i)
        return -1.0
    if name == "at":
        i = _integer(_arg(args, 0))
        i = i + len(a) if i < 0 else i
        return a[i] if 0 <= i < len(a) else None
    if name == "slice":
        lo, hi = _rel(_arg(args, 0), len(a), 0), _rel(_arg(args, 1), len(a), len(a))
        part = a[lo:hi]
        vm.charge(len(part) * gas.CELL)
        vm.alloc(arena.list_size(part))
        return part
    if name == "concat":
        out = list(a)
        for x in args:
            if type(x) is list:
                out.extend(x)
            else:
                out.append(x)
        vm.charge(len(out) * gas.CELL)
        vm.alloc(arena.list_size(out))
        return out
    if name == "reverse":
        vm.charge(len(a) * gas.ELEMENT)
        a.reverse()
        return a
    if name == "splice":
        lo = _rel(_arg(args, 0), len(a), 0)
        count = len(a) - lo if len(args) < 2 else max(0, min(len(a) - lo, _integer(args[1])))
        removed = a[lo:lo + count]
        vm.charge(len(a) * gas.ELEMENT)
        vm.alloc(arena.list_size(removed) + arena.SLOT * max(0, len(args) - 2))
        a[lo:lo + count] = args[2:]
        return removed
    if name == "fill":
        vm.charge(len(a) * gas.CELL)
        for i in range(_rel(_arg(args, 1), len(a), 0), _rel(_arg(args, 2), len(a), len(a))):
            a[i] = _arg(args, 0)
        return a
    if name == "toString":
        return to_str(vm, a)
    raise exc("TypeError", f"unsupported array method '{name}'")


def method(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """js.method(obj, name, *args): obj.name(*args) for the string, array and number methods that
    call no guest code (map/filter/reduce/... are lowered by the walker to JavaScript helpers)."""
    obj, name, rest = args[0], args[1], args[2:]
    t = type(obj)
    if t is str:
        return _str_method(vm, obj, name, rest)
    if t is list:
        return _array_method(vm, obj, name, rest)
    if t is float and name == "toFixed":
        digits = _integer(_arg(rest, 0))
        if not 0 <= digits <= 100:
            raise exc("RangeError", "toFixed() digits argument must be between 0 and 100")
        if abs(obj) >= 1e21 or math.isnan(obj):
            return num_str(obj)
        return _to_fixed(obj, digits)
    if t is float and name == "toString":
        return num_str(obj)
    if t is bool and name == "toString":
        return "true" if obj else "false"
    if t is dict and name == "toString" and name not in obj:
        return "[object Object]"
    if t is dict and callable_value(obj.get(name)):
        return TailCall(obj[name], rest)  # `this` is not in the subset: a plain call of the property
    raise exc("TypeError", f"{to_str(vm, obj) if _primitive(obj) else type_of(obj)}.{name} is not a function")


def _to_fixed(x: float, digits: int) -> str:
    from decimal import ROUND_HALF_UP, Decimal  # noqa: PLC0415 - rarely used
    d = Decimal(x).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    text = f"{d:f}"
    return text[1:] if text.startswith("-") and Decimal(text) == 0 and x > -0.5 * 10 ** -digits and x >= 0 else text


def callable_value(v: Any) -> bool:
    return type(v) in (Function, Builtin) and v is not NULL


# --- console.log: node's util.inspect for the subset ---------------------------------------------

def _quote(s: str) -> str:
    q = "'" if "'" not in s else '"' if '"' not in s else "`" if "`" not in s else "'"
    body = s.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
    if q == "'":
        body = body.replace("'", "\\'")
    return q + body + q


def inspect(vm: Meter, v: Any, depth: int = 0, indent: int = 0) -> str:
    """util.inspect(v) as node's console.log prints a non-string argument (default options)."""
    vm.charge(gas.ELEMENT)
    t = type(v)
    if t is str:
        return _quote(v) if depth > 0 else v
    if t is float or t is int:
        return "-0" if v == 0 and math.copysign(1.0, v) < 0 else num_str(float(v))
    if t in (Function, Builtin) and v is not NULL:
        name = getattr(getattr(v, "code", None), "name", "")
        return f"[Function: {name}]" if name and name != "<lambda>" else "[Function (anonymous)]"
    if t is ExcValue:
        return _error_text(v)
    if t is list:
        if depth > 2:
            return "[Array]"
        if not v:
            return "[]"
        shown = v[:100]
        out = [inspect(vm, x, depth + 1, indent + 2) for x in shown]
        if len(v) > 100:
            out.append(f"... {len(v) - 100} more item{'s' if len(v) - 100 > 1 else ''}")
        if len(out) > 6:
            out = _group(out, shown, indent, len(v) > 100)
        return _reduce(out, ("[", "]"), indent, len(out) == len(shown) + (len(v) > 100))
    if t is dict:
        if depth > 2:
            return "[Object]"
        if not v:
            return "{}"
        out = [f"{k if _IDENT.fullmatch(k) else _quote(k)}: {inspect(vm, v[k], depth + 1, indent + 2)}"
               for k in keys_in_order(v)]
        return _reduce(out, ("{", "}"), indent, True)
    return to_str(vm, v)


def _reduce(out: list[str], braces: tuple[str, str], indent: int, ungrouped: bool) -> str:
    if ungrouped:
        start = len(out) + indent + len(braces[0]) + 10
        total = len(out) + start + sum(len(x) for x in out)
        if total <= 80:
            joined = ", ".join(out)
            if "\n" not in joined:
                return f"{braces[0]} {joined} {braces[1]}"
    pad = "\n" + " " * indent
    return f"{braces[0]}{pad}  " + f",{pad}  ".join(out) + f"{pad}{braces[1]}"


def _group(out: list[str], values: list[Any], indent: int, extra: bool) -> list[str]:
    """node's groupArrayElements: short entries of a long array laid out in aligned columns."""
    n = len(out) - (1 if extra else 0)
    lens = [len(x) for x in out[:n]]
    total = sum(lens) + 2 * n
    widest = max(lens)
    actual = widest + 2
    if not (actual * 3 + indent < 80 and (total / actual > 5 or widest <= 6)):
        return out
    bias = math.sqrt(actual - total / len(out))
    biased = max(actual - 3 - bias, 1)
    columns = min(round(math.sqrt(2.5 * biased * n) / biased), (80 - indent) // actual, 12, 15)
    if columns <= 1:
        return out
    widths = [max(lens[j] for j in range(i, n, columns)) + 2 for i in range(columns)]
    numeric = all(type(x) in (float, int) for x in values)
    rows: list[str] = []
    for i in range(0, n, columns):
        last = min(i + columns, n)
        row = ""
        for j in range(i, last - 1):
            cell = out[j] + ", "
            row += cell.rjust(widths[j - i]) if numeric else cell.ljust(widths[j - i])
        row += out[last - 1].rjust(widths[last - 1 - i] - 2) if numeric else out[last - 1]
        rows.append(row)
    if extra:
        rows.append(out[-1])
    return rows


def console_log(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """console.log(...): node's util.format (placeholders in a first string argument followed by
    others), then each other argument inspected (a string as it is), joined by spaces."""
    parts: list[str] = []
    rest = 0
    if args and type(args[0]) is str and len(args) > 1:
        vm.charge(gas.words(len(args[0])))
        formatted = _format(vm, args[0], args)
        if formatted is not None:
            parts, rest = [formatted[0]], formatted[1] + 1
    parts += [a if type(a) is str else inspect(vm, a) for a in args[rest:]]
    text = " ".join(parts) + "\n"
    vm.charge(gas.words(len(text)))
    vm.write(text)


def _format(vm: Meter, first: str, args: tuple[Any, ...]) -> tuple[str, int] | None:
    """util.format's placeholders (%s %d %i %f %j %c %%) in `first`, as node's
    formatWithOptionsInternal reads them: the text and how many of args[1:] it used (None when
    it has no placeholder and no %%: `first` prints as it is). %o, %O and %s of an object (util.inspect with other
    options) are refused with a TypeError."""
    out: list[str] = []
    last = used = 0
    i = 0
    while i < len(first) - 1:
        if first[i] == "%":
            i += 1
            c = first[i]
            if used + 1 != len(args) and c in "sdifjoOc":
                used += 1
                v = args[used]
                if c in "oO" or (c == "s" and type(v) in (list, dict, ExcValue, Function, Builtin) and v is not NULL):
                    raise exc("TypeError", f"unsupported: console.log's %{c} of {type_of(v)}")
                if c == "s":
                    text = ("-0" if v == 0 and math.copysign(1.0, v) < 0 else num_str(v)) if type(v) is float \
                        else to_str(vm, v)
                elif c in "dif":
                    n = to_num(v) if c == "d" else _parse_int(vm, (v,), {}) if c == "i" else _parse_float(vm, (v,), {})
                    text = "-0" if n == 0 and math.copysign(1.0, n) < 0 else num_str(n)
                elif c == "j":
                    json_text = stringify(vm, (v,), {})
                    text = "undefined" if json_text is None else json_text
                else:
                    text = ""  # %c: CSS, which a terminal ignores
                if last != i - 1:
                    out.append(first[last:i - 1])
                out.append(text)
                last = i + 1
            elif c == "%":
                out.append(first[last:i])
                last = i + 1
        i += 1
    if last == 0:
        return None
    out.append(first[last:])
    return "".join(out), used


# --- JSON.stringify ------------------------------------------------------------------------------

def _json(vm: Meter, v: Any, depth: int) -> str | None:
    if depth > MAX_JSON_DEPTH:
        raise exc("RangeError", "JSON.stringify: nesting too deep")
    vm.charge(gas.ELEMENT)
    t = type(v)
    if t is str:
        return json.dumps(str(v), ensure_ascii=False)
    if t is float or t is int:
        return num_str(float(v)) if math.isfinite(v) else "null"
    if t is bool:
        return "true" if v else "false"
    if v is NULL:
        return "null"
    if t is list:
        return "[" + ",".join(_json(vm, x, depth + 1) or "null" for x in v) + "]"
    if t is dict:
        parts = [(k, _json(vm, v[k], depth + 1)) for k in keys_in_order(v)]
        return "{" + ",".join(f"{_json(vm, k, depth)}:{s}" for k, s in parts if s is not None) + "}"
    return None


def stringify(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    text = _json(vm, _arg(args, 0), 0)
    if text is not None:
        vm.alloc(arena.str_size(text))
    return text


# --- exceptions ----------------------------------------------------------------------------------

def throw(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ExcValue:
    """js.throw(v): the exception that `throw v` raises (an Error object is already one)."""
    v = args[0]
    if type(v) is ExcValue:
        return v
    vm.alloc(arena.EXCEPTION)
    return ExcValue(EXC_TYPES["JSThrow"], (v,))


def caught(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """js.caught(e): the value a `catch (x)` binds: what was thrown, or the VM's error as an Error."""
    e = args[0]
    if type(e) is ExcValue and e.etype.name == "JSThrow":
        return e.args[0] if e.args else None
    return e


def new_error(name: str) -> Impl:
    def impl(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ExcValue:
        vm.alloc(arena.EXCEPTION)
        message = "" if not args or args[0] is None else to_str(vm, args[0])
        return ExcValue(EXC_TYPES[name], (message,))
    return impl


# --- Math ----------------------------------------------------------------------------------------

def _round(x: float) -> float:
    if not math.isfinite(x):
        return x
    r = float(math.floor(x + 0.5))
    return math.copysign(0.0, x) if r == 0 else r  # -0.5 <= x < 0 rounds to -0


_MATH1: dict[str, Callable[[float], float]] = {
    "floor": lambda x: float(math.floor(x)) if math.isfinite(x) else x,
    "ceil": lambda x: float(math.ceil(x)) if math.isfinite(x) else x,
    "trunc": lambda x: float(math.trunc(x)) if math.isfinite(x) else x,
    "round": _round, "abs": abs,
    "sqrt": lambda x: math.sqrt(x) if x >= 0 else math.nan if not math.isnan(x) else x,
    "sign": lambda x: x if x == 0 or math.isnan(x) else math.copysign(1.0, x),
}


def _math1(name: str) -> Impl:
    fn = _MATH1[name]
    return lambda vm, args, kwargs: fn(to_num(_arg(args, 0)))


def _minmax(is_max: bool) -> Impl:
    def impl(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> float:
        vm.charge(len(args) * gas.ELEMENT)
        best = -math.inf if is_max else math.inf
        for a in args:
            x = to_num(a)
            if math.isnan(x):
                return math.nan
            if (x > best) if is_max else (x < best):
                best = x
            elif x == 0 and best == 0 and math.copysign(1.0, x) != math.copysign(1.0, best):
                best = 0.0 if is_max else -0.0  # -0 is less than +0 here
        return best
    return impl


_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _parse_int(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> float:
    """parseInt(string, radix): ECMAScript's white space, a sign, radix 0/undefined is 10 or 16 by a
    0x prefix (which radix 16 also accepts), a radix outside 2..36 is NaN, then the longest run of
    digits of the radix, correctly rounded to a double (a run too long for one is Infinity)."""
    s = to_str(vm, _arg(args, 0)).lstrip(JS_SPACE)
    vm.charge(gas.words(len(s)))
    sign = -1.0 if s.startswith("-") else 1.0
    if s.startswith(("-", "+")):
        s = s[1:]
    radix = to_int32(args[1]) if len(args) > 1 else 0
    if radix not in (0, 16) and not 2 <= radix <= 36:
        return math.nan
    if radix in (0, 16) and s[:2] in ("0x", "0X"):
        s, radix = s[2:], 16
    radix = radix or 10
    m = re.match(f"[{_DIGITS[:radix]}]+", s, re.IGNORECASE)
    if m is None:
        return math.nan
    digits = m.group().lstrip("0") or "0"
    if len(digits) > 1100:  # at least radix**1100 >= 2**1100, beyond the largest double
        return sign * math.inf
    try:
        return sign * float(int(digits, radix))
    except OverflowError:
        return sign * math.inf


def _parse_float(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> float:
    m = re.match(r"[+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)", to_str(vm, _arg(args, 0)).lstrip(JS_SPACE))
    return float(m.group().replace("Infinity", "inf")) if m else math.nan


def _op(name: str) -> Impl:
    if name in _BINARY:
        fn2 = _BINARY[name]
        return lambda vm, args, kwargs: fn2(vm, args[0], args[1])
    fn1 = _UNARY[name]
    return lambda vm, args, kwargs: fn1(vm, args[0])


def _call(fn: Callable[..., Any]) -> Impl:
    return lambda vm, args, kwargs: fn(vm, *args)


def _iterable(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """for-of's operand: arrays and strings (objects are not iterable in JavaScript)."""
    v = _arg(args, 0)
    if type(v) not in (list, str):
        raise exc("TypeError", f"{to_str(vm, v) if _primitive(v) else type_of(v)} is not iterable")
    return v


def _is_array(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    return type(_arg(args, 0)) is list


def _keys(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    obj = _arg(args, 0)
    keys: list[Any] = keys_in_order(obj) if type(obj) is dict else \
        [num_str(float(i)) for i in range(len(obj))] if type(obj) in (list, str) else []
    vm.charge(len(keys) * gas.CELL)
    vm.alloc(arena.list_size(keys) + sum(arena.str_size(k) for k in keys))
    return keys


def _string(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    return to_str(vm, _arg(args, 0)) if args else ""


def _number(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> float:
    return to_num(_arg(args, 0)) if args else 0.0


def _template(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    parts = [to_str(vm, a) for a in args]
    size = sum(len(p) for p in parts)
    vm.charge(gas.words(size))
    vm.alloc(arena.str_size("") + size)
    return "".join(parts)


def _new_array(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    if len(args) == 1 and type(args[0]) is float:
        n = args[0]
        if not (n >= 0 and n.is_integer() and n < 2 ** 32):
            raise exc("RangeError", "Invalid array length")
        vm.charge(int(n) * gas.CELL)
        vm.alloc(arena.LIST + arena.SLOT * int(n))
        return [None] * int(n)
    vm.alloc(arena.list_size(args))
    return list(args)


def _from_char_code(vm: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    return "".join(chr(to_int32(a) & 0xFFFF) for a in args)


def table() -> dict[str, Builtin]:
    """The `js.*` builtins (keys as crush/cast.py's JS_OPS lists them)."""
    impls: dict[str, Impl] = {name: _op(name) for name in (*_BINARY, *_UNARY)}
    impls.update({f"Math.{name}": _math1(name) for name in _MATH1})
    impls.update({
        "Math.max": _minmax(True), "Math.min": _minmax(False),
        "Math.pow": lambda vm, args, kwargs: _pow(to_num(_arg(args, 0)), to_num(_arg(args, 1))),
        "get": _call(get), "set": _call(set_), "method": method, "console.log": console_log,
        "JSON.stringify": stringify, "throw": throw, "caught": caught, "template": _template, "iterable": _iterable,
        "parseInt": _parse_int, "parseFloat": _parse_float, "Array.isArray": _is_array, "Object.keys": _keys,
        "String": _string, "Number": _number, "Array": _new_array, "String.fromCharCode": _from_char_code,
        "isNaN": lambda vm, args, kwargs: math.isnan(to_num(_arg(args, 0))),
        "Error": new_error("Error"), "TypeError": new_error("TypeError"), "RangeError": new_error("RangeError"),
    })
    out = {f"js.{name}": Builtin(f"js.{name}", impl) for name, impl in impls.items()}
    out["js.null"] = NULL
    return out
