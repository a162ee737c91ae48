"""Fast mode: each function's basic blocks compiled to Python source, same results and same gas.

`run_fast(vm, limit)` is a trampoline: it runs the top frame's compiled function, which runs
until the frame changes (a call, a return), the run stops, or a block cannot be run whole; then
the trampoline dispatches again. Python source is generated only from verified CASM (crush/
verify.py): every identifier in it is generated (`L3` a local, `S2` a stack slot, `K7` a
constant, `H12` the handler of instruction 12), and every constant, name, builtin and function
is passed in the generated code's namespace, never written into its text.

How the generated code keeps the interpreter's semantics exactly:
- Guest locals and the operand stack live in Python variables (`L<i>`, `S<depth>`: the
  verifier proved the stack depth at every instruction, so stack slots have fixed names).
- Gas and steps are charged per block at its entry, all of the block at once. A block that
  cannot be paid for in full, or that would cross the step limit, is not entered: the
  interpreter runs it instruction by instruction, so a trap or a pause happens at exactly the
  interpreter's instruction. Within a block, work that charges gas dynamically is called with
  the not-yet-executed rest of the block's static cost credited back, so it sees exactly the
  gas the interpreter would.
- An exception inside a block is located by the generated line it came from (each line
  belongs to one instruction): the frame's locals, stack, pc and step count are written back
  as the interpreter would have them, and the VM unwinds it as usual.
- Instructions that may switch frames (calls, returns, FOR_ITER over map/filter, capabilities,
  ...) end their block: the state is written back and the interpreter's own handler runs them.
- An arena recount during a block reads the running function's variables (vm.live, read by
  crush/vm.py `_live_values`): the same roots the interpreter would present.
State is therefore serialisable at block boundaries, and, because partial blocks run in the
interpreter, a run in fast mode can be paused at any instruction count too; a state saved in
one mode resumes in the other.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from crush import ops
from crush.casm import OPS, Op
from crush.errors import GuestError, TrapError
from crush.ops import IMMEDIATE
from crush.values import UNBOUND, Function, RangeIter, SeqIter
from crush.vm import (
    BINARY_FUNCTIONS,
    MAX_FRAMES,
    NATIVE_ERRORS,
    SLOW,
    UNARY_FUNCTIONS,
    VM,
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
    unbound_cell,
    unbound_local,
)

SWITCH = 0      # the generated function returned: re-dispatch on the top frame
INTERPRET = 1   # ... and the interpreter must run the block at frame.pc
_INT_OPS = {Op.ADD: "+", Op.IADD: "+", Op.SUB: "-", Op.MUL: "*", Op.FLOORDIV: "//", Op.MOD: "%",
            Op.BITAND: "&", Op.BITOR: "|", Op.BITXOR: "^"}
_COMPARE = {Op.EQ: "==", Op.NE: "!=", Op.LT: "<", Op.LE: "<=", Op.GT: ">", Op.GE: ">="}
_BUILDERS = {Op.BUILD_LIST: ("build_list", 1), Op.BUILD_TUPLE: ("build_tuple", 1), Op.BUILD_DICT: ("build_dict", 2),
             Op.BUILD_STRING: ("build_string", 1)}
# instructions run by the interpreter's handler after the state is written back (they end blocks)
_HANDLED = {Op.CALL, Op.CALL_KW, Op.CALL_METHOD, Op.CALL_METHOD_KW, Op.RETURN, Op.CAP, Op.NEXT, Op.IN, Op.NOT_IN,
            Op.IOR, Op.RAISE_CURRENT}


class Compiled:
    """A function compiled to Python: `fn(vm, frame, limit)` returns SWITCH or INTERPRET."""
    __slots__ = ("code", "fn", "line2pc", "source", "starts")

    def __init__(self, code: Code, fn: Callable[[VM, Frame, int], int], source: str, line2pc: list[int],
                 starts: frozenset[int]) -> None:
        self.code = code
        self.fn = fn
        self.source = source
        self.line2pc = line2pc
        self.starts = starts


NEST = 32      # calls run nested in the caller's generated code up to this depth, then by the trampoline


def run_fast(vm: VM, limit: int, floor: int = 0) -> None:
    """Run in fast mode until the run stops, `vm.steps` reaches `limit`, or only `floor`
    frames are left (a call run nested by its caller's generated code returned)."""
    frames = vm.frames
    while len(frames) > floor and not vm.halt:
        if vm.steps >= limit:
            vm.status = Status.PAUSED
            return
        frame = frames[-1]
        code = frame.code
        compiled = code.fast
        if compiled is None:
            compiled = code.fast = compile_code(code, vm.metering)
        try:
            r = compiled.fn(vm, frame, limit)
        except (GuestError, TrapError, *NATIVE_ERRORS) as e:
            vm.fault(e)
            continue
        if r == INTERPRET:
            vm.careful(limit)


# ----------------------------------------------------------------------------------------------
# Code generation


class _Gen:
    def __init__(self, code: Code, metering: bool) -> None:
        self.code = code
        self.metering = metering
        self.names: dict[str, Any] = {}
        self.ids: dict[int, str] = {}
        self.lines: list[tuple[int, str, int]] = []  # (indent, text, pc)
        self.deleted = {arg for op, arg, _, _ in code.instrs if op == Op.DELETE_LOCAL}
        self.after: list[int] = [0] * len(code.instrs)  # instructions after each one in its block

    def const(self, value: Any) -> str:
        """The generated name under which `value` is passed to the generated code."""
        name = self.ids.get(id(value))
        if name is None:
            name = self.ids[id(value)] = f"K{len(self.ids)}"
            self.names[name] = value
        return name

    def emit(self, indent: int, text: str, pc: int = -1) -> None:
        self.lines.append((indent, text, pc))


def _slots(first: int, last: int) -> str:
    return ", ".join(f"S{i}" for i in range(first, last))


def _tuple_of(names: list[str]) -> str:
    return "(" + "".join(f"{n}, " for n in names) + ")"


def compile_code(code: Code, metering: bool) -> Compiled:
    g = _Gen(code, metering)
    instrs = code.instrs
    depths = code.depths
    n = len(instrs)
    every = sorted(code.starts)
    blocks = [s for s in every if depths[s] >= 0]  # a block starting unreachable is never entered
    ends = dict(zip(every, [*every[1:], n], strict=True))
    for s in blocks:
        for pc in range(s, ends[s]):
            g.after[pc] = ends[s] - 1 - pc
    locals_tuple = _tuple_of([f"L{i}" for i in range(code.nlocals)])
    max_depth = code.max_depth

    def write_back(ind: int, depth: int, pc: int) -> None:
        if code.nlocals:
            g.emit(ind, f"fl[:] = {locals_tuple}", pc)
        g.emit(ind, f"fs[:] = {_tuple_of([f'S{i}' for i in range(depth)])}", pc)

    g.emit(0, "def fast(vm, frame, limit):")
    g.emit(1, "fl = frame.locals")
    g.emit(1, "fs = frame.stack")
    g.emit(1, "C = frame.cells")
    g.emit(1, "G = vm.globals")
    g.emit(1, "frames = vm.frames")
    g.emit(1, "here = len(frames)")
    g.emit(1, "ARENA = vm.arena")
    g.emit(1, "st = vm.steps")
    if metering:
        g.emit(1, "gas = vm.gas")
    if code.nlocals:
        g.emit(1, f"{_tuple_of([f'L{i}' for i in range(code.nlocals)])} = fl")
    if max_depth:
        g.emit(1, "if fs:")
        g.emit(2, f"{_tuple_of([f'S{i}' for i in range(max_depth)])} = (fs + PAD)[:{max_depth}]")
        g.emit(1, "else:")
        g.emit(2, " = ".join(f"S{i}" for i in range(max_depth)) + " = None")
    g.emit(1, "b = frame.pc")
    g.emit(1, "if b not in STARTS:")
    g.emit(2, "return 1")
    g.emit(1, "live = (frame, _getframe(), LINE2PC)")
    g.emit(1, "vm.live = live")
    g.emit(1, "try:")
    g.emit(2, "while True:")

    def block(start: int, ind: int) -> None:
        end = ends[start]
        cost = instrs[start][2]
        count = end - start
        if g.metering:
            g.emit(ind, f"if gas < {cost} or st + {count} > limit:", start)
            g.emit(ind + 1, "vm.gas = gas", start)
        else:
            g.emit(ind, f"if st + {count} > limit:", start)
        write_back(ind + 1, depths[start], start)
        g.emit(ind + 1, f"frame.pc = {start}", start)
        g.emit(ind + 1, "vm.steps = st", start)
        g.emit(ind + 1, "return 1", start)
        if g.metering:
            g.emit(ind, f"gas -= {cost}", start)
        g.emit(ind, f"st += {count}", start)
        for pc in range(start, end):
            rest = instrs[pc][3]
            _instruction(g, pc, ind, rest, write_back)
        if OPS[instrs[end - 1][0]].flow not in ("jump", "end"):
            g.emit(ind, f"b = {end}", end - 1)
            g.emit(ind, "continue", end - 1)

    def tree(lo: int, hi: int, ind: int) -> None:
        if hi - lo <= 4:
            for i in range(lo, hi):
                g.emit(ind, f"{'if' if i == lo else 'elif'} b == {blocks[i]}:")
                block(blocks[i], ind + 1)
            g.emit(ind, "else:")
            g.emit(ind + 1, "raise AssertionError(f'no block at {b}')")
            return
        mid = (lo + hi) // 2
        g.emit(ind, f"if b < {blocks[mid]}:")
        tree(lo, mid, ind + 1)
        g.emit(ind, "else:")
        tree(mid, hi, ind + 1)

    tree(0, len(blocks), 3)
    g.emit(1, "except (GuestError, TrapError, *NATIVE_ERRORS) as e:")
    g.emit(2, "pc = LINE2PC[e.__traceback__.tb_lineno]")
    if code.nlocals:
        g.emit(2, f"fl[:] = {locals_tuple}")
    if max_depth:
        g.emit(2, f"fs[:] = {_tuple_of([f'S{i}' for i in range(max_depth)])}[:DEPTHS[pc]]")
    else:
        g.emit(2, "fs.clear()")
    g.emit(2, "frame.pc = pc + 1")
    g.emit(2, "vm.steps = st - AFTER[pc]")
    g.emit(2, "raise")
    g.emit(1, "finally:")
    g.emit(2, "vm.live = None")

    source_lines = ["    " * ind + text for ind, text, _ in g.lines]
    source = "\n".join(source_lines) + "\n"
    line2pc = [-1] + [pc for _, _, pc in g.lines]
    namespace: dict[str, Any] = {
        **g.names, "PAD": [None] * max_depth, "STARTS": frozenset(blocks), "LINE2PC": line2pc,
        "DEPTHS": depths, "AFTER": g.after, "_getframe": sys._getframe, "UNBOUND": UNBOUND,
        "IMM": IMMEDIATE, "RangeIter": RangeIter, "SeqIter": SeqIter, "GuestError": GuestError,
        "TrapError": TrapError, "NATIVE_ERRORS": NATIVE_ERRORS, "CODE": code, "unbound_local": unbound_local,
        "unbound_cell": unbound_cell, "load_global": load_global, "store_global": store_global,
        "delete_global": delete_global, "make_cell": make_cell, "make_function": make_function,
        "build_list": build_list, "build_tuple": build_tuple, "build_dict": build_dict,
        "build_string": build_string, "format_with": format_with, "exc_match": exc_match,
        "raise_value": raise_value, "reraise_value": reraise_value, "is_": ops.is_,
        "store_index": ops.store_index, "delete_index": ops.delete_index, "slice_of": ops.slice_of,
        "get_iter": ops.get_iter, "run_fast": run_fast, "NEST": NEST, "Function": Function, "Frame": Frame,
        "MAX_FRAMES": MAX_FRAMES,
    }
    exec(compile(source, f"<crush fast {code.unit}:{code.qualname}>", "exec"), namespace)  # noqa: S102 - generated from verified CASM only
    compiled = Compiled(code, namespace["fast"], source, line2pc, frozenset(blocks))
    return compiled


def _instruction(g: _Gen, pc: int, ind: int, rest: int,  # one arm per opcode
                 write_back: Callable[[int, int, int], None]) -> None:
    """Python lines doing instruction `pc` at indentation `ind` (`rest`: the static gas of the
    block's instructions after it)."""
    code = g.code
    op: Any = code.instrs[pc][0]
    arg = code.instrs[pc][1]
    d = code.depths[pc]

    def line(text: str, extra: int = 0) -> None:
        g.emit(ind + extra, text, pc)

    def helper(target: str | None, call: str, extra: int = 0) -> None:
        """A call that may charge gas dynamically or raise. It runs with vm.gas set to the
        interpreter's gas at this instruction (the block's unexecuted rest credited back); if
        after it the rest cannot be paid, the interpreter takes over at the next instruction
        (and traps where it would)."""
        if g.metering:
            line(f"vm.gas = gas + {rest}" if rest else "vm.gas = gas", extra)
        line(f"{target} = {call}" if target else call, extra)
        if g.metering and not call.startswith("raise "):
            line(f"gas = vm.gas - {rest}" if rest else "gas = vm.gas", extra)
            if rest:
                line("if gas < 0:", extra)
                line(f"vm.gas = gas + {rest}", extra + 1)
                write_back(ind + extra + 1, code.depths[pc + 1], pc)
                line(f"frame.pc = {pc + 1}", extra + 1)
                line(f"vm.steps = st - {g.after[pc]}", extra + 1)
                line("return 1", extra + 1)

    def handled(extra: int = 0) -> None:
        """Write the state back and let the interpreter's handler run the instruction."""
        name = f"H{pc}"
        g.names[name] = SLOW[op]
        g.names[f"A{pc}"] = arg
        write_back(ind + extra, d, pc)
        line(f"frame.pc = {pc + 1}", extra)
        line("vm.steps = st", extra)
        if g.metering:
            line("vm.gas = gas", extra)
        line("vm.live = None", extra)
        line(f"{name}(vm, frame, A{pc})", extra)
        after_call(extra, op != Op.RETURN)

    def after_call(extra: int, nested: bool) -> None:
        """After an instruction that may have pushed a frame: run it here (nested) unless the
        nesting is deep, then continue if this frame is on top again."""
        if nested:
            line("if len(frames) > here and vm.fast_nest < NEST and not vm.halt:", extra)
            line("vm.fast_nest += 1", extra + 1)
            line("try:", extra + 1)
            line("run_fast(vm, limit, here)", extra + 2)
            line("finally:", extra + 1)
            line("vm.fast_nest -= 1", extra + 2)
        line("if vm.halt or frames[-1] is not frame:", extra)
        line("return 0", extra + 1)
        line("vm.live = live", extra)
        line("st = vm.steps", extra)
        if g.metering:
            line("gas = vm.gas", extra)
        results = {Op.CALL: arg, Op.CALL_KW: arg[0] if isinstance(arg, tuple) else 0}.get(op)
        if results is not None and pc + 1 < len(code.instrs) and code.depths[pc + 1] >= 0:
            # a call's usual end: back at pc + 1 with one value where its operands were
            line(f"if frame.pc == {pc + 1}:", extra)
            line(f"S{code.depths[pc + 1] - 1} = fs[-1]", extra + 1)
            line(f"b = {pc + 1}", extra + 1)
            line("continue", extra + 1)
        if code.max_depth:
            line(f"{_tuple_of([f'S{j}' for j in range(code.max_depth)])} = (fs + PAD)[:{code.max_depth}]", extra)
        line("b = frame.pc", extra)
        line("continue", extra)

    def guest_call(argc: int) -> None:
        """CALL of a guest function with exactly its parameters and no cells: the frame is made
        here (as the interpreter's inline CALL does), then run nested."""
        f = d - argc - 1
        line(f"f = S{f}")
        line("if type(f) is Function:")
        line("c = f.code", 1)
        line("size = ARENA.allocated + c.frame_bytes", 1)
        line(f"if c.nparams == {argc} and not c.ncells and not f.cells and len(frames) < MAX_FRAMES "
             "and size <= ARENA.budget and c.native is None:", 1)  # (a native function: VM.call runs it in Wasm)
        line("ARENA.allocated = size", 2)
        write_back(ind + 2, f, pc)
        line(f"frame.pc = {pc + 1}", 2)
        line("vm.steps = st", 2)
        if g.metering:
            line("vm.gas = gas", 2)
        line("vm.live = None", 2)
        args = _tuple_of([f"S{j}" for j in range(f + 1, d)])
        line(f"frames.append(Frame(c, [*{args}, *c.unbound_tail], []))", 2)
        after_call(2, True)
        handled()

    if op == Op.CALL:
        guest_call(arg)
    elif op == Op.RETURN:
        line("if len(frames) > 1:")
        line("frames.pop()", 1)
        line(f"frames[-1].stack.append(S{d - 1})", 1)
        line("vm.steps = st", 1)
        if g.metering:
            line("vm.gas = gas", 1)
        line("return 0", 1)
        handled()
    elif op in _HANDLED:
        handled()
    elif op in (Op.NOP, Op.POP):
        line("pass")
    elif op == Op.DUP:
        line(f"S{d} = S{d - 1}")
    elif op == Op.SWAP:
        line(f"S{d - 1}, S{d - 2} = S{d - 2}, S{d - 1}")
    elif op in (Op.LOAD_CONST, Op.LOAD_BUILTIN):
        line(f"S{d} = {g.const(arg)}")
    elif op == Op.LOAD_LOCAL:
        line(f"S{d} = L{arg}")
        if arg >= code.nparams or arg in g.deleted:
            line(f"if S{d} is UNBOUND:")
            helper(None, f"raise unbound_local(CODE, {arg})", 1)
    elif op == Op.STORE_LOCAL:
        line(f"L{arg} = S{d - 1}")
    elif op == Op.DELETE_LOCAL:
        line(f"L{arg} = UNBOUND")
    elif op == Op.LOAD_DEREF:
        line(f"S{d} = C[{arg}].value")
        line(f"if S{d} is UNBOUND:")
        helper(None, f"raise unbound_cell(CODE, {arg})", 1)
    elif op == Op.STORE_DEREF:
        line(f"C[{arg}].value = S{d - 1}")
    elif op == Op.DELETE_DEREF:
        line(f"C[{arg}].value = UNBOUND")
    elif op == Op.MAKE_CELL:
        helper(None, f"make_cell(vm, C, {arg})")
    elif op == Op.LOAD_CELL:
        line(f"S{d} = C[{arg}]")
    elif op == Op.LOAD_GLOBAL:
        name = g.const(arg)
        line(f"S{d} = G.get({name}, UNBOUND)")
        line(f"if S{d} is UNBOUND:")
        helper(f"S{d}", f"load_global(vm, {name})", 1)
    elif op == Op.STORE_GLOBAL:
        helper(None, f"store_global(vm, {g.const(arg)}, S{d - 1})")
    elif op == Op.DELETE_GLOBAL:
        helper(None, f"delete_global(vm, {g.const(arg)})")
    elif op == Op.JUMP:
        line(f"b = {arg}")
        line("continue")
    elif op in (Op.JUMP_IF_FALSE, Op.JUMP_IF_FALSE_OR_POP):
        line(f"if not S{d - 1}:")
        line(f"b = {arg}", 1)
        line("continue", 1)
    elif op in (Op.JUMP_IF_TRUE, Op.JUMP_IF_TRUE_OR_POP):
        line(f"if S{d - 1}:")
        line(f"b = {arg}", 1)
        line("continue", 1)
    elif op == Op.FOR_ITER:
        line(f"it = S{d - 1}")
        line("if type(it) is RangeIter and it.left > 0 and -IMM <= it.cur <= IMM:")
        line(f"S{d} = it.cur", 1)
        line("it.cur += it.step", 1)
        line("it.left -= 1", 1)
        line("elif type(it) is RangeIter and it.left <= 0:")
        line(f"b = {arg}", 1)
        line("continue", 1)
        line("elif type(it) is SeqIter and it.i < len(it.seq):")
        line(f"S{d} = it.seq[it.i]", 1)
        line("it.i += 1", 1)
        line("else:")
        handled(1)
    elif op in (Op.NOT, Op.TRUTH):
        line(f"S{d - 1} = {'not' if op == Op.NOT else 'bool'}(S{d - 1})")
    elif op in UNARY_FUNCTIONS:
        fn = g.const(UNARY_FUNCTIONS[op])
        helper(f"S{d - 1}", f"{fn}(vm, S{d - 1})")
    elif op in _INT_OPS:
        guard = " and y" if op in (Op.FLOORDIV, Op.MOD) else ""
        line(f"x = S{d - 2}")
        line(f"y = S{d - 1}")
        line(f"if type(x) is int and type(y) is int{guard} and -IMM <= (r := x {_INT_OPS[op]} y) <= IMM:")
        line(f"S{d - 2} = r", 1)
        line("else:")
        if op == Op.IADD:
            handled(1)
        else:
            helper(f"S{d - 2}", f"{g.const(BINARY_FUNCTIONS[op])}(vm, x, y)", 1)
    elif op in _COMPARE:
        line(f"x = S{d - 2}")
        line(f"y = S{d - 1}")
        line("if type(x) is int and type(y) is int:")
        line(f"S{d - 2} = x {_COMPARE[op]} y", 1)
        line("else:")
        helper(f"S{d - 2}", f"{g.const(BINARY_FUNCTIONS[op])}(vm, x, y)", 1)
    elif op in (Op.IS, Op.IS_NOT):
        line(f"S{d - 2} = {'not ' if op == Op.IS_NOT else ''}is_(S{d - 2}, S{d - 1})")
    elif op == Op.INDEX:
        line(f"x = S{d - 2}")
        line(f"y = S{d - 1}")
        line("if type(x) is list and type(y) is int and -len(x) <= y < len(x):")
        line(f"S{d - 2} = x[y]", 1)
        line("else:")
        helper(f"S{d - 2}", f"{g.const(BINARY_FUNCTIONS[op])}(vm, x, y)", 1)
    elif op in BINARY_FUNCTIONS:  # TRUEDIV, POW, LSHIFT, RSHIFT, IMUL
        helper(f"S{d - 2}", f"{g.const(BINARY_FUNCTIONS[op])}(vm, S{d - 2}, S{d - 1})")
    elif op in _BUILDERS:
        fn, per = _BUILDERS[op]
        k = per * arg
        helper(f"S{d - k}", f"{fn}(vm, [{_slots(d - k, d)}])")
    elif op == Op.FORMAT:
        helper(f"S{d - 1}", f"format_with(vm, {arg[0]}, S{d - 1}, {g.const(arg[1])})")
    elif op == Op.FORMAT_SPEC:
        helper(f"S{d - 2}", f"format_with(vm, {arg}, S{d - 2}, S{d - 1})")
    elif op == Op.STORE_INDEX:
        helper(None, f"store_index(vm, S{d - 2}, S{d - 1}, S{d - 3})")
    elif op == Op.DELETE_INDEX:
        helper(None, f"delete_index(vm, S{d - 2}, S{d - 1})")
    elif op == Op.SLICE:
        helper(f"S{d - 4}", f"slice_of(vm, S{d - 4}, S{d - 3}, S{d - 2}, S{d - 1})")
    elif op == Op.UNPACK:
        line(f"x = S{d - 1}")
        line(f"if (type(x) is tuple or type(x) is list) and len(x) == {arg}:")
        targets = ", ".join(f"S{d - 1 + j}" for j in range(arg - 1, -1, -1))
        line(f"{targets}{',' if arg == 1 else ''} = x" if arg else "pass", 1)
        line("else:")
        handled(1)
    elif op == Op.MAKE_FUNCTION:
        k = arg.ndefaults + arg.nfree
        helper(f"S{d - k}", f"make_function(vm, {g.const(arg)}, [{_slots(d - k, d)}])")
    elif op == Op.RAISE:
        helper(None, f"raise_value(S{d - 1})")
    elif op == Op.RERAISE:
        helper(None, f"reraise_value(S{d - 1})")
    elif op == Op.EXC_MATCH:
        helper(f"S{d - 1}", f"exc_match(vm, S{d - 2}, S{d - 1})")
    else:  # pragma: no cover - every opcode has an arm above
        raise AssertionError(f"fast mode has no code for {OPS[op].name}")
