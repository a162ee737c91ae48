"""exo_init on the host, as a child subreaper: real processes, real signals, real sockets, and
real cgroup2 grouping (cgroup.kill, cgroup.events) where the host's hierarchy allows it."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from exo_init.lib.errors import ApiError
from exo_init.pid1 import runner
from tests.exo import ExoInit, host_cgroup_parent

PY = sys.executable
NOTIFY_CLIENT = (
    "import os, socket, time, pathlib\n"
    "gate = pathlib.Path(os.environ['GATE'])\n"
    "while not gate.exists(): time.sleep(0.02)\n"
    "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
    "s.sendto(b'STATUS=serving requests\\nREADY=1', os.environ['NOTIFY_SOCKET'])\n"
    "time.sleep(100)\n"
)


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


@pytest.fixture(params=["cgroups", "no-cgroups"] if host_cgroup_parent() else ["no-cgroups"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_dependencies_wait_for_readiness(exo: Any, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    e = exo({
        "db": {"argv": [PY, "-c", NOTIFY_CLIENT], "env": {"GATE": str(gate)}, "readiness": {"kind": "notify"}},
        "app": {"argv": sh("echo >&3; exec sleep 100"), "readiness": {"kind": "fd", "fd": 3},
                "requires": ["db"]},
        "web": {"argv": sh("exec sleep 100"), "after": ["app"]},
    })
    st = e.wait_state("db", "starting")
    assert e.status("app")["state"] == "stopped", "app must wait for db to be ready"
    assert st["pid"] is not None
    time.sleep(0.3)
    assert e.status("db")["state"] == "starting", "READY=1 not sent yet"
    gate.touch()
    e.wait_state("web", "ready")
    db = e.status("db")
    assert db["status_text"] == "serving requests"
    ready_at = {name: next(t for s, t in e.transitions(name) if s == "ready") for name in ("db", "app", "web")}
    app_started = next(t for s, t in e.transitions("app") if s == "starting")
    assert ready_at["db"] <= app_started <= ready_at["app"] <= ready_at["web"]


def test_starting_a_capsule_pulls_in_a_stopped_requirement(exo: Any) -> None:
    # "a" sorts before "b": the scheduler's pass over "a" is over when starting "b" pulls it in.
    e = exo({"a": {"argv": sh("exec sleep 100"), "autostart": False},
             "b": {"argv": sh("exec sleep 100"), "requires": ["a"], "autostart": False}})
    e.call("start", name="b")
    e.wait_state("a", "ready")
    e.wait_state("b", "ready")


def test_notification_fd_readiness(exo: Any, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    e = exo({"svc": {"argv": sh(f"while [ ! -e {gate} ]; do sleep 0.02; done; echo ready >&3; exec sleep 100"),
                     "readiness": {"kind": "fd", "fd": 3}}})
    e.wait_state("svc", "starting")
    time.sleep(0.3)
    assert e.status("svc")["state"] == "starting"
    gate.touch()
    e.wait_state("svc", "ready")


def test_file_and_tcp_probes(exo: Any, tmp_path: Path) -> None:
    """Ready when the file exists / the port accepts connections: not at exec, and not at bind()
    (each capsule waits at a gate first, and says when it got there)."""
    flag, bound, gate = tmp_path / "flag", tmp_path / "bound", tmp_path / "gate"
    port = 20000 + os.getpid() % 20000
    server = (f"import pathlib, socket, time\ns = socket.socket(); s.bind(('127.0.0.1', {port}))\n"
              f"pathlib.Path({str(bound)!r}).touch()\n"
              f"while not pathlib.Path({str(gate)!r}).exists(): time.sleep(0.02)\n"
              "s.listen(); time.sleep(100)\n")
    e = exo({
        "file": {"argv": sh(f"touch {bound}.file; while [ ! -e {gate} ]; do sleep 0.02; done; touch {flag}; "
                            "exec sleep 100"),
                 "readiness": {"kind": "file", "path": str(flag)}},
        "tcp": {"argv": [PY, "-c", server], "readiness": {"kind": "tcp", "port": port}},
    })
    e.wait_for(lambda: bound.exists() and Path(f"{bound}.file").exists(), 30, "both capsules at their gates")
    assert e.status("tcp")["state"] == e.status("file")["state"] == "starting", \
        "running, the port bound but not listening, the file not there: not ready"
    gate.touch()
    e.wait_state("file", "ready")
    assert flag.exists()
    e.wait_state("tcp", "ready")


def test_readiness_timeout_is_a_failure(exo: Any) -> None:
    e = exo({"slow": {"argv": sh("exec sleep 100"), "readiness": {"kind": "notify", "timeout": 0.3},
                      "restart": {"policy": "never"}}})
    st = e.wait_state("slow", "failed")
    assert "not ready within 0.3 s" in st["reason"]


def test_crash_loop_backs_off_then_fails(exo: Any, mode: str) -> None:
    e = exo({"crasher": {"argv": sh("echo boom; exit 3"), "autostart": False,
                         "restart": {"policy": "on-failure", "delay": 0.1, "max_delay": 1.0,
                                     "limit_burst": 5, "limit_interval": 60}}}, cgroups=mode == "cgroups")
    e.call("start", name="crasher")
    st = e.wait_state("crasher", "failed", timeout=15)
    assert "start limit hit" in st["reason"] and "exited 3" in st["reason"]
    assert "boom" in st["reason"], "the failure reason quotes the capsule's last output"
    assert st["restarts"] == 4
    starts = [t for s, t in e.transitions("crasher") if s == "starting"]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) == 4
    # backoff 0.1, 0.2, 0.4, 0.8 s: each gap is at least its delay (the process's run time, longer on
    # a loaded host, adds to each; the exact doubling is tests/test_scheduler.py's, on a simulated clock)
    assert all(gap >= 0.1 * 2 ** i for i, gap in enumerate(gaps)), gaps


def test_restart_always_restarts_clean_exit(exo: Any) -> None:
    e = exo({"tick": {"argv": sh("sleep 0.1"), "restart": {"policy": "always", "delay": 0.05}}})
    e.wait_for(lambda: e.status("tick")["restarts"] >= 2, 10, "two restarts")


def test_on_failure_leaves_clean_exit_alone(exo: Any) -> None:
    e = exo({"job": {"argv": sh("exit 0"), "restart": {"policy": "on-failure"}}})
    st = e.wait_state("job", "exited")
    assert st["last_exit"] == "exited 0" and st["restarts"] == 0


def test_orphans_and_double_forked_daemons_are_reaped(exo: Any, mode: str) -> None:
    e = exo({"forker": {"type": "oneshot", "argv": sh("(sleep 0.3 &) ; (sleep 0.3 &) ; exit 0")}},
            cgroups=mode == "cgroups")
    e.wait_state("forker", "exited")
    e.wait_for(lambda: e.call("info")["orphans_reaped"] >= 2, 10, "orphans reaped")
    zombies = [c for c in psutil.Process(e.proc.pid).children() if c.status() == psutil.STATUS_ZOMBIE]
    assert zombies == []


def test_stop_kills_every_process_of_the_capsule(exo: Any, mode: str) -> None:
    e = exo({"daemon": {"argv": sh("sleep 1000 & sleep 1000 & exec sleep 1000")}}, cgroups=mode == "cgroups")
    e.wait_state("daemon", "ready")  # ready = the shell exec'd; it forks its sleeps after that

    def sleeps() -> list[psutil.Process]:
        return [p for p in psutil.Process(e.proc.pid).children(recursive=True) if p.name() == "sleep"]

    e.wait_for(lambda: len(sleeps()) == 3, 10, "three sleeps running")
    family = sleeps()
    e.call("stop", name="daemon")
    e.wait_state("daemon", "stopped")
    _gone, alive = psutil.wait_procs(family, timeout=5)
    assert alive == []


def test_stop_timeout_escalates_to_kill(exo: Any) -> None:
    e = exo({"stubborn": {"argv": sh("trap '' TERM; while :; do sleep 0.05; done"),
                          "stop": {"signal": "SIGTERM", "timeout": 0.5}}})
    e.wait_state("stubborn", "ready")
    t0 = time.monotonic()
    e.call("stop", name="stubborn")
    e.wait_state("stubborn", "stopped")
    assert 0.4 < time.monotonic() - t0 < 5


def test_watchdog_missed_restarts(exo: Any) -> None:
    e = exo({"wd": {"argv": sh("exec sleep 100"), "watchdog_sec": 0.3, "autostart": False,
                    "restart": {"policy": "on-failure", "delay": 0.05}}})
    e.call("start", name="wd")
    e.wait_for(lambda: e.status("wd")["restarts"] >= 1, 10, "a watchdog restart")
    assert any("watchdog timeout" in ev["reason"] for ev in e.events if ev["capsule"] == "wd")


def test_shutdown_stops_in_reverse_dependency_order(exo: Any, mode: str) -> None:
    e = exo({
        "a": {"argv": sh("exec sleep 100")},
        "b": {"argv": sh("exec sleep 100"), "requires": ["a"]},
        "c": {"argv": sh("exec sleep 100"), "after": ["b"]},
    }, cgroups=mode == "cgroups")
    e.wait_state("c", "ready")
    assert e.stop(signal.SIGTERM) == 0
    out = e.log()
    order = [line.split()[-1] for line in out.splitlines() if "stopped " in line and "[  OK  ]" in line]
    assert order == ["c", "b", "a"], out


def test_stopping_a_dependency_stops_its_dependents_first(exo: Any) -> None:
    e = exo({"a": {"argv": sh("exec sleep 100")}, "b": {"argv": sh("exec sleep 100"), "requires": ["a"]}})
    e.wait_state("b", "ready")
    e.call("stop", name="a")
    e.wait_state("a", "stopped")
    assert e.status("b")["state"] == "stopped"
    b_stop = next(t for s, t in e.transitions("b") if s == "stopped")
    a_stop = next(t for s, t in e.transitions("a") if s == "stopped")
    assert b_stop <= a_stop


def test_bad_capsules_fail_alone(exo: Any) -> None:
    e = exo({
        "good": {"argv": sh("exec sleep 100")},
        "noexe": {"argv": ["/nonexistent/program"]},
        "nouser": {"argv": sh("exec sleep 100"), "user": "no-such-user-xyz"},
        "badfield": {"argv": sh("true"), "restart": {"policy": "sometimes"}},
        "unknownkey": {"argv": sh("true"), "colour": "blue"},
        "x": {"argv": sh("exec sleep 100"), "requires": ["y"]},
        "y": {"argv": sh("exec sleep 100"), "requires": ["x"]},
        "orphan": {"argv": sh("exec sleep 100"), "requires": ["missing"]},
        "nodir": {"argv": sh("exec sleep 100"), "workdir": "/nonexistent/dir"},
    })
    e.wait_state("good", "ready")
    expect = {
        "noexe": "exec /nonexistent/program: No such file or directory",
        "nouser": "user: unknown user 'no-such-user-xyz'",
        "badfield": "restart.policy: unknown policy 'sometimes'",
        "unknownkey": "colour: unknown key",
        "x": "dependency cycle",
        "y": "dependency cycle",
        "orphan": "required capsule 'missing' is not declared",
        "nodir": "chdir /nonexistent/dir: No such file or directory",
    }
    for name, text in expect.items():
        st = e.wait_state(name, "failed")
        assert text in (st["reason"] or "") or text in (st["error"] or ""), (name, st)
    out = e.log()
    assert "Traceback" not in out
    assert e.proc.poll() is None


def test_unusable_manifest_keeps_exo_init_alive(tmp_path: Path) -> None:
    e = ExoInit(tmp_path, {"capsules": {}})
    try:
        e.manifest_path.write_text("{ not json")
        with pytest.raises(ApiError) as err:
            e.call("reload")
        assert err.value.name == "InvalidManifest"
        assert "not valid JSON" in err.value.message and str(e.manifest_path) in err.value.message
        e.proc.send_signal(signal.SIGHUP)
        e.wait_for(lambda: "reload refused" in e.log(), 5, "SIGHUP reload refusal logged")
        assert e.call("ping")["pid"] == e.proc.pid
    finally:
        e.close()
    assert "Traceback" not in e.log()


def test_reload_applies_only_the_difference(exo: Any) -> None:
    e = exo({"same": {"argv": sh("exec sleep 100")}, "changed": {"argv": sh("exec sleep 100")},
             "removed": {"argv": sh("exec sleep 100")}})
    for name in ("same", "changed", "removed"):
        e.wait_state(name, "ready")
    pids = {n: e.status(n)["pid"] for n in ("same", "changed")}
    e.write_manifest({"capsules": {"same": {"argv": sh("exec sleep 100")},
                                   "changed": {"argv": sh("exec sleep 200")},
                                   "added": {"argv": sh("exec sleep 100")}}})
    e.proc.send_signal(signal.SIGHUP)
    e.wait_state("added", "ready")
    e.wait_for(lambda: e.status("changed")["state"] == "ready" and e.status("changed")["pid"] != pids["changed"],
               10, "changed capsule restarted")
    assert e.status("same")["pid"] == pids["same"]
    with pytest.raises(ApiError) as err:
        e.status("removed")
    assert err.value.name == "NoSuchCapsule"


def test_control_api_errors_and_access(exo: Any) -> None:
    e = exo({"svc": {"argv": sh("exec sleep 100")}})
    e.wait_state("svc", "ready")
    with pytest.raises(ApiError) as err:
        e.call("stop", name="nope")
    assert err.value.name == "NoSuchCapsule"
    with pytest.raises(ApiError) as err:
        e.call("frobnicate")
    assert err.value.name == "UnknownOperation"
    # a non-root caller may read but not change anything
    probe = ("import json,sys; from pathlib import Path; from exo_init.client.control import call\n"
             "from exo_init.lib.errors import ApiError\n"
             "p = Path(sys.argv[1])\n"
             "print(json.dumps(call(p, {'op': 'status', 'name': 'svc'})['state']))\n"
             "try:\n    call(p, {'op': 'stop', 'name': 'svc'})\nexcept ApiError as e:\n    print(e.name)\n")
    # the system Python: the test runner's may live under /root, out of nobody's reach
    out = subprocess.run(["/usr/bin/python3", "-c", probe, str(e.runtime / "control.sock")], user="nobody",
                         capture_output=True, text=True, env={"PYTHONPATH": str(Path(__file__).parent.parent)},
                         cwd="/", check=True).stdout.split()
    assert out == ['"ready"', "AccessDenied"]
    assert e.status("svc")["state"] == "ready"


def test_exoctl_cli(exo: Any) -> None:
    e = exo({"svc": {"argv": sh("echo hello from svc; exec sleep 100")}})
    e.wait_state("svc", "ready")
    sock = str(e.runtime / "control.sock")

    def exoctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "exo_init.client.exoctl", "--socket", sock, *args],
                              capture_output=True, text=True, cwd=Path(__file__).parent.parent, check=False)

    r = exoctl("status")
    assert r.returncode == 0 and "svc" in r.stdout and "ready" in r.stdout and "CAPSULE" in r.stdout
    e.wait_for(lambda: "hello from svc" in exoctl("logs", "svc").stdout, 5, "log line")
    r = exoctl("status", "nope")
    assert r.returncode == 4 and "no capsule named 'nope'" in r.stderr
    r = exoctl("stop", "svc")
    assert r.returncode == 0
    assert exoctl("status", "svc").returncode == 3
    r = subprocess.run([sys.executable, "-m", "exo_init.client.exoctl", "--socket", "/nonexistent.sock", "status"],
                       capture_output=True, text=True, cwd=Path(__file__).parent.parent, check=False)
    assert r.returncode == 6 and "cannot reach exo_init" in r.stderr


def test_freeze_and_thaw(exo: Any) -> None:
    if host_cgroup_parent() is None:
        pytest.skip("this host has no writable cgroup2 hierarchy")
    e = exo({"svc": {"argv": sh("while :; do sleep 0.05; done")}})
    st = e.wait_state("svc", "ready")
    e.call("freeze", name="svc")
    e.wait_for(lambda: e.status("svc")["cgroup"]["frozen"], 5, "frozen")
    e.call("thaw", name="svc")
    e.wait_for(lambda: not e.status("svc")["cgroup"]["frozen"], 5, "thawed")
    assert psutil.Process(st["pid"]).is_running()


def test_a_noisy_capsule_slows_itself_not_pid1(exo: Any) -> None:
    """/usr/bin/yes as a capsule (the hostile case of issue 13): PID 1 reads its output within a
    budget and stops reading beyond it, so the capsule blocks on its own pipe. PID 1 keeps
    answering, spends little CPU, and what it writes to the log (every byte PID 1 writes, as the
    kernel counts them) stays within the budget, not at yes's speed: the budget is what the output
    costs PID 1, a timestamp per line included (yes's 2-byte lines cost 13 times their size; as
    bytes read, the budget let PID 1 write 13 MiB/s and take a whole CPU under TCG)."""
    e = exo({"noisy": {"argv": ["/usr/bin/yes"]}, "quiet": {"argv": sh("sleep 100")}})
    e.wait_state("noisy", "ready")
    pid1 = psutil.Process(e.proc.pid)
    cpu0, wrote0, t0 = pid1.cpu_times(), pid1.io_counters().write_chars, time.monotonic()
    worst = 0.0
    while time.monotonic() - t0 < 6.0:
        start = time.monotonic()
        e.call("info")
        worst = max(worst, time.monotonic() - start)
        time.sleep(0.1)
    cpu1, wrote, elapsed = pid1.cpu_times(), pid1.io_counters().write_chars - wrote0, time.monotonic() - t0
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed
    log_dir = Path(e.status("noisy")["log"]).parent
    written = sum(p.stat().st_size for p in log_dir.glob("noisy.log*"))
    print(f"\nnoisy capsule: worst info latency {worst * 1000:.1f} ms, PID 1 CPU {cpu * 100:.1f} %, "
          f"PID 1 wrote {wrote / 2**20:.1f} MiB in {elapsed:.1f} s, log files {written / 2**20:.1f} MiB, "
          f"throttled {e.status('noisy')['log_paused']} times")
    assert worst < 1.0
    assert cpu < 0.5, f"PID 1 used {cpu * 100:.0f} % of a CPU"
    assert e.status("noisy")["log_paused"] > 0
    assert e.status("quiet")["state"] == "ready"
    # The budget: the burst plus LOG_RATE a second; 3 MiB for the last chunk's overshoot (64 KiB of
    # 2-byte lines: 0.8 MiB written) and everything else PID 1 wrote (answers, console lines).
    assert wrote < runner.LOG_BURST + runner.LOG_RATE * elapsed + 3 * 2**20, f"PID 1 wrote {wrote} bytes"
    assert written < (4 + elapsed + 4) * 2**20


def test_pid1_makes_room_for_a_pipe_per_capsule_and_gives_capsules_1024(exo: Any) -> None:
    """exo_init raises its own limit on open files (a log pipe per running capsule: the default
    1024 failed launches at about a thousand capsules); a capsule gets the conventional 1024."""
    code = "import resource; print('NOFILE', resource.getrlimit(resource.RLIMIT_NOFILE)[0], flush=True)"
    e = exo({"probe": {"argv": [PY, "-c", code], "type": "oneshot"},
             "probe-exec": {"argv": [PY, "-X", "dev", "-c", code], "type": "oneshot"}})
    e.wait_state("probe", "exited")
    e.wait_state("probe-exec", "exited")
    for name in ("probe", "probe-exec"):  # (in PID 1's fork, and exec'd)
        lines = e.call("logs", name=name, lines=10)["lines"]
        assert any(line.endswith("NOFILE 1024") for line in lines), lines
    limits = Path(f"/proc/{e.proc.pid}/limits").read_text()
    soft = int(next(line for line in limits.splitlines() if line.startswith("Max open files")).split()[3])
    assert soft > 1024, limits
