"""CASM: the instruction set table, the text form's round trip, the binary form's round trip and
its refusal of hostile bytes."""

from __future__ import annotations

import hashlib
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crush import casm
from crush.casm import CasmError, Instr, Names, Op, Program, assemble, decode, disassemble, encode
from crush.prelude import PRELUDE
from tests.crush.support import CORPUS, compile_source

SAMPLE = """
.casm 1
.file "t.py"
.cap "log"
.func "<module>" "<module>" params=0 defaults=0 ncells=0
  .locals "x"
  .line 3
    LOAD_CONST 12345678901234567890123
    STORE_LOCAL 0
loop:
    LOAD_LOCAL 0
    JUMP_IF_FALSE done
    LOAD_CONST "caf\\u00e9"
    CAP "log" 1
    POP
    LOAD_CONST -0.0
    LOAD_CONST nan
    BUILD_TUPLE 2
    POP
    LOAD_CONST 0
    STORE_LOCAL 0
    JUMP loop
done:
    LOAD_BUILTIN "py.print"
    LOAD_CONST 1
    LOAD_CONST True
    CALL_KW 2 names("sep")
    POP
    LOAD_CONST None
    RETURN
  .handler 2 4 done 0
.end
"""


def programs() -> list[Program]:
    return [PRELUDE, assemble(SAMPLE), *(compile_source(p.read_text(), p.name) for p in CORPUS[:20])]


def test_every_opcode_has_a_spec_and_a_stack_effect() -> None:
    assert sorted(casm.OPS) == list(range(len(Op)))
    for spec in casm.OPS.values():
        args = tuple(1 for _ in spec.operands)
        if spec.code == Op.MAKE_FUNCTION:
            continue
        pops, pushes, bpops, bpushes = casm.stack_effect(Instr(spec.code, args), Program("", (), (), ()))
        assert pops >= 0 and pushes >= 0 and bpops >= 0 and bpushes >= 0, spec.name
        assert spec.gas > 0 or spec.code == Op.NOP or spec.gas == 0


def test_text_round_trip_is_exact() -> None:
    for p in programs():
        text = disassemble(p)
        again = assemble(text)
        assert encode(again) == encode(p)  # (Program equality: NaN constants are never equal)
        assert again.hash == p.with_hash().hash
        assert disassemble(again) == text


def test_binary_round_trip_and_hash() -> None:
    for p in programs():
        data = encode(p)
        assert data[:4] == b"CASM" and data[4] == casm.CASM_VERSION
        q = decode(data)
        assert q.funcs == p.funcs and len(q.consts) == len(p.consts)
        assert q.hash == hashlib.sha256(data[5:-32]).hexdigest() == p.with_hash().hash
        assert encode(q) == data


def test_constants_keep_their_exact_kind() -> None:
    p = assemble(SAMPLE)
    consts = decode(encode(p)).consts
    assert 12345678901234567890123 in consts
    zeros = [c for c in consts if isinstance(c, float) and c == 0.0]
    assert zeros and math.copysign(1.0, zeros[0]) == -1.0
    assert any(isinstance(c, float) and math.isnan(c) for c in consts)
    assert "café" in consts and Names(("sep",)) in consts
    assert True in consts and any(c is True for c in consts) and 1 in consts
    assert sum(1 for c in consts if type(c) is int and c == 1) == 1  # 1 and True are distinct constants


def test_the_hash_changes_with_any_instruction() -> None:
    p = assemble(SAMPLE)
    q = assemble(SAMPLE.replace("LOAD_CONST 0\n", "LOAD_CONST 2\n"))
    assert p.hash != q.hash


@pytest.mark.parametrize(("text", "message"), [
    (".func \"f\" \"f\"\n NOPE\n.end", "unknown instruction"),
    (".func \"f\" \"f\"\n JUMP nowhere\n.end", "a non-negative integer is expected"),
    (".func \"f\" \"f\"\n LOAD_CONST\n.end", "takes 1 operand"),
    (".func \"f\" \"f\"\n CAP \"log\" 0\n.end", "is not declared"),
    (".casm 2", "reads CASM 1"),
    ("NOP", "outside a function"),
    (".func \"f\" \"f\"\n NOP", "missing .end"),
    (".func \"f\" \"f\"\n LOAD_CONST 1e\n.end", "not a constant"),
])
def test_assembler_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(CasmError, match=message):
        assemble(text)


def _valid() -> bytes:
    return encode(assemble(SAMPLE))


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda b: b"XASM" + b[4:], "bad magic"),
    (lambda b: b[:4] + b"\x09" + b[5:], "unsupported CASM version"),
    (lambda b: b[:-1], "checksum"),
    (lambda b: b[:10], "truncated"),
    (lambda b: b"", "bad magic"),
    (lambda b: b[:40] + bytes([b[40] ^ 1]) + b[41:], "checksum"),
])
def test_decode_refuses_damaged_files(mutate: object, message: str) -> None:
    assert callable(mutate)
    with pytest.raises(CasmError, match=message):
        decode(mutate(_valid()))


def _rehash(body: bytes) -> bytes:
    head = b"CASM\x01" + body
    return head + hashlib.sha256(head).digest()


def test_decode_refuses_crafted_bodies_with_a_valid_checksum() -> None:
    body = _valid()[5:-32]
    with pytest.raises(CasmError, match="trailing"):
        decode(_rehash(body + b"\x00"))
    with pytest.raises(CasmError, match=r"truncated|exceeds|limit"):
        decode(_rehash(body[:-3]))
    # a non-minimal LEB128 integer (0 written as 0x80 0x00) decodes to the same program: not canonical
    assert body[0] == 4  # the file name's length ("t.py")
    with pytest.raises(CasmError, match="canonical"):
        decode(_rehash(b"\x84\x00" + body[1:]))
    # counts larger than the file are refused before anything is allocated
    with pytest.raises(CasmError, match="exceeds"):
        decode(_rehash(b"\x00" + b"\x00" + b"\xff\xff\xff\xff\x0f"))


def test_decode_bounds_the_file_size() -> None:
    with pytest.raises(CasmError, match="too large"):
        decode(b"CASM\x01" + bytes(casm.MAX_FILE_BYTES))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_are_a_program_or_one_casm_error(data: bytes) -> None:
    for candidate in (data, b"CASM\x01" + data, _rehash(data)):
        try:
            p = decode(candidate)
        except CasmError:
            continue
        assert encode(p) == candidate


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=0, max_value=255), st.integers(min_value=0, max_value=40))
def test_any_mutation_of_a_valid_body_is_a_program_or_one_casm_error(where: int, value: int, cut: int) -> None:
    body = bytearray(_valid()[5:-32])
    body[where % len(body)] = value
    for candidate in (bytes(body), bytes(body[:len(body) - cut])):
        try:
            decode(_rehash(candidate))
        except CasmError:
            pass
