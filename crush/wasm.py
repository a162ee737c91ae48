"""CASM -> WebAssembly: CRUSH's third execution mode, for the integer/loop/function subset.

`VM(program, native=True)` compiles every *native* function of the program into one WebAssembly
module, run by wasmtime with fuel standing in for gas; the rest of the program (the module body,
everything outside the subset) runs in the VM as before (the interpreter, or fast mode). When the
VM calls a native function whose arguments are machine integers, the call runs in Wasm and its
value comes back to the caller's stack as a builtin's would; otherwise, and whenever the Wasm run
cannot give exactly the VM's answer, the VM runs the call itself.

**The subset.** A function is native when, by an abstract interpretation of its CASM over the
verifier's stack depths, it uses only: integer constants (not bools), locals that are assigned
before they are read, NOP/POP/DUP/SWAP (and BUILD_TUPLE n right before UNPACK n, which is
`a, b = b, a % b`), JUMP, JUMP_IF_FALSE/JUMP_IF_TRUE, the integer operators NEG POS INVERT ADD
IADD SUB MUL FLOORDIV MOD LSHIFT RSHIFT BITAND BITOR BITXOR, the comparisons EQ NE LT LE GT GE
and NOT/TRUTH (their results only as conditions: consumed by a jump or NOT), calls
`LOAD_GLOBAL f ... CALL n` of another native function of n parameters, the builtins abs, min and
max of two integers, and RETURN of an integer; and it has no exception handlers, cells, free
variables or defaults. A function that calls a non-native one is not native (a fixpoint). Python
semantics are kept: floor division and modulo round toward minus infinity, shifts are
arithmetic, comparisons are exact.

**Exactly the VM's answer, or the VM.** Python integers are unbounded and Wasm's are 64 bits:
every operation is checked, and an overflow (or a division by zero, a negative shift count, a
recursion deeper than the VM allows, too little arena for the frames the VM would push) ends the
Wasm run with a *bail*; the VM then runs the same call itself, from the start. Native functions
are pure (locals and arithmetic only), so running a call again changes nothing but gas; the VM
then computes with big integers, or raises ZeroDivisionError, ValueError or RecursionError where
CPython would. At entry the VM's globals are checked: each name a native function calls must
still be bound to the function compiled for it (a program may rebind or delete a name, or call a
function before the one it calls is defined: then the VM runs the call).

**Gas.** A native call gets the VM's gas left as Wasm fuel (wasmtime's deterministic count of
Wasm instructions) and is charged the fuel it used, also for a bail; running out is the VM's
OUT_OF_GAS trap. So a program's gas in this mode is deterministic but not the interpreter's
figure (a CASM instruction costs a few Wasm instructions). A native call is one step of the VM
and cannot be paused or checkpointed in the middle (the VM's state is whole before and after it).
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crush.casm import Op
from crush.errors import TrapCode, TrapError
from crush.values import Function
from crush.vm import MAX_FRAMES, NATIVE_DECLINED

I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1


class Bail(enum.IntEnum):
    """Why a Wasm run gave the call back to the VM (the module's $bail global)."""

    NONE = 0
    OVERFLOW = 1        # a result outside 64 bits: the VM computes it with big integers
    ZERO = 2            # division or modulo by zero: the VM raises ZeroDivisionError
    SHIFT = 3           # a negative shift count: the VM raises ValueError
    DEPTH = 4           # deeper than the VM's frames (MAX_FRAMES) or its arena allow


FALLBACK: Any = NATIVE_DECLINED  # a native call's answer when the VM must run the call itself


# --- which functions are native --------------------------------------------------------------------

INT, COND, FUNC = "int", "cond", "func:"  # a stack slot holds an integer, a condition or a callee ("func:NAME")
BUILTIN = "builtin:"                       # ... or one of BUILTINS ("builtin:abs")
BUILTINS = {"py.abs": ("abs", 1), "py.min": ("min", 2), "py.max": ("max", 2)}  # pure, on integers: key -> (name, argc)
ARITH = {Op.ADD: "add", Op.IADD: "add", Op.SUB: "sub", Op.MUL: "mul", Op.FLOORDIV: "floordiv", Op.MOD: "mod",
         Op.LSHIFT: "lshift", Op.RSHIFT: "rshift", Op.BITAND: "and", Op.BITOR: "or", Op.BITXOR: "xor"}
COMPARE = {Op.EQ: "eq", Op.NE: "ne", Op.LT: "lt_s", Op.LE: "le_s", Op.GT: "gt_s", Op.GE: "ge_s"}
UNARY = {Op.NEG: "neg", Op.POS: "pos", Op.INVERT: "invert"}
BRANCH = {Op.JUMP_IF_FALSE, Op.JUMP_IF_TRUE}


class NotNative(Exception):
    """Why a function is outside the subset (the reason is kept for the report)."""


@dataclass
class Shape:
    """A function's CASM as the abstract interpretation saw it: the kind of every stack slot before
    each instruction, the global names it calls (with their arities), and its basic blocks."""

    kinds: list[tuple[str, ...] | None]
    callees: dict[str, int] = field(default_factory=dict)
    calls: dict[int, str] = field(default_factory=dict)     # pc of a CALL -> the name it calls
    leaders: list[int] = field(default_factory=list)


def _is_int(v: Any) -> bool:
    return type(v) is int and I64_MIN < v <= I64_MAX


def analyse(code: Any) -> Shape:
    """The shape of a loaded CASM function (crush.vm.Code), or NotNative saying why not."""
    if code.handlers or code.ncells or code.nfree or code.ndefaults:
        raise NotNative("it has exception handlers, cells, free variables or defaults")
    instrs = code.instrs
    n = len(instrs)
    kinds: list[tuple[str, ...] | None] = [None] * n
    assigned: list[frozenset[int] | None] = [None] * n
    shape = Shape(kinds)
    work = [0]
    kinds[0], assigned[0] = (), frozenset(range(code.nparams))
    while work:
        pc = work.pop()
        stack, bound = list(kinds[pc] or ()), assigned[pc]
        assert bound is not None
        op, arg = instrs[pc][0], instrs[pc][1]
        nexts: list[int] = [pc + 1]

        def pop(*allowed: str, stack: list[str] = stack, op: int = op, pc: int = pc) -> str:
            k = stack.pop()
            if k not in allowed:
                raise NotNative(f"{Op(op).name} at {pc} takes a {'/'.join(allowed)}, not a {k.rstrip(':')}")
            return k

        if op == Op.LOAD_CONST:
            if not _is_int(arg):
                raise NotNative(f"the constant {arg!r} at {pc} is not a machine integer")
            stack.append(INT)
        elif op == Op.LOAD_LOCAL:
            if arg not in bound:
                raise NotNative(f"local {code.varnames[arg]!r} may be read before it is assigned (at {pc})")
            stack.append(INT)
        elif op == Op.STORE_LOCAL:
            pop(INT)
            bound = bound | {arg}
        elif op == Op.POP:
            if stack.pop().startswith((FUNC, BUILTIN)):
                raise NotNative(f"a callee is dropped at {pc}")
        elif op == Op.DUP:
            if stack[-1].startswith((FUNC, BUILTIN)):
                raise NotNative(f"a callee is duplicated at {pc}")
            stack.append(stack[-1])
        elif op == Op.SWAP:
            stack[-1], stack[-2] = stack[-2], stack[-1]
        elif op == Op.NOP:
            pass
        elif op in UNARY:
            pop(INT)
            stack.append(INT)
        elif op in (Op.NOT, Op.TRUTH):
            pop(INT, COND)
            stack.append(COND)
        elif op in ARITH:
            pop(INT)
            pop(INT)
            stack.append(INT)
        elif op in COMPARE:
            pop(INT)
            pop(INT)
            stack.append(COND)
        elif op == Op.JUMP:
            nexts = [arg]
        elif op in BRANCH:
            pop(INT, COND)
            nexts = [pc + 1, arg]
        elif op == Op.LOAD_GLOBAL:
            stack.append(FUNC + str(arg))
        elif op == Op.LOAD_BUILTIN and getattr(arg, "key", None) in BUILTINS:
            stack.append(BUILTIN + BUILTINS[arg.key][0])
        elif op == Op.CALL:
            for _ in range(arg):
                pop(INT)
            callee = stack.pop()
            if callee.startswith(BUILTIN):
                name = callee[len(BUILTIN):]
                if dict(BUILTINS.values())[name] != arg:
                    raise NotNative(f"{name}() at {pc} with {arg} arguments")
                shape.calls[pc] = callee
            elif callee.startswith(FUNC):
                name = callee[len(FUNC):]
                if shape.callees.setdefault(name, arg) != arg:
                    raise NotNative(f"{name!r} is called with different numbers of arguments")
                shape.calls[pc] = name
            else:
                raise NotNative(f"CALL at {pc} calls something other than a global function")
            stack.append(INT)
        elif op == Op.RETURN:
            pop(INT)
            if stack:
                raise NotNative(f"RETURN at {pc} leaves values on the stack")
            nexts = []
        elif op == Op.BUILD_TUPLE and pc + 1 < n and instrs[pc + 1][0] == Op.UNPACK and instrs[pc + 1][1] == arg:
            # `a, b = b, a % b`: a tuple built and unpacked at once only reverses the top `arg` values
            top = stack[len(stack) - arg:]
            if any(k.startswith((FUNC, BUILTIN)) for k in top):
                raise NotNative(f"a callee in a tuple at {pc}")
            stack[len(stack) - arg:] = top[::-1]
            nexts = [pc + 2]
        else:
            raise NotNative(f"{Op(op).name} at {pc} is outside the integer/loop/function subset")
        for nxt in nexts:
            if nxt >= n:
                raise NotNative("control reaches the end of the function")
            state = tuple(stack)
            if kinds[nxt] is None:
                kinds[nxt], assigned[nxt] = state, bound
                work.append(nxt)
            else:
                if kinds[nxt] != state:
                    raise NotNative(f"the stack at {nxt} holds different kinds on different paths")
                prev = assigned[nxt]
                assert prev is not None
                if not prev <= bound:
                    assigned[nxt] = prev & bound
                    work.append(nxt)
    leaders = {0}
    for pc, ins in enumerate(instrs):
        op, arg = ins[0], ins[1]
        if kinds[pc] is None:
            continue
        if op == Op.JUMP or op in BRANCH:
            leaders.add(arg)
            leaders.add(pc + 1)
        elif op == Op.RETURN:
            leaders.add(pc + 1)
    shape.leaders = sorted(p for p in leaders if p < n and kinds[p] is not None)
    return shape


def native_functions(codes: list[Any]) -> tuple[dict[int, Shape], dict[int, str]]:
    """{function index: shape} of the native functions among a program's loaded functions (not
    the module body, 0), and {index: why not} for the others. A name a native function calls must
    be bound, by the module body, to exactly one native function taking that many arguments."""
    shapes: dict[int, Shape] = {}
    why: dict[int, str] = {}
    for code in codes[1:]:
        try:
            shapes[code.index] = analyse(code)
        except NotNative as e:
            why[code.index] = str(e)
    targets = global_functions(codes)
    changed = True
    while changed:
        changed = False
        for index, shape in list(shapes.items()):
            for name, argc in shape.callees.items():
                k = targets.get(name)
                if k is None or k not in shapes or codes[k].nparams != argc:
                    why[index] = f"it calls {name!r}, which is not a native function of {argc} parameters"
                    del shapes[index]
                    changed = True
                    break
    return shapes, why


def global_functions(codes: list[Any]) -> dict[str, int]:
    """name -> function index, for the globals the module body binds to a function (MAKE_FUNCTION
    then STORE_GLOBAL) and nothing else stores or deletes anywhere in the program."""
    bound: dict[str, int] = {}
    other: set[str] = set()
    for code in codes:
        instrs = code.instrs
        for pc, ins in enumerate(instrs):
            op, arg = ins[0], ins[1]
            if op in (Op.STORE_GLOBAL, Op.DELETE_GLOBAL):
                prev = instrs[pc - 1] if pc else None
                if code.index == 0 and op == Op.STORE_GLOBAL and prev is not None and prev[0] == Op.MAKE_FUNCTION \
                        and arg not in bound:
                    bound[str(arg)] = prev[1].index
                else:
                    other.add(str(arg))
    return {name: k for name, k in bound.items() if name not in other}


# --- WebAssembly text -------------------------------------------------------------------------------

# Checked integer operations: each returns the exact result or bails (sets $bail, traps).
HELPERS = """
  (global $bail (export "g_bail") (mut i32) (i32.const 0))
  (global $depth (export "g_depth") (mut i32) (i32.const 0))
  (func $bail (param $why i32) (global.set $bail (local.get $why)) unreachable)
  (func $add (param $a i64) (param $b i64) (result i64) (local $r i64)
    (local.set $r (i64.add (local.get $a) (local.get $b)))
    (if (i64.lt_s (i64.and (i64.xor (local.get $a) (local.get $r)) (i64.xor (local.get $b) (local.get $r)))
                  (i64.const 0)) (then (call $bail (i32.const 1))))
    (local.get $r))
  (func $sub (param $a i64) (param $b i64) (result i64) (local $r i64)
    (local.set $r (i64.sub (local.get $a) (local.get $b)))
    (if (i64.lt_s (i64.and (i64.xor (local.get $a) (local.get $b)) (i64.xor (local.get $a) (local.get $r)))
                  (i64.const 0)) (then (call $bail (i32.const 1))))
    (local.get $r))
  (func $mul (param $a i64) (param $b i64) (result i64) (local $r i64)
    (if (i32.or (i64.eqz (local.get $a)) (i64.eqz (local.get $b))) (then (return (i64.const 0))))
    (if (i32.or (i64.eq (local.get $a) (i64.const 0x8000000000000000))
                (i64.eq (local.get $b) (i64.const 0x8000000000000000))) (then (call $bail (i32.const 1))))
    (local.set $r (i64.mul (local.get $a) (local.get $b)))
    (if (i64.ne (i64.div_s (local.get $r) (local.get $b)) (local.get $a)) (then (call $bail (i32.const 1))))
    (local.get $r))
  (func $floordiv (param $a i64) (param $b i64) (result i64) (local $q i64)
    (if (i64.eqz (local.get $b)) (then (call $bail (i32.const 2))))
    (if (i32.and (i64.eq (local.get $a) (i64.const 0x8000000000000000)) (i64.eq (local.get $b) (i64.const -1)))
      (then (call $bail (i32.const 1))))
    (local.set $q (i64.div_s (local.get $a) (local.get $b)))
    (if (i32.and (i64.ne (i64.rem_s (local.get $a) (local.get $b)) (i64.const 0))
                 (i64.lt_s (i64.xor (local.get $a) (local.get $b)) (i64.const 0)))
      (then (local.set $q (i64.sub (local.get $q) (i64.const 1)))))
    (local.get $q))
  (func $mod (param $a i64) (param $b i64) (result i64) (local $r i64)
    (if (i64.eqz (local.get $b)) (then (call $bail (i32.const 2))))
    (local.set $r (i64.rem_s (local.get $a) (local.get $b)))
    (if (i32.and (i64.ne (local.get $r) (i64.const 0)) (i64.lt_s (i64.xor (local.get $r) (local.get $b)) (i64.const 0)))
      (then (local.set $r (i64.add (local.get $r) (local.get $b)))))
    (local.get $r))
  (func $lshift (param $a i64) (param $b i64) (result i64) (local $r i64)
    (if (i64.lt_s (local.get $b) (i64.const 0)) (then (call $bail (i32.const 3))))
    (if (i64.eqz (local.get $a)) (then (return (i64.const 0))))
    (if (i64.ge_s (local.get $b) (i64.const 63)) (then (call $bail (i32.const 1))))
    (local.set $r (i64.shl (local.get $a) (local.get $b)))
    (if (i64.ne (i64.shr_s (local.get $r) (local.get $b)) (local.get $a)) (then (call $bail (i32.const 1))))
    (local.get $r))
  (func $rshift (param $a i64) (param $b i64) (result i64)
    (if (i64.lt_s (local.get $b) (i64.const 0)) (then (call $bail (i32.const 3))))
    (if (i64.ge_s (local.get $b) (i64.const 63)) (then (local.set $b (i64.const 63))))
    (i64.shr_s (local.get $a) (local.get $b)))
  (func $abs (param $a i64) (result i64)
    (if (i64.lt_s (local.get $a) (i64.const 0)) (then (return (call $neg (local.get $a)))))
    (local.get $a))
  (func $min (param $a i64) (param $b i64) (result i64)
    (select (local.get $b) (local.get $a) (i64.lt_s (local.get $b) (local.get $a))))
  (func $max (param $a i64) (param $b i64) (result i64)
    (select (local.get $b) (local.get $a) (i64.gt_s (local.get $b) (local.get $a))))
  (func $neg (param $a i64) (result i64)
    (if (i64.eq (local.get $a) (i64.const 0x8000000000000000)) (then (call $bail (i32.const 1))))
    (i64.sub (i64.const 0) (local.get $a)))
"""


def _s(depth: int) -> str:
    return f"$s{depth}"


def function_wat(code: Any, shape: Shape) -> str:
    """One native function as Wasm text: `$fK` (the entry: counts the depth, bails beyond it) and
    `$bK` (the body: CASM's locals and stack slots as Wasm locals, its basic blocks dispatched by a
    br_table in a loop)."""
    k, np_ = code.index, code.nparams
    params = " ".join(f"(param $l{i} i64)" for i in range(np_))
    args = " ".join(f"(local.get $l{i})" for i in range(np_))
    locals_ = " ".join(f"(local $l{i} i64)" for i in range(np_, code.nlocals))
    slots = " ".join(f"(local {_s(d)} i64)" for d in range(code.max_depth + 1))
    block_of = {pc: i for i, pc in enumerate(shape.leaders)}
    body: list[str] = []
    nblocks = len(shape.leaders)
    labels = " ".join(f"$B{i}" for i in range(nblocks))
    # Nested blocks: the innermost dispatches; block i's code follows the end of $B{i}.
    head = [f"(block $B{i}" for i in reversed(range(nblocks))]
    body.append("(loop $dispatch")
    body += head
    body.append(f"(br_table {labels} (local.get $pc))")
    for i, start in enumerate(shape.leaders):
        body.append(f") ;; block {i}: CASM {start}")
        end = shape.leaders[i + 1] if i + 1 < nblocks else len(code.instrs)
        body += _block(code, shape, start, end, block_of)
    body.append(")  ;; loop")
    body.append("unreachable")
    text = f"""
  (func $b{k} {params} (result i64) (local $pc i32) (local $tmp i64) {locals_} {slots}
    {chr(10).join('    ' + line for line in body)})
  (func $f{k} (export "f{k}") {params} (result i64) (local $r i64)
    (global.set $depth (i32.sub (global.get $depth) (i32.const 1)))
    (if (i32.lt_s (global.get $depth) (i32.const 0)) (then (call $bail (i32.const 4))))
    (local.set $r (call $b{k} {args}))
    (global.set $depth (i32.add (global.get $depth) (i32.const 1)))
    (local.get $r))"""
    return text


def _block(code: Any, shape: Shape, start: int, end: int, block_of: dict[int, int]) -> list[str]:
    out: list[str] = []
    instrs = code.instrs

    def goto(target: int) -> str:
        return f"(local.set $pc (i32.const {block_of[target]})) (br $dispatch)"

    for pc in range(start, end):
        kinds = shape.kinds[pc]
        if kinds is None:
            continue
        d = len(kinds)  # stack depth before the instruction
        op, arg = instrs[pc][0], instrs[pc][1]
        top, second = _s(d - 1), _s(d - 2)
        if op == Op.LOAD_CONST:
            out.append(f"(local.set {_s(d)} (i64.const {arg}))")
        elif op == Op.LOAD_LOCAL:
            out.append(f"(local.set {_s(d)} (local.get $l{arg}))")
        elif op == Op.STORE_LOCAL:
            out.append(f"(local.set $l{arg} (local.get {top}))")
        elif op in (Op.POP, Op.NOP, Op.POS, Op.LOAD_GLOBAL, Op.LOAD_BUILTIN):
            pass  # (a callee occupies a slot but holds nothing: CALL names it statically)
        elif op == Op.DUP:
            out.append(f"(local.set {_s(d)} (local.get {top}))")
        elif op == Op.SWAP:
            out.append(_swap(top, second))
        elif op == Op.BUILD_TUPLE:  # (with the UNPACK after it: the top `arg` values reversed)
            out += [_swap(_s(d - 1 - i), _s(d - arg + i)) for i in range(arg // 2)]
        elif op == Op.NEG:
            out.append(f"(local.set {top} (call $neg (local.get {top})))")
        elif op == Op.INVERT:
            out.append(f"(local.set {top} (i64.xor (local.get {top}) (i64.const -1)))")
        elif op in (Op.NOT, Op.TRUTH):
            test = "i64.eqz" if op == Op.NOT else "i64.ne (i64.const 0)"
            out.append(f"(local.set {top} (i64.extend_i32_u ({test} (local.get {top}))))")
        elif op in ARITH:
            name = ARITH[Op(op)]
            if name in ("and", "or", "xor"):
                expr = f"(i64.{name} (local.get {second}) (local.get {top}))"
            else:
                expr = f"(call ${name} (local.get {second}) (local.get {top}))"
            out.append(f"(local.set {second} {expr})")
        elif op in COMPARE:
            out.append(f"(local.set {second} (i64.extend_i32_u (i64.{COMPARE[Op(op)]} (local.get {second}) "
                       f"(local.get {top}))))")
        elif op == Op.JUMP:
            out.append(goto(arg))
            return out
        elif op in BRANCH:
            test = (f"(i64.eqz (local.get {top}))" if op == Op.JUMP_IF_FALSE
                    else f"(i64.ne (local.get {top}) (i64.const 0))")
            out.append(f"(if {test} (then {goto(arg)}))")
        elif op == Op.CALL:
            name = shape.calls[pc]
            base = d - arg
            args = " ".join(f"(local.get {_s(base + i)})" for i in range(arg))
            target = f"${name[len(BUILTIN):]}" if name.startswith(BUILTIN) else f"$f{{{name}}}"
            out.append(f"(local.set {_s(base - 1)} (call {target} {args}))")
        elif op == Op.RETURN:
            out.append(f"(return (local.get {top}))")
            return out
        else:  # pragma: no cover - analyse() admitted only the operations above
            raise NotNative(f"no Wasm for {Op(op).name}")
    if end < len(instrs):
        out.append(goto(end))
    return out


def _swap(a: str, b: str) -> str:
    return f"(local.set $tmp (local.get {a})) (local.set {a} (local.get {b})) (local.set {b} (local.get $tmp))"


def module_wat(codes: list[Any], shapes: dict[int, Shape]) -> str:
    targets = global_functions(codes)
    funcs = [function_wat(codes[k], shape) for k, shape in sorted(shapes.items())]
    text = "(module" + HELPERS + "".join(funcs) + "\n)\n"
    for name, k in targets.items():
        text = text.replace(f"$f{{{name}}}", f"$f{k}")
    return text


# --- running: the VM's hook ------------------------------------------------------------------------


class Native:
    """The native functions of one loaded program, in one wasmtime instance."""

    def __init__(self, codes: list[Any], shapes: dict[int, Shape]) -> None:
        wasmtime: Any = importlib.import_module("wasmtime")  # (only this mode needs it; typed as Any)
        self.wasmtime = wasmtime
        self.codes = codes
        self.shapes = shapes
        self.targets = global_functions(codes)
        self.text = module_wat(codes, shapes)
        cfg = wasmtime.Config()
        cfg.consume_fuel = True
        self.engine = wasmtime.Engine(cfg)
        self.module = wasmtime.Module(self.engine, self.text)
        self.store = wasmtime.Store(self.engine)
        self.store.set_fuel(0)
        self.instance = wasmtime.Instance(self.store, self.module, [])
        exports = self.instance.exports(self.store)
        self.g_bail, self.g_depth = exports["g_bail"], exports["g_depth"]
        self.funcs = {k: exports[f"f{k}"] for k in shapes}
        # every global name an entry may reach (checked against the VM's globals at entry)
        self.reach: dict[int, tuple[tuple[str, Any], ...]] = {}
        for k in shapes:
            seen: dict[str, Any] = {}
            todo = [k]
            while todo:
                for name in shapes[todo.pop()].callees:
                    if name not in seen:
                        seen[name] = codes[self.targets[name]]
                        todo.append(self.targets[name])
            self.reach[k] = tuple(seen.items())
        self.max_frame = max(codes[k].frame_bytes for k in shapes)
        self.calls = 0
        self.fallbacks: dict[str, int] = {}

    def entry(self, k: int) -> Callable[[Any, Any, tuple[Any, ...]], Any]:
        func = self.funcs[k]
        reach = self.reach[k]
        wasmtime = self.wasmtime
        store = self.store

        g_depth, g_bail, i32 = self.g_depth, self.g_bail, wasmtime.Val.i32

        def call(vm: Any, fn: Any, args: tuple[Any, ...]) -> Any:
            if fn.defaults or fn.cells or not all(type(a) is int and I64_MIN < a <= I64_MAX for a in args):
                return self._fallback("arguments")
            g = vm.globals
            for name, code in reach:
                f = g.get(name)
                if type(f) is not Function or f.code is not code or f.defaults or f.cells:
                    return self._fallback("globals")
            arena = vm.arena
            frames = min(MAX_FRAMES - len(vm.frames), (arena.budget - arena.allocated) // self.max_frame)
            if frames <= 0:
                return self._fallback("depth")
            g_depth.set_value(store, i32(frames))
            g_bail.set_value(store, i32(0))
            fuel = vm.gas if vm.metering else 1 << 62
            store.set_fuel(fuel)
            self.calls += 1
            try:
                result = func(store, *args)
            except wasmtime.Trap as e:
                used = fuel - store.get_fuel()
                if e.trap_code == wasmtime.TrapCode.OUT_OF_FUEL:
                    if vm.metering:
                        vm.gas = 0
                    raise TrapError(TrapCode.OUT_OF_GAS, f"a native call used all the gas left ({fuel})") from None
                if vm.metering:
                    vm.gas -= used
                why = int(g_bail.value(store))
                return self._fallback(Bail(why).name.lower() if why else f"trap {e.trap_code}")
            if vm.metering:
                vm.gas -= fuel - store.get_fuel()
            return int(result)

        return call

    def _fallback(self, why: str) -> Any:
        self.fallbacks[why] = self.fallbacks.get(why, 0) + 1
        return FALLBACK



def attach(vm: Any) -> Native | None:
    """Compile the native functions of `vm`'s program and hook them into its Codes (Code.native);
    None when it has none (the VM then runs as in the other modes)."""
    codes = vm.unit.codes
    shapes, _why = native_functions(codes)
    if not shapes:
        return None
    native = Native(codes, shapes)
    for k in shapes:
        codes[k].native = native.entry(k)
    return native
