"""The values a CRUSH program computes with.

Python's own objects carry the subset's immutable and container types, so that CPython's
arithmetic, string and container code gives the guest Python's semantics: int (arbitrary
precision), float, bool, None, str, list, dict, tuple and range are the host's types. Everything
else is one of the small classes below, each with explicit fields only (no Python closures or
generators: every value can be serialised by crush/state.py):

    Cell       a captured variable (closures share it)
    Function   a guest function: its code, default values and closure cells
    Builtin    a builtin function or type (`py.len`, `py.int`), implemented by the VM
    ExcType    a builtin exception type; ExcValue an exception (type, args, traceback)
    *Iter      explicit iterators (position kept as data), DictView a dict's keys/values/items

Invariant: a guest value is never any other Python object. Numbers and strings are *scalars*:
they have no identity in CRUSH (`is` compares them by value, see crush/ops.py), so nothing about
them depends on CPython's object caching. Containers and the classes here have identity, which
serialisation preserves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from crush.errors import GuestError


class _Unbound:
    """The value of a local, cell or global that is declared but not bound."""
    __slots__ = ()

    def __repr__(self) -> str:
        return "<unbound>"


UNBOUND: Any = _Unbound()


class Cell:
    __slots__ = ("value",)

    def __init__(self, value: Any = UNBOUND) -> None:
        self.value = value


class Function:
    """A guest function. `code` is the VM's loaded form of a CASM function (crush.vm.Code)."""
    __slots__ = ("cells", "code", "defaults")

    def __init__(self, code: Any, defaults: tuple[Any, ...], cells: tuple[Cell, ...]) -> None:
        self.code = code
        self.defaults = defaults
        self.cells = cells


class Builtin:
    """A builtin function (`impl(vm, args, kwargs)`), or a builtin type when `pytype` is set
    (then it also answers isinstance). `key` is its CAST name (`py.len`)."""
    __slots__ = ("impl", "key", "name", "pytype")

    def __init__(self, key: str, impl: Any, pytype: type | tuple[type, ...] | None = None) -> None:
        self.key = key
        self.name = key.rpartition(".")[2]
        self.impl = impl
        self.pytype = pytype


class ExcType:
    """A builtin exception type. `mro` is the type and its ancestors, nearest first."""
    __slots__ = ("key", "mro", "name", "parent")

    def __init__(self, name: str, parent: ExcType | None) -> None:
        self.name = name
        self.key = "py." + name
        self.parent = parent
        self.mro: tuple[ExcType, ...] = (self, *(parent.mro if parent else ()))


class ExcValue:
    """An exception: its type, its arguments and the traceback recorded as it propagated
    (a list of [function name, line], outermost last, as frames unwind)."""
    __slots__ = ("args", "etype", "tb")

    def __init__(self, etype: ExcType, args: tuple[Any, ...], tb: list[list[Any]] | None = None) -> None:
        self.etype = etype
        self.args = args
        self.tb: list[list[Any]] = tb if tb is not None else []


class SeqIter:
    """Iterator over a list, tuple or str: reads `seq[i]` from the live sequence (a list that
    grows while it is iterated yields the new items, as in CPython)."""
    __slots__ = ("i", "seq")

    def __init__(self, seq: Any, i: int = 0) -> None:
        self.seq = seq
        self.i = i


class RevIter:
    """reversed() over a list, tuple or str: index `i` counts down to -1."""
    __slots__ = ("i", "seq")

    def __init__(self, seq: Any, i: int) -> None:
        self.seq = seq
        self.i = i


class RangeIter:
    """Iterator over a range: the next value and how many are left."""
    __slots__ = ("cur", "left", "step")

    def __init__(self, cur: int, step: int, left: int) -> None:
        self.cur = cur
        self.step = step
        self.left = left


class DictIter:
    """Iterator over a dict's keys, values or items (optionally reversed). `it` is CPython's
    own iterator (so mutation during iteration behaves as in CPython); `n` counts the items
    taken, which is what serialisation keeps (a resumed iterator skips `n` items); `size` is
    the dict's length when iteration began."""
    __slots__ = ("d", "it", "kind", "n", "rev", "size")

    def __init__(self, d: dict[Any, Any], kind: str, rev: bool = False, n: int = 0) -> None:
        self.d = d
        self.kind = kind
        self.rev = rev
        self.size = len(d)
        self.n = 0
        self.it: Iterator[Any] = _dict_iter(d, kind, rev)
        for _ in range(min(n, len(d))):  # a restored iterator resumes after the items it took
            next(self.it)
        self.n = n


def _dict_iter(d: dict[Any, Any], kind: str, rev: bool) -> Iterator[Any]:
    view = d.keys() if kind == "keys" else d.values() if kind == "values" else d.items()
    return reversed(view) if rev else iter(view)


class EnumIter:
    __slots__ = ("child", "count", "guest")

    def __init__(self, child: Any, count: int) -> None:
        self.child = child
        self.count = count
        self.guest = is_guest_iter(child)


class ZipIter:
    __slots__ = ("children", "guest")

    def __init__(self, children: tuple[Any, ...]) -> None:
        self.children = children
        self.guest = any(is_guest_iter(c) for c in children)


class MapIter:
    """map(fn, *iterators): always stepped by prelude code (fn may be a guest function)."""
    __slots__ = ("children", "fn")
    guest = True

    def __init__(self, fn: Any, children: tuple[Any, ...]) -> None:
        self.fn = fn
        self.children = children


class FilterIter:
    __slots__ = ("child", "fn")
    guest = True

    def __init__(self, fn: Any, child: Any) -> None:
        self.fn = fn
        self.child = child


ITERATORS = (SeqIter, RevIter, RangeIter, DictIter, EnumIter, ZipIter, MapIter, FilterIter)


def is_guest_iter(it: Any) -> bool:
    """True for an iterator whose next item needs prelude (guest) code: map, filter, and
    enumerate/zip over such an iterator."""
    return type(it) in (MapIter, FilterIter) or (type(it) in (EnumIter, ZipIter) and bool(it.guest))


class DictView:
    __slots__ = ("d", "kind")
    __hash__ = None  # type: ignore[assignment]  # unhashable, as in CPython

    def __init__(self, d: dict[Any, Any], kind: str) -> None:
        self.d = d
        self.kind = kind

    def __len__(self) -> int:
        return len(self.d)


class TailCall:
    """Returned by a builtin that continues in guest code: the VM calls `fn(*args, **kwargs)`
    in the builtin's place. Never a guest value."""
    __slots__ = ("args", "fn", "kwargs")

    def __init__(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs or {}


# ----------------------------------------------------------------------------------------------
# Type names (as CPython spells them in messages)

_NATIVE_NAMES: dict[type, str] = {
    int: "int", bool: "bool", float: "float", str: "str", list: "list", dict: "dict", tuple: "tuple",
    type(None): "NoneType", range: "range",
}
_ITER_NAMES: dict[type, str] = {
    RangeIter: "range_iterator", EnumIter: "enumerate", ZipIter: "zip", MapIter: "map", FilterIter: "filter",
    Function: "function", Cell: "cell", ExcType: "type",
}


def type_name(v: Any) -> str:
    t = type(v)
    name = _NATIVE_NAMES.get(t) or _ITER_NAMES.get(t)
    if name:
        return name
    if t is ExcValue:
        return str(v.etype.name)
    if t is Builtin:
        return "type" if v.pytype is not None else "builtin_function_or_method"
    if t is SeqIter:
        s = type(v.seq)
        return "list_iterator" if s is list else "tuple_iterator" if s is tuple else \
            "str_ascii_iterator" if v.seq.isascii() else "str_iterator"
    if t is RevIter:
        return "list_reverseiterator" if type(v.seq) is list else "reversed"
    if t is DictIter:
        return f"dict_{'reverse' if v.rev else ''}{v.kind[:-1] if v.kind != 'items' else 'item'}iterator"
    if t is DictView:
        return f"dict_{v.kind}"
    raise AssertionError(f"not a guest value: {t.__name__}")


# ----------------------------------------------------------------------------------------------
# Exceptions

_HIERARCHY: tuple[tuple[str, str | None], ...] = (
    ("BaseException", None), ("Exception", "BaseException"),
    ("ArithmeticError", "Exception"), ("ZeroDivisionError", "ArithmeticError"), ("OverflowError", "ArithmeticError"),
    ("LookupError", "Exception"), ("IndexError", "LookupError"), ("KeyError", "LookupError"),
    ("ValueError", "Exception"), ("TypeError", "Exception"), ("AttributeError", "Exception"),
    ("NameError", "Exception"), ("UnboundLocalError", "NameError"),
    ("RuntimeError", "Exception"), ("RecursionError", "RuntimeError"), ("NotImplementedError", "RuntimeError"),
    ("AssertionError", "Exception"), ("StopIteration", "Exception"),
    ("OSError", "Exception"), ("FileNotFoundError", "OSError"), ("FileExistsError", "OSError"),
    ("IsADirectoryError", "OSError"), ("NotADirectoryError", "OSError"), ("PermissionError", "OSError"),
    # JavaScript (crush/jsops.py): `new Error(m)`, `new RangeError(m)` (JS's TypeError is Python's), and any
    # other thrown value, carried as JSThrow(value); Rust (crush/rsops.py): a panic, which nothing catches
    ("Error", "Exception"), ("RangeError", "Error"), ("JSThrow", "Exception"), ("Panic", "BaseException"),
)


def _build_types() -> dict[str, ExcType]:
    types: dict[str, ExcType] = {}
    for name, parent in _HIERARCHY:
        types[name] = ExcType(name, types[parent] if parent else None)
    return types


EXC_TYPES: dict[str, ExcType] = _build_types()


def exc(name: str, *args: Any) -> GuestError:
    """A guest exception of builtin type NAME, ready to raise: `raise exc("ValueError", "msg")`."""
    return GuestError(ExcValue(EXC_TYPES[name], args))


def from_native(error: BaseException) -> ExcValue | None:
    """The guest exception for a Python exception raised by a native operation on guest values
    (CPython's message kept), or None if it has no guest counterpart (a VM bug)."""
    if isinstance(error, RecursionError):
        return ExcValue(EXC_TYPES["RecursionError"], ("maximum recursion depth exceeded",))
    for klass in type(error).__mro__:
        etype = EXC_TYPES.get(klass.__name__) if klass.__module__ == "builtins" else None
        if etype is None:
            continue
        if etype.name == "KeyError" and error.args:
            return ExcValue(etype, (error.args[0],))
        return ExcValue(etype, (str(error),) if error.args else ())
    return None
