"""The verifier: malformed CASM is refused with the offending instruction's index and reason, and
a refused program executes zero instructions (each program below would print first)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from crush.casm import MAX_STACK, Function, Handler, Instr, Names, Op, Program, assemble
from crush.errors import TrapCode
from crush.verify import VerifyError, verify
from crush.vm import VM, Status, prelude
from tests.crush.support import CORPUS, compile_source

PRINT_FIRST = """
    LOAD_BUILTIN "py.print"
    LOAD_CONST "executed"
    CALL 1
    POP
"""


def module(body: str, header: str = "", locals_: str = '"x"', extra: str = "") -> str:
    return f"""
.casm 1
.file "bad.py"
{header}
.func "<module>" "<module>" params=0 defaults=0 ncells=0
  .locals {locals_}
{PRINT_FIRST}
{body}
.end
{extra}
"""


# (name, CASM text, function, index of the offending instruction or -1 for a header, reason)
CASES = [
    ("unknown opcode", module("OP250\n LOAD_CONST None\n RETURN"), 0, 4, "unknown opcode 250"),
    ("constant index out of range", module("LOAD_CONST #99\n RETURN"), 0, 4, "constant index 99 out of range"),
    ("local out of range", module("LOAD_LOCAL 7\n RETURN"), 0, 4, "local 7 out of range"),
    ("cell out of range", module("LOAD_DEREF 0\n RETURN"), 0, 4, "cell 0 out of range"),
    ("jump out of range", module("JUMP 4000"), 0, 4, "jump target 4000 outside the function"),
    ("stack underflow", module("POP\n POP\n LOAD_CONST None\n RETURN"), 0, 4, "stack underflow"),
    ("inconsistent depth at a merge", module("""
    LOAD_CONST True
    JUMP_IF_FALSE join
    LOAD_CONST 1
join:
    LOAD_CONST None
    RETURN"""), 0, 7, "disagrees with depth"),
    ("falls off the end", module("LOAD_CONST None\n POP"), 0, 5, "falls off the end"),
    ("undeclared capability", module("CAP 0 0\n RETURN"), 0, 4, "capability 0 is not declared"),
    ("wrong operand count", module("LOAD_CONST\n RETURN").replace("LOAD_CONST\n", "OP4\n"), 0, 4,
     "takes 1 operand"),
    ("unknown builtin", module('LOAD_BUILTIN "py.open"\n RETURN'), 0, 4, "unknown builtin 'py.open'"),
    ("names constant used as a value", module("LOAD_CONST names(\"a\")\n RETURN"), 0, 4, "names tuple"),
    ("handler range outside the function", module("LOAD_CONST None\n RETURN\n .handler 0 99 0 0"), 0, -1,
     "handler range"),
    ("handler consuming below its depth", module("LOAD_CONST None\n RETURN\n .handler 4 6 5 2"), 0, 4,
     "below the depth"),
    ("capability with the wrong arity", module("CAP \"log\" 3\n RETURN", header='.cap "log"'), 0, 4,
     "takes 1..1 arguments"),
    ("unknown capability declared", module("LOAD_CONST None\n RETURN", header='.cap "net.open"'), -1, -1,
     "unknown capability"),
    ("module with parameters", module("LOAD_CONST None\n RETURN").replace("params=0", "params=1"), 0, -1,
     "takes no parameters"),
    ("function index out of range", module("MAKE_FUNCTION 3\n RETURN"), 0, 4, "function index 3"),
]


@pytest.mark.parametrize(("name", "text", "func", "pc", "reason"), CASES, ids=[c[0] for c in CASES])
def test_refused_with_index_and_nothing_executed(name: str, text: str, func: int, pc: int, reason: str) -> None:
    program = assemble(text)
    with pytest.raises(VerifyError) as info:
        verify(program, prelude().names)
    assert (info.value.func, info.value.pc) == (func, pc)
    assert reason in str(info.value)
    out: list[str] = []
    vm = VM(program, out=out.append)
    outcome = vm.run()
    assert outcome.status == Status.TRAP and outcome.trap is not None
    assert outcome.trap.code == TrapCode.VERIFY_FAILED and reason in outcome.trap.message
    assert vm.steps == 0 and outcome.steps == 0 and outcome.gas_used == 0 and out == []


def test_stack_depth_is_bounded() -> None:
    body = "\n".join(["LOAD_CONST 1"] * (MAX_STACK + 1)) + "\nRETURN"
    with pytest.raises(VerifyError, match="stack depth exceeds"):
        verify(assemble(module(body)), prelude().names)


def test_a_make_cell_on_a_free_cell_is_refused() -> None:
    fn = Function("f", "f", 0, 0, (), 0, ("x",), (Instr(Op.MAKE_CELL, (0,)), Instr(Op.LOAD_CONST, (0,)),
                                                  Instr(Op.RETURN)))
    main = Function("<module>", "<module>", 0, 0, (), 0, (), (Instr(Op.LOAD_CONST, (0,)), Instr(Op.RETURN)))
    with pytest.raises(VerifyError, match="captured cell") as info:
        verify(Program("p", (), (None,), (main, fn)), prelude().names)
    assert (info.value.func, info.value.pc) == (1, 0)


def test_handler_target_depths_must_agree() -> None:
    code = (Instr(Op.LOAD_CONST, (0,)), Instr(Op.POP), Instr(Op.LOAD_CONST, (0,)), Instr(Op.RETURN))
    fn = Function("<module>", "<module>", 0, 0, (), 0, (), code, (Handler(0, 2, 2, 0),))
    with pytest.raises(VerifyError, match="disagrees"):
        verify(Program("p", (), (None,), (fn,)), prelude().names)


def test_every_compiled_program_and_the_prelude_verify() -> None:
    for path in CORPUS:
        facts = verify(compile_source(path.read_text(), path.name), prelude().names)
        assert all(f.depths[0] == 0 for f in facts)
    assert prelude().unit.codes


# ----------------------------------------------------------------------------------------------
# A verified program never crashes the VM: random straight-line CASM (with a handler that catches
# everything) runs to an outcome, whatever types its instructions meet.

_BUILTIN_NAMES = ("py.len", "py.print", "py.list", "py.sorted", "py.map", "py.zip", "py.enumerate", "py.ValueError",
                  "py.StopIteration", "crush.apply", "crush.map_next", "crush.enum_count", "crush.sort_by_keys",
                  "crush.iter_parts", "crush.list_from", "crush.dict_update", "crush.kwargs_update",
                  "crush.unpack_error", "py.filter", "py.range", "py.dict", "py.min", "py.sum")
_CONSTS: tuple[object, ...] = (None, 0, 1, -5, 2 ** 70, 1.5, float("nan"), "", "ab", "x", "append", "keys",
                               *_BUILTIN_NAMES, Names(("x",)), Names(("key", "reverse")))
_VALUE_CONSTS = [i for i, c in enumerate(_CONSTS) if not isinstance(c, Names)]
_STR_CONSTS = [i for i, c in enumerate(_CONSTS) if isinstance(c, str)]
_BUILTIN_CONSTS = [i for i, c in enumerate(_CONSTS) if c in _BUILTIN_NAMES]
_NAMES_CONSTS = [i for i, c in enumerate(_CONSTS) if isinstance(c, Names)]
_STRAIGHT = [op for op in Op if op not in (Op.JUMP, Op.JUMP_IF_FALSE, Op.JUMP_IF_TRUE, Op.JUMP_IF_FALSE_OR_POP,
                                           Op.JUMP_IF_TRUE_OR_POP, Op.FOR_ITER, Op.CAP, Op.RETURN, Op.RAISE,
                                           Op.RERAISE)]
_HELPER = Function("h", "h", 1, 1, ("p",), 0, ("c",), (Instr(Op.LOAD_DEREF, (0,)), Instr(Op.LOAD_LOCAL, (0,)),
                                                         Instr(Op.ADD), Instr(Op.RETURN)))


def _operands(draw: st.DrawFn, op: Op) -> tuple[int, ...]:
    from crush.casm import OPS, Operand
    out = []
    for kind in OPS[op].operands:
        if kind == Operand.CONST:
            out.append(draw(st.sampled_from(_VALUE_CONSTS)))
        elif kind == Operand.NAME:
            out.append(draw(st.sampled_from(_BUILTIN_CONSTS if op == Op.LOAD_BUILTIN else _STR_CONSTS)))
        elif kind == Operand.NAMES:
            out.append(draw(st.sampled_from(_NAMES_CONSTS)))
        elif kind in (Operand.LOCAL, Operand.CELL):
            out.append(draw(st.integers(0, 1)))
        elif kind == Operand.FUNC:
            out.append(1)
        elif kind == Operand.CONV:
            out.append(draw(st.integers(0, 2)))
        else:
            out.append(draw(st.integers(0, 3)))
    return tuple(out)


@st.composite
def _straight_programs(draw: st.DrawFn) -> Program:
    from crush.casm import stack_effect
    code: list[Instr] = []
    depth = 0
    shell = Program("r.py", (), tuple(_CONSTS), (_HELPER, _HELPER))  # type: ignore[arg-type]
    for _ in range(draw(st.integers(1, 40))):
        op = draw(st.sampled_from(_STRAIGHT))
        ins = Instr(op, _operands(draw, op))
        if op in (Op.CALL_KW, Op.CALL_METHOD_KW) and ins.args[-2 if op == Op.CALL_KW else 1] < 2:
            continue
        pops, pushes, _, _ = stack_effect(ins, shell)
        if pops > depth:
            continue
        code.append(ins)
        depth += pushes - pops
    n = len(code)
    code += [Instr(Op.LOAD_CONST, (0,)), Instr(Op.RETURN), Instr(Op.POP), Instr(Op.LOAD_CONST, (0,)), Instr(Op.RETURN)]
    handler = (Handler(0, n + 1, n + 2, 0),) if n else ()
    main = Function("<module>", "<module>", 0, 0, ("a", "b"), 2, ("c", "d"), tuple(code), handler, ((0, 1),))
    return Program("r.py", (), tuple(_CONSTS), (main, _HELPER)).with_hash()  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_straight_programs(), st.integers(0, 60))
def test_a_verified_program_never_crashes_the_vm(program: Program, pause: int) -> None:
    from crush import state
    try:
        verify(program, prelude().names)
    except VerifyError:
        assume(False)
    out: list[str] = []
    vm = VM(program, gas=50_000, arena=1 << 20, out=out.append)
    first = vm.run(max_steps=pause)
    if first.status == Status.PAUSED:
        vm = state.loads(state.dumps(vm), program, out=out.append)
    outcome = vm.run()
    assert outcome.status in (Status.DONE, Status.ERROR, Status.TRAP)
    reference = VM(program, gas=50_000, arena=1 << 20, out=list[str]().append).run()
    assert (reference.status, reference.gas_used, reference.steps) == (outcome.status, outcome.gas_used, outcome.steps)
