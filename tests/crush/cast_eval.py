"""A reference reading of CAST for the walker's tests: crush/cast.py's node meanings, evaluated with
CPython's own values, operators, builtins and methods.

It is not the CRUSH VM (no gas, no arena, no state, no capabilities) and nothing but tests use it: it
tells a walker bug (its CAST, read as cast.py defines it, does not print what CPython prints) from a
VM bug (the walker's CAST is right here but the VM runs it differently). Its only interpretive
choices are those cast.py states: function-level `std.let`, `std.var` as the nearest binding else the
global, `std.set` evaluating the value before the target's operands, `std.unpack` left to right.
"""

from __future__ import annotations

import builtins
import io
import operator
import sys
import threading
from collections.abc import Callable
from typing import Any

_UNBOUND = object()

_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "py.add": operator.add, "py.sub": operator.sub, "py.mul": operator.mul, "py.truediv": operator.truediv,
    "py.floordiv": operator.floordiv, "py.mod": operator.mod, "py.pow": operator.pow,
    "py.lshift": operator.lshift, "py.rshift": operator.rshift, "py.bitand": operator.and_,
    "py.bitor": operator.or_, "py.bitxor": operator.xor, "py.eq": operator.eq, "py.ne": operator.ne,
    "py.lt": operator.lt, "py.le": operator.le, "py.gt": operator.gt, "py.ge": operator.ge,
    "py.in": lambda a, b: a in b, "py.notin": lambda a, b: a not in b, "py.is": operator.is_,
    "py.isnot": operator.is_not, "py.iadd": operator.iadd, "py.imul": operator.imul, "py.ior": operator.ior,
}
_UNARY: dict[str, Callable[[Any], Any]] = {
    "py.neg": operator.neg, "py.pos": operator.pos, "py.invert": operator.invert, "py.not": operator.not_,
    "py.truth": bool, "py.iter": iter,
}


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Return(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


class _Env:
    def __init__(self, names: dict[str, Any], parent: _Env | None) -> None:
        self.names = names
        self.parent = parent


class _Function:
    def __init__(self, ev: _Evaluator, node: list[Any], env: _Env) -> None:
        self.ev, self.env = ev, env
        self.name = node[1] or "<lambda>"
        self.params = [(p, _UNBOUND if d is None else ev.expr(d, env)) for p, d in node[2]]
        self.body = node[3]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if len(args) > len(self.params):
            required = sum(1 for _, d in self.params if d is _UNBOUND)
            takes = f"from {required} to {len(self.params)}" if required < len(self.params) else str(required)
            plural = "" if takes == "1" else "s"
            raise TypeError(f"{self.name}() takes {takes} positional argument{plural} but {len(args)} "
                            f"{'was' if len(args) == 1 else 'were'} given")
        names: dict[str, Any] = {}
        missing: list[str] = []
        for i, (param, default) in enumerate(self.params):
            if i < len(args):
                if param in kwargs:
                    raise TypeError(f"{self.name}() got multiple values for argument '{param}'")
                names[param] = args[i]
            elif param in kwargs:
                names[param] = kwargs.pop(param)
            elif default is not _UNBOUND:
                names[param] = default
            else:
                missing.append(f"'{param}'")
        if missing:
            listed = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " and " + missing[-1]
            raise TypeError(f"{self.name}() missing {len(missing)} required positional argument"
                            f"{'s' if len(missing) > 1 else ''}: {listed}")
        if kwargs:
            raise TypeError(f"{self.name}() got an unexpected keyword argument '{next(iter(kwargs))}'")
        try:
            self.ev.stmt(self.body, _Env(names, self.env))
        except _Return as r:
            return r.value
        return None


class _Evaluator:
    def __init__(self, out: io.StringIO) -> None:
        self.globals: dict[str, Any] = {}
        self.out = out
        self.handling: list[BaseException] = []

    def print(self, *args: Any, sep: str | None = " ", end: str | None = "\n") -> None:
        builtins.print(*args, sep=sep, end=end, file=self.out)

    # --- names ---

    def lookup(self, name: str, env: _Env) -> Any:
        e: _Env | None = env
        while e is not None:
            if name in e.names:
                value = e.names[name]
                if value is _UNBOUND:
                    raise UnboundLocalError(f"cannot access local variable '{name}' where it is not associated with "
                                            "a value")
                return value
            e = e.parent
        return self.gget(name)

    def gget(self, name: str) -> Any:
        if name not in self.globals or self.globals[name] is _UNBOUND:
            raise NameError(f"name '{name}' is not defined")
        return self.globals[name]

    def assign(self, target: list[Any], value: Any, env: _Env) -> None:
        while target[0] == "@":
            target = target[3]
        kind = target[0]
        if kind == "std.var":
            e: _Env | None = env
            while e is not None:
                if target[1] in e.names:
                    e.names[target[1]] = value
                    return
                e = e.parent
            self.globals[target[1]] = value
        elif kind == "std.gvar":
            self.globals[target[1]] = value
        elif kind == "py.index":
            obj = self.expr(target[1], env)
            obj[self.expr(target[2], env)] = value
        elif kind == "std.unpack":
            items = list(value)
            want = len(target) - 1
            if len(items) > want:
                raise ValueError(f"too many values to unpack (expected {want})")
            if len(items) < want:
                raise ValueError(f"not enough values to unpack (expected {want}, got {len(items)})")
            for t, v in zip(target[1:], items, strict=True):
                self.assign(t, v, env)
        else:
            raise AssertionError(f"not a target: {kind}")

    # --- statements ---

    def stmt(self, node: list[Any], env: _Env) -> None:
        kind = node[0]
        if kind == "@":
            self.stmt(node[3], env)
        elif kind == "std.seq":
            for s in node[1:]:
                self.stmt(s, env)
        elif kind == "std.block":
            inner = _Env({}, env)
            for s in node[1:]:
                self.stmt(s, inner)
        elif kind == "std.pass":
            pass
        elif kind == "std.expr":
            self.expr(node[1], env)
        elif kind == "std.let":
            env.names[node[1]] = self.expr(node[2], env) if len(node) > 2 and node[2] is not None else _UNBOUND
        elif kind == "std.set":
            self.assign(node[1], self.expr(node[2], env), env)
        elif kind == "std.if":
            if self.expr(node[1], env):
                self.stmt(node[2], env)
            elif len(node) > 3 and node[3] is not None:
                self.stmt(node[3], env)
        elif kind == "std.while":
            while self.expr(node[1], env):
                try:
                    self.stmt(node[2], env)
                except _Break:
                    break
                except _Continue:
                    continue
        elif kind == "std.for":
            for item in self.expr(node[2], env):
                self.assign(node[1], item, env)
                try:
                    self.stmt(node[3], env)
                except _Break:
                    break
                except _Continue:
                    continue
        elif kind == "std.break":
            raise _Break
        elif kind == "std.continue":
            raise _Continue
        elif kind == "std.return":
            raise _Return(self.expr(node[1], env) if len(node) > 1 and node[1] is not None else None)
        elif kind == "std.try":
            self.try_(node, env)
        elif kind == "std.raise":
            if len(node) < 2 or node[1] is None:
                if not self.handling:
                    raise RuntimeError("No active exception to reraise")
                raise self.handling[-1]
            exc = self.expr(node[1], env)
            raise exc() if isinstance(exc, type) else exc
        elif kind == "py.delitem":
            obj = self.expr(node[1], env)
            del obj[self.expr(node[2], env)]
        else:
            raise AssertionError(f"not a statement: {kind}")

    def try_(self, node: list[Any], env: _Env) -> None:
        final = node[3] if len(node) > 3 else None
        try:
            try:
                self.stmt(node[1], env)
            except (_Break, _Continue, _Return):
                raise
            except Exception as exc:
                for type_name, name, body in node[2]:
                    if type_name is None or isinstance(exc, getattr(builtins, type_name)):
                        if name is not None:
                            self.assign(["std.var", name], exc, env)
                        self.handling.append(exc)
                        try:
                            self.stmt(body, env)
                        finally:
                            self.handling.pop()
                        break
                else:
                    raise
        finally:
            if final is not None:
                self.stmt(final, env)

    # --- expressions ---

    def expr(self, node: list[Any], env: _Env) -> Any:
        kind = node[0]
        if kind == "@":
            return self.expr(node[3], env)
        if kind in _BINARY:
            return _BINARY[kind](self.expr(node[1], env), self.expr(node[2], env))
        if kind in _UNARY:
            return _UNARY[kind](self.expr(node[1], env))
        if kind == "std.var":
            return self.lookup(node[1], env)
        if kind == "std.gvar":
            return self.gget(node[1])
        if kind == "std.builtin":
            name = node[1].removeprefix("py.")
            return self.print if name == "print" else getattr(builtins, name)
        if kind == "std.int":
            return int(node[1])
        if kind == "std.float":
            return float(node[1])
        if kind in ("std.str", "std.bool"):
            return node[1]
        if kind == "std.none":
            return None
        if kind == "std.list":
            return [self.expr(e, env) for e in node[1:]]
        if kind == "std.tuple":
            return tuple(self.expr(e, env) for e in node[1:])
        if kind == "std.dict":
            result = {}
            for k, v in node[1:]:
                key = self.expr(k, env)
                result[key] = self.expr(v, env)
            return result
        if kind == "std.cond":
            return self.expr(node[2], env) if self.expr(node[1], env) else self.expr(node[3], env)
        if kind == "std.fn":
            return _Function(self, node, env)
        if kind == "py.and":
            left = self.expr(node[1], env)
            return self.expr(node[2], env) if left else left
        if kind == "py.or":
            left = self.expr(node[1], env)
            return left if left else self.expr(node[2], env)
        if kind == "py.call":
            f = self.expr(node[1], env)
            args = [self.expr(a, env) for a in node[2]]
            kwargs = {k: self.expr(v, env) for k, v in node[3]}
            return f(*args, **kwargs)
        if kind == "py.method":
            obj = self.expr(node[1], env)
            args = [self.expr(a, env) for a in node[3]]
            kwargs = {k: self.expr(v, env) for k, v in node[4]}
            return getattr(obj, node[2])(*args, **kwargs)
        if kind == "py.index":
            obj = self.expr(node[1], env)
            return obj[self.expr(node[2], env)]
        if kind == "py.slice":
            obj = self.expr(node[1], env)
            parts = [None if p is None else self.expr(p, env) for p in [*node[2:], None, None, None][:3]]
            return obj[parts[0]:parts[1]:parts[2]]
        if kind == "py.fstring":
            return "".join(p if isinstance(p, str) else self.expr(p, env) for p in node[1])
        if kind == "py.format":
            value = self.expr(node[1], env)
            value = repr(value) if node[2] == "r" else str(value) if node[2] == "s" else value
            spec = node[3] if isinstance(node[3], str) else self.expr(node[3], env)
            return format(value, spec)
        if kind == "std.cap":
            raise AssertionError("capabilities are the VM's")
        raise AssertionError(f"not an expression: {kind}")


def run(doc: dict[str, Any]) -> tuple[str, str]:
    """(what the program printed, the uncaught exception as 'Type: message' or '')."""
    out = io.StringIO()
    ev = _Evaluator(out)
    result: list[str] = [""]

    def main() -> None:
        try:
            ev.stmt(doc["body"], _Env(ev.globals, None))
        except Exception as exc:  # the guest's uncaught exception
            result[0] = f"{type(exc).__name__}: {exc}"

    # guest recursion costs ~20 evaluator frames per call: a thread with a large stack and limit
    old_limit, old_size = sys.getrecursionlimit(), threading.stack_size()
    sys.setrecursionlimit(100_000)
    threading.stack_size(512 * 1024 * 1024)
    try:
        thread = threading.Thread(target=main)
        thread.start()
        thread.join()
    finally:
        threading.stack_size(old_size)
        sys.setrecursionlimit(old_limit)
    return out.getvalue(), result[0]
