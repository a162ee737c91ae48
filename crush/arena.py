"""The arena: a byte budget for everything a program keeps, enforced before each allocation.

The size model (deterministic, independent of CPython's object layout):

- A *slot* (a list or tuple item, a dict key or value, a local, a stack entry, a cell) is
  SLOT bytes and holds a reference.
- Scalars are sized where they are referenced, once per reference: ints of up to 63 bits,
  floats, bools, None and strings of up to 8 bytes (1 byte per ASCII character, else 4) live in
  their slot (0 bytes more); a bigger int or str adds `scalar_size` bytes at each reference.
  Scalars have no identity in CRUSH (see crush/values.py), so counting them per reference is
  the only count that cannot depend on how CPython happens to share string objects, and it
  survives serialisation unchanged.
- Containers and the VM's objects (lists, tuples, dicts, ranges, functions, cells, iterators,
  exceptions) have identity and are counted once each: a header plus their slots.

Accounting: `Arena.allocated` is the size measured at the last recount plus every allocation
estimated since (allocations only add). An allocation of n bytes first checks
`allocated + n <= budget`; when that fails the VM *recounts*: it traces the live heap from its
roots (globals, every frame's locals, cells and stack, the operands of the instruction at hand),
sets `allocated` to what is live (memory the program dropped is thereby freed) and charges
gas.TRACE per object visited. Only if the live size plus n still exceeds the budget does the
allocation trap with ARENA_EXCEEDED, before anything is allocated. Every step is a function of
the program's state, so the trap happens at the same instruction on every run, and after a
resume (`allocated` is part of the serialised state).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

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
)

SLOT = 8
LIST = 32
TUPLE = 24
DICT = 48
DICT_ENTRY = 2 * SLOT + 16   # key and value slots, hash and index
RANGE = 48
FUNCTION = 48
CELL = 16
ITERATOR = 32
EXCEPTION = 48
TB_ENTRY = 16
FRAME = 64
IMMEDIATE_BITS = 63
IMMEDIATE_BYTES = 8


def str_size(s: str) -> int:
    n = len(s) if s.isascii() else 4 * len(s)
    return 0 if n <= IMMEDIATE_BYTES else 24 + n


def int_size(i: int) -> int:
    bits = i.bit_length()
    return 0 if bits <= IMMEDIATE_BITS else 24 + 8 * ((bits + 63) // 64)


def scalar_size(v: Any) -> int:
    """Bytes a reference to `v` adds beyond its slot (0 for containers: they are counted once,
    by the trace or by the allocation that made them)."""
    t = type(v)
    if t is str:
        return str_size(v)
    if t is int:
        return int_size(v)
    return 0


def slots_size(items: Iterable[Any]) -> int:
    """Size of a run of slots holding `items`."""
    total = 0
    for v in items:
        t = type(v)
        total += SLOT + (str_size(v) if t is str else int_size(v) if t is int else 0)
    return total


def list_size(items: Collection[Any]) -> int:
    return LIST + slots_size(items)


def tuple_size(items: Collection[Any]) -> int:
    return TUPLE + slots_size(items)


_LEAVES = (type(None), bool, int, float, str, Builtin, ExcType)


def measure(roots: Iterable[Any]) -> tuple[int, int]:
    """(live bytes, objects visited) of everything reachable from `roots` (each root is counted
    as a value: a Python list of frame slots counts as a list). Iterative: any depth, any
    cycle; each object with identity is visited once."""
    seen: set[int] = set()
    stack: list[Any] = list(roots)
    total = 0
    visited = 0
    leaves = _LEAVES
    while stack:
        v = stack.pop()
        t = type(v)
        if t in leaves:
            total += scalar_size(v)
            continue
        if id(v) in seen:
            continue
        seen.add(id(v))
        visited += 1
        if t is list or t is tuple:
            total += (LIST if t is list else TUPLE) + SLOT * len(v)
            stack.extend(v)
        elif t is dict:
            total += DICT + DICT_ENTRY * len(v)
            stack.extend(v.keys())
            stack.extend(v.values())
        elif t is range:
            total += RANGE + int_size(v.start) + int_size(v.stop) + int_size(v.step)
        elif t is Function:
            total += FUNCTION + SLOT * (len(v.defaults) + len(v.cells))
            stack.extend(v.defaults)
            stack.extend(v.cells)
        elif t is Cell:
            total += CELL
            stack.append(v.value)
        elif t is ExcValue:
            total += EXCEPTION + SLOT * len(v.args) + TB_ENTRY * len(v.tb)
            stack.extend(v.args)
        elif t is SeqIter or t is RevIter:
            total += ITERATOR
            stack.append(v.seq)
        elif t is RangeIter:
            total += ITERATOR + int_size(v.cur) + int_size(v.step) + int_size(v.left)
        elif t is DictIter or t is DictView:
            total += ITERATOR
            stack.append(v.d)
        elif t is EnumIter:
            total += ITERATOR + int_size(v.count)
            stack.append(v.child)
        elif t is ZipIter:
            total += ITERATOR + SLOT * len(v.children)
            stack.extend(v.children)
        elif t is MapIter:
            total += ITERATOR + SLOT * len(v.children)
            stack.append(v.fn)
            stack.extend(v.children)
        elif t is FilterIter:
            total += ITERATOR
            stack.append(v.fn)
            stack.append(v.child)
        else:
            total += SLOT  # the UNBOUND marker and VM-internal values
    return total, visited


class Arena:
    """The byte budget and the running count (see the module docstring)."""
    __slots__ = ("allocated", "budget", "recounts")

    def __init__(self, budget: int, allocated: int = 0, recounts: int = 0) -> None:
        self.budget = budget
        self.allocated = allocated
        self.recounts = recounts
