"""The linker: several CASM programs (modules, from any walker) into one program.

A module *exports* the globals its code binds (STORE_GLOBAL: Python's top-level `def`s and
assignments, JavaScript's top-level `function`/`let`/`const`, Rust's `fn` items) and *imports*
the globals it reads without binding them (LOAD_GLOBAL). `link(modules)` checks that every import
is exported by exactly one module and that no two modules export the same name (a collision is an
error, not a shadowing), then merges the modules: constant pools (deduplicated), function tables
(each module's body becomes an ordinary function), declared capabilities (their union). The new
function 0 runs the module bodies in the order given, so a module's functions exist before a later
module's body calls them: list libraries first and the entry module last.

A linked function keeps the source file it came from in its name, `NAME@FILE` (no language's
identifiers contain "@"); `split_name` recovers both, which is how run-time errors and tracebacks
of a linked program name each module's own file and line. Values cross module boundaries as they
are (a JavaScript function returns JavaScript numbers, floats; a Rust function checks its integer
operations against the types it declares).

Names beginning with "$" (walker temporaries) or "__crush_" (the JavaScript walker's helpers,
identical in every module that uses them) are not exports or imports.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from crush.casm import OPS, Const, Function, Instr, Op, Operand, Program, const_key

SEP = "@"


class LinkError(ValueError):
    """Modules that cannot be linked: names what is missing or clashing, and in which files."""


def split_name(name: str, default_file: str) -> tuple[str, str]:
    """(function name, source file) of a function of a linked program (or of any program)."""
    fn, sep, file = name.partition(SEP)
    return (fn, file) if sep else (name, default_file)


def _private(name: str) -> bool:
    return name.startswith(("$", "__crush_"))


def globals_of(program: Program) -> tuple[set[str], set[str]]:
    """(exports, imports) of a module."""
    stored: set[str] = set()
    loaded: set[str] = set()
    for fn in program.funcs:
        for ins in fn.code:
            if ins.op in (Op.STORE_GLOBAL, Op.LOAD_GLOBAL):
                name = program.consts[ins.args[0]]
                assert isinstance(name, str)
                if not _private(name):
                    (stored if ins.op == Op.STORE_GLOBAL else loaded).add(name)
    return stored, loaded - stored


def link(modules: Sequence[Program], provided: Collection[str] = ()) -> Program:
    """One program of `modules` (libraries first, the entry last). `provided`: globals the host
    binds before the run (a runner's arguments), which a module may read without any defining them."""
    if not modules:
        raise LinkError("nothing to link")
    owner: dict[str, str] = {}
    for m in modules:
        for name in globals_of(m)[0]:
            if name in owner:
                raise LinkError(f"{name!r} is defined by both {owner[name]} and {m.file}")
            owner[name] = m.file
    for m in modules:
        missing = sorted(globals_of(m)[1] - set(owner) - set(provided))
        if missing:
            raise LinkError(f"{m.file} imports {', '.join(map(repr, missing))}, which no module defines")

    consts: list[Const] = [None]
    index: dict[tuple[str, object], int] = {const_key(None): 0}
    caps: list[str] = []
    funcs: list[Function] = [Function("<link>", "<link>", 0, 0, (), 0, (), ())]  # function 0, filled below
    bodies: list[int] = []
    for m in modules:
        const_map = []
        for c in m.consts:
            key = const_key(c)
            if key not in index:
                index[key] = len(consts)
                consts.append(c)
            const_map.append(index[key])
        for cap in m.caps:
            if cap not in caps:
                caps.append(cap)
        cap_map = [caps.index(c) for c in m.caps]
        base = len(funcs)
        bodies.append(base)
        for fn in m.funcs:
            code = tuple(_remap(ins, const_map, base, cap_map) for ins in fn.code)
            funcs.append(Function(f"{fn.name}{SEP}{m.file}", f"{fn.qualname}{SEP}{m.file}", fn.nparams,
                                  fn.ndefaults, fn.varnames, fn.ncells, fn.cellnames, code, fn.handlers, fn.lines,
                                  fn.handling))
    body: list[Instr] = []
    for b in bodies:
        body += [Instr(Op.MAKE_FUNCTION, (b,)), Instr(Op.CALL, (0,)), Instr(Op.POP)]
    body += [Instr(Op.LOAD_CONST, (0,)), Instr(Op.RETURN)]
    funcs[0] = Function(f"<link>{SEP}{modules[-1].file}", f"<link>{SEP}{modules[-1].file}", 0, 0, (), 0, (),
                        tuple(body))
    return Program(modules[-1].file, tuple(caps), tuple(consts), tuple(funcs)).with_hash()


def _remap(ins: Instr, const_map: list[int], base: int, cap_map: list[int]) -> Instr:
    kinds = OPS[ins.op].operands
    args = []
    for kind, arg in zip(kinds, ins.args, strict=True):
        if kind in (Operand.CONST, Operand.NAME, Operand.NAMES):
            args.append(const_map[arg])
        elif kind == Operand.FUNC:
            args.append(base + arg)
        elif kind == Operand.CAP:
            args.append(cap_map[arg])
        else:
            args.append(arg)
    return Instr(ins.op, tuple(args))
