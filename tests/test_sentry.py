"""The Sentry agent: policy parsing, and crash-loop detection + action through a real exo_init."""

from __future__ import annotations

import json
import select
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from exo_init.lib import eventlog
from exo_init.lib.cgroupfmt import CgroupFiles
from exo_init.system.sentry import PolicyError, Sentry, Watcher, over_high, parse_policy
from tests.exo import REPO, ExoInit, manifest_json

PY = sys.executable


def test_policy_parsing() -> None:
    policy = parse_policy('{"default": "log", "capsules": {"web": {"oom": "restart"}, "batch": "freeze"},'
                          ' "thresholds": {"sustain": 2}}')
    assert policy.action("web", "oom") == "restart"
    assert policy.action("web", "crash-loop") == "log"
    assert policy.action("batch", "pids-max") == "freeze"
    assert policy.action("other", "oom") == "log"
    assert policy.thresholds["sustain"] == 2 and policy.thresholds["cooldown"] == 30.0
    assert parse_policy("").default == "log"
    for bad, message in (('{"default": "explode"}', "action must be one of"),
                         ('{"capsules": {"web": {"bogus": "log"}}}', "unknown anomaly 'bogus'"),
                         ('{"thresholds": {"sustain": -1}}', "non-negative"),
                         ("{", "not valid JSON"), ('{"extra": 1}', "unknown key 'extra'")):
        with pytest.raises(PolicyError, match=message):
            parse_policy(bad)


def test_sentry_stops_a_crash_loop_and_logs_it(tmp_path: Path) -> None:
    policy = {"capsules": {"crasher": {"crash-loop": "kill"}}, "thresholds": {"crash_loop": 3}}
    e = ExoInit(tmp_path / "exo", {"capsules": {
        "crasher": {"argv": ["/bin/sh", "-c", "exit 3"],
                    "restart": {"policy": "always", "delay": 0.2, "limit_burst": 50}},
    }}, cgroups=False)
    try:
        sentry = {"argv": [PY, "-m", "exo_init.system.sentry", "--socket", str(e.runtime / "control.sock")],
                  "env": {"PYTHONPATH": str(REPO), "EXO_SENTRY_POLICY": json.dumps(policy)},
                  "readiness": {"kind": "notify"}, "restart": {"policy": "always"}}
        manifest = tmp_path / "with-sentry.json"
        manifest.write_text(manifest_json({
            "sentry": sentry, "crasher": {"argv": ["/bin/sh", "-c", "exit 3"], "autostart": False,
                                          "restart": {"policy": "always", "delay": 0.2, "limit_burst": 50}}}))
        e.call("switch", target=str(manifest), **{"try": False})
        e.wait_state("sentry", "ready")
        e.call("start", name="crasher")

        def acted() -> bool:
            return any(r["kind"] == "action" and r.get("capsule") == "crasher" for r in e.call("events"))

        e.wait_for(acted, 20, "the sentry's action on crasher")
        records = [r for r in e.call("events") if r.get("capsule") == "crasher"]
        anomaly = next(r for r in records if r["kind"] == "anomaly")
        assert anomaly["anomaly"] == "crash-loop" and anomaly["action"] == "kill" and anomaly["source"] == "sentry"
        action = next(r for r in records if r["kind"] == "action")
        assert action["ok"] is True and action["action"] == "kill"
        e.wait_for(lambda: e.status("crasher")["wanted"] is False, 10, "crasher stopped")
        assert e.status("crasher")["state"] in ("stopped", "backoff", "failed")
    finally:
        e.close()


def test_sentry_detection_from_samples(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    sentry = Sentry(tmp_path / "no.sock", parse_policy('{"thresholds": {"sustain": 3}}'), log, "sentry")

    def st(name: str, **cg: Any) -> dict[str, Any]:
        return {"name": name, "state": "ready", "since": 1.0, "cgroup": cg}

    sentry.sample([st("old", memory_oom_kill=4)])  # the past (before our first sample) is not reported
    sentry.sample([st("old", memory_oom_kill=4), st("hog", memory_oom_kill=1, pids_events_max=0)])
    sentry.sample([st("old", memory_oom_kill=4), st("hog", memory_oom_kill=1, pids_events_max=2)])
    for n in range(1, 5):
        sentry.sample([st("spin", cpu_nr_throttled=10 * n, psi_memory_avg10=50.0)])
    sentry.sample([{"name": "slow", "state": "starting", "since": 61.0}])
    sentry.sample([st("sentry", memory_oom_kill=9)])  # never itself
    records = eventlog.tail(log, 100)
    seen = [(r["capsule"], r["anomaly"]) for r in records]
    assert seen == [("hog", "oom"), ("hog", "pids-max"), ("spin", "throttled"), ("spin", "memory-pressure"),
                    ("slow", "not-ready")], records
    assert all(r["action"] == "log" and r["source"] == "sentry" for r in records)


def test_sentry_rolls_back_a_committed_generation(tmp_path: Path) -> None:
    e = ExoInit(tmp_path / "exo", {"capsules": {"base": {"argv": ["/bin/sleep", "100"]}}}, cgroups=False)
    try:
        sentry = {"argv": [PY, "-m", "exo_init.system.sentry", "--socket", str(e.runtime / "control.sock")],
                  "env": {"PYTHONPATH": str(REPO),
                          "EXO_SENTRY_POLICY": json.dumps({"capsules": {"flaky": {"crash-loop": "rollback"}}})},
                  "readiness": {"kind": "notify"}, "restart": {"policy": "always"}}
        two = tmp_path / "two.json"
        two.write_text(manifest_json({
            "base": {"argv": ["/bin/sleep", "100"]}, "sentry": sentry}))
        e.call("switch", target=str(two), **{"try": False})
        e.wait_state("sentry", "ready")
        three = tmp_path / "three.json"
        three.write_text(manifest_json({
            "base": {"argv": ["/bin/sleep", "100"]}, "sentry": sentry,
            "flaky": {"argv": ["/bin/sh", "-c", "exit 1"], "restart": {"policy": "always", "delay": 0.2}}}))
        assert e.call("switch", target=str(three), **{"try": False})["generation"] == 3
        e.wait_for(lambda: e.call("generations")["current"] == 2, 20, "the sentry's rollback to generation 2")
        e.wait_for(lambda: "flaky" not in [s["name"] for s in e.call("status")], 10, "flaky removed")
        # (the sentry records its action once PID 1 has answered: after the generation changed)
        e.wait_for(lambda: any(r["kind"] == "action" for r in e.call("events")), 10, "the sentry's action record")
        action = [r for r in e.call("events") if r["kind"] == "action"][-1]
        assert action["action"] == "rollback" and action["capsule"] == "flaky" and action["ok"] is True, action
        assert e.status("sentry")["state"] == "ready" and e.status("base")["state"] == "ready"
    finally:
        e.close()


def fake_cgroup(root: Path, name: str, **files: str) -> Path:
    """A capsule's cgroup directory as files (this host's cgroup2 has no memory or pids controller
    to make real ones; tests/vm/test_generations.py sees the sentry catch a real OOM kill)."""
    leaf = root / name
    leaf.mkdir(parents=True, exist_ok=True)
    defaults = {"memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n", "pids.events": "max 0\n",
                "cpu.max": "max 100000\n", "memory.max": "max\n", "pids.max": "max\n",
                "cpu.stat": "usage_usec 0\nnr_throttled 0\nthrottled_usec 0\n"}
    for file, text in {**defaults, **{k.replace("_", "."): v for k, v in files.items()}}.items():
        (leaf / file).write_text(text)
    return leaf


def test_sentry_watches_cgroup_files_instead_of_polling(tmp_path: Path) -> None:
    """Counters by inotify (a write to memory.events or pids.events is seen without a poll), a
    cgroup that appears later starts from zero, cpu.stat read only for capsules with a CPU quota,
    per-capsule memory pressure only when the parent's is high."""
    log = tmp_path / "events.jsonl"
    capsules = tmp_path / "capsules"
    sentry = Sentry(tmp_path / "no.sock", parse_policy('{"thresholds": {"sustain": 2}}'), log, "sentry")
    watcher = Watcher(CgroupFiles(capsules))
    (capsules / "memory.pressure").parent.mkdir(parents=True)
    (capsules / "memory.pressure").write_text("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    fake_cgroup(capsules, "hog", memory_events="oom_kill 2\n")
    fake_cgroup(capsules, "spin", cpu_max="20000 100000\n")
    fake_cgroup(capsules, "idle")
    fake_cgroup(capsules, "sentry", memory_events="oom_kill 9\n")
    for name in ("hog", "spin", "idle", "sentry"):
        sentry.adopt(watcher, name, past_is_ours=False)  # the sentry's start: the past is not reported
    assert set(watcher.watched) == {"hog", "spin", "idle"} and watcher.throttleable == {"spin"}

    def changes() -> None:
        select.select([watcher.inotify], [], [], 5)
        for name in watcher.changed():
            sentry.look(watcher, name)

    (capsules / "hog" / "memory.events").write_text("oom_kill 3\n")
    changes()
    (capsules / "idle" / "pids.events").write_text("max 4\n")
    changes()
    fake_cgroup(capsules, "fresh", memory_events="oom_kill 1\n")
    sentry.adopt(watcher, "fresh", past_is_ours=True)  # appeared while watched: it started at zero
    for n in (1, 2, 3):
        (capsules / "spin" / "cpu.stat").write_text(f"nr_throttled {10 * n}\nthrottled_usec {n}\n")
        (capsules / "idle" / "cpu.stat").write_text(f"nr_throttled {10 * n}\n")  # no quota: not read
        sentry.tick(watcher)
    (capsules / "memory.pressure").write_text("some avg10=60.00 avg60=1.00 avg300=0.00 total=9\n")
    fake_cgroup(capsules, "idle", memory_pressure="some avg10=70.00 avg60=1.00 avg300=0.00 total=9\n")
    sentry.tick(watcher)
    sentry.tick(watcher)
    seen = [(r["capsule"], r["anomaly"], r.get("oom_kills") or r.get("refused_forks") or r.get("samples") or "")
            for r in eventlog.tail(log, 100)]
    assert seen == [("hog", "oom", 1), ("idle", "pids-max", 4), ("fresh", "oom", 1), ("spin", "throttled", 2),
                    ("idle", "memory-pressure", "")], seen
    shutil.rmtree(capsules / "hog")  # a removed capsule's watches go away
    select.select([watcher.inotify], [], [], 5)
    watcher.changed()
    assert "hog" not in watcher.watched
    watcher.inotify.close()


def test_memory_pressure_acts_on_the_worst_offender_only(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    policy = parse_policy('{"default": "kill", "thresholds": {"sustain": 2, "memory_pressure": 10}}')
    sentry = Sentry(tmp_path / "no.sock", policy, log, "sentry")

    def st(name: str, psi: float) -> dict[str, Any]:
        return {"name": name, "state": "ready", "since": 1.0, "cgroup": {"psi_memory_avg10": psi}}

    for _ in range(2):
        sentry.sample([st("a", 80.0), st("b", 30.0), st("c", 12.0), st("calm", 1.0)])
    records = eventlog.tail(log, 100)
    anomalies = [(r["capsule"], r["action"], r["worst"]) for r in records if r["kind"] == "anomaly"]
    assert anomalies == [("a", "kill", True), ("b", "log", False), ("c", "log", False)], records
    # (no control socket here: the one action is attempted, and fails, once)
    assert [r["capsule"] for r in records if r["kind"] == "action"] == ["a"]
    for _ in range(2):  # within the cooldown: no second victim, even the worst one now
        sentry.sample([st("b", 30.0), st("c", 12.0)])
    later = [(r["capsule"], r["action"]) for r in eventlog.tail(log, 100)[len(records):] if r["kind"] == "anomaly"]
    assert later == [("b", "log"), ("c", "log")]


def test_the_worst_offender_need_not_be_the_first_to_sustain(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    sentry = Sentry(tmp_path / "no.sock", parse_policy('{"default": "kill", "thresholds": {"sustain": 3}}'),
                    log, "sentry")

    def st(name: str, psi: float) -> dict[str, Any]:
        return {"name": name, "state": "ready", "since": 1.0, "cgroup": {"psi_memory_avg10": psi}}

    sentry.sample([st("early", 30.0), st("worse", 5.0)])
    sentry.sample([st("early", 30.0), st("worse", 60.0)])
    assert eventlog.tail(log, 10) == []
    sentry.sample([st("early", 30.0), st("worse", 70.0)])  # early sustains; worse is higher now
    acted = [(r["capsule"], r["action"]) for r in eventlog.tail(log, 10) if r["kind"] == "anomaly"]
    assert acted == [("worse", "kill"), ("early", "log")]


def test_the_worst_offender_holds_the_most_above_its_memory_high(tmp_path: Path) -> None:
    """PSI of capsules throttled at memory.high is noisy (each stalls most of the time); what they
    hold above it is not: the booted drill's 48M capsule is stopped, not a 36M one that stalled more."""
    log = tmp_path / "events.jsonl"
    sentry = Sentry(tmp_path / "no.sock", parse_policy('{"default": "kill", "thresholds": {"sustain": 2}}'),
                    log, "sentry")
    high = 32 << 20

    def st(name: str, psi: float, held: int) -> dict[str, Any]:
        cg = {"psi_memory_avg10": psi, "memory_current": str(held << 20), "memory_high": str(high)}
        return {"name": name, "state": "ready", "since": 1.0, "cgroup": cg}

    for _ in range(2):
        sentry.sample([st("b", 71.0, 36), st("a", 47.0, 48), st("c", 66.0, 36), st("small", 90.0, 0)])
    acted = [(r["capsule"], r["action"], r["over_memory_high"]) for r in eventlog.tail(log, 10)
             if r["kind"] == "anomaly"]
    assert acted == [("a", "kill", 16 << 20), ("b", "log", 4 << 20), ("c", "log", 4 << 20), ("small", "log", 0)]


def test_over_high_reads_cgroup_figures() -> None:
    assert over_high("50331648\n", "33554432\n") == 16 << 20
    assert over_high("1000", "max") == 0
    assert over_high("1000", "2000") == 0
    assert over_high(None, None) == 0


def test_a_full_event_log_does_not_stop_the_sentry(tmp_path: Path) -> None:
    full = Path("/dev/full")
    if not full.exists():
        pytest.skip("no /dev/full")
    sentry = Sentry(tmp_path / "no.sock", parse_policy(""), full, "sentry")
    sentry.record(kind="anomaly", anomaly="oom", capsule="x", action="log")
    sentry.record(kind="anomaly", anomaly="oom", capsule="y", action="log")
    assert sentry.unrecorded == 2
