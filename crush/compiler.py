"""The compiler: CAST (crush/cast.py) to CASM (crush/casm.py).

`compile_cast(doc)` checks the document (cast.check) and lowers it in two passes:

1. Scopes. Every function (`std.fn`, and the document body as function 0) and every `std.block`
   is a scope; `std.let` declares in the innermost one, parameters in their function's. Each
   `std.var` resolves to the nearest declaration: in its own function a local slot; in an
   enclosing function a *cell* (the declaring function owns it, every function in between
   passes it on as a free variable); in the document body a global, looked up by name when it
   runs (as is a name declared nowhere). A declaration is visible in its whole scope (the Python
   walker declares a function's locals at its top), so resolution runs after all declarations
   are known.
2. Code. Statements and expressions are lowered to stack code; the emitter tracks the stack
   depth as casm.stack_effect defines it (the verifier recomputes and checks it). Control flow:
   `if`/`while`/`for`/conditional expressions/`and`/`or` become conditional jumps; `try` becomes
   protected *regions* in the handler table (an except region over the body, a finally region
   over body and handlers, a cleanup region that unbinds `except ... as NAME`'s name); a
   `finally` body is emitted once for the normal path, once for the exceptional path, and once
   more at every `break`/`continue`/`return` that leaves it (as CPython does), with the regions
   being left suspended around that copy so an exception in it is not caught by its own try.

Every `@` node sets the position that the line table records and compile errors name
(`file:line:col: message`). The declared capabilities are those `std.cap` names, in order of
first use.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crush import cast
from crush.casm import (
    CAP_ARITY,
    MAX_COUNT,
    Const,
    Function,
    Handler,
    Instr,
    Names,
    Op,
    Program,
    const_key,
    stack_effect,
)
from crush.values import EXC_TYPES

MAX_INT_DIGITS = 4300  # CPython's limit for an integer literal


class CompileError(ValueError):
    def __init__(self, file: str, line: int, col: int, message: str) -> None:
        super().__init__(f"{file}:{line}:{col}: {message}")
        self.file = file
        self.line = line
        self.col = col
        self.message = message


# ----------------------------------------------------------------------------------------------
# Pass 1: scopes


@dataclass(eq=False)
class Binding:
    name: str
    owner: FnInfo
    is_global: bool = False
    captured: bool = False
    slot: int = -1       # local slot (parameters always have one)
    cell: int = -1       # own cell index, if captured
    block: bool = False  # declared in a block scope (re-declared each time its let runs)


@dataclass(eq=False)
class FnInfo:
    node: Any
    parent: FnInfo | None
    name: str
    qualname: str
    params: list[str] = field(default_factory=list)
    locals: list[Binding] = field(default_factory=list)
    free: list[Binding] = field(default_factory=list)  # captured from enclosing functions
    index: int = -1

    @property
    def is_module(self) -> bool:
        return self.parent is None


@dataclass(eq=False)
class Scope:
    fn: FnInfo
    parent: Scope | None
    names: dict[str, Binding] = field(default_factory=dict)
    is_block: bool = False


class _Resolver:
    """Pass 1: builds scopes, then resolves every std.var / std.let to a binding."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.scopes: dict[int, Scope] = {}       # id(std.fn or std.block node) -> its scope
        self.fns: dict[int, FnInfo] = {}         # id(std.fn node) -> function
        self.refs: list[tuple[list[Any], Scope]] = []
        self.lets: dict[int, Binding] = {}       # id(std.let node) -> the binding it declares
        self.resolved: dict[int, Binding | None] = {}  # id(std.var node) -> binding (None: global)
        self.handler_names: dict[tuple[int, int], list[Any]] = {}  # (id(std.try), handler) -> a std.var

    def run(self, body: Any) -> FnInfo:
        module = FnInfo(body, None, "<module>", "<module>")
        scope = Scope(module, None)
        self.scopes[id(body)] = scope
        self._walk(body, scope, module.qualname)
        for node, sc in self.refs:
            self.resolved[id(node)] = self._resolve(node[1], sc)
        return module

    def _walk(self, node: Any, scope: Scope, qual: str) -> None:
        work: list[tuple[Any, Scope, str]] = [(node, scope, qual)]
        while work:
            n, sc, q = work.pop()
            if not isinstance(n, list) or not n or not isinstance(n[0], str):
                if isinstance(n, list):
                    work.extend((c, sc, q) for c in reversed(n))
                continue
            name = n[0]
            if name == "std.fn":
                fname = n[1] or "<lambda>"
                info = FnInfo(n, sc.fn, fname, f"{q}.<locals>.{fname}" if not sc.fn.is_module else fname)
                if q == "<module>":
                    info.qualname = fname
                self.fns[id(n)] = info
                inner = Scope(info, sc)
                self.scopes[id(n)] = inner
                for pname, default in n[2]:
                    info.params.append(pname)
                    if pname not in inner.names:
                        inner.names[pname] = self._declare(info, pname, False)
                        inner.names[pname].slot = len(info.params) - 1
                    if default is not None:
                        work.append((default, sc, q))
                work.append((n[3], inner, info.qualname))
                continue
            if name == "std.block":
                inner = Scope(sc.fn, sc, is_block=True)
                self.scopes[id(n)] = inner
                work.extend((c, inner, q) for c in reversed(n[1:]))
                continue
            if name == "std.let":
                b = sc.names.get(n[1])
                if b is None:
                    b = self._declare(sc.fn, n[1], sc.parent is None and not sc.is_block)
                    b.block = sc.is_block
                    sc.names[n[1]] = b
                self.lets[id(n)] = b
            elif name == "std.var":
                self.refs.append((n, sc))
                continue
            elif name in ("std.str", "std.int", "std.float", "std.bool", "std.builtin", "std.gvar", "std.cap"):
                if name == "std.cap":
                    work.extend((c, sc, q) for c in reversed(n[2:]))
                continue
            elif name in ("py.call", "py.method"):
                args, kwargs = (n[2], n[3]) if name == "py.call" else (n[3], n[4])
                work.extend((v, sc, q) for _, v in reversed(kwargs))
                work.extend((a, sc, q) for a in reversed(args))
                work.append((n[1], sc, q))
                continue
            elif name == "std.try":
                if len(n) > 3 and n[3] is not None:
                    work.append((n[3], sc, q))
                for j, (_, hname, hbody) in reversed(list(enumerate(n[2]))):
                    work.append((hbody, sc, q))
                    if hname is not None:
                        ref = ["std.var", hname]
                        self.handler_names[(id(n), j)] = ref
                        self.refs.append((ref, sc))
                work.append((n[1], sc, q))
                continue
            elif name in ("py.format", "py.fstring"):
                if name == "py.format":
                    if not isinstance(n[3], str):
                        work.append((n[3], sc, q))
                    work.append((n[1], sc, q))
                else:
                    work.extend((p, sc, q) for p in reversed(n[1]) if not isinstance(p, str))
                continue
            work.extend((c, sc, q) for c in reversed(n[1:]))

    def _declare(self, fn: FnInfo, name: str, is_global: bool) -> Binding:
        b = Binding(name, fn, is_global=is_global)
        if not is_global:
            fn.locals.append(b)
        return b

    def _resolve(self, name: str, scope: Scope) -> Binding | None:
        here = scope.fn
        sc: Scope | None = scope
        while sc is not None:
            b = sc.names.get(name)
            if b is not None:
                if b.is_global:
                    return None
                if b.owner is not here:
                    b.captured = True
                    fn: FnInfo | None = here
                    while fn is not None and fn is not b.owner:
                        if b not in fn.free:
                            fn.free.append(b)
                        fn = fn.parent
                return b
            sc = sc.parent
        return None


# ----------------------------------------------------------------------------------------------
# Pass 2: code


@dataclass
class _Label:
    pc: int = -1
    depth: int | None = None


@dataclass
class _Region:
    """A protected stretch of code: its segments go to the handler table with `target` (or, for
    a "handling" region, to the function's handling table with the local `slot`)."""
    kind: str                    # "except", "finally", "cleanup" or "handling"
    depth: int
    target: _Label
    emit_finally: Callable[[], None] | None
    segments: list[tuple[int, int]] = field(default_factory=list)
    open_at: int | None = None
    slot: int = -1


@dataclass
class _Loop:
    continue_to: _Label
    break_to: _Label
    regions: int                 # how many regions were active when the loop began
    pops: int                    # stack items a break must pop (the for loop's iterator)
    depth: int


class _Emitter:
    """One function's code under construction."""

    def __init__(self, compiler: Compiler, info: FnInfo) -> None:
        self.c = compiler
        self.info = info
        self.code: list[tuple[int, list[Any]]] = []
        self.patches: list[tuple[int, int, _Label]] = []
        self.depth = 0             # the stack depth here (nominal, if the code here is unreachable)
        self.reachable = True
        self.lines: list[tuple[int, int]] = []
        self.handlers: list[tuple[int, int, _Label, int]] = []
        self.regions: list[_Region] = []
        self.loops: list[_Loop] = []
        self.handling: list[int] = []   # hidden locals holding the exceptions being handled (lexically)
        self.handling_table: list[tuple[int, int, int]] = []
        self.nlocals = 0
        self.varnames: list[str] = []
        self.cellnames: list[str] = []

    def new_local(self, name: str) -> int:
        self.varnames.append(name)
        self.nlocals += 1
        return self.nlocals - 1

    @property
    def pc(self) -> int:
        return len(self.code)

    def emit(self, op: Op, *args: Any, pops: int | None = None, pushes: int | None = None) -> int:
        """Append an instruction; `args` may hold _Labels (patched at the end)."""
        pc = self.pc
        line = self.c.line
        if line and (not self.lines or self.lines[-1][1] != line):
            if self.lines and self.lines[-1][0] == pc:
                self.lines[-1] = (pc, line)
            else:
                self.lines.append((pc, line))
        out: list[Any] = []
        for i, a in enumerate(args):
            if isinstance(a, _Label):
                self.patches.append((pc, i, a))
                out.append(0)
            else:
                out.append(a)
        self.code.append((op.value, out))
        if pops is not None and pushes is not None:
            p, q, bp, bq = pops, pushes, 0, 0
        else:
            p, q, bp, bq = stack_effect(Instr(op.value, tuple(out)), _NO_PROGRAM)
        after = self.depth - p + q
        for a in args:
            if isinstance(a, _Label):
                self._reach(a, after if op == Op.JUMP else self.depth - bp + bq)
        self.depth = after
        if op in (Op.JUMP, Op.RETURN, Op.RAISE, Op.RERAISE):
            self.reachable = False
        return pc

    def _reach(self, label: _Label, depth: int) -> None:
        if label.depth is None:
            label.depth = depth
        elif label.depth != depth:  # pragma: no cover - a compiler bug; the verifier would refuse it
            raise AssertionError(f"stack depth {depth} at a jump to a label expecting {label.depth}")

    def mark(self, label: _Label, depth: int | None = None) -> None:
        """Place `label` here (`depth`: the depth it is entered with, for handler targets)."""
        label.pc = self.pc
        if depth is not None:
            self._reach(label, depth)
        if label.depth is not None:
            self.depth = label.depth
            self.reachable = True

    def finish(self) -> tuple[list[Instr], list[Handler]]:
        for pc, i, label in self.patches:
            self.code[pc][1][i] = label.pc
        handlers = [Handler(start, end, label.pc, depth) for start, end, label, depth in self.handlers]
        return [Instr(op, tuple(args)) for op, args in self.code], handlers

    # -- regions ----------------------------------------------------------------------------

    def open_region(self, region: _Region) -> None:
        region.open_at = self.pc
        self.regions.append(region)

    def close_region(self, region: _Region) -> None:
        assert self.regions and self.regions[-1] is region
        self._suspend(region)
        self.regions.pop()
        for start, end in region.segments:
            if region.kind == "handling":
                self.handling_table.append((start, end, region.slot))
            else:
                self.handlers.append((start, end, region.target, region.depth))
        region.segments.clear()

    def _suspend(self, region: _Region) -> None:
        if region.open_at is not None:
            if self.pc > region.open_at:
                region.segments.append((region.open_at, self.pc))
            region.open_at = None

    def _resume(self, region: _Region) -> None:
        region.open_at = self.pc

    def leave_regions(self, down_to: int) -> None:
        """Before a jump out of the regions above index `down_to`: suspend them, innermost
        first, emitting each one's finally (with it and the ones inside it inactive)."""
        for i in range(len(self.regions) - 1, down_to - 1, -1):
            region = self.regions[i]
            self._suspend(region)
            if region.emit_finally is not None:
                saved = self.regions
                self.regions = saved[:i]
                try:
                    region.emit_finally()
                finally:
                    self.regions = saved

    def resume_regions(self, down_to: int) -> None:
        for region in self.regions[down_to:]:
            self._resume(region)


_NO_PROGRAM = Program("", (), (), ())


class Compiler:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.file: str = doc["file"]
        self.lang: str = doc["lang"]
        self.doc = doc
        self.line = 0
        self.col = 0
        self.consts: list[Const] = []
        self.pool: dict[tuple[str, Any], int] = {}
        self.funcs: list[Function | None] = []
        self.caps: list[str] = []
        self.resolver = _Resolver(self.file)
        self.em: _Emitter | None = None

    def error(self, message: str) -> CompileError:
        return CompileError(self.file, self.line, self.col, message)

    def const(self, value: Const) -> int:
        key = const_key(value)
        if key not in self.pool:
            self.pool[key] = len(self.consts)
            self.consts.append(value)
        return self.pool[key]

    def compile(self) -> Program:
        module = self.resolver.run(self.doc["body"])
        self._function(module, self.doc["body"], [])
        funcs = tuple(f for f in self.funcs if f is not None)
        return Program(self.file, tuple(self.caps), tuple(self.consts), funcs).with_hash()

    # -- functions -----------------------------------------------------------------------------

    def _function(self, info: FnInfo, body: Any, defaults: list[Any]) -> int:
        index = len(self.funcs)
        info.index = index
        self.funcs.append(None)
        outer = self.em
        em = self.em = _Emitter(self, info)
        for name in info.params:
            em.new_local(name)
        for b in info.locals:
            if b.slot < 0 and not b.captured:  # parameters already have theirs
                b.slot = em.new_local(b.name)
        own = [b for b in info.locals if b.captured]
        for b in own:
            b.cell = len(em.cellnames)
            em.cellnames.append(b.name)
        em.cellnames.extend(b.name for b in info.free)
        for b in own:  # captured parameters start in their slot: copy them into their cell
            if b.slot >= 0:
                em.emit(Op.LOAD_LOCAL, b.slot)
                em.emit(Op.STORE_DEREF, b.cell)
        self.stmt(body)
        if em.reachable:
            em.emit(Op.LOAD_CONST, self.const(None))
            em.emit(Op.RETURN)
        code, handlers = em.finish()
        nparams = len(info.params)
        self.funcs[index] = Function(info.name, info.qualname, nparams, len(defaults), tuple(em.varnames),
                                     len(own), tuple(em.cellnames), tuple(code), tuple(handlers),
                                     tuple(em.lines), tuple(em.handling_table))
        self.em = outer
        return index

    def _cell_index(self, b: Binding) -> int:
        em = self._em()
        if b.owner is em.info:
            return b.cell
        return em.info.free.index(b) + len([x for x in em.info.locals if x.captured])

    def _em(self) -> _Emitter:
        assert self.em is not None
        return self.em

    # -- statements ---------------------------------------------------------------------------

    def stmt(self, node: Any) -> None:
        em = self._em()
        saved = (self.line, self.col)
        while node[0] == "@":
            self.line, self.col = node[1], node[2]
            node = node[3]
        name = node[0]
        handler = _STATEMENTS.get(name)
        if handler is None:
            raise self.error(f"{name} is not a statement")
        handler(self, node, em)
        self.line, self.col = saved

    def _seq(self, node: Any, em: _Emitter) -> None:
        for s in node[1:]:
            self.stmt(s)

    def _pass(self, node: Any, em: _Emitter) -> None:
        pass

    def _expr_stmt(self, node: Any, em: _Emitter) -> None:
        self.expr(node[1])
        em.emit(Op.POP)

    def _let(self, node: Any, em: _Emitter) -> None:
        b = self.resolver.lets[id(node)]
        value = node[2] if len(node) > 2 else None
        if value is not None:
            if b.block and b.captured:  # a fresh binding each time the declaration runs (JavaScript's
                em.emit(Op.MAKE_CELL, b.cell)  # loop bodies): closures made before keep their own
            self.expr(value)
            self._store_binding(b)
        elif b.block:
            if b.captured:
                em.emit(Op.MAKE_CELL, b.cell)
            else:
                em.emit(Op.DELETE_LOCAL, b.slot)

    def _set(self, node: Any, em: _Emitter) -> None:
        self.expr(node[2])
        self.store(node[1])

    def store(self, target: Any) -> None:
        em = self._em()
        saved = (self.line, self.col)
        while target[0] == "@":
            self.line, self.col = target[1], target[2]
            target = target[3]
        kind = target[0]
        if kind == "std.var":
            b = self.resolver.resolved.get(id(target))
            if b is None:
                em.emit(Op.STORE_GLOBAL, self.const(target[1]))
            else:
                self._store_binding(b)
        elif kind == "std.gvar":
            em.emit(Op.STORE_GLOBAL, self.const(target[1]))
        elif kind == "py.index":
            self.expr(target[1])
            self.expr(target[2])
            em.emit(Op.STORE_INDEX)
        elif kind == "std.unpack":
            items = target[1:]
            if len(items) > MAX_COUNT:
                raise self.error("too many targets")
            em.emit(Op.UNPACK, len(items))
            for t in items:
                self.store(t)
        else:
            raise self.error(f"cannot assign to {kind}")
        self.line, self.col = saved

    def _store_binding(self, b: Binding) -> None:
        em = self._em()
        if b.is_global:
            em.emit(Op.STORE_GLOBAL, self.const(b.name))
        elif b.captured:
            em.emit(Op.STORE_DEREF, self._cell_index(b))
        else:
            em.emit(Op.STORE_LOCAL, b.slot)

    def _unbind(self, b: Binding | None, name: str) -> None:
        em = self._em()
        if b is None or b.is_global:
            em.emit(Op.LOAD_CONST, self.const(None))
            em.emit(Op.STORE_GLOBAL, self.const(name))
            em.emit(Op.DELETE_GLOBAL, self.const(name))
        elif b.captured:
            em.emit(Op.DELETE_DEREF, self._cell_index(b))
        else:
            em.emit(Op.DELETE_LOCAL, b.slot)

    def _block(self, node: Any, em: _Emitter) -> None:
        for s in node[1:]:
            self.stmt(s)

    def _jump_if_false(self, cond: Any, label: _Label) -> None:
        saved = (self.line, self.col)
        while cond[0] == "@":
            self.line, self.col = cond[1], cond[2]
            cond = cond[3]
        if cond[0] == "py.truth":  # JUMP_IF_FALSE tests truth itself
            cond = cond[1]
        self.expr(cond)
        self._em().emit(Op.JUMP_IF_FALSE, label)
        self.line, self.col = saved

    def _if(self, node: Any, em: _Emitter) -> None:
        otherwise, end = _Label(), _Label()
        self._jump_if_false(node[1], otherwise)
        self.stmt(node[2])
        has_else = len(node) > 3 and node[3] is not None
        if has_else:
            em.emit(Op.JUMP, end)
        em.mark(otherwise)
        if has_else:
            self.stmt(node[3])
            em.mark(end)

    def _while(self, node: Any, em: _Emitter) -> None:
        top, end = _Label(), _Label()
        em.mark(top, em.depth)
        self._jump_if_false(node[1], end)
        em.loops.append(_Loop(top, end, len(em.regions), 0, em.depth or 0))
        self.stmt(node[2])
        em.loops.pop()
        em.emit(Op.JUMP, top)
        em.mark(end)

    def _for(self, node: Any, em: _Emitter) -> None:
        top, end = _Label(), _Label()
        self.expr(node[2])
        em.emit(Op.GET_ITER)
        em.mark(top, em.depth)
        em.emit(Op.FOR_ITER, end)
        self.store(node[1])
        em.loops.append(_Loop(top, end, len(em.regions), 1, (em.depth or 1) - 1))
        self.stmt(node[3])
        em.loops.pop()
        em.emit(Op.JUMP, top)
        em.mark(end)

    def _break(self, node: Any, em: _Emitter) -> None:
        self._leave_loop(em, is_break=True)

    def _continue(self, node: Any, em: _Emitter) -> None:
        self._leave_loop(em, is_break=False)

    def _leave_loop(self, em: _Emitter, is_break: bool) -> None:
        if not em.loops:
            raise self.error(f"'{'break' if is_break else 'continue'}' outside loop")
        loop = em.loops[-1]
        em.leave_regions(loop.regions)
        if is_break:
            for _ in range(loop.pops):
                em.emit(Op.POP)
        em.emit(Op.JUMP, loop.break_to if is_break else loop.continue_to)
        em.resume_regions(loop.regions)

    def _return(self, node: Any, em: _Emitter) -> None:
        if em.info.is_module:
            raise self.error("'return' outside function")
        value = node[1] if len(node) > 1 else None
        if value is not None:
            self.expr(value)
        else:
            em.emit(Op.LOAD_CONST, self.const(None))
        if any(r.emit_finally is not None for r in em.regions):
            tmp = em.new_local("$return")
            em.emit(Op.STORE_LOCAL, tmp)
            em.leave_regions(0)
            em.emit(Op.LOAD_LOCAL, tmp)
        else:
            em.leave_regions(0)
        em.emit(Op.RETURN)
        em.resume_regions(0)

    def _raise(self, node: Any, em: _Emitter) -> None:
        value = node[1] if len(node) > 1 else None
        if value is not None:
            self.expr(value)
            em.emit(Op.RAISE)
        elif em.handling:
            em.emit(Op.LOAD_LOCAL, em.handling[-1])
            em.emit(Op.RERAISE)
        else:  # the exception a caller is handling, if any (found when it runs)
            em.emit(Op.RAISE_CURRENT)

    def _try(self, node: Any, em: _Emitter) -> None:
        body, handlers = node[1], node[2]
        final = node[3] if len(node) > 3 else None
        if not handlers and final is None:
            self.stmt(body)
            return
        for j, (etype, _, _) in enumerate(handlers):
            if etype is None and j != len(handlers) - 1:
                raise self.error("default 'except:' must be last")
        depth = em.depth
        end = _Label()
        pos = (self.line, self.col)

        def emit_final() -> None:
            saved = (self.line, self.col)
            self.stmt(final)
            self.line, self.col = saved

        fin: _Region | None = None
        if final is not None:
            fin = _Region("finally", depth, _Label(), emit_final)
            em.open_region(fin)
        exc_region: _Region | None = None
        if handlers:
            exc_region = _Region("except", depth, _Label(), None)
            em.open_region(exc_region)
        self.stmt(body)
        if exc_region is not None:
            em.close_region(exc_region)
        if em.reachable:  # the body's normal exit
            if fin is not None:
                em.leave_regions(len(em.regions) - 1)
            em.emit(Op.JUMP, end)
            if fin is not None:
                em.resume_regions(len(em.regions) - 1)
        if exc_region is not None:
            self.line, self.col = pos
            em.mark(exc_region.target, depth + 1)
            for j, (etype, name, hbody) in enumerate(handlers):
                binding = self.resolver.resolved.get(id(self.resolver.handler_names[(id(node), j)])) if name else None
                self._handler(em, etype, name, binding, hbody, end, fin, depth)
            if handlers[-1][0] is not None:
                em.emit(Op.RERAISE)
        if fin is not None:
            em.close_region(fin)
            self.line, self.col = pos
            em.mark(fin.target, depth + 1)
            tmp = em.new_local("$exc")
            em.emit(Op.STORE_LOCAL, tmp)
            emit_final()
            em.emit(Op.LOAD_LOCAL, tmp)
            em.emit(Op.RERAISE)
        em.mark(end)

    def _handler(self, em: _Emitter, etype: str | None, name: str | None, binding: Binding | None,  # noqa: PLR0917
                 body: Any, end: _Label, fin: _Region | None, depth: int) -> None:
        nxt = _Label()
        if etype is not None:
            key = f"py.{etype}" if self.lang == "python" else etype
            if etype not in EXC_TYPES:
                raise self.error(f"unknown exception type {etype!r} in an except clause")
            em.emit(Op.LOAD_BUILTIN, self.const(key))
            em.emit(Op.EXC_MATCH)
            em.emit(Op.JUMP_IF_FALSE, nxt)
        tmp = em.new_local("$handling")
        em.emit(Op.STORE_LOCAL, tmp)
        cleanup: _Region | None = None
        if name is not None:
            em.emit(Op.LOAD_LOCAL, tmp)
            self._store_name(name, binding)

            def unbind() -> None:
                self._unbind(binding, name)

            cleanup = _Region("cleanup", depth, _Label(), unbind)
            em.open_region(cleanup)
        em.handling.append(tmp)
        handling = _Region("handling", depth, _Label(), None, slot=tmp)
        em.open_region(handling)
        self.stmt(body)
        em.close_region(handling)
        em.handling.pop()
        if cleanup is not None:
            em.close_region(cleanup)
            if em.reachable:
                unbind()
        if em.reachable:
            if fin is not None:
                em.leave_regions(len(em.regions) - 1)
            em.emit(Op.JUMP, end)
            if fin is not None:
                em.resume_regions(len(em.regions) - 1)
        if cleanup is not None:  # an exception leaving the handler's body unbinds the name first
            em.mark(cleanup.target, depth + 1)
            unbind()
            em.emit(Op.RERAISE)
        if etype is not None:
            em.mark(nxt, depth + 1)

    def _store_name(self, name: str, b: Binding | None) -> None:
        if b is None:
            self._em().emit(Op.STORE_GLOBAL, self.const(name))
        else:
            self._store_binding(b)

    def _delitem(self, node: Any, em: _Emitter) -> None:
        self.expr(node[1])
        self.expr(node[2])
        em.emit(Op.DELETE_INDEX)

    # -- expressions ---------------------------------------------------------------------------

    def expr(self, node: Any) -> None:
        em = self._em()
        saved = (self.line, self.col)
        while node[0] == "@":
            self.line, self.col = node[1], node[2]
            node = node[3]
        name = node[0]
        op = _BINARY.get(name) or _UNARY.get(name)
        if op is not None:
            for operand in node[1:]:
                self.expr(operand)
            em.emit(op)
        else:
            handler = _EXPRESSIONS.get(name)
            if handler is None:
                raise self.error(f"{name} is not an expression")
            handler(self, node, em)
        self.line, self.col = saved

    def _none(self, node: Any, em: _Emitter) -> None:
        em.emit(Op.LOAD_CONST, self.const(None))

    def _bool(self, node: Any, em: _Emitter) -> None:
        em.emit(Op.LOAD_CONST, self.const(bool(node[1])))

    def _int(self, node: Any, em: _Emitter) -> None:
        text = node[1]
        if not re.fullmatch(r"-?[0-9]+", text):
            raise self.error(f"std.int needs decimal digits, not {text[:40]!r}")
        if len(text.lstrip("-")) > MAX_INT_DIGITS:
            raise self.error(f"integer literal has more than {MAX_INT_DIGITS} digits")
        em.emit(Op.LOAD_CONST, self.const(int(text)))

    def _float(self, node: Any, em: _Emitter) -> None:
        v = node[1]
        value = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}[v] if isinstance(v, str) else float(v)
        em.emit(Op.LOAD_CONST, self.const(value))

    def _str(self, node: Any, em: _Emitter) -> None:
        em.emit(Op.LOAD_CONST, self.const(node[1]))

    def _items(self, items: list[Any], what: str) -> int:
        if len(items) > MAX_COUNT:
            raise self.error(f"{what} literal has more than {MAX_COUNT} items")
        for item in items:
            self.expr(item)
        return len(items)

    def _list(self, node: Any, em: _Emitter) -> None:
        em.emit(Op.BUILD_LIST, self._items(node[1:], "list"))

    def _tuple(self, node: Any, em: _Emitter) -> None:
        em.emit(Op.BUILD_TUPLE, self._items(node[1:], "tuple"))

    def _dict(self, node: Any, em: _Emitter) -> None:
        pairs = node[1:]
        if len(pairs) > MAX_COUNT:
            raise self.error(f"dict literal has more than {MAX_COUNT} items")
        for k, v in pairs:
            self.expr(k)
            self.expr(v)
        em.emit(Op.BUILD_DICT, len(pairs))

    def _var(self, node: Any, em: _Emitter) -> None:
        b = self.resolver.resolved.get(id(node))
        if b is None:
            em.emit(Op.LOAD_GLOBAL, self.const(node[1]))
        elif b.captured:
            em.emit(Op.LOAD_DEREF, self._cell_index(b))
        else:
            em.emit(Op.LOAD_LOCAL, b.slot)

    def _gvar(self, node: Any, em: _Emitter) -> None:
        em.emit(Op.LOAD_GLOBAL, self.const(node[1]))

    def _builtin(self, node: Any, em: _Emitter) -> None:
        name = node[1]
        prefix, _, short = name.partition(".")
        python = prefix == "py" and (short in cast.PY_BUILTINS or short in EXC_TYPES)
        if name not in cast.JS_VALUES and not python:
            raise self.error(f"unknown builtin {name!r}")
        em.emit(Op.LOAD_BUILTIN, self.const(name))

    def _cond(self, node: Any, em: _Emitter) -> None:
        otherwise, end = _Label(), _Label()
        self._jump_if_false(node[1], otherwise)
        self.expr(node[2])
        em.emit(Op.JUMP, end)
        em.mark(otherwise)
        self.expr(node[3])
        em.mark(end)

    def _and_or(self, node: Any, em: _Emitter) -> None:
        end = _Label()
        self.expr(node[1])
        em.emit(Op.JUMP_IF_FALSE_OR_POP if node[0] == "py.and" else Op.JUMP_IF_TRUE_OR_POP, end)
        self.expr(node[2])
        em.mark(end)

    def _call(self, node: Any, em: _Emitter) -> None:
        self.expr(node[1])
        n = self._arguments(node[2], node[3])
        if node[3]:
            em.emit(Op.CALL_KW, n, self.const(Names(tuple(k for k, _ in node[3]))))
        else:
            em.emit(Op.CALL, n)

    def _arguments(self, args: list[Any], kwargs: list[Any]) -> int:
        names = [k for k, _ in kwargs]
        if len(set(names)) != len(names):
            raise self.error("keyword argument repeated")
        n = self._items(args, "argument") + self._items([v for _, v in kwargs], "argument")
        if n > MAX_COUNT:
            raise self.error("too many arguments")
        return n

    def _method(self, node: Any, em: _Emitter) -> None:
        self.expr(node[1])
        n = self._arguments(node[3], node[4])
        name = self.const(node[2])
        if node[4]:
            em.emit(Op.CALL_METHOD_KW, name, n, self.const(Names(tuple(k for k, _ in node[4]))))
        else:
            em.emit(Op.CALL_METHOD, name, n)

    def _index(self, node: Any, em: _Emitter) -> None:
        self.expr(node[1])
        self.expr(node[2])
        em.emit(Op.INDEX)

    def _slice(self, node: Any, em: _Emitter) -> None:
        self.expr(node[1])
        for part in [*node[2:], None, None, None][:3]:
            if part is None:
                em.emit(Op.LOAD_CONST, self.const(None))
            else:
                self.expr(part)
        em.emit(Op.SLICE)

    def _fstring(self, node: Any, em: _Emitter) -> None:
        parts = node[1]
        if len(parts) > MAX_COUNT:
            raise self.error("f-string has too many parts")
        for part in parts:
            if isinstance(part, str):
                em.emit(Op.LOAD_CONST, self.const(part))
                continue
            inner = part
            while inner[0] == "@":
                inner = inner[3]
            self.expr(part)
            if inner[0] != "py.format":
                em.emit(Op.FORMAT, 0, self.const(""))
        if not parts:
            em.emit(Op.LOAD_CONST, self.const(""))
        elif len(parts) > 1 or isinstance(parts[0], str):
            em.emit(Op.BUILD_STRING, len(parts))

    def _format(self, node: Any, em: _Emitter) -> None:
        conv = {"": 0, "r": 1, "s": 2}.get(node[2])
        if conv is None:
            raise self.error(f"unsupported conversion !{node[2]}")
        self.expr(node[1])
        if isinstance(node[3], str):
            em.emit(Op.FORMAT, conv, self.const(node[3]))
        else:  # a spec computed when it runs (f"{x:>{width}}")
            self.expr(node[3])
            em.emit(Op.FORMAT_SPEC, conv)

    def _fn(self, node: Any, em: _Emitter) -> None:
        info = self.resolver.fns[id(node)]
        params = node[2]
        defaults = [d for _, d in params if d is not None]
        seen_default = False
        for pname, d in params:
            if d is not None:
                seen_default = True
            elif seen_default:
                raise self.error(f"parameter {pname!r} without a default follows one with a default")
        if len(set(p for p, _ in params)) != len(params):
            raise self.error("duplicate parameter name")
        for d in defaults:
            self.expr(d)
        for b in info.free:
            em.emit(Op.LOAD_CELL, self._cell_index(b))
        saved = (self.line, self.col)
        index = self._function(info, node[3], defaults)
        self.line, self.col = saved
        em.emit(Op.MAKE_FUNCTION, index, pops=len(defaults) + len(info.free), pushes=1)

    def _cap(self, node: Any, em: _Emitter) -> None:
        name = node[1]
        if name not in cast.CAPABILITIES:
            raise self.error(f"unknown capability {name!r}")
        if name not in self.caps:
            self.caps.append(name)
        lo, hi = CAP_ARITY[name]
        args = node[2:]
        if not lo <= len(args) <= hi:
            raise self.error(f"{name} takes {lo}..{hi} arguments, not {len(args)}")
        for a in args:
            self.expr(a)
        em.emit(Op.CAP, self.caps.index(name), len(args))

    def _op(self, node: Any, em: _Emitter) -> None:
        name = node[1]
        if not name.startswith(tuple(cast.OPS)):
            raise self.error(f"unknown typed operation {name!r}")
        em.emit(Op.LOAD_BUILTIN, self.const(name))
        n = self._items(node[2:], "operand")
        em.emit(Op.CALL, n)

    def _plain_call(self, node: Any, em: _Emitter) -> None:
        self.expr(node[1])
        em.emit(Op.CALL, self._arguments(node[2], []))

    def _truth(self, node: Any, em: _Emitter) -> None:
        self.expr(node[1])
        em.emit(Op.TRUTH)


_BINARY: dict[str, Op] = {
    "py.add": Op.ADD, "py.sub": Op.SUB, "py.mul": Op.MUL, "py.truediv": Op.TRUEDIV, "py.floordiv": Op.FLOORDIV,
    "py.mod": Op.MOD, "py.pow": Op.POW, "py.lshift": Op.LSHIFT, "py.rshift": Op.RSHIFT, "py.bitand": Op.BITAND,
    "py.bitor": Op.BITOR, "py.bitxor": Op.BITXOR, "py.eq": Op.EQ, "py.ne": Op.NE, "py.lt": Op.LT, "py.le": Op.LE,
    "py.gt": Op.GT, "py.ge": Op.GE, "py.in": Op.IN, "py.notin": Op.NOT_IN, "py.is": Op.IS, "py.isnot": Op.IS_NOT,
    "py.iadd": Op.IADD, "py.imul": Op.IMUL, "py.ior": Op.IOR,
}
_UNARY: dict[str, Op] = {"py.neg": Op.NEG, "py.pos": Op.POS, "py.invert": Op.INVERT, "py.not": Op.NOT,
                         "py.iter": Op.GET_ITER}

_Handler = Callable[[Compiler, Any, _Emitter], None]
_STATEMENTS: dict[str, _Handler] = {
    "std.seq": Compiler._seq, "std.block": Compiler._block, "std.pass": Compiler._pass,
    "std.expr": Compiler._expr_stmt, "std.let": Compiler._let, "std.set": Compiler._set, "std.if": Compiler._if,
    "std.while": Compiler._while, "std.for": Compiler._for, "std.break": Compiler._break,
    "std.continue": Compiler._continue, "std.return": Compiler._return, "std.try": Compiler._try,
    "std.raise": Compiler._raise, "py.delitem": Compiler._delitem,
}
_EXPRESSIONS: dict[str, _Handler] = {
    "std.none": Compiler._none, "std.bool": Compiler._bool, "std.int": Compiler._int, "std.float": Compiler._float,
    "std.str": Compiler._str, "std.list": Compiler._list, "std.tuple": Compiler._tuple, "std.dict": Compiler._dict,
    "std.var": Compiler._var, "std.gvar": Compiler._gvar, "std.builtin": Compiler._builtin,
    "std.cond": Compiler._cond, "py.and": Compiler._and_or, "py.or": Compiler._and_or, "py.call": Compiler._call,
    "py.method": Compiler._method, "py.index": Compiler._index, "py.slice": Compiler._slice,
    "py.fstring": Compiler._fstring, "py.format": Compiler._format, "std.fn": Compiler._fn,
    "std.cap": Compiler._cap, "py.truth": Compiler._truth, "std.op": Compiler._op, "std.call": Compiler._plain_call,
}


def compile_cast(doc: Any) -> Program:
    """Compile a CAST document (raises cast.CastError for a malformed one, CompileError naming
    file:line:col for one the compiler cannot lower)."""
    cast.check(doc)
    return Compiler(doc).compile()
