"""The CRUSH VM: a stack machine with frames (the shape of clox), gas-metered, arena-bounded,
reaching the outside world only through its host's capabilities.

Loading: `load(program)` verifies a CASM program (crush/verify.py) and turns each function into
a `Code`: its instructions as `(opcode, resolved operand, block cost, rest)` tuples (constants,
names, builtins and target functions resolved once; see `_blocks` for the gas fields), its
handler, line and handling tables, and the stack depths the verifier proved. A program the
verifier refuses is never run: `VM.run` returns a VERIFY_FAILED trap having executed zero
instructions.

State (all of it plain data, so crush/state.py can serialise it between any two instructions):
`frames` (each: code, pc, operand stack, locals, cells, and how its return value is delivered),
`globals`, gas left and its limit, instructions executed (`steps`), the arena's count, the
random generator's state, and a pending capability call (sleep/yield suspend the run).

The interpreter loop keeps the hot state in Python locals, dispatches on the opcode with an
if-chain grouped by opcode range whose first arms are inline fast paths (locals, constants,
small-int arithmetic and comparisons, jumps, list/range iteration, calls), and sends everything
else to `SLOW[op]`, the complete semantics of each opcode. Gas: each basic block pays its
instructions' static costs when it is entered (one test per instruction), with every observable
figure exactly what paying per instruction gives (`interpret` explains how); an instruction that
cannot pay traps OUT_OF_GAS at its own index, before doing anything, and the run ends with all
gas used. Dynamic costs are paid through `charge` before the work they pay for.

Invariants the loop relies on (the verifier proved them): operands are in range, the stack
never underflows, a frame's stack depth at each instruction is `Code.depths[pc]`; a frame below
the top, or the top frame with a pending capability, is waiting for one value, so its depth is
`depths[pc] - 1`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from crush import arena as arena_mod
from crush import builtins as bi
from crush import gas as gas_mod
from crush import ops, text
from crush.arena import Arena
from crush.casm import OPS, Handler, Names, Op, Operand, Program
from crush.errors import GuestError, Trap, TrapCode, TrapError
from crush.link import split_name
from crush.ops import EXHAUSTED, IMMEDIATE
from crush.prelude import PRELUDE
from crush.values import (
    EXC_TYPES,
    UNBOUND,
    Builtin,
    Cell,
    DictIter,
    EnumIter,
    ExcType,
    ExcValue,
    FilterIter,
    Function,
    MapIter,
    RangeIter,
    RevIter,
    SeqIter,
    TailCall,
    ZipIter,
    exc,
    from_native,
    is_guest_iter,
    type_name,
)
from crush.verify import Facts, VerifyError, verify

# the interpreter and fast mode keep the gas in a local window of at most this much (a one-digit
# Python int, cheap to test and subtract; a budget like 10**12 would make each subtraction a
# multi-digit one), the rest apart: a block the window alone cannot pay runs in careful mode
# (exact), and the loop takes a new window
WINDOW = (1 << 30) - 1
MAX_FRAMES = 1000          # deeper guest recursion raises RecursionError (CPython's default limit)


class _Pushed:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<value arrives later>"


PUSHED: Any = _Pushed()    # what call() returns when the value arrives later (a frame was pushed, a suspension)
NATIVE_DECLINED: Any = object()  # what a native entry (crush/wasm.py) returns when the VM must run the call
RET_PUSH = 0               # a returning frame pushes its value on its caller's stack
RET_FOR_ITER = 1           # ... and a StopIteration leaving it ends the caller's FOR_ITER loop
NATIVE_ERRORS = (ArithmeticError, LookupError, ValueError, TypeError, RecursionError, RuntimeError)


class Host(Protocol):
    """What the VM asks of its host (the Scoped HAL, crush/caps.py): whether a capability is
    granted, the time, and the capabilities that reach outside (fs.*, log, clock,
    control.status). sleep, yield and random are the VM's own (their state is the VM's)."""

    def granted(self, cap: str) -> bool: ...

    def now(self) -> float: ...

    def call(self, cap: str, args: tuple[Any, ...], vm: VM) -> Any: ...


class Status(enum.StrEnum):
    DONE = "done"            # the module body returned
    ERROR = "error"          # an exception nobody caught
    TRAP = "trap"            # out of gas, arena exceeded, capability denied, refused program
    SUSPENDED = "suspended"  # sleep() or yield(): resume to continue (see pending/wake)
    PAUSED = "paused"        # the step limit given to run() was reached


@dataclass(frozen=True)
class Outcome:
    status: Status
    steps: int
    gas_used: int
    value: Any = None
    error: ExcValue | None = None
    trap: Trap | None = None
    wake: float | None = None


@dataclass(frozen=True)
class Pending:
    """A capability call the run is suspended in: its result (None) is pushed on resume."""
    cap: str
    wake: float | None = None


# ----------------------------------------------------------------------------------------------
# Loading


class Code:
    """A verified CASM function, ready to run."""
    __slots__ = ("blocks", "cellnames", "costs", "depths", "fast", "file", "frame_bytes", "handlers", "handling",
                 "index", "instrs", "lines", "max_depth", "name", "native", "ncells", "ndefaults", "nfree", "nlocals",
                 "nparams", "param_index", "qualname", "remain", "starts", "unbound_tail", "unit", "varnames")

    def __init__(self, unit: str, index: int, file: str, fn: Any, facts: Facts) -> None:
        self.unit = unit
        self.index = index
        self.file = file
        self.name: str = fn.name
        self.qualname: str = fn.qualname
        self.nparams: int = fn.nparams
        self.ndefaults: int = fn.ndefaults
        self.varnames: tuple[str, ...] = fn.varnames
        self.nlocals: int = fn.nlocals
        self.ncells: int = fn.ncells
        self.nfree: int = fn.nfree
        self.cellnames: tuple[str, ...] = fn.cellnames
        self.param_index = {name: i for i, name in enumerate(fn.params)}
        self.handlers: tuple[Handler, ...] = fn.handlers
        self.handling: tuple[tuple[int, int, int], ...] = fn.handling
        self.lines: tuple[tuple[int, int], ...] = fn.lines
        self.depths = facts.depths
        self.max_depth = facts.max_depth
        slots = self.nlocals + self.ncells + self.nfree + facts.max_depth
        self.frame_bytes = arena_mod.FRAME + arena_mod.SLOT * slots
        self.instrs: list[tuple[int, Any, int, int]] = []  # (op, operand, block cost at a block's start, rest)
        self.costs: list[int] = []          # each instruction's static gas
        self.starts: frozenset[int] = frozenset()
        self.remain: list[int] = []         # prepaid gas from pc to its block's end (0 at a block's start)
        # at each block's start (else None): (its cost, its length, its (pc + 1, op, operand, rest)s)
        self.blocks: list[Any] = []
        self.fast: Any = None  # crush/fast.py's compiled form, made on first use
        self.native: Any = None  # crush/wasm.py's entry (VM(native=True)): the call, run in WebAssembly
        self.unbound_tail = [UNBOUND] * (self.nlocals - self.nparams)

    def line_at(self, pc: int) -> int:
        line = 0
        for start, ln in self.lines:
            if start > pc:
                break
            line = ln
        return line


class Unit:
    """A loaded program: its Codes, its constants, its hash."""
    __slots__ = ("caps", "codes", "file", "hash", "metering", "name", "program")

    def __init__(self, name: str, program: Program, codes: list[Code], metering: bool) -> None:
        self.name = name
        self.metering = metering
        self.program = program
        self.codes = codes
        self.file = program.file
        self.hash = program.hash
        self.caps = program.caps


def _resolve(unit: Unit, program: Program, names: Mapping[str, Any], metering: bool) -> None:
    consts = program.consts
    for code, fn in zip(unit.codes, program.funcs, strict=True):
        for ins in fn.code:
            spec = OPS[ins.op]
            a = ins.args
            arg: Any
            if ins.op == Op.LOAD_BUILTIN:
                arg = names[str(consts[a[0]])]
            elif ins.op == Op.MAKE_FUNCTION:
                arg = unit.codes[a[0]]
            elif ins.op == Op.CAP:
                arg = (program.caps[a[0]], a[1])
            elif ins.op == Op.FORMAT:
                arg = (a[0], consts[a[1]])
            else:
                parts = [_operand(kind, v, consts) for kind, v in zip(spec.operands, a, strict=True)]
                arg = parts[0] if len(parts) == 1 else tuple(parts) if parts else None
            code.instrs.append((ins.op, arg, 0, 0))
            code.costs.append(spec.gas if metering else 0)
        _blocks(code, fn)


def _blocks(code: Code, fn: Any) -> None:
    """Cut the function into basic blocks and set what block metering needs: each block's first
    instruction carries the block's whole static cost, every instruction the cost of the rest
    of its block after it (`rest`) and, if it is not a block's first, the cost from it to its
    block's end (`remain`)."""
    starts = {0, *(h.target for h in fn.handlers)}
    for pc, (op, arg, _, _) in enumerate(code.instrs):
        spec = OPS[op]
        if spec.flow in ("jump", "branch"):
            starts.add(arg)
        if spec.flow or spec.calls:
            starts.add(pc + 1)
    n = len(code.instrs)
    code.starts = frozenset(s for s in starts if s < n)
    remain = [0] * (n + 1)
    for pc in range(n - 1, -1, -1):
        remain[pc] = code.costs[pc] + (0 if pc + 1 in code.starts or pc + 1 == n else remain[pc + 1])
    for pc, (op, arg, _, _) in enumerate(code.instrs):
        first = pc in code.starts
        code.instrs[pc] = (op, arg, remain[pc] if first else 0, remain[pc] - code.costs[pc])
    code.remain = [0 if pc in code.starts else remain[pc] for pc in range(n)]
    code.blocks = [None] * n
    bounds = sorted(code.starts)
    for s, e in zip(bounds, [*bounds[1:], n], strict=True):
        code.blocks[s] = (remain[s], e - s, tuple((pc + 1, code.instrs[pc][0], code.instrs[pc][1], code.instrs[pc][3])
                                                  for pc in range(s, e)))


def _operand(kind: Operand, v: int, consts: tuple[Any, ...]) -> Any:
    if kind in (Operand.CONST, Operand.NAME):
        return consts[v]
    if kind == Operand.NAMES:
        c = consts[v]
        assert isinstance(c, Names)
        return c.names
    return v


def load(program: Program, name: str, names: Mapping[str, Any], metering: bool = True) -> Unit:
    """Verify and load a program (raises VerifyError)."""
    facts = verify(program, names)
    codes = [Code(name, i, program.file, fn, facts[i]) for i, fn in enumerate(program.funcs)]
    unit = Unit(name, program, codes, metering)
    _resolve(unit, program, names, metering)
    return unit


def _builtin_names() -> dict[str, Any]:
    names: dict[str, Any] = dict(bi.BUILTINS)
    names.update({t.key: t for t in EXC_TYPES.values()})
    return names


class _Prelude:
    """The prelude, loaded once per metering mode: its functions as builtins `crush.<name>`."""

    def __init__(self, metering: bool) -> None:
        names = _builtin_names()
        prelude_names = {f"crush.{fn.name}" for fn in PRELUDE.funcs[1:]}
        self.unit = load(PRELUDE, "prelude", {**names, **dict.fromkeys(prelude_names)}, metering=False)
        self.functions = {code.name: Function(code, (), ()) for code in self.unit.codes[1:]}
        names.update({f"crush.{n}": f for n, f in self.functions.items()})
        # resolve again now that the prelude's own names exist
        for code in self.unit.codes:
            code.instrs.clear()
            code.costs.clear()
        _resolve(self.unit, PRELUDE, names, metering)
        self.names = names


_PRELUDES: dict[bool, _Prelude] = {}


def prelude(metering: bool = True) -> _Prelude:
    if metering not in _PRELUDES:
        _PRELUDES[metering] = _Prelude(metering)
    return _PRELUDES[metering]


# ----------------------------------------------------------------------------------------------
# Frames


class Frame:
    __slots__ = ("cells", "code", "locals", "pc", "ret", "stack")

    def __init__(self, code: Code, locals_: list[Any], cells: list[Any], ret: int = RET_PUSH) -> None:
        self.code = code
        self.pc = 0
        self.stack: list[Any] = []
        self.locals = locals_
        self.cells = cells
        self.ret = ret


# ----------------------------------------------------------------------------------------------
# The VM


class VM:
    """One run of one program. `run()` executes until the program ends, traps, raises an
    uncaught exception, suspends (sleep/yield) or reaches its step limit; it can be called
    again after a suspension or a pause (`resume_pending` first completes a suspension)."""

    def __init__(self, program: Program, host: Host | None = None, *, gas: int = 10_000_000,
                 arena: int = 16 << 20, out: Callable[[str], None] | None = None, seed: int = 0,
                 fast: bool = False, metering: bool = True, native: bool = False, unit: Unit | None = None) -> None:
        self.program = program
        self.host = host
        self.gas_limit = gas
        self.gas = gas
        self.steps = 0
        self.arena = Arena(arena)
        self.fast = fast
        self.metering = metering
        self.out: Callable[[str], None] = out if out is not None else (lambda s: None)
        self.rng = seed & 0xFFFFFFFFFFFFFFFF
        self.pending: Pending | None = None
        self.native: Any = None  # crush/wasm.py's Native (VM(native=True)), if the program has native functions
        self.globals: dict[str, Any] = {}
        self.frames: list[Frame] = []
        self.status: Status | None = None
        self.value: Any = None
        self.error: ExcValue | None = None
        self.trap: Trap | None = None
        self.halt = False
        # fast mode's running function: (its frame, its Python frame, its line -> pc table); its
        # locals and stack live in that Python frame's variables (crush/fast.py)
        self.live: tuple[Frame, Any, list[int]] | None = None
        self.fast_nest = 0     # how deeply fast mode runs calls nested in their callers' generated code
        pre = prelude(metering)
        self.prelude_unit = pre.unit
        self.prelude: Mapping[str, Function] = pre.functions
        self.refusal: Trap | None = None
        if unit is not None:  # a unit load() made of this program for this metering, reused (verified once)
            if unit.program is not program or unit.name != "user" or unit.metering != metering:
                raise ValueError("VM(unit=) takes load(program, 'user', prelude(metering).names, metering)")
            self.unit = unit
        else:
            try:
                self.unit = load(program, "user", pre.names, metering)
            except VerifyError as e:
                self.refusal = Trap(TrapCode.VERIFY_FAILED, str(e), program.file, 0, "", e.pc)
                self.unit = Unit("user", program, [], metering)
                return
        for cap in program.caps:
            if host is None or not host.granted(cap):
                self.refusal = Trap(TrapCode.CAPABILITY_DENIED, f"the program declares {cap!r}, which is not granted",
                                    program.file)
                return
        main = self.unit.codes[0]
        self.frames.append(Frame(main, [UNBOUND] * main.nlocals, [Cell() for _ in range(main.ncells)]))
        if native:  # the integer/loop/function subset compiled to WebAssembly (crush/wasm.py)
            from crush.wasm import attach  # noqa: PLC0415 - only this mode needs wasmtime
            self.native = attach(self)

    # -- the Meter interface (crush/text.py) --------------------------------------------------

    def charge(self, amount: int) -> None:
        """Pay `amount` gas or trap OUT_OF_GAS (consuming all that is left)."""
        if amount <= 0 or not self.metering:
            return
        if amount > self.gas:
            self.gas = 0
            raise TrapError(TrapCode.OUT_OF_GAS, f"an operation needed {amount} gas")
        self.gas -= amount

    def alloc(self, nbytes: int, *keep: Any) -> None:
        """Reserve `nbytes` of arena, recounting the live heap when the budget is reached
        (`keep`: values the current operation holds that are no longer on any stack)."""
        a = self.arena
        if a.allocated + nbytes <= a.budget:
            a.allocated += nbytes
            return
        live, visited = arena_mod.measure(self._roots(keep))
        a.recounts += 1
        self.charge(gas_mod.TRACE * visited)
        a.allocated = live
        if live + nbytes > a.budget:
            raise TrapError(TrapCode.ARENA_EXCEEDED,
                            f"{nbytes} more bytes with {live} live exceed the arena of {a.budget} bytes")
        a.allocated += nbytes

    def _roots(self, keep: tuple[Any, ...]) -> list[Any]:
        """What the arena recount traces: globals, every frame's stack, locals and cells (the
        frame fast mode is running: its live stack and locals), and `keep`. During an
        instruction its operands are still on the stack (every handler takes them off only
        after its work), so both modes present the same roots."""
        roots: list[Any] = [self.globals, *keep]
        live = self.live
        for f in self.frames:
            if live is not None and f is live[0]:
                stack, locals_ = _live_values(live)
                roots.append(stack)
                roots.append(locals_)
            else:
                roots.append(f.stack)
                roots.append(f.locals)
            roots.append(f.cells)
        return roots

    def frames_size(self) -> int:
        return sum(f.code.frame_bytes for f in self.frames)

    def write(self, s: str) -> None:
        self.out(s)

    # -- running -------------------------------------------------------------------------------

    def run(self, max_steps: int | None = None) -> Outcome:
        """Run until the program ends, suspends or traps, or `max_steps` more instructions ran."""
        if self.refusal is not None:
            self.status = Status.TRAP
            self.trap = self.refusal
            return self.outcome()
        if self.status in (Status.DONE, Status.ERROR, Status.TRAP):
            return self.outcome()
        if self.pending is not None:
            raise RuntimeError("the run is suspended in a capability call: resume_pending() first")
        self.status = None
        self.halt = False
        limit = self.steps + max_steps if max_steps is not None else 1 << 62
        if self.fast:
            from crush.fast import run_fast  # noqa: PLC0415 - fast mode is optional and heavier to import
            run_fast(self, limit)
        elif self.metering:
            self.interpret(limit)
        else:
            _unmetered_interpreter()(self, limit)
        return self.outcome()

    def resume_pending(self, result: Any = None) -> None:
        """Complete the capability call the run is suspended in (its result is pushed)."""
        if self.pending is None:
            raise RuntimeError("no capability call is pending")
        self.pending = None
        self.status = None
        self.frames[-1].stack.append(result)

    def outcome(self) -> Outcome:
        status = self.status or Status.PAUSED
        return Outcome(status, self.steps, self.gas_limit - self.gas, self.value, self.error, self.trap,
                       self.pending.wake if self.pending else None)

    def interpret(self, limit: int) -> None:
        """The interpreter loop: run until `self.steps` reaches `limit` or the run stops.

        The loop runs a basic block (crush/vm.py `_blocks`) at a time: its instructions are a
        tuple iterated in an inner loop, and gas and steps are charged for the whole block at
        its start, with one test each. A block that cannot be paid in full, or in which the
        step limit falls, runs in `careful` mode (each instruction paying its own cost, so a
        trap or a pause happens at exactly the instruction where it would one at a time); a slow
        handler runs with the block's unexecuted rest credited back (so dynamic charges see
        exactly the per-instruction gas), and so is the gas at a pause, a trap or an exception:
        every observable gas figure is the one per-instruction charging would give.

        Each inline arm below is a fast path: it either completes its instruction exactly as
        SLOW[op] would (same result, gas, arena count and stack), then `continue`s, or leaves
        everything untouched and falls through to SLOW[op]. Opcode numbers are literals (a
        test checks them against casm.Op); the arms are grouped by opcode range so that an
        instruction is found with few comparisons."""
        frames = self.frames
        globals_ = self.globals
        arena = self.arena
        slow = SLOW
        while frames and not self.stopped():
            frame = frames[-1]
            if frame.pc not in frame.code.starts:  # entered mid-block (a resumed state, a retried UNPACK)
                if self.steps >= limit:
                    self.status = Status.PAUSED
                    return
                self.careful(limit)
                continue
            blocks = frame.code.blocks
            locs = frame.locals
            stack = frame.stack
            push = stack.append
            pop = stack.pop
            pc = frame.pc
            # the gas in a window of at most WINDOW (a one-digit Python int, cheap to subtract),
            # the rest in gb: a block the window cannot pay runs carefully, then a new window
            gas = self.gas
            gb = 0
            if gas > WINDOW:
                gb = gas - WINDOW
                gas = WINDOW
            n = self.steps  # the steps before the block at pc
            base = n - pc   # ... and in a block, base + pc is the count after the instruction before pc
            try:
                while True:
                    cost, size, block = blocks[pc]
                    if n + size > limit:  # the step limit falls in this block: run it instruction by instruction
                        frame.pc = pc
                        self.gas = gas + gb
                        self.steps = n
                        self.careful(limit)
                        break
                    if cost:
                        gas -= cost
                        if gas < 0:  # the block cannot be paid whole: run it instruction by instruction
                            frame.pc = pc
                            self.gas = gas + cost + gb
                            self.steps = n
                            self.careful(limit)
                            break
                    base = n - pc
                    n += size
                    for pc, op, arg, rest in block:  # (pc: the instruction after this one)
                        if op < 17:  # ----------------------------------------------- stack, variables
                            if op == 5:  # LOAD_LOCAL
                                v = locs[arg]
                                if v is not UNBOUND:
                                    push(v)
                                    continue
                            elif op == 4:  # LOAD_CONST
                                push(arg)
                                continue
                            elif op == 6:  # STORE_LOCAL
                                locs[arg] = pop()
                                continue
                            elif op == 13:  # LOAD_GLOBAL
                                v = globals_.get(arg, UNBOUND)
                                if v is not UNBOUND:
                                    push(v)
                                    continue
                            elif op == 14:  # STORE_GLOBAL
                                v = stack[-1]
                                t = type(v)
                                if arg in globals_ and t is not str and (t is not int or -IMMEDIATE <= v <= IMMEDIATE):
                                    globals_[arg] = pop()
                                    continue
                            elif op == 16:  # LOAD_BUILTIN
                                push(arg)
                                continue
                            elif op == 8:  # LOAD_DEREF
                                v = frame.cells[arg].value
                                if v is not UNBOUND:
                                    push(v)
                                    continue
                            elif op == 9:  # STORE_DEREF
                                frame.cells[arg].value = pop()
                                continue
                            elif op == 1:  # POP
                                pop()
                                continue
                            elif op == 2:  # DUP
                                push(stack[-1])
                                continue
                        elif op < 25:  # ---------------------------------------------- jumps, iteration
                            if op == 18:  # JUMP_IF_FALSE
                                if not pop():
                                    pc = arg  # noqa: PLW2901 - a jump: the block's loop ends here
                                continue
                            if op == 17:  # JUMP
                                pc = arg  # noqa: PLW2901 - a jump: the block's loop ends here
                                continue
                            if op == 23:  # FOR_ITER
                                it = stack[-1]
                                t = type(it)
                                if t is RangeIter:
                                    if it.left > 0:
                                        v = it.cur
                                        if -IMMEDIATE <= v <= IMMEDIATE:
                                            it.cur = v + it.step
                                            it.left -= 1
                                            push(v)
                                            continue
                                    else:
                                        pop()
                                        pc = arg  # noqa: PLW2901 - a jump: the block's loop ends here
                                        continue
                                elif t is SeqIter:
                                    seq = it.seq
                                    i = it.i
                                    if i < len(seq):
                                        it.i = i + 1
                                        push(seq[i])
                                        continue
                            elif op == 19:  # JUMP_IF_TRUE
                                if pop():
                                    pc = arg  # noqa: PLW2901 - a jump: the block's loop ends here
                                continue
                            elif op == 20:  # JUMP_IF_FALSE_OR_POP
                                if stack[-1]:
                                    pop()
                                else:
                                    pc = arg  # noqa: PLW2901 - a jump: the block's loop ends here
                                continue
                            elif op == 21:  # JUMP_IF_TRUE_OR_POP
                                if stack[-1]:
                                    pc = arg  # noqa: PLW2901 - a jump: the block's loop ends here
                                else:
                                    pop()
                                continue
                        elif op < 30:  # ----------------------------------------------------------- unary
                            if op == 28:  # NOT
                                stack[-1] = not stack[-1]
                                continue
                        elif op < 53:  # ---------------------------------------- arithmetic, comparisons
                            b = stack[-1]
                            a = stack[-2]
                            ta = type(a)
                            if ta is int and type(b) is int:
                                if op == 30 or op == 42:  # ADD, IADD  # noqa: PLR1714 - two compares beat a set lookup
                                    r = a + b
                                elif op == 45:  # LT
                                    pop()
                                    stack[-1] = a < b
                                    continue
                                elif op == 31:  # SUB
                                    r = a - b
                                elif op == 43:  # EQ
                                    pop()
                                    stack[-1] = a == b
                                    continue
                                elif op == 35:  # MOD
                                    r = a % b if b else IMMEDIATE + 1  # (x % 0 raises on the slow path)
                                elif op == 46:  # LE
                                    pop()
                                    stack[-1] = a <= b
                                    continue
                                elif op == 47:  # GT
                                    pop()
                                    stack[-1] = a > b
                                    continue
                                elif op == 48:  # GE
                                    pop()
                                    stack[-1] = a >= b
                                    continue
                                elif op == 44:  # NE
                                    pop()
                                    stack[-1] = a != b
                                    continue
                                elif op == 32:  # MUL
                                    r = a * b
                                elif op == 34:  # FLOORDIV
                                    r = a // b if b else IMMEDIATE + 1
                                elif op == 39:  # BITAND
                                    r = a & b
                                elif op == 40:  # BITOR
                                    r = a | b
                                elif op == 41:  # BITXOR
                                    r = a ^ b
                                else:
                                    r = IMMEDIATE + 1
                                if -IMMEDIATE <= r <= IMMEDIATE:
                                    pop()
                                    stack[-1] = r
                                    continue
                            elif ta is float and type(b) is float:
                                if op == 30 or op == 42:  # ADD, IADD  # noqa: PLR1714
                                    pop()
                                    stack[-1] = a + b
                                    continue
                                if op == 31:  # SUB
                                    pop()
                                    stack[-1] = a - b
                                    continue
                                if op == 32:  # MUL
                                    pop()
                                    stack[-1] = a * b
                                    continue
                                if op == 45:  # LT
                                    pop()
                                    stack[-1] = a < b
                                    continue
                                if op == 47:  # GT
                                    pop()
                                    stack[-1] = a > b
                                    continue
                            elif ta is str and type(b) is str:
                                if op == 43 and len(a) <= 32:  # EQ
                                    pop()
                                    stack[-1] = a == b
                                    continue
                                if op == 44 and len(a) <= 32:  # NE
                                    pop()
                                    stack[-1] = a != b
                                    continue
                        elif op < 63:  # ------------------------------------------------------ containers
                            if op == 58:  # INDEX
                                k = stack[-1]
                                x = stack[-2]
                                if type(x) is list and type(k) is int and -len(x) <= k < len(x):
                                    pop()
                                    stack[-1] = x[k]
                                    continue
                            elif op == 59:  # STORE_INDEX
                                k = stack[-1]
                                x = stack[-2]
                                v = stack[-3]
                                t = type(v)
                                if type(x) is list and type(k) is int and -len(x) <= k < len(x) and (
                                        t is not str and (t is not int or -IMMEDIATE <= v <= IMMEDIATE)):
                                    x[k] = v
                                    del stack[-3:]
                                    continue
                            elif op == 62:  # UNPACK
                                x = stack[-1]
                                if type(x) is tuple and len(x) == arg:
                                    pop()
                                    stack.extend(x[::-1])
                                    continue
                        elif op == 64:  # ------------------------------------------------------- calls
                            fn = stack[-arg - 1]
                            if type(fn) is Function:
                                callee = fn.code
                                size = arena.allocated + callee.frame_bytes
                                if (callee.nparams == arg and not callee.ncells and not fn.cells
                                        and len(frames) < MAX_FRAMES and size <= arena.budget
                                        and callee.native is None):
                                    arena.allocated = size
                                    new_locals = stack[len(stack) - arg:]
                                    del stack[len(stack) - arg - 1:]
                                    if callee.nlocals > arg:
                                        new_locals.extend(callee.unbound_tail)
                                    frame.pc = pc
                                    frame = Frame(callee, new_locals, [])
                                    frames.append(frame)  # (pc 0 starts a block)
                                    blocks = callee.blocks
                                    locs = new_locals
                                    stack = frame.stack
                                    push = stack.append
                                    pop = stack.pop
                                    pc = 0  # noqa: PLW2901 - a jump: the block's loop ends here
                                    continue
                        elif op == 68:  # RETURN
                            if len(frames) > 1 and frames[-2].pc in frames[-2].code.starts:
                                v = stack[-1]
                                frames.pop()
                                frame = frames[-1]
                                blocks = frame.code.blocks
                                locs = frame.locals
                                stack = frame.stack
                                push = stack.append
                                pop = stack.pop
                                push(v)
                                pc = frame.pc  # noqa: PLW2901 - a jump: the block's loop ends here
                                continue
                        elif op == 66 and arg[0] == "append" and arg[1] == 1:  # CALL_METHOD
                            v = stack[-1]
                            x = stack[-2]
                            t = type(v)
                            if type(x) is list and arena.allocated + arena_mod.SLOT <= arena.budget and (
                                    t is not str and (t is not int or -IMMEDIATE <= v <= IMMEDIATE)):
                                arena.allocated += arena_mod.SLOT
                                x.append(v)
                                pop()
                                stack[-1] = None
                                continue
                        # the complete semantics of the instruction (the block's unexecuted rest credited)
                        frame.pc = pc
                        self.gas = gas + rest + gb
                        self.steps = base + pc
                        slow[op](self, frame, arg)
                        if self.halt:
                            return
                        gas = self.gas - gb - rest
                        if gas < 0:  # a dynamic charge left too little for the rest of the block
                            self.gas = gas + rest + gb
                            break
                        if frames[-1] is not frame or frame.pc != pc:
                            self.gas = gas + gb
                            break  # (the new frame may continue mid-block: the outer loop looks)
                    else:
                        continue
                    break
            except (GuestError, TrapError, *NATIVE_ERRORS) as e:
                self._sync_after_error(frame, pc, gas + gb, base + pc - 1)
                self.fault(e)
                if self.halt:
                    return

    def stopped(self) -> bool:
        """Whether the run has stopped: ended, suspended, or paused at its step limit."""
        return self.halt or self.status == Status.PAUSED

    def careful(self, limit: int) -> None:
        """Run the top frame one instruction at a time, each paying its own static cost, from
        frame.pc to the next block start (or until the frame changes, the run stops or the
        step limit is reached): how a block that cannot be paid in full, or that is entered in
        its middle, runs, in both modes."""
        frames = self.frames
        frame = frames[-1]
        code = frame.code
        while True:
            if self.steps >= limit:
                self.status = Status.PAUSED
                return
            pc = frame.pc
            op, arg, _, _ = code.instrs[pc]
            cost = code.costs[pc]
            if cost > self.gas:
                self._trap(TrapError(TrapCode.OUT_OF_GAS, f"{OPS[op].name} needs {cost} gas, {self.gas} left"), pc)
                return
            self.gas -= cost
            self.steps += 1
            frame.pc = pc + 1
            try:
                SLOW[op](self, frame, arg)
            except (GuestError, TrapError, *NATIVE_ERRORS) as e:
                self.fault(e)
                return
            if self.halt or frames[-1] is not frame or frame.pc in code.starts:
                return

    def fault(self, error: BaseException) -> None:
        """The top frame's instruction frame.pc - 1 raised `error`: unwind a guest exception
        to its handler (or end the run with it), or end the run with a trap."""
        if isinstance(error, TrapError):
            self._trap(error, self.frames[-1].pc - 1)
            return
        value = error.exc if isinstance(error, GuestError) else from_native(error)
        if value is None:  # pragma: no cover - a VM bug, not a guest error
            raise error
        self.raise_in(value)

    def _sync_after_error(self, frame: Frame, pc: int, gas: int, n: int) -> None:
        """After an instruction raised: the faulting instruction is frame.pc - 1. A slow
        handler has already stored its frame's pc and the gas (and may have charged more)."""
        if self.steps != n + 1:  # raised on an inline fast path
            frame.pc = pc
            self.gas = gas
            self.steps = n + 1

    # -- calls, returns, exceptions --------------------------------------------------------------

    def call(self, fn: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], ret: int = RET_PUSH) -> Any:
        """Call `fn`. A guest function gets a frame and PUSHED is returned (its value arrives
        on the caller's stack when it returns); anything else runs now and its value is
        returned. Callers keep the call's operands on their stack until this returns."""
        while True:
            t = type(fn)
            if t is Function:
                native = fn.code.native
                if native is not None and not kwargs and ret == RET_PUSH:
                    r = native(self, fn, args)
                    if r is not NATIVE_DECLINED:
                        return r
                self.push_frame(fn, args, kwargs, ret)
                return PUSHED
            if t is Builtin:
                r = fn.impl(self, args, kwargs if type(kwargs) is dict else dict(kwargs))
                if type(r) is TailCall:
                    fn, args, kwargs = r.fn, r.args, r.kwargs
                    continue
                return r
            if t is ExcType:
                if kwargs:
                    raise TypeError(f"{fn.name}() takes no keyword arguments")
                self.alloc(arena_mod.EXCEPTION + arena_mod.slots_size(args), *args)
                return ExcValue(fn, tuple(args))
            raise TypeError(f"'{type_name(fn)}' object is not callable")

    def push_frame(self, fn: Function, args: tuple[Any, ...], kwargs: Mapping[str, Any], ret: int) -> None:
        code = fn.code
        if len(self.frames) >= MAX_FRAMES:
            raise exc("RecursionError", "maximum recursion depth exceeded")
        locs = list(args) if not kwargs and len(args) == code.nparams else _bind(fn, args, kwargs)
        if code.nlocals > code.nparams:
            locs.extend([UNBOUND] * (code.nlocals - code.nparams))
        cells = [Cell() for _ in range(code.ncells)] if code.ncells else []
        if fn.cells:
            cells.extend(fn.cells)
        self.alloc(code.frame_bytes, *args)
        self.frames.append(Frame(code, locs, cells, ret))

    def raise_in(self, value: ExcValue) -> None:
        """Unwind from the top frame's faulting instruction (frame.pc - 1) to a handler."""
        frames = self.frames
        frame = frames[-1]
        pc = frame.pc - 1
        stop_iteration = EXC_TYPES["StopIteration"]
        while True:
            code = frame.code
            if code.unit == "user":
                value.tb.append([code.name, code.line_at(pc)])
            for h in code.handlers:
                if h.start <= pc < h.end:
                    del frame.stack[h.depth:]
                    frame.stack.append(value)
                    frame.pc = h.target
                    return
            frames.pop()
            if not frames:
                self.error = value
                self.status = Status.ERROR
                self.halt = True
                return
            caller = frames[-1]
            if frame.ret == RET_FOR_ITER and stop_iteration in value.etype.mro:
                target = caller.code.instrs[caller.pc - 1][1]
                caller.stack.pop()
                caller.pc = target
                return
            frame = caller
            pc = frame.pc - 1

    def _trap(self, error: TrapError, pc: int) -> None:
        frame = self.frames[-1] if self.frames else None
        code = frame.code if frame else None
        line, func, file = 0, "", self.program.file
        for f in reversed(self.frames):  # the innermost frame of the program (not of the prelude)
            if f.code.unit == "user":
                p = pc if f is frame else f.pc - 1
                line, func = f.code.line_at(p), f.code.qualname
                func, file = split_name(func, file)  # a linked program's function names its module's file
                break
        if error.code == TrapCode.OUT_OF_GAS:
            self.gas = 0
        self.trap = Trap(error.code, error.message, file, line, func if code else "", pc)
        self.status = Status.TRAP
        self.halt = True

    def capability(self, name: str, args: tuple[Any, ...]) -> Any:
        """CAP: call a declared capability (its grant was checked before the run began); its
        value, or PUSHED when the run suspends (sleep, yield: the value arrives on resume)."""
        self.charge(gas_mod.CAP_CALL[name])
        if name == "sleep":
            seconds = args[0]
            if type(seconds) not in (int, float, bool) or math.isnan(seconds):
                raise TypeError(f"sleep() needs a number of seconds, not {type_name(seconds)}")
            if seconds < 0:
                raise ValueError("sleep length must be non-negative")
            assert self.host is not None
            self.pending = Pending("sleep", self.host.now() + float(seconds))
        elif name == "yield":
            self.pending = Pending("yield", None)
        elif name == "random":
            return self.random()
        else:
            assert self.host is not None
            return self.host.call(name, args, self)
        self.status = Status.SUSPENDED
        self.halt = True
        return PUSHED

    def random(self) -> float:
        """The next float in [0, 1) of a SplitMix64 generator (its state is `rng`)."""
        self.rng = (self.rng + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = self.rng
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        z ^= z >> 31
        return (z >> 11) * (1.0 / (1 << 53))


def _live_values(live: tuple[Frame, Any, list[int]]) -> tuple[list[Any], list[Any]]:
    """(the stack, the locals) of the frame fast mode is running, as they are before the
    instruction the generated code is executing (read from its Python frame's variables
    L<i> and S<depth> at the line it is at)."""
    frame, pyframe, line2pc = live
    names = pyframe.f_locals
    code = frame.code
    depth = code.depths[line2pc[pyframe.f_lineno]]
    return [names[f"S{i}"] for i in range(depth)], [names[f"L{i}"] for i in range(code.nlocals)]


def _bind(fn: Function, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> list[Any]:
    """Bind arguments to parameters as CPython does (positional, keyword, defaults)."""
    code = fn.code
    n = code.nparams
    name = code.qualname
    if len(args) > n:
        lo = n - code.ndefaults
        takes = f"{n}" if lo == n else f"from {lo} to {n}"
        raise TypeError(f"{name}() takes {takes} positional argument{'s' * (n != 1)} but {len(args)} "
                        f"{'was' if len(args) == 1 else 'were'} given")
    locs: list[Any] = list(args) + [UNBOUND] * (n - len(args))
    for key, value in kwargs.items():
        i = code.param_index.get(key)
        if i is None:
            raise TypeError(f"{name}() got an unexpected keyword argument '{key}'")
        if locs[i] is not UNBOUND:
            raise TypeError(f"{name}() got multiple values for argument '{key}'")
        locs[i] = value
    first_default = n - code.ndefaults
    missing = []
    for i in range(n):
        if locs[i] is UNBOUND:
            if i >= first_default:
                locs[i] = fn.defaults[i - first_default]
            else:
                missing.append(code.varnames[i])
    if missing:
        quoted = [f"'{m}'" for m in missing]
        listed = quoted[0] if len(quoted) == 1 else (
            f"{quoted[0]} and {quoted[1]}" if len(quoted) == 2 else ", ".join(quoted[:-1]) + f", and {quoted[-1]}")
        raise TypeError(f"{name}() missing {len(missing)} required positional argument{'s' * (len(missing) != 1)}: "
                        f"{listed}")
    return locs


# ----------------------------------------------------------------------------------------------
# The complete semantics of each opcode: SLOW[op](vm, frame, arg). The interpreter uses them for
# every instruction its inline fast paths do not finish, fast mode for the instructions that
# may switch frames. Discipline (what makes arena recounts identical in both modes): a handler
# leaves the instruction's operands on the stack until its work is done, then replaces them by
# the result. The value-level work is in functions of their own (build_list, store_global, ...),
# which fast mode calls directly with its stack slots.

Handler_ = Callable[[VM, Frame, Any], None]
SLOW: list[Handler_] = []


def _nop(vm: VM, f: Frame, arg: Any) -> None:
    return None


def _pop(vm: VM, f: Frame, arg: Any) -> None:
    f.stack.pop()


def _dup(vm: VM, f: Frame, arg: Any) -> None:
    f.stack.append(f.stack[-1])


def _swap(vm: VM, f: Frame, arg: Any) -> None:
    s = f.stack
    s[-1], s[-2] = s[-2], s[-1]


def _load_const(vm: VM, f: Frame, arg: Any) -> None:
    f.stack.append(arg)


def unbound_local(code: Code, slot: int) -> GuestError:
    return exc("UnboundLocalError", f"cannot access local variable '{code.varnames[slot]}' "
                                    "where it is not associated with a value")


def unbound_cell(code: Code, i: int) -> GuestError:
    name = code.cellnames[i]
    if i < code.ncells:
        return exc("UnboundLocalError",
                   f"cannot access local variable '{name}' where it is not associated with a value")
    return exc("NameError", f"cannot access free variable '{name}' where it is not associated with a value "
                            "in enclosing scope")


def _load_local(vm: VM, f: Frame, arg: Any) -> None:
    v = f.locals[arg]
    if v is UNBOUND:
        raise unbound_local(f.code, arg)
    f.stack.append(v)


def _store_local(vm: VM, f: Frame, arg: Any) -> None:
    f.locals[arg] = f.stack.pop()


def _delete_local(vm: VM, f: Frame, arg: Any) -> None:
    f.locals[arg] = UNBOUND


def _load_deref(vm: VM, f: Frame, arg: Any) -> None:
    v = f.cells[arg].value
    if v is UNBOUND:
        raise unbound_cell(f.code, arg)
    f.stack.append(v)


def _store_deref(vm: VM, f: Frame, arg: Any) -> None:
    f.cells[arg].value = f.stack.pop()


def _delete_deref(vm: VM, f: Frame, arg: Any) -> None:
    f.cells[arg].value = UNBOUND


def make_cell(vm: VM, cells: list[Any], i: int) -> None:
    vm.alloc(arena_mod.CELL)
    cells[i] = Cell()


def _make_cell(vm: VM, f: Frame, arg: Any) -> None:
    make_cell(vm, f.cells, arg)


def _load_cell(vm: VM, f: Frame, arg: Any) -> None:
    f.stack.append(f.cells[arg])


def load_global(vm: VM, name: str) -> Any:
    v = vm.globals.get(name, UNBOUND)
    if v is UNBOUND:
        raise exc("NameError", f"name '{name}' is not defined")
    return v


def store_global(vm: VM, name: str, v: Any) -> None:
    g = vm.globals
    if name not in g:
        vm.alloc(arena_mod.DICT_ENTRY + arena_mod.scalar_size(v), v)
    elif type(v) is str or type(v) is int:
        size = arena_mod.scalar_size(v)
        if size:
            vm.alloc(size, v)
    g[name] = v


def delete_global(vm: VM, name: str) -> None:
    if name not in vm.globals:
        raise exc("NameError", f"name '{name}' is not defined")
    del vm.globals[name]


def _load_global(vm: VM, f: Frame, arg: Any) -> None:
    f.stack.append(load_global(vm, arg))


def _store_global(vm: VM, f: Frame, arg: Any) -> None:
    store_global(vm, arg, f.stack[-1])
    f.stack.pop()


def _delete_global(vm: VM, f: Frame, arg: Any) -> None:
    delete_global(vm, arg)


def _jump(vm: VM, f: Frame, arg: Any) -> None:
    f.pc = arg


def _jump_if_false(vm: VM, f: Frame, arg: Any) -> None:
    if not f.stack.pop():
        f.pc = arg


def _jump_if_true(vm: VM, f: Frame, arg: Any) -> None:
    if f.stack.pop():
        f.pc = arg


def _jump_if_false_or_pop(vm: VM, f: Frame, arg: Any) -> None:
    if f.stack[-1]:
        f.stack.pop()
    else:
        f.pc = arg


def _jump_if_true_or_pop(vm: VM, f: Frame, arg: Any) -> None:
    if f.stack[-1]:
        f.pc = arg
    else:
        f.stack.pop()


def _get_iter(vm: VM, f: Frame, arg: Any) -> None:
    f.stack[-1] = ops.get_iter(vm, f.stack[-1])


NATIVE_ITERATORS = (SeqIter, RevIter, RangeIter, DictIter, EnumIter, ZipIter)
NEXT_FUNCTIONS = {MapIter: "map_next", FilterIter: "filter_next", ZipIter: "zip_next", EnumIter: "enumerate_next"}


def _for_iter(vm: VM, f: Frame, arg: Any) -> None:
    it = f.stack[-1]
    if is_guest_iter(it):
        vm.call(vm.prelude[NEXT_FUNCTIONS[type(it)]], (it,), {}, RET_FOR_ITER)
        return
    if type(it) not in NATIVE_ITERATORS:
        raise TypeError(f"'{type_name(it)}' object is not an iterator")
    v = ops.native_next(vm, it)
    if v is EXHAUSTED:
        f.stack.pop()
        f.pc = arg
    else:
        f.stack.append(v)


def _next(vm: VM, f: Frame, arg: Any) -> None:
    s = f.stack
    it = s[-1]
    if is_guest_iter(it):
        vm.call(vm.prelude[NEXT_FUNCTIONS[type(it)]], (it,), {})
        s.pop()
        return
    if type(it) not in NATIVE_ITERATORS:
        raise TypeError(f"'{type_name(it)}' object is not an iterator")
    v = ops.native_next(vm, it)
    if v is EXHAUSTED:
        raise exc("StopIteration")
    s[-1] = v


def _unary(fn: Callable[[VM, Any], Any]) -> Handler_:
    def h(vm: VM, f: Frame, arg: Any) -> None:
        f.stack[-1] = fn(vm, f.stack[-1])
    return h


def _binary(fn: Callable[[VM, Any, Any], Any]) -> Handler_:
    def h(vm: VM, f: Frame, arg: Any) -> None:
        s = f.stack
        r = fn(vm, s[-2], s[-1])
        if type(r) is TailCall:
            r = vm.call(r.fn, r.args, r.kwargs)
            del s[-2:]
            if r is not PUSHED:
                s.append(r)
        else:
            del s[-1]
            s[-1] = r
    return h


def _not_in(vm: VM, a: Any, b: Any) -> Any:
    r = ops.contains(vm, a, b)
    if type(r) is TailCall:
        return TailCall(vm.prelude["not_contains"], r.args)
    return not r


def build_list(vm: VM, items: list[Any]) -> list[Any]:
    vm.charge(gas_mod.CELL * len(items))
    vm.alloc(arena_mod.list_size(items))
    return items


def build_tuple(vm: VM, items: list[Any]) -> tuple[Any, ...]:
    vm.charge(gas_mod.CELL * len(items))
    vm.alloc(arena_mod.tuple_size(items))
    return tuple(items)


def build_dict(vm: VM, items: list[Any]) -> dict[Any, Any]:
    n = len(items) // 2
    vm.charge(gas_mod.CELL * 2 * n)
    vm.alloc(arena_mod.DICT + arena_mod.DICT_ENTRY * n + arena_mod.slots_size(items) - arena_mod.SLOT * 2 * n)
    d: dict[Any, Any] = {}
    for i in range(0, 2 * n, 2):
        ops.check_key(vm, items[i])
        d[items[i]] = items[i + 1]
    return d


def build_string(vm: VM, parts: list[Any]) -> str:
    for p in parts:
        if type(p) is not str:
            raise TypeError(f"BUILD_STRING needs strings, not {type_name(p)}")
    total = sum(len(p) for p in parts)
    width = 1 if all(p.isascii() for p in parts) else 4
    if total * width > arena_mod.IMMEDIATE_BYTES:
        vm.charge(gas_mod.words(total * width))
        vm.alloc(24 + total * width)
    return "".join(parts)


def _builder(fn: Callable[[VM, list[Any]], Any], per_item: int = 1) -> Handler_:
    def h(vm: VM, f: Frame, arg: Any) -> None:
        s = f.stack
        k = per_item * arg
        r = fn(vm, s[len(s) - k:])
        del s[len(s) - k:]
        s.append(r)
    return h


def format_with(vm: VM, conv: int, v: Any, spec: Any) -> str:
    """f"{v!conv:spec}": the FORMAT and FORMAT_SPEC instructions."""
    if conv == 1:
        v = text.repr_value(vm, v)
    elif conv == 2:
        v = text.str_value(vm, v)
    if type(spec) is not str:
        raise TypeError(f"a format spec must be a str, not {type_name(spec)}")
    r = text.format_value(vm, v, spec)
    size = arena_mod.str_size(r)
    if size:
        vm.alloc(size, v)
    return r


def _format(vm: VM, f: Frame, arg: Any) -> None:
    conv, spec = arg
    f.stack[-1] = format_with(vm, conv, f.stack[-1], spec)


def _format_spec(vm: VM, f: Frame, arg: Any) -> None:
    s = f.stack
    r = format_with(vm, arg, s[-2], s[-1])
    del s[-1]
    s[-1] = r


def _store_index(vm: VM, f: Frame, arg: Any) -> None:
    s = f.stack
    ops.store_index(vm, s[-2], s[-1], s[-3])
    del s[-3:]


def _delete_index(vm: VM, f: Frame, arg: Any) -> None:
    s = f.stack
    ops.delete_index(vm, s[-2], s[-1])
    del s[-2:]


def _slice(vm: VM, f: Frame, arg: Any) -> None:
    s = f.stack
    r = ops.slice_of(vm, s[-4], s[-3], s[-2], s[-1])
    del s[-3:]
    s[-1] = r


def _unpack(vm: VM, f: Frame, arg: Any) -> None:
    s = f.stack
    x = s[-1]
    if is_guest_iter(x):
        vm.call(vm.prelude["unpack_list"], (x, arg), {})
        s.pop()
        f.pc -= 1  # UNPACK runs again, on the list the prelude returns
        return
    items = ops.unpack(vm, x, arg)
    s.pop()
    s.extend(reversed(items))


def make_function(vm: VM, code: Code, values: list[Any]) -> Function:
    """MAKE_FUNCTION: `values` are the defaults, then the free cells."""
    defaults = tuple(values[:code.ndefaults])
    cells = tuple(values[code.ndefaults:])
    for c in cells:
        if type(c) is not Cell:
            raise TypeError(f"MAKE_FUNCTION needs cells for {code.qualname}'s free variables, not {type_name(c)}")
    vm.alloc(arena_mod.FUNCTION + arena_mod.SLOT * len(values) + arena_mod.slots_size(defaults)
             - arena_mod.SLOT * len(defaults))
    return Function(code, defaults, cells)


def _make_function(vm: VM, f: Frame, arg: Any) -> None:
    s = f.stack
    k = arg.ndefaults + arg.nfree
    r = make_function(vm, arg, s[len(s) - k:])
    del s[len(s) - k:]
    s.append(r)


def _finish_call(s: list[Any], first: int, r: Any) -> None:
    """Replace a call's operands (s[first:]) by its value (unless the value arrives later)."""
    del s[first:]
    if r is not PUSHED:
        s.append(r)


def _call(vm: VM, f: Frame, arg: Any) -> None:
    s = f.stack
    n = len(s) - arg
    _finish_call(s, n - 1, vm.call(s[n - 1], tuple(s[n:]), {}))


def _call_kw(vm: VM, f: Frame, arg: Any) -> None:
    argc, names = arg
    s = f.stack
    n = len(s) - argc
    k = len(names)
    values = s[n:]
    _finish_call(s, n - 1, vm.call(s[n - 1], tuple(values[:argc - k]), dict(zip(names, values[argc - k:],
                                                                                strict=True))))


def _call_method(vm: VM, f: Frame, arg: Any) -> None:
    name, argc = arg[0], arg[1]
    s = f.stack
    n = len(s) - argc
    if len(arg) == 2:  # no keyword arguments
        obj = s[n - 1]
        table = bi.METHODS.get(type(obj))
        impl = table.get(name) if table is not None else None
        r = impl(vm, obj, tuple(s[n:]), {}) if impl is not None else bi.call_method(vm, obj, name, tuple(s[n:]), {})
    else:
        names: tuple[str, ...] = arg[2]
        values = s[n:]
        k = len(names)
        r = bi.call_method(vm, s[n - 1], name, tuple(values[:argc - k]),
                           dict(zip(names, values[argc - k:], strict=True)))
    if type(r) is TailCall:
        r = vm.call(r.fn, r.args, r.kwargs)
    _finish_call(s, n - 1, r)


def tail_call(vm: VM, f: Frame, r: TailCall, first: int) -> None:
    """The rest of _call_method after a method returned a TailCall (fast mode's direct call)."""
    _finish_call(f.stack, first, vm.call(r.fn, r.args, r.kwargs))


def _return(vm: VM, f: Frame, arg: Any) -> None:
    v = f.stack.pop()
    frames = vm.frames
    frames.pop()
    if frames:
        frames[-1].stack.append(v)
    else:
        vm.value = v
        vm.status = Status.DONE
        vm.halt = True


def exception_value(v: Any) -> ExcValue:
    if type(v) is ExcType:
        return ExcValue(v, ())
    if type(v) is not ExcValue:
        raise TypeError("exceptions must derive from BaseException")
    return v


def raise_value(v: Any) -> None:
    """RAISE: raise a new exception (a fresh traceback)."""
    e = exception_value(v)
    e.tb = []
    raise GuestError(e)


def reraise_value(v: Any) -> None:
    """RERAISE: raise again, the traceback kept."""
    raise GuestError(exception_value(v))


def _raise(vm: VM, f: Frame, arg: Any) -> None:
    raise_value(f.stack[-1])


def _reraise(vm: VM, f: Frame, arg: Any) -> None:
    reraise_value(f.stack[-1])


def _raise_current(vm: VM, f: Frame, arg: Any) -> None:
    """A bare `raise` outside an except clause: the exception being handled by the nearest
    frame (this one or a caller) whose current instruction is in one of its handler bodies."""
    for frame in reversed(vm.frames):
        pc = frame.pc - 1
        for start, end, slot in frame.code.handling:
            if start <= pc < end and type(frame.locals[slot]) is ExcValue:
                raise GuestError(frame.locals[slot])
    raise exc("RuntimeError", "No active exception to reraise")


def exc_match(vm: VM, e: Any, t: Any) -> bool:
    types = t if type(t) is tuple else (t,)
    for c in types:
        if type(c) is not ExcType:
            raise TypeError("catching classes that do not inherit from BaseException is not allowed")
    return type(e) is ExcValue and any(c in e.etype.mro for c in types)


def _exc_match(vm: VM, f: Frame, arg: Any) -> None:
    s = f.stack
    s[-1] = exc_match(vm, s[-2], s[-1])


def _cap(vm: VM, f: Frame, arg: Any) -> None:
    name, argc = arg
    s = f.stack
    first = len(s) - argc
    _finish_call(s, first, vm.capability(name, tuple(s[first:])))


def _compare(op: str) -> Callable[[VM, Any, Any], Any]:
    def fn(vm: VM, a: Any, b: Any) -> Any:
        return ops.compare(vm, op, a, b)
    return fn


def _ne(vm: VM, a: Any, b: Any) -> bool:
    return not ops.eq(vm, a, b)


def _is(vm: VM, a: Any, b: Any) -> bool:
    return ops.is_(a, b)


def _is_not(vm: VM, a: Any, b: Any) -> bool:
    return not ops.is_(a, b)


# The value-level function of each binary and unary opcode (fast mode calls them directly).
BINARY_FUNCTIONS: dict[Op, Callable[[VM, Any, Any], Any]] = {
    **{getattr(Op, name.upper()): fn for name, fn in ops.BINARY.items()},
    Op.EQ: ops.eq, Op.NE: _ne, Op.LT: _compare("lt"), Op.LE: _compare("le"), Op.GT: _compare("gt"),
    Op.GE: _compare("ge"), Op.IN: ops.contains, Op.NOT_IN: _not_in, Op.IS: _is, Op.IS_NOT: _is_not,
    Op.INDEX: ops.index,
}
UNARY_FUNCTIONS: dict[Op, Callable[[VM, Any], Any]] = {
    Op.NEG: ops.neg, Op.POS: ops.pos, Op.INVERT: ops.invert, Op.NOT: lambda vm, v: not v,
    Op.TRUTH: lambda vm, v: bool(v), Op.GET_ITER: ops.get_iter,
}

_TABLE: dict[Op, Handler_] = {
    Op.NOP: _nop, Op.POP: _pop, Op.DUP: _dup, Op.SWAP: _swap, Op.LOAD_CONST: _load_const,
    Op.LOAD_LOCAL: _load_local, Op.STORE_LOCAL: _store_local, Op.DELETE_LOCAL: _delete_local,
    Op.LOAD_DEREF: _load_deref, Op.STORE_DEREF: _store_deref, Op.DELETE_DEREF: _delete_deref,
    Op.MAKE_CELL: _make_cell, Op.LOAD_CELL: _load_cell, Op.LOAD_GLOBAL: _load_global,
    Op.STORE_GLOBAL: _store_global, Op.DELETE_GLOBAL: _delete_global, Op.LOAD_BUILTIN: _load_const,
    Op.JUMP: _jump, Op.JUMP_IF_FALSE: _jump_if_false, Op.JUMP_IF_TRUE: _jump_if_true,
    Op.JUMP_IF_FALSE_OR_POP: _jump_if_false_or_pop, Op.JUMP_IF_TRUE_OR_POP: _jump_if_true_or_pop,
    Op.FOR_ITER: _for_iter, Op.NEXT: _next,
    **{op: _unary(fn) for op, fn in UNARY_FUNCTIONS.items()},
    **{op: _binary(fn) for op, fn in BINARY_FUNCTIONS.items()},
    Op.BUILD_LIST: _builder(build_list), Op.BUILD_TUPLE: _builder(build_tuple),
    Op.BUILD_DICT: _builder(build_dict, 2), Op.BUILD_STRING: _builder(build_string), Op.FORMAT: _format,
    Op.STORE_INDEX: _store_index, Op.DELETE_INDEX: _delete_index, Op.SLICE: _slice, Op.UNPACK: _unpack,
    Op.MAKE_FUNCTION: _make_function, Op.CALL: _call, Op.CALL_KW: _call_kw, Op.CALL_METHOD: _call_method,
    Op.CALL_METHOD_KW: _call_method, Op.RETURN: _return, Op.RAISE: _raise, Op.RERAISE: _reraise,
    Op.EXC_MATCH: _exc_match, Op.CAP: _cap, Op.FORMAT_SPEC: _format_spec, Op.RAISE_CURRENT: _raise_current,
}
SLOW.extend(_TABLE[Op(i)] for i in range(len(Op)))
assert all(Op(i) in _TABLE for i in range(len(Op))), "every opcode has its semantics"


# ----------------------------------------------------------------------------------------------
# Metering off (for the benchmark's measure of what metering costs, crush/... tests/bench/crush.py)

_UNMETERED: list[Callable[[VM, int], None]] = []


def _unmetered_interpreter() -> Callable[[VM, int], None]:
    """VM.interpret without its metering statements (the block charge `if cost: ...` and the
    `if gas < 0:` after a slow handler), made from interpret's own source: the same loop, so
    that runs with and without metering differ by exactly what metering costs. Only
    VM(metering=False) uses it."""
    if not _UNMETERED:
        import ast  # noqa: PLC0415 - only the benchmark's metering-off runs need these
        import inspect  # noqa: PLC0415
        import textwrap  # noqa: PLC0415

        class _Strip(ast.NodeTransformer):
            def visit_If(self, node: ast.If) -> ast.AST | None:
                test = node.test
                if isinstance(test, ast.Name) and test.id == "cost":  # the block's charge
                    return None
                if isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "gas":
                    return None
                self.generic_visit(node)
                return node

        tree = _Strip().visit(ast.parse(textwrap.dedent(inspect.getsource(VM.interpret))))
        namespace: dict[str, Any] = {}
        exec(compile(ast.fix_missing_locations(tree), __file__, "exec"), globals(), namespace)  # noqa: S102
        _UNMETERED.append(namespace["interpret"])
    return _UNMETERED[0]

