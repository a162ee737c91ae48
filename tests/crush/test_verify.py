"""The verifier: malformed CASM is refused with the offending instruction's index and reason, and
a refused program executes zero instructions (each program below would print first)."""

from __future__ import annotations

import pytest

from crush.casm import MAX_STACK, Function, Handler, Instr, Op, Program, assemble
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
