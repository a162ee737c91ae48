"""Fast mode: each function's basic blocks compiled to Python source, same results and same gas.

`run_fast(vm, limit)` is a trampoline: it runs the top frame's compiled function, which runs
until the frame changes (a call, a return), the run stops, or a block cannot be run whole; then
the trampoline dispatches again. Python source is generated only from verified CASM (crush/
verify.py): every identifier in it is generated (`L3` a local, `S2` a stack slot, `K7` a
constant, `H12` the handler of instruction 12), and every constant, name, builtin and function
is passed in the generated code's namespace, never written into its text (the only numbers in
the text are instruction indices, counts, gas costs and the VM's own bounds).

How the generated code keeps the interpreter's semantics exactly:
- Guest locals and the operand stack live in Python variables (`L<i>`, `S<depth>`: the
  verifier proved the stack depth at every instruction, so stack slots have fixed names). A
  stack slot holding a local or a constant is not copied at all while nothing can observe it
  (a *virtual* slot: `L3 + K1` is computed directly); before anything that can observe the
  stack (a helper that may charge, allocate, recount the arena or raise; a write-back; the
  local being reassigned) the slot is written to its `S<depth>` variable.
- What is known about locals is computed once per function by a forward data-flow analysis
  over its basic blocks (`_analyse`): which locals are certainly bound (no UnboundLocalError
  test) and which certainly hold an `int` (no type test before small-int arithmetic and
  comparisons; the range test that keeps big ints on the arena-charging path stays), taking
  the parameters that were ints at the first call to be ints at the start (tested on entry: a
  call with others has the function generated again without the assumption). The
  facts at a block are checked whenever a function is entered anywhere but at its start (a
  resumed or crafted state, a return through the trampoline): if they do not hold, the block
  runs in the interpreter's careful mode instead.
- Gas and steps are charged per block at its entry, all of the block at once, with one test.
  Every instruction costs at least 1 gas, so when the gas left is no more than the steps left
  before the run's step limit (`limit - steps >= gas`, which the trampoline checks when it
  enters a function) the step limit cannot be reached before the gas runs out, and the block
  tests only `gas < cost`; otherwise the function's *checked* variant tests both. Unmetered
  runs (a benchmark's measure) test only the steps, and only when a step limit is in reach.
  A block that cannot be paid for in full, or that would cross the step limit, is not
  entered: the interpreter runs it instruction by instruction, so a trap or a pause happens at
  exactly the interpreter's instruction. Within a block, work that charges gas dynamically is
  called with the not-yet-executed rest of the block's static cost credited back, so it sees
  exactly the gas the interpreter would.
- A block also pays in advance, in the same test, for a chain of the blocks generated inline
  after it that it falls through or jumps to (`_Function.plan`); a jump back to the arm's
  block continues the chain with a copy of the loop's body, so a tight loop is unrolled up to
  UNROLL turns and pays once for them. A branch leaving the chain gives back what was paid for
  the rest of it (or hands it to the block inlined there, which then needs no test of its own
  if it is covered). Every figure written back (a helper's gas, an exit, an exception's steps)
  counts what was paid in advance as not yet spent, so it stays the interpreter's.
- A function with a loop tests and subtracts a window of the gas (`gas`, at most WINDOW, a
  one-digit Python int: a budget like 10**12 would make every subtraction a multi-digit one); the
  rest is in `gb`, added back whenever vm.gas is written. A test that fails only for the window leaves
  for the interpreter, which is exact, and the function starts again with a new window.
- Control flow: each block is an arm of a dispatch on `b` with a loop of its own; a jump to the
  arm's block is a `continue` of that loop, and a block with a single predecessor (or a small
  block that jumps back to the arm's block) is generated inline where it is reached, so a loop
  runs without dispatching. Every block keeps its own arm, for entries from outside.
- An exception inside a block is located by the generated line it came from (each line
  belongs to one instruction): the frame's locals, stack, pc and step count are written back
  as the interpreter would have them, and the VM unwinds it as usual.
- Instructions that may switch frames (calls, returns, FOR_ITER over map/filter, capabilities,
  ...) end their block: the state is written back and the interpreter's own handler runs them
  (a guest call with exactly its parameters makes its frame directly); the callee runs nested,
  a bounded depth deep, and the caller continues in place when it returns.
- An arena recount during a block reads the running function's variables (vm.live, read by
  crush/vm.py `_live_values`): the same roots the interpreter would present.
State is therefore serialisable at block boundaries, and, because partial blocks run in the
interpreter, a run in fast mode can be paused at any instruction count too; a state saved in
one mode resumes in the other.
"""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Callable
from typing import Any

from crush import arena as arena_mod
from crush import ops
from crush.builtins import METHODS
from crush.casm import OPS, Op
from crush.errors import GuestError, TrapError
from crush.ops import IMMEDIATE
from crush.values import UNBOUND, Builtin, Function, RangeIter, SeqIter, TailCall
from crush.vm import (
    BINARY_FUNCTIONS,
    MAX_FRAMES,
    NATIVE_ERRORS,
    SLOW,
    UNARY_FUNCTIONS,
    VM,
    WINDOW,
    Code,
    Frame,
    Status,
    build_dict,
    build_list,
    build_string,
    build_tuple,
    delete_global,
    exc_match,
    format_with,
    load_global,
    make_cell,
    make_function,
    raise_value,
    reraise_value,
    store_global,
    tail_call,
    unbound_cell,
    unbound_local,
)

SWITCH = 0      # the generated function returned: re-dispatch on the top frame
INTERPRET = 1   # ... and the interpreter must run the block at frame.pc
GENERIC = 2     # ... the code assumed int parameters, the call has others: compile it without the assumption
NEST = 32       # calls run nested in the caller's generated code up to this depth, then by the trampoline
UNLIMITED = 1 << 61   # a step limit this far away is out of reach (unmetered runs then test no steps)
INLINE_LINES = 4000   # no more inlining once a function's generated code has this many lines
INLINE_INDENT = 40    # ... or at this indentation
LATCH = 8             # a block of at most this many instructions jumping back to its loop's head is inlined
CHAIN = 64            # a block pays in advance for the blocks that follow it up to this many instructions in all
UNROLL = 4            # ... including up to this many turns of a loop (its body copied)
IMM = str(IMMEDIATE)  # the small-int bound, as text (ints beyond it are charged to the arena)
INT = "int"           # what the analysis knows of a stack slot or a local: an int (else None)
_INT_OPS = {Op.ADD: "+", Op.IADD: "+", Op.SUB: "-", Op.MUL: "*", Op.FLOORDIV: "//", Op.MOD: "%",
            Op.BITAND: "&", Op.BITOR: "|", Op.BITXOR: "^"}
_COMPARE = {Op.EQ: "==", Op.NE: "!=", Op.LT: "<", Op.LE: "<=", Op.GT: ">", Op.GE: ">="}
_BUILDERS = {Op.BUILD_LIST: ("build_list", 1), Op.BUILD_TUPLE: ("build_tuple", 1), Op.BUILD_DICT: ("build_dict", 2),
             Op.BUILD_STRING: ("build_string", 1)}
# instructions run by the interpreter's handler after the state is written back (they end blocks)
_HANDLED = {Op.CALL, Op.CALL_KW, Op.CALL_METHOD, Op.CALL_METHOD_KW, Op.RETURN, Op.CAP, Op.NEXT, Op.IN, Op.NOT_IN,
            Op.IOR, Op.RAISE_CURRENT}

Fn = Callable[[VM, Frame, int], int]


class Compiled:
    """A function compiled to Python: `fn(vm, frame, limit)` returns SWITCH, INTERPRET or
    GENERIC. `fn` tests only gas (metered) or nothing (unmetered) per block and may run only
    while the step limit is out of reach (`run_fast` checks); `checked()` is the variant that
    also tests the step limit, made when first needed. `ints`: the parameters the code takes
    to be ints when it is entered at its start (those of the first call: a call where one is
    not returns GENERIC, and the function is compiled again without the assumption)."""
    __slots__ = ("_checked", "code", "fn", "ints", "line2pc", "metering", "source", "starts")

    def __init__(self, code: Code, metering: bool, ints: frozenset[int] = frozenset()) -> None:
        self.code = code
        self.metering = metering
        self.ints = ints
        # the unchecked variant relies on every instruction costing at least 1 gas
        self._checked: Fn | None = None
        if metering and not all(c >= 1 for c in code.costs):
            self.fn, self.source, self.line2pc, self.starts = _generate(code, metering, True, ints)
            self._checked = self.fn
        else:
            self.fn, self.source, self.line2pc, self.starts = _generate(code, metering, False, ints)

    def checked(self) -> Fn:
        if self._checked is None:
            self._checked = _generate(self.code, self.metering, True, self.ints)[0]
        return self._checked


def compile_code(code: Code, metering: bool) -> Compiled:
    return Compiled(code, metering)


def _int_params(frame: Frame) -> frozenset[int]:
    if frame.pc:
        return frozenset()
    locals_ = frame.locals
    return frozenset(i for i in range(frame.code.nparams) if type(locals_[i]) is int)


def run_fast(vm: VM, limit: int, floor: int = 0) -> None:
    """Run in fast mode until the run stops, `vm.steps` reaches `limit`, or only `floor`
    frames are left (a call run nested by its caller's generated code returned)."""
    frames = vm.frames
    metering = vm.metering
    while len(frames) > floor and not vm.halt:
        steps = vm.steps
        if steps >= limit:
            vm.status = Status.PAUSED
            return
        frame = frames[-1]
        code = frame.code
        compiled = code.fast
        if compiled is None:
            compiled = code.fast = Compiled(code, metering, _int_params(frame))
        fn = compiled.fn if limit - steps >= (vm.gas if metering else UNLIMITED) else compiled.checked()
        try:
            r = fn(vm, frame, limit)
        except (GuestError, TrapError, *NATIVE_ERRORS) as e:
            vm.fault(e)
            continue
        if r == INTERPRET:
            vm.careful(limit)
        elif r == GENERIC:
            code.fast = Compiled(code, metering)


def facts_hold(locals_: list[Any], stack: list[Any], facts: tuple[tuple[int, ...], ...]) -> bool:
    """Whether a frame is as the analysis says it is at a block: locals bound, locals and
    stack slots holding ints."""
    bound, ints, int_slots = facts
    for i in bound:
        if locals_[i] is UNBOUND:
            return False
    return all(type(locals_[i]) is int for i in ints) and all(type(stack[i]) is int for i in int_slots)


# ----------------------------------------------------------------------------------------------
# Analysis

State = tuple[tuple[Any, ...], frozenset[int], frozenset[int]]  # (stack slot types, bound locals, int locals)


def _transfer(code: Code, pc: int, state: State) -> State:
    """The state after instruction pc, where it falls through (a stack slot's type is INT or
    None: unknown)."""
    stack, bound, ints = state
    op, arg = code.instrs[pc][0], code.instrs[pc][1]
    if op in (Op.LOAD_CONST, Op.LOAD_BUILTIN):
        return (*stack, INT if type(arg) is int else None), bound, ints
    if op == Op.LOAD_LOCAL:
        return (*stack, INT if arg in ints else None), bound | {arg}, ints
    if op == Op.STORE_LOCAL:
        return stack[:-1], bound | {arg}, (ints | {arg}) if stack[-1] is INT else ints - {arg}
    if op == Op.DELETE_LOCAL:
        return stack, bound - {arg}, ints - {arg}
    if op == Op.DUP:
        return (*stack, stack[-1]), bound, ints
    if op == Op.SWAP:
        return (*stack[:-2], stack[-1], stack[-2]), bound, ints
    if op in (Op.POP, Op.JUMP_IF_FALSE, Op.JUMP_IF_TRUE, Op.JUMP_IF_FALSE_OR_POP, Op.JUMP_IF_TRUE_OR_POP):
        return stack[:-1], bound, ints
    if op in (Op.NOP, Op.JUMP):
        return stack, bound, ints
    if op == Op.FOR_ITER:
        return (*stack, None), bound, ints
    if op in _INT_OPS:  # int op int is an int, whichever path computes it
        return (*stack[:-2], INT if stack[-1] is INT and stack[-2] is INT else None), bound, ints
    after = code.depths[pc + 1] if pc + 1 < len(code.instrs) else 0
    return (None,) * max(after, 0), bound, ints


def _jumped(code: Code, pc: int, state: State) -> State:
    """The state after instruction pc (a jump or branch) where it jumps."""
    stack, bound, ints = state
    op = code.instrs[pc][0]
    if op in (Op.JUMP_IF_FALSE, Op.JUMP_IF_TRUE, Op.FOR_ITER):
        return stack[:-1], bound, ints
    return stack, bound, ints


def _meet(a: State | None, b: State) -> State:
    if a is None:
        return b
    return tuple(x if x == y else None for x, y in zip(a[0], b[0], strict=True)), a[1] & b[1], a[2] & b[2]


def _analyse(code: Code, blocks: list[int], ends: dict[int, int], minimal: frozenset[int],
             int_params: frozenset[int]) -> tuple[list[State | None], dict[int, State]]:
    """Forward data flow over the blocks: the state before each instruction (and so at each
    block's entry). Entries from outside the flow (the function's start, exception handlers)
    know only that the parameters never deleted are bound (and, at the start, that
    `int_params` are ints: the generated code tests that); states meet by intersection."""
    pre: list[State | None] = [None] * len(code.instrs)
    entry: dict[int, State] = {0: ((), minimal, int_params & minimal)}
    for h in code.handlers:
        entry[h.target] = ((None,) * code.depths[h.target], minimal, frozenset())
    work = list(entry)
    live = set(blocks)
    while work:
        s = work.pop()
        if s not in live:
            continue
        state = entry[s]
        for pc in range(s, ends[s]):
            pre[pc] = state
            before, state = state, _transfer(code, pc, state)
        last = ends[s] - 1
        flow = OPS[code.instrs[last][0]].flow
        edges = []
        if flow in ("jump", "branch"):
            edges.append((code.instrs[last][1], _jumped(code, last, before)))
        if flow not in ("jump", "end") and ends[s] < len(code.instrs):
            edges.append((ends[s], state))
        for t, out in edges:
            old = entry.get(t)
            new = _meet(old, out)
            if new != old:
                entry[t] = new
                work.append(t)
    return pre, entry


def _successors(code: Code, start: int, end: int) -> list[int]:
    op, arg = code.instrs[end - 1][0], code.instrs[end - 1][1]
    flow = OPS[op].flow
    if flow == "end":
        return []
    if flow == "jump":
        return [arg]
    out = [arg] if flow == "branch" else []
    if end < len(code.instrs):
        out.append(end)
    return out


# ----------------------------------------------------------------------------------------------
# Code generation


class _Slots:
    """The operand stack while a block is generated: each slot is in its variable S<i>
    (None) or virtual: (a side-effect-free expression over locals, constants and the result
    temporaries R<pc>, the locals it reads)."""
    __slots__ = ("v",)

    def __init__(self, size: int) -> None:
        self.v: list[tuple[str, frozenset[int]] | None] = [None] * (size + 1)

    def expr(self, i: int) -> str:
        e = self.v[i]
        return f"S{i}" if e is None else e[0]


class _At:
    """Where code is being generated: the indentation, the arm's block (a jump to it is a
    `continue`), the blocks inlined on the way here, the blocks the block being generated has
    paid for in advance (`chain`: they follow it, generated inline, in this order) and what
    they cost (`owed`: gas, steps), and which unrolled copy of the arm's loop this is (0: the
    arm's own code; see `_Function.plan`)."""
    __slots__ = ("arm", "chain", "copy", "ind", "inlined", "owed")

    def __init__(self, ind: int, arm: int, inlined: tuple[int, ...], chain: tuple[int, ...] = (), *,
                 owed: tuple[int, int] = (0, 0), copy: int = 0) -> None:
        self.ind = ind
        self.arm = arm
        self.inlined = inlined
        self.chain = chain
        self.owed = owed
        self.copy = copy

    def deeper(self, extra: int) -> _At:
        return _At(self.ind + extra, self.arm, self.inlined, self.chain, owed=self.owed, copy=self.copy)


def _tuple_of(names: list[str]) -> str:
    return "(" + "".join(f"{n}, " for n in names) + ")"


class _Function:
    """The Python source of one CASM function (see the module docstring)."""

    def __init__(self, code: Code, metering: bool, checked: bool, ints: frozenset[int]) -> None:
        self.code = code
        self.metering = metering
        self.checked = checked
        self.names: dict[str, Any] = {}
        self.ids: dict[int, str] = {}
        self.lines: list[tuple[int, str, int, int]] = []  # (indent, text, pc, steps after it in the frame's count)
        instrs = code.instrs
        depths = code.depths
        n = len(instrs)
        every = sorted(code.starts)
        self.blocks = [s for s in every if depths[s] >= 0]  # a block starting unreachable is never entered
        self.blockset = set(self.blocks)
        self.ends = dict(zip(every, [*every[1:], n], strict=True))
        self.succ = {s: _successors(code, s, self.ends[s]) for s in self.blocks}
        self.npreds: dict[int, int] = {}
        self.after = [0] * n  # instructions after each one in its block
        for s in self.blocks:
            for t in self.succ[s]:
                self.npreds[t] = self.npreds.get(t, 0) + 1
            for pc in range(s, self.ends[s]):
                self.after[pc] = self.ends[s] - 1 - pc
        # blocks with an arm of their own (never inlined): the start, exception handlers, the
        # blocks after guest calls (where a return through the trampoline re-enters)
        self.own_arm = {0, *(h.target for h in code.handlers),
                        *(pc + 1 for pc, (op, _, _, _) in enumerate(instrs) if op in (Op.CALL, Op.CALL_KW))}
        self.own_arm &= self.blockset
        self.pending = sorted(self.own_arm)
        self.done = 0
        deleted = {arg for op, arg, _, _ in instrs if op == Op.DELETE_LOCAL}
        minimal = frozenset(i for i in range(code.nparams) if i not in deleted)
        self.pre, self.entry = _analyse(code, self.blocks, self.ends, minimal, ints)
        self.locals_tuple = _tuple_of([f"L{i}" for i in range(code.nlocals)])
        self.uses = {op for op, _, _, _ in instrs}
        # a function with a loop keeps its gas in a window (one-digit ints in its loops); one
        # without runs each block at most once a call: the window would cost more than it saves
        self.window = metering and any(OPS[op].flow in ("jump", "branch") and arg <= pc
                                       for pc, (op, arg, _, _) in enumerate(instrs))

    # -- emitting ----------------------------------------------------------------------------

    def put_gas(self, extra: int) -> str:
        """vm.gas set from the generated code's gas, `extra` more (in a function with a loop, the
        code keeps a window of the gas, `gas`, what is above it in `gb`: see WINDOW)."""
        gb = " + gb" if self.window else ""
        return f"vm.gas = gas{gb} + {extra}" if extra else f"vm.gas = gas{gb}"

    def get_gas(self, extra: int) -> str:
        """The generated code's gas read back from vm.gas, `extra` less (a window: below 0 when
        a call spent more than it, and the next test leaves for the interpreter)."""
        gb = " - gb" if self.window else ""
        return f"gas = vm.gas{gb} - {extra}" if extra else f"gas = vm.gas{gb}"

    def const(self, value: Any) -> str:
        """The generated name under which `value` is passed to the generated code."""
        name = self.ids.get(id(value))
        if name is None:
            name = self.ids[id(value)] = f"K{len(self.ids)}"
            self.names[name] = value
        return name

    def emit(self, at: _At | int, text: str, pc: int = -1) -> None:
        if isinstance(at, int):
            self.lines.append((at, text, pc, 0))
        else:
            self.lines.append((at.ind, text, pc, (self.after[pc] if pc >= 0 else 0) + at.owed[1]))

    def write_back(self, at: _At, sl: _Slots, depth: int, pc: int) -> None:
        if self.code.nlocals:
            self.emit(at, f"fl[:] = {self.locals_tuple}", pc)
        self.emit(at, f"fs[:] = {_tuple_of([sl.expr(i) for i in range(depth)])}", pc)

    def flush(self, at: _At, sl: _Slots, depth: int, pc: int, keep: bool = False) -> None:
        """Write the virtual slots below `depth` to their variables (`keep`: in a branch only,
        the slots stay virtual for the code after it)."""
        for i in range(depth):
            e = sl.v[i]
            if e is not None:
                self.emit(at, f"S{i} = {e[0]}", pc)
                if not keep:
                    sl.v[i] = None

    def exit_interpret(self, at: _At, sl: _Slots, depth: int, pc: int, *, resume: int, steps: int) -> None:
        """Leave for the interpreter's careful mode at `resume`, `steps` fewer steps than `st`
        counts (vm.gas already set)."""
        self.write_back(at, sl, depth, pc)
        self.emit(at, f"frame.pc = {resume}", pc)
        self.emit(at, f"vm.steps = st - {steps}" if steps else "vm.steps = st", pc)
        self.emit(at, "return 1", pc)

    def sync_out(self, at: _At, pc: int, gas_extra: int = 0) -> None:
        """vm.steps and vm.gas as the interpreter has them after instruction pc, the last of
        its block (what was paid in advance for the next block given back)."""
        owed_gas, owed_steps = at.owed
        self.emit(at, f"vm.steps = st - {owed_steps}" if owed_steps else "vm.steps = st", pc)
        if self.metering:
            extra = owed_gas + gas_extra
            self.emit(at, self.put_gas(extra), pc)

    def sync_in(self, at: _At, sl: _Slots, pc: int) -> None:
        """After the VM ran code: read its steps and gas, and pay again for the next block what
        was paid in advance (or leave for the interpreter at it)."""
        owed_gas, owed_steps = at.owed
        self.emit(at, f"st = vm.steps + {owed_steps}" if owed_steps else "st = vm.steps", pc)
        if self.metering:
            self.emit(at, self.get_gas(owed_gas), pc)
        tests = (["gas < 0"] if self.metering and owed_gas else []) + \
            (["st > limit"] if self.checked and owed_steps else [])
        if tests:
            nxt = pc + 1
            self.emit(at, f"if {' or '.join(tests)}:", pc)
            inner = at.deeper(1)
            if self.metering:
                self.emit(inner, self.put_gas(owed_gas), pc)
            self.exit_interpret(inner, sl, self.code.depths[nxt], pc, resume=nxt, steps=owed_steps)

    def refund(self, at: _At, pc: int) -> None:
        """Give back what was paid in advance for a block that is not taken."""
        owed_gas, owed_steps = at.owed
        if self.metering and owed_gas:
            self.emit(at, f"gas += {owed_gas}", pc)
        if owed_steps:
            self.emit(at, f"st -= {owed_steps}", pc)

    # -- control flow --------------------------------------------------------------------------

    def inlinable(self, target: int, at: _At, chained: bool = False) -> bool:
        """Whether block `target` is generated where a jump reaches it (`chained`: the next of
        a chain of prepaid blocks, see `plan`)."""
        ends, instrs = self.ends, self.code.instrs
        small_latch = ends[target] - target <= LATCH and instrs[ends[target] - 1][0] == Op.JUMP \
            and instrs[ends[target] - 1][1] == at.arm
        return (target != at.arm and target not in at.inlined and target not in self.own_arm
                and (small_latch or (self.npreds.get(target) == 1 and (chained or not at.copy)))
                and at.ind < INLINE_INDENT and self.done + len(self.lines) < INLINE_LINES)

    def plan(self, start: int, at: _At) -> tuple[int, ...]:
        """The blocks that block `start` pays for in advance, with one test: those that follow
        it unconditionally (falling through or a JUMP) where each is generated inline right
        after the one before, up to CHAIN instructions in all. A jump back to the arm's block
        continues the chain with a copy of the loop's body (unrolled up to UNROLL times), so a
        tight loop pays once for several turns. In a copy, only small latches are inlined off
        the chain: a loop's exit dispatches (its code is not copied UNROLL times)."""
        ends, instrs = self.ends, self.code.instrs
        chain: list[int] = []
        inlined, copy = at.inlined, at.copy
        size = ends[start] - start
        cur = start
        whole = 0  # the chain's length at the last jump back to the arm's block
        while True:
            op, arg = instrs[ends[cur] - 1][0], instrs[ends[cur] - 1][1]
            if OPS[op].flow not in ("jump", "end"):
                nxt = ends[cur]
                if nxt not in self.blockset:
                    break
            elif op == Op.JUMP:
                nxt = arg
            else:
                break
            if nxt == at.arm:
                whole = len(chain)
            size += ends[nxt] - nxt
            if size > CHAIN:
                break
            if nxt == at.arm:
                if copy + 1 >= UNROLL or at.ind >= INLINE_INDENT or self.done + len(self.lines) >= INLINE_LINES:
                    break
                inlined, copy = (nxt,), copy + 1
            elif self.inlinable(nxt, _At(at.ind, at.arm, inlined, copy=copy), chained=True):
                inlined = (*inlined, nxt)
            else:
                break
            chain.append(nxt)
            cur = nxt
        # a loop unrolled ends its chain with a whole turn (its last block jumps back: `continue`)
        return tuple(chain[:whole] if copy > at.copy else chain)

    def cost(self, blocks: tuple[int, ...]) -> tuple[int, int]:
        """The static gas and the instruction count of these blocks."""
        return (sum(self.code.instrs[s][2] for s in blocks), sum(self.ends[s] - s for s in blocks))

    def goto(self, target: int, at: _At, sl: _Slots, pc: int, *, inline: bool = True, chained: bool = False) -> None:
        """Continue at block `target` (its slots are written to their variables). `chained`:
        the block ends here (falling through or a JUMP), so if the target is the next of the
        blocks paid for in advance it is generated inline, already paid; otherwise anything
        paid in advance is given back."""
        self.flush(at, sl, self.code.depths[target], pc, keep=True)
        if chained and at.chain:
            assert at.chain[0] == target, (at.chain, target)
            rest = at.chain[1:]
            if target == at.arm:  # the loop comes round: the next copy of its body
                inner = _At(at.ind, at.arm, (target,), rest, owed=self.cost(rest), copy=at.copy + 1)
            else:
                inner = _At(at.ind, at.arm, (*at.inlined, target), rest, owed=self.cost(rest), copy=at.copy)
            self.block(target, inner, prepaid=True)
            return
        if target == at.arm:
            self.refund(at, pc)
            self.emit(at, "continue", pc)
        elif inline and self.inlinable(target, at):
            self.block(target, _At(at.ind, at.arm, (*at.inlined, target), copy=at.copy), credit=at.owed)
        else:
            self.refund(at, pc)
            self.pending.append(target)
            self.emit(at, f"b = {target}", pc)
            self.emit(at, "break", pc)

    def block(self, start: int, at: _At, prepaid: bool = False, credit: tuple[int, int] = (0, 0)) -> None:
        """Block `start` (`prepaid`: its gas and steps are already paid, and `at.chain` are
        the blocks paid for after it). A block that is not prepaid pays, with one test, for
        itself and the blocks `plan` chains after it; `credit` is what the code before it paid
        in advance for blocks not taken, given back here (only the difference is tested and
        paid: the gas and steps the credit stands for were tested already)."""
        code = self.code
        instrs = code.instrs
        end = self.ends[start]
        sl = _Slots(code.max_depth)
        if prepaid:
            body = at
        else:
            chain = self.plan(start, at)
            owed = self.cost(chain)
            gas = instrs[start][2] + owed[0] - credit[0]
            steps = end - start + owed[1] - credit[1]
            here = _At(at.ind, at.arm, at.inlined, copy=at.copy)
            tests = ([f"gas < {gas}"] if self.metering and gas > 0 else []) + \
                ([f"st + {steps} > limit"] if self.checked and steps > 0 else [])
            if tests:
                self.emit(here, f"if {' or '.join(tests)}:", start)
                inner = here.deeper(1)
                if self.metering:
                    self.emit(inner, self.put_gas(credit[0]), start)
                self.exit_interpret(inner, sl, code.depths[start], start, resume=start, steps=credit[1])
            if self.metering and gas:
                self.emit(here, f"gas -= {gas}" if gas > 0 else f"gas += {-gas}", start)
            if steps:
                self.emit(here, f"st += {steps}" if steps > 0 else f"st -= {-steps}", start)
            body = _At(at.ind, at.arm, at.inlined, chain, owed=owed, copy=at.copy)
        for pc in range(start, end):
            _instruction(self, pc, body, sl)
        if OPS[instrs[end - 1][0]].flow not in ("jump", "end"):
            self.goto(end, body, sl, end - 1, chained=True)

    # -- the function ----------------------------------------------------------------------------

    def source(self) -> tuple[str, list[int], list[int], list[int]]:
        """(source, line -> pc, line -> steps after, the blocks with an arm)."""
        code = self.code
        max_depth = code.max_depth
        uses = self.uses
        self.emit(0, "def fast(vm, frame, limit):")
        self.emit(1, "fl = frame.locals")
        self.emit(1, "fs = frame.stack")
        if code.ncells or code.nfree:
            self.emit(1, "C = frame.cells")
        if uses & {Op.LOAD_GLOBAL, Op.STORE_GLOBAL}:
            self.emit(1, "G = vm.globals")
        self.emit(1, "frames = vm.frames")
        self.emit(1, "here = len(frames)")
        if uses & {Op.CALL, Op.CALL_METHOD}:
            self.emit(1, "ARENA = vm.arena")
        self.emit(1, "st = vm.steps")
        if self.metering:
            self.emit(1, "gas = vm.gas")
            if self.window:
                self.emit(1, f"if gas > {WINDOW}:")
                self.emit(2, f"gb = gas - {WINDOW}")
                self.emit(2, f"gas = {WINDOW}")
                self.emit(1, "else:")
                self.emit(2, "gb = 0")
        if code.nlocals:
            self.emit(1, f"{self.locals_tuple} = fl")
        if max_depth:
            self.emit(1, "if fs:")
            self.emit(2, f"{_tuple_of([f'S{i}' for i in range(max_depth)])} = (fs + PAD)[:{max_depth}]")
            self.emit(1, "else:")
            self.emit(2, " = ".join(f"S{i}" for i in range(max_depth)) + " = None")
        self.emit(1, "b = frame.pc")
        self.emit(1, "if b:")  # (a state document may say anything: see facts_hold)
        self.emit(2, "if b not in ARMS or not facts_hold(fl, fs, FACTS[b]):")
        self.emit(3, "return 1")
        start_bound, start_ints = sorted(self.entry[0][1]), sorted(self.entry[0][2])
        if start_bound:
            self.emit(1, f"elif {' or '.join(f'L{i} is UNBOUND' for i in start_bound)}:")
            self.emit(2, "return 1")
        if start_ints:
            self.emit(1, f"elif {' or '.join(f'type(L{i}) is not int' for i in start_ints)}:")
            self.emit(2, "return 2")
        self.emit(1, "live = (frame, _getframe(), LINE2PC)")
        self.emit(1, "vm.live = live")
        self.emit(1, "try:")
        self.emit(2, "while True:")
        # Arms: the blocks in own_arm and every block some jump does not inline. Entering at
        # another block start runs that block in the interpreter's careful mode.
        prologue = self.lines
        arms: dict[int, list[tuple[int, str, int, int]]] = {}
        while self.pending:
            s = self.pending.pop()
            if s in arms or s not in self.blockset:
                continue
            self.lines = []
            self.block(s, _At(0, s, (s,)))
            arms[s] = self.lines
            self.done += len(self.lines)
        self.lines = prologue
        entries = sorted(arms)

        def tree(lo: int, hi: int, ind: int) -> None:
            if hi - lo <= 4:
                for i in range(lo, hi):
                    self.emit(ind, f"{'if' if i == lo else 'elif'} b == {entries[i]}:")
                    self.emit(ind + 1, "while True:")
                    self.lines.extend((ind + 2 + k, text, pc, after) for k, text, pc, after in arms[entries[i]])
                self.emit(ind, "else:")
                self.emit(ind + 1, "raise AssertionError(f'no block at {b}')")
                return
            mid = (lo + hi) // 2
            self.emit(ind, f"if b < {entries[mid]}:")
            tree(lo, mid, ind + 1)
            self.emit(ind, "else:")
            tree(mid, hi, ind + 1)

        tree(0, len(entries), 3)
        self.emit(1, "except (GuestError, TrapError, *NATIVE_ERRORS) as e:")
        self.emit(2, "line = e.__traceback__.tb_lineno")
        self.emit(2, "pc = LINE2PC[line]")
        if code.nlocals:
            self.emit(2, f"fl[:] = {self.locals_tuple}")
        if max_depth:
            self.emit(2, f"fs[:] = {_tuple_of([f'S{i}' for i in range(max_depth)])}[:DEPTHS[pc]]")
        else:
            self.emit(2, "fs.clear()")
        self.emit(2, "frame.pc = pc + 1")
        self.emit(2, "vm.steps = st - LINE2AFTER[line]")
        self.emit(2, "raise")
        self.emit(1, "finally:")
        self.emit(2, "vm.live = None")
        text = "\n".join("    " * ind + t for ind, t, _, _ in self.lines) + "\n"
        return text, [-1] + [pc for _, _, pc, _ in self.lines], [0] + [a for _, _, _, a in self.lines], entries


def _generate(code: Code, metering: bool, checked: bool, ints: frozenset[int]) -> tuple[
        Fn, str, list[int], frozenset[int]]:
    f = _Function(code, metering, checked, ints)
    source, line2pc, line2after, entries = f.source()
    facts = {s: (tuple(sorted(e[1])), tuple(sorted(e[2])), tuple(i for i, k in enumerate(e[0]) if k is INT))
             for s in entries for e in [f.entry.get(s, ((), frozenset(), frozenset()))]}
    namespace: dict[str, Any] = {
        **f.names, "PAD": [None] * code.max_depth, "ARMS": frozenset(entries), "LINE2PC": line2pc,
        "LINE2AFTER": line2after, "FACTS": facts, "facts_hold": facts_hold, "DEPTHS": code.depths,
        "_getframe": sys._getframe, "UNBOUND": UNBOUND, "RangeIter": RangeIter, "SeqIter": SeqIter,
        "GuestError": GuestError, "TrapError": TrapError, "NATIVE_ERRORS": NATIVE_ERRORS, "CODE": code,
        "unbound_local": unbound_local, "unbound_cell": unbound_cell, "load_global": load_global,
        "store_global": store_global, "delete_global": delete_global, "make_cell": make_cell,
        "make_function": make_function, "build_list": build_list, "build_tuple": build_tuple,
        "build_dict": build_dict, "build_string": build_string, "format_with": format_with, "exc_match": exc_match,
        "raise_value": raise_value, "reraise_value": reraise_value, "is_": ops.is_,
        "store_index": ops.store_index, "delete_index": ops.delete_index, "slice_of": ops.slice_of,
        "get_iter": ops.get_iter, "run_fast": run_fast, "NEST": NEST, "Function": Function, "Frame": Frame,
        "MAX_FRAMES": MAX_FRAMES, "METHODS": METHODS, "TailCall": TailCall, "tail_call": tail_call,
    }
    variant = "checked" if checked else "fast"
    exec(_compile(source, f"<crush {variant} {code.unit}:{code.qualname}>"), namespace)  # noqa: S102 - generated from verified CASM only
    return namespace["fast"], source, line2pc, frozenset(entries)


@functools.lru_cache(maxsize=512)
def _compile(source: str, filename: str) -> types.CodeType:
    """CPython's compilation of generated source, kept for the next VM running the same
    function (the same program run again): compiling is most of what generating costs."""
    return compile(source, filename, "exec")


def _instruction(f: _Function, pc: int, at: _At, sl: _Slots) -> None:  # one arm per opcode
    """Python lines doing instruction `pc` at `at`, the stack `sl` as it is before it."""
    code = f.code
    op: Any = code.instrs[pc][0]
    arg = code.instrs[pc][1]
    rest = code.instrs[pc][3] + at.owed[0]  # the static gas paid for instructions after this one
    d = code.depths[pc]
    state = f.pre[pc]
    assert state is not None
    kinds, bound = state[0], state[1]
    metering = f.metering

    def line(text: str, extra: int = 0) -> None:
        f.emit(at.deeper(extra) if extra else at, text, pc)

    def name(i: int) -> str:
        """Slot i as a name that can be read several times (a compound virtual slot is
        written to its variable first)."""
        e = sl.v[i]
        if e is not None and not e[0].isidentifier():
            line(f"S{i} = {e[0]}")
            sl.v[i] = None
        return sl.expr(i)

    def virtual(i: int, expr: str, deps: frozenset[int]) -> None:
        sl.v[i] = (expr, deps)

    def real(i: int) -> None:
        sl.v[i] = None

    def helper(target: str | None, call: str, extra: int = 0) -> None:
        """A call that may charge gas dynamically, allocate or raise, the stack in its
        variables (flushed by the caller). It runs with vm.gas set to the interpreter's gas at
        this instruction (what is paid for the instructions after it credited back); if after
        it they cannot be paid, the interpreter takes over at the next instruction (and traps
        where it would)."""
        if metering:
            line(f.put_gas(rest), extra)
        line(f"{target} = {call}" if target else call, extra)
        if metering and not call.startswith("raise "):
            line(f.get_gas(rest), extra)
            if rest:
                line("if gas < 0:", extra)
                line(f.put_gas(rest), extra + 1)
                f.exit_interpret(at.deeper(extra + 1), _Slots(code.max_depth), code.depths[pc + 1], pc,
                                 resume=pc + 1, steps=f.after[pc] + at.owed[1])

    def slow(target: str | None, call: str, extra: int) -> None:
        """The general path in a branch: the slots flushed there only."""
        f.flush(at.deeper(extra), sl, d, pc, keep=True)
        helper(target, call, extra)

    def continue_after(extra: int, results: int) -> None:
        """After the interpreter's handler ran the instruction (the state written back): run a
        frame it pushed here (nested) unless the nesting is deep; continue here if this frame
        is on top at the next instruction, with its `results` top slots read back."""
        line("if len(frames) > here and vm.fast_nest < NEST and not vm.halt:", extra)
        line("vm.fast_nest += 1", extra + 1)
        line("try:", extra + 1)
        line("run_fast(vm, limit, here)", extra + 2)
        line("finally:", extra + 1)
        line("vm.fast_nest -= 1", extra + 2)
        line(f"if vm.halt or frames[-1] is not frame or frame.pc != {pc + 1}:", extra)
        line("return 0", extra + 1)
        line("vm.live = live", extra)
        top = code.depths[pc + 1]
        if results == 1:
            line(f"S{top - 1} = fs[-1]", extra)
        elif results:
            line(f"{_tuple_of([f'S{j}' for j in range(top - results, top)])} = fs[{top - results}:]", extra)
        after = _Slots(code.max_depth)
        f.sync_in(at.deeper(extra), after, pc)

    def leave(extra: int, depth: int) -> None:
        """Hand the frame to the VM after this instruction: its stack (`depth` slots, written
        to their variables too: if the VM raises, the stack is read from them), locals, pc,
        steps and gas."""
        inner = at.deeper(extra)
        f.flush(inner, sl, depth, pc, keep=True)
        f.write_back(inner, sl, depth, pc)
        line(f"frame.pc = {pc + 1}", extra)
        f.sync_out(inner, pc)
        line("vm.live = None", extra)

    def handled(extra: int = 0, results: int = 1) -> None:
        """Write the state back and let the interpreter's handler run the instruction."""
        hname = f"H{pc}"
        f.names[hname] = SLOW[op]
        f.names[f"A{pc}"] = arg
        leave(extra, d)
        line(f"{hname}(vm, frame, A{pc})", extra)
        if op in (Op.RETURN, Op.RAISE_CURRENT):  # (RAISE_CURRENT always raises)
            line("return 0", extra)
            return
        continue_after(extra, results)

    def direct(first: int, call: str, extra: int) -> None:
        """A builtin function or method called directly, as a helper; its value replaces the
        stack from `first` (the stack flushed by the caller). One that continues in prelude code
        (TailCall) goes on as the interpreter's handler does, from the state written back."""
        if metering:
            line(f.put_gas(rest), extra)
        line(f"R{pc} = {call}", extra)
        line(f"if type(R{pc}) is TailCall:", extra)
        inner = at.deeper(extra + 1)
        f.write_back(inner, sl, d, pc)
        line(f"frame.pc = {pc + 1}", extra + 1)
        owed_steps = at.owed[1]
        line(f"vm.steps = st - {owed_steps}" if owed_steps else "vm.steps = st", extra + 1)
        line("vm.live = None", extra + 1)
        line(f"tail_call(vm, frame, R{pc}, {first})", extra + 1)  # (with the gas the call left)
        continue_after(extra + 1, 1)
        line("else:", extra)
        if metering:
            line(f.get_gas(rest), extra + 1)
            if rest:
                line("if gas < 0:", extra + 1)
                line(f.put_gas(rest), extra + 2)
                line(f"S{first} = R{pc}", extra + 2)
                f.exit_interpret(at.deeper(extra + 2), _Slots(code.max_depth), code.depths[pc + 1], pc,
                                 resume=pc + 1, steps=f.after[pc] + at.owed[1])
        line(f"S{first} = R{pc}", extra + 1)

    def small(i: int) -> str | None:
        """A test that slot i adds nothing to the arena where it is stored (not a str, not a big
        int), as the interpreter's inline paths test it; None if it is known to hold."""
        v = sl.expr(i)
        if v[0] == "K" and v in f.names:  # a constant: decided now
            c = f.names[v]
            return None if type(c) is not str and (type(c) is not int or -IMMEDIATE <= c <= IMMEDIATE) else "False"
        if kinds[i] is INT:
            return f"-{IMM} <= {v} <= {IMM}"
        return f"type({v}) is not str and (type({v}) is not int or -{IMM} <= {v} <= {IMM})"

    def int_types(*slots: int) -> list[str]:
        return list(dict.fromkeys(f"type({sl.expr(i)}) is int" for i in slots if kinds[i] is not INT))

    if op == Op.CALL and type(f.names.get(sl.expr(d - arg - 1))) is Builtin:
        # a builtin function (LOAD_BUILTIN's constant), called as VM.call calls it: directly
        fpos = d - arg - 1
        impl = f.const(f.names[sl.expr(fpos)].impl)
        f.flush(at, sl, d, pc)
        direct(fpos, f"{impl}(vm, {_tuple_of([f'S{j}' for j in range(fpos + 1, d)])}, {{}})", 0)
        real(fpos)
    elif op == Op.CALL:
        fpos = d - arg - 1
        callee = name(fpos)
        args = [sl.expr(j) for j in range(fpos + 1, d)]
        f.names[f"H{pc}"] = SLOW[op]
        f.names[f"A{pc}"] = arg
        line(f"if type({callee}) is Function and (c := {callee}.code).nparams == {arg} and not c.ncells "
             f"and not {callee}.cells and len(frames) < MAX_FRAMES "
             "and (size := ARENA.allocated + c.frame_bytes) <= ARENA.budget and c.native is None:")
        # (a native function: VM.call runs it in Wasm)
        line("ARENA.allocated = size", 1)
        leave(1, fpos)
        line(f"frames.append(nf := Frame(c, [{''.join(a + ', ' for a in args)}*c.unbound_tail], []))", 1)
        # the callee's generated code entered here, not through run_fast: the variant this one is
        # (the unchecked one stays valid: gas falls at least as fast as the steps rise). What it
        # leaves (a block for the interpreter, frames, a fault) is run_fast's, just below.
        line("if (cf := c.fast) is not None and vm.fast_nest < NEST:", 1)
        line("vm.fast_nest += 1", 2)
        line("try:", 2)
        line(f"cf.{'checked()' if f.checked else 'fn'}(vm, nf, limit)", 3)
        line("except (GuestError, TrapError, *NATIVE_ERRORS) as e:", 2)
        line("vm.fault(e)", 3)
        line("finally:", 2)
        line("vm.fast_nest -= 1", 3)
        line("else:")
        leave(1, d)
        line(f"H{pc}(vm, frame, A{pc})", 1)
        continue_after(0, 1)
        real(fpos)
    elif op == Op.RETURN:
        line("if len(frames) > 1:")
        line("frames.pop()", 1)
        line(f"frames[-1].stack.append({sl.expr(d - 1)})", 1)
        f.sync_out(at.deeper(1), pc)
        line("return 0", 1)
        handled()
    elif op == Op.CALL_METHOD and arg[0] == "append" and arg[1] == 1 and len(arg) == 2:
        # as the interpreter's inline path: a list, a value adding nothing to the arena beyond its slot
        x, v = name(d - 2), name(d - 1)
        tests = [f"type({x}) is list", f"ARENA.allocated + {arena_mod.SLOT} <= ARENA.budget",
                 *[f"({t})" for t in filter(None, [small(d - 1)])]]
        line(f"if {' and '.join(tests)}:")
        line(f"ARENA.allocated += {arena_mod.SLOT}", 1)
        line(f"{x}.append({v})", 1)
        line(f"S{d - 2} = None", 1)
        line(f"elif type({x}) is list:")  # (a value the arena counts: the method, directly)
        f.flush(at.deeper(1), sl, d, pc, keep=True)
        direct(d - 2, f"{f.const(METHODS[list]['append'])}(vm, S{d - 2}, (S{d - 1}, ), {{}})", 1)
        line("else:")
        handled(1)
        real(d - 2)
    elif op == Op.CALL_METHOD and len(arg) == 2:
        # a method of a builtin type (no keywords), called as crush/vm.py _call_method calls it: the
        # method directly (see direct)
        first = d - arg[1] - 1
        f.flush(at, sl, d, pc)
        obj, method = f"S{first}", f.const(arg[0])
        line(f"if (mt := METHODS.get(type({obj}))) is not None and (impl := mt.get({method})) is not None:")
        direct(first, f"impl(vm, {obj}, {_tuple_of([f'S{j}' for j in range(first + 1, d)])}, {{}})", 1)
        line("else:")
        handled(1)
        real(first)
    elif op in _HANDLED:
        handled()
        if op != Op.RAISE_CURRENT:
            real(code.depths[pc + 1] - 1)
    elif op in (Op.NOP, Op.POP):
        pass
    elif op == Op.DUP:
        if sl.v[d - 1] is not None:
            sl.v[d] = sl.v[d - 1]
        else:
            line(f"S{d} = S{d - 1}")
            real(d)
    elif op == Op.SWAP:
        if sl.v[d - 1] is not None and sl.v[d - 2] is not None:
            sl.v[d - 1], sl.v[d - 2] = sl.v[d - 2], sl.v[d - 1]
        else:
            line(f"S{d - 1}, S{d - 2} = {sl.expr(d - 2)}, {sl.expr(d - 1)}")
            real(d - 1)
            real(d - 2)
    elif op in (Op.LOAD_CONST, Op.LOAD_BUILTIN):
        virtual(d, f.const(arg), frozenset())
    elif op == Op.LOAD_LOCAL:
        if arg not in bound:
            line(f"if L{arg} is UNBOUND:")
            f.flush(at.deeper(1), sl, d, pc, keep=True)
            helper(None, f"raise unbound_local(CODE, {arg})", 1)
        virtual(d, f"L{arg}", frozenset({arg}))
    elif op in (Op.STORE_LOCAL, Op.DELETE_LOCAL):
        top = d - 1 if op == Op.STORE_LOCAL else d
        for i in range(top):  # slots that read the local's old value keep it
            e = sl.v[i]
            if e is not None and arg in e[1]:
                line(f"S{i} = {e[0]}")
                real(i)
        value = sl.expr(d - 1) if op == Op.STORE_LOCAL else "UNBOUND"
        if value != f"L{arg}":
            line(f"L{arg} = {value}")
    elif op == Op.LOAD_DEREF:
        line(f"S{d} = C[{arg}].value")
        line(f"if S{d} is UNBOUND:")
        f.flush(at.deeper(1), sl, d, pc, keep=True)
        helper(None, f"raise unbound_cell(CODE, {arg})", 1)
        real(d)
    elif op == Op.STORE_DEREF:
        line(f"C[{arg}].value = {sl.expr(d - 1)}")
    elif op == Op.DELETE_DEREF:
        line(f"C[{arg}].value = UNBOUND")
    elif op == Op.MAKE_CELL:
        f.flush(at, sl, d, pc)
        helper(None, f"make_cell(vm, C, {arg})")
    elif op == Op.LOAD_CELL:
        line(f"S{d} = C[{arg}]")
        real(d)
    elif op == Op.LOAD_GLOBAL:
        k = f.const(arg)
        line(f"S{d} = G.get({k}, UNBOUND)")
        line(f"if S{d} is UNBOUND:")
        f.flush(at.deeper(1), sl, d, pc, keep=True)
        helper(f"S{d}", f"load_global(vm, {k})", 1)
        real(d)
    elif op == Op.STORE_GLOBAL:
        # as the interpreter's inline path: an existing global, a value that adds nothing to the arena
        k = f.const(arg)
        v = name(d - 1)
        tests = [f"{k} in G", *filter(None, [small(d - 1)])]
        line(f"if {' and '.join(tests)}:")
        line(f"G[{k}] = {v}", 1)
        line("else:")
        slow(None, f"store_global(vm, {k}, S{d - 1})", 1)
    elif op == Op.DELETE_GLOBAL:
        f.flush(at, sl, d, pc)
        helper(None, f"delete_global(vm, {f.const(arg)})")
    elif op == Op.JUMP:
        f.goto(arg, at, sl, pc, chained=True)
    elif op in (Op.JUMP_IF_FALSE, Op.JUMP_IF_TRUE, Op.JUMP_IF_FALSE_OR_POP, Op.JUMP_IF_TRUE_OR_POP):
        v = sl.expr(d - 1)
        test = f"not {v}" if op in (Op.JUMP_IF_FALSE, Op.JUMP_IF_FALSE_OR_POP) else v
        line(f"if {test}:")
        f.goto(arg, at.deeper(1), sl, pc)
    elif op == Op.FOR_ITER:
        it = name(d - 1)
        line(f"if type({it}) is RangeIter and {it}.left > 0 and -{IMM} <= (S{d} := {it}.cur) <= {IMM}:")
        line(f"{it}.cur = S{d} + {it}.step", 1)
        line(f"{it}.left -= 1", 1)
        line(f"elif type({it}) is SeqIter and (i := {it}.i) < len({it}.seq):")
        line(f"S{d} = {it}.seq[i]", 1)
        line(f"{it}.i = i + 1", 1)
        line(f"elif type({it}) is RangeIter and {it}.left <= 0:")
        f.goto(arg, at.deeper(1), sl, pc, inline=False)
        line("else:")
        handled(1)
        real(d)
    elif op in (Op.NOT, Op.TRUTH):
        e = sl.v[d - 1]
        expr = f"(not {sl.expr(d - 1)})" if op == Op.NOT else f"bool({sl.expr(d - 1)})"
        if e is not None:
            virtual(d - 1, expr, e[1])
        else:
            line(f"S{d - 1} = {expr}")
    elif op in UNARY_FUNCTIONS:
        f.flush(at, sl, d, pc)
        helper(f"S{d - 1}", f"{f.const(UNARY_FUNCTIONS[op])}(vm, S{d - 1})")
    elif op in _INT_OPS:
        a, b = name(d - 2), name(d - 1)
        tests = int_types(d - 2, d - 1)
        if op in (Op.FLOORDIV, Op.MOD):
            tests.append(b)
        tests.append(f"-{IMM} <= (R{pc} := {a} {_INT_OPS[op]} {b}) <= {IMM}")
        line(f"if {' and '.join(tests)}:")
        line("pass", 1)
        line("else:")
        if op == Op.IADD:
            handled(1)
        else:
            slow(f"S{d - 2}", f"{f.const(BINARY_FUNCTIONS[op])}(vm, S{d - 2}, S{d - 1})", 1)
        line(f"R{pc} = S{d - 2}", 1)
        virtual(d - 2, f"R{pc}", frozenset())  # (R<pc> is assigned only here: the slot cannot outlive it)
    elif op in _COMPARE:
        ea, eb = sl.v[d - 2], sl.v[d - 1]
        if kinds[d - 2] is INT and kinds[d - 1] is INT:
            expr = f"({sl.expr(d - 2)} {_COMPARE[op]} {sl.expr(d - 1)})"
            if ea is not None and eb is not None:
                virtual(d - 2, expr, ea[1] | eb[1])
            else:
                line(f"S{d - 2} = {expr}")
                real(d - 2)
        else:
            a, b = name(d - 2), name(d - 1)
            line(f"if {' and '.join(int_types(d - 2, d - 1))}:")
            line(f"S{d - 2} = {a} {_COMPARE[op]} {b}", 1)
            line("else:")
            slow(f"S{d - 2}", f"{f.const(BINARY_FUNCTIONS[op])}(vm, S{d - 2}, S{d - 1})", 1)
            real(d - 2)
    elif op in (Op.IS, Op.IS_NOT):
        line(f"S{d - 2} = {'not ' if op == Op.IS_NOT else ''}is_({sl.expr(d - 2)}, {sl.expr(d - 1)})")
        real(d - 2)
    elif op == Op.INDEX:
        x, k = name(d - 2), name(d - 1)
        tests = [f"type({x}) is list", *int_types(d - 1), f"0 <= {k} < len({x})"]  # (a negative index: the helper)
        line(f"if {' and '.join(tests)}:")
        line(f"S{d - 2} = {x}[{k}]", 1)
        line("else:")
        slow(f"S{d - 2}", f"{f.const(BINARY_FUNCTIONS[op])}(vm, S{d - 2}, S{d - 1})", 1)
        real(d - 2)
    elif op == Op.STORE_INDEX:
        # as the interpreter's inline path: a list, an index in range, a value adding nothing to the arena
        v, x, k = name(d - 3), name(d - 2), name(d - 1)
        tests = [f"type({x}) is list", *int_types(d - 1), f"0 <= {k} < len({x})",
                 *[f"({t})" for t in filter(None, [small(d - 3)])]]
        line(f"if {' and '.join(tests)}:")
        line(f"{x}[{k}] = {v}", 1)
        line("else:")
        slow(None, f"store_index(vm, S{d - 2}, S{d - 1}, S{d - 3})", 1)
    elif op in BINARY_FUNCTIONS:  # TRUEDIV, POW, LSHIFT, RSHIFT, IMUL
        f.flush(at, sl, d, pc)
        helper(f"S{d - 2}", f"{f.const(BINARY_FUNCTIONS[op])}(vm, S{d - 2}, S{d - 1})")
    elif op in _BUILDERS:
        fn, per = _BUILDERS[op]
        k = per * arg
        f.flush(at, sl, d, pc)
        helper(f"S{d - k}", f"{fn}(vm, [{', '.join(f'S{i}' for i in range(d - k, d))}])")
        real(d - k)
    elif op == Op.FORMAT:
        f.flush(at, sl, d, pc)
        helper(f"S{d - 1}", f"format_with(vm, {arg[0]}, S{d - 1}, {f.const(arg[1])})")
    elif op == Op.FORMAT_SPEC:
        f.flush(at, sl, d, pc)
        helper(f"S{d - 2}", f"format_with(vm, {arg}, S{d - 2}, S{d - 1})")
    elif op == Op.DELETE_INDEX:
        f.flush(at, sl, d, pc)
        helper(None, f"delete_index(vm, S{d - 2}, S{d - 1})")
    elif op == Op.SLICE:
        f.flush(at, sl, d, pc)
        helper(f"S{d - 4}", f"slice_of(vm, S{d - 4}, S{d - 3}, S{d - 2}, S{d - 1})")
    elif op == Op.UNPACK:
        x = name(d - 1)
        line(f"if (type({x}) is tuple or type({x}) is list) and len({x}) == {arg}:")
        targets = ", ".join(f"S{d - 1 + j}" for j in range(arg - 1, -1, -1))
        line(f"{targets}{',' if arg == 1 else ''} = {x}" if arg else "pass", 1)
        line("else:")
        handled(1, arg)
        for j in range(arg):
            real(d - 1 + j)
    elif op == Op.MAKE_FUNCTION:
        k = arg.ndefaults + arg.nfree
        f.flush(at, sl, d, pc)
        helper(f"S{d - k}", f"make_function(vm, {f.const(arg)}, [{', '.join(f'S{i}' for i in range(d - k, d))}])")
        real(d - k)
    elif op == Op.RAISE:
        f.flush(at, sl, d, pc)
        helper(None, f"raise_value(S{d - 1})")
    elif op == Op.RERAISE:
        f.flush(at, sl, d, pc)
        helper(None, f"reraise_value(S{d - 1})")
    elif op == Op.EXC_MATCH:
        f.flush(at, sl, d, pc)
        helper(f"S{d - 1}", f"exc_match(vm, S{d - 2}, S{d - 1})")
    else:  # pragma: no cover - every opcode has an arm above
        raise AssertionError(f"fast mode has no code for {OPS[op].name}")
