"""WebAssembly capsules on the host: the runtime (`python3 -m exo_init.runtimes.wasm`, real wasmtime)
run as a process with its configuration and a real sd_notify socket, and wasm capsules under a real
exo_init (tests/exo.py). Each attack of issue 18 is tried: a runaway loop, a deadline, memory.grow
past the limit, an out-of-bounds load, ungranted imports, file access outside the grants (`..`,
symlinks, read-only), hostile modules (malformed, huge memory, deep recursion, lying sizes).

The modules are WAT sources in tests/guest/wasm/ (fs.wat.in is a template: @BASE@ is the test's
directory), compiled by wasmtime when they run.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exo_init.lib.runtime import ENV_CONFIG, EXIT_DETERMINISTIC, RuntimeConfig, metrics_text, parse_metrics
from exo_init.runtimes.grants import FileGrants, GrantError
from tests.exo import REPO, ExoInit
from tests.runtime_harness import Ran, run_runtime

wasmtime = pytest.importorskip("wasmtime")

WASM_DIR = REPO / "tests" / "guest" / "wasm"
SYSTEM_PY = "/usr/bin/python3"
EXIT_FAILED = 1


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path (AF_UNIX socket paths are limited to 108 bytes), readable by
    every uid (scoped capsules run as dynamic uids)."""
    path = Path(tempfile.mkdtemp(prefix="exo-wasm-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def runtime(workdir: Path, module: Path, grants: dict[str, str] | None = None, state: bool = True,
            timeout: float = 60, **options: Any) -> Ran:
    """Run the wasm runtime on `module` as PID 1 would (its configuration in $EXO_RUNTIME, a
    $NOTIFY_SOCKET), and collect its exit code, output and notifications."""
    opts = {"module": str(module), "entry": "_start", "fuel": 10**9, "memory_max": 16 << 20, "deadline": 0.0}
    opts.update(options)
    return run_runtime("wasm", workdir, opts, {"filesystem": grants or {}}, state=state, timeout=timeout)


def wat(workdir: Path, name: str, text: str) -> Path:
    path = workdir / name
    path.write_text(text)
    path.chmod(0o644)
    return path


def fs_world(base: Path) -> Path:
    """ro/ (a file, a symlink out by .., an absolute symlink), rw/ (world-writable), secret/; and the
    fs module for it."""
    for sub in ("ro", "rw", "secret"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "ro" / "file").write_text("granted\n")
    (base / "secret" / "file").write_text("secret\n")
    (base / "ro" / "escape").symlink_to("../secret/file")
    (base / "ro" / "abs").symlink_to("/etc/passwd")
    (base / "rw").chmod(0o777)
    return wat(base, "fs.wat", (WASM_DIR / "fs.wat.in").read_text().replace("@BASE@", str(base)))


def results(out: str) -> dict[str, int]:
    """The fs module's "LABEL N" lines (in a capsule log, after the time stamp)."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(?:\S+ )?([a-z-]+) (-?\d+)$", out, re.M)}


# --- the runtime, run as PID 1 would run it ---------------------------------------------------------------


def test_hello_runs_reports_ready_and_its_figures(short_dir: Path) -> None:
    ran = runtime(short_dir, WASM_DIR / "hello.wat")
    assert ran.code == 0, ran.err
    assert ran.out == "hello from wasm\n"
    assert any(n.get("READY") == "1" for n in ran.notes), ran.notes
    fuel = ran.last_metrics["fuel"]
    assert 0 < fuel["value"] < 100 and fuel["limit"] == 10**9 and fuel["unit"] == "count"
    assert ran.last_metrics["memory"] == {"value": 65536, "limit": 16 << 20, "unit": "bytes"}
    assert ran.failure == ""


def test_a_runaway_loop_stops_at_its_fuel_budget_deterministically(short_dir: Path) -> None:
    ran = runtime(short_dir, WASM_DIR / "spin.wat", fuel=2_000_000)
    assert ran.code == EXIT_DETERMINISTIC, ran.err
    line = "wasm trap: out of fuel (all 2000000 of wasm.fuel used); fuel 2M/2M, memory 64K/16M"
    assert ran.failure == line and ran.err.splitlines()[-1] == line
    assert ran.last_metrics["fuel"]["value"] == 2_000_000
    assert any(n.get("STATUS") == line for n in ran.notes)


def test_a_deadline_stops_a_busy_module_within_its_bound_and_is_not_deterministic(short_dir: Path) -> None:
    ran = runtime(short_dir, WASM_DIR / "spin.wat", fuel=10**15, deadline=0.5)
    assert ran.code == EXIT_FAILED, ran.err
    m = re.fullmatch(r"wasm trap: deadline \(stopped after ([0-9.]+) s, wasm.deadline 0.5 s\); fuel >=\S+, "
                     r"memory 64K/16M", ran.failure)
    assert m is not None, ran.failure
    assert 0.5 <= float(m.group(1)) < 2.0, "stopped at its deadline, not long after"


def test_a_deadline_stops_a_sleeping_module_too(short_dir: Path) -> None:
    ran = runtime(short_dir, WASM_DIR / "ticker.wat", deadline=0.5)
    assert ran.code == EXIT_FAILED and "wasm trap: deadline" in ran.failure, ran.err
    assert 3 <= ran.out.count("tick\n") <= 8, ran.out  # 100 ms sleeps for half a second


def test_memory_grow_past_the_limit_returns_minus_one_and_an_out_of_bounds_load_traps(short_dir: Path) -> None:
    ran = runtime(short_dir, WASM_DIR / "grow.wat", memory_max=1 << 20)
    assert ran.out.splitlines() == ["memory.grow returned -1", "at pages 16"], ran.out  # 16 pages = 1 MiB
    assert ran.code == EXIT_DETERMINISTIC
    assert ran.failure.startswith("wasm trap: memory out of bounds (memory fault at wasm address 0x100000 in "
                                  "linear memory of size 0x100000; wasm trap: out of bounds memory access)")
    assert ran.failure.endswith("memory 1M/1M"), ran.failure


def test_deep_recursion_is_a_stack_overflow_trap(short_dir: Path) -> None:
    ran = runtime(short_dir, WASM_DIR / "recurse.wat")
    assert ran.code == EXIT_DETERMINISTIC
    assert ran.failure.startswith("wasm trap: stack overflow (wasm trap: call stack exhausted)"), ran.failure


IMPORT_CASES = [
    ('(import "exo" "fs_read" (func (param i32 i32 i32 i32) (result i64)))', {},
     'import exo.fs_read refused at link time: not granted (it needs a capabilities.filesystem entry)'),
    ('(import "exo" "fs_write" (func (param i32 i32 i32 i32) (result i64)))', {"/tmp": "ro"},
     'import exo.fs_write refused at link time: not granted (it needs a capabilities.filesystem entry with "rw")'),
    ('(import "env" "system" (func (param i32) (result i32)))', {},
     "import env.system refused at link time: not in the import table (exo.log, exo.clock_ms, exo.sleep_ms, "
     "exo.fs_read, exo.fs_write)"),
    ('(import "exo" "spawn" (func))', {}, "import exo.spawn refused at link time: not in the import table"),
    ('(import "exo" "log" (func (param i64)))', {},
     "import exo.log refused at link time: type (i64) -> (), the table's is (i32 i32) -> ()"),
    ('(import "exo" "log" (memory 1))', {},
     "import exo.log refused at link time: the table has functions only, not a MemoryType"),
]


@pytest.mark.parametrize(("imp", "grants", "line"), IMPORT_CASES, ids=[c[2][:40] for c in IMPORT_CASES])
def test_an_import_that_is_not_granted_is_refused_at_link_time(short_dir: Path, imp: str, grants: dict[str, str],
                                                               line: str) -> None:
    """Before any instruction runs: the module's start function (which would log) never runs."""
    module = wat(short_dir, "imports.wat", f"""(module (import "exo" "log" (func $log (param i32 i32))) {imp}
        (memory (export "memory") 1) (data (i32.const 0) "started")
        (func $s (call $log (i32.const 0) (i32.const 7))) (start $s) (func (export "_start")))""")
    ran = runtime(short_dir, module, grants=grants)
    assert ran.code == EXIT_DETERMINISTIC
    assert ran.failure.startswith("wasm: " + line), ran.failure
    assert "started" not in ran.out and not any(n.get("READY") for n in ran.notes)


def test_files_granted_read_works_ungranted_and_escapes_are_refused(short_dir: Path) -> None:
    base = short_dir / "w"
    module = fs_world(base)
    ran = runtime(short_dir, module, grants={str(base / "ro"): "ro", str(base / "rw"): "rw"})
    assert ran.code == 0, ran.err
    assert results(ran.out) == {"read-granted": 8, "read-ungranted": -errno.EACCES, "read-dotdot": -errno.EINVAL,
                                "read-symlink": -errno.EXDEV, "read-abs-symlink": -errno.EXDEV,
                                "write-granted": 15, "write-readonly": -errno.EACCES}, ran.out
    assert "content: granted" in ran.out
    assert (base / "rw" / "out").read_text() == "written by wasm"
    assert not (base / "ro" / "new").exists()
    for refusal in (f"{base}/secret/file is not granted", "is not a normalised absolute path",
                    f"{base}/ro/escape escapes its grant {base}/ro", f"{base}/ro/new is granted read-only"):
        assert refusal in ran.err, ran.err


def test_file_grants_resolve_beneath_the_longest_grant(short_dir: Path) -> None:
    base = short_dir / "g"
    fs_world(base)
    (base / "ro" / "sub").mkdir()
    (base / "ro" / "sub" / "f").write_text("deep")
    (base / "ro" / "inner").symlink_to("sub/f")  # a relative symlink that stays inside is fine
    files = FileGrants({str(base / "ro"): "ro", str(base / "ro" / "sub"): "rw", str(base / "secret" / "file"): "ro"},
                       deny=(str(base / "ro" / "sub" / "state"),))
    assert files.read(str(base / "ro" / "inner"), 100) == b"deep"
    assert files.read(str(base / "secret" / "file"), 3) == b"sec", "a granted file, and at most `limit` bytes"
    assert files.write(str(base / "ro" / "sub" / "new"), b"x") == 1, "the longer rw grant wins"
    refused = {
        str(base / "ro" / "new"): (errno.EACCES, True), str(base / "secret" / "other"): (errno.EACCES, False),
        str(base / "ro" / "sub" / "state" / "k.cwasm"): (errno.EACCES, False), "relative": (errno.EINVAL, False),
        f"{base}/ro/./file": (errno.EINVAL, False), f"/{base}/ro/file": (errno.EINVAL, False),
        f"{base}/ro/file\0": (errno.EINVAL, False), f"{base}/ro/": (errno.EINVAL, False),
        f"{base}/ro/abs": (errno.EXDEV, False), f"{base}/ro/missing": (errno.ENOENT, False),
    }
    for path, (code, write) in refused.items():
        with pytest.raises(GrantError) as e:
            files.write(path, b"x") if write else files.read(path, 10)
        assert e.value.errno == code, (path, e.value.message)
    files.close()


HOSTILE = [
    ("garbage.wasm", b"\0asm\x01\0\0\0\xff\xff\xff\xff", "wasm: bad module"),
    ("empty.wasm", b"", "wasm: bad module"),
    ("text.wasm", b"(module", "wasm: bad module"),
    ("syntax.wat", b"(module (func (export \"_start\") (i32.add)))", "wasm: bad module"),
    ("latin1.wat", b"(module \xff)", "not UTF-8 text"),
    ("huge.wat", b'(module (memory (export "memory") 65536) (func (export "_start")))',
     "wasm: cannot instantiate huge.wat"),
    ("twomem.wat", b'(module (memory 1) (memory 1) (func (export "_start")))', "wasm: cannot instantiate"),
    ("bigtable.wat", b'(module (table 200000 funcref) (func (export "_start")))', "wasm: cannot instantiate"),
    ("noentry.wat", b'(module (func (export "main")))', "exports no function '_start' (wasm.entry; its exports: main)"),
    ("badentry.wat", b'(module (func (export "_start") (param i32)))', "_start must take no parameters"),
    ("loglie.wat", b'(module (import "exo" "log" (func $l (param i32 i32))) (memory (export "memory") 1) '
                   b'(func (export "_start") (call $l (i32.const 65530) (i32.const 100))))',
     "wasm trap in a host call: exo.log: buffer [65530, 65630) is outside the module's memory (65536 bytes)"),
    ("nomemory.wat", b'(module (import "exo" "log" (func $l (param i32 i32))) '
                     b'(func (export "_start") (call $l (i32.const 0) (i32.const 1))))',
     'exo.log: the module exports no memory named "memory"'),
    ("unreachable.wat", b'(module (func (export "_start") unreachable))', "wasm trap: unreachable"),
    ("divzero.wat", b'(module (func (export "_start") (drop (i32.div_u (i32.const 1) (i32.const 0)))))',
     "wasm trap: integer division by zero"),
]


@pytest.mark.parametrize(("name", "content", "line"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_modules_fail_deterministically_with_one_clear_line(short_dir: Path, name: str, content: bytes,
                                                                  line: str) -> None:
    path = short_dir / name
    path.write_bytes(content)
    ran = runtime(short_dir, path)
    assert ran.code == EXIT_DETERMINISTIC, (ran.code, ran.err)
    assert line in ran.failure, ran.failure
    assert "\n" not in ran.failure and len(ran.failure) <= 400
    assert "Traceback" not in ran.err


def test_a_module_larger_than_the_limit_is_refused_without_compiling(short_dir: Path) -> None:
    path = short_dir / "big.wasm"
    with open(path, "wb") as f:
        f.truncate((64 << 20) + 1)  # sparse
    ran = runtime(short_dir, path)
    assert ran.code == EXIT_DETERMINISTIC and ran.failure == f"wasm: the module {path} is larger than 64 MiB"


def test_a_missing_configuration_is_one_clear_line() -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV_CONFIG} | {"PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "exo_init.runtimes.wasm"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == EXIT_DETERMINISTIC
    assert proc.stderr.strip() == "wasm runtime: $EXO_RUNTIME is not set (exo_init starts runtime capsules with it)"


def test_compiled_modules_are_cached_by_content(short_dir: Path) -> None:
    module = wat(short_dir, "hello.wat", (WASM_DIR / "hello.wat").read_text())
    cold = runtime(short_dir, module)
    assert re.search(r"hello.wat: compiled in \d+ ms, cached; running _start", cold.err), cold.err
    [cached] = sorted((short_dir / "state").glob("*.cwasm"))
    warm = runtime(short_dir, module)
    assert re.search(r"hello.wat: loaded from cache in \d+ ms; running _start", warm.err), warm.err
    assert warm.out == cold.out == "hello from wasm\n"
    # Another fuel budget is the same compiled code; a deadline (epoch interruption) is not.
    assert "loaded from cache" in runtime(short_dir, module, fuel=5000).err
    assert "compiled in" in runtime(short_dir, module, deadline=5).err
    assert "compiled in" in runtime(short_dir, module).err, "one module per capsule: the other was replaced"
    # A damaged cache entry is compiled again, and the run is still right.
    [entry] = sorted((short_dir / "state").glob("*.cwasm"))
    assert entry == cached
    entry.write_bytes(b"not a compiled module")
    damaged = runtime(short_dir, module)
    assert damaged.code == 0 and "unusable" in damaged.err and "compiled in" in damaged.err
    assert "loaded from cache" in runtime(short_dir, module).err
    # A changed module is another key; the old entry goes.
    module.write_text((WASM_DIR / "hello.wat").read_text().replace("hello from wasm", "hello from WASM"))
    changed = runtime(short_dir, module)
    assert changed.out == "hello from WASM\n" and "compiled in" in changed.err
    assert len(list((short_dir / "state").glob("*.cwasm"))) == 1
    # Without a state directory there is no cache, and the run is the same.
    assert runtime(short_dir, module, state=False).out == "hello from WASM\n"


def test_a_long_running_module_reports_its_figures_from_host_calls(short_dir: Path) -> None:
    ran = runtime(short_dir, WASM_DIR / "ticker.wat", deadline=2.5)
    fuel = [parse_metrics(n["EXO_METRICS"])["fuel"].value for n in ran.notes if "EXO_METRICS" in n]
    assert len(fuel) >= 3 and fuel == sorted(fuel) and fuel[-2] > 0, fuel  # ready, about once a second, the end
    assert "deadline" in ran.last_metrics and ran.last_metrics["deadline"]["limit"] == 2.5


def test_metrics_text_is_what_people_read() -> None:
    assert metrics_text({"fuel": {"value": 1234567, "limit": 10**9, "unit": "count"},
                         "memory": {"value": 65536, "limit": 16 << 20, "unit": "bytes"},
                         "checkpoint_age": {"value": 3.25, "limit": None, "unit": "seconds"}}) == \
        "fuel 1.23M/1G, memory 64K/16M, checkpoint_age 3.25s"
    assert metrics_text({"fuel": {"value": "x"}}) == "" and metrics_text({}) == ""


# --- wasm capsules under a real exo_init ----------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="scoped capsules need root (namespaces, mounts)")


def wasm_capsule(module: Path, **fields: Any) -> dict[str, Any]:
    wasm = {"module": str(module)} | fields.pop("wasm", {})
    return {"runtime": "wasm", "wasm": wasm, "readiness": {"kind": "notify"}, **fields}


def exoctl(e: ExoInit, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "exo_init.client.exoctl", "--socket", str(e.runtime / "control.sock"),
                           *args], capture_output=True, text=True, timeout=30, check=False, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    return proc.stdout + proc.stderr


@needs_root
def test_exo_init_fails_a_runaway_loop_at_its_budget_and_keeps_the_neighbour(tmp_path: Path, short_dir: Path) -> None:
    module = wat(short_dir, "spin.wat", (WASM_DIR / "spin.wat").read_text())
    capsules = {"runaway": wasm_capsule(module, wasm={"fuel": 3_000_000}, restart={"policy": "always"},
                                        capabilities={}),
                "neighbour": {"argv": ["/bin/sleep", "1000"]}}
    e = ExoInit(tmp_path / "exo", {"capsules": capsules})
    try:
        neighbour = e.wait_state("neighbour", "ready", 30)
        st = e.wait_state("runaway", "failed", 60)
        line = "wasm trap: out of fuel (all 3000000 of wasm.fuel used); fuel 3M/3M, memory 64K/16M"
        assert st["reason"] == line + " (deterministic: not restarted)", st
        assert st["last_exit"] == f"exited {EXIT_DETERMINISTIC}" and st["status_text"] == line
        assert st["metrics"]["fuel"] == {"value": 3_000_000, "limit": 3_000_000, "unit": "count"}
        time.sleep(1.5)  # longer than its first backoff delay: it is not restarted
        again = e.status("runaway")
        assert again["state"] == "failed" and again["restarts"] == 0
        assert "backoff" not in [s for s, _ in e.transitions("runaway")]
        after = e.status("neighbour")
        assert after["state"] == "ready" and after["pid"] == neighbour["pid"]
        assert "fuel 3M/3M, memory 64K/16M" in exoctl(e, "status", "runaway")
    finally:
        e.close()


@needs_root
def test_exo_init_runs_a_scoped_wasm_capsule_with_its_grants_and_its_cache(tmp_path: Path, short_dir: Path) -> None:
    base = short_dir / "w"
    module = fs_world(base)
    caps = {"filesystem": {str(base / "ro"): "ro", str(base / "rw"): "rw"}}
    capsules = {"files": wasm_capsule(module, type="oneshot", readiness={}, restart={"policy": "never"},
                                      capabilities=caps)}
    e = ExoInit(tmp_path / "exo", {"capsules": capsules})
    try:
        st = e.wait_state("files", "exited", 60)
        assert st["reason"] == "exited 0", st
        log = "\n".join(e.call("logs", name="files", lines=100)["lines"])
        assert results(log) == {"read-granted": 8, "read-ungranted": -errno.EACCES, "read-dotdot": -errno.EINVAL,
                                "read-symlink": -errno.EXDEV, "read-abs-symlink": -errno.EXDEV,
                                "write-granted": 15, "write-readonly": -errno.EACCES}, log
        assert "compiled in" in log
        out = base / "rw" / "out"
        assert out.read_text() == "written by wasm"
        assert 61184 <= out.stat().st_uid < 65520, "written by the capsule's dynamic uid"
        state = e.runtime / "state" / "capsules" / "files"
        assert state.stat().st_uid == out.stat().st_uid and (state.stat().st_mode & 0o777) == 0o700
        assert len(list(state.glob("*.cwasm"))) == 1
        out.unlink()
        e.call("start", name="files")
        e.wait_for(lambda: e.status("files")["restarts"] == 0 and out.exists(), 60, "the second run")
        e.wait_state("files", "exited", 60)
        assert "loaded from cache" in "\n".join(e.call("logs", name="files", lines=100)["lines"])
    finally:
        e.close()


@needs_root
def test_exo_init_restarts_a_wasm_capsule_that_missed_its_deadline(tmp_path: Path, short_dir: Path) -> None:
    module = wat(short_dir, "ticker.wat", (WASM_DIR / "ticker.wat").read_text())
    capsules = {"late": wasm_capsule(module, wasm={"deadline": 0.5}, capabilities={},
                                     restart={"delay": 0.2, "limit_burst": 2, "limit_interval": 60})}
    e = ExoInit(tmp_path / "exo", {"capsules": capsules})
    try:
        st = e.wait_state("late", "failed", 60)
        assert st["restarts"] == 1, st
        assert re.search(r"^exited 1: wasm trap: deadline \(stopped after [0-9.]+ s, wasm.deadline 0.5 s\).*; start "
                         r"limit hit \(2 failures", st["reason"]), st["reason"]
    finally:
        e.close()


@needs_root
def test_exo_init_fails_a_wasm_capsule_whose_module_is_missing_or_refused(tmp_path: Path, short_dir: Path) -> None:
    refused = wat(short_dir, "refused.wat", '(module (import "exo" "fs_read" (func (param i32 i32 i32 i32) '
                                            '(result i64))) (func (export "_start")))')
    capsules = {"missing": wasm_capsule(short_dir / "nope.wat", capabilities={}),
                "refused": wasm_capsule(refused, capabilities={}, restart={"policy": "always"})}
    e = ExoInit(tmp_path / "exo", {"capsules": capsules})
    try:
        assert e.wait_state("missing", "failed", 30)["reason"] == f"wasm.module: {short_dir}/nope.wat does not exist"
        st = e.wait_state("refused", "failed", 60)
        assert st["reason"].startswith("wasm: import exo.fs_read refused at link time: not granted"), st
        assert st["restarts"] == 0
    finally:
        e.close()


def test_the_runtime_config_round_trips_and_rejects_garbage() -> None:
    config = RuntimeConfig(runtime="wasm", capsule="c", options={"fuel": 1}, grants={"filesystem": {}}, state_dir=None)
    assert RuntimeConfig.from_json(config.to_json()) == config
    for bad in ("", "[]", json.dumps({"version": 2}), json.dumps({"version": 1, "runtime": 1})):
        with pytest.raises(ValueError, match="EXO_RUNTIME"):
            RuntimeConfig.from_json(bad)


# --- what people see: exoctl status and the dashboard --------------------------------------------------

WASM_STATUS = {"name": "app", "state": "ready", "uptime": 3.0, "restarts": 0, "cpu_percent": 1.0,
               "status_text": "running app.wat", "runtime": "wasm",
               "metrics": {"fuel": {"value": 5e8, "limit": 1e9, "unit": "count"},
                           "memory": {"value": 65536, "limit": 16 << 20, "unit": "bytes"}}}
EXEC_STATUS = {"name": "svc", "state": "ready", "uptime": 3.0, "restarts": 0, "cpu_percent": 0.0,
               "status_text": "", "runtime": "exec", "metrics": {}}


def test_exoctl_status_shows_budgets_only_when_a_capsule_has_some() -> None:
    from exo_init.client.exoctl import status_table

    lines = status_table([WASM_STATUS, EXEC_STATUS]).splitlines()
    assert lines[0].split() == ["CAPSULE", "STATE", "UPTIME", "RESTARTS", "CPU%", "MEMORY/QUOTA", "PIDS", "BUDGETS",
                                "DETAIL"]
    assert "fuel 500M/1G, memory 64K/16M" in lines[1] and lines[1].endswith("running app.wat")
    assert lines[2].split()[7] == "-"
    assert "BUDGETS" not in status_table([EXEC_STATUS])


DASHBOARD_PROBE = """
import json, sys
import cairo
from exo_init.system import dashboard as dash
statuses = json.loads(sys.argv[1])
rows = tuple(dash.capsule_row(s) for s in statuses)
surface = cairo.ImageSurface(cairo.FORMAT_RGB24, 1024, 768)
dash.render(cairo.Context(surface), dash.Snapshot("test", 1, rows, (), 0.0), dash.History(), 1024, 768, 1 << 30)
surface.flush()
data, stride = surface.get_data(), surface.get_stride()
def rgb(x, y):
    b, g, r = data[y * stride + 4 * x: y * stride + 4 * x + 3]
    return [r, g, b]
top, below = dash.budget_top(len(rows), 0), dash.budget_top(len(rows), 1)
print(json.dumps({"rows": [[r.budgets, r.budget] for r in rows], "used": rgb(215, top + 8), "left": rgb(265, top + 8),
                  "below": rgb(215, below + 8), "colour": dash.series_colour("app"), "background": dash.BACKGROUND}))
"""


def test_the_dashboard_draws_a_runtime_capsules_budget() -> None:
    """Rendered by the system's Python (python3-cairo, as the dashboard capsule runs it)."""
    if subprocess.run([SYSTEM_PY, "-c", "import cairo"], capture_output=True, check=False).returncode != 0:
        pytest.fail(f"{SYSTEM_PY} with python3-cairo is needed (qemu/setup-host installs it)")
    proc = subprocess.run([SYSTEM_PY, "-c", DASHBOARD_PROBE, json.dumps([EXEC_STATUS, WASM_STATUS])],
                          capture_output=True, text=True, timeout=60, check=True, env={"PYTHONPATH": str(REPO)})
    r = json.loads(proc.stdout)
    assert r["rows"] == [["", None], ["fuel 500M/1G, memory 64K/16M", 0.5]]
    assert r["used"] == r["colour"], "half the fuel used: the bar's first half in the capsule's colour"
    assert r["left"] == [52, 58, 70], "... and its second half empty"
    assert r["below"] == r["background"], "one line only: only app has budgets"


@needs_root
def test_exoctl_shows_a_running_wasm_capsules_fuel_and_memory(tmp_path: Path, short_dir: Path) -> None:
    module = wat(short_dir, "ticker.wat", (WASM_DIR / "ticker.wat").read_text())
    e = ExoInit(tmp_path / "exo", {"capsules": {"ticker": wasm_capsule(module, capabilities={},
                                                                        wasm={"memory_max": "1M"})}})
    try:
        e.wait_state("ticker", "ready", 60)
        e.wait_for(lambda: e.status("ticker")["metrics"].get("fuel", {}).get("value", 0) > 0, 10, "fuel used")
        out = exoctl(e, "status")
        line = next(x for x in out.splitlines() if x.startswith("ticker"))
        assert re.search(r"fuel \S+/1G, memory 128K/1M ", line), out
        assert "fuel" not in e.status("ticker")["status_text"]
    finally:
        e.close()
