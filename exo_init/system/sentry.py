"""The Sentry agent capsule: watches every capsule and acts on anomalies by policy.

    python3 -m exo_init.system.sentry [--socket PATH] [--policy JSON] [--interval SECONDS]

Inputs, none of them a poll of every capsule: capsule state events (the control socket's
`subscribe`); each capsule's memory.events and pids.events, watched by inotify in its cgroup
directory (the kernel notifies a change); and every interval, cpu.stat of the capsules that have a
CPU quota, the memory pressure of the capsules' parent cgroup (and each capsule's only when the
parent's is high), and how long the starting ones have been starting.
Anomalies: `oom` (memory.events oom_kill grew), `pids-max` (pids.events max grew), `throttled`
(cpu.stat nr_throttled grew for `sustain` samples in a row), `memory-pressure` (memory PSI avg10
above `memory_pressure` % for `sustain` samples), `crash-loop` (`crash_loop` restarts within
`crash_window` s), `not-ready` (starting for longer than `not_ready_after` s), `runtime-failure`
(a runtime capsule failed for good: out of its gas or fuel, a trap, a refused capability; the
record carries the runtime's line).
Actions: `log`, `restart`, `freeze`, `kill` (stop the capsule), `rollback` (the generation).
Every anomaly and action is a line in the event log (`exoctl events`).
Liveness checks (a capsule's manifest `health`) and network partitions: exo_init/system/liveness.py.

Policy (JSON, from --policy or $EXO_SENTRY_POLICY; declared in Nix with the capsule):
    {"default": "log", "capsules": {"web": {"oom": "restart", "crash-loop": "rollback"},
     "batch": "freeze"}, "thresholds": {"sustain": 5}}
A capsule's entry is one action for every anomaly, or anomaly -> action (others: the default).
The sentry never acts on itself. Its crash costs nothing but its own restart.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from exo_init.client.control import Subscription, call
from exo_init.lib import eventlog
from exo_init.lib.cgroupfmt import CgroupFiles, flat_keyed, psi_avg10
from exo_init.lib.errors import ApiError
from exo_init.lib.inotify import IN_IGNORED, Inotify
from exo_init.lib.notify import sd_notify
from exo_init.lib.paths import DEFAULT_RUNTIME
from exo_init.system.liveness import Liveness
from exo_init.system.network import LINK_STATE

ANOMALIES = ("oom", "pids-max", "throttled", "memory-pressure", "crash-loop", "not-ready", "runtime-failure")
ACTIONS = ("log", "restart", "freeze", "kill", "rollback")
DEFAULT_THRESHOLDS: dict[str, float] = {
    "sustain": 5, "memory_pressure": 20.0, "crash_loop": 3, "crash_window": 60.0, "not_ready_after": 60.0,
    "cooldown": 30.0,
}


class Pressure(NamedTuple):
    """One capsule's memory pressure: PSI some avg10 (None: unknown) and bytes above memory.high."""
    name: str
    psi: float | None
    over_high: int = 0


def over_high(current: object, high: object) -> int:
    """Bytes of memory.current above memory.high; 0 without a limit ("max") or a figure."""
    try:
        return max(0, int(str(current).strip()) - int(str(high).strip()))
    except ValueError:
        return 0


class PolicyError(Exception):
    pass


@dataclass(frozen=True)
class Policy:
    default: str = "log"
    capsules: dict[str, dict[str, str]] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))

    def action(self, capsule: str, anomaly: str) -> str:
        return self.capsules.get(capsule, {}).get(anomaly, self.default)


def _action(value: Any, where: str) -> str:
    if value not in ACTIONS:
        raise PolicyError(f"{where}: action must be one of {', '.join(ACTIONS)}, got {value!r}")
    return str(value)


def parse_policy(text: str) -> Policy:
    """The policy JSON -> Policy; PolicyError (one line) for anything wrong."""
    try:
        doc = json.loads(text) if text.strip() else {}
    except ValueError as e:
        raise PolicyError(f"policy is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise PolicyError("policy must be a JSON object")
    unknown = sorted(set(doc) - {"default", "capsules", "thresholds"})
    if unknown:
        raise PolicyError(f"policy: unknown key {unknown[0]!r}")
    default = _action(doc.get("default", "log"), "policy.default")
    capsules: dict[str, dict[str, str]] = {}
    raw = doc.get("capsules", {})
    if not isinstance(raw, dict):
        raise PolicyError("policy.capsules must be an object of capsule -> action(s)")
    for name, entry in raw.items():
        if isinstance(entry, str):
            capsules[name] = {a: _action(entry, f"policy.capsules.{name}") for a in ANOMALIES}
        elif isinstance(entry, dict):
            for anomaly, act in entry.items():
                if anomaly not in ANOMALIES:
                    raise PolicyError(f"policy.capsules.{name}: unknown anomaly {anomaly!r} "
                                      f"(one of {', '.join(ANOMALIES)})")
                capsules.setdefault(name, {})[anomaly] = _action(act, f"policy.capsules.{name}.{anomaly}")
        else:
            raise PolicyError(f"policy.capsules.{name}: an action or an object of anomaly -> action")
    thresholds = dict(DEFAULT_THRESHOLDS)
    raw_t = doc.get("thresholds", {})
    if not isinstance(raw_t, dict):
        raise PolicyError("policy.thresholds must be an object")
    for key, value in raw_t.items():
        if key not in DEFAULT_THRESHOLDS:
            raise PolicyError(f"policy.thresholds: unknown threshold {key!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise PolicyError(f"policy.thresholds.{key}: must be a non-negative number")
        thresholds[key] = float(value)
    return Policy(default, capsules, thresholds)


@dataclass
class Track:
    """What the sentry remembers about one capsule between samples."""
    oom_kill: int | None = None
    pids_events_max: int | None = None
    nr_throttled: int | None = None
    throttled_run: int = 0
    pressure_run: int = 0
    backoffs: deque[float] = field(default_factory=deque)
    last_fired: dict[str, float] = field(default_factory=dict)


class Watcher:
    """Every capsule's memory.events and pids.events watched by inotify (the kernel notifies a
    change: no polling), and which capsules have a CPU quota (only those can be throttled)."""

    FILES = ("memory.events", "pids.events")

    def __init__(self, files: CgroupFiles) -> None:
        self.files = files
        self.inotify = Inotify()
        self.by_wd: dict[int, str] = {}
        self.watched: dict[str, list[int]] = {}
        self.throttleable: set[str] = set()

    def watch(self, name: str) -> bool:
        """Watch the capsule's files (again); False if its cgroup does not exist (yet)."""
        wds = []
        for file in self.FILES:
            try:
                wds.append(self.inotify.add(self.files.path(name, file)))
            except OSError:
                continue
        if not wds:
            return False
        self.watched[name] = wds
        for wd in wds:
            self.by_wd[wd] = name
        if self.files.value(name, "cpu.max").split()[0] == "max":
            self.throttleable.discard(name)
        else:
            self.throttleable.add(name)
        return True

    def changed(self) -> set[str]:
        """The capsules whose watched files changed; a removed cgroup's watches are dropped."""
        names = set()
        for wd, mask in self.inotify.read():
            name = self.by_wd.get(wd)
            if name is None:
                continue
            if mask & IN_IGNORED:
                self.by_wd.pop(wd, None)
                self.watched.pop(name, None)
                self.throttleable.discard(name)
            else:
                names.add(name)
        return names


class Sentry:
    def __init__(self, control: Path, policy: Policy, event_log: Path, me: str, link_state: Path = LINK_STATE) -> None:
        self.control = control
        self.policy = policy
        self.event_log = event_log
        self.me = me
        self.tracks: dict[str, Track] = {}
        self.samples = 0
        self.starting: dict[str, float] = {}   # capsule -> monotonic time it entered `starting`
        self.pressured: set[str] = set()       # capsules with a memory-pressure run going
        self.pressure_acted_at = -1e9  # monotonic: the last action on memory pressure
        self.unrecorded = 0            # records the event log could not take (a full disk)
        self.liveness = Liveness(self.record, self.anomaly, self.degrade, link_state)  # health checks, partitions

    def record(self, **record: Any) -> None:
        """A line in the event log, and in our own log; a full disk loses the former, never the sentry."""
        out = {"time": round(time.time(), 3), "source": "sentry", **record}
        try:
            eventlog.append(self.event_log, out)
        except OSError as e:
            self.unrecorded += 1
            print(f"event log {self.event_log}: {e.strerror or e} ({self.unrecorded} records not written)",
                  file=sys.stderr, flush=True)
        print(json.dumps(out, sort_keys=True), flush=True)

    # --- detection -------------------------------------------------------------------------------

    def on_event(self, event: dict[str, Any]) -> None:
        if "health" in event:
            if event.get("capsule") != self.me:
                self.liveness.on_health(event)
            return
        name = event.get("capsule")
        if not isinstance(name, str) or name == self.me:
            return
        if event.get("new") == "starting":
            self.starting[name] = time.monotonic()
        else:
            self.starting.pop(name, None)
        if event.get("new") == "failed" and event.get("final") is True:
            self.anomaly(name, "runtime-failure", {"reason": str(event.get("reason", ""))[:400]})
            return
        if event.get("new") != "backoff":
            return
        track = self.tracks.setdefault(name, Track())
        now = time.monotonic()
        track.backoffs.append(now)
        while track.backoffs and now - track.backoffs[0] > self.policy.thresholds["crash_window"]:
            track.backoffs.popleft()
        if len(track.backoffs) >= self.policy.thresholds["crash_loop"]:
            self.anomaly(name, "crash-loop", {"restarts": len(track.backoffs), "reason": event.get("reason", "")})
            track.backoffs.clear()

    def check_counters(self, name: str, oom: int, pmax: int, detail: dict[str, Any]) -> None:
        """OOM kills and refused forks since the last look (memory.events oom_kill, pids.events max)."""
        track = self.tracks.setdefault(name, Track())
        if track.oom_kill is not None and oom > track.oom_kill:
            self.anomaly(name, "oom", {"oom_kills": oom - track.oom_kill, "memory_max": detail.get("memory_max"),
                                       "last_exit": detail.get("last_exit", "")})
        track.oom_kill = oom
        if track.pids_events_max is not None and pmax > track.pids_events_max:
            self.anomaly(name, "pids-max", {"refused_forks": pmax - track.pids_events_max,
                                            "pids_max": detail.get("pids_max")})
        track.pids_events_max = pmax

    def check_throttled(self, name: str, nr: int, cpu_max: Any, throttled_usec: Any) -> None:
        track = self.tracks.setdefault(name, Track())
        grew = track.nr_throttled is not None and nr > track.nr_throttled
        track.nr_throttled = nr
        track.throttled_run = track.throttled_run + 1 if grew else 0
        if track.throttled_run >= self.policy.thresholds["sustain"]:
            self.anomaly(name, "throttled", {"samples": track.throttled_run, "cpu_max": cpu_max,
                                             "throttled_usec": throttled_usec})
            track.throttled_run = 0

    def check_pressure(self, readings: list[Pressure]) -> None:
        """One look at the memory pressure (PSI some avg10) of the capsules in `readings`: where it
        was sustained in one of them, act on the worst offender of those above the threshold now."""
        pressured: list[Pressure] = []  # capsules above the threshold now
        sustained = False               # ... and one of them for `sustain` looks in a row
        for reading in readings:
            track = self.tracks.setdefault(reading.name, Track())
            above = reading.psi is not None and reading.psi > self.policy.thresholds["memory_pressure"]
            track.pressure_run = track.pressure_run + 1 if above else 0
            (self.pressured.add if above else self.pressured.discard)(reading.name)
            if above:
                pressured.append(reading)
            if track.pressure_run >= self.policy.thresholds["sustain"]:
                sustained = True
                track.pressure_run = 0
        if sustained:
            self.memory_pressure(pressured)

    def check_starting(self, name: str, since: float) -> None:
        if since > self.policy.thresholds["not_ready_after"]:
            self.anomaly(name, "not-ready", {"starting_for": round(since, 3)})

    def sample(self, capsules: list[dict[str, Any]]) -> None:
        """Every check on `status` documents (a capsule's state and cgroup figures)."""
        self.samples += 1
        readings: list[Pressure] = []
        for st in capsules:
            name = st["name"]
            if name == self.me:
                continue
            track = self.tracks.setdefault(name, Track())
            cg = st.get("cgroup") or {}
            if cg and track.oom_kill is None and self.samples > 1:
                # A cgroup that appeared while we watch is new: its counters started at 0 (an OOM
                # within its first second counts). At our own first sample, the past is not ours.
                track.oom_kill = track.pids_events_max = track.nr_throttled = 0
            if cg:
                self.check_counters(name, int(cg.get("memory_oom_kill", 0)), int(cg.get("pids_events_max", 0)),
                                    {**cg, "last_exit": st.get("last_exit", "")})
                self.check_throttled(name, int(cg.get("cpu_nr_throttled", 0)), cg.get("cpu_max"),
                                     cg.get("cpu_throttled_usec"))
                psi = cg.get("psi_memory_avg10")
                readings.append(Pressure(name, float(psi) if psi is not None else None,
                                         over_high(cg.get("memory_current"), cg.get("memory_high"))))
            if st.get("state") == "starting":
                self.check_starting(name, float(st.get("since") or 0))
        self.check_pressure(readings)

    def memory_pressure(self, pressured: list[Pressure]) -> None:
        """Memory pressure sustained in a capsule: of every capsule above the threshold now, act on
        the worst offender only, and on no other for `cooldown` seconds (the pressure may be gone
        with it); the rest are recorded with action log. The worst offender holds the most memory
        above its own memory.high (the cause of its stalls, and a steady figure); the highest PSI
        decides between equals (PSI alone is noisy: every capsule throttled at its memory.high
        stalls most of the time)."""
        now = time.monotonic()
        waiting = now - self.pressure_acted_at < self.policy.thresholds["cooldown"]
        ranked = sorted(pressured, key=lambda r: (r.over_high, r.psi or 0.0, r.name), reverse=True)
        for rank, reading in enumerate(ranked):
            detail: dict[str, Any] = {"psi_memory_avg10": reading.psi, "over_memory_high": reading.over_high,
                                      "offenders": len(pressured)}
            if rank == 0 and not waiting:
                self.anomaly(reading.name, "memory-pressure", {**detail, "worst": True})
                self.pressure_acted_at = now
            else:
                self.anomaly(reading.name, "memory-pressure", {**detail, "worst": False}, action="log")

    # --- the cgroup files, watched ----------------------------------------------------------------

    def look(self, watcher: Watcher, name: str) -> None:
        """Read a capsule's counters now (its files changed, or its cgroup appeared)."""
        if name == self.me:
            return
        counters = watcher.files.counters(name)
        if counters is None:
            return
        track = self.tracks.setdefault(name, Track())
        if track.oom_kill is None:  # first sight of a cgroup made while we watch: it started at 0
            track.oom_kill = track.pids_events_max = 0
        oom, pmax = counters
        detail: dict[str, Any] = {}
        if oom > (track.oom_kill or 0) or pmax > (track.pids_events_max or 0):  # (rare: what the record says)
            detail = {"memory_max": watcher.files.value(name, "memory.max"),
                      "pids_max": watcher.files.value(name, "pids.max"), "last_exit": self.last_exit(name)}
        self.check_counters(name, oom, pmax, detail)

    def last_exit(self, name: str) -> str:
        try:
            return str(call(self.control, {"op": "status", "name": name, "stats": False}).get("last_exit", ""))
        except (ApiError, OSError, ValueError):
            return ""

    def adopt(self, watcher: Watcher | None, name: str, past_is_ours: bool) -> None:
        """Start watching a capsule's cgroup (if it has one now)."""
        if watcher is None or name == self.me or name in watcher.watched or not watcher.watch(name):
            return
        counters = watcher.files.counters(name)
        if counters is not None and not past_is_ours:  # what happened before we looked is not ours
            track = self.tracks.setdefault(name, Track())
            track.oom_kill, track.pids_events_max = counters
        self.look(watcher, name)

    def follow(self, watcher: Watcher | None, event: dict[str, Any]) -> None:
        """A capsule's cgroup is watched from the first event after it exists; a new run may come
        with a new CPU quota."""
        name = str(event.get("capsule"))
        if watcher is not None and event.get("new") == "starting" and name in watcher.watched:
            watcher.watch(name)
        self.adopt(watcher, name, past_is_ours=True)

    def tick(self, watcher: Watcher | None) -> None:
        """The periodic checks, each on the few capsules it can concern: cpu.stat of the capsules
        with a CPU quota; per-capsule memory pressure only when the capsules' parent shows some
        (its `some` average is at least every child's); capsules starting for too long."""
        self.samples += 1
        now = time.monotonic()
        for name, since in list(self.starting.items()):
            self.check_starting(name, now - since)
        if watcher is None:
            return
        files = watcher.files
        for name in list(watcher.throttleable):
            cpu = flat_keyed(files.read(name, "cpu.stat") or "")
            self.check_throttled(name, cpu.get("nr_throttled", 0), files.value(name, "cpu.max"),
                                 cpu.get("throttled_usec"))
        parent = psi_avg10(files.read("", "memory.pressure") or "")
        if parent is not None and parent > self.policy.thresholds["memory_pressure"]:
            self.check_pressure([self.pressure(files, name) for name in list(watcher.watched) if name != self.me])
        else:
            self.check_pressure([Pressure(name, None) for name in list(self.pressured)])

    @staticmethod
    def pressure(files: CgroupFiles, name: str) -> Pressure:
        """A capsule's memory PSI, and (only where it is above 0) how much it holds above memory.high."""
        psi = psi_avg10(files.read(name, "memory.pressure") or "")
        if not psi:
            return Pressure(name, psi)
        return Pressure(name, psi, over_high(files.read(name, "memory.current"), files.read(name, "memory.high")))

    # --- action ----------------------------------------------------------------------------------

    def anomaly(self, name: str, kind: str, detail: dict[str, Any], action: str | None = None) -> None:
        """Record an anomaly and act on it: by `action` (a manifest's health.action), else the policy."""
        track = self.tracks.setdefault(name, Track())
        now = time.monotonic()
        action = action if action in ACTIONS else self.policy.action(name, kind)
        cooling = now - track.last_fired.get(kind, -1e9) < self.policy.thresholds["cooldown"]
        self.record(kind="anomaly", anomaly=kind, capsule=name, action="log" if cooling else action, **detail)
        if cooling or action == "log":
            return
        track.last_fired[kind] = now
        op = {"restart": "restart", "freeze": "freeze", "kill": "stop", "rollback": "rollback"}[action]
        request: dict[str, Any] = {"op": op} if op == "rollback" else {"op": op, "name": name}
        try:
            call(self.control, request)
            self.record(kind="action", action=action, capsule=name, anomaly=kind, ok=True)
        except (ApiError, OSError, ValueError) as e:
            self.record(kind="action", action=action, capsule=name, anomaly=kind, ok=False, error=str(e))

    def degrade(self, name: str, reason: str) -> None:
        """Mark a capsule degraded in PID 1 (`reason`), or clear it ("")."""
        try:
            call(self.control, {"op": "degrade", "name": name, "reason": reason})
        except (ApiError, OSError, ValueError) as e:
            self.record(kind="action", action="degrade", capsule=name, ok=False, error=str(e))

    # --- main loop -------------------------------------------------------------------------------

    def run(self, interval: float) -> None:
        """Events from PID 1's stream, counter changes from inotify, a tick every `interval` for the
        rest: at steady state nothing is read per capsule (a thousand capsules polled through
        `status` cost PID 1 and the sentry a CPU between them)."""
        with Subscription(self.control) as events:
            info = call(self.control, {"op": "info"})
            root = info.get("cgroups")
            marks = info.get("degraded")
            if isinstance(marks, dict):
                self.liveness.adopt({str(k): str(v) for k, v in marks.items()})
            watcher = Watcher(CgroupFiles(Path(root) / "capsules")) if root else None
            now = time.monotonic()
            for st in call(self.control, {"op": "status", "stats": False}, timeout=60):
                if st["state"] == "starting" and st["name"] != self.me:
                    self.starting[st["name"]] = now - float(st.get("since") or 0)
                self.adopt(watcher, st["name"], past_is_ours=False)
            sd_notify("READY=1\nSTATUS=watching")
            readers: list[Any] = [events] + ([watcher.inotify] if watcher is not None else [])
            next_tick = time.monotonic() + interval
            while True:
                wait = 0.0 if events.pending else max(0.0, next_tick - time.monotonic())  # (lines read already)
                readable, _, _ = select.select(readers, [], [], wait)
                if events in readable or events.pending:
                    for event in events.receive():
                        self.on_event(event)
                        self.follow(watcher, event)
                if watcher is not None and watcher.inotify in readable:
                    for name in watcher.changed():
                        self.look(watcher, name)
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + interval
                    self.tick(watcher)
                    self.liveness.tick()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="exo-sentry", description="Exosphere Sentry agent")
    p.add_argument("--socket", type=Path, default=DEFAULT_RUNTIME / "control.sock")
    p.add_argument("--policy", default=None, help="policy JSON (default $EXO_SENTRY_POLICY)")
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--event-log", type=Path, default=None, help="default: the one exo_init reports")
    p.add_argument("--link-state", type=Path, default=LINK_STATE, help="the network capsule's link report")
    args = p.parse_args(argv)
    try:
        policy = parse_policy(args.policy if args.policy is not None else os.environ.get("EXO_SENTRY_POLICY", ""))
    except PolicyError as e:
        sys.stderr.write(f"exo-sentry: {e}\n")
        sys.exit(2)
    event_log = args.event_log
    try:
        if event_log is None:
            try:
                event_log = Path(call(args.socket, {"op": "generations"})["event_log"])
            except ApiError:  # exo_init has no generation store: the volatile default
                event_log = args.socket.parent / "state" / "events.jsonl"
        Sentry(args.socket, policy, event_log, os.environ.get("EXO_CAPSULE", "sentry"),
               args.link_state).run(args.interval)
    except (OSError, ConnectionError, ApiError, ValueError) as e:
        sys.stderr.write(f"exo-sentry: {e}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
