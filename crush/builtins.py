"""The builtin functions (crush.cast.PY_BUILTINS) and the methods of the builtin types.

A builtin is `impl(vm, args, kwargs) -> value` (a method: `impl(vm, self, args, kwargs)`); it
raises guest exceptions with CPython's messages, pays gas and reserves arena space before its
work (crush/ops.py states the rules), and returns a `TailCall` to continue in prelude code when
it must call guest code (a key function, the items of a map/filter iterator): builtins never
call guest code themselves, so the VM's state stays plain data between instructions.

`BUILTINS` maps CAST names (`py.len`) to Builtin values; the `crush.*` entries are the hidden
helpers the prelude (crush/prelude.py) calls. `METHODS` maps a type to its methods by name.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from crush import arena, gas, jsops, ops, rsops
from crush.ops import EXHAUSTED, INTS, NATIVE, NUMBERS
from crush.text import Meter, repr_value, str_format, str_value
from crush.values import (
    EXC_TYPES,
    Builtin,
    DictIter,
    DictView,
    EnumIter,
    ExcType,
    ExcValue,
    FilterIter,
    MapIter,
    RangeIter,
    RevIter,
    TailCall,
    ZipIter,
    exc,
    is_guest_iter,
    type_name,
)

Args = tuple[Any, ...]
Kwargs = dict[str, Any]
Impl = Callable[[Meter, Args, Kwargs], Any]
MethodImpl = Callable[[Meter, Any, Args, Kwargs], Any]


def _no_kwargs(name: str, kwargs: Kwargs) -> None:
    if kwargs:
        raise TypeError(f"{name}() takes no keyword arguments")


def _one(name: str, args: Args, kwargs: Kwargs) -> Any:
    _no_kwargs(name, kwargs)
    if len(args) != 1:
        raise TypeError(f"{name}() takes exactly one argument ({len(args)} given)")
    return args[0]


def _count(name: str, args: Args, lo: int, hi: int) -> None:
    if len(args) < lo:
        raise TypeError(f"{name} expected {'at least ' if hi > lo else ''}{lo} argument{'s' * (lo != 1)}, "
                        f"got {len(args)}")
    if len(args) > hi:
        raise TypeError(f"{name} expected {'at most ' if hi > lo else ''}{hi} argument{'s' * (hi != 1)}, "
                        f"got {len(args)}")


def _kw(name: str, kwargs: Kwargs, allowed: tuple[str, ...]) -> None:
    for k in kwargs:
        if k not in allowed:
            raise TypeError(f"{name}() got an unexpected keyword argument '{k}'")


def _index(v: Any) -> int:
    if type(v) not in INTS:
        raise TypeError(f"'{type_name(v)}' object cannot be interpreted as an integer")
    return int(v)


# ----------------------------------------------------------------------------------------------
# Builtin functions


def b_print(vm: Meter, args: Args, kwargs: Kwargs) -> None:
    _kw("print", kwargs, ("sep", "end", "flush"))
    sep = kwargs.get("sep")
    end = kwargs.get("end")
    for what, v in (("sep", sep), ("end", end)):
        if v is not None and type(v) is not str:
            raise TypeError(f"{what} must be None or a string, not {type_name(v)}")
    text = (" " if sep is None else sep).join(str_value(vm, a) for a in args) + ("\n" if end is None else end)
    vm.charge(gas.words(len(text)))
    vm.write(text)


def b_len(vm: Meter, args: Args, kwargs: Kwargs) -> int:
    x = _one("len", args, kwargs)
    t = type(x)
    if t in (list, tuple, str, dict, range) or t is DictView:
        return len(x)
    raise TypeError(f"object of type '{type_name(x)}' has no len()")


def b_range(vm: Meter, args: Args, kwargs: Kwargs) -> range:
    _no_kwargs("range", kwargs)
    _count("range", args, 1, 3)
    ints = [_index(a) for a in args]
    if len(ints) == 3 and ints[2] == 0:
        raise ValueError("range() arg 3 must not be zero")
    vm.alloc(arena.RANGE + sum(arena.int_size(i) for i in ints))
    return range(*ints)


def _minmax(name: str, is_max: bool) -> Impl:
    def impl(vm: Meter, args: Args, kwargs: Kwargs) -> Any:
        _kw(name, kwargs, ("key", "default"))
        if not args:
            raise TypeError(f"{name} expected at least 1 argument, got 0")
        key = kwargs.get("key")
        has_default = "default" in kwargs
        if len(args) > 1 and has_default:
            raise TypeError(f"Cannot specify a default for {name}() with multiple positional arguments")
        source = args if len(args) > 1 else args[0]
        if key is not None or is_guest_iter(source):
            vm.alloc(arena.TUPLE + arena.SLOT * len(args))
            return TailCall(vm.prelude["minmax"], (source, key, kwargs.get("default"), has_default, is_max))
        it = ops.get_iter(vm, source)
        best = EXHAUSTED
        while True:
            item = ops.native_next(vm, it)
            if item is EXHAUSTED:
                break
            vm.charge(gas.ELEMENT)
            if best is EXHAUSTED or ops.compare(vm, "gt" if is_max else "lt", item, best):
                best = item
        if best is EXHAUSTED:
            if has_default:
                return kwargs["default"]
            raise ValueError(f"{name}() arg is an empty sequence")
        return best
    return impl


def b_sum(vm: Meter, args: Args, kwargs: Kwargs) -> Any:
    _kw("sum", kwargs, ("start",))
    if not args:
        raise TypeError("sum() takes at least 1 positional argument (0 given)")
    if len(args) > 2 or (len(args) == 2 and "start" in kwargs):
        raise TypeError(f"sum() takes at most 2 arguments ({len(args) + len(kwargs)} given)")
    start = args[1] if len(args) == 2 else kwargs.get("start", 0)
    if type(start) is str:
        raise TypeError("sum() can't sum strings [use ''.join(seq) instead]")
    if is_guest_iter(args[0]):
        return TailCall(vm.prelude["sum_from"], (args[0], start))
    it = ops.get_iter(vm, args[0])
    acc = start
    while True:
        item = ops.native_next(vm, it)
        if item is EXHAUSTED:
            return acc
        vm.charge(gas.ELEMENT)
        acc = ops.add(vm, acc, item)


class _SortKey:
    """A sort key whose `<` is the guest's (CPython's sort only ever uses `<`)."""
    __slots__ = ("v", "vm")

    def __init__(self, vm: Meter, v: Any) -> None:
        self.vm = vm
        self.v = v

    def __lt__(self, other: _SortKey) -> bool:
        return ops.compare(self.vm, "lt", self.v, other.v)


def sort_list(vm: Meter, items: list[Any], reverse: bool, keys: list[Any] | None = None) -> None:
    """Sort `items` in place with CPython's algorithm and the guest's `<` (by `keys` if given)."""
    n = len(items)
    vm.charge(gas.sort(n))
    if keys is not None:
        vm.alloc(arena.LIST + arena.SLOT * 2 * n, items, keys)
        pairs = [(_SortKey(vm, k), i) for i, k in enumerate(keys)]
        order = sorted(range(n), key=lambda i: pairs[i][0], reverse=reverse)
        items[:] = [items[i] for i in order]
        return
    kinds = {type(v) for v in items}
    if kinds <= {int, bool} or kinds <= {int, bool, float} or kinds == {str}:
        if str in kinds:
            vm.charge(gas.sort(n) * gas.words(max((len(s) for s in items), default=0)))
        items.sort(reverse=reverse)
    else:
        items.sort(key=functools.partial(_SortKey, vm), reverse=reverse)


def b_sorted(vm: Meter, args: Args, kwargs: Kwargs) -> Any:
    _kw("sorted", kwargs, ("key", "reverse"))
    _count("sorted", args, 1, 1)
    key = kwargs.get("key")
    reverse = bool(kwargs.get("reverse", False))
    if key is not None or is_guest_iter(args[0]):
        return TailCall(vm.prelude["sorted_key"], (args[0], key, reverse))
    items = list(ops.materialize(vm, args[0]))
    vm.charge(gas.CELL * len(items))
    vm.alloc(arena.list_size(items), args[0])
    sort_list(vm, items, reverse)
    return items


def b_reversed(vm: Meter, args: Args, kwargs: Kwargs) -> Any:
    x = _one("reversed", args, kwargs)
    t = type(x)
    vm.alloc(arena.ITERATOR, x)
    if t in (list, tuple, str):
        return RevIter(x, len(x) - 1)
    if t is range:
        n = ops._range_len(x)
        return RangeIter(x.start + (n - 1) * x.step, -x.step, n)
    if t is dict:
        return DictIter(x, "keys", rev=True)
    if t is DictView:
        return DictIter(x.d, x.kind, rev=True)
    raise TypeError(f"'{type_name(x)}' object is not reversible")


def b_str(vm: Meter, args: Args, kwargs: Kwargs) -> str:
    _no_kwargs("str", kwargs)
    if len(args) > 1:
        raise TypeError("CRUSH's str() takes at most 1 argument (no bytes)")
    if not args:
        return ""
    s = str_value(vm, args[0])
    vm.alloc(arena.str_size(s), s)
    return s


def b_repr(vm: Meter, args: Args, kwargs: Kwargs) -> str:
    s = repr_value(vm, _one("repr", args, kwargs))
    vm.alloc(arena.str_size(s), s)
    return s


_INT_CHARS = re.compile(r"[\s_+-]")


def b_int(vm: Meter, args: Args, kwargs: Kwargs) -> int:
    _kw("int", kwargs, ("base",))
    if len(args) > 2 or (len(args) == 2 and "base" in kwargs):
        raise TypeError(f"int() takes at most 2 arguments ({len(args) + len(kwargs)} given)")
    if not args:
        if "base" in kwargs:
            raise TypeError("int() missing string argument")
        return 0
    x = args[0]
    t = type(x)
    has_base = len(args) == 2 or "base" in kwargs
    if has_base:
        base = _index(args[1] if len(args) == 2 else kwargs["base"])
        if t is not str:
            raise TypeError("int() can't convert non-string with explicit base")
    else:
        base = 10
    if t is str:
        vm.charge(gas.words(len(x)))
        if base in (0, 10):
            digits = len(_INT_CHARS.sub("", x))
            if digits > 4300:
                raise ValueError(f"Exceeds the limit (4300 digits) for integer string conversion: value has "
                                 f"{digits} digits; use sys.set_int_max_str_digits() to increase the limit")
            vm.charge(gas.product(digits * 4, digits * 4))
        r = int(x, base)
        vm.alloc(arena.int_size(r), r)
        return r
    if t in INTS:
        return int(x)
    if t is float:
        r = int(x)
        vm.alloc(arena.int_size(r), r)
        return r
    raise TypeError(f"int() argument must be a string, a bytes-like object or a real number, not '{type_name(x)}'")


def b_float(vm: Meter, args: Args, kwargs: Kwargs) -> float:
    _no_kwargs("float", kwargs)
    if len(args) > 1:
        raise TypeError(f"float expected at most 1 argument, got {len(args)}")
    if not args:
        return 0.0
    x = args[0]
    t = type(x)
    if t is str:
        vm.charge(gas.words(len(x)))
        return float(x)
    if t in NUMBERS:
        return float(x)
    raise TypeError(f"float() argument must be a string or a real number, not '{type_name(x)}'")


def b_bool(vm: Meter, args: Args, kwargs: Kwargs) -> bool:
    _no_kwargs("bool", kwargs)
    if len(args) > 1:
        raise TypeError(f"bool expected at most 1 argument, got {len(args)}")
    return bool(args[0]) if args else False


def b_abs(vm: Meter, args: Args, kwargs: Kwargs) -> Any:
    x = _one("abs", args, kwargs)
    if type(x) in NUMBERS:
        return abs(x)
    raise TypeError(f"bad operand type for abs(): '{type_name(x)}'")


def b_enumerate(vm: Meter, args: Args, kwargs: Kwargs) -> EnumIter:
    _kw("enumerate", kwargs, ("iterable", "start"))
    if len(args) > 2:
        raise TypeError(f"enumerate() takes at most 2 arguments ({len(args)} given)")
    if not args and "iterable" not in kwargs:
        raise TypeError("enumerate() missing required argument 'iterable'")
    source = args[0] if args else kwargs["iterable"]
    start = args[1] if len(args) == 2 else kwargs.get("start", 0)
    start = _index(start)
    it = ops.get_iter(vm, source)
    vm.alloc(arena.ITERATOR, it)
    return EnumIter(it, start)


def b_zip(vm: Meter, args: Args, kwargs: Kwargs) -> ZipIter:
    _no_kwargs("zip", kwargs)
    its = tuple(ops.get_iter(vm, a) for a in args)
    vm.alloc(arena.ITERATOR + arena.SLOT * len(its), *its)
    return ZipIter(its)


def b_map(vm: Meter, args: Args, kwargs: Kwargs) -> MapIter:
    _no_kwargs("map", kwargs)
    if len(args) < 2:
        raise TypeError("map() must have at least two arguments.")
    its = tuple(ops.get_iter(vm, a) for a in args[1:])
    vm.alloc(arena.ITERATOR + arena.SLOT * len(its), *its)
    return MapIter(args[0], its)


def b_filter(vm: Meter, args: Args, kwargs: Kwargs) -> FilterIter:
    _no_kwargs("filter", kwargs)
    _count("filter", args, 2, 2)
    it = ops.get_iter(vm, args[1])
    vm.alloc(arena.ITERATOR, it)
    return FilterIter(args[0], it)


def b_list(vm: Meter, args: Args, kwargs: Kwargs) -> Any:
    _no_kwargs("list", kwargs)
    if len(args) > 1:
        raise TypeError(f"list expected at most 1 argument, got {len(args)}")
    if not args:
        vm.alloc(arena.LIST)
        return []
    if is_guest_iter(args[0]):
        return TailCall(vm.prelude["list_from"], (args[0],))
    items = ops.materialize(vm, args[0])
    vm.charge(gas.CELL * len(items))
    vm.alloc(arena.list_size(items) if type(items) is not str else arena.LIST + arena.SLOT * len(items), args[0])
    return list(items)


def b_tuple(vm: Meter, args: Args, kwargs: Kwargs) -> Any:
    _no_kwargs("tuple", kwargs)
    if len(args) > 1:
        raise TypeError(f"tuple expected at most 1 argument, got {len(args)}")
    if not args:
        return ()
    if type(args[0]) is tuple:
        return args[0]
    if is_guest_iter(args[0]):
        return TailCall(vm.prelude["tuple_from"], (args[0],))
    items = ops.materialize(vm, args[0])
    vm.charge(gas.CELL * len(items))
    vm.alloc(arena.tuple_size(items) if type(items) is not str else arena.TUPLE + arena.SLOT * len(items), args[0])
    return tuple(items)


dict_add_pair = ops.add_pair


def _dict_update(vm: Meter, d: dict[Any, Any], source: Any, kwargs: Kwargs) -> Any:
    if source is not None:
        if type(source) is dict:
            vm.charge(gas.CELL * 2 * len(source))
            vm.alloc(arena.DICT_ENTRY * len(source), d, source)
            d.update(source)
        elif is_guest_iter(source):
            return TailCall(vm.prelude["dict_update"], (d, source, kwargs))
        else:
            it = ops.get_iter(vm, source)
            position = 0
            while True:
                item = ops.native_next(vm, it)
                if item is EXHAUSTED:
                    break
                dict_add_pair(vm, d, item, position)
                position += 1
    for k, v in kwargs.items():
        ops.store_index(vm, d, k, v)
    return None


def b_dict(vm: Meter, args: Args, kwargs: Kwargs) -> Any:
    if len(args) > 1:
        raise TypeError(f"dict expected at most 1 argument, got {len(args)}")
    d: dict[Any, Any] = {}
    vm.alloc(arena.DICT)
    r = _dict_update(vm, d, args[0] if args else None, kwargs)
    if type(r) is TailCall:
        return TailCall(vm.prelude["dict_from"], (args[0], kwargs))
    return d


def _types_of(vm: Meter, classinfo: Any) -> tuple[Any, ...]:
    work = [classinfo]
    found: list[Any] = []
    while work:
        c = work.pop()
        if type(c) is tuple:
            vm.charge(gas.ELEMENT * len(c))
            work.extend(reversed(c))
        elif (type(c) is Builtin and c.pytype is not None) or type(c) is ExcType:
            found.append(c)
        else:
            raise TypeError("isinstance() arg 2 must be a type, a tuple of types, or a union")
    return tuple(found)


def b_isinstance(vm: Meter, args: Args, kwargs: Kwargs) -> bool:
    _no_kwargs("isinstance", kwargs)
    _count("isinstance", args, 2, 2)
    obj = args[0]
    for c in _types_of(vm, args[1]):
        if type(c) is ExcType:
            if type(obj) is ExcValue and c in obj.etype.mro:
                return True
        elif isinstance(obj, c.pytype):
            return True
    return False


def b_round(vm: Meter, args: Args, kwargs: Kwargs) -> Any:
    _kw("round", kwargs, ("number", "ndigits"))
    if not args and "number" not in kwargs:
        raise TypeError("round() missing required argument 'number' (pos 1)")
    if len(args) > 2:
        raise TypeError(f"round() takes at most 2 arguments ({len(args)} given)")
    x = args[0] if args else kwargs["number"]
    nd = args[1] if len(args) == 2 else kwargs.get("ndigits")
    if type(x) not in NUMBERS:
        raise TypeError(f"type {type_name(x)} doesn't define __round__ method")
    if nd is None:
        return round(x)
    nd = _index(nd)
    if type(x) in INTS and nd < 0 and -nd > int(x).bit_length() * 0.302 + 2:
        return 0  # x / 10**-nd < 0.1: it rounds to 0 (and 10**-nd is never computed)
    return round(x, nd)


def b_divmod(vm: Meter, args: Args, kwargs: Kwargs) -> tuple[Any, Any]:
    _no_kwargs("divmod", kwargs)
    _count("divmod", args, 2, 2)
    a, b = args
    if type(a) in NUMBERS and type(b) in NUMBERS:
        q = ops.floordiv(vm, a, b)
        r = ops.mod(vm, a, b)
        vm.alloc(arena.TUPLE + arena.slots_size((q, r)))
        return (q, r)
    raise TypeError(f"unsupported operand type(s) for divmod(): '{type_name(a)}' and '{type_name(b)}'")


def _anyall(name: str, want: bool) -> Impl:
    def impl(vm: Meter, args: Args, kwargs: Kwargs) -> Any:
        x = _one(name, args, kwargs)
        if is_guest_iter(x):
            return TailCall(vm.prelude[f"{name}_from"], (x,))
        it = ops.get_iter(vm, x)
        while True:
            item = ops.native_next(vm, it)
            if item is EXHAUSTED:
                return not want
            vm.charge(gas.ELEMENT)
            if bool(item) is want:
                return want
    return impl


def b_ord(vm: Meter, args: Args, kwargs: Kwargs) -> int:
    x = _one("ord", args, kwargs)
    if type(x) is not str:
        raise TypeError(f"ord() expected string of length 1, but {type_name(x)} found")
    if len(x) != 1:
        raise TypeError(f"ord() expected a character, but string of length {len(x)} found")
    return ord(x)


def b_chr(vm: Meter, args: Args, kwargs: Kwargs) -> str:
    return chr(_index(_one("chr", args, kwargs)))


def _radix(name: str, fn: Callable[[int], str], bits_per_char: int) -> Impl:
    def impl(vm: Meter, args: Args, kwargs: Kwargs) -> str:
        x = _index(_one(name, args, kwargs))
        n = x.bit_length() // bits_per_char + 4
        vm.charge(gas.words(n))
        vm.alloc(24 + n)
        return fn(x)
    return impl


# ----------------------------------------------------------------------------------------------
# Hidden helpers for the prelude (`crush.*`)


def h_iter_parts(vm: Meter, args: Args, kwargs: Kwargs) -> tuple[Any, ...]:
    _hidden_args("iter_parts", args, kwargs, (None,))
    it = args[0]
    t = type(it)
    if t is MapIter:
        return (it.fn, it.children)
    if t is FilterIter:
        return (it.fn, it.child)
    if t is ZipIter:
        return (it.children,)
    if t is EnumIter:
        return (it.child,)
    raise TypeError(f"crush.iter_parts of {type_name(it)}")


def _hidden_args(name: str, args: Args, kwargs: Kwargs, types: tuple[Any, ...]) -> None:
    """The prelude's helpers check their arguments too: hand-written CASM can call them."""
    if kwargs or len(args) != len(types):
        raise TypeError(f"crush.{name}() takes {len(types)} positional arguments")
    for a, t in zip(args, types, strict=True):
        if t is not None and not isinstance(a, t):
            raise TypeError(f"crush.{name}() got a {type_name(a)}")


def h_enum_count(vm: Meter, args: Args, kwargs: Kwargs) -> int:
    _hidden_args("enum_count", args, kwargs, (EnumIter,))
    it = args[0]
    count: int = it.count
    it.count = count + 1
    return count


def h_apply(vm: Meter, args: Args, kwargs: Kwargs) -> TailCall:
    _hidden_args("apply", args, kwargs, (None, list))
    fn, items = args
    return TailCall(fn, tuple(items))


def h_sort_by_keys(vm: Meter, args: Args, kwargs: Kwargs) -> None:
    _hidden_args("sort_by_keys", args, kwargs, (list, (list, type(None)), None))
    items, keys, reverse = args
    if keys is not None and len(keys) != len(items):
        raise ValueError("crush.sort_by_keys() needs one key per item")
    sort_list(vm, items, bool(reverse), keys)


def h_dict_add_pair(vm: Meter, args: Args, kwargs: Kwargs) -> None:
    _hidden_args("dict_add_pair", args, kwargs, (dict, None, int))
    dict_add_pair(vm, args[0], args[1], args[2])


def h_unpack_error(vm: Meter, args: Args, kwargs: Kwargs) -> ExcValue:
    _hidden_args("unpack_error", args, kwargs, (int, int))
    n, got = args
    msg = f"too many values to unpack (expected {n})" if got > n else \
        f"not enough values to unpack (expected {n}, got {got})"
    return ExcValue(EXC_TYPES["ValueError"], (msg,))


def h_empty_error(vm: Meter, args: Args, kwargs: Kwargs) -> ExcValue:
    _hidden_args("empty_error", args, kwargs, (None,))
    return ExcValue(EXC_TYPES["ValueError"], (f"{'max' if args[0] else 'min'}() arg is an empty sequence",))


def h_kwargs_update(vm: Meter, args: Args, kwargs: Kwargs) -> None:
    _hidden_args("kwargs_update", args, kwargs, (dict, dict))
    d, extra = args
    for k, v in extra.items():
        ops.store_index(vm, d, k, v)


def h_stop_iteration(vm: Meter, args: Args, kwargs: Kwargs) -> ExcValue:
    _hidden_args("stop_iteration", args, kwargs, ())
    return ExcValue(EXC_TYPES["StopIteration"], ())


# ----------------------------------------------------------------------------------------------
# Methods


def _method_args(name: str, args: Args, lo: int, hi: int) -> None:
    if not lo <= len(args) <= hi:
        if lo == hi == 1:
            raise TypeError(f"{name}() takes exactly one argument ({len(args)} given)")
        if lo == hi == 0:
            raise TypeError(f"{name}() takes no arguments ({len(args)} given)")
        if len(args) < lo:
            raise TypeError(f"{name.rpartition('.')[2]} expected at least {lo} argument{'s' * (lo != 1)}, "
                            f"got {len(args)}")
        raise TypeError(f"{name.rpartition('.')[2]} expected at most {hi} argument{'s' * (hi != 1)}, "
                        f"got {len(args)}")


def _m(name: str, lo: int, hi: int, kw: tuple[str, ...] = ()) -> Callable[[MethodImpl], MethodImpl]:
    def wrap(fn: MethodImpl) -> MethodImpl:
        def impl(vm: Meter, obj: Any, args: Args, kwargs: Kwargs) -> Any:
            if kwargs:
                if not kw:
                    raise TypeError(f"{name}() takes no keyword arguments")
                _kw(name, kwargs, kw)
            if not lo <= len(args) <= hi:
                _method_args(name, args, lo, hi)
            return fn(vm, obj, args, kwargs)
        return impl
    return wrap


@_m("list.append", 1, 1)
def l_append(vm: Meter, obj: list[Any], args: Args, kwargs: Kwargs) -> None:
    v = args[0]
    vm.alloc(arena.SLOT + arena.scalar_size(v), obj, v)
    obj.append(v)


@_m("list.pop", 0, 1)
def l_pop(vm: Meter, obj: list[Any], args: Args, kwargs: Kwargs) -> Any:
    i = _index(args[0]) if args else -1
    vm.charge(gas.ELEMENT * len(obj) // 8)
    return obj.pop(i)


@_m("list.insert", 2, 2)
def l_insert(vm: Meter, obj: list[Any], args: Args, kwargs: Kwargs) -> None:
    i = _index(args[0])
    vm.charge(gas.ELEMENT * len(obj) // 8)
    vm.alloc(arena.SLOT + arena.scalar_size(args[1]), obj, args[1])
    obj.insert(i, args[1])


@_m("list.extend", 1, 1)
def l_extend(vm: Meter, obj: list[Any], args: Args, kwargs: Kwargs) -> Any:
    if is_guest_iter(args[0]):
        return TailCall(vm.prelude["list_extend"], (obj, args[0]))
    items = ops.materialize(vm, args[0])
    vm.charge(gas.CELL * len(items))
    vm.alloc(arena.slots_size(items), obj, args[0])
    obj.extend(items)
    return None


def _find(vm: Meter, seq: Any, x: Any, start: int, end: int) -> int:
    n = len(seq)
    lo, hi, _ = slice(start, end).indices(n)
    vm.charge(gas.ELEMENT * max(0, hi - lo) // 8)
    for i in range(lo, hi):
        if i < len(seq) and ops.elem_eq(vm, seq[i], x):
            return i
    return -1


@_m("list.index", 1, 3)
def l_index(vm: Meter, obj: list[Any], args: Args, kwargs: Kwargs) -> int:
    start = _index(args[1]) if len(args) > 1 else 0
    end = _index(args[2]) if len(args) > 2 else len(obj)
    i = _find(vm, obj, args[0], start, end)
    if i < 0:
        raise ValueError(f"{repr_value(vm, args[0])} is not in list")
    return i


@_m("list.count", 1, 1)
def l_count(vm: Meter, obj: list[Any] | tuple[Any, ...], args: Args, kwargs: Kwargs) -> int:
    vm.charge(gas.ELEMENT * len(obj) // 8)
    return sum(1 for e in obj if ops.elem_eq(vm, e, args[0]))


@_m("list.remove", 1, 1)
def l_remove(vm: Meter, obj: list[Any], args: Args, kwargs: Kwargs) -> None:
    i = _find(vm, obj, args[0], 0, len(obj))
    if i < 0:
        raise ValueError("list.remove(x): x not in list")
    del obj[i]


def l_sort(vm: Meter, obj: list[Any], args: Args, kwargs: Kwargs) -> Any:
    if args:
        raise TypeError("sort() takes no positional arguments")
    _kw("sort", kwargs, ("key", "reverse"))
    key = kwargs.get("key")
    reverse = bool(kwargs.get("reverse", False))
    if key is not None:
        return TailCall(vm.prelude["list_sort_key"], (obj, key, reverse))
    sort_list(vm, obj, reverse)
    return None


@_m("list.reverse", 0, 0)
def l_reverse(vm: Meter, obj: list[Any], args: Args, kwargs: Kwargs) -> None:
    vm.charge(gas.ELEMENT * len(obj) // 8)
    obj.reverse()


@_m("list.copy", 0, 0)
def l_copy(vm: Meter, obj: list[Any], args: Args, kwargs: Kwargs) -> list[Any]:
    vm.charge(gas.CELL * len(obj))
    vm.alloc(arena.list_size(obj), obj)
    return obj.copy()


@_m("list.clear", 0, 0)
def l_clear(vm: Meter, obj: list[Any] | dict[Any, Any], args: Args, kwargs: Kwargs) -> None:
    obj.clear()


@_m("tuple.index", 1, 3)
def t_index(vm: Meter, obj: tuple[Any, ...], args: Args, kwargs: Kwargs) -> int:
    start = _index(args[1]) if len(args) > 1 else 0
    end = _index(args[2]) if len(args) > 2 else len(obj)
    i = _find(vm, obj, args[0], start, end)
    if i < 0:
        raise ValueError("tuple.index(x): x not in tuple")
    return i


@_m("dict.get", 1, 2)
def d_get(vm: Meter, obj: dict[Any, Any], args: Args, kwargs: Kwargs) -> Any:
    ops.check_key(vm, args[0])
    return obj.get(args[0], args[1] if len(args) > 1 else None)


def _view(kind: str) -> MethodImpl:
    @_m(f"dict.{kind}", 0, 0)
    def impl(vm: Meter, obj: dict[Any, Any], args: Args, kwargs: Kwargs) -> DictView:
        vm.alloc(arena.ITERATOR, obj)
        return DictView(obj, kind)
    return impl


@_m("dict.pop", 1, 2)
def d_pop(vm: Meter, obj: dict[Any, Any], args: Args, kwargs: Kwargs) -> Any:
    ops.check_key(vm, args[0])
    if len(args) > 1:
        return obj.pop(args[0], args[1])
    return obj.pop(args[0])


@_m("dict.popitem", 0, 0)
def d_popitem(vm: Meter, obj: dict[Any, Any], args: Args, kwargs: Kwargs) -> tuple[Any, Any]:
    if not obj:
        raise KeyError("popitem(): dictionary is empty")
    item = obj.popitem()
    vm.alloc(arena.TUPLE + arena.slots_size(item), item)
    return item


@_m("dict.setdefault", 1, 2)
def d_setdefault(vm: Meter, obj: dict[Any, Any], args: Args, kwargs: Kwargs) -> Any:
    k = args[0]
    ops.check_key(vm, k)
    if k in obj:
        return obj[k]
    v = args[1] if len(args) > 1 else None
    ops.store_index(vm, obj, k, v)
    return v


def d_update(vm: Meter, obj: dict[Any, Any], args: Args, kwargs: Kwargs) -> Any:
    if len(args) > 1:
        raise TypeError(f"update expected at most 1 argument, got {len(args)}")
    return _dict_update(vm, obj, args[0] if args else None, kwargs)


@_m("dict.copy", 0, 0)
def d_copy(vm: Meter, obj: dict[Any, Any], args: Args, kwargs: Kwargs) -> dict[Any, Any]:
    vm.charge(gas.CELL * 2 * len(obj))
    vm.alloc(arena.DICT + arena.DICT_ENTRY * len(obj), obj)
    return obj.copy()


# str methods: CPython's own, on native arguments, after bounding the result's size.
_STR_FIXED = ("startswith", "endswith", "find", "rfind", "index", "rindex", "count", "isdigit", "isalpha",
              "isalnum", "isspace", "isupper", "islower", "isdecimal", "isnumeric", "istitle", "isidentifier",
              "isascii", "isprintable")
_STR_SHRINK = ("strip", "lstrip", "rstrip", "removeprefix", "removesuffix")
_STR_CASE = ("upper", "lower", "capitalize", "title", "swapcase", "casefold")
_STR_KW: dict[str, tuple[str, ...]] = {"split": ("sep", "maxsplit"), "rsplit": ("sep", "maxsplit"),
                                       "splitlines": ("keepends",), "expandtabs": ("tabsize",)}
_LINE_BREAKS = re.compile("\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
_WORDS = re.compile(r"\S+")


def _str_method(name: str) -> MethodImpl:
    native = getattr(str, name)

    def impl(vm: Meter, s: str, args: Args, kwargs: Kwargs) -> Any:
        if name == "join":
            _no_kwargs("str.join", kwargs)
            return _join(vm, s, args)
        if name == "format":
            r = str_format(vm, s, args, kwargs)
            vm.alloc(arena.str_size(r), r)
            return r
        if kwargs and name not in _STR_KW:
            raise TypeError(f"str.{name}() takes no keyword arguments")
        _kw(name, kwargs, _STR_KW.get(name, ()))
        for a in (*args, *kwargs.values()):
            if type(a) not in NATIVE:
                raise TypeError(f"str.{name}() argument must be str, int or None, not {type_name(a)}")
        n = len(s)
        width = 1 if s.isascii() else 4
        vm.charge(gas.words(n * width))
        if name in _STR_SHRINK:
            vm.alloc(24 + n * width, s)
        elif name in _STR_CASE:
            vm.alloc(24 + n * (1 if width == 1 else 12), s)
        elif name in ("zfill", "center", "ljust", "rjust"):
            w = _index(args[0]) if args else 0
            vm.alloc(24 + max(n, w) * 4, s)
        elif name == "expandtabs":
            tab = _index(args[0] if args else kwargs.get("tabsize", 8))
            vm.alloc(24 + (n + s.count("\t") * max(tab, 0)) * width, s)
        elif name == "replace":
            if len(args) >= 2 and type(args[0]) is str and type(args[1]) is str:
                old, new = args[0], args[1]
                count = (n + 1) if not old else s.count(old)
                if len(args) > 2 and type(args[2]) in INTS and args[2] >= 0:
                    count = min(count, args[2])
                size = n + count * (len(new) - len(old))
                vm.charge(gas.words(size * 4))
                vm.alloc(24 + max(size, 0) * 4, s)
        elif name in ("split", "rsplit", "splitlines", "partition", "rpartition"):
            vm.alloc(_pieces_size(vm, name, s, args, kwargs), s)
        elif name not in _STR_FIXED:
            raise AssertionError(name)  # pragma: no cover - the table lists every method
        r = native(s, *args, **kwargs)
        if name == "splitlines" or name.endswith("split") or name.endswith("partition"):
            vm.charge(gas.CELL * len(r))
        return r
    return impl


def _pieces_size(vm: Meter, name: str, s: str, args: Args, kwargs: Kwargs) -> int:
    """An upper bound of the arena size of the pieces split/partition would make of s."""
    n = len(s)
    if name.endswith("partition"):
        return arena.TUPLE + 3 * arena.SLOT + 3 * 24 + 4 * n
    if name == "splitlines":
        pieces = sum(1 for _ in _LINE_BREAKS.finditer(s)) + 1
    else:
        sep = args[0] if args else kwargs.get("sep")
        if type(sep) is str and sep:
            pieces = s.count(sep) + 1
        else:
            pieces = n // 2 + 1
            if pieces * 32 > 1 << 20:
                pieces = sum(1 for _ in _WORDS.finditer(s)) + 1
    vm.charge(gas.CELL * pieces)
    return arena.LIST + pieces * (arena.SLOT + 24) + 4 * n


def _join(vm: Meter, sep: str, args: Args) -> Any:
    _method_args("str.join", args, 1, 1)
    source = args[0]
    if is_guest_iter(source):
        return TailCall(vm.prelude["join_from"], (sep, source))
    items = ops.materialize(vm, source)
    total = 0
    ascii_only = sep.isascii()
    for i, item in enumerate(items):
        if type(item) is not str:
            raise TypeError(f"sequence item {i}: expected str instance, {type_name(item)} found")
        total += len(item)
        ascii_only = ascii_only and item.isascii()
    total += len(sep) * max(0, len(items) - 1)
    width = 1 if ascii_only else 4
    vm.charge(gas.words(total * width) + gas.ELEMENT * len(items))
    if total * width > arena.IMMEDIATE_BYTES:
        vm.alloc(24 + total * width, sep, source)
    return sep.join(items)


METHODS: dict[type, dict[str, MethodImpl]] = {
    list: {"append": l_append, "pop": l_pop, "insert": l_insert, "extend": l_extend, "index": l_index,
           "count": l_count, "remove": l_remove, "sort": l_sort, "reverse": l_reverse, "copy": l_copy,
           "clear": l_clear},
    tuple: {"index": t_index, "count": l_count},
    dict: {"get": d_get, "keys": _view("keys"), "values": _view("values"), "items": _view("items"),
           "pop": d_pop, "popitem": d_popitem, "setdefault": d_setdefault, "update": d_update, "copy": d_copy,
           "clear": l_clear},
    str: {name: _str_method(name) for name in (
        *_STR_FIXED, *_STR_SHRINK, *_STR_CASE, "split", "rsplit", "splitlines", "partition", "rpartition",
        "join", "format", "replace", "zfill", "center", "ljust", "rjust", "expandtabs")},
}


def d_fromkeys(vm: Meter, args: Args, kwargs: Kwargs) -> Any:
    """dict.fromkeys(iterable, value=None)."""
    _no_kwargs("dict.fromkeys", kwargs)
    _count("fromkeys", args, 1, 2)
    value = args[1] if len(args) == 2 else None
    if is_guest_iter(args[0]):
        return TailCall(vm.prelude["fromkeys_from"], (args[0], value))
    keys = ops.materialize(vm, args[0])
    d: dict[Any, Any] = {}
    vm.alloc(arena.DICT)
    for k in keys:
        ops.store_index(vm, d, k, value)
    return d


CLASS_METHODS: dict[type, dict[str, Impl]] = {dict: {"fromkeys": d_fromkeys}}


def call_method(vm: Meter, obj: Any, name: str, args: Args, kwargs: Kwargs) -> Any:
    """obj.name(*args, **kwargs): a method of obj's type; on a builtin type, its class method
    (dict.fromkeys) or a method called unbound (str.upper(s))."""
    table = METHODS.get(type(obj))
    impl = table.get(name) if table is not None else None
    if impl is not None:
        return impl(vm, obj, args, kwargs)
    if type(obj) is Builtin and isinstance(obj.pytype, type):
        cls = obj.pytype
        classmethod_ = CLASS_METHODS.get(cls, {}).get(name)
        if classmethod_ is not None:
            return classmethod_(vm, args, kwargs)
        unbound = METHODS.get(cls, {}).get(name)
        if unbound is not None:
            if not args:
                raise exc("TypeError", f"unbound method {obj.name}.{name}() needs an argument")
            if type(args[0]) is not cls:
                raise exc("TypeError", f"descriptor '{name}' for '{obj.name}' objects doesn't apply to a "
                                       f"'{type_name(args[0])}' object")
            return unbound(vm, args[0], args[1:], kwargs)
        raise exc("AttributeError", f"type object '{obj.name}' has no attribute '{name}'")
    raise exc("AttributeError", f"'{type_name(obj)}' object has no attribute '{name}'")


# ----------------------------------------------------------------------------------------------
# The table


def _table() -> dict[str, Builtin]:
    fns: dict[str, tuple[Impl, Any]] = {
        "print": (b_print, None), "len": (b_len, None), "range": (b_range, range), "min": (_minmax("min", False), None),
        "max": (_minmax("max", True), None), "sum": (b_sum, None), "sorted": (b_sorted, None),
        "reversed": (b_reversed, None), "str": (b_str, str), "int": (b_int, int), "float": (b_float, float),
        "bool": (b_bool, bool), "abs": (b_abs, None), "enumerate": (b_enumerate, None), "zip": (b_zip, None),
        "list": (b_list, list), "dict": (b_dict, dict), "tuple": (b_tuple, tuple), "repr": (b_repr, None),
        "isinstance": (b_isinstance, None), "round": (b_round, None), "divmod": (b_divmod, None),
        "any": (_anyall("any", True), None), "all": (_anyall("all", False), None), "ord": (b_ord, None),
        "chr": (b_chr, None), "hex": (_radix("hex", hex, 4), None), "bin": (_radix("bin", bin, 1), None),
        "map": (b_map, None), "filter": (b_filter, None),
    }
    table = {f"py.{name}": Builtin(f"py.{name}", impl, pytype) for name, (impl, pytype) in fns.items()}
    hidden: dict[str, Impl] = {
        "iter_parts": h_iter_parts, "enum_count": h_enum_count, "apply": h_apply, "sort_by_keys": h_sort_by_keys,
        "dict_add_pair": h_dict_add_pair, "unpack_error": h_unpack_error, "empty_error": h_empty_error,
        "kwargs_update": h_kwargs_update, "stop_iteration": h_stop_iteration,
    }
    table.update({f"crush.{name}": Builtin(f"crush.{name}", impl) for name, impl in hidden.items()})
    table.update(jsops.table())
    table.update(rsops.table())
    return table


BUILTINS: dict[str, Builtin] = _table()
