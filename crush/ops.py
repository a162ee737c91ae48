"""Python's operators over the subset's values: the meaning of the py.* CAST nodes.

Each function takes the VM as a `Meter` (crush.text.Meter) and its operands, and either returns
the result, raises a guest exception (crush.errors.GuestError, or a native TypeError/ValueError/
... with CPython's message, which the VM converts), or returns a `TailCall` when the rest of the
work is guest code (an operand is a map/filter iterator: its items come from prelude code).

Invariants:
- Work is paid for before it is done, and its result's arena size is reserved before it is
  made (`vm.charge`, `vm.alloc`), with sizes computed from the operands in O(1) or in a pass
  that allocates nothing. Results that cannot outgrow their operands by more than a word (`+`
  of two ints) are reserved right after they are computed.
- CPython's native operators are applied only to CPython's own types, and only once the
  operands' types and sizes are known to make the operation bounded; anything else raises
  the TypeError CPython would, with the guest's type names.
- Container equality, ordering and membership walk containers with explicit stacks (no
  recursion, any depth) and charge gas.ELEMENT per element pair, so shared substructure
  cannot make one comparison do unpaid exponential work.
- Numbers and strings have no identity: `is` compares them by value (floats by value, all NaNs
  alike); CPython's element comparisons' identity shortcut follows the same rule, and a NaN
  cannot be a dict key (see `check_key`). This makes every result independent of CPython's
  object caching and stable across serialisation.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any, cast

from crush import arena, gas
from crush.text import Meter, percent_format
from crush.values import (
    DictIter,
    DictView,
    EnumIter,
    FilterIter,
    MapIter,
    RangeIter,
    RevIter,
    SeqIter,
    TailCall,
    ZipIter,
    is_guest_iter,
    type_name,
)

NATIVE = frozenset({int, float, bool, str, list, dict, tuple, type(None), range})
SCALARS = frozenset({int, float, bool, str, type(None)})
INTS = frozenset({int, bool})
NUMBERS = frozenset({int, float, bool})
SEQUENCES = frozenset({list, tuple, str})
IMMEDIATE = (1 << 63) - 1
EXHAUSTED_INDEX = 1 << 62


class _Exhausted:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<exhausted>"


EXHAUSTED: Any = _Exhausted()  # what native_next returns at the end of an iterator


# ----------------------------------------------------------------------------------------------
# Sizes of results


def _text_width(*parts: str) -> int:
    return 1 if all(p.isascii() for p in parts) else 4


def _reserve_str(vm: Meter, length: int, width: int, *keep: Any) -> None:
    nbytes = length * width
    if nbytes > arena.IMMEDIATE_BYTES:
        vm.charge(gas.words(nbytes))
        vm.alloc(24 + nbytes, *keep)


def _reserve_int(vm: Meter, bits: int, *keep: Any) -> None:
    if bits > arena.IMMEDIATE_BITS:
        vm.charge(gas.words(bits // 8))
        vm.alloc(24 + 8 * ((bits + 63) // 64), *keep)


def _account_int(vm: Meter, r: int, *keep: Any) -> int:
    if r > IMMEDIATE or r < -IMMEDIATE:
        _reserve_int(vm, r.bit_length(), r, *keep)
    return r


def _reserve_seq(vm: Meter, t: type, items: Any, times: int, *keep: Any) -> None:
    """Reserve a new list or tuple holding `items` repeated `times` times."""
    vm.charge(gas.CELL * len(items) * times)
    vm.alloc((arena.LIST if t is list else arena.TUPLE) + arena.slots_size(items) * times, *keep)


# ----------------------------------------------------------------------------------------------
# Arithmetic


def _unsupported(sym: str, a: Any, b: Any, native: Callable[[Any, Any], Any]) -> Any:
    if type(a) in NATIVE and type(b) in NATIVE:
        return native(a, b)  # CPython raises its own TypeError (no bounded case reaches here)
    ta, tb = type(a), type(b)
    if sym == "+" and ta in (str, list, tuple):
        raise TypeError(f'can only concatenate {type_name(a)} (not "{type_name(b)}") to {type_name(a)}')
    if sym == "*" and (ta in SEQUENCES or tb in SEQUENCES):
        other = b if ta in SEQUENCES else a
        raise TypeError(f"can't multiply sequence by non-int of type '{type_name(other)}'")
    raise TypeError(f"unsupported operand type(s) for {sym}: '{type_name(a)}' and '{type_name(b)}'")


def add(vm: Meter, a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta in INTS and tb in INTS:
        if a > IMMEDIATE or a < -IMMEDIATE or b > IMMEDIATE or b < -IMMEDIATE:
            _reserve_int(vm, max(a.bit_length(), b.bit_length()) + 1, a, b)
            return a + b
        return _account_int(vm, a + b, a, b)  # two immediates make at most a 64-bit int
    if ta in NUMBERS and tb in NUMBERS:
        return a + b
    if ta is str and tb is str:
        _reserve_str(vm, len(a) + len(b), _text_width(a, b), a, b)
        return a + b
    if (ta is list and tb is list) or (ta is tuple and tb is tuple):
        vm.charge(gas.CELL * (len(a) + len(b)))
        vm.alloc(arena.LIST + arena.slots_size(a) + arena.slots_size(b), a, b)
        return a + b
    return _unsupported("+", a, b, operator.add)


def iadd(vm: Meter, a: Any, b: Any) -> Any:
    """a += b: a list is extended in place by any iterable; otherwise a + b."""
    if type(a) is list:
        if is_guest_iter(b):
            return TailCall(vm.prelude["list_iadd"], (a, b))
        items = materialize(vm, b)
        _reserve_seq(vm, list, items, 1, a, b)
        a.extend(items)
        return a
    return add(vm, a, b)


def imul(vm: Meter, a: Any, b: Any) -> Any:
    """a *= b: a list is repeated in place; otherwise a * b."""
    if type(a) is list and type(b) in INTS:
        n = max(0, int(b))
        if n != 1 and a:
            _reserve_seq(vm, list, a, n - 1, a)
        a *= n
        return a
    return mul(vm, a, b)


def ior(vm: Meter, a: Any, b: Any) -> Any:
    """a |= b: a dict is updated in place by a dict or an iterable of pairs; otherwise a | b."""
    if type(a) is dict and type(b) is not dict and type(b) in NATIVE | frozenset(ITERABLE_TYPES):
        if is_guest_iter(b):
            return TailCall(vm.prelude["dict_ior"], (a, b))
        position = 0
        it = get_iter(vm, b)
        while True:
            item = native_next(vm, it)
            if item is EXHAUSTED:
                return a
            add_pair(vm, a, item, position)
            position += 1
    if type(a) is dict and type(b) is dict:
        _reserve_dict(vm, len(b), a, b)
        a |= b
        return a
    return bitor(vm, a, b)


def add_pair(vm: Meter, d: dict[Any, Any], item: Any, position: int) -> None:
    """d[k] = v for an item (k, v) of dict(iterable) / dict.update(iterable), CPython's errors."""
    t = type(item)
    if t not in (list, tuple, str, dict, range) and t is not DictView:
        raise TypeError(f"cannot convert dictionary update sequence element #{position} to a sequence")
    pair = materialize(vm, item)
    if len(pair) != 2:
        raise ValueError(f"dictionary update sequence element #{position} has length {len(pair)}; 2 is required")
    store_index(vm, d, pair[0], pair[1])


def sub(vm: Meter, a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta in INTS and tb in INTS:
        if a > IMMEDIATE or a < -IMMEDIATE or b > IMMEDIATE or b < -IMMEDIATE:
            _reserve_int(vm, max(a.bit_length(), b.bit_length()) + 1, a, b)
            return a - b
        return _account_int(vm, a - b, a, b)  # two immediates make at most a 64-bit int
    if ta in NUMBERS and tb in NUMBERS:
        return a - b
    return _unsupported("-", a, b, operator.sub)


def mul(vm: Meter, a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta in INTS and tb in INTS:
        ba, bb = a.bit_length(), b.bit_length()
        if ba + bb > arena.IMMEDIATE_BITS:
            vm.charge(gas.product(ba, bb))
            _reserve_int(vm, ba + bb, a, b)
        return a * b  # (its size is at most ba + bb bits: reserved above when that is not immediate)
    if ta in NUMBERS and tb in NUMBERS:
        return a * b
    if ta in SEQUENCES and tb in INTS:
        return _repeat(vm, a, b)
    if tb in SEQUENCES and ta in INTS:
        return _repeat(vm, b, a)
    return _unsupported("*", a, b, operator.mul)


def _repeat(vm: Meter, seq: Any, times: int) -> Any:
    n = max(0, int(times))
    if type(seq) is str:
        _reserve_str(vm, len(seq) * n, _text_width(seq), seq)
    elif n and seq:
        _reserve_seq(vm, type(seq), seq, n, seq)
    return seq * n


def truediv(vm: Meter, a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta in NUMBERS and tb in NUMBERS:
        if ta in INTS and tb in INTS:
            vm.charge(gas.product(a.bit_length(), b.bit_length()))
        return a / b
    return _unsupported("/", a, b, operator.truediv)


def floordiv(vm: Meter, a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta in INTS and tb in INTS:
        ba = a.bit_length()
        if ba > arena.IMMEDIATE_BITS:
            vm.charge(gas.product(ba, b.bit_length()))
            return _account_int(vm, a // b, a, b)
        return a // b
    if ta in NUMBERS and tb in NUMBERS:
        return a // b
    return _unsupported("//", a, b, operator.floordiv)


def mod(vm: Meter, a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta in INTS and tb in INTS:
        ba = a.bit_length()
        if ba > arena.IMMEDIATE_BITS or b.bit_length() > arena.IMMEDIATE_BITS:
            vm.charge(gas.product(ba, b.bit_length()))
            return _account_int(vm, a % b, a, b)
        return a % b
    if ta in NUMBERS and tb in NUMBERS:
        return a % b
    if ta is str:
        return percent_format(vm, a, b)
    return _unsupported("%", a, b, operator.mod)


def power(vm: Meter, a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta in INTS and tb in INTS and b >= 0:
        if a in (0, 1, -1) or b <= 1:
            return a ** b
        bits = (a.bit_length() - 1) * b + 1  # a lower bound of the result's size: refuse before computing
        if bits > arena.IMMEDIATE_BITS:
            _reserve_int(vm, bits, a, b)
            vm.charge(gas.product(bits, bits))
        return _account_int(vm, a ** b, a, b)
    if ta in NUMBERS and tb in NUMBERS:
        r = a ** b
        if type(r) is complex:
            raise ValueError("CRUSH has no complex numbers (a negative number raised to a fractional power)")
        return r
    return _unsupported("** or pow()", a, b, operator.pow)


def lshift(vm: Meter, a: Any, b: Any) -> Any:
    if type(a) in INTS and type(b) in INTS:
        if b < 0:
            raise ValueError("negative shift count")
        if a:
            _reserve_int(vm, a.bit_length() + b, a, b)
        return a << b
    return _unsupported("<<", a, b, operator.lshift)


def rshift(vm: Meter, a: Any, b: Any) -> Any:
    if type(a) in INTS and type(b) in INTS:
        return _account_int(vm, a >> b, a, b)
    return _unsupported(">>", a, b, operator.rshift)


def _bitwise(sym: str, fn: Callable[[Any, Any], Any]) -> Callable[[Meter, Any, Any], Any]:
    def op(vm: Meter, a: Any, b: Any) -> Any:
        if type(a) in INTS and type(b) in INTS:
            return _account_int(vm, fn(a, b), a, b)
        if sym == "|" and type(a) is dict and type(b) is dict:
            _reserve_dict(vm, len(a) + len(b), a, b)
            return a | b
        return _unsupported(sym, a, b, fn)
    return op


bitand = _bitwise("&", operator.and_)
bitor = _bitwise("|", operator.or_)
bitxor = _bitwise("^", operator.xor)


def _reserve_dict(vm: Meter, n: int, *keep: Any) -> None:
    vm.charge(gas.CELL * 2 * n)
    vm.alloc(arena.DICT + arena.DICT_ENTRY * n, *keep)


def _unary(sym: str, fn: Callable[[Any], Any]) -> Callable[[Meter, Any], Any]:
    def op(vm: Meter, a: Any) -> Any:
        t = type(a)
        if t in INTS:
            return _account_int(vm, fn(a), a)
        if t is float:
            return fn(a)
        raise TypeError(f"bad operand type for unary {sym}: '{type_name(a)}'")
    return op


neg = _unary("-", operator.neg)
pos = _unary("+", operator.pos)


def invert(vm: Meter, a: Any) -> Any:
    if type(a) in INTS:
        return _account_int(vm, ~a, a)
    raise TypeError(f"bad operand type for unary ~: '{type_name(a)}'")


# ----------------------------------------------------------------------------------------------
# Identity, equality, ordering


def is_(a: Any, b: Any) -> bool:
    """`a is b`: identity for containers and objects, value for numbers and strings."""
    if a is b:
        return True
    t = type(a)
    if t is not type(b):
        return False
    if t is int or t is str:
        return bool(a == b)
    if t is float:
        if math.isnan(a):
            return math.isnan(b)
        return bool(a == b and math.copysign(1.0, a) == math.copysign(1.0, b))
    return False


def eq(vm: Meter, a: Any, b: Any) -> bool:
    """a == b."""
    ta, tb = type(a), type(b)
    if ta in SCALARS and tb in SCALARS:
        if ta is str and tb is str and len(a) > gas.WORD_BYTES and len(a) == len(b):
            vm.charge(gas.words(len(a)))
        return bool(a == b)
    return _deep_eq(vm, a, b)


def _deep_eq(vm: Meter, a: Any, b: Any) -> bool:
    work = [(a, b)]
    count = 0
    while work:
        x, y = work.pop()
        if is_(x, y):
            continue
        tx, ty = type(x), type(y)
        count += 1
        if count & 63 == 0:
            vm.charge(64 * gas.ELEMENT)
        if tx in SCALARS and ty in SCALARS:
            if tx is str and ty is str and len(x) > gas.WORD_BYTES:
                vm.charge(gas.words(min(len(x), len(y))))
            if x == y:
                continue
            return False
        if (tx is list and ty is list) or (tx is tuple and ty is tuple):
            if len(x) != len(y):
                return False
            work.extend(zip(reversed(x), reversed(y), strict=True))
        elif tx is dict and ty is dict:
            if len(x) != len(y):
                return False
            pairs = []
            for k, v in x.items():
                check_key(vm, k)
                other = y.get(k, EXHAUSTED)
                if other is EXHAUSTED:
                    return False
                pairs.append((v, other))
            work.extend(reversed(pairs))
        elif tx is range and ty is range:
            if x != y:
                return False
        elif tx is DictView and ty is DictView and x.kind == y.kind and x.kind != "values":
            if len(x.d) != len(y.d):
                return False
            for k, v in x.d.items():
                if k not in y.d:
                    return False
                if x.kind == "items":
                    work.append((v, y.d[k]))
        else:
            return False
    vm.charge((count & 63) * gas.ELEMENT)
    return True


def elem_eq(vm: Meter, a: Any, b: Any) -> bool:
    """CPython's element comparison (identity, then ==), as `in`, index() and count() use it."""
    return is_(a, b) or eq(vm, a, b)


_SYMBOLS = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_NATIVE_CMP: dict[str, Callable[[Any, Any], Any]] = {
    "lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge}


def compare(vm: Meter, op: str, a: Any, b: Any) -> bool:
    """a < b (op "lt"), <=, >, >=: sequences compare lexicographically, iteratively."""
    native = _NATIVE_CMP[op]
    while True:
        ta, tb = type(a), type(b)
        if ta in SCALARS and tb in SCALARS:
            if ta is str and tb is str and len(a) > gas.WORD_BYTES:
                vm.charge(gas.words(min(len(a), len(b))))
            return bool(native(a, b))
        if (ta is list and tb is list) or (ta is tuple and tb is tuple):
            n = min(len(a), len(b))
            vm.charge(gas.ELEMENT * n // 8)
            for i in range(n):
                if not elem_eq(vm, a[i], b[i]):
                    a, b = a[i], b[i]
                    break
            else:
                return bool(native(len(a), len(b)))
            continue
        if (ta in NATIVE and tb in NATIVE) or (ta is DictView and tb is DictView and a.kind != "values"):
            if ta is DictView:
                vm.charge(gas.ELEMENT * (len(a.d) + len(b.d)))
                return bool(native(_view(a), _view(b)))
            return bool(native(a, b))  # raises CPython's TypeError
        raise TypeError(f"'{_SYMBOLS[op]}' not supported between instances of '{type_name(a)}' and '{type_name(b)}'")


def _view(v: DictView) -> Any:
    return v.d.keys() if v.kind == "keys" else v.d.items()


# ----------------------------------------------------------------------------------------------
# Hashing (dict keys)


def check_key(vm: Meter, k: Any) -> None:
    """Raise unless `k` can be a dict key; charge for hashing a tuple (its size as a tree, which
    is what CPython's tuple hash visits)."""
    t = type(k)
    if t is str or t is int or t is bool or k is None:
        return
    if t is float:
        if math.isnan(k):
            raise TypeError("a NaN cannot be a dict key in CRUSH (CPython finds it only by identity)")
        return
    if t is tuple:
        size = _tuple_tree_size(k)
        if size > 8:
            vm.charge(gas.HASH * size)
        return
    if t is list or t is dict or t is DictView:
        raise TypeError(f"unhashable type: '{type_name(k)}'")


def _tuple_tree_size(t: tuple[Any, ...]) -> int:
    memo: dict[int, int] = {}
    work: list[tuple[tuple[Any, ...], bool]] = [(t, False)]
    while work:
        x, done = work.pop()
        if done:
            memo[id(x)] = 1 + sum(memo[id(c)] if type(c) is tuple else 1 for c in x)
            continue
        if id(x) in memo:
            continue
        work.append((x, True))
        for c in x:
            tc = type(c)
            if tc is tuple:
                if id(c) not in memo:
                    work.append((c, False))
            elif tc is list or tc is dict or tc is DictView:
                raise TypeError(f"unhashable type: '{type_name(c)}'")
            elif tc is float and math.isnan(c):
                raise TypeError("a NaN cannot be a dict key in CRUSH (CPython finds it only by identity)")
    return memo[id(t)]


# ----------------------------------------------------------------------------------------------
# Membership


def contains(vm: Meter, x: Any, container: Any) -> Any:
    """x in container (a bool, or a TailCall for a map/filter iterator)."""
    t = type(container)
    if t is str:
        if type(x) is not str:
            raise TypeError(f"'in <string>' requires string as left operand, not {type_name(x)}")
        vm.charge(gas.words(len(container)))
        return x in container
    if t is list or t is tuple:
        vm.charge(gas.ELEMENT * len(container) // 8)
        if type(x) in (int, str, bool, type(None)):
            return x in container
        return any(elem_eq(vm, x, e) for e in container)
    if t is dict:
        check_key(vm, x)
        return x in container
    if t is range:
        return _range_contains(x, container)
    if t is DictView:
        d = container.d
        if container.kind == "keys":
            check_key(vm, x)
            return x in d
        if container.kind == "items":
            if type(x) is not tuple or len(x) != 2:
                return False
            check_key(vm, x[0])
            return x[0] in d and elem_eq(vm, d[x[0]], x[1])
        vm.charge(gas.ELEMENT * len(d) // 8)
        return any(elem_eq(vm, x, e) for e in d.values())
    if is_guest_iter(container):
        return TailCall(vm.prelude["contains"], (container, x))
    if t in (SeqIter, RevIter, RangeIter, DictIter, EnumIter, ZipIter):
        while True:
            item = native_next(vm, container)
            if item is EXHAUSTED:
                return False
            vm.charge(gas.ELEMENT)
            if elem_eq(vm, x, item):
                return True
    raise TypeError(f"argument of type '{type_name(container)}' is not iterable")


def _range_contains(x: Any, r: range) -> bool:
    t = type(x)
    if t is int or t is bool:
        return x in r
    if t is float:  # CPython compares with every item: equal only to an integral float
        return math.isfinite(x) and x.is_integer() and int(x) in r
    return False


# ----------------------------------------------------------------------------------------------
# Subscripts


def index(vm: Meter, x: Any, k: Any) -> Any:
    t = type(x)
    if t is dict:
        check_key(vm, k)
        return x[k]
    if t in (list, tuple, str, range):
        if type(k) in INTS:
            r = x[k]
            return _account_int(vm, r) if t is range else r
        if type(k) in NATIVE:
            return x[k]  # CPython's TypeError
        if t is str:
            raise TypeError(f"string indices must be integers, not '{type_name(k)}'")
        raise TypeError(f"{type_name(x)} indices must be integers or slices, not {type_name(k)}")
    raise TypeError(f"'{type_name(x)}' object is not subscriptable")


def store_index(vm: Meter, x: Any, k: Any, v: Any) -> None:
    t = type(x)
    if t is list:
        if type(k) not in INTS:
            raise TypeError(f"list indices must be integers or slices, not {type_name(k)}")
        size = arena.scalar_size(v)
        if size:
            vm.alloc(size, x, v)
        x[k] = v
    elif t is dict:
        check_key(vm, k)
        if k not in x:
            vm.charge(2 * gas.CELL)
            vm.alloc(arena.DICT_ENTRY + arena.scalar_size(k) + arena.scalar_size(v), x, k, v)
        elif type(v) in (str, int):
            size = arena.scalar_size(v)
            if size:
                vm.alloc(size, x, v)
        x[k] = v
    else:
        raise TypeError(f"'{type_name(x)}' object does not support item assignment")


def delete_index(vm: Meter, x: Any, k: Any) -> None:
    t = type(x)
    if t is list:
        if type(k) not in INTS:
            raise TypeError(f"list indices must be integers or slices, not {type_name(k)}")
        vm.charge(gas.ELEMENT * len(x) // 8)
        del x[k]
    elif t is dict:
        check_key(vm, k)
        del x[k]
    else:
        raise TypeError(f"'{type_name(x)}' object does not support item deletion")


def slice_of(vm: Meter, x: Any, lo: Any, hi: Any, step: Any) -> Any:
    t = type(x)
    if t not in (list, tuple, str, range):
        raise TypeError(f"'{type_name(x)}' object is not subscriptable")
    for bound in (lo, hi, step):
        if bound is not None and type(bound) not in INTS:
            raise TypeError("slice indices must be integers or None or have an __index__ method")
    s = slice(lo, hi, step)
    start, stop, st = s.indices(len(x))
    n = len(range(start, stop, st))
    if t is str:
        _reserve_str(vm, n, _text_width(x), x)
    elif t is range:
        vm.alloc(arena.RANGE, x)
    else:
        vm.charge(gas.CELL * n)
        vm.alloc((arena.LIST if t is list else arena.TUPLE) + arena.SLOT * n, x)
    return x[s]


# ----------------------------------------------------------------------------------------------
# Iteration


def get_iter(vm: Meter, x: Any) -> Any:
    t = type(x)
    if t is list or t is tuple or t is str:
        vm.alloc(arena.ITERATOR, x)
        return SeqIter(x)
    if t is range:
        vm.alloc(arena.ITERATOR, x)
        return RangeIter(x.start, x.step, _range_len(x))
    if t is dict:
        vm.alloc(arena.ITERATOR, x)
        return DictIter(x, "keys")
    if t is DictView:
        vm.alloc(arena.ITERATOR, x)
        return DictIter(x.d, x.kind)
    if t in (SeqIter, RevIter, RangeIter, DictIter, EnumIter, ZipIter, MapIter, FilterIter):
        return x
    raise TypeError(f"'{type_name(x)}' object is not iterable")


def _range_len(r: range) -> int:
    if r.step > 0:
        return max(0, (r.stop - r.start + r.step - 1) // r.step)
    return max(0, (r.start - r.stop - r.step - 1) // -r.step)


def native_next(vm: Meter, it: Any) -> Any:
    """The next item of an iterator that needs no guest code, or EXHAUSTED."""
    t = type(it)
    if t is SeqIter:
        seq = it.seq
        i = it.i
        if i < len(seq):
            it.i = i + 1
            return seq[i]
        it.i = EXHAUSTED_INDEX
        return EXHAUSTED
    if t is RangeIter:
        if it.left <= 0:
            return EXHAUSTED
        v = it.cur
        it.cur = v + it.step
        it.left -= 1
        return _account_int(vm, v)
    if t is RevIter:
        i = it.i
        if 0 <= i < len(it.seq):
            it.i = i - 1
            return it.seq[i]
        it.i = -1
        return EXHAUSTED
    if t is DictIter:
        if len(it.d) != it.size:
            it.size = -1
            raise RuntimeError("dictionary changed size during iteration")
        try:
            v = next(it.it)
        except StopIteration:
            return EXHAUSTED
        it.n += 1
        if it.kind == "items":
            vm.alloc(arena.TUPLE + arena.slots_size(v), v)
        return v
    if t is EnumIter:
        v = native_next(vm, it.child)
        if v is EXHAUSTED:
            return v
        count = it.count
        it.count = count + 1
        vm.alloc(arena.TUPLE + 2 * arena.SLOT + arena.scalar_size(v), v)
        return (count, v)
    if t is ZipIter:
        if not it.children:
            return EXHAUSTED
        items = []
        for child in it.children:
            v = native_next(vm, child)
            if v is EXHAUSTED:
                return v
            items.append(v)
        vm.alloc(arena.TUPLE + arena.slots_size(items), items)
        return tuple(items)
    raise AssertionError(f"native_next of {type_name(it)}")  # pragma: no cover - callers check


def materialize(vm: Meter, x: Any) -> list[Any] | tuple[Any, ...] | str:
    """The items of a native iterable (not a map/filter iterator) as a sequence, paid for."""
    t = type(x)
    if t is list or t is tuple or t is str:
        return cast(list[Any] | tuple[Any, ...] | str, x)
    if t is dict:
        vm.charge(gas.ELEMENT * len(x))
        return list(x)
    if t is range:
        n = len(x)
        vm.charge(gas.ELEMENT * n)
        vm.alloc(arena.LIST + arena.SLOT * n, x)
        return list(x)
    if t is DictView:
        vm.charge(gas.ELEMENT * len(x.d))
        return list(x.d.keys() if x.kind == "keys" else x.d.values() if x.kind == "values" else x.d.items())
    it = get_iter(vm, x)
    items: list[Any] = []
    while True:
        v = native_next(vm, it)
        if v is EXHAUSTED:
            return items
        vm.charge(gas.ELEMENT)
        vm.alloc(arena.SLOT, items)
        items.append(v)


def unpack(vm: Meter, x: Any, n: int) -> list[Any] | tuple[Any, ...] | str:
    """The n items of x (ValueError with CPython's messages otherwise); x is not a guest iterator."""
    t = type(x)
    if t in (list, tuple, str, range, dict, DictView):
        items = materialize(vm, x)
        if len(items) < n:
            raise ValueError(f"not enough values to unpack (expected {n}, got {len(items)})")
        if len(items) > n:
            raise ValueError(f"too many values to unpack (expected {n})")
        return items
    if t in (SeqIter, RevIter, RangeIter, DictIter, EnumIter, ZipIter):
        got: list[Any] = []
        while len(got) <= n:
            v = native_next(vm, x)
            if v is EXHAUSTED:
                break
            got.append(v)
        if len(got) < n:
            raise ValueError(f"not enough values to unpack (expected {n}, got {len(got)})")
        if len(got) > n:
            raise ValueError(f"too many values to unpack (expected {n})")
        return got
    raise TypeError(f"cannot unpack non-iterable {type_name(x)} object")


UNARY: dict[str, Callable[[Meter, Any], Any]] = {"neg": neg, "pos": pos, "invert": invert}
BINARY: dict[str, Callable[[Meter, Any, Any], Any]] = {
    "add": add, "sub": sub, "mul": mul, "truediv": truediv, "floordiv": floordiv, "mod": mod, "pow": power,
    "lshift": lshift, "rshift": rshift, "bitand": bitand, "bitor": bitor, "bitxor": bitxor, "iadd": iadd,
    "imul": imul, "ior": ior,
}
ITERABLE_TYPES = (DictView, SeqIter, RevIter, RangeIter, DictIter, EnumIter, ZipIter, MapIter, FilterIter)
