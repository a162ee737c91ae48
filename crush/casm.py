"""CASM, the CRUSH bytecode: its instruction set, its programs, their text and binary forms.

A *program* is a constant pool, a function table (function 0 is the module body), the file name
of its source and the capabilities it declares. A *function* is a list of instructions with an
exception-handler table and a line table. An *instruction* is an opcode and its operands; every
operand is a non-negative integer whose meaning is the operand's kind (`Operand`): an index into
the constant pool, a local slot, a cell, a function, a declared capability, an instruction index
(jumps), or a count. Instructions are addressed by their index in their function, so every jump
target inside the function is on an instruction boundary by construction.

`OPS` is the instruction set: for each opcode its number, operand kinds, stack effect and static
gas cost (the gas table's fixed part, see crush/gas.py for the dynamic part). The verifier
(crush/verify.py) and the compiler derive stack depths from `stack_effect`; the VM never checks
what the verifier proved.

Two forms, both lossless:
- text (`disassemble` / `assemble`): one directive or instruction per line, `;` comments; the
  assembler also accepts labels and literal constants, which makes hand-written CASM readable;
  `assemble(disassemble(p)) == p` for every program.
- binary (`encode` / `decode`): magic `CASM`, a version byte, LEB128 integers, and the SHA-256
  of everything before it. The encoding is canonical (one program, one byte string: `decode`
  re-encodes and refuses anything else), so the program hash is the SHA-256 of the canonical
  body. `decode` treats its input as hostile: every count and size is bounded, every field is
  checked, and any defect raises one `CasmError` naming where it is.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import re
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from crush.cast import CAPABILITIES

CASM_VERSION = 1
MAGIC = b"CASM"

# Bounds of a well-formed program (the decoder and the verifier enforce them).
MAX_FILE_BYTES = 64 << 20
MAX_CONSTS = 1 << 20
MAX_FUNCS = 1 << 16
MAX_CODE = 1 << 20          # instructions per function
MAX_LOCALS = 1 << 16
MAX_CELLS = 1 << 16
MAX_STACK = 1 << 12         # operand stack depth per frame (verified)
MAX_HANDLERS = 1 << 16
MAX_STR_BYTES = 16 << 20
MAX_INT_BYTES = 1 << 16     # a constant integer of up to 524,288 bits
MAX_NAMES = 256             # names in a keyword-names constant
MAX_COUNT = 1 << 16         # count operands (arguments, items)

# How many arguments each capability takes (min, max): CAP's COUNT operand must fit.
CAP_ARITY: dict[str, tuple[int, int]] = {
    "fs.read": (1, 1), "fs.list": (1, 1), "fs.write": (2, 2), "fs.stat": (1, 1), "log": (1, 1),
    "clock": (0, 0), "sleep": (1, 1), "yield": (0, 0), "random": (0, 0), "control.status": (0, 2),
    "stdin.read": (0, 0), "proc.list": (0, 0), "tty.info": (0, 0), "tty.key": (1, 1),
}
assert set(CAP_ARITY) == set(CAPABILITIES), "an arity for every capability of the CAST contract"


class CasmError(ValueError):
    """A program that cannot be read: malformed text or bytes. The message says where."""


class Operand(enum.StrEnum):
    """The kind of an operand: what the integer indexes or counts."""
    CONST = "const"     # constant pool index of a value constant (None, bool, int, float, str)
    NAME = "name"       # constant pool index of a str (a global, builtin or method name; a format spec)
    NAMES = "names"     # constant pool index of a Names constant (keyword argument names)
    LOCAL = "local"     # local slot of the function
    CELL = "cell"       # cell of the frame: the function's own cells, then its free (captured) ones
    FUNC = "func"       # function table index
    JUMP = "jump"       # instruction index in the same function
    COUNT = "count"     # a count of stack items
    CAP = "cap"         # index into the program's declared capabilities
    CONV = "conv"       # a conversion: 0 none, 1 repr(), 2 str()


@dataclass(frozen=True)
class OpSpec:
    code: int
    name: str
    operands: tuple[Operand, ...]
    gas: int             # static cost, charged before the instruction runs
    doc: str
    flow: str = ""       # "" falls through; "jump" always jumps; "branch" may jump; "end" ends the function
    calls: bool = False  # may push a frame (a guest call, or a builtin that continues in prelude code)


class Op(enum.IntEnum):
    """Opcode numbers (stable: part of the binary format's version)."""
    NOP = 0
    POP = 1
    DUP = 2
    SWAP = 3
    LOAD_CONST = 4
    LOAD_LOCAL = 5
    STORE_LOCAL = 6
    DELETE_LOCAL = 7
    LOAD_DEREF = 8
    STORE_DEREF = 9
    DELETE_DEREF = 10
    MAKE_CELL = 11
    LOAD_CELL = 12
    LOAD_GLOBAL = 13
    STORE_GLOBAL = 14
    DELETE_GLOBAL = 15
    LOAD_BUILTIN = 16
    JUMP = 17
    JUMP_IF_FALSE = 18
    JUMP_IF_TRUE = 19
    JUMP_IF_FALSE_OR_POP = 20
    JUMP_IF_TRUE_OR_POP = 21
    GET_ITER = 22
    FOR_ITER = 23
    NEXT = 24
    NEG = 25
    POS = 26
    INVERT = 27
    NOT = 28
    TRUTH = 29
    ADD = 30
    SUB = 31
    MUL = 32
    TRUEDIV = 33
    FLOORDIV = 34
    MOD = 35
    POW = 36
    LSHIFT = 37
    RSHIFT = 38
    BITAND = 39
    BITOR = 40
    BITXOR = 41
    IADD = 42
    EQ = 43
    NE = 44
    LT = 45
    LE = 46
    GT = 47
    GE = 48
    IN = 49
    NOT_IN = 50
    IS = 51
    IS_NOT = 52
    BUILD_LIST = 53
    BUILD_TUPLE = 54
    BUILD_DICT = 55
    BUILD_STRING = 56
    FORMAT = 57
    INDEX = 58
    STORE_INDEX = 59
    DELETE_INDEX = 60
    SLICE = 61
    UNPACK = 62
    MAKE_FUNCTION = 63
    CALL = 64
    CALL_KW = 65
    CALL_METHOD = 66
    CALL_METHOD_KW = 67
    RETURN = 68
    RAISE = 69
    RERAISE = 70
    EXC_MATCH = 71
    CAP = 72
    IMUL = 73
    IOR = 74
    FORMAT_SPEC = 75
    RAISE_CURRENT = 76


_O = Operand
_SPECS: tuple[tuple[Op, tuple[Operand, ...], int, str, bool, str], ...] = (
    # op, operands, gas, flow, calls, doc
    (Op.NOP, (), 1, "", False, "do nothing"),
    (Op.POP, (), 1, "", False, "discard the top of the stack"),
    (Op.DUP, (), 1, "", False, "push the top of the stack again"),
    (Op.SWAP, (), 1, "", False, "exchange the two top items"),
    (Op.LOAD_CONST, (_O.CONST,), 1, "", False, "push a constant"),
    (Op.LOAD_LOCAL, (_O.LOCAL,), 1, "", False, "push a local (UnboundLocalError if unbound)"),
    (Op.STORE_LOCAL, (_O.LOCAL,), 1, "", False, "pop into a local"),
    (Op.DELETE_LOCAL, (_O.LOCAL,), 1, "", False, "unbind a local"),
    (Op.LOAD_DEREF, (_O.CELL,), 1, "", False, "push a cell's value (NameError if unbound)"),
    (Op.STORE_DEREF, (_O.CELL,), 1, "", False, "pop into a cell"),
    (Op.DELETE_DEREF, (_O.CELL,), 1, "", False, "unbind a cell"),
    (Op.MAKE_CELL, (_O.CELL,), 2, "", False, "replace one of the frame's own cells by a fresh unbound cell"),
    (Op.LOAD_CELL, (_O.CELL,), 1, "", False, "push the cell itself (to build a closure)"),
    (Op.LOAD_GLOBAL, (_O.NAME,), 2, "", False, "push a global (NameError if unbound)"),
    (Op.STORE_GLOBAL, (_O.NAME,), 2, "", False, "pop into a global"),
    (Op.DELETE_GLOBAL, (_O.NAME,), 2, "", False, "unbind a global"),
    (Op.LOAD_BUILTIN, (_O.NAME,), 1, "", False, "push a builtin function or type (`py.len`)"),
    (Op.JUMP, (_O.JUMP,), 1, "jump", False, "continue at the target"),
    (Op.JUMP_IF_FALSE, (_O.JUMP,), 1, "branch", False, "pop; jump if falsy"),
    (Op.JUMP_IF_TRUE, (_O.JUMP,), 1, "branch", False, "pop; jump if truthy"),
    (Op.JUMP_IF_FALSE_OR_POP, (_O.JUMP,), 1, "branch", False, "if the top is falsy jump (keeping it), else pop"),
    (Op.JUMP_IF_TRUE_OR_POP, (_O.JUMP,), 1, "branch", False, "if the top is truthy jump (keeping it), else pop"),
    (Op.GET_ITER, (), 2, "", False, "replace the top by an iterator over it (iter(x))"),
    (Op.FOR_ITER, (_O.JUMP,), 2, "branch", True,
     "push the iterator's next item; when it is exhausted pop it and jump"),
    (Op.NEXT, (), 2, "", True, "replace an iterator by its next item (StopIteration when exhausted)"),
    (Op.NEG, (), 3, "", False, "-x"),
    (Op.POS, (), 3, "", False, "+x"),
    (Op.INVERT, (), 3, "", False, "~x"),
    (Op.NOT, (), 2, "", False, "not x"),
    (Op.TRUTH, (), 2, "", False, "bool(x)"),
    (Op.ADD, (), 3, "", False, "x + y"),
    (Op.SUB, (), 3, "", False, "x - y"),
    (Op.MUL, (), 5, "", False, "x * y"),
    (Op.TRUEDIV, (), 5, "", False, "x / y"),
    (Op.FLOORDIV, (), 5, "", False, "x // y"),
    (Op.MOD, (), 5, "", False, "x % y"),
    (Op.POW, (), 10, "", False, "x ** y"),
    (Op.LSHIFT, (), 3, "", False, "x << y"),
    (Op.RSHIFT, (), 3, "", False, "x >> y"),
    (Op.BITAND, (), 3, "", False, "x & y"),
    (Op.BITOR, (), 3, "", False, "x | y"),
    (Op.BITXOR, (), 3, "", False, "x ^ y"),
    (Op.IADD, (), 3, "", True, "x += y (a list is extended in place)"),
    (Op.EQ, (), 2, "", False, "x == y"),
    (Op.NE, (), 2, "", False, "x != y"),
    (Op.LT, (), 2, "", False, "x < y"),
    (Op.LE, (), 2, "", False, "x <= y"),
    (Op.GT, (), 2, "", False, "x > y"),
    (Op.GE, (), 2, "", False, "x >= y"),
    (Op.IN, (), 3, "", True, "x in y"),
    (Op.NOT_IN, (), 3, "", True, "x not in y"),
    (Op.IS, (), 2, "", False, "x is y"),
    (Op.IS_NOT, (), 2, "", False, "x is not y"),
    (Op.BUILD_LIST, (_O.COUNT,), 3, "", False, "pop N items into a new list"),
    (Op.BUILD_TUPLE, (_O.COUNT,), 3, "", False, "pop N items into a new tuple"),
    (Op.BUILD_DICT, (_O.COUNT,), 3, "", False, "pop N key, value pairs into a new dict"),
    (Op.BUILD_STRING, (_O.COUNT,), 3, "", False, "pop N strings and concatenate them"),
    (Op.FORMAT, (_O.CONV, _O.NAME), 5, "", False, "format(conv(x), spec)"),
    (Op.INDEX, (), 3, "", False, "x[k]"),
    (Op.STORE_INDEX, (), 3, "", False, "pop v, x, k; x[k] = v"),
    (Op.DELETE_INDEX, (), 3, "", False, "pop x, k; del x[k]"),
    (Op.SLICE, (), 5, "", False, "pop x, lo, hi, step; push x[lo:hi:step]"),
    (Op.UNPACK, (_O.COUNT,), 3, "", True, "replace a sequence of exactly N items by its items (first on top)"),
    (Op.MAKE_FUNCTION, (_O.FUNC,), 8, "", False,
     "pop the function's default values then its free cells; push a function"),
    (Op.CALL, (_O.COUNT,), 10, "", True, "pop N arguments and a callable; push the result"),
    (Op.CALL_KW, (_O.COUNT, _O.NAMES), 12, "", True,
     "as CALL; the last len(NAMES) arguments are passed by keyword"),
    (Op.CALL_METHOD, (_O.NAME, _O.COUNT), 10, "", True, "pop N arguments and a receiver; call its method NAME"),
    (Op.CALL_METHOD_KW, (_O.NAME, _O.COUNT, _O.NAMES), 12, "", True,
     "as CALL_METHOD; the last len(NAMES) arguments are passed by keyword"),
    (Op.RETURN, (), 2, "end", False, "return the top of the stack to the caller"),
    (Op.RAISE, (), 20, "end", False, "raise the exception (or exception type) on the top of the stack"),
    (Op.RERAISE, (), 5, "end", False, "raise the exception on the top of the stack again, traceback kept"),
    (Op.EXC_MATCH, (), 2, "", False, "pop a type; push whether the exception below is an instance of it"),
    (Op.CAP, (_O.CAP, _O.COUNT), 100, "", True, "pop N arguments; call the declared capability"),
    (Op.IMUL, (), 5, "", False, "x *= y (a list is repeated in place)"),
    (Op.IOR, (), 3, "", True, "x |= y (a dict is updated in place)"),
    (Op.FORMAT_SPEC, (_O.CONV,), 5, "", False, "pop a value and a spec string; push format(conv(value), spec)"),
    (Op.RAISE_CURRENT, (), 5, "end", False,
     "raise again the exception being handled in this frame or the nearest caller (RuntimeError if none)"),
)

OPS: dict[int, OpSpec] = {
    op.value: OpSpec(op.value, op.name, operands, gas, doc, flow, calls)
    for op, operands, gas, flow, calls, doc in _SPECS
}
BY_NAME: dict[str, OpSpec] = {spec.name: spec for spec in OPS.values()}
assert len(OPS) == len(Op), "every opcode has a spec"

# ----------------------------------------------------------------------------------------------
# Programs


@dataclass(frozen=True)
class Names:
    """A constant that is a tuple of names (the keyword names of a call)."""
    names: tuple[str, ...]


Const = None | bool | int | float | str | Names


@dataclass(frozen=True)
class Instr:
    op: int
    args: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        spec = OPS.get(self.op)
        return spec.name if spec else f"OP{self.op}"


@dataclass(frozen=True)
class Handler:
    """Exceptions raised by instructions start <= pc < end go to `target`, with the stack cut to
    `depth` items and the exception pushed. The first matching entry of the table wins (the
    compiler lists inner handlers first)."""
    start: int
    end: int
    target: int
    depth: int


@dataclass(frozen=True)
class Function:
    """One function. `varnames` names its locals; the first `nparams` are the parameters, and
    the last `ndefaults` parameters have defaults (given to MAKE_FUNCTION). `cellnames` names its
    cells: the first `ncells` are its own (created empty at each call), the rest are the
    closure's (free variables). `lines` is a run-length line table: entry (pc, line) gives the
    source line of instructions pc.. up to the next entry (0: none). `handling` lists the
    handler bodies, (start, end, local): while pc is in start..end-1 the frame is handling the
    exception held in that local (what a bare `raise` in a function it calls re-raises)."""
    name: str
    qualname: str
    nparams: int
    ndefaults: int
    varnames: tuple[str, ...]
    ncells: int
    cellnames: tuple[str, ...]
    code: tuple[Instr, ...]
    handlers: tuple[Handler, ...] = ()
    lines: tuple[tuple[int, int], ...] = ()
    handling: tuple[tuple[int, int, int], ...] = ()

    @property
    def nlocals(self) -> int:
        return len(self.varnames)

    @property
    def nfree(self) -> int:
        return len(self.cellnames) - self.ncells

    @property
    def params(self) -> tuple[str, ...]:
        return self.varnames[:self.nparams]

    def line_at(self, pc: int) -> int:
        line = 0
        for start, ln in self.lines:
            if start > pc:
                break
            line = ln
        return line


@dataclass(frozen=True)
class Program:
    file: str
    caps: tuple[str, ...]
    consts: tuple[Const, ...]
    funcs: tuple[Function, ...]
    hash: str = field(default="", compare=False)

    def with_hash(self) -> Program:
        return Program(self.file, self.caps, self.consts, self.funcs, program_hash(self))


def program_hash(program: Program) -> str:
    """SHA-256 (hex) of the program's canonical binary body."""
    return hashlib.sha256(_encode_body(program)).hexdigest()


def const_key(value: Const) -> tuple[str, Any]:
    """A key that tells constants apart exactly (1, 1.0 and True differ; so do 0.0 and -0.0)."""
    if isinstance(value, float):
        return ("float", struct.pack(">d", value))
    return (type(value).__name__, value)


# ----------------------------------------------------------------------------------------------
# Stack effects


def stack_effect(instr: Instr, program: Program) -> tuple[int, int, int, int]:
    """(pops, pushes, branch_pops, branch_pushes) of a well-formed instruction: the effect when it
    falls through and when it jumps (the branch pair is (0, 0) for instructions that never jump).
    Operands must already be known to be in range (the verifier checks them first)."""
    op = instr.op
    a = instr.args
    if op in _FIXED:
        pops, pushes = _FIXED[op]
        return pops, pushes, 0, 0
    if op == Op.FOR_ITER:
        return 1, 2, 1, 0
    if op in (Op.JUMP_IF_FALSE, Op.JUMP_IF_TRUE):
        return 1, 0, 1, 0
    if op in (Op.JUMP_IF_FALSE_OR_POP, Op.JUMP_IF_TRUE_OR_POP):
        return 1, 0, 1, 1
    if op == Op.JUMP:
        return 0, 0, 0, 0
    if op in (Op.BUILD_LIST, Op.BUILD_TUPLE, Op.BUILD_STRING):
        return a[0], 1, 0, 0
    if op == Op.BUILD_DICT:
        return 2 * a[0], 1, 0, 0
    if op == Op.UNPACK:
        return 1, a[0], 0, 0
    if op == Op.MAKE_FUNCTION:
        fn = program.funcs[a[0]]
        return fn.ndefaults + fn.nfree, 1, 0, 0
    if op in (Op.CALL, Op.CALL_KW):
        return a[0] + 1, 1, 0, 0
    if op in (Op.CALL_METHOD, Op.CALL_METHOD_KW):
        return a[1] + 1, 1, 0, 0
    if op == Op.CAP:
        return a[1], 1, 0, 0
    raise AssertionError(f"no stack effect for {instr.name}")  # pragma: no cover - every op is listed


_FIXED: dict[int, tuple[int, int]] = {
    Op.NOP: (0, 0), Op.POP: (1, 0), Op.DUP: (1, 2), Op.SWAP: (2, 2),
    Op.LOAD_CONST: (0, 1), Op.LOAD_LOCAL: (0, 1), Op.STORE_LOCAL: (1, 0), Op.DELETE_LOCAL: (0, 0),
    Op.LOAD_DEREF: (0, 1), Op.STORE_DEREF: (1, 0), Op.DELETE_DEREF: (0, 0), Op.MAKE_CELL: (0, 0),
    Op.LOAD_CELL: (0, 1), Op.LOAD_GLOBAL: (0, 1), Op.STORE_GLOBAL: (1, 0), Op.DELETE_GLOBAL: (0, 0),
    Op.LOAD_BUILTIN: (0, 1), Op.GET_ITER: (1, 1), Op.NEXT: (1, 1),
    **{op: (1, 1) for op in (Op.NEG, Op.POS, Op.INVERT, Op.NOT, Op.TRUTH)},
    **{op: (2, 1) for op in (Op.ADD, Op.SUB, Op.MUL, Op.TRUEDIV, Op.FLOORDIV, Op.MOD, Op.POW, Op.LSHIFT,
                             Op.RSHIFT, Op.BITAND, Op.BITOR, Op.BITXOR, Op.IADD, Op.IMUL, Op.IOR,
                             Op.FORMAT_SPEC, Op.EQ, Op.NE, Op.LT,
                             Op.LE, Op.GT, Op.GE, Op.IN, Op.NOT_IN, Op.IS, Op.IS_NOT, Op.INDEX)},
    Op.FORMAT: (1, 1), Op.STORE_INDEX: (3, 0), Op.DELETE_INDEX: (2, 0), Op.SLICE: (4, 1),
    Op.RETURN: (1, 0), Op.RAISE: (1, 0), Op.RERAISE: (1, 0), Op.EXC_MATCH: (2, 2), Op.RAISE_CURRENT: (0, 0),
}


# ----------------------------------------------------------------------------------------------
# Text form


def format_const(value: Const) -> str:
    """A constant as the assembler reads it back (exactly)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return str(value) if value.bit_length() <= 4000 else hex(value)  # CPython caps decimal at 4300 digits
    if isinstance(value, float):
        if math.isnan(value):
            return "nan" if math.copysign(1.0, value) > 0 else "-nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    return "names(" + ", ".join(json.dumps(n) for n in value.names) + ")"


def disassemble(program: Program) -> str:
    """The text form of a program; `assemble` reads it back to an equal program."""
    out = [f".casm {CASM_VERSION}", f".file {json.dumps(program.file)}"]
    out.extend(f".cap {json.dumps(cap)}" for cap in program.caps)
    out.extend(f".const {format_const(c)}  ; #{i}" for i, c in enumerate(program.consts))
    for index, fn in enumerate(program.funcs):
        out.append(f".func {json.dumps(fn.name)} {json.dumps(fn.qualname)} params={fn.nparams} "
                   f"defaults={fn.ndefaults} ncells={fn.ncells}  ; f{index}")
        if fn.varnames:
            out.append("  .locals " + " ".join(json.dumps(n) for n in fn.varnames))
        if fn.cellnames:
            out.append("  .cells " + " ".join(json.dumps(n) for n in fn.cellnames))
        lines = dict(fn.lines)
        for pc, instr in enumerate(fn.code):
            if pc in lines:
                out.append(f"  .line {lines[pc]}")
            text = " ".join([instr.name, *_operand_texts(instr)])
            out.append(f"  {pc:5d}  {text:<28}{_comment(instr, program)}".rstrip())
        out.extend(f"  .handler {h.start} {h.end} {h.target} {h.depth}" for h in fn.handlers)
        out.extend(f"  .handling {s} {e} {slot}" for s, e, slot in fn.handling)
        out.append(".end")
    return "\n".join(out) + "\n"


def _operand_texts(instr: Instr) -> list[str]:
    """Operands as the text form writes them: constant-pool indices as `#k` (a bare number is
    a literal for the assembler), everything else as the number."""
    spec = OPS.get(instr.op)
    kinds = spec.operands if spec and len(spec.operands) == len(instr.args) else ()
    return [f"#{a}" if kind in (Operand.CONST, Operand.NAME, Operand.NAMES) else str(a)
            for kind, a in zip(kinds or (Operand.COUNT,) * len(instr.args), instr.args, strict=True)]


def _comment(instr: Instr, program: Program) -> str:
    spec = OPS.get(instr.op)
    if spec is None:
        return ""
    notes = []
    for kind, arg in zip(spec.operands, instr.args, strict=False):
        if kind in (Operand.CONST, Operand.NAME, Operand.NAMES) and 0 <= arg < len(program.consts):
            text = format_const(program.consts[arg])
            notes.append(text if len(text) <= 40 else text[:37] + "...")
        elif kind == Operand.CAP and 0 <= arg < len(program.caps):
            notes.append(program.caps[arg])
        elif kind == Operand.FUNC and 0 <= arg < len(program.funcs):
            notes.append(program.funcs[arg].qualname)
    return "; " + " ".join(notes) if notes else ""


_TOKEN = re.compile(r'''\s*(?:("(?:[^"\\]|\\.)*")|(names\((?:[^()"]|"(?:[^"\\]|\\.)*")*\))|([^\s"]+))''')
_KEYVAL = re.compile(r"^(params|defaults|ncells)=(.*)$")


def _tokens(text: str, where: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise CasmError(f"{where}: cannot read {text[pos:pos + 20]!r}")
        out.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
    return out


def parse_const(token: str, where: str) -> Const:
    """A literal constant of the text form: None, True, False, an integer, a float (also inf,
    -inf, nan, -nan), a JSON string, or names("a", "b")."""
    if token in ("None", "True", "False"):
        return {"None": None, "True": True, "False": False}[token]
    if token in ("inf", "-inf", "nan", "-nan"):
        return {"inf": math.inf, "-inf": -math.inf, "nan": math.nan, "-nan": -math.nan}[token]
    if token.startswith('"'):
        try:
            value = json.loads(token)
        except ValueError as exc:
            raise CasmError(f"{where}: bad string {token[:40]}") from exc
        if not isinstance(value, str):  # pragma: no cover - the token regex only matches strings
            raise CasmError(f"{where}: bad string {token[:40]}")
        return value
    if token.startswith("names(") and token.endswith(")"):
        inner = token[6:-1].strip()
        names = tuple(str(parse_const(t.rstrip(","), where)) for t in _tokens(inner, where) if t != ",")
        return Names(names)
    if re.fullmatch(r"-?0x[0-9a-f]+", token):
        if len(token) > 2 * MAX_INT_BYTES + 3:
            raise CasmError(f"{where}: integer constant too long")
        return int(token, 16)
    if re.fullmatch(r"[-+]?\d+", token):
        if len(token) > 4300:
            raise CasmError(f"{where}: integer constant too long")
        return int(token)
    try:
        return float(token)
    except ValueError:
        raise CasmError(f"{where}: not a constant: {token[:40]!r}") from None


class _FuncBuilder:
    def __init__(self, header: dict[str, Any]) -> None:
        self.header = header
        self.code: list[tuple[str, list[str], int]] = []  # (opname, operand tokens, source line)
        self.labels: dict[str, int] = {}
        self.lines: list[tuple[int, int]] = []
        self.handlers: list[tuple[list[str], int]] = []
        self.handling: list[tuple[list[str], int]] = []
        self.varnames: list[str] = []
        self.cellnames: list[str] = []


def assemble(text: str) -> Program:
    """Read the text form. Besides what `disassemble` writes, accepts labels (`loop:`), jump and
    handler operands naming labels, literal constants as operands of LOAD_CONST (and of name
    operands: a string; of NAMES operands: names(...)), which are added to the pool, and a
    capability name as a CAP operand. The result carries its hash."""
    file = ""
    caps: list[str] = []
    consts: list[Const] = []
    pool: dict[tuple[str, Any], int] = {}
    funcs: list[_FuncBuilder] = []
    current: _FuncBuilder | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        where = f"line {number}"
        line = _strip_comment(raw).strip()
        if not line:
            continue
        toks = _tokens(line, where)
        head = toks[0]
        if head == ".casm":
            if toks[1:] != [str(CASM_VERSION)]:
                raise CasmError(f"{where}: this assembler reads CASM {CASM_VERSION}")
        elif head == ".file":
            file = str(parse_const(_one(toks, where), where))
        elif head == ".cap":
            caps.append(str(parse_const(_one(toks, where), where)))
        elif head == ".const":
            value = parse_const(_one(toks, where), where)
            pool.setdefault(const_key(value), len(consts))
            consts.append(value)
        elif head == ".func":
            if current is not None:
                raise CasmError(f"{where}: .func inside a function (missing .end)")
            current = _FuncBuilder(_func_header(toks[1:], where))
            funcs.append(current)
        elif head == ".end":
            if current is None:
                raise CasmError(f"{where}: .end outside a function")
            current = None
        elif current is None:
            raise CasmError(f"{where}: instruction outside a function")
        elif head in (".locals", ".cells"):
            names = [str(parse_const(t, where)) for t in toks[1:]]
            (current.varnames if head == ".locals" else current.cellnames).extend(names)
        elif head == ".line":
            n = _int(_one(toks, where), where)
            current.lines.append((len(current.code), n))
        elif head == ".handler":
            if len(toks) != 5:
                raise CasmError(f"{where}: .handler START END TARGET DEPTH")
            current.handlers.append((toks[1:], number))
        elif head == ".handling":
            if len(toks) != 4:
                raise CasmError(f"{where}: .handling START END LOCAL")
            current.handling.append((toks[1:], number))
        elif head.endswith(":") and len(toks) == 1:
            label = head[:-1]
            if label in current.labels:
                raise CasmError(f"{where}: label {label!r} defined twice")
            current.labels[label] = len(current.code)
        else:
            if re.fullmatch(r"\d+", head):  # the index the disassembler writes
                if int(head) != len(current.code):
                    raise CasmError(f"{where}: instruction index {head} where {len(current.code)} is next")
                toks = toks[1:]
                if not toks:
                    raise CasmError(f"{where}: an index without an instruction")
            current.code.append((toks[0], toks[1:], number))
    if current is not None:
        raise CasmError("missing .end at the end of the text")

    def intern(value: Const) -> int:
        key = const_key(value)
        if key not in pool:
            pool[key] = len(consts)
            consts.append(value)
        return pool[key]

    built = [_build_func(fb, caps, consts, intern) for fb in funcs]
    return Program(file, tuple(caps), tuple(consts), tuple(built)).with_hash()


def _strip_comment(line: str) -> str:
    out, quoted, escaped = [], False, False
    for ch in line:
        if quoted:
            escaped = ch == "\\" and not escaped
            if ch == '"' and not escaped:
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == ";":
            break
        out.append(ch)
    return "".join(out)


def _one(toks: list[str], where: str) -> str:
    if len(toks) != 2:
        raise CasmError(f"{where}: {toks[0]} takes one operand")
    return toks[1]


def _int(token: str, where: str) -> int:
    if not re.fullmatch(r"\d{1,9}", token):
        raise CasmError(f"{where}: a non-negative integer is expected, not {token[:20]!r}")
    return int(token)


def _func_header(toks: list[str], where: str) -> dict[str, Any]:
    if len(toks) < 2:
        raise CasmError(f"{where}: .func NAME QUALNAME params=N defaults=N ncells=N")
    header: dict[str, Any] = {"name": str(parse_const(toks[0], where)), "qualname": str(parse_const(toks[1], where)),
                              "params": 0, "defaults": 0, "ncells": 0}
    for tok in toks[2:]:
        kv = _KEYVAL.match(tok)
        if not kv:
            raise CasmError(f"{where}: unknown .func field {tok[:30]!r}")
        header[kv.group(1)] = _int(kv.group(2), where)
    return header


def _build_func(fb: _FuncBuilder, caps: list[str], consts: list[Const],
                intern: Callable[[Const], int]) -> Function:
    code: list[Instr] = []
    for opname, toks, number in fb.code:
        where = f"line {number}"
        spec = BY_NAME.get(opname)
        if spec is None:
            m = re.fullmatch(r"OP(\d{1,3})", opname)
            if not m:
                raise CasmError(f"{where}: unknown instruction {opname[:30]!r}")
            code.append(Instr(int(m.group(1)), tuple(_int(t, where) for t in toks)))
            continue
        if len(toks) != len(spec.operands):
            raise CasmError(f"{where}: {opname} takes {len(spec.operands)} operand(s)")
        args = tuple(_operand(kind, tok, fb, caps, consts, intern, where) for kind, tok in zip(spec.operands, toks,
                                                                                                strict=True))
        code.append(Instr(spec.code, args))
    handlers = tuple(Handler(*(_label(t, fb, f"line {n}") for t in toks)) for toks, n in fb.handlers)
    handling = tuple((_label(toks[0], fb, f"line {n}"), _label(toks[1], fb, f"line {n}"), _int(toks[2], f"line {n}"))
                     for toks, n in fb.handling)
    h = fb.header
    return Function(h["name"], h["qualname"], h["params"], h["defaults"], tuple(fb.varnames), h["ncells"],
                    tuple(fb.cellnames), tuple(code), handlers, tuple(fb.lines), handling)


def _label(tok: str, fb: _FuncBuilder, where: str) -> int:
    if tok in fb.labels:
        return fb.labels[tok]
    return _int(tok, where)


def _operand(kind: Operand, tok: str, fb: _FuncBuilder, caps: list[str], consts: list[Const],  # noqa: PLR0917
             intern: Callable[[Const], int], where: str) -> int:
    if tok.startswith("#"):
        return _int(tok[1:], where)
    if kind == Operand.JUMP:
        return _label(tok, fb, where)
    if kind == Operand.CONST:
        return intern(parse_const(tok, where))
    if kind == Operand.NAME and tok.startswith('"'):
        return intern(parse_const(tok, where))
    if kind == Operand.NAMES and tok.startswith("names("):
        return intern(parse_const(tok, where))
    if kind == Operand.CAP and tok.startswith('"'):
        name = parse_const(tok, where)
        if name not in caps:
            raise CasmError(f"{where}: capability {name!r} is not declared (.cap)")
        return caps.index(str(name))
    return _int(tok, where)


# ----------------------------------------------------------------------------------------------
# Binary form


def encode(program: Program) -> bytes:
    """The canonical binary form: MAGIC, version, body, SHA-256 of everything before it."""
    head = MAGIC + bytes([CASM_VERSION]) + _encode_body(program)
    return head + hashlib.sha256(head).digest()


def _uv(n: int) -> bytes:
    if n < 0:
        raise CasmError(f"cannot encode a negative count {n}")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _str(s: str) -> bytes:
    data = s.encode("utf-8", "surrogatepass")
    return _uv(len(data)) + data


_C_NONE, _C_FALSE, _C_TRUE, _C_INT, _C_NEGINT, _C_FLOAT, _C_STR, _C_NAMES = range(8)


def _encode_const(c: Const) -> bytes:
    if c is None:
        return bytes([_C_NONE])
    if c is True:
        return bytes([_C_TRUE])
    if c is False:
        return bytes([_C_FALSE])
    if isinstance(c, int):
        mag = abs(c)
        data = mag.to_bytes((mag.bit_length() + 7) // 8, "big")
        return bytes([_C_INT if c >= 0 else _C_NEGINT]) + _uv(len(data)) + data
    if isinstance(c, float):
        return bytes([_C_FLOAT]) + struct.pack(">d", c)
    if isinstance(c, str):
        return bytes([_C_STR]) + _str(c)
    return bytes([_C_NAMES]) + _uv(len(c.names)) + b"".join(_str(n) for n in c.names)


def _encode_body(p: Program) -> bytes:
    out = bytearray(_str(p.file))
    out += _uv(len(p.caps))
    for cap in p.caps:
        out += _str(cap)
    out += _uv(len(p.consts))
    for c in p.consts:
        out += _encode_const(c)
    out += _uv(len(p.funcs))
    for fn in p.funcs:
        out += _str(fn.name) + _str(fn.qualname) + _uv(fn.nparams) + _uv(fn.ndefaults)
        out += _uv(len(fn.varnames)) + b"".join(_str(n) for n in fn.varnames)
        out += _uv(fn.ncells) + _uv(len(fn.cellnames)) + b"".join(_str(n) for n in fn.cellnames)
        out += _uv(len(fn.code))
        for ins in fn.code:
            out += _uv(ins.op) + _uv(len(ins.args)) + b"".join(_uv(a) for a in ins.args)
        out += _uv(len(fn.handlers))
        for h in fn.handlers:
            out += _uv(h.start) + _uv(h.end) + _uv(h.target) + _uv(h.depth)
        out += _uv(len(fn.lines))
        for pc, line in fn.lines:
            out += _uv(pc) + _uv(line)
        out += _uv(len(fn.handling))
        for start, end, slot in fn.handling:
            out += _uv(start) + _uv(end) + _uv(slot)
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data, self.pos, self.end = data, pos, end
        self.where = "header"

    def fail(self, what: str) -> CasmError:
        return CasmError(f"bad CASM at byte {self.pos} ({self.where}): {what}")

    def byte(self) -> int:
        if self.pos >= self.end:
            raise self.fail("truncated")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def uv(self, limit: int, what: str) -> int:
        n = shift = 0
        while True:
            b = self.byte()
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
            if shift >= 63:
                raise self.fail(f"{what}: integer too long")
        if n > limit:
            raise self.fail(f"{what} {n} exceeds the limit {limit}")
        return n

    def raw(self, n: int) -> bytes:
        if self.end - self.pos < n:
            raise self.fail("truncated")
        data = self.data[self.pos:self.pos + n]
        self.pos += n
        return data

    def text(self, what: str, limit: int = MAX_STR_BYTES) -> str:
        n = self.uv(min(limit, self.end - self.pos), f"{what} length")
        try:
            return self.raw(n).decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise self.fail(f"{what}: invalid UTF-8") from None

    def count(self, limit: int, what: str, item_bytes: int = 1) -> int:
        """A count of items each taking at least `item_bytes` bytes: bounded by what is left."""
        return self.uv(min(limit, (self.end - self.pos) // item_bytes), what)


def decode(data: bytes) -> Program:
    """Read the binary form. Any defect raises CasmError; the result carries its hash. The body
    must be canonical: `encode(decode(b)) == b`. The program is *not* verified: run
    crush.verify.verify before executing it."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CasmError("CASM input must be bytes")
    data = bytes(data)
    if len(data) > MAX_FILE_BYTES:
        raise CasmError(f"CASM file too large ({len(data)} bytes, limit {MAX_FILE_BYTES})")
    if data[:4] != MAGIC:
        raise CasmError("not a CASM file (bad magic)")
    if len(data) < len(MAGIC) + 1 + 32:
        raise CasmError(f"truncated CASM file ({len(data)} bytes; checksum missing)")
    if data[4] != CASM_VERSION:
        raise CasmError(f"unsupported CASM version {data[4]} (this is {CASM_VERSION})")
    head, digest = data[:-32], data[-32:]
    if hashlib.sha256(head).digest() != digest:
        raise CasmError("CASM checksum mismatch (corrupt or truncated file)")
    r = _Reader(head, 5, len(head))
    file = r.text("file name", 4096)
    r.where = "capabilities"
    caps = tuple(r.text("capability name", 64) for _ in range(r.count(len(CAPABILITIES), "capability count")))
    r.where = "constants"
    consts = tuple(_decode_const(r) for _ in range(r.count(MAX_CONSTS, "constant count")))
    r.where = "functions"
    funcs = tuple(_decode_func(r, i) for i in range(r.count(MAX_FUNCS, "function count", 8)))
    if r.pos != r.end:
        raise r.fail(f"{r.end - r.pos} trailing bytes")
    program = Program(file, caps, consts, funcs)
    body = _encode_body(program)
    if body != head[5:]:
        raise CasmError("CASM body is not in canonical form")
    return Program(file, caps, consts, funcs, hashlib.sha256(body).hexdigest())


def _decode_const(r: _Reader) -> Const:
    tag = r.byte()
    if tag == _C_NONE:
        return None
    if tag in (_C_FALSE, _C_TRUE):
        return tag == _C_TRUE
    if tag in (_C_INT, _C_NEGINT):
        n = r.uv(MAX_INT_BYTES, "integer constant length")
        mag = int.from_bytes(r.raw(n), "big")
        return mag if tag == _C_INT else -mag
    if tag == _C_FLOAT:
        value: float = struct.unpack(">d", r.raw(8))[0]
        return value
    if tag == _C_STR:
        return r.text("string constant")
    if tag == _C_NAMES:
        return Names(tuple(r.text("name", 4096) for _ in range(r.count(MAX_NAMES, "names count"))))
    raise r.fail(f"unknown constant tag {tag}")


def _decode_func(r: _Reader, index: int) -> Function:
    r.where = f"function {index}"
    name = r.text("name", 4096)
    qualname = r.text("qualname", 4096)
    nparams = r.uv(MAX_LOCALS, "parameter count")
    ndefaults = r.uv(nparams, "default count")
    varnames = tuple(r.text("local name", 4096) for _ in range(r.count(MAX_LOCALS, "local count")))
    ncells = r.uv(MAX_CELLS, "own cell count")
    cellnames = tuple(r.text("cell name", 4096) for _ in range(r.count(MAX_CELLS, "cell count")))
    ncode = r.count(MAX_CODE, "instruction count", 2)
    code = []
    for pc in range(ncode):
        r.where = f"function {index} instruction {pc}"
        op = r.uv(255, "opcode")
        nargs = r.uv(3, "operand count")
        code.append(Instr(op, tuple(r.uv((1 << 32) - 1, "operand") for _ in range(nargs))))
    r.where = f"function {index} handlers"
    handlers = tuple(Handler(*(r.uv((1 << 32) - 1, "handler field") for _ in range(4)))
                     for _ in range(r.count(MAX_HANDLERS, "handler count", 4)))
    r.where = f"function {index} line table"
    lines = tuple((r.uv((1 << 32) - 1, "line pc"), r.uv((1 << 32) - 1, "line"))
                  for _ in range(r.count(MAX_CODE, "line entries", 2)))
    r.where = f"function {index} handling table"
    handling = tuple((r.uv((1 << 32) - 1, "start"), r.uv((1 << 32) - 1, "end"), r.uv((1 << 32) - 1, "local"))
                     for _ in range(r.count(MAX_HANDLERS, "handling entries", 3)))
    return Function(name, qualname, nparams, ndefaults, varnames, ncells, cellnames, tuple(code), handlers, lines,
                    handling)


def iter_instructions(program: Program) -> Iterator[tuple[int, int, Instr]]:
    """(function index, pc, instruction) for every instruction of the program."""
    for fi, fn in enumerate(program.funcs):
        for pc, ins in enumerate(fn.code):
            yield fi, pc, ins


def op_names(ops: Iterable[int]) -> list[str]:
    return [OPS[o].name if o in OPS else f"OP{o}" for o in ops]
