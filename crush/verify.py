"""The verifier: a program runs only if this proves it well-formed, before any instruction runs.

`verify(program, builtins)` checks, and refuses with `VerifyError` naming the function, the
instruction index and the reason:

- the header: capabilities are known (crush.cast.CAPABILITIES) and declared once; function 0
  (the module body) takes no parameters and captures nothing; counts are within bounds;
- every instruction, reachable or not: a known opcode with the right number of operands, each
  operand in range for its kind (a constant of the right kind, a local, a cell, a function, a
  declared capability with an argument count it accepts, a jump target inside the function, a
  builtin that exists);
- every handler: a non-empty range inside the function, a target inside it, a depth within
  bounds; the table's total coverage is bounded (so verification is linear in the code size);
- by abstract interpretation of the stack depth over the control-flow graph of each function
  (fall-through, jumps, branches, and an edge from every instruction a handler covers to its
  target): no instruction pops more than the stack holds; where paths merge (a jump target, a
  handler target) they agree on the depth; the depth never exceeds casm.MAX_STACK; no path
  falls off the end of the function; no instruction a handler covers consumes stack below the
  handler's depth (so unwinding only ever cuts the stack, never restores it).

What it proves is what the VM relies on and never checks again: operand indices are valid,
stacks never underflow, every frame's stack depth at every instruction is the one recorded in
`Facts.depths` (crush/state.py checks restored frames against it, crush/fast.py maps stack
slots to variables with it).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from crush.casm import (
    CAP_ARITY,
    MAX_CELLS,
    MAX_CODE,
    MAX_COUNT,
    MAX_LOCALS,
    MAX_STACK,
    OPS,
    Function,
    Instr,
    Names,
    Op,
    Operand,
    Program,
    stack_effect,
)
from crush.cast import CAPABILITIES

MAX_HANDLER_COVERAGE_PER_INSTR = 32


class VerifyError(ValueError):
    """A refused program: `func` and `pc` locate the offending instruction (pc -1: the function's
    header or the program's)."""

    def __init__(self, func: int, pc: int, reason: str, qualname: str = "") -> None:
        where = "program" if func < 0 else f"function {func}" + (f" ({qualname})" if qualname else "")
        if pc >= 0:
            where += f" instruction {pc}"
        super().__init__(f"{where}: {reason}")
        self.func = func
        self.pc = pc
        self.reason = reason


@dataclass(frozen=True)
class Facts:
    """What the verifier proved about one function: the stack depth before each instruction
    (-1: unreachable) and the largest depth."""
    depths: tuple[int, ...]
    max_depth: int


def verify(program: Program, builtins: Collection[str]) -> tuple[Facts, ...]:
    if len(set(program.caps)) != len(program.caps):
        raise VerifyError(-1, -1, "a capability is declared twice")
    for cap in program.caps:
        if cap not in CAPABILITIES:
            raise VerifyError(-1, -1, f"unknown capability {cap!r}")
    if not program.funcs:
        raise VerifyError(-1, -1, "no functions (function 0 is the module body)")
    return tuple(_verify_function(program, i, fn, builtins) for i, fn in enumerate(program.funcs))


def _verify_function(program: Program, index: int, fn: Function, builtins: Collection[str]) -> Facts:
    def fail(pc: int, reason: str) -> VerifyError:
        return VerifyError(index, pc, reason, fn.qualname)

    if index == 0 and (fn.nparams or fn.nfree):
        raise fail(-1, "the module body (function 0) takes no parameters and captures no cells")
    if fn.nparams > fn.nlocals or fn.nlocals > MAX_LOCALS:
        raise fail(-1, f"{fn.nparams} parameters need as many locals (has {fn.nlocals}, limit {MAX_LOCALS})")
    if fn.ndefaults > fn.nparams:
        raise fail(-1, "more defaults than parameters")
    if fn.ncells > len(fn.cellnames) or len(fn.cellnames) > MAX_CELLS:
        raise fail(-1, f"{fn.ncells} own cells but {len(fn.cellnames)} cell names (limit {MAX_CELLS})")
    if not fn.code or len(fn.code) > MAX_CODE:
        raise fail(-1, f"a function has 1 to {MAX_CODE} instructions")
    n = len(fn.code)
    for pc, ins in enumerate(fn.code):
        _check_operands(program, fn, ins, builtins, lambda reason, pc=pc: fail(pc, reason))
    coverage = 0
    for h in fn.handlers:
        if not (0 <= h.start < h.end <= n):
            raise fail(-1, f"handler range {h.start}..{h.end} is empty or outside the function")
        if h.target >= n:
            raise fail(-1, f"handler target {h.target} is outside the function")
        if h.depth >= MAX_STACK:
            raise fail(-1, f"handler depth {h.depth} exceeds the stack limit")
        coverage += h.end - h.start
    for start, end, slot in fn.handling:
        if not (0 <= start < end <= n) or slot >= fn.nlocals:
            raise fail(-1, f"handling range {start}..{end} (local {slot}) is empty or outside the function")
    if coverage > MAX_HANDLER_COVERAGE_PER_INSTR * n + 1024:
        raise fail(-1, "the handler table covers too much code")
    covering: list[list[int]] = [[] for _ in range(n)]
    for hi, h in enumerate(fn.handlers):
        for pc in range(h.start, h.end):
            covering[pc].append(hi)

    depths = [-1] * n
    depths[0] = 0
    work = [0]
    max_depth = 0

    def reach(pc: int, depth: int, source: int, how: str) -> None:
        if depths[pc] == -1:
            depths[pc] = depth
            work.append(pc)
        elif depths[pc] != depth:
            raise fail(pc, f"stack depth {depth} {how} from instruction {source} "
                           f"disagrees with depth {depths[pc]} on another path")

    while work:
        pc = work.pop()
        ins = fn.code[pc]
        spec = OPS[ins.op]
        depth = depths[pc]
        pops, pushes, bpops, bpushes = stack_effect(ins, program)
        if pops > depth or bpops > depth:
            raise fail(pc, f"stack underflow: {ins.name} pops {max(pops, bpops)} with {depth} on the stack")
        after = depth - pops + pushes
        max_depth = max(max_depth, after, depth - bpops + bpushes)
        if max_depth > MAX_STACK:
            raise fail(pc, f"stack depth exceeds {MAX_STACK}")
        for hi in covering[pc]:
            h = fn.handlers[hi]
            if depth - max(pops, bpops) < h.depth:
                raise fail(pc, f"{ins.name} consumes stack below the depth {h.depth} of handler {hi}")
            reach(h.target, h.depth + 1, pc, f"entering handler {hi}")
        if spec.flow in ("jump", "branch"):
            reach(ins.args[0], depth - bpops + bpushes if spec.flow == "branch" else after, pc, "on a jump")
        if spec.flow in ("", "branch"):
            if pc + 1 >= n:
                raise fail(pc, "falls off the end of the function")
            reach(pc + 1, after, pc, "falling through")
    return Facts(tuple(depths), max_depth)


def _check_operands(program: Program, fn: Function, ins: Instr, builtins: Collection[str],
                    fail: object) -> None:
    assert callable(fail)
    spec = OPS.get(ins.op)
    if spec is None:
        raise fail(f"unknown opcode {ins.op}")
    if len(ins.args) != len(spec.operands):
        raise fail(f"{spec.name} takes {len(spec.operands)} operand(s), has {len(ins.args)}")
    consts = program.consts
    for kind, arg in zip(spec.operands, ins.args, strict=True):
        if not isinstance(arg, int) or isinstance(arg, bool) or arg < 0:
            raise fail(f"operand {arg!r} is not a non-negative integer")
        if kind in (Operand.CONST, Operand.NAME, Operand.NAMES):
            if arg >= len(consts):
                raise fail(f"constant index {arg} out of range (pool has {len(consts)})")
            c = consts[arg]
            if kind == Operand.CONST and isinstance(c, Names):
                raise fail(f"constant {arg} is a names tuple, not a value")
            if kind == Operand.NAME and not isinstance(c, str):
                raise fail(f"constant {arg} is not a name (a string)")
            if kind == Operand.NAMES and not isinstance(c, Names):
                raise fail(f"constant {arg} is not a names tuple")
        elif kind == Operand.LOCAL and arg >= fn.nlocals:
            raise fail(f"local {arg} out of range (function has {fn.nlocals})")
        elif kind == Operand.CELL and arg >= fn.ncells + fn.nfree:
            raise fail(f"cell {arg} out of range (function has {fn.ncells + fn.nfree})")
        elif kind == Operand.FUNC and not 0 < arg < len(program.funcs):
            raise fail(f"function index {arg} out of range")
        elif kind == Operand.JUMP and arg >= len(fn.code):
            raise fail(f"jump target {arg} outside the function ({len(fn.code)} instructions)")
        elif kind == Operand.COUNT and arg > MAX_COUNT:
            raise fail(f"count {arg} exceeds {MAX_COUNT}")
        elif kind == Operand.CAP and arg >= len(program.caps):
            raise fail(f"capability {arg} is not declared (the program declares {len(program.caps)})")
        elif kind == Operand.CONV and arg > 2:
            raise fail(f"conversion {arg} is not 0, 1 or 2")
    op = ins.op
    if op == Op.MAKE_CELL and ins.args[0] >= fn.ncells:
        raise fail("MAKE_CELL names a captured cell, not one of the function's own")
    if op == Op.LOAD_BUILTIN and consts[ins.args[0]] not in builtins:
        raise fail(f"unknown builtin {consts[ins.args[0]]!r}")
    if op in (Op.CALL_KW, Op.CALL_METHOD_KW):
        names = consts[ins.args[-1]]
        argc = ins.args[0] if op == Op.CALL_KW else ins.args[1]
        assert isinstance(names, Names)
        if len(names.names) > argc or len(set(names.names)) != len(names.names):
            raise fail("keyword names outnumber the arguments or repeat")
    if op == Op.CAP:
        name = program.caps[ins.args[0]]
        lo, hi = CAP_ARITY[name]
        if not lo <= ins.args[1] <= hi:
            raise fail(f"capability {name} takes {lo}..{hi} arguments, not {ins.args[1]}")
