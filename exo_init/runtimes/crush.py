"""The CRUSH runtime: `python3 -m exo_init.runtimes.crush`, what PID 1 runs for a capsule with
`runtime = "crush"` (crush/: a Python-subset program as CASM, run by a gas-metered VM).

One run, in order:

1. **Load** the program (`crush.program`: CASM, binary or text, or `.py` source compiled now) and
   build the VM's host from the capsule's grants (`capsule_host`): `capabilities.filesystem`
   directories give fs.read/fs.list/fs.stat (and fs.write where "rw"), `capabilities.control`
   gives control.status; log, clock, sleep, yield and random are always granted (they reach
   nothing outside the capsule). The runtime's own state directory is refused even under a grant
   (a program that could write its checkpoint could forge its own state). A program declaring a
   capability the host does not grant is refused before any instruction runs (a deterministic
   failure naming the capability).
2. **Resume** the checkpoint in the state directory if there is one (crush/state.py checks every
   field, and that it was saved for this very program). One that cannot be resumed is moved aside
   (`checkpoint.bad-TIME.json`, never deleted) and, by `crush.on_bad_checkpoint`, the capsule
   fails naming what is wrong (`fail`) or the run starts over (`restart`). Then READY=1.
3. **Run** in slices of SLICE instructions; between two slices: SIGTERM (stop, poweroff, reboot)
   takes a checkpoint and ends the run (exit 0: the computation is paused, not failed); SIGUSR1
   (`exoctl checkpoint NAME`) and each `crush.checkpoint_every` more gas take one and go on;
   the figures go to PID 1 (at most once a second). A `sleep` capability call takes a checkpoint
   and waits for its wake time (or a signal); `yield` is a point where a requested checkpoint is
   taken.

A checkpoint is written atomically: a temporary file, fsync, rename over `checkpoint.json`, fsync
of the directory (as generations are), so a power cut leaves the previous complete checkpoint or
the new one, never a torn one. When the program ends its checkpoint is removed: the next start
runs it from the beginning.

Gas is a quota like CPU and memory: `crush.gas` is the budget of the whole computation, across
checkpoints and resumes (the saved state carries the gas left). Out of gas, out of arena, a
refused capability, a refused program or checkpoint are deterministic (exit EXIT_DETERMINISTIC:
`failed`, not restarted), each one line naming the budget and the source line. An exception the
program does not catch prints its traceback and exits EXIT_FAILED (restarted by the policy: it
may depend on the files it read).

Gas is also a rate where `crush.gas_per_period` is set: at most that much gas in each
`crush.period` seconds of a run (`GasRate`, a token bucket aligned on the run's start). A program
that has used its period's gas waits for the next period, throttled like a cgroup at its cpu.max,
not failed; a slice that overran the allowance (instructions cost more than 1 gas) is paid back
by the next periods, so over any whole number of periods the rate holds. A stop or a checkpoint
request ends the wait.

Figures (EXO_METRICS): `gas` used against `crush.gas`, `arena` live bytes against `crush.arena`,
`checkpoint_gas` (the gas used at the last checkpoint) and `checkpoint_age` (seconds since it);
with a rate, `gas_throttled` (seconds spent waiting for the next period).
"""

from __future__ import annotations

import errno
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crush import state
from crush.caps import FsGrant, ScopedHost
from crush.cli import Failure as LoadFailure
from crush.cli import load_program, traceback_text
from crush.errors import TrapCode, TrapError
from crush.vm import VM, Status
from exo_init.client.control import call
from exo_init.lib.paths import CONTROL_SOCKET, DEFAULT_RUNTIME
from exo_init.lib.runtime import Metric, RuntimeConfig, metric_text
from exo_init.runtimes.common import Failure, Reporter, finish, read_config

SLICE = 200_000                # instructions between two looks at signals, checkpoints and figures
CHECKPOINT = "checkpoint.json"
ALWAYS = ("log", "clock", "sleep", "yield", "random")  # capabilities that reach nothing outside the capsule
CONTROL_TIMEOUT = 10.0
METRICS_FORCE_WAIT = 1.0       # a throttled wait this long sends the figures at once (not rate-limited)


@dataclass(frozen=True)
class Options:
    """The manifest's `crush` section, as the plan passed it."""

    program: str
    gas: int
    arena: int
    checkpoint_every: int
    on_bad_checkpoint: str
    fast: bool
    gas_per_period: int = 0
    period: float = 1.0

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Options:
        try:
            opts = cls(program=str(raw["program"]), gas=int(raw["gas"]), arena=int(raw["arena"]),
                       checkpoint_every=int(raw["checkpoint_every"]), on_bad_checkpoint=str(raw["on_bad_checkpoint"]),
                       fast=bool(raw["fast"]), gas_per_period=int(raw.get("gas_per_period", 0)),
                       period=float(raw.get("period", 1.0)))
        except (KeyError, TypeError, ValueError) as e:
            raise Failure(f"crush runtime: bad configuration ({e!r})") from None
        if (opts.gas < 1 or opts.arena < 1 or opts.checkpoint_every < 0 or opts.gas_per_period < 0
                or not opts.period > 0 or opts.on_bad_checkpoint not in ("fail", "restart")):
            raise Failure(f"crush runtime: bad configuration {dict(raw)!r}")
        return opts


@dataclass
class GasRate:
    """`crush.gas_per_period`: a token bucket of `per_period` gas per `period` seconds, aligned on
    the run's start `t0` (with `base` gas used then). Invariant: the gas spent since t0 is below
    per_period * (whole periods since t0 + 1) whenever the run goes on; a slice that overran is
    paid back by waiting for a later period. per_period 0: no rate."""

    per_period: int
    period: float
    t0: float
    base: int
    throttled: float = 0.0   # seconds spent waiting, this run

    def allowed(self, now: float) -> int:
        return self.per_period * (int((now - self.t0) // self.period) + 1)

    def wait(self, used: int, now: float) -> float:
        """Seconds to wait before the run may go on (0: now)."""
        spent = used - self.base
        if self.per_period <= 0 or spent < self.allowed(now):
            return 0.0
        return max(0.0, self.t0 + (spent // self.per_period) * self.period - now)

    def steps(self, used: int, now: float, gas_per_step: float) -> int:
        """How many instructions the next slice may run: about the allowance left (SLICE at most)."""
        if self.per_period <= 0:
            return SLICE
        left = self.allowed(now) - (used - self.base)
        return max(1, min(SLICE, int(left / max(1.0, gas_per_step))))


@dataclass
class CapsuleHost(ScopedHost):
    """The Scoped HAL's host with the capsule's own state directory refused beneath any grant."""

    deny: tuple[str, ...] = ()

    def _check(self, cap: str, path: Any) -> tuple[FsGrant, list[str]]:
        grant, below = super()._check(cap, path)
        full = (*grant.parts, *below)
        for denied in self.deny:
            parts = tuple(p for p in denied.split("/") if p)
            if full[:len(parts)] == parts:
                raise TrapError(TrapCode.CAPABILITY_DENIED, f"{cap}({path!r}): the runtime's own state, not granted")
        return grant, below


def capsule_host(grants: Mapping[str, Any], state_dir: str | None, log: Callable[[str], None],
                 status: Callable[[str | None], Any] | None) -> tuple[CapsuleHost, list[str]]:
    """The VM's host for these grants, and notes on grants it cannot honour (a granted file, not a
    directory, or a path that is not there: the VM grants directories)."""
    host = CapsuleHost(log=log, status=status if grants.get("control") else None,
                       deny=(os.path.realpath(state_dir),) if state_dir else ())
    host.caps.update(ALWAYS)
    if host.status is not None:
        host.caps.add("control.status")
    notes: list[str] = []
    for path, mode in dict(grants.get("filesystem") or {}).items():
        resolved = os.path.realpath(str(path))
        if not os.path.isdir(resolved):
            notes.append(f"capabilities.filesystem {path}: not a directory here; the VM grants directories only")
            continue
        host.fs.append(FsGrant(resolved, mode == "rw"))
        host.caps.update({"fs.read", "fs.list", "fs.stat"} | ({"fs.write"} if mode == "rw" else set()))
    return host, notes


def control_status(name: str | None) -> Any:
    """control.status: exo_init's status of one capsule or all (the control API's `status`)."""
    request: dict[str, Any] = {"op": "status"} | ({"name": name} if name is not None else {})
    try:
        return call(DEFAULT_RUNTIME / CONTROL_SOCKET, request, timeout=CONTROL_TIMEOUT)
    except OSError as e:
        return {"error": f"cannot reach exo_init: {e.strerror or e}"}


def write_atomically(path: Path, text: str) -> None:
    """tmp + fsync + rename + fsync of the directory: after a power cut, the old file or the new."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        data = text.encode()
        view, done = memoryview(data), 0
        while done < len(data):
            done += os.write(fd, view[done:])
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dirfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


class Signals:
    """SIGTERM (stop) and SIGUSR1 (checkpoint) as flags, and a wakeup descriptor that a wait
    selects on; the handlers only set a flag (the wakeup byte is written by Python itself)."""

    def __init__(self) -> None:
        self.stop = False
        self.checkpoint = False
        self.read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGUSR1, self._on_checkpoint)

    def _on_stop(self, _sig: int, _frame: object) -> None:
        self.stop = True

    def _on_checkpoint(self, _sig: int, _frame: object) -> None:
        self.checkpoint = True

    def wait(self, seconds: float) -> None:
        """Until `seconds` passed or a signal came."""
        if seconds > 0 and not self.stop:
            select.select([self.read_fd], [], [], seconds)
        try:
            while os.read(self.read_fd, 64):
                pass
        except BlockingIOError:
            pass


def _out(text: str) -> None:
    sys.stdout.write(text)


@dataclass
class Run:
    """One run of one program: load, resume, run, checkpoint; every figure."""

    config: RuntimeConfig
    reporter: Reporter
    signals: Signals
    opts: Options = field(init=False)
    vm: VM | None = None
    saved_gas: int | None = None         # gas used at the last checkpoint (None: none yet)
    saved_at: float | None = None        # time.monotonic() of it
    next_due: int = 0                    # gas used at which checkpoint_every takes the next one
    checkpoints: int = 0
    rate: GasRate | None = None          # crush.gas_per_period, from the run's start

    def __post_init__(self) -> None:
        self.opts = Options.parse(self.config.options)
        self.name = Path(self.opts.program).name
        self.state_dir = Path(self.config.state_dir) if self.config.state_dir else None

    @property
    def checkpoint_path(self) -> Path | None:
        return self.state_dir / CHECKPOINT if self.state_dir is not None else None

    # --- figures ---------------------------------------------------------------------------------

    def metrics(self) -> dict[str, Metric]:
        vm = self.vm
        if vm is None:
            return {}
        out = {"gas": Metric(vm.gas_limit - vm.gas, self.opts.gas, "count"),
               "arena": Metric(vm.arena.allocated, vm.arena.budget, "bytes")}
        if self.saved_gas is not None and self.saved_at is not None:
            out["checkpoint_gas"] = Metric(self.saved_gas, self.opts.gas, "count")
            out["checkpoint_age"] = Metric(round(time.monotonic() - self.saved_at, 1), None, "seconds")
        if self.rate is not None:
            out["gas_throttled"] = Metric(round(self.rate.throttled, 2), None, "seconds")
        return out

    def budgets(self) -> str:
        m = self.metrics()
        return ", ".join(metric_text(k, m[k]) for k in ("gas", "arena") if k in m)

    # --- load and resume ---------------------------------------------------------------------------

    def load(self) -> VM:
        try:
            program = load_program(self.opts.program)
        except LoadFailure as e:
            raise Failure(f"crush: cannot load the program: {e}") from None
        except ImportError as e:  # .py source needs tree-sitter
            raise Failure(f"crush: cannot compile {self.opts.program}: {e}; compile it with `crush compile` "
                          f"and run the .casm") from None
        host, notes = capsule_host(self.config.grants, self.config.state_dir, self._log, control_status)
        for note in notes:
            print(f"crush: {note}", file=sys.stderr, flush=True)
        vm = VM(program, host, gas=self.opts.gas, arena=self.opts.arena, out=_out, fast=self.opts.fast)
        if vm.refusal is not None:  # a refused program or capability: before any instruction runs
            self.vm = vm
            raise Failure(f"crush: {vm.refusal} (refused before running: the capsule's grants decide)")
        return self.resume(vm, host) or vm

    def resume(self, fresh: VM, host: CapsuleHost) -> VM | None:
        """The VM of the checkpoint, if there is one that is valid; None to start afresh."""
        path = self.checkpoint_path
        if path is None:
            return None
        for stale in path.parent.glob(f".{CHECKPOINT}.tmp"):  # a write a power cut interrupted
            stale.unlink()
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise Failure(f"crush: cannot read the checkpoint {path}: {e.strerror or e}") from None
        try:
            vm = state.loads(data, fresh.program, host, out=_out, fast=self.opts.fast)
        except state.StateError as e:
            aside = path.with_name(f"checkpoint.bad-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.json")
            os.replace(path, aside)
            line = f"crush: the checkpoint cannot be resumed ({e}); kept as {aside.name}"
            if self.opts.on_bad_checkpoint == "fail":
                raise Failure(f"{line} (crush.on_bad_checkpoint = \"fail\")") from None
            print(f"{line}; starting over (crush.on_bad_checkpoint = \"restart\")", file=sys.stderr, flush=True)
            return None
        used = vm.gas_limit - vm.gas
        if vm.gas_limit != self.opts.gas:  # the budget is the manifest's: a changed one applies from now
            vm.gas = max(0, self.opts.gas - used)
            vm.gas_limit = self.opts.gas
        self.saved_gas, self.saved_at = used, time.monotonic()
        print(f"crush: {self.name}: resumed from its checkpoint ({vm.steps} instructions, {used} gas used)",
              file=sys.stderr, flush=True)
        return vm

    # --- checkpoints -------------------------------------------------------------------------------

    def checkpoint(self, why: str) -> None:
        vm, path = self.vm, self.checkpoint_path
        if vm is None or path is None:
            return
        sys.stdout.flush()
        try:
            write_atomically(path, state.dumps(vm))
        except OSError as e:  # a full disk: the run goes on, the previous checkpoint stays
            print(f"crush: checkpoint ({why}) failed: {e.strerror or e}", file=sys.stderr, flush=True)
            return
        self.checkpoints += 1
        self.saved_gas, self.saved_at = vm.gas_limit - vm.gas, time.monotonic()
        print(f"crush: checkpoint ({why}): {vm.steps} instructions, {self.saved_gas} gas used", file=sys.stderr,
              flush=True)
        self.reporter.metrics(self.metrics, force=True)

    def due(self) -> bool:
        vm = self.vm
        if vm is None or self.opts.checkpoint_every <= 0:
            return False
        used = vm.gas_limit - vm.gas
        if used < self.next_due:
            return False
        self.next_due = (used // self.opts.checkpoint_every + 1) * self.opts.checkpoint_every
        return True

    # --- run ---------------------------------------------------------------------------------------

    def _log(self, line: str) -> None:
        sys.stdout.flush()
        print(f"[log] {line}", file=sys.stderr, flush=True)

    def run(self) -> str:
        vm = self.vm = self.load()
        used = vm.gas_limit - vm.gas
        if self.opts.checkpoint_every > 0:
            self.next_due = (used // self.opts.checkpoint_every + 1) * self.opts.checkpoint_every
        if self.opts.gas_per_period > 0:
            self.rate = GasRate(self.opts.gas_per_period, self.opts.period, time.monotonic(), used)
        self.reporter.ready(f"running {self.name}", self.metrics())
        if vm.pending is not None:  # resumed inside a sleep: wait out what is left of it
            self.suspended(vm)
        while True:
            outcome = vm.run(self.slice(vm))
            sys.stdout.flush()
            if outcome.status is Status.PAUSED or outcome.status is Status.SUSPENDED:
                if outcome.status is Status.SUSPENDED:
                    self.suspended(vm)
                self.throttle(vm)
                if self.signals.stop:
                    self.checkpoint("stop")
                    return f"{self.name}: paused at a checkpoint on stop; {self.budgets()}"
                if self.signals.checkpoint:
                    self.signals.checkpoint = False
                    self.checkpoint("requested")
                elif self.due():
                    self.checkpoint(f"every {self.opts.checkpoint_every} gas")
                self.reporter.metrics(self.metrics)
                continue
            return self.end(vm)

    def slice(self, vm: VM) -> int:
        """The next slice's instructions: SLICE, or with a rate about what its period allows."""
        if self.rate is None:
            return SLICE
        used = vm.gas_limit - vm.gas
        return self.rate.steps(used, time.monotonic(), used / vm.steps if vm.steps else 1.0)

    def throttle(self, vm: VM) -> None:
        """With a rate: wait while the period's gas is used up (a stop or checkpoint request ends it)."""
        if self.rate is None:
            return
        while not self.signals.stop and not self.signals.checkpoint:
            now = time.monotonic()
            left = self.rate.wait(vm.gas_limit - vm.gas, now)
            if left <= 0:
                return
            self.reporter.metrics(self.metrics, force=left >= METRICS_FORCE_WAIT)  # a long wait: say so now
            self.signals.wait(left)
            self.rate.throttled += time.monotonic() - now

    def suspended(self, vm: VM) -> None:
        """A sleep (checkpoint, then wait for its wake time or a signal) or a yield; then go on."""
        pending = vm.pending
        assert pending is not None
        if pending.cap == "sleep":
            self.checkpoint("sleep")
            host = vm.host
            while not self.signals.stop and pending.wake is not None and host is not None:
                left = pending.wake - host.now()
                if left <= 0:
                    break
                self.signals.wait(left)
                if self.signals.checkpoint:
                    self.signals.checkpoint = False
                    self.checkpoint("requested")
            if self.signals.stop and pending.wake is not None and host is not None and pending.wake > host.now():
                return  # stopped while asleep: the checkpoint holds the sleep, resumed next start
        vm.resume_pending()

    def end(self, vm: VM) -> str:
        outcome = vm.outcome()
        if outcome.status is Status.DONE:
            if self.checkpoint_path is not None:
                self.checkpoint_path.unlink(missing_ok=True)  # done: the next start runs it afresh
            return f"{self.name}: done: {outcome.steps} instructions, {outcome.gas_used} gas; {self.budgets()}"
        if outcome.status is Status.ERROR:
            print(traceback_text(vm, outcome), file=sys.stderr, flush=True)
            e = outcome.error
            assert e is not None
            where = f"{vm.program.file}:{e.tb[-1][1]}" if e.tb else vm.program.file
            raise Failure(f"crush: {where}: uncaught {e.etype.name}; {self.budgets()}", deterministic=False)
        trap = outcome.trap
        assert trap is not None
        where = f"{trap.file}:{trap.line}" if trap.line else trap.file
        if trap.code is TrapCode.OUT_OF_GAS:
            raise Failure(f"crush: out of gas at {where}: all {self.opts.gas} of crush.gas used; {self.budgets()}")
        if trap.code is TrapCode.ARENA_EXCEEDED:
            raise Failure(f"crush: arena exceeded at {where} (crush.arena {self.opts.arena} bytes): {trap.message}; "
                          f"{self.budgets()}")
        raise Failure(f"crush: {trap}; {self.budgets()}")


def main() -> None:
    reporter = Reporter()
    run: Run | None = None
    failure: Failure | None = None
    done = ""
    try:
        signals = Signals()
        config = read_config("crush")
        reporter.status(f"loading {Path(str(config.options.get('program', '?'))).name}")
        run = Run(config, reporter, signals)
        done = run.run()
        print(f"crush: {done}", file=sys.stderr, flush=True)
    except Failure as f:
        failure = f
    except OSError as e:  # the state directory unusable: not the program's fault
        failure = Failure(f"crush runtime: {e.strerror or errno.errorcode.get(e.errno or 0, e)}: "
                          f"{e.filename or ''}", deterministic=False)
    sys.stdout.flush()
    metrics = run.metrics() if run is not None else {}
    sys.exit(finish(reporter, failure, metrics, done))


if __name__ == "__main__":
    main()
