"""The WebAssembly runtime: `python3 -m exo_init.runtimes.wasm`, what PID 1 runs for a capsule with
`runtime = "wasm"` (the Azoth design's software fault isolation, with wasmtime).

One run, in order:

1. **Load** the module (`wasm.module`, .wasm or .wat, at most MODULE_MAX bytes): wasmtime validates
   it and compiles it with fuel metering (and epoch interruption when there is a deadline). The
   compiled code is cached by content in the capsule's state directory (`KEY.cwasm`, KEY = hash of
   the module's bytes, the wasmtime version and the engine flags; Module.serialize/deserialize),
   so the next start skips compilation. Only this runtime writes that directory: the guest code is
   refused it even under a grant (a serialized module is native code, trusted when loaded).
2. **Link** against the capability import table (`IMPORTS`, module `exo`): every import of the
   module must be in the table, of the table's type, and granted by the capsule's capabilities
   (`exo.fs_read` needs a `capabilities.filesystem` entry, `exo.fs_write` an `rw` one); anything
   else is refused before any instruction runs, naming the import. The linker holds only the
   functions the module imports. There is no WASI and no other way out of the module.
3. **Instantiate** in a store with the fuel budget (`wasm.fuel`), the memory limit
   (`wasm.memory_max`: `memory.grow` beyond it returns -1; one linear memory, bounded tables) and
   the deadline (`wasm.deadline`, wall clock from here: one timer thread increments the engine's
   epoch once when it expires, and the module traps at its next epoch check). Then READY=1.
4. **Run** the entry (`wasm.entry`, default `_start`: no parameters, no result or an i32 that is 0
   on success). Every memory access is bounds-checked by wasmtime (guard pages); host functions
   check every (pointer, length) against the module's memory and trap when it is outside.

Figures go to PID 1 as EXO_METRICS (fuel used against `wasm.fuel`, linear memory against
`wasm.memory_max`, time against the deadline), at readiness, at most once a second from host calls
(a module in a tight loop reports again when it ends: fuel is only exact between instructions),
and at the end. The end of a run is one line (exo_init/lib/runtime.py): out of fuel, a trap, a
refused import, a bad module are deterministic (exit EXIT_DETERMINISTIC: `failed`, not restarted);
the deadline is wall-clock time and depends on the machine's load, so it exits EXIT_FAILED and is
restarted by the capsule's policy like any crash.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.metadata
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exo_init.lib.runtime import Metric, RuntimeConfig, metric_text
from exo_init.runtimes.common import Failure, Reporter, finish, read_config
from exo_init.runtimes.grants import FileGrants, GrantError

MODULE_MAX = 64 << 20        # bytes of module file
LOG_MAX = 4096               # bytes of one exo.log line
FS_MAX = 16 << 20            # bytes one exo.fs_read / exo.fs_write moves at most
SLEEP_MAX = 3600.0           # seconds one exo.sleep_ms sleeps at most
REFUSALS_LOGGED = 20         # refused file accesses written to the log per run (the rest only counted)
TABLE_ELEMENTS = 100_000     # per table
TABLES = 8
CACHE_VERSION = "1"
CACHE_SUFFIX = ".cwasm"


class HostTrap(Exception):
    """Raised in a host function: the module traps, and this message says why."""


@dataclass(frozen=True)
class HostFunc:
    params: tuple[str, ...]
    results: tuple[str, ...]
    grant: str                 # "": always; "read": any filesystem grant; "write": an rw one
    doc: str

    def signature(self) -> str:
        return f"({' '.join(self.params)}) -> ({' '.join(self.results)})"


# The capability import table (module "exo"): the Crucible contract's diagnostic sink (log), time,
# and the filesystem as the capsule's grants allow it. Pointers and lengths are i32 into the
# module's exported memory ("memory"); results < 0 are -errno.
IMPORT_MODULE = "exo"
IMPORTS: dict[str, HostFunc] = {
    "log": HostFunc(("i32", "i32"), (), "", "write the UTF-8 text at (ptr, len) to the capsule log as one line"),
    "clock_ms": HostFunc((), ("i64",), "", "milliseconds since the Unix epoch"),
    "sleep_ms": HostFunc(("i64",), (), "", "sleep this many milliseconds (not past the deadline)"),
    "fs_read": HostFunc(("i32", "i32", "i32", "i32"), ("i64",), "read",
                        "read the file at path (ptr, len) into (buf, cap): the bytes read, or -errno"),
    "fs_write": HostFunc(("i32", "i32", "i32", "i32"), ("i64",), "write",
                         "replace the file at path (ptr, len) with (buf, len): the bytes written, or -errno"),
}
GRANT_TEXT = {"read": "a capabilities.filesystem entry", "write": "a capabilities.filesystem entry with \"rw\""}


@dataclass(frozen=True)
class Options:
    """The manifest's `wasm` section, as the plan passed it."""

    module: str
    entry: str
    fuel: int
    memory_max: int
    deadline: float

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Options:
        try:
            opts = cls(module=str(raw["module"]), entry=str(raw["entry"]), fuel=int(raw["fuel"]),
                       memory_max=int(raw["memory_max"]), deadline=float(raw["deadline"]))
        except (KeyError, TypeError, ValueError) as e:
            raise Failure(f"wasm runtime: bad configuration ({e!r})") from None
        if opts.fuel < 1 or opts.memory_max < 0 or opts.deadline < 0:
            raise Failure(f"wasm runtime: bad configuration {raw!r}")
        return opts


def _u32(value: int) -> int:
    return value & 0xFFFFFFFF


class Run:
    """One run of one module: load, link, instantiate, run; every figure and refusal."""

    def __init__(self, config: RuntimeConfig, reporter: Reporter) -> None:
        import wasmtime  # noqa: PLC0415 -- imported here so that a missing wasmtime is one clear Failure

        self.wasmtime = wasmtime
        self.config = config
        self.reporter = reporter
        self.opts = Options.parse(config.options)
        self.name = Path(self.opts.module).name
        filesystem = config.grants.get("filesystem") or {}
        self.files = FileGrants({str(k): str(v) for k, v in dict(filesystem).items()},
                                deny=(config.state_dir,) if config.state_dir else ())
        self.flags = {"consume_fuel": True, "epoch_interruption": self.opts.deadline > 0}
        cfg = wasmtime.Config()
        cfg.consume_fuel = True
        cfg.epoch_interruption = self.opts.deadline > 0
        self.engine = wasmtime.Engine(cfg)
        self.store = wasmtime.Store(self.engine)
        self.store.set_limits(memory_size=self.opts.memory_max, table_elements=TABLE_ELEMENTS, instances=1,
                              tables=TABLES, memories=1)
        self.store.set_fuel(self.opts.fuel)
        self.memory: Any = None
        self.started: float | None = None
        self.deadline_timer: threading.Timer | None = None
        self.refusals = 0
        self.load_note = ""

    # --- figures ---------------------------------------------------------------------------------

    def fuel_used(self) -> int:
        try:
            return self.opts.fuel - int(self.store.get_fuel())
        except self.wasmtime.WasmtimeError:
            return 0

    def memory_bytes(self) -> int:
        return int(self.memory.data_len(self.store)) if self.memory is not None else 0

    def metrics(self) -> dict[str, Metric]:
        out = {"fuel": Metric(self.fuel_used(), self.opts.fuel, "count"),
               "memory": Metric(self.memory_bytes(), self.opts.memory_max, "bytes")}
        if self.opts.deadline > 0:
            elapsed = time.monotonic() - self.started if self.started is not None else 0.0
            out["deadline"] = Metric(round(elapsed, 3), self.opts.deadline, "seconds")
        return out

    def budgets(self, exact_fuel: bool = True) -> str:
        """`fuel 1.2M/1G, memory 64K/16M`. After a trap other than out-of-fuel wasmtime has not
        written back the fuel the trapping function used: then it is a lower bound ("fuel >=")."""
        m = self.metrics()
        fuel = metric_text("fuel", m["fuel"])
        return f"{fuel if exact_fuel else fuel.replace('fuel ', 'fuel >=', 1)}, {metric_text('memory', m['memory'])}"

    # --- load ------------------------------------------------------------------------------------

    def read_module(self) -> bytes:
        try:
            with open(self.opts.module, "rb") as f:
                data = f.read(MODULE_MAX + 1)
        except OSError as e:
            raise Failure(f"wasm: cannot read the module {self.opts.module}: {e.strerror or e}") from None
        if len(data) > MODULE_MAX:
            raise Failure(f"wasm: the module {self.opts.module} is larger than {MODULE_MAX >> 20} MiB")
        return data

    def cache_key(self, data: bytes) -> str:
        version = importlib.metadata.version("wasmtime")
        head = json.dumps({"cache": CACHE_VERSION, "wasmtime": version, "flags": self.flags}, sort_keys=True)
        return hashlib.sha256(head.encode() + b"\0" + data).hexdigest()[:40]

    def load(self) -> Any:
        """The compiled module: from the cache, else compiled (and cached)."""
        wasmtime = self.wasmtime
        data = self.read_module()
        cache = Path(self.config.state_dir) if self.config.state_dir else None
        cached = cache / f"{self.cache_key(data)}{CACHE_SUFFIX}" if cache is not None else None
        t0 = time.monotonic()
        if cached is not None and cached.exists():
            try:
                module = wasmtime.Module.deserialize_file(self.engine, str(cached))
                self.load_note = f"loaded from cache in {(time.monotonic() - t0) * 1000:.0f} ms"
                return module
            except (wasmtime.WasmtimeError, OSError) as e:
                print(f"wasm: cached {cached.name} unusable ({_first_line(e)}); compiling", file=sys.stderr)
        try:
            if self.opts.module.endswith(".wat"):
                module = wasmtime.Module(self.engine, data.decode("utf-8"))
            else:
                module = wasmtime.Module(self.engine, data)
        except UnicodeDecodeError as e:
            raise Failure(f"wasm: bad module {self.opts.module}: not UTF-8 text ({e.reason} at byte "
                          f"{e.start})") from None
        except wasmtime.WasmtimeError as e:
            raise Failure(f"wasm: bad module {self.opts.module}: {_first_line(e)}") from None
        self.load_note = f"compiled in {(time.monotonic() - t0) * 1000:.0f} ms"
        if cached is not None:
            self.store_cache(module, cached)
        return module

    def store_cache(self, module: Any, cached: Path) -> None:
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}")
        try:
            tmp.write_bytes(bytes(module.serialize()))
            os.replace(tmp, cached)
            for old in cached.parent.iterdir():  # one module per capsule: older versions go
                if old != cached and (old.suffix == CACHE_SUFFIX or old.name.startswith(".")):
                    old.unlink()
            self.load_note += ", cached"
        except OSError as e:  # a full or read-only disk costs the next start a compilation, nothing else
            print(f"wasm: cannot cache the compiled module in {cached.parent}: {e.strerror or e}", file=sys.stderr)
            tmp.unlink(missing_ok=True)

    # --- link ------------------------------------------------------------------------------------

    def granted(self, func: HostFunc) -> bool:
        return {"": True, "read": self.files.readable, "write": self.files.writable}[func.grant]

    def link(self, module: Any) -> Any:
        """A linker holding exactly the module's imports, each checked against the table and the
        grants; Failure naming the first import that is refused."""
        wasmtime = self.wasmtime
        linker = wasmtime.Linker(self.engine)
        table = ", ".join(f"{IMPORT_MODULE}.{n}" for n in IMPORTS)
        for imp in module.imports:
            name = f"{imp.module}.{imp.name}"
            func = IMPORTS.get(imp.name) if imp.module == IMPORT_MODULE else None
            if func is None:
                raise Failure(f"wasm: import {name} refused at link time: not in the import table ({table})")
            if not isinstance(imp.type, wasmtime.FuncType):
                raise Failure(f"wasm: import {name} refused at link time: the table has functions only, "
                              f"not a {type(imp.type).__name__}")
            given = f"({' '.join(map(str, imp.type.params))}) -> ({' '.join(map(str, imp.type.results))})"
            if given != func.signature():
                raise Failure(f"wasm: import {name} refused at link time: type {given}, the table's is "
                              f"{func.signature()}")
            if not self.granted(func):
                raise Failure(f"wasm: import {name} refused at link time: not granted (it needs "
                              f"{GRANT_TEXT[func.grant]})")
            ty = wasmtime.FuncType([_valtype(wasmtime, t) for t in func.params],
                                   [_valtype(wasmtime, t) for t in func.results])
            linker.define_func(IMPORT_MODULE, imp.name, ty, self.host(imp.name), access_caller=True)
        return linker

    def entry(self, instance: Any) -> Any:
        exports = instance.exports(self.store)
        func = exports.get(self.opts.entry)
        names = ", ".join(sorted(exports.keys())) or "none"
        if not isinstance(func, self.wasmtime.Func):
            raise Failure(f"wasm: the module exports no function {self.opts.entry!r} (wasm.entry; its exports: "
                          f"{names})")
        ty = func.type(self.store)
        if list(ty.params) or [str(t) for t in ty.results] not in ([], ["i32"]):
            raise Failure(f"wasm: {self.opts.entry} must take no parameters and return nothing or an i32")
        memory = exports.get("memory")
        self.memory = memory if isinstance(memory, self.wasmtime.Memory) else None
        return func

    # --- run -------------------------------------------------------------------------------------

    def start_clock(self) -> None:
        self.started = time.monotonic()
        if self.opts.deadline > 0:
            self.store.set_epoch_deadline(1)
            self.deadline_timer = threading.Timer(self.opts.deadline, self.engine.increment_epoch)
            self.deadline_timer.daemon = True
            self.deadline_timer.start()

    def stop_clock(self) -> None:
        if self.deadline_timer is not None:
            self.deadline_timer.cancel()

    def run(self) -> str:
        """Load, link, instantiate, run; the line saying how it went, or Failure."""
        wasmtime = self.wasmtime
        module = self.load()
        linker = self.link(module)
        self.start_clock()
        try:
            try:
                instance = linker.instantiate(self.store, module)
            except (wasmtime.Trap, HostTrap):
                raise
            except wasmtime.WasmtimeError as e:
                raise Failure(f"wasm: cannot instantiate {self.name}: {_first_line(e)} (wasm.memory_max "
                              f"{self.opts.memory_max} bytes)") from None
            func = self.entry(instance)
            self.reporter.ready(f"running {self.name} ({self.load_note})", self.metrics())
            print(f"wasm: {self.name}: {self.load_note}; running {self.opts.entry}", file=sys.stderr, flush=True)
            result = func(self.store)
        except (wasmtime.Trap, wasmtime.WasmtimeError, HostTrap) as e:
            raise self.classify(e) from None
        finally:
            self.stop_clock()
        if isinstance(result, int) and result != 0:
            raise Failure(f"wasm: {self.opts.entry} returned {result}; {self.budgets()}", deterministic=False)
        return f"{self.name}: {self.opts.entry} returned; {self.budgets()}"

    def classify(self, e: Exception) -> Failure:
        """A trap (or a host function's refusal) -> the run's one line."""
        wasmtime = self.wasmtime
        if isinstance(e, HostTrap):
            return Failure(f"wasm trap in a host call: {e}; {self.budgets(exact_fuel=False)}")
        code = getattr(e, "trap_code", None)
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            return Failure(f"wasm trap: out of fuel (all {self.opts.fuel} of wasm.fuel used); {self.budgets()}")
        if code == wasmtime.TrapCode.INTERRUPT:
            elapsed = time.monotonic() - (self.started or time.monotonic())
            return Failure(f"wasm trap: deadline (stopped after {elapsed:.2f} s, wasm.deadline "
                           f"{self.opts.deadline:g} s); {self.budgets(exact_fuel=False)}", deterministic=False)
        what = code.name.lower().replace("_", " ") if code is not None else "error"
        return Failure(f"wasm trap: {what} ({_first_line(e)}); {self.budgets(exact_fuel=False)}")

    # --- the import table's functions --------------------------------------------------------------

    def host(self, name: str) -> Callable[..., Any]:
        funcs: dict[str, Callable[..., Any]] = {"log": self.h_log, "clock_ms": self.h_clock_ms,
                                                "sleep_ms": self.h_sleep_ms, "fs_read": self.h_fs_read,
                                                "fs_write": self.h_fs_write}
        return funcs[name]

    def _memory(self, caller: Any, what: str) -> Any:
        memory = caller.get("memory")
        if not isinstance(memory, self.wasmtime.Memory):
            raise HostTrap(f"{what}: the module exports no memory named \"memory\"")
        return memory

    def _span(self, caller: Any, ptr: int, length: int, what: str) -> tuple[Any, int, int]:
        memory = self._memory(caller, what)
        start, size, total = _u32(ptr), _u32(length), int(memory.data_len(caller))
        if start + size > total:
            raise HostTrap(f"{what}: buffer [{start}, {start + size}) is outside the module's memory ({total} bytes)")
        return memory, start, size

    def _load(self, caller: Any, ptr: int, length: int, what: str, limit: int) -> bytes:
        memory, start, size = self._span(caller, ptr, length, what)
        if size > limit:
            raise HostTrap(f"{what}: {size} bytes is more than one call takes ({limit})")
        return bytes(memory.read(caller, start, start + size))

    def _refused(self, error: GrantError, what: str) -> int:
        self.refusals += 1
        if self.refusals <= REFUSALS_LOGGED:
            print(f"wasm: {what} refused: {error.message}", file=sys.stderr, flush=True)
        return -error.errno

    def _progress(self) -> None:
        self.reporter.metrics(self.metrics)

    def h_log(self, caller: Any, ptr: int, length: int) -> None:
        data = self._load(caller, ptr, min(_u32(length), LOG_MAX), "exo.log", LOG_MAX)
        text = data.decode("utf-8", errors="replace").replace("\r", " ").rstrip("\n")
        sys.stdout.write(" | ".join(text.split("\n")) + "\n")
        sys.stdout.flush()
        self._progress()

    def h_clock_ms(self, caller: Any) -> int:
        return time.time_ns() // 1_000_000

    def h_sleep_ms(self, caller: Any, ms: int) -> None:
        seconds = min(max(ms, 0) / 1000, SLEEP_MAX)
        if self.opts.deadline > 0 and self.started is not None:  # wake up for the deadline's trap
            seconds = min(seconds, max(0.0, self.started + self.opts.deadline - time.monotonic()) + 0.01)
        time.sleep(seconds)
        self._progress()

    def h_fs_read(self, caller: Any, path_ptr: int, path_len: int, buf: int, cap: int) -> int:
        path = self._load(caller, path_ptr, path_len, "exo.fs_read path", 4096).decode("utf-8", errors="replace")
        memory, start, size = self._span(caller, buf, cap, "exo.fs_read buffer")
        try:
            data = self.files.read(path, min(size, FS_MAX))
        except GrantError as e:
            return self._refused(e, f"exo.fs_read {path[:200]}")
        memory.write(caller, data, start)
        self._progress()
        return len(data)

    def h_fs_write(self, caller: Any, path_ptr: int, path_len: int, buf: int, length: int) -> int:
        path = self._load(caller, path_ptr, path_len, "exo.fs_write path", 4096).decode("utf-8", errors="replace")
        if _u32(length) > FS_MAX:
            return self._refused(GrantError(errno.EFBIG, f"{path}: more than {FS_MAX} bytes in one call"),
                                 "exo.fs_write")
        data = self._load(caller, buf, length, "exo.fs_write buffer", FS_MAX)
        try:
            written = self.files.write(path, data)
        except GrantError as e:
            return self._refused(e, f"exo.fs_write {path[:200]}")
        self._progress()
        return written


def _valtype(wasmtime: Any, name: str) -> Any:
    return {"i32": wasmtime.ValType.i32, "i64": wasmtime.ValType.i64}[name]()


def _first_line(e: BaseException) -> str:
    """wasmtime's error text in one line: its causes ("Caused by:" items, numbered or not) when it
    has them, else its first line; never the backtrace."""
    lines = [raw.strip() for raw in str(e).strip().splitlines()]
    if "Caused by:" in lines:
        causes = [re.sub(r"^\d+:\s*", "", line) for line in lines[lines.index("Caused by:") + 1:] if line]
        return "; ".join(causes)[:300]
    return next((line for line in lines if line), type(e).__name__)[:300]


def main() -> None:
    reporter = Reporter()
    run: Run | None = None
    failure: Failure | None = None
    done = ""
    try:
        config = read_config("wasm")
        reporter.status(f"loading {Path(str(config.options.get('module', '?'))).name}")
        try:
            run = Run(config, reporter)
        except ImportError as e:
            raise Failure(f"wasm runtime: cannot import wasmtime ({e}); the image installs the pinned wheel") from None
        done = run.run()
        print(f"wasm: {done}", file=sys.stderr, flush=True)
    except Failure as f:
        failure = f
    metrics = run.metrics() if run is not None else {}
    sys.exit(finish(reporter, failure, metrics, done))


if __name__ == "__main__":
    main()
