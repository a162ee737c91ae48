"""Turning values into text: repr(), str(), format() with a format spec, and printf-style `%`.

All of it is CPython's output for the subset's types, computed without handing a container to
CPython's own repr (whose recursion, unmetered work on shared substructure and lack of a size
bound a program could exploit): `repr_value` walks containers with an explicit stack (any
depth; a container met again while it is being written prints as `[...]`/`{...}`, as in
CPython), charges gas as it writes and reserves arena space for the text before it grows past
each TEXT_CHUNK. Scalars go to CPython (its float repr, its int conversion within the 4300-digit
limit, its str escaping) once their output size is known to be bounded.

`format_value` accepts CPython's format specs for int, float, bool and str and bounds their
width and precision before formatting; the locale-dependent `n` type is refused (it would make a
program's output depend on the host). `percent_format` is `str % args`, reimplemented so that
every conversion's size is bounded first.
"""

from __future__ import annotations

import re
import string
import sys
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from crush import gas
from crush.values import (
    Builtin,
    Cell,
    DictIter,
    DictView,
    EnumIter,
    ExcType,
    ExcValue,
    FilterIter,
    Function,
    MapIter,
    RangeIter,
    RevIter,
    SeqIter,
    ZipIter,
    exc,
    type_name,
)

TEXT_CHUNK = 1 << 16
MAX_STR_DIGITS = 4300
_TEN_LIMIT = 10 ** MAX_STR_DIGITS
_DIGITS_ERROR = ("Exceeds the limit (4300 digits) for integer string conversion; "
                 "use sys.set_int_max_str_digits() to increase the limit")


class Meter(Protocol):
    """What value operations need from the VM: pay gas, reserve arena bytes (with the values
    that must count as live while the operation runs), the prelude's functions (to continue in
    guest code) and the output sink."""

    prelude: Mapping[str, Any]

    def charge(self, amount: int) -> None: ...

    def alloc(self, nbytes: int, *keep: Any) -> None: ...

    def write(self, text: str) -> None: ...


def int_repr(vm: Meter, v: int) -> str:
    if v >= _TEN_LIMIT or -v >= _TEN_LIMIT:
        raise exc("ValueError", _DIGITS_ERROR)
    bits = v.bit_length()
    if bits > 256:
        vm.charge(gas.product(bits, bits))
    return repr(int(v))


def str_value(vm: Meter, v: Any) -> str:
    """str(v)."""
    t = type(v)
    if t is str:
        return str(v)
    if t is ExcValue:
        args = v.args
        if not args:
            return ""
        if len(args) == 1:
            return repr_value(vm, args[0]) if v.etype.name == "KeyError" else str_value(vm, args[0])
        return repr_value(vm, tuple(args))
    return repr_value(vm, v)


class _Close:
    __slots__ = ("obj", "text")

    def __init__(self, obj: Any, text: str) -> None:
        self.obj = obj
        self.text = text


def repr_value(vm: Meter, v: Any) -> str:
    """repr(v), iteratively."""
    t = type(v)
    if t is str:
        vm.charge(gas.words(len(v)))
        return repr(v)
    if t is int:
        return int_repr(vm, v)
    if t is float or t is bool or v is None:
        return repr(v)
    out: list[str] = []
    size = 0
    reserved = 0
    active: set[int] = set()
    work: list[Any] = [v]
    while work:
        item = work.pop()
        t = type(item)
        if t is _Piece:
            piece = str.__str__(item)
        elif t is _Close:
            active.discard(id(item.obj))
            piece = item.text
        else:
            piece = _open(vm, item, t, active, work)
        out.append(piece)
        size += len(piece)
        if size - reserved >= TEXT_CHUNK:
            vm.charge(gas.words(size - reserved))
            vm.alloc(size - reserved)
            reserved = size
    vm.charge(gas.words(size - reserved))
    return "".join(out)


class _Piece(str):
    """Literal text queued on repr_value's work stack (told apart from guest strings)."""
    __slots__ = ()


_SEP = _Piece(", ")
_COLON = _Piece(": ")


def _open(vm: Meter, item: Any, t: type, active: set[int], work: list[Any]) -> str:
    """The text that starts `item`; queues what follows it (in reverse) on `work`."""
    if t is str:
        vm.charge(gas.words(len(item)))
        return repr(item)
    if t is int:
        return int_repr(vm, item)
    if t is float or t is bool or item is None:
        return repr(item)
    if t is list or t is tuple or t is dict:
        if id(item) in active:
            return "[...]" if t is list else "{...}" if t is dict else "(...)"
        if not item:
            return "[]" if t is list else "{}" if t is dict else "()"
        vm.charge(gas.ELEMENT * len(item))
        active.add(id(item))
        if t is list:
            opener, closer = "[", "]"
        elif t is dict:
            opener, closer = "{", "}"
        else:
            opener, closer = "(", ",)" if len(item) == 1 else ")"
        work.append(_Close(item, closer))
        if t is dict:
            entries = list(item.items())
            for i in range(len(entries) - 1, -1, -1):
                work.append(entries[i][1])
                work.append(_COLON)
                work.append(entries[i][0])
                if i:
                    work.append(_SEP)
        else:
            for i in range(len(item) - 1, -1, -1):
                work.append(item[i])
                if i:
                    work.append(_SEP)
        return opener
    if t is DictView:
        inner = list(item.d.keys()) if item.kind == "keys" else list(item.d.values()) if item.kind == "values" \
            else list(item.d.items())
        work.append(_Piece(")"))
        work.append(inner)
        return f"dict_{item.kind}("
    if t is ExcValue:
        work.append(_Piece(")"))
        if len(item.args) == 1:
            work.append(item.args[0])
        elif item.args:
            work.append(_Inner(tuple(item.args)))
        return str(item.etype.name) + "("
    if t is _Inner:
        # a tuple written without its parentheses (an exception's arguments)
        for i in range(len(item.items) - 1, -1, -1):
            work.append(item.items[i])
            if i:
                work.append(_SEP)
        return ""
    return simple_repr(item)


class _Inner:
    __slots__ = ("items",)

    def __init__(self, items: tuple[Any, ...]) -> None:
        self.items = items


def simple_repr(v: Any) -> str:
    """repr of a value that contains no other values' text."""
    t = type(v)
    if t is range:
        return repr(v) if v.step != 1 else f"range({v.start}, {v.stop})"
    if t is Function:
        return f"<function {v.code.qualname}>"
    if t is Builtin:
        return f"<class '{v.name}'>" if v.pytype is not None else f"<built-in function {v.name}>"
    if t is ExcType:
        return f"<class '{v.name}'>"
    if t is Cell:
        return "<cell>"
    if t in (SeqIter, RevIter, RangeIter, DictIter, EnumIter, ZipIter, MapIter, FilterIter):
        return f"<{type_name(v)} object>"
    raise AssertionError(f"not a guest value: {t.__name__}")


# ----------------------------------------------------------------------------------------------
# format(value, spec)

_SPEC = re.compile(r"(?:(?P<fill>.)?(?P<align>[<>=^]))?(?P<sign>[-+ ])?(?P<z>z)?(?P<alt>\#)?(?P<zero>0)?"
                   r"(?P<width>\d+)?(?P<group>[,_])?(?:\.(?P<prec>\d+))?(?P<type>[a-zA-Z%])?", re.S)
_MAX_WIDTH = sys.maxsize   # CPython's limits: a Py_ssize_t width, a C int precision
_MAX_PREC = (1 << 31) - 1


def format_value(vm: Meter, v: Any, spec: str) -> str:
    """format(v, spec), as CPython's __format__ of the subset's types."""
    if not spec:
        return str_value(vm, v)
    t = type(v)
    if t not in (int, float, bool, str):
        raise exc("TypeError", f"unsupported format string passed to {type_name(v)}.__format__")
    m = _SPEC.fullmatch(spec)
    if m is not None:
        if m.group("type") == "n":
            raise exc("ValueError", "format type 'n' is not supported by CRUSH (it depends on the host's locale)")
        width = int(m.group("width") or 0)
        prec = int(m.group("prec") or 0)
        if width <= _MAX_WIDTH and prec <= _MAX_WIDTH:  # CPython refuses bigger ones itself
            if t is str:
                base = len(v)
            elif t is float:
                base = 330
            else:
                if m.group("type") in (None, "d") and (v >= _TEN_LIMIT or -v >= _TEN_LIMIT):
                    raise exc("ValueError", _DIGITS_ERROR)
                base = int(v).bit_length() + 2
            estimate = max(width, 2 * base + prec + 16)
            vm.charge(gas.words(estimate))
            vm.alloc(estimate, v)
    return str(format(v, spec))


# ----------------------------------------------------------------------------------------------
# str % args

_PCT = re.compile(r"%(?:\((?P<key>[^)]*)\))?(?P<flags>[-+ #0]*)(?P<width>\*|\d+)?(?:\.(?P<prec>\*|\d+))?"
                  r"(?P<len>[hlL])?(?P<type>.?)", re.S)


def percent_format(vm: Meter, fmt: str, args: Any) -> str:
    """fmt % args, with CPython's rules and messages."""
    ta = type(args)
    positional: tuple[Any, ...] = tuple(args) if ta is tuple else (args,)
    mapping = args if ta in (dict, list, range) else None
    index = 0
    out: list[str] = []
    pos = 0
    used_mapping = False

    def take() -> Any:
        nonlocal index
        if index >= len(positional):
            raise exc("TypeError", "not enough arguments for format string")
        index += 1
        return positional[index - 1]

    while True:
        nxt = fmt.find("%", pos)
        if nxt < 0:
            out.append(fmt[pos:])
            break
        out.append(fmt[pos:nxt])
        m = _PCT.match(fmt, nxt)
        assert m is not None
        kind = m.group("type")
        if kind == "":
            raise exc("ValueError", "incomplete format")
        if kind == "%" and m.end() == nxt + 2:
            out.append("%")
            pos = m.end()
            continue
        key = m.group("key")
        width = m.group("width")
        prec = m.group("prec")
        if width == "*":
            width = str(_star(take(), _MAX_WIDTH, "ssize_t"))
        if prec == "*":
            prec = str(_star(take(), _MAX_PREC, "int"))
        if key is not None:
            if ta is not dict:
                raise exc("TypeError", "format requires a mapping")
            used_mapping = True
            if key not in args:
                raise exc("KeyError", key)
            value = args[key]
        else:
            value = take()
        w = int(width) if width and width.lstrip("-").isdigit() else 0
        p = int(prec) if prec and prec.isdigit() else 0
        flags = m.group("flags")
        out.append(_convert(vm, kind, value, flags, w, p, prec is not None, nxt + len(m.group(0)) - 1))
        pos = m.end()
    if index < len(positional) and mapping is None and not used_mapping:
        raise exc("TypeError", "not all arguments converted during string formatting")
    return "".join(out)


def _star(v: Any, limit: int, ctype: str) -> int:
    if type(v) is not int:
        raise exc("TypeError", "* wants int")
    if abs(v) > limit:
        raise exc("OverflowError", f"Python int too large to convert to C {ctype}")
    return int(v)


def _convert(vm: Meter, kind: str, value: Any, flags: str, width: int, prec: int, has_prec: bool,  # noqa: PLR0917
             at: int) -> str:
    if width > _MAX_WIDTH or prec > _MAX_PREC:
        raise exc("ValueError", "width too big" if width > _MAX_WIDTH else "precision too big")
    spec = "%" + flags + (str(width) if width else "") + (f".{prec}" if has_prec else "")
    if kind in "sra":
        text = str_value(vm, value) if kind == "s" else repr_value(vm, value)
        if kind == "a":
            text = text.encode("ascii", "backslashreplace").decode("ascii")
        size = max(width, len(text))
        vm.charge(gas.words(size))
        vm.alloc(size)
        return (spec + "s") % (text,)
    if kind == "c":
        if type(value) is str and len(value) == 1:
            return (spec + "c") % (value,)
        if type(value) in (int, bool):
            return (spec + "c") % (value,)
        raise exc("TypeError", "%c requires int or char")
    if kind in "diouxXeEfFgG":
        t = type(value)
        if t not in (int, float, bool):
            need = "an integer" if kind in "oxX" else "a real number"
            raise exc("TypeError", f"%{kind} format: {need} is required, not {type_name(value)}")
        if t is not float and kind in "diu" and (value >= _TEN_LIMIT or -value >= _TEN_LIMIT):
            raise exc("ValueError", _DIGITS_ERROR)
        base = 330 if t is float else int(value).bit_length() + 2
        size = max(width, 2 * base + prec + 16)
        vm.charge(gas.words(size))
        vm.alloc(size, value)
        return (spec + kind) % (value,)
    raise exc("ValueError", f"unsupported format character '{kind}' (0x{ord(kind):x}) at index {at}")


# ----------------------------------------------------------------------------------------------
# str.format(*args, **kwargs)


def str_format(vm: Meter, fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    """fmt.format(*args, **kwargs) with CPython's rules and messages. Fields name arguments and
    may index them (`{0[1]}`, `{p[name]}`); attribute fields (`{0.real}`) are refused: they
    would reach the host's objects."""
    state = {"auto": 0, "mode": ""}
    vm.charge(gas.words(len(fmt)))
    return _format_fields(vm, fmt, args, kwargs, state, 2)


def _format_fields(vm: Meter, fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any],  # noqa: PLR0917
                   state: dict[str, Any], depth: int) -> str:
    if depth < 0:
        raise exc("ValueError", "Max string recursion exceeded")
    out: list[str] = []
    for literal, field, field_spec, conv in _PARSER.parse(fmt):
        out.append(literal)
        if field is None:
            continue
        spec = field_spec
        value = _field_value(vm, field, args, kwargs, state)
        if conv == "r":
            value = repr_value(vm, value)
        elif conv == "s":
            value = str_value(vm, value)
        elif conv == "a":
            value = repr_value(vm, value).encode("ascii", "backslashreplace").decode("ascii")
        elif conv is not None:
            raise exc("ValueError", f"Unknown conversion specifier {conv}")
        if spec and "{" in spec:
            spec = _format_fields(vm, spec, args, kwargs, state, depth - 1)
        out.append(format_value(vm, value, spec or ""))
    return "".join(out)


_PARSER = string.Formatter()
_FIELD_PART = re.compile(r"\.([^.\[]*)|\[([^\]]*)\]")


def _split_field(field: str) -> tuple[str | int, Iterator[tuple[bool, str | int]]]:
    """A replacement field's argument name and its `.attr`/`[key]` accessors, as CPython splits
    them (digits are integers)."""
    end = min((i for i in (field.find("."), field.find("[")) if i >= 0), default=len(field))
    head = field[:end]
    parts: list[tuple[bool, str | int]] = []
    pos = end
    while pos < len(field):
        m = _FIELD_PART.match(field, pos)
        if m is None or m.end() == pos:
            raise exc("ValueError", "Only '.' or '[' may follow ']' in format field specifier")
        key = m.group(1) if m.group(1) is not None else m.group(2)
        parts.append((m.group(1) is not None, int(key) if key.isdigit() else key))
        pos = m.end()
    return (int(head) if head.isdigit() else head), iter(parts)


def _field_value(vm: Meter, field: str, args: tuple[Any, ...], kwargs: Mapping[str, Any],
                 state: dict[str, Any]) -> Any:
    first, rest = _split_field(field)
    if first == "":
        if state["mode"] == "manual":
            raise exc("ValueError", "cannot switch from manual field specification to automatic field numbering")
        state["mode"] = "auto"
        first = state["auto"]
        state["auto"] += 1
    elif isinstance(first, int):
        if state["mode"] == "auto":
            raise exc("ValueError", "cannot switch from automatic field numbering to manual field specification")
        state["mode"] = "manual"
    if isinstance(first, int):
        if first >= len(args):
            raise exc("IndexError", f"Replacement index {first} out of range for positional args tuple")
        value = args[first]
    else:
        if first not in kwargs:
            raise exc("KeyError", first)
        value = kwargs[first]
    for is_attr, key in rest:
        if is_attr:
            raise exc("ValueError", f"CRUSH's str.format does not support attribute fields ({field!r})")
        t = type(value)
        if t is dict:
            if key not in value:
                raise exc("KeyError", key)
            value = value[key]
        elif t in (list, tuple, str, range) and isinstance(key, int):
            if not -len(value) <= key < len(value):
                raise exc("IndexError", f"{type_name(value)} index out of range")
            value = value[key]
        else:
            raise exc("TypeError", f"{type_name(value)} indices must be integers or slices, not str")
    return value
