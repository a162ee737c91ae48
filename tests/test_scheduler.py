"""The scheduler, table-driven: the real Supervisor and runners on a simulated machine (tests/sim.py:
a fake clock and a fake OS at the host boundary; no process, no waiting). Each scenario is a
manifest, a script of what happens, and what must follow: launch times, states, reasons, signals,
the order of state changes."""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from exo_init.lib.runtime import EXIT_DETERMINISTIC, NOTIFY_FAILURE, NOTIFY_METRICS
from exo_init.pid1.capsule import SETTLED, STARTABLE
from exo_init.pid1.control import Parts, make_handler
from exo_init.pid1.supervisor import STARTS_PER_TURN, STOPPABLE, ShutdownAction
from tests.sim import Sim, SimProc

NOTIFY = {"readiness": {"kind": "notify"}}
# A WebAssembly capsule (the module must exist: the plan checks it; the simulated host runs nothing).
WASM = {"runtime": "wasm", "wasm": {"module": str(Path(__file__).parent / "guest" / "wasm" / "spin.wat"),
                                     "fuel": 1000}, **NOTIFY}
OUT_OF_FUEL = "wasm trap: out of fuel (all 1000 of wasm.fuel used); fuel 1k/1k, memory 64K/16M"
METRICS = json.dumps({"fuel": {"value": 0, "limit": 1000, "unit": "count"},
                      "memory": {"value": 65536, "limit": 16777216, "unit": "bytes"}})


@dataclass
class Scenario:
    name: str
    capsules: dict[str, Any]
    script: list[tuple[Any, ...]] = field(default_factory=list)
    host: dict[str, Any] = field(default_factory=dict)
    launches: list[tuple[float, str]] | None = None          # every launch, in order
    states: dict[str, str] | None = None                     # at the end
    reasons: dict[str, str] = field(default_factory=dict)    # substring of the last reason
    order: list[tuple[str, str]] = field(default_factory=list)  # (capsule, state) in this order
    signals: list[tuple[str, int]] | None = None             # sent to main processes
    last_exit: dict[str, str] = field(default_factory=dict)


SCENARIOS = [
    Scenario(
        "dependencies wait for readiness; after only orders",
        {"db": NOTIFY, "web": {"requires": ["db"]}, "cron": {"after": ["db"]}},
        script=[("advance", 1.0), ("notify", "db", {"READY": "1"})],
        launches=[(0.0, "db"), (1.0, "cron"), (1.0, "web")],
        states={"cron": "ready", "db": "ready", "web": "ready"},
        order=[("db", "ready"), ("web", "starting")],
    ),
    Scenario(
        "a failed requirement fails its dependents, an ordering does not",
        {"db": {}, "web": {"requires": ["db"]}, "cron": {"after": ["db"]}},
        host={"spawn_errors": {"db": "exec /nonexistent: No such file or directory"}},
        script=[("advance", 60.0)],
        launches=[(0.0, "db"), (0.0, "cron")],
        states={"cron": "ready", "db": "failed", "web": "failed"},
        reasons={"db": "No such file or directory", "web": "required capsule 'db' failed"},
    ),
    Scenario(
        "a required capsule that is not declared fails the dependent",
        {"web": {"requires": ["ghost"]}},
        states={"web": "failed"},
        reasons={"web": "required capsule 'ghost' is not declared"},
        launches=[],
    ),
    Scenario(
        "requiring a capsule that does not autostart pulls it in first",
        {"db": {"autostart": False, **NOTIFY}, "web": {"requires": ["db"]}},
        script=[("advance", 2.0), ("notify", "db", {"READY": "1"})],
        launches=[(0.0, "db"), (2.0, "web")],
        states={"db": "ready", "web": "ready"},
    ),
    Scenario(
        "a crash loop backs off exponentially, then hits the start limit",
        {"crash": {"restart": {"delay": 0.5, "max_delay": 30, "limit_burst": 5, "limit_interval": 60}}},
        host={"exit_at_once": {"crash": 3}},
        script=[("advance", 100.0)],
        launches=[(0.0, "crash"), (0.5, "crash"), (1.5, "crash"), (3.5, "crash"), (7.5, "crash")],
        states={"crash": "failed"},
        reasons={"crash": "exited 3 (last output: 'hello'); start limit hit (5 failures within 60 s)"},
        last_exit={"crash": "exited 3"},
    ),
    Scenario(
        "the backoff is capped at max_delay",
        {"crash": {"restart": {"delay": 1, "max_delay": 3, "limit_burst": 100}}},
        host={"exit_at_once": {"crash": 1}},
        script=[("advance", 10.5)],
        launches=[(0.0, "crash"), (1.0, "crash"), (3.0, "crash"), (6.0, "crash"), (9.0, "crash")],
    ),
    Scenario(
        "a run longer than reset_after resets the backoff",
        {"svc": {"restart": {"delay": 0.5, "reset_after": 30}}},
        script=[("advance", 40.0), ("exit", "svc", 1), ("advance", 0.5), ("advance", 40.0), ("exit", "svc", 1)],
        launches=[(0.0, "svc"), (40.5, "svc")],
        states={"svc": "backoff"},
        reasons={"svc": "exited 1 (last output: 'hello'); restart in 0.50 s"},
    ),
    Scenario(
        "restart never: one failure is final",
        {"svc": {"restart": {"policy": "never"}}},
        script=[("advance", 1.0), ("exit", "svc", 2), ("advance", 60.0)],
        launches=[(0.0, "svc")],
        states={"svc": "failed"},
        reasons={"svc": "exited 2"},
    ),
    Scenario(
        "restart always restarts a clean exit; on-failure leaves it exited",
        {"always": {"restart": {"policy": "always"}}, "onfail": {}},
        script=[("advance", 1.0), ("exit", "always", 0), ("exit", "onfail", 0), ("advance", 0.5)],
        launches=[(0.0, "always"), (0.0, "onfail"), (1.5, "always")],
        states={"always": "ready", "onfail": "exited"},
    ),
    Scenario(
        "a oneshot is ready for dependents once it exited 0, and is not run again",
        {"setup": {"type": "oneshot"}, "svc": {"requires": ["setup"]}},
        script=[("advance", 2.0), ("exit", "setup", 0), ("advance", 100.0)],
        launches=[(0.0, "setup"), (2.0, "svc")],
        states={"setup": "exited", "svc": "ready"},
        order=[("setup", "exited"), ("svc", "starting")],
    ),
    Scenario(
        "a oneshot that fails fails what requires it",
        {"setup": {"type": "oneshot", "restart": {"policy": "never"}}, "svc": {"requires": ["setup"]}},
        script=[("advance", 2.0), ("exit", "setup", 1)],
        launches=[(0.0, "setup")],
        states={"setup": "failed", "svc": "failed"},
        reasons={"svc": "required capsule 'setup' failed"},
    ),
    Scenario(
        "a requirement failing at run time stops and fails what requires it, not what is only after it",
        {"db": {"restart": {"policy": "never"}}, "web": {"requires": ["db"]}, "cron": {"after": ["db"]},
         "app": {"requires": ["web"]}},
        script=[("advance", 1.0), ("exit", "db", 1), ("advance", 60.0)],
        launches=[(0.0, "db"), (0.0, "cron"), (0.0, "web"), (0.0, "app")],
        states={"db": "failed", "web": "failed", "cron": "ready", "app": "failed"},
        reasons={"web": "required capsule 'db' failed", "app": "required capsule 'web' failed"},
        signals=[("web", signal.SIGTERM), ("app", signal.SIGTERM)],
        order=[("db", "failed"), ("web", "stopping"), ("web", "failed")],
    ),
    Scenario(
        "a requirement failing while its dependent waits to restart fails the dependent at once",
        {"db": {"restart": {"policy": "never"}}, "web": {"requires": ["db"], "restart": {"delay": 20}}},
        script=[("advance", 1.0), ("exit", "web", 1), ("advance", 1.0), ("exit", "db", 1), ("advance", 1.0)],
        launches=[(0.0, "db"), (0.0, "web")],
        states={"db": "failed", "web": "failed"},
        reasons={"web": "required capsule 'db' failed"},
        order=[("web", "backoff"), ("db", "failed"), ("web", "failed")],
    ),
    Scenario(
        "the watchdog: pings in time keep the capsule ready",
        {"dog": {"readiness": {"kind": "notify"}, "watchdog_sec": 2}},
        script=[("notify", "dog", {"READY": "1", "WATCHDOG": "1"}), ("advance", 1.0),
                ("notify", "dog", {"WATCHDOG": "1"}), ("advance", 1.9)],
        states={"dog": "ready"},
        launches=[(0.0, "dog")],
        signals=[],
    ),
    Scenario(
        "the watchdog: a missed ping aborts the run with SIGABRT 2 s after the last, then it restarts",
        {"dog": {"readiness": {"kind": "notify"}, "watchdog_sec": 2}},
        script=[("notify", "dog", {"READY": "1", "WATCHDOG": "1"}), ("advance", 1.0),
                ("notify", "dog", {"WATCHDOG": "1"}), ("advance", 2.6)],
        launches=[(0.0, "dog"), (3.5, "dog")],
        signals=[("dog", signal.SIGABRT)],
        states={"dog": "starting"},
        last_exit={"dog": "watchdog timeout"},
        order=[("dog", "backoff"), ("dog", "stopped"), ("dog", "starting")],
    ),
    Scenario(
        "not ready within readiness.timeout: killed, then backoff",
        {"slow": {"readiness": {"kind": "notify", "timeout": 5}}},
        script=[("advance", 5.2)],
        launches=[(0.0, "slow")],
        signals=[("slow", signal.SIGKILL)],
        states={"slow": "backoff"},
        reasons={"slow": "not ready within 5 s; restart in 0.50 s"},
    ),
    Scenario(
        "readiness by probe: file",
        {"svc": {"readiness": {"kind": "file", "path": "/run/svc.ready"}}},
        script=[("advance", 1.0), ("probe_ok", "file:/run/svc.ready"), ("advance", 0.15)],
        states={"svc": "ready"},
        order=[("svc", "starting"), ("svc", "ready")],
    ),
    Scenario(
        "a stop that is ignored escalates to SIGKILL of the whole capsule after stop.timeout",
        {"stubborn": {"stop": {"timeout": 5}}},
        host={"ignores": {"stubborn": frozenset({signal.SIGTERM})}},
        script=[("advance", 1.0), ("stop", "stubborn"), ("advance", 4.9), ("expect", "stubborn", "stopping"),
                ("advance", 0.2)],
        signals=[("stubborn", signal.SIGTERM), ("stubborn", signal.SIGCONT)],
        states={"stubborn": "stopped"},
    ),
    Scenario(
        "stopping a dependency stops its dependents first",
        {"db": {}, "web": {"requires": ["db"]}},
        script=[("advance", 1.0), ("stop", "db")],
        states={"db": "stopped", "web": "stopped"},
        order=[("web", "stopping"), ("web", "stopped"), ("db", "stopping"), ("db", "stopped")],
    ),
    Scenario(
        "shutdown stops in reverse dependency order",
        {"db": {}, "web": {"requires": ["db"]}, "cron": {"after": ["web"]}},
        script=[("advance", 1.0), ("shutdown",)],
        states={"cron": "stopped", "db": "stopped", "web": "stopped"},
        order=[("cron", "stopped"), ("web", "stopping"), ("web", "stopped"), ("db", "stopping")],
    ),
    Scenario(
        "a launch error (quota, cgroup, fork) fails the capsule, which is not restarted",
        {"svc": {}},
        host={"launch_errors": {"svc": "quotas.memory_max: the memory controller is not available"}},
        script=[("advance", 60.0)],
        launches=[],
        states={"svc": "failed"},
        reasons={"svc": "memory controller"},
    ),
    Scenario(
        "an unknown user is a plan error: failed, not restarted",
        {"svc": {"user": "nosuchuser"}},
        script=[("advance", 60.0)],
        launches=[],
        states={"svc": "failed"},
        reasons={"svc": "user: unknown user 'nosuchuser'"},
    ),
    Scenario(
        "a wasm capsule out of fuel is failed with the runtime's line and not restarted, whatever its "
        "policy; its neighbour stays ready",
        {"app": {**WASM, "restart": {"policy": "always"}}, "neighbour": {}},
        script=[("advance", 1.0), ("notify", "app", {"READY": "1", NOTIFY_METRICS: METRICS}),
                ("notify", "app", {"STATUS": OUT_OF_FUEL, NOTIFY_FAILURE: OUT_OF_FUEL}),
                ("exit", "app", EXIT_DETERMINISTIC), ("advance", 120.0)],
        launches=[(0.0, "app"), (0.0, "neighbour")],
        states={"app": "failed", "neighbour": "ready"},
        reasons={"app": OUT_OF_FUEL + " (deterministic: not restarted)"},
        last_exit={"app": f"exited {EXIT_DETERMINISTIC}"},
        order=[("app", "ready"), ("app", "failed")],
    ),
    Scenario(
        "a wasm capsule's final exit without its line (lost) takes its last line of output",
        {"app": WASM},
        script=[("advance", 1.0), ("exit", "app", EXIT_DETERMINISTIC), ("advance", 60.0)],
        launches=[(0.0, "app")],
        states={"app": "failed"},
        reasons={"app": "hello (deterministic: not restarted)"},
    ),
    Scenario(
        "a wasm capsule's deadline is wall-clock time, not deterministic: it restarts with backoff",
        {"app": WASM},
        script=[("advance", 1.0), ("notify", "app", {NOTIFY_FAILURE: "wasm trap: deadline (stopped after 2.00 s)"}),
                ("exit", "app", 1), ("advance", 0.6)],
        launches=[(0.0, "app"), (1.5, "app")],
        states={"app": "starting"},
        order=[("app", "backoff"), ("app", "starting")],
    ),
    Scenario(
        "an ordinary capsule that exits 65 is not a runtime: restarted by its policy",
        {"svc": {}},
        script=[("advance", 1.0), ("exit", "svc", EXIT_DETERMINISTIC), ("advance", 0.6)],
        launches=[(0.0, "svc"), (1.5, "svc")],
        states={"svc": "ready"},
    ),
    Scenario(
        "exoctl start runs a failed capsule again; restart restarts a ready one",
        {"svc": {"restart": {"policy": "never"}}},
        script=[("advance", 1.0), ("exit", "svc", 1), ("start", "svc"), ("advance", 1.0), ("restart", "svc")],
        launches=[(0.0, "svc"), (1.0, "svc"), (2.0, "svc")],
        states={"svc": "ready"},
    ),
]


def run_script(sim: Sim, script: list[tuple[Any, ...]]) -> None:
    for step in script:
        match step:
            case ("advance", seconds):
                sim.advance(seconds)
            case ("notify", name, fields):
                sim.notify(name, **fields)
            case ("exit", name, code):
                sim.exit(name, code)
            case ("probe_ok", key):
                sim.host.probes_ok.add(key)
            case ("stop" | "start" | "restart" as op, name):
                getattr(sim.sup, op)(name)
                sim.settle()
            case ("shutdown",):
                sim.sup.request_shutdown(ShutdownAction.EXIT)
                sim.settle()
            case ("expect", name, state):
                assert sim.state(name).value == state, f"{name}: {sim.state(name)} at t={sim.loop.t}"
            case _:
                raise AssertionError(f"unknown step {step}")


@pytest.mark.parametrize("sc", SCENARIOS, ids=[sc.name for sc in SCENARIOS])
def test_scenario(sc: Scenario, tmp_path: Path) -> None:
    sim = Sim(tmp_path, sc.capsules, **sc.host)
    run_script(sim, sc.script)
    where = f"trace: {sim.trace}"
    if sc.launches is not None:
        assert sorted(sim.host.launches) == sorted(sc.launches), where
    if sc.states is not None:
        assert sim.states() == sc.states, where
    for name, text in sc.reasons.items():
        assert text in sim.sup.capsules[name].reason, f"{name}: {sim.sup.capsules[name].reason!r}; {where}"
    for name, text in sc.last_exit.items():
        assert sim.sup.status(name)["last_exit"] == text, where
    if sc.signals is not None:
        assert sim.host.signals == sc.signals, where
    if sc.order:
        seen = iter((n, s) for _t, n, s in sim.trace)
        assert all(item in seen for item in sc.order), f"{sc.order} is not a subsequence; {where}"
    assert_index_consistent(sim)


def assert_index_consistent(sim: Sim) -> None:
    """What the supervisor keeps as it goes (the runners a pass can act on; the wanted ones not yet
    settled) is what a look at every runner finds."""
    candidates = {n for n, r in sim.sup.capsules.items()
                  if (r.wanted and r.spec is not None and r.state in STARTABLE)
                  or (not r.wanted and r.state in STOPPABLE)}
    unsettled = {n for n, r in sim.sup.capsules.items() if r.wanted and r.state not in SETTLED}
    assert (sim.sup.candidates, sim.sup.unsettled) == (candidates, unsettled)


def test_a_runtime_capsules_figures_are_kept_and_shown_and_bad_ones_ignored(tmp_path: Path) -> None:
    sim = Sim(tmp_path, {"app": WASM, "svc": NOTIFY})
    sim.notify("app", READY="1", **{NOTIFY_METRICS: METRICS})
    st = sim.sup.status("app")
    assert st["runtime"] == "wasm" and st["state"] == "ready"
    assert st["metrics"] == {"fuel": {"value": 0, "limit": 1000, "unit": "count"},
                             "memory": {"value": 65536, "limit": 16777216, "unit": "bytes"}}
    for bad in ("not json", json.dumps({"fuel": {"value": -1}}), json.dumps({"Fuel!": {"value": 1}}),
                json.dumps({"fuel": {"value": 10**400}}), '{"fuel": {"value": ' + "9" * 5000 + "}}", "[" * 5000,
                json.dumps({"fuel": {"value": 1, "unit": "furlongs"}}), json.dumps({"fuel": {"value": 1, "x": 2}}),
                json.dumps({f"m{i}": {"value": 1} for i in range(17)})):
        sim.notify("app", **{NOTIFY_METRICS: bad})
        assert sim.sup.status("app")["metrics"] == st["metrics"], bad
    # An exec capsule's EXO_* fields mean nothing.
    sim.notify("svc", READY="1", **{NOTIFY_METRICS: METRICS, NOTIFY_FAILURE: "x"})
    assert sim.sup.status("svc")["metrics"] == {} and sim.sup.status("svc")["runtime"] == "exec"
    # A new run starts without the last run's figures.
    sim.sup.restart("app")
    sim.settle()
    assert sim.sup.status("app")["metrics"] == {}


class FakeNotify:
    """The sd_notify socket's queue: (sender pid, sender uid, fields)."""

    def __init__(self) -> None:
        self.queue: list[tuple[int, int, dict[str, str]]] = []

    def receive(self) -> list[tuple[int, int, dict[str, str]]]:
        out, self.queue = self.queue, []
        return out

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        pass


def test_a_runtimes_last_line_reaches_its_capsule_after_the_runtime_is_gone(tmp_path: Path) -> None:
    """A scoped runtime is not the capsule's main pid (its namespace init is): its messages are
    routed by its cgroup while it lives, and by the pid and uid seen then once it has exited."""
    sim = Sim(tmp_path, {"app": WASM, "other": {}})
    notify = FakeNotify()
    sim.sup.notify = notify  # type: ignore[assignment]
    main = sim.host.main("app")
    runtime = SimProc("app", 5000, main.plan)  # the runtime, a child of the namespace init
    sim.host.procs[5000] = runtime
    notify.queue.append((5000, 61500, {"READY": "1", "STATUS": "running"}))
    sim.sup._on_notify()
    assert sim.state("app").value == "ready"
    runtime.alive = False  # it exits; its last messages are read afterwards, before its init exits
    notify.queue += [(5000, 0, {NOTIFY_FAILURE: "forged by another uid"}),
                     (5000, 61500, {NOTIFY_FAILURE: OUT_OF_FUEL, "STATUS": OUT_OF_FUEL})]
    sim.sup._on_notify()
    assert sim.sup.capsules["app"].runtime_failure == OUT_OF_FUEL
    notify.queue.append((5000, 61500, {NOTIFY_METRICS: METRICS}))  # ... or in the reaper's drain
    sim.exit("app", EXIT_DETERMINISTIC)
    assert sim.state("app").value == "failed"
    assert sim.sup.capsules["app"].reason == OUT_OF_FUEL + " (deterministic: not restarted)"
    assert sim.sup.capsules["app"].metrics["fuel"].limit == 1000
    assert sim.sup.notify_senders == {}, "forgotten with the run"


def test_a_scoped_runtime_gone_before_any_of_its_messages_was_read_is_known_by_its_dynamic_uid(
        tmp_path: Path) -> None:
    """On a starved machine PID 1 may read all of a short run's messages after the runtime exited:
    its dynamic uid still names its capsule (and only it)."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notify.sock").touch()  # (the plan binds it into a scoped runtime's world)
    sim = Sim(tmp_path, {"app": {**WASM, "capabilities": {}}, "root": {**WASM, "user": "root", "capabilities": {}}})
    notify = FakeNotify()
    sim.sup.notify = notify  # type: ignore[assignment]
    uid = sim.sup.capsules["app"].uid
    assert uid is not None and sim.sup.capsules["app"].own_uid and not sim.sup.capsules["root"].own_uid
    notify.queue += [(7001, uid, {"READY": "1"}), (7001, uid, {NOTIFY_FAILURE: OUT_OF_FUEL}),
                     (7002, 0, {"READY": "1"})]  # a root sender that is gone: unknown, ignored
    sim.exit("app", EXIT_DETERMINISTIC)
    assert sim.sup.capsules["app"].reason == OUT_OF_FUEL + " (deterministic: not restarted)"
    assert sim.state("root").value == "starting"


def test_reload_applies_only_the_difference(tmp_path: Path) -> None:
    sim = Sim(tmp_path, {"a": {}, "b": {}, "c": {}})
    sim.advance(1.0)
    pids = {name: r.pid for name, r in sim.sup.capsules.items()}
    done = sim.sup.apply(Sim.manifest({"a": {}, "b": {"argv": ["/bin/true", "changed"]}, "d": {}}))
    sim.settle()
    assert done == {"added": ["d"], "removed": ["c"], "changed": ["b"], "unchanged": ["a"], "errors": []}
    assert sim.states() == {"a": "ready", "b": "ready", "d": "ready"}
    assert sim.sup.capsules["a"].pid == pids["a"]
    assert sim.sup.capsules["b"].pid != pids["b"]
    assert sim.host.procs[sim.sup.capsules["b"].pid or 0].plan.argv == ("/bin/true", "changed")
    after = [(n, s) for t, n, s in sim.trace if t == 1.0]
    assert [e for e in after if e[0] == "b"] == [("b", "stopping"), ("b", "stopped"), ("b", "starting"), ("b", "ready")]
    assert [e for e in after if e[0] == "c"] == [("c", "stopping"), ("c", "stopped")]


def test_reload_keeps_the_running_version_of_a_broken_definition(tmp_path: Path) -> None:
    sim = Sim(tmp_path, {"a": {}})
    sim.advance(1.0)
    pid = sim.sup.capsules["a"].pid
    broken = Sim.manifest({"a": {"argv": ["relative/path"]}})
    assert "a" in broken.errors
    done = sim.sup.apply(broken)
    sim.settle()
    assert done["errors"] and sim.states() == {"a": "ready"} and sim.sup.capsules["a"].pid == pid


def test_changed_capsule_in_backoff_restarts_with_the_new_definition(tmp_path: Path) -> None:
    sim = Sim(tmp_path, {"svc": {"restart": {"delay": 10}}}, exit_at_once={"svc": 1})
    assert sim.state("svc").value == "backoff"
    sim.host.exit_at_once.clear()
    sim.sup.apply(Sim.manifest({"svc": {"argv": ["/bin/true", "v2"], "restart": {"delay": 10}}}))
    sim.settle()
    assert sim.state("svc").value == "ready"
    assert sim.host.launches == [(0.0, "svc"), (0.0, "svc")]
    assert sim.host.procs[sim.sup.capsules["svc"].pid or 0].plan.argv == ("/bin/true", "v2")


def test_boot_complete_is_reported_once_everything_settled(tmp_path: Path) -> None:
    sim = Sim(tmp_path, {"db": NOTIFY, "web": {"requires": ["db"]}})
    assert not sim.sup.boot_reported
    sim.advance(3.0)
    sim.notify("db", READY="1")
    assert sim.sup.boot_reported


def test_scheduler_trace_is_deterministic(tmp_path: Path) -> None:
    """The same scenario twice gives the same trace: the scheduler depends on nothing but its inputs."""
    traces = []
    for run in range(2):
        sc = next(s for s in SCENARIOS if s.name.startswith("a crash loop"))
        sim = Sim(tmp_path / str(run), sc.capsules, **sc.host)
        run_script(sim, sc.script)
        traces.append(sim.trace)
    assert traces[0] == traces[1] and len(traces[0]) > 10


def test_steady_state_costs_the_host_nothing(tmp_path: Path) -> None:
    """Nothing is sampled periodically: with every capsule ready and nobody asking, a minute passes
    without a single cgroup read (a thousand capsules sampled every 2 s kept PID 1 busy)."""
    sim = Sim(tmp_path, {f"c{i}": {} for i in range(50)}, cpu={f"c{i}": 0 for i in range(50)})
    sim.advance(1.0)
    sim.host.queries.clear()
    sim.advance(60.0)
    assert sim.host.queries == []
    handle = make_handler(sim.sup)
    assert all(s["state"] == "ready" for s in handle({"op": "status", "stats": False}, 0))
    assert sim.host.queries == [], "status without stats reads no cgroup file"
    some = handle({"op": "status", "names": ["c3", "nope", "c1"]}, 0)
    assert isinstance(some, Parts)  # (with figures: computed a few at a time, control.PART_TIME per turn)
    assert [part()["name"] for part in some.parts] == ["c1", "c3"]
    assert sim.host.queries == [("stats", "c1"), ("stats", "c3")]


def test_cpu_percent_comes_from_the_status_readings(tmp_path: Path) -> None:
    sim = Sim(tmp_path, {"svc": {}}, cpu={"svc": 100_000})  # the cgroup's usage from earlier runs counts not
    sim.advance(1.0)
    sim.host.cpu["svc"] = 600_000  # 0.5 s of CPU in the run's first second
    assert sim.sup.status("svc")["cpu_percent"] == 50.0
    sim.advance(0.2)
    sim.host.cpu["svc"] = 700_000
    assert sim.sup.status("svc")["cpu_percent"] == 50.0  # too soon after the last reading: kept
    sim.advance(1.8)
    sim.host.cpu["svc"] = 800_000  # 0.2 s of CPU over the 2 s since the reading at t=1
    assert sim.sup.status("svc")["cpu_percent"] == 10.0
    sim.sup.restart("svc")
    sim.settle()
    sim.advance(1.0)
    assert sim.sup.status("svc")["cpu_percent"] == 0.0  # a new run counts from its own start


def test_dynamic_uids_stay_unique_and_a_restart_keeps_its_own(tmp_path: Path) -> None:
    """The uids other runs hold are counted as runs claim and release them (not gathered from
    every runner at each launch); a run's own uid is free for its next run."""
    caps: dict[str, Any] = {f"s{i}": {"capabilities": {}} for i in range(30)}
    sim = Sim(tmp_path, caps)
    uids = {n: r.uid for n, r in sim.sup.capsules.items()}
    assert len({u for u in uids.values() if u is not None and 61184 <= u < 65520}) == 30
    sim.sup.restart("s3")
    sim.settle()
    assert sim.state("s3").value == "ready" and sim.sup.capsules["s3"].uid == uids["s3"]
    assert sorted(sim.sup.uid_holders.values()) == [1] * 30
    sim.sup.apply(Sim.manifest({n: c for n, c in caps.items() if n != "s3"}))
    sim.settle()
    assert uids["s3"] not in sim.sup.uid_holders and len(sim.sup.uid_holders) == 29


def test_a_thousand_capsules_leave_nothing_for_the_scheduler_to_look_at(tmp_path: Path) -> None:
    """A pass looks only at the runners it can act on: with every capsule ready there is none, a
    capsule waiting for its dependency is one, and the boot completes once none is unsettled."""
    caps: dict[str, Any] = {f"c{i:04d}": {} for i in range(1000)}
    caps["db"] = NOTIFY
    caps["web"] = {"requires": ["db"]}
    sim = Sim(tmp_path, caps)
    assert (sim.sup.candidates, sim.sup.unsettled, sim.sup.boot_reported) == ({"web"}, {"db", "web"}, False)
    sim.notify("db", READY="1")
    assert (sim.sup.candidates, sim.sup.unsettled, sim.sup.boot_reported) == (set(), set(), True)
    sim.sup.stop("db")
    sim.settle()
    assert sim.states()["web"] == "stopped" and sim.sup.candidates == set()
    sim.sup.apply(Sim.manifest({f"c{i:04d}": {} for i in range(10)}))
    sim.settle()
    assert len(sim.sup.capsules) == 10 and sim.sup.candidates == set() and sim.sup.unsettled == set()
    assert_index_consistent(sim)
    sim.close()


def test_a_thousand_capsules_added_at_once_are_launched_a_batch_per_loop_turn(tmp_path: Path) -> None:
    """The versus benchmark's switch adding 1,000 capsules held PID 1 in one pass for all their
    launches; between batches the loop turns (the control socket, reaping, readiness)."""
    sim = Sim(tmp_path, {"a": {}})
    done = sim.sup.apply(Sim.manifest({"a": {}, **{f"c{i:04d}": {} for i in range(1000)}}))
    assert len(done["added"]) == 1000
    batches = [len(sim.host.procs) - 1]
    while sim.loop.next_deadline() == sim.loop.t:  # loop turns: the launched capsules' exec results
        sim.loop.turn([fd for fd in list(sim.loop.readers) if sim.host.readable(fd)])  # (-> ready -> schedule)
        batches.append(len(sim.host.procs) - 1 - sum(batches))
    assert batches[0] == STARTS_PER_TURN and max(batches) == STARTS_PER_TURN, batches
    assert sum(batches) == 1000 and len(batches) == -(-1000 // STARTS_PER_TURN), batches
    sim.settle()
    assert set(sim.states().values()) == {"ready"} and sim.sup.boot_reported
    sim.close()


def test_many_launches_failing_in_one_pass_do_not_recurse(tmp_path: Path) -> None:
    """A launch that fails calls the scheduler again from inside its pass: a thousand of them (the
    first benchmark's 1,000-capsule switch, when file descriptors ran out) made PID 1 hit Python's
    recursion limit. A call from inside a pass asks for another pass instead."""
    caps = {f"c{i:04d}": {"user": "nosuchuser"} for i in range(1500)}
    sim = Sim(tmp_path, caps)
    assert set(sim.states().values()) == {"failed"} and len(sim.sup.capsules) == 1500
    assert all("unknown user" in r.reason for r in sim.sup.capsules.values())
    sim.close()
