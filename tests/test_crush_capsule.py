"""CRUSH capsules on the host: the runtime (`python3 -m exo_init.runtimes.crush`, the real VM) run as
a process with its configuration and a real sd_notify socket, and CRUSH capsules under a real
exo_init (tests/exo.py). Gas as a quota (out of gas: deterministic, naming the budget and the
line), grants as capabilities (refused before running, paths outside a grant, writes under a
read-only grant, the runtime's own state), checkpoints (stop, SIGUSR1 / `exoctl checkpoint`,
every N gas, sleep), resume with the same result and total gas as an uninterrupted run and
CPython, a damaged or foreign checkpoint kept aside, a torn temporary file ignored.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exo_init.lib.runtime import EXIT_DETERMINISTIC, parse_metrics
from exo_init.pid1.manifest import parse_capsule, parse_manifest
from exo_init.runtimes.crush import CHECKPOINT, SLICE, GasRate
from tests.exo import REPO, ExoInit, manifest_json
from tests.runtime_harness import Ran, run_runtime

pytest.importorskip("tree_sitter")

N = 200_000
SUM_SQUARES = f"""total = 0
for i in range({N}):
    total = (total + i * i) % 4294967296
print("sum", total)
"""
SPIN = "x = 0\nwhile True:\n    pass\n"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short path (AF_UNIX socket paths are limited), readable by every uid (dynamic uids)."""
    path = Path(tempfile.mkdtemp(prefix="exo-crush-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def program(workdir: Path, name: str, text: str) -> Path:
    path = workdir / name
    path.write_text(text)
    path.chmod(0o644)
    return path


def crush(workdir: Path, prog: Path, grants: dict[str, Any] | None = None, **options: Any) -> Ran:
    until, sig = options.pop("until", None), options.pop("sig", signal.SIGTERM)
    opts = {"program": str(prog), "gas": 10**9, "arena": 16 << 20, "checkpoint_every": 0,
            "on_bad_checkpoint": "fail", "fast": False} | options
    return run_runtime("crush", workdir, opts, grants or {}, until=until, sig=sig, timeout=120)


def has_checkpoint(notes: list[dict[str, str]]) -> bool:
    return any("checkpoint_gas" in n.get("EXO_METRICS", "") for n in notes)


def done_gas(err: str) -> int:
    line = next(x for x in err.splitlines() if ": done: " in x)
    return int(line.split(" instructions, ")[1].split(" gas")[0])


def uninterrupted(workdir: Path, prog: Path) -> tuple[str, int]:
    ran = crush(workdir, prog)
    assert ran.code == 0, ran.err
    return ran.out, done_gas(ran.err)


# --- the runtime alone ------------------------------------------------------------------------------

def test_hello_prints_reports_ready_and_its_gas(short_dir: Path) -> None:
    ran = crush(short_dir, program(short_dir, "hello.py", 'print("hello from crush")\n'))
    assert ran.code == 0, ran.err
    assert ran.out == "hello from crush\n"
    assert any(n.get("READY") == "1" for n in ran.notes), ran.notes
    assert 0 < ran.last_metrics["gas"]["value"] < 100 and ran.last_metrics["gas"]["limit"] == 10**9
    assert "hello.py: done: " in ran.err
    assert not (short_dir / "state" / CHECKPOINT).exists()


def test_out_of_gas_is_deterministic_and_names_the_budget_and_the_line(short_dir: Path) -> None:
    ran = crush(short_dir, program(short_dir, "spin.py", SPIN), gas=100_000)
    assert ran.code == EXIT_DETERMINISTIC, ran.err
    assert ran.failure == "crush: out of gas at spin.py:2: all 100000 of crush.gas used; gas 100k/100k, arena 32B/16M"
    assert ran.last_metrics["gas"] == {"value": 100_000, "limit": 100_000, "unit": "count"}


def test_an_ungranted_capability_is_refused_before_anything_runs(short_dir: Path) -> None:
    prog = program(short_dir, "peek.py", 'import exo\nprint("ran")\nprint(exo.fs.read("/etc/hostname"))\n')
    ran = crush(short_dir, prog)
    assert ran.code == EXIT_DETERMINISTIC and ran.out == ""
    assert "capability denied: the program declares 'fs.read', which is not granted" in ran.failure, ran.failure
    status = crush(short_dir, program(short_dir, "st.py", "import exo\nprint(exo.control.status())\n"))
    assert "declares 'control.status', which is not granted" in status.failure


def files_world(base: Path) -> dict[str, Any]:
    (base / "ro").mkdir(parents=True)
    (base / "ro" / "a.txt").write_text("granted text")
    (base / "secret").mkdir()
    (base / "secret" / "s.txt").write_text("nope")
    return {"filesystem": {str(base / "ro"): "ro"}}


@pytest.mark.parametrize(("name", "text", "code", "expect"), [
    ("read", 'print(exo.fs.read("{b}/ro/a.txt"), exo.fs.list("{b}/ro"))', 0, "granted text ['a.txt']"),
    ("missing", 'try:\n    exo.fs.read("{b}/ro/none")\nexcept FileNotFoundError as e:\n    print("caught", e)', 0,
     "caught [Errno 2] No such file or directory: '{b}/ro/none'"),
    ("outside", 'print(exo.fs.read("{b}/secret/s.txt"))', EXIT_DETERMINISTIC,
     "capability denied: fs.read('{b}/secret/s.txt'): outside every granted root"),
    ("dotdot", 'print(exo.fs.read("{b}/ro/../secret/s.txt"))', EXIT_DETERMINISTIC, "'..' is not allowed"),
    ("write", 'exo.fs.write("{b}/ro/new.txt", "x")', EXIT_DETERMINISTIC,
     "capability denied: the program declares 'fs.write', which is not granted"),
])
def test_file_grants_are_the_capsules_grants(short_dir: Path, name: str, text: str, code: int, expect: str) -> None:
    base = short_dir / "w"
    grants = files_world(base)
    ran = crush(short_dir, program(short_dir, f"{name}.py", "import exo\n" + text.format(b=base) + "\n"), grants)
    assert ran.code == code, ran.err
    assert expect.format(b=base) in (ran.out if code == 0 else ran.failure), (ran.out, ran.failure)
    assert not (base / "ro" / "new.txt").exists()


def test_the_runtimes_own_state_is_refused_even_under_a_grant(short_dir: Path) -> None:
    state = short_dir / "state"
    state.mkdir()
    prog = program(short_dir, "forge.py", f'import exo\nexo.fs.write("{state}/{CHECKPOINT}", "forged")\n')
    ran = crush(short_dir, prog, {"filesystem": {str(short_dir): "rw"}})
    assert ran.code == EXIT_DETERMINISTIC and "the runtime's own state, not granted" in ran.failure, ran.failure
    assert not (state / CHECKPOINT).exists()


def test_a_stopped_run_resumes_to_the_uninterrupted_result_and_gas(short_dir: Path) -> None:
    prog = program(short_dir, "sum.py", SUM_SQUARES)
    out, gas = uninterrupted(short_dir, prog)
    assert out == f"sum {sum(i * i for i in range(N)) % 2**32}\n"   # CPython's
    first = crush(short_dir, prog, checkpoint_every=gas // 5, until=has_checkpoint)
    assert first.code == 0 and first.out == "", first.err
    assert "paused at a checkpoint on stop" in first.err
    saved = json.loads((short_dir / "state" / CHECKPOINT).read_text())
    assert 0 < saved["gas"][0] - saved["gas"][1] < gas, saved["gas"]
    second = crush(short_dir, prog, checkpoint_every=gas // 5)
    assert second.code == 0, second.err
    assert "resumed from its checkpoint" in second.err
    assert second.out == out and done_gas(second.err) == gas
    assert not (short_dir / "state" / CHECKPOINT).exists(), "a finished run leaves no checkpoint"


def test_a_gas_rate_throttles_the_run_and_changes_nothing_else(short_dir: Path) -> None:
    """crush.gas_per_period: the same output and gas as an unthrottled run, in at least the whole
    periods its gas needs (a lower bound: a loaded machine only adds to it), waiting, not failed."""
    prog = program(short_dir, "sum.py", SUM_SQUARES)
    t0 = time.monotonic()
    out, gas = uninterrupted(short_dir, prog)
    # 4 periods' worth: at least 3 waits. A period twice the unthrottled run's time keeps the
    # program ahead of its allowance on a loaded machine too (it would have to run 8x slower
    # than that run to use no more than a period's gas in each period, and never wait).
    per_period, period = gas // 4 + 1, max(0.25, 2 * (time.monotonic() - t0))
    t0 = time.monotonic()
    ran = crush(short_dir, prog, gas_per_period=per_period, period=period)
    took = time.monotonic() - t0
    assert ran.code == 0, ran.err
    assert ran.out == out and done_gas(ran.err) == gas
    assert took >= 3 * period, took
    assert ran.last_metrics["gas_throttled"]["value"] > 0, ran.last_metrics


def test_a_stop_while_throttled_takes_a_checkpoint(short_dir: Path) -> None:
    prog = program(short_dir, "sum.py", SUM_SQUARES)
    out, gas = uninterrupted(short_dir, prog)

    def throttled(notes: list[dict[str, str]]) -> bool:
        """Waiting for the next period: its figures say it has used its period's gas."""
        for n in notes:
            metrics = parse_metrics(n["EXO_METRICS"]) if "EXO_METRICS" in n else {}
            if "gas" in metrics and metrics["gas"].value >= gas // 10:
                return True
        return False

    first = crush(short_dir, prog, gas_per_period=gas // 10, period=3600.0, until=throttled)
    assert first.code == 0 and first.out == "", first.err
    assert "paused at a checkpoint on stop" in first.err
    second = crush(short_dir, prog)  # the rate is the manifest's: none now
    assert second.code == 0 and second.out == out and done_gas(second.err) == gas, second.err


@pytest.mark.parametrize(("used", "now", "wait"), [
    (0, 0.0, 0.0), (99, 0.5, 0.0),            # within the first period's 100
    (100, 0.5, 0.5), (100, 1.0, 0.0),         # used up: wait for the next period
    (250, 0.2, 1.8), (250, 2.0, 0.0),         # an overrun is paid back by later periods
])
def test_gas_rate_is_a_token_bucket(used: int, now: float, wait: float) -> None:
    rate = GasRate(per_period=100, period=1.0, t0=0.0, base=0)
    assert rate.wait(used, now) == pytest.approx(wait)


def test_gas_rate_slices_follow_the_allowance() -> None:
    rate = GasRate(per_period=1000, period=1.0, t0=10.0, base=500)
    assert rate.steps(500, 10.0, 1.0) == 1000
    assert rate.steps(900, 10.0, 4.0) == 150     # 600 gas left at about 4 gas an instruction
    assert rate.steps(1600, 10.5, 4.0) == 1      # none left: one instruction, then the wait
    assert GasRate(0, 1.0, 0.0, 0).steps(10**9, 0.0, 1.0) == SLICE


def test_checkpoints_every_n_gas_and_on_request(short_dir: Path) -> None:
    prog = program(short_dir, "sum.py", SUM_SQUARES)
    ran = crush(short_dir, prog, checkpoint_every=1_000_000)
    assert ran.code == 0
    periodic = [x for x in ran.err.splitlines() if "checkpoint (every 1000000 gas)" in x]
    assert len(periodic) >= 3, ran.err
    asked = crush(short_dir, prog, until=lambda notes: any(n.get("READY") for n in notes), sig=signal.SIGUSR1)
    assert asked.code == 0 and asked.out.startswith("sum "), asked.err
    assert "checkpoint (requested)" in asked.err, asked.err


def test_a_damaged_checkpoint_is_kept_aside_and_fails_or_starts_over(short_dir: Path) -> None:
    prog = program(short_dir, "sum.py", SUM_SQUARES)
    state = short_dir / "state"
    state.mkdir()
    (state / CHECKPOINT).write_text('{"crush_state": 1, "casm": 1, "program": "')
    ran = crush(short_dir, prog)
    assert ran.code == EXIT_DETERMINISTIC and ran.out == ""
    assert "the checkpoint cannot be resumed" in ran.failure and 'on_bad_checkpoint = "fail"' in ran.failure
    aside = list(state.glob("checkpoint.bad-*.json"))
    assert len(aside) == 1 and aside[0].read_text().startswith('{"crush_state"'), "kept, not deleted"
    assert aside[0].name in ran.failure
    (state / CHECKPOINT).write_text("garbage")
    again = crush(short_dir, prog, on_bad_checkpoint="restart")
    assert again.code == 0 and again.out.startswith("sum "), again.err
    assert "starting over" in again.err and len(list(state.glob("checkpoint.bad-*.json"))) == 2


def test_another_programs_checkpoint_is_refused(short_dir: Path) -> None:
    prog = program(short_dir, "sum.py", SUM_SQUARES)
    crush(short_dir, prog, until=lambda notes: any(n.get("READY") for n in notes))
    assert (short_dir / "state" / CHECKPOINT).exists()
    other = program(short_dir, "other.py", SUM_SQUARES.replace("4294967296", "4294967291"))
    ran = crush(short_dir, other)
    assert ran.code == EXIT_DETERMINISTIC and "the state was saved for program" in ran.failure, ran.failure


def test_a_torn_temporary_file_is_ignored_and_the_last_complete_checkpoint_used(short_dir: Path) -> None:
    prog = program(short_dir, "sum.py", SUM_SQUARES)
    out, gas = uninterrupted(short_dir, prog)
    crush(short_dir, prog, checkpoint_every=gas // 4, until=has_checkpoint)
    state = short_dir / "state"
    (state / f".{CHECKPOINT}.tmp").write_text('{"crush_state": 1, "ga')   # a power cut mid-write
    ran = crush(short_dir, prog)
    assert ran.code == 0 and ran.out == out and done_gas(ran.err) == gas, ran.err
    assert not (state / f".{CHECKPOINT}.tmp").exists()


def test_a_sleep_checkpoints_and_a_stop_while_asleep_resumes_the_sleep(short_dir: Path) -> None:
    prog = program(short_dir, "nap.py", 'import exo\nprint("before")\nexo.sleep(0.5)\nprint("after")\n')
    ran = crush(short_dir, prog)
    assert ran.code == 0 and ran.out == "before\nafter\n" and "checkpoint (sleep)" in ran.err, ran.err
    first = crush(short_dir, prog, until=has_checkpoint)
    assert first.out == "before\n" and (short_dir / "state" / CHECKPOINT).exists(), first.err
    second = crush(short_dir, prog)
    assert second.out == "after\n", second.err


# --- the manifest -------------------------------------------------------------------------------------

def test_the_manifest_takes_a_crush_section_and_refuses_bad_ones() -> None:
    spec = parse_capsule("c", {"runtime": "crush", "crush": {"program": "/p/x.casm", "arena": "1M",
                                                              "checkpoint_every": 5}})
    assert spec.runtime_options() == {"program": "/p/x.casm", "gas": 10**9, "arena": 1 << 20, "checkpoint_every": 5,
                                      "on_bad_checkpoint": "fail", "fast": False, "gas_per_period": 0, "period": 1.0}
    bad = {
        "crush.gas_per_period: must be between 0": {"runtime": "crush", "crush": {"program": "/p/x.py",
                                                                                  "gas_per_period": -1}},
        "crush.period: must be between 0.01": {"runtime": "crush", "crush": {"program": "/p/x.py", "period": 0}},
        "crush: missing": {"runtime": "crush"},
        "crush.program: must end in .py or .casm": {"runtime": "crush", "crush": {"program": "/p/x.wat"}},
        "crush.gas: must be between 1": {"runtime": "crush", "crush": {"program": "/p/x.py", "gas": 0}},
        "crush.on_bad_checkpoint: unknown": {"runtime": "crush", "crush": {"program": "/p/x.py",
                                                                           "on_bad_checkpoint": "delete"}},
        "crush: only for runtime = \"crush\"": {"argv": ["/bin/true"], "crush": {"program": "/p/x.py"}},
        "argv: a crush capsule's command is derived": {"argv": ["/bin/true"], "runtime": "crush",
                                                        "crush": {"program": "/p/x.py"}},
    }
    for message, doc in bad.items():
        errors = parse_manifest({"version": 1, "capsules": {"c": doc}}, "test").errors
        assert message in str(errors.get("c")), (message, errors)


# --- under a real exo_init ---------------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="scoped capsules need root (namespaces, mounts)")


def crush_capsule(prog: Path, **fields: Any) -> dict[str, Any]:
    return {"runtime": "crush", "crush": {"program": str(prog)} | fields.pop("crush", {}),
            "readiness": {"kind": "notify"}, **fields}


def exoctl(e: ExoInit, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exo_init.client.exoctl", "--socket", str(e.runtime / "control.sock"),
                           *args], capture_output=True, text=True, timeout=30, check=False, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


@needs_root
def test_exo_init_fails_a_runaway_program_at_its_gas_and_keeps_the_neighbour(tmp_path: Path, short_dir: Path) -> None:
    capsules = {"runaway": crush_capsule(program(short_dir, "spin.py", SPIN), crush={"gas": 300_000},
                                         restart={"policy": "always"}, capabilities={}),
                "neighbour": {"argv": ["/bin/sleep", "1000"]}}
    e = ExoInit(tmp_path / "exo", {"capsules": capsules})
    try:
        neighbour = e.wait_state("neighbour", "ready", 30)
        st = e.wait_state("runaway", "failed", 60)
        line = "crush: out of gas at spin.py:2: all 300000 of crush.gas used; gas 300k/300k, arena 32B/16M"
        assert st["reason"] == line + " (deterministic: not restarted)", st
        assert st["last_exit"] == f"exited {EXIT_DETERMINISTIC}"
        time.sleep(1.5)  # longer than its first backoff delay: it is not restarted
        again = e.status("runaway")
        assert again["state"] == "failed" and again["restarts"] == 0
        assert e.status("neighbour")["pid"] == neighbour["pid"]
        assert "gas 300k/300k" in exoctl(e, "status", "runaway").stdout
    finally:
        e.close()


@needs_root
def test_the_sentry_records_a_run_out_of_gas(tmp_path: Path, short_dir: Path) -> None:
    """Out of gas is an event of the Sentry's (anomaly `runtime-failure`, with the runtime's line),
    acted on by its policy: here a rollback would be the answer to a bad generation's program."""
    runaway = crush_capsule(program(short_dir, "spin.py", SPIN), crush={"gas": 300_000}, capabilities={},
                            autostart=False)
    e = ExoInit(tmp_path / "exo", {"capsules": {"runaway": runaway}})
    try:
        sentry = {"argv": [sys.executable, "-m", "exo_init.system.sentry", "--socket", str(e.runtime / "control.sock")],
                  "env": {"PYTHONPATH": str(REPO), "EXO_SENTRY_POLICY": json.dumps({"default": "log"})},
                  "readiness": {"kind": "notify"}, "restart": {"policy": "always"}}
        manifest = tmp_path / "with-sentry.json"
        manifest.write_text(manifest_json({"sentry": sentry, "runaway": runaway}))
        e.call("switch", target=str(manifest), **{"try": False})
        e.wait_state("sentry", "ready", 30)
        e.call("start", name="runaway")
        e.wait_state("runaway", "failed", 60)

        def recorded() -> list[dict[str, Any]]:
            return [r for r in e.call("events") if r.get("capsule") == "runaway" and r["kind"] == "anomaly"]

        e.wait_for(lambda: bool(recorded()), 20, "the sentry's record of runaway's failure")
        (anomaly,) = recorded()
        assert anomaly["anomaly"] == "runtime-failure" and anomaly["action"] == "log", anomaly
        assert anomaly["reason"].startswith("crush: out of gas at spin.py:2: all 300000 of crush.gas used"), anomaly
    finally:
        e.close()


@needs_root
def test_exo_init_checkpoints_on_request_and_on_stop_and_resumes(tmp_path: Path, short_dir: Path) -> None:
    slow = SUM_SQUARES.replace(str(N), "3000000")
    prog = program(short_dir, "sum.py", slow)
    capsules = {"summer": crush_capsule(prog, type="oneshot", readiness={}, restart={"policy": "never"},
                                        capabilities={}),
                "plain": {"argv": ["/bin/sleep", "1000"]}}
    e = ExoInit(tmp_path / "exo", {"capsules": capsules})
    try:
        e.wait_for(lambda: e.status("summer")["metrics"].get("gas", {}).get("value", 0) > 0, 60, "gas used")
        asked = exoctl(e, "checkpoint", "summer")
        assert asked.returncode == 0, asked.stderr
        state = e.runtime / "state" / "capsules" / "summer"
        e.wait_for((state / CHECKPOINT).exists, 30, "the requested checkpoint")
        refused = exoctl(e, "checkpoint", "plain")
        assert refused.returncode != 0 and "plain is not a CRUSH capsule (runtime exec)" in refused.stderr
        e.call("stop", name="summer")
        e.wait_state("summer", "stopped", 60)
        saved = json.loads((state / CHECKPOINT).read_text())
        used = saved["gas"][0] - saved["gas"][1]
        e.call("start", name="summer")
        st = e.wait_state("summer", "exited", 300)
        log = "\n".join(e.call("logs", name="summer", lines=200)["lines"])
        assert f"resumed from its checkpoint ({saved['steps']} instructions, {used} gas used)" in log, log
        assert f"sum {sum(i * i for i in range(3_000_000)) % 2**32}" in log
        assert st["reason"] == "exited 0", st
    finally:
        e.close()
