"""The Sentry agent capsule: watches every capsule and acts on anomalies by policy.

    python3 -m exo_init.system.sentry [--socket PATH] [--policy JSON] [--interval SECONDS]

Inputs: capsule state events (the control socket's `subscribe`) and, every interval, each
capsule's cgroup figures (the `status` op) plus psutil's view of its main process.
Anomalies: `oom` (memory.events oom_kill grew), `pids-max` (pids.events max grew), `throttled`
(cpu.stat nr_throttled grew for `sustain` samples in a row), `memory-pressure` (memory PSI avg10
above `memory_pressure` % for `sustain` samples), `crash-loop` (`crash_loop` restarts within
`crash_window` s), `not-ready` (starting for longer than `not_ready_after` s).
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
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exo_init.client.control import Subscription, call
from exo_init.lib import eventlog
from exo_init.lib.errors import ApiError
from exo_init.lib.notify import sd_notify
from exo_init.lib.paths import DEFAULT_RUNTIME
from exo_init.system.liveness import Liveness
from exo_init.system.network import LINK_STATE

ANOMALIES = ("oom", "pids-max", "throttled", "memory-pressure", "crash-loop", "not-ready")
ACTIONS = ("log", "restart", "freeze", "kill", "rollback")
DEFAULT_THRESHOLDS: dict[str, float] = {
    "sustain": 5, "memory_pressure": 20.0, "crash_loop": 3, "crash_window": 60.0, "not_ready_after": 60.0,
    "cooldown": 30.0,
}


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


def process_figures(pid: Any) -> dict[str, Any]:
    """psutil's view of a capsule's main process (empty if psutil or the process is missing)."""
    if not isinstance(pid, int):
        return {}
    try:
        import psutil  # noqa: PLC0415 (optional: the sentry works without it)

        proc = psutil.Process(pid)
        with proc.oneshot():
            return {"rss": proc.memory_info().rss, "threads": proc.num_threads(), "proc_status": proc.status()}
    except Exception:
        return {}


class Sentry:
    def __init__(self, control: Path, policy: Policy, event_log: Path, me: str, link_state: Path = LINK_STATE) -> None:
        self.control = control
        self.policy = policy
        self.event_log = event_log
        self.me = me
        self.tracks: dict[str, Track] = {}
        self.samples = 0
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
        if not isinstance(name, str) or name == self.me or event.get("new") != "backoff":
            return
        track = self.tracks.setdefault(name, Track())
        now = time.monotonic()
        track.backoffs.append(now)
        while track.backoffs and now - track.backoffs[0] > self.policy.thresholds["crash_window"]:
            track.backoffs.popleft()
        if len(track.backoffs) >= self.policy.thresholds["crash_loop"]:
            self.anomaly(name, "crash-loop", {"restarts": len(track.backoffs), "reason": event.get("reason", "")})
            track.backoffs.clear()

    def sample(self, capsules: list[dict[str, Any]]) -> None:
        t = self.policy.thresholds
        self.samples += 1
        pressured: list[tuple[float, str]] = []  # (memory PSI, capsule) above the threshold now
        sustained: list[str] = []                # ... and for `sustain` samples in a row
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
                oom = int(cg.get("memory_oom_kill", 0))
                if track.oom_kill is not None and oom > track.oom_kill:
                    self.anomaly(name, "oom", {"oom_kills": oom - track.oom_kill, "memory_max": cg.get("memory_max"),
                                               "last_exit": st.get("last_exit", "")})
                track.oom_kill = oom
                pmax = int(cg.get("pids_events_max", 0))
                if track.pids_events_max is not None and pmax > track.pids_events_max:
                    self.anomaly(name, "pids-max", {"refused_forks": pmax - track.pids_events_max,
                                                    "pids_max": cg.get("pids_max")})
                track.pids_events_max = pmax
                nr = int(cg.get("cpu_nr_throttled", 0))
                grew = track.nr_throttled is not None and nr > track.nr_throttled
                track.nr_throttled = nr
                track.throttled_run = track.throttled_run + 1 if grew else 0
                if track.throttled_run >= t["sustain"]:
                    self.anomaly(name, "throttled", {"samples": track.throttled_run, "cpu_max": cg.get("cpu_max"),
                                                     "throttled_usec": cg.get("cpu_throttled_usec")})
                    track.throttled_run = 0
                psi = cg.get("psi_memory_avg10")
                above = psi is not None and psi > t["memory_pressure"]
                track.pressure_run = track.pressure_run + 1 if above else 0
                if above:
                    pressured.append((float(psi or 0.0), name))
                if track.pressure_run >= t["sustain"]:
                    sustained.append(name)
                    track.pressure_run = 0
            if st.get("state") == "starting" and float(st.get("since") or 0) > t["not_ready_after"]:
                self.anomaly(name, "not-ready", {"starting_for": st.get("since")})
        if sustained:
            self.memory_pressure(pressured)

    def memory_pressure(self, pressured: list[tuple[float, str]]) -> None:
        """Memory pressure sustained in a capsule: of every capsule above the threshold now, act on
        the worst offender (the highest PSI) only, and on no other for `cooldown` seconds (the
        pressure may be gone with it); the rest are recorded with action log."""
        now = time.monotonic()
        waiting = now - self.pressure_acted_at < self.policy.thresholds["cooldown"]
        for rank, (psi, name) in enumerate(sorted(pressured, reverse=True)):
            detail: dict[str, Any] = {"psi_memory_avg10": psi, "offenders": len(pressured)}
            if rank == 0 and not waiting:
                self.anomaly(name, "memory-pressure", {**detail, "worst": True})
                self.pressure_acted_at = now
            else:
                self.anomaly(name, "memory-pressure", {**detail, "worst": False}, action="log")

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
        """Subscribe, report ready, then sample every `interval` seconds and handle events between."""
        with Subscription(self.control) as events:
            sd_notify("READY=1\nSTATUS=watching")
            next_sample = time.monotonic()
            while True:
                for event in events.events(max(0.0, next_sample - time.monotonic())):
                    self.on_event(event)
                if time.monotonic() >= next_sample:
                    next_sample = time.monotonic() + interval
                    status = call(self.control, {"op": "status"})
                    for st in status:
                        st.update(process_figures(st.get("pid")))
                    self.sample(status)
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
