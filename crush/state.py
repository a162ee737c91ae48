"""Continuations: a VM's whole state as a versioned JSON document, and back.

`save(vm)` may be called between any two instructions (after `run()` returned PAUSED, at a
suspension, or before the first instruction); `restore(doc, program, host, ...)` gives a VM that
continues exactly where the saved one stopped: the same output from then on, the same result, the
same total gas, the same final state. Never pickle: the document is plain JSON, and every field of
it is checked on the way in.

The document:

    {"crush_state": 1, "casm": 1, "program": SHA256, "prelude": SHA256,
     "gas": [limit, left], "steps": N, "arena": [budget, allocated, recounts], "rng": "0x...",
     "pending": null | [CAP, wake or null], "globals": VALUE,
     "frames": [[unit, function, pc, ret, [local VALUE...], [cell VALUE...], [stack VALUE...]], ...],
     "heap": [OBJECT, ...]}

A VALUE is `null`, `true`, `false`, a string, `["i", HEX]` (an int), `["f", HEX]` (a float,
float.hex), `["u"]` (unbound), `["b", NAME]` (a builtin, an exception type or a prelude function,
by its name) or `["r", N]` (heap object N). An OBJECT is `[KIND, ...fields]`: list, tuple, dict (an
array of [key, value] pairs, in order), range, fn (unit, function index, defaults, cells), cell,
exc (type name, args, traceback), and the iterators and dict views (crush/values.py). Objects with
identity are written once and referenced by index, so aliasing and cycles survive; strings and
numbers have no identity (crush/values.py) and are written where they are used. Heap indices are
given in the order a depth-first walk from the roots meets the objects, so one state always gives
one document.

`restore` refuses, with one `StateError` naming what is wrong, a document that is not JSON, too
large or too deep, of another version, saved for another program or prelude, or malformed in any
field: wrong types, references out of range, a frame whose stack depth is not what the verifier
proved for its instruction, a tuple that contains itself, an unhashable dict key.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from crush import jsonio, ops
from crush.casm import CASM_VERSION, Op, Program
from crush.values import (
    EXC_TYPES,
    UNBOUND,
    Cell,
    DictIter,
    DictView,
    EnumIter,
    ExcValue,
    FilterIter,
    Function,
    MapIter,
    RangeIter,
    RevIter,
    SeqIter,
    ZipIter,
)
from crush.vm import MAX_FRAMES, RET_FOR_ITER, RET_PUSH, VM, Frame, Host, Pending, Status, Unit, prelude

STATE_VERSION = 1
MAX_STATE_BYTES = 256 << 20
MAX_DEPTH = 8
MAX_HEX = 1 << 17       # hex digits of an int: 524,288 bits
MAX_KEY_TREE = 1 << 20  # a dict key tuple's size as a tree (its hash visits that many elements)


class StateError(ValueError):
    """A state document that cannot be restored: the message says what is wrong."""


# ----------------------------------------------------------------------------------------------
# Saving


class _Writer:
    def __init__(self, names: Mapping[int, str]) -> None:
        self.ids: dict[int, int] = {}
        self.heap: list[Any] = []
        self.pending: list[tuple[int, Any]] = []
        self.names = names  # id(builtin object) -> its name

    def value(self, v: Any) -> Any:
        t = type(v)
        if v is None or t is bool or t is str:
            return v
        if t is int:
            return ["i", hex(v)]
        if t is float:
            return ["f", v.hex()]
        if v is UNBOUND:
            return ["u"]
        name = self.names.get(id(v))
        if name is not None:
            return ["b", name]
        ref = self.ids.get(id(v))
        if ref is None:
            ref = self.ids[id(v)] = len(self.heap)
            self.heap.append(None)
            self.pending.append((ref, v))
        return ["r", ref]

    def drain(self) -> None:
        while self.pending:
            ref, v = self.pending.pop()
            self.heap[ref] = self.obj(v)

    def obj(self, v: Any) -> list[Any]:
        t = type(v)
        val = self.value
        if t is list:
            return ["list", [val(x) for x in v]]
        if t is tuple:
            return ["tuple", [val(x) for x in v]]
        if t is dict:
            return ["dict", [[val(k), val(x)] for k, x in v.items()]]
        if t is range:
            return ["range", val(v.start), val(v.stop), val(v.step)]
        if t is Function:
            code = v.code
            return ["fn", code.unit, code.index, val(v.defaults), [val(c) for c in v.cells]]
        if t is Cell:
            return ["cell", val(v.value)]
        if t is ExcValue:
            return ["exc", v.etype.name, val(tuple(v.args)), [[str(n), int(line)] for n, line in v.tb]]
        if t is SeqIter:
            return ["seqiter", val(v.seq), val(v.i)]
        if t is RevIter:
            return ["reviter", val(v.seq), val(v.i)]
        if t is RangeIter:
            return ["rangeiter", val(v.cur), val(v.step), val(v.left)]
        if t is DictIter:
            return ["dictiter", val(v.d), v.kind, v.rev, v.n, v.size]
        if t is EnumIter:
            return ["enumerate", val(v.child), val(v.count)]
        if t is ZipIter:
            return ["zip", [val(c) for c in v.children]]
        if t is MapIter:
            return ["map", val(v.fn), [val(c) for c in v.children]]
        if t is FilterIter:
            return ["filter", val(v.fn), val(v.child)]
        if t is DictView:
            return ["view", val(v.d), v.kind]
        raise AssertionError(f"cannot serialise a {t.__name__}")  # pragma: no cover - values.py lists them all


def _builtin_ids() -> dict[int, str]:
    return {id(v): k for k, v in prelude(True).names.items()} | {id(v): k for k, v in prelude(False).names.items()}


def save(vm: VM) -> dict[str, Any]:
    """The VM's state as a JSON-ready document (between instructions; not after the run ended)."""
    if vm.status in (Status.DONE, Status.ERROR, Status.TRAP) or vm.refusal is not None:
        raise StateError(f"a run that ended ({vm.status or 'refused'}) has no state to continue")
    w = _Writer(_builtin_ids())
    globals_ref = w.value(vm.globals)
    frames = []
    for f in vm.frames:
        code = f.code
        frames.append([code.unit, code.index, f.pc, f.ret, [w.value(x) for x in f.locals],
                       [w.value(c) for c in f.cells], [w.value(x) for x in f.stack]])
        w.drain()
    w.drain()
    return {
        "crush_state": STATE_VERSION, "casm": CASM_VERSION, "program": vm.program.hash,
        "prelude": vm.prelude_unit.hash,
        "gas": [vm.gas_limit, vm.gas], "steps": vm.steps,
        "arena": [vm.arena.budget, vm.arena.allocated, vm.arena.recounts], "rng": hex(vm.rng),
        "pending": None if vm.pending is None else [vm.pending.cap, vm.pending.wake],
        "globals": globals_ref, "frames": frames, "heap": w.heap,
    }


def dumps(vm: VM) -> str:
    return jsonio.dump(save(vm))


# ----------------------------------------------------------------------------------------------
# Restoring


class _Reader:
    def __init__(self, heap: Any, units: Mapping[str, Unit], names: Mapping[str, Any]) -> None:
        if not isinstance(heap, list):
            raise StateError("heap: an array is expected")
        self.raw = heap
        self.units = units
        self.names = names
        self.objs: list[Any] = [None] * len(heap)
        self.where = "heap"

    def fail(self, what: str) -> StateError:
        return StateError(f"{self.where}: {what}")

    # values

    def value(self, v: Any, unbound: bool = False) -> Any:
        """A VALUE (`unbound`: where the unbound marker may appear: a local, a cell)."""
        if v is None or isinstance(v, bool | str):
            return v
        if not isinstance(v, list) or not v or not isinstance(v[0], str):
            raise self.fail(f"not a value: {_short(v)}")
        tag = v[0]
        if tag == "u" and len(v) == 1:
            if not unbound:
                raise self.fail("the unbound marker outside a local or a cell")
            return UNBOUND
        if len(v) != 2:
            raise self.fail(f"not a value: {_short(v)}")
        x = v[1]
        if tag == "r":
            if not isinstance(x, int) or isinstance(x, bool) or not 0 <= x < len(self.objs):
                raise self.fail(f"reference {_short(x)} out of range")
            obj = self.objs[x]
            if obj is None:
                raise self.fail(f"reference to object {x}, which is not built yet (a tuple that contains itself?)")
            return obj
        if not isinstance(x, str):
            raise self.fail(f"not a value: {_short(v)}")
        if tag == "i":
            if len(x) > MAX_HEX or not _is_hex(x):
                raise self.fail("malformed integer")
            return int(x, 16)
        if tag == "f":
            try:
                return float.fromhex(x)
            except (ValueError, OverflowError):
                raise self.fail(f"malformed float {_short(x)}") from None
        if tag == "b":
            if x not in self.names:
                raise self.fail(f"unknown builtin {_short(x)}")
            return self.names[x]
        raise self.fail(f"unknown value tag {_short(tag)}")

    def typed(self, v: Any, types: type | tuple[type, ...], what: str) -> Any:
        value = self.value(v)
        if not isinstance(value, types) or (isinstance(value, bool) and types is int):
            raise self.fail(f"{what} has the wrong type")
        return value

    def count(self, v: Any, what: str) -> int:
        value = self.value(v)
        if type(value) is not int:
            raise self.fail(f"{what} is not an integer")
        return int(value)

    def array(self, v: Any, what: str) -> list[Any]:
        if not isinstance(v, list):
            raise self.fail(f"{what}: an array is expected")
        return v

    # objects: shells first, then tuples and ranges in dependency order, then contents

    def build(self) -> None:
        for i, raw in enumerate(self.raw):
            self.where = f"heap[{i}]"
            if not isinstance(raw, list) or not raw or not isinstance(raw[0], str):
                raise self.fail("an object is [KIND, ...]")
            shell = _SHELLS.get(raw[0])
            if shell is None and raw[0] not in ("tuple", "range"):
                raise self.fail(f"unknown object kind {_short(raw[0])}")
            if shell is not None:
                self.objs[i] = shell()
        self._immutables()
        for late in (False, True):  # iterators and views after the containers they read
            for i, raw in enumerate(self.raw):
                fill = _FILLERS.get(raw[0])
                if fill is not None and (raw[0] in _LATE) is late:
                    self.where = f"heap[{i}] ({raw[0]})"
                    fill(self, self.objs[i], raw)
        _guest_flags(self.objs)

    def _immutables(self) -> None:
        """Build tuples and ranges, each after the tuples it contains (iteratively)."""
        state = [0] * len(self.raw)  # 0 new, 1 in progress, 2 built
        for root, raw in enumerate(self.raw):
            if raw[0] not in ("tuple", "range") or state[root]:
                continue
            work = [root]
            while work:
                i = work[-1]
                raw_i = self.raw[i]
                self.where = f"heap[{i}] ({raw_i[0]})"
                if state[i] == 0:
                    state[i] = 1
                    for ref in _tuple_refs(raw_i):
                        if not isinstance(ref, int) or isinstance(ref, bool) or not 0 <= ref < len(self.raw):
                            raise self.fail(f"reference {_short(ref)} out of range")
                        kind = self.raw[ref][0] if isinstance(self.raw[ref], list) and self.raw[ref] else None
                        if kind in ("tuple", "range"):
                            if state[ref] == 1:
                                raise self.fail("a tuple that contains itself")
                            if state[ref] == 0:
                                work.append(ref)
                    continue
                work.pop()
                if state[i] == 2:
                    continue
                state[i] = 2
                if raw_i[0] == "tuple":
                    if len(raw_i) != 2:
                        raise self.fail("a tuple is [\"tuple\", [VALUE...]]")
                    self.objs[i] = tuple(self.value(x) for x in self.array(raw_i[1], "items"))
                else:
                    if len(raw_i) != 4:
                        raise self.fail("a range is [\"range\", START, STOP, STEP]")
                    start, stop, step = (self.count(x, "a range bound") for x in raw_i[1:])
                    if step == 0:
                        raise self.fail("a range's step is 0")
                    self.objs[i] = range(start, stop, step)


def _tuple_refs(raw: Any) -> list[Any]:
    if raw[0] == "tuple" and len(raw) == 2 and isinstance(raw[1], list):
        return [v[1] for v in raw[1] if isinstance(v, list) and len(v) == 2 and v[0] == "r"]
    return []


def _fill_list(r: _Reader, obj: list[Any], raw: list[Any]) -> None:
    if len(raw) != 2:
        raise r.fail("a list is [\"list\", [VALUE...]]")
    obj.extend(r.value(x) for x in r.array(raw[1], "items"))


def _fill_dict(r: _Reader, obj: dict[Any, Any], raw: list[Any]) -> None:
    if len(raw) != 2:
        raise r.fail("a dict is [\"dict\", [[KEY, VALUE]...]]")
    for pair in r.array(raw[1], "items"):
        if not isinstance(pair, list) or len(pair) != 2:
            raise r.fail("a dict item is [KEY, VALUE]")
        key = r.value(pair[0])
        _check_key(r, key)
        obj[key] = r.value(pair[1])


def _check_key(r: _Reader, key: Any) -> None:
    t = type(key)
    if t is float and math.isnan(key):
        raise r.fail("a NaN dict key")
    if t in (list, dict, DictView) or key is UNBOUND:
        raise r.fail(f"an unhashable dict key ({t.__name__})")
    if t is tuple:
        try:
            size = ops._tuple_tree_size(key)
        except TypeError as e:
            raise r.fail(f"an unhashable dict key ({e})") from None
        if size > MAX_KEY_TREE:
            raise r.fail("a dict key too large to hash")


def _fill_fn(r: _Reader, obj: Function, raw: list[Any]) -> None:
    if len(raw) != 5 or not isinstance(raw[1], str) or not isinstance(raw[2], int):
        raise r.fail("a function is [\"fn\", UNIT, INDEX, DEFAULTS, [CELL...]]")
    unit = r.units.get(raw[1])
    if unit is None or not 0 < raw[2] < len(unit.codes) or isinstance(raw[2], bool):
        raise r.fail("a function of no loaded program")
    code = unit.codes[raw[2]]
    defaults = r.typed(raw[3], tuple, "defaults")
    cells = tuple(r.typed(c, Cell, "a closure cell") for c in r.array(raw[4], "cells"))
    if len(defaults) != code.ndefaults or len(cells) != code.nfree:
        raise r.fail(f"{code.qualname} takes {code.ndefaults} defaults and {code.nfree} cells")
    obj.code, obj.defaults, obj.cells = code, defaults, cells


def _fill_cell(r: _Reader, obj: Cell, raw: list[Any]) -> None:
    if len(raw) != 2:
        raise r.fail("a cell is [\"cell\", VALUE]")
    obj.value = r.value(raw[1], unbound=True)


def _fill_exc(r: _Reader, obj: ExcValue, raw: list[Any]) -> None:
    if len(raw) != 4 or raw[1] not in EXC_TYPES:
        raise r.fail("an exception is [\"exc\", TYPE, ARGS, TRACEBACK]")
    obj.etype = EXC_TYPES[raw[1]]
    obj.args = r.typed(raw[2], tuple, "exception arguments")
    tb = r.array(raw[3], "traceback")
    for entry in tb:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
                and isinstance(entry[1], int) and not isinstance(entry[1], bool)):
            raise r.fail("a traceback entry is [NAME, LINE]")
    obj.tb = [list(e) for e in tb]


def _fill_seqiter(r: _Reader, obj: SeqIter | RevIter, raw: list[Any]) -> None:
    if len(raw) != 3:
        raise r.fail("a sequence iterator is [KIND, SEQ, INDEX]")
    obj.seq = r.typed(raw[1], (list, tuple, str), "the iterated sequence")
    obj.i = r.count(raw[2], "an index")
    if isinstance(obj, SeqIter) and obj.i < 0:
        raise r.fail("a negative index")


def _fill_rangeiter(r: _Reader, obj: RangeIter, raw: list[Any]) -> None:
    if len(raw) != 4:
        raise r.fail("a range iterator is [\"rangeiter\", NEXT, STEP, LEFT]")
    obj.cur, obj.step, obj.left = (r.count(x, "a range iterator field") for x in raw[1:])


def _fill_dictiter(r: _Reader, obj: DictIter, raw: list[Any]) -> None:
    if len(raw) != 6 or raw[2] not in ("keys", "values", "items") or not isinstance(raw[3], bool):
        raise r.fail("a dict iterator is [\"dictiter\", DICT, KIND, REVERSED, TAKEN, SIZE]")
    d = r.typed(raw[1], dict, "the iterated dict")
    n, size = raw[4], raw[5]
    if not (isinstance(n, int) and isinstance(size, int)) or isinstance(n, bool) or isinstance(size, bool):
        raise r.fail("a dict iterator's counts are integers")
    if n < 0 or size < -1:
        raise r.fail("a dict iterator's counts are out of range")
    obj.__init__(d, raw[2], raw[3], n)  # type: ignore[misc]  # re-create CPython's iterator and skip n
    obj.size = size


def _fill_enum(r: _Reader, obj: EnumIter, raw: list[Any]) -> None:
    if len(raw) != 3:
        raise r.fail("an enumerate is [\"enumerate\", ITERATOR, COUNT]")
    obj.child = _iterator(r, raw[1])
    obj.count = r.count(raw[2], "a count")


def _fill_zip(r: _Reader, obj: ZipIter, raw: list[Any]) -> None:
    if len(raw) != 2:
        raise r.fail("a zip is [\"zip\", [ITERATOR...]]")
    obj.children = tuple(_iterator(r, c) for c in r.array(raw[1], "children"))


def _guest_flags(objs: list[Any]) -> None:
    """Set enumerate/zip iterators' `guest` flags, children first; refuse iterator cycles."""
    done: dict[int, bool] = {}
    for root in objs:
        if type(root) not in (EnumIter, ZipIter) or id(root) in done:
            continue
        work: list[tuple[Any, bool]] = [(root, False)]
        active: set[int] = set()
        while work:
            it, expanded = work.pop()
            children = (it.child,) if type(it) is EnumIter else it.children
            if expanded:
                active.discard(id(it))
                it.guest = any(done.get(id(c), type(c) in (MapIter, FilterIter)) for c in children)
                done[id(it)] = it.guest
                continue
            if id(it) in done:
                continue
            if id(it) in active:
                raise StateError("heap: an iterator that contains itself")
            active.add(id(it))
            work.append((it, True))
            work.extend((c, False) for c in children if type(c) in (EnumIter, ZipIter) and id(c) not in done)


def _fill_map(r: _Reader, obj: MapIter, raw: list[Any]) -> None:
    if len(raw) != 3:
        raise r.fail("a map is [\"map\", FUNCTION, [ITERATOR...]]")
    obj.fn = r.value(raw[1])
    obj.children = tuple(_iterator(r, c) for c in r.array(raw[2], "children"))


def _fill_filter(r: _Reader, obj: FilterIter, raw: list[Any]) -> None:
    if len(raw) != 3:
        raise r.fail("a filter is [\"filter\", FUNCTION, ITERATOR]")
    obj.fn = r.value(raw[1])
    obj.child = _iterator(r, raw[2])


def _fill_view(r: _Reader, obj: DictView, raw: list[Any]) -> None:
    if len(raw) != 3 or raw[2] not in ("keys", "values", "items"):
        raise r.fail("a dict view is [\"view\", DICT, KIND]")
    obj.d = r.typed(raw[1], dict, "the viewed dict")
    obj.kind = raw[2]


_LATE = frozenset({"seqiter", "reviter", "rangeiter", "dictiter", "enumerate", "zip", "map", "filter", "view"})
_ITERATOR_TYPES = (SeqIter, RevIter, RangeIter, DictIter, EnumIter, ZipIter, MapIter, FilterIter)


def _iterator(r: _Reader, v: Any) -> Any:
    return r.typed(v, _ITERATOR_TYPES, "an iterator's child")


def _blank(cls: type) -> Callable[[], Any]:
    return lambda: object.__new__(cls)


_SHELLS: dict[str, Callable[[], Any]] = {
    "list": list, "dict": dict, "fn": _blank(Function), "cell": Cell, "exc": _blank(ExcValue),
    "seqiter": _blank(SeqIter), "reviter": _blank(RevIter), "rangeiter": _blank(RangeIter),
    "dictiter": _blank(DictIter), "enumerate": _blank(EnumIter), "zip": _blank(ZipIter), "map": _blank(MapIter),
    "filter": _blank(FilterIter), "view": _blank(DictView),
}
_FILLERS: dict[str, Callable[[_Reader, Any, list[Any]], None]] = {
    "list": _fill_list, "dict": _fill_dict, "fn": _fill_fn, "cell": _fill_cell, "exc": _fill_exc,
    "seqiter": _fill_seqiter, "reviter": _fill_seqiter, "rangeiter": _fill_rangeiter, "dictiter": _fill_dictiter,
    "enumerate": _fill_enum, "zip": _fill_zip, "map": _fill_map, "filter": _fill_filter, "view": _fill_view,
}


def _is_hex(s: str) -> bool:
    body = s[1:] if s.startswith("-") else s
    return body.startswith("0x") and len(body) > 2 and all(c in "0123456789abcdef" for c in body[2:])


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _int_field(doc: Mapping[str, Any], key: str, lo: int = 0) -> int:
    v = doc.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise StateError(f"{key}: an integer >= {lo} is expected")
    return v


def loads(data: bytes | str, program: Program, host: Host | None = None, *, out: Callable[[str], None] | None = None,
          fast: bool = False) -> VM:
    """Restore a VM from a state document's text (see `restore`)."""
    try:
        doc = jsonio.load(data, MAX_STATE_BYTES, MAX_DEPTH, "state")
    except jsonio.JsonError as e:
        raise StateError(str(e)) from None
    return restore(doc, program, host, out=out, fast=fast)


def restore(doc: Any, program: Program, host: Host | None = None, *, out: Callable[[str], None] | None = None,
            fast: bool = False) -> VM:
    """A VM that continues the run `doc` was saved from (StateError if it cannot)."""
    if not isinstance(doc, dict):
        raise StateError("a state is a JSON object")
    if doc.get("crush_state") != STATE_VERSION or doc.get("casm") != 1:
        raise StateError(f"unsupported state version {_short(doc.get('crush_state'))} "
                         f"(this is {STATE_VERSION}, CASM {CASM_VERSION})")
    if doc.get("program") != program.hash:
        raise StateError(f"the state was saved for program {_short(doc.get('program'))}, not {program.hash}")
    gas = doc.get("gas")
    arena = doc.get("arena")
    if not (isinstance(gas, list) and len(gas) == 2 and all(isinstance(g, int) and not isinstance(g, bool)
                                                          for g in gas) and 0 <= gas[1] <= gas[0]):
        raise StateError("gas: [LIMIT, LEFT] with 0 <= LEFT <= LIMIT is expected")
    if not (isinstance(arena, list) and len(arena) == 3 and all(isinstance(a, int) and not isinstance(a, bool)
                                                               and a >= 0 for a in arena) and arena[0] > 0):
        raise StateError("arena: [BUDGET, ALLOCATED, RECOUNTS] of non-negative integers is expected")
    vm = VM(program, host, gas=gas[0], arena=arena[0], out=out, fast=fast)
    if vm.refusal is not None:
        raise StateError(f"the program cannot run here: {vm.refusal}")
    if doc.get("prelude") != vm.prelude_unit.hash:
        raise StateError("the state was saved with another prelude (another CRUSH version)")
    vm.gas = gas[1]
    vm.steps = _int_field(doc, "steps")
    vm.arena.allocated, vm.arena.recounts = arena[1], arena[2]
    rng = doc.get("rng")
    if not isinstance(rng, str) or not _is_hex(rng) or len(rng) > 18:
        raise StateError("rng: a 64-bit hex integer is expected")
    vm.rng = int(rng, 16)
    if not 0 <= vm.rng < 1 << 64:
        raise StateError("rng: a 64-bit hex integer is expected")
    names = prelude(True).names
    units = {"user": vm.unit, "prelude": vm.prelude_unit}
    reader = _Reader(doc.get("heap"), units, names)
    reader.build()
    reader.where = "globals"
    g = reader.typed(doc.get("globals"), dict, "globals")
    if not all(type(k) is str for k in g):
        raise StateError("globals: names must be strings")
    vm.globals = g
    pending = _pending(doc.get("pending"), vm)
    vm.frames = _frames(reader, doc.get("frames"), units, doc)
    vm.pending = pending
    return vm


def _frames(r: _Reader, raw: Any, units: Mapping[str, Unit], doc: Mapping[str, Any]) -> list[Frame]:
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_FRAMES:
        raise StateError(f"frames: an array of 1 to {MAX_FRAMES} frames is expected")
    frames: list[Frame] = []
    waiting_top = doc.get("pending") is not None
    for i, f in enumerate(raw):
        r.where = f"frames[{i}]"
        if not (isinstance(f, list) and len(f) == 7 and isinstance(f[0], str) and all(
                isinstance(x, int) and not isinstance(x, bool) for x in f[1:4])):
            raise r.fail("a frame is [UNIT, FUNCTION, PC, RET, LOCALS, CELLS, STACK]")
        unit = units.get(f[0])
        if unit is None or not 0 <= f[1] < len(unit.codes):
            raise r.fail("a function of no loaded program")
        code = unit.codes[f[1]]
        if i == 0 and (unit.name != "user" or f[1] != 0):
            raise r.fail("the first frame is the program's module body")
        pc, ret = f[2], f[3]
        if not 0 <= pc < len(code.instrs) or code.depths[pc] < 0:
            raise r.fail(f"pc {pc} is not a reachable instruction of {code.qualname}")
        waiting = i < len(raw) - 1 or waiting_top
        depth = code.depths[pc] - (1 if waiting else 0)
        locals_ = [r.value(x, unbound=True) for x in r.array(f[4], "locals")]
        cells = [r.typed(c, Cell, "a cell") for c in r.array(f[5], "cells")]
        stack = [r.value(x) for x in r.array(f[6], "stack")]
        if len(locals_) != code.nlocals or len(cells) != code.ncells + code.nfree:
            raise r.fail(f"{code.qualname} has {code.nlocals} locals and {code.ncells + code.nfree} cells")
        if len(stack) != depth:
            raise r.fail(f"{len(stack)} stack items where the verifier proved {depth} at pc {pc}")
        if ret not in (RET_PUSH, RET_FOR_ITER):
            raise r.fail("ret is 0 or 1")
        if ret == RET_FOR_ITER:
            caller = frames[-1] if frames else None
            if caller is None or caller.pc < 1 or caller.code.instrs[caller.pc - 1][0] != Op.FOR_ITER:
                raise r.fail("a FOR_ITER return whose caller is not at a FOR_ITER")
        frame = Frame(code, locals_, cells, ret)
        frame.pc = pc
        frame.stack = stack
        frames.append(frame)
    return frames


def _pending(raw: Any, vm: VM) -> Pending | None:
    if raw is None:
        return None
    if not (isinstance(raw, list) and len(raw) == 2 and raw[0] in ("sleep", "yield")
            and (raw[1] is None or (isinstance(raw[1], int | float) and not isinstance(raw[1], bool)
                                    and math.isfinite(raw[1])))):
        raise StateError("pending: [\"sleep\" or \"yield\", WAKE TIME or null] is expected")
    if raw[0] not in vm.program.caps:
        raise StateError(f"pending: the program does not declare {raw[0]}")
    vm.status = Status.SUSPENDED
    return Pending(raw[0], None if raw[1] is None else float(raw[1]))

