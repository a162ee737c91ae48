"""The `crush` command (also `python3 -m crush`).

    crush compile prog.py -o prog.casm         walk and compile (also prog.cast.json: a CAST document)
    crush run prog.casm|prog.py|prog.cast.json [--gas N] [--arena 16M] [--grant fs:/data:ro] [--grant log]
              [--seed N] [--fast] [--native] [--checkpoint-at N --state-out state.json]
    crush link lib.rs util.js main.py -o prog.casm   one program from modules in any language (entry last)
    crush disasm prog.casm                     the text form (the input of run/check/disasm too)
    crush check prog.casm                      run the verifier
    crush resume state.json [--grant ...] [--fast] [--checkpoint-at N --state-out state.json]

A checkpoint file is a JSON object holding the program (its canonical CASM, base64) and the VM
state (crush/state.py); `resume` verifies the program and refuses a state that is not its own.
Grants are never in a checkpoint: the host that resumes decides what it grants.

The program's output goes to stdout. Anything that stops a run prints one line on stderr naming
the source file and line (a guest exception: its traceback, as CPython prints it), and the exit
status says what happened (EXIT below).
"""

from __future__ import annotations

import argparse
import base64
import enum
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from crush import cast, jsonio, state
from crush.caps import GrantError, ScopedHost, stdin_reader
from crush.casm import MAGIC, CasmError, Program, assemble, decode, disassemble, encode
from crush.compiler import CompileError, compile_cast
from crush.errors import TrapCode
from crush.link import LinkError, link, split_name
from crush.text import str_value
from crush.verify import VerifyError, verify
from crush.vm import VM, Outcome, Status, prelude

MAX_INPUT = 64 << 20
CHECKPOINT_VERSION = 1


class Exit(enum.IntEnum):
    OK = 0                   # the program finished
    EXCEPTION = 1            # an exception the program did not catch
    USAGE = 2                # bad command line
    INPUT = 3                # the source, CAST, CASM or checkpoint file cannot be read or compiled
    REFUSED = 4              # the verifier refused the program
    OUT_OF_GAS = 5
    ARENA_EXCEEDED = 6
    CAPABILITY_DENIED = 7    # a capability not granted, or a path outside the grants
    STATE_REFUSED = 8        # resume: the state is not this program's, or is damaged
    CHECKPOINT = 9           # stopped at --checkpoint-at (or suspended) and saved to --state-out


_TRAP_EXIT = {TrapCode.OUT_OF_GAS: Exit.OUT_OF_GAS, TrapCode.ARENA_EXCEEDED: Exit.ARENA_EXCEEDED,
              TrapCode.CAPABILITY_DENIED: Exit.CAPABILITY_DENIED, TrapCode.VERIFY_FAILED: Exit.REFUSED,
              TrapCode.STATE_REFUSED: Exit.STATE_REFUSED}


class Failure(Exception):
    def __init__(self, code: Exit, message: str) -> None:
        super().__init__(message)
        self.code = code


def _size(text: str) -> int:
    m = re.fullmatch(r"(\d[\d_]*)([kKmMgG]?)", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 16M, 500000)")
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    return int(m.group(1).replace("_", "")) * scale


def _count(text: str) -> int:
    m = re.fullmatch(r"(\d[\d_]*)([kKmMgG]?)", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"not a count: {text!r} (e.g. 10M, 500000)")
    return int(m.group(1).replace("_", "")) * {"": 1, "k": 10 ** 3, "m": 10 ** 6, "g": 10 ** 9}[m.group(2).lower()]


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_INPUT + 1)
    except OSError as e:
        raise Failure(Exit.INPUT, f"{path}: {e.strerror}") from None
    if len(data) > MAX_INPUT:
        raise Failure(Exit.INPUT, f"{path}: larger than {MAX_INPUT} bytes")
    return data


def load_program(path: str) -> Program:
    """A program from a file: binary CASM, CASM text, Python source, or a CAST document."""
    data = _read(path)
    try:
        if data.startswith(MAGIC):
            return decode(data)
        if path.endswith(".json"):
            doc = jsonio.load(data, MAX_INPUT, cast.MAX_DEPTH + 8, path)
            return compile_cast(doc)
        if path.endswith((".py", ".js", ".rs")):
            from crush.walkers import WalkError, walk_source  # noqa: PLC0415 - tree-sitter only when needed
            try:
                return compile_cast(walk_source(data, os.path.basename(path)))
            except WalkError as e:
                raise Failure(Exit.INPUT, str(e)) from None
        text = data.decode("utf-8")
        if text.lstrip().startswith((".casm", ";")):
            return assemble(text)
    except (CasmError, CompileError, cast.CastError, jsonio.JsonError) as e:
        raise Failure(Exit.INPUT, f"{path}: {e}" if not isinstance(e, CompileError) else str(e)) from None
    except UnicodeDecodeError:
        pass
    raise Failure(Exit.INPUT, f"{path}: not a CASM file, CASM text, source (.py, .js, .rs) or CAST document (.json)")


def _host(grants: Sequence[str]) -> ScopedHost:
    try:
        return ScopedHost.from_grants(grants, log=lambda line: print(f"[log] {line}", file=sys.stderr),
                                      stdin=stdin_reader())
    except GrantError as e:
        raise Failure(Exit.USAGE, str(e)) from None


def _out(text: str) -> None:
    sys.stdout.write(text)


def traceback_text(vm: VM, outcome: Outcome) -> str:
    """A guest exception as CPython prints it (most recent call last)."""
    e = outcome.error
    assert e is not None
    lines = ["Traceback (most recent call last):"]
    for name, line in reversed(e.tb):
        fn, file = split_name(name, vm.program.file)
        if fn == "<link>":  # the linked program's own body: runs the modules, no source line
            continue
        lines.append(f'  File "{file}", line {line}, in {fn}')
    message = str_value(vm, e)
    lines.append(f"{e.etype.name}: {message}" if message else e.etype.name)
    return "\n".join(lines)


def _finish(vm: VM, outcome: Outcome, state_out: str | None, stats: bool) -> Exit:
    """Report how a run stopped; save a checkpoint if it paused or suspended and one is wanted."""
    sys.stdout.flush()
    if stats:
        print(f"crush: {outcome.status.value}: {outcome.steps} instructions, {outcome.gas_used} gas, "
              f"arena {vm.arena.allocated} bytes ({vm.arena.recounts} recounts)", file=sys.stderr)
    if outcome.status == Status.DONE:
        return Exit.OK
    if outcome.status == Status.ERROR:
        print(traceback_text(vm, outcome), file=sys.stderr)
        return Exit.EXCEPTION
    if outcome.status == Status.TRAP:
        assert outcome.trap is not None
        print(f"crush: {outcome.trap}", file=sys.stderr)
        return _TRAP_EXIT[outcome.trap.code]
    assert state_out is not None
    doc = {"crush_checkpoint": CHECKPOINT_VERSION, "casm": base64.b64encode(encode(vm.program)).decode("ascii"),
           "state": state.save(vm)}
    Path(state_out).write_text(jsonio.dump(doc))
    why = f"after {outcome.steps} instructions" if outcome.status == Status.PAUSED else \
        f"suspended in {vm.pending.cap if vm.pending else '?'}"
    print(f"crush: checkpoint saved to {state_out} ({why}, {outcome.gas_used} gas used)", file=sys.stderr)
    return Exit.CHECKPOINT


def _drive(vm: VM, checkpoint_at: int | None, state_out: str | None, stats: bool) -> Exit:
    """Run to the end, sleeping through sleep() and continuing after yield(), unless a
    checkpoint is asked for (then the run stops at the step count, or at a suspension)."""
    while True:
        steps = None if checkpoint_at is None else max(0, checkpoint_at - vm.steps)
        outcome = vm.run(steps)
        if outcome.status == Status.SUSPENDED and state_out is None:
            if outcome.wake is not None and vm.host is not None:
                time.sleep(max(0.0, outcome.wake - vm.host.now()))
            vm.resume_pending()
            continue
        return _finish(vm, outcome, state_out, stats)


def cmd_compile(args: argparse.Namespace) -> Exit:
    program = load_program(args.source)
    out = args.output or str(Path(args.source).with_suffix(".casm"))
    Path(out).write_bytes(encode(program))
    print(f"crush: {out}: {len(program.funcs)} functions, {sum(len(f.code) for f in program.funcs)} instructions, "
          f"capabilities: {', '.join(program.caps) or 'none'}, hash {program.hash[:16]}", file=sys.stderr)
    return Exit.OK


def cmd_link(args: argparse.Namespace) -> Exit:
    try:
        program = link([load_program(m) for m in args.modules])
    except LinkError as e:
        raise Failure(Exit.INPUT, f"link: {e}") from None
    Path(args.output).write_bytes(encode(program))
    print(f"crush: {args.output}: {len(args.modules)} modules, {len(program.funcs)} functions, "
          f"capabilities: {', '.join(program.caps) or 'none'}, hash {program.hash[:16]}", file=sys.stderr)
    return Exit.OK


def cmd_disasm(args: argparse.Namespace) -> Exit:
    sys.stdout.write(disassemble(load_program(args.program)))
    return Exit.OK


def cmd_check(args: argparse.Namespace) -> Exit:
    program = load_program(args.program)
    try:
        facts = verify(program, prelude().names)
    except VerifyError as e:
        print(f"crush: {args.program}: refused: {e}", file=sys.stderr)
        return Exit.REFUSED
    print(f"{args.program}: verified: {len(program.funcs)} functions, "
          f"{sum(len(f.code) for f in program.funcs)} instructions, max stack {max(f.max_depth for f in facts)}, "
          f"capabilities: {', '.join(program.caps) or 'none'}, hash {program.hash}")
    return Exit.OK


def cmd_run(args: argparse.Namespace) -> Exit:
    program = load_program(args.program)
    vm = VM(program, _host(args.grant), gas=args.gas, arena=args.arena, out=_out, seed=args.seed, fast=args.fast,
            native=args.native)
    return _drive(vm, args.checkpoint_at, args.state_out, args.stats)


def cmd_resume(args: argparse.Namespace) -> Exit:
    raw = _read(args.state)
    try:
        doc = jsonio.load(raw, state.MAX_STATE_BYTES + MAX_INPUT, state.MAX_DEPTH + 1, args.state)
        if not isinstance(doc, dict) or doc.get("crush_checkpoint") != CHECKPOINT_VERSION \
                or not isinstance(doc.get("casm"), str):
            raise state.StateError("not a crush checkpoint (crush_checkpoint, casm, state)")
        program = decode(base64.b64decode(doc["casm"], validate=True))
        vm = state.restore(doc.get("state"), program, _host(args.grant), out=_out, fast=args.fast)
    except (jsonio.JsonError, state.StateError, CasmError, ValueError) as e:
        print(f"crush: {args.state}: cannot resume: {e}", file=sys.stderr)
        return Exit.STATE_REFUSED
    if vm.pending is not None:
        if vm.pending.wake is not None and vm.host is not None:
            time.sleep(max(0.0, vm.pending.wake - vm.host.now()))
        vm.resume_pending()
    return _drive(vm, args.checkpoint_at, args.state_out, args.stats)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crush", description="CRUSH: compile, verify and run programs in the "
                                "gas-metered, capability-mediated CRUSH VM.")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compile", help="compile a source (.py, .js, .rs: the walker by extension) or CAST document")
    c.add_argument("source")
    c.add_argument("-o", "--output", help="the .casm file to write (default: the source's name with .casm)")
    c.set_defaults(fn=cmd_compile)
    ln = sub.add_parser("link", help="link modules (sources or CASM; libraries first, the entry last) into one")
    ln.add_argument("modules", nargs="+")
    ln.add_argument("-o", "--output", required=True, help="the .casm file to write")
    ln.set_defaults(fn=cmd_link)
    d = sub.add_parser("disasm", help="print a program's CASM text")
    d.add_argument("program")
    d.set_defaults(fn=cmd_disasm)
    k = sub.add_parser("check", help="run the verifier on a program")
    k.add_argument("program")
    k.set_defaults(fn=cmd_check)

    def running(q: argparse.ArgumentParser) -> None:
        q.add_argument("--grant", action="append", default=[], metavar="CAP",
                       help="grant a capability: fs:ROOT:ro, fs:ROOT:rw, log, clock, sleep, yield, random")
        q.add_argument("--fast", action="store_true", help="fast mode (basic blocks compiled to Python)")
        q.add_argument("--checkpoint-at", type=_count, metavar="N", help="stop after N instructions in all")
        q.add_argument("--state-out", metavar="FILE", help="where to save the checkpoint")
        q.add_argument("--stats", action="store_true", help="print instructions, gas and arena use at the end")

    r = sub.add_parser("run", help="run a program (.casm, CASM text, .py or CAST .json)")
    r.add_argument("program")
    r.add_argument("--gas", type=_count, default=10 ** 9, help="gas limit (default 1G)")
    r.add_argument("--arena", type=_size, default=16 << 20, help="arena budget in bytes (default 16M)")
    r.add_argument("--seed", type=int, default=0, help="seed of the random capability")
    r.add_argument("--native", action="store_true", help="native mode: the integer/loop/function subset compiled "
                   "to WebAssembly and run by wasmtime (crush/wasm.py); the rest in the VM")
    running(r)
    r.set_defaults(fn=cmd_run)
    s = sub.add_parser("resume", help="resume a checkpoint saved by --state-out")
    s.add_argument("state")
    running(s)
    s.set_defaults(fn=cmd_resume)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "checkpoint_at", None) is not None and not args.state_out:
        print("crush: --checkpoint-at needs --state-out", file=sys.stderr)
        return Exit.USAGE
    try:
        return int(args.fn(args))
    except Failure as e:
        print(f"crush: {e}", file=sys.stderr)
        return int(e.code)

