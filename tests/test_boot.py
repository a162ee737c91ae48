"""The boot path on the host (issue 13 #4): no value in a manifest and no failing boot step ends
exo_init. A real exo_init (child subreaper) boots manifests holding the issue's values, and a
runtime directory whose control socket cannot be bound (a bind(2) that fails)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from exo_init.pid1 import early
from exo_init.pid1 import log as pid1_log
from exo_init.pid1 import main as pid1_main
from exo_init.pid1.config import parse_args
from exo_init.pid1.supervisor import Supervisor
from tests.exo import REPO, ExoInit, manifest_json


def test_bad_values_fail_their_capsule_and_nothing_else(tmp_path: Path) -> None:
    """Each value of the issue in its own capsule: that capsule fails with one line naming the
    field, the good one runs, exo_init answers."""
    e = ExoInit(tmp_path, {"capsules": {}})
    try:
        good = '"good": {"argv": ["/bin/sleep", "100"], "capabilities": {"host": true}}'
        bad = {
            "huge": '{"argv": ["/bin/true"], "quotas": {"memory_max": ' + "9" * 4301 + "}}",
            "huge-text": '{"argv": ["/bin/true"], "quotas": {"memory_max": "' + "9" * 4301 + '"}}',
            "watchdog": '{"argv": ["/bin/true"], "watchdog_sec": 1e400}',
            "nul": '{"argv": ["/bin/sh", "-c", "true\\u0000rm"]}',
            "nul-workdir": '{"argv": ["/bin/true"], "workdir": "/tmp\\u0000"}',
            "cpu.max": '{"argv": ["/bin/true"]}',
            "cgroup.procs": '{"argv": ["/bin/true"]}',
            "deep": '{"argv": ["/bin/true"], "description": ' + "[" * 500 + "]" * 500 + "}",
        }
        text = '{"version": 1, "capsules": {' + good + "".join(f', "{k}": {v}' for k, v in bad.items()) + "}}"
        e.manifest_path.write_text(text)
        e.call("reload")
        e.wait_state("good", "ready")
        for name in bad:
            st = e.status(name)
            assert st["state"] == "failed" and "\n" not in st["reason"], st
            print(f"{name:<14} {st['reason']}")
        assert e.call("ping")["pid"] == e.proc.pid
    finally:
        e.close()
    assert "Traceback" not in e.log() and "supervisor error" not in e.log()


def test_a_document_nested_50000_deep_boots_the_root_recovery_shell(tmp_path: Path) -> None:
    manifest = tmp_path / "deep.json"
    manifest.write_text("[" * 50000 + "]" * 50000)
    config = parse_args(["--manifest", str(manifest), "--runtime-dir", str(tmp_path / "run"), "--no-cgroups"],
                        pid1=False)
    chosen = pid1_main.load_boot_manifest(Supervisor(config, sys.stderr))
    (shell,) = chosen.capsules.values()
    assert chosen.source == "(emergency)" and shell.console
    assert shell.capabilities.host and shell.user == "root", "a root shell, not a scoped one without grants"


def test_a_failing_boot_step_is_one_line_and_the_boot_goes_on(tmp_path: Path) -> None:
    """A runtime directory whose path is too long for a Unix socket: binding the control socket
    (and the sd_notify socket) fails. exo_init says so in one line each, starts its capsules
    anyway, and stops cleanly on SIGTERM."""
    base = Path(tempfile.mkdtemp(prefix="exo-long-"))
    runtime = base / ("d" * 100)
    marker = tmp_path / "started"
    manifest = tmp_path / "m.json"
    manifest.write_text(manifest_json({"touch": {"argv": ["/bin/sh", "-c", f"touch {marker}; exec sleep 100"]}}))
    out = tmp_path / "out"
    with out.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "exo_init", "--manifest", str(manifest), "--runtime-dir",
                                 str(runtime), "--no-cgroups"], cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while not marker.exists():
                assert proc.poll() is None, out.read_text()
                assert time.monotonic() < deadline, out.read_text()
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
            shutil.rmtree(base, ignore_errors=True)
    text = out.read_text()
    print(text)
    assert code == 0, text
    failed = [line for line in text.splitlines() if "boot step failed" in line]
    assert failed == ["exo_init: error: boot step failed (continuing without it): control socket: OSError: "
                      "AF_UNIX path too long"], failed
    assert "Traceback" not in text


def test_hardening_sysctls_are_written_and_each_failure_is_one_warning(tmp_path: Path) -> None:
    """Against a /proc/sys of files: each one of the table is written; a required sysctl the
    kernel lacks and one that refuses the write are one warning each; a missing optional one
    (Yama) is no warning. (The booted image checks the real ones: tests/vm/test_hostile.py.)"""
    table = (("kernel.kptr_restrict", "2", True), ("kernel.dmesg_restrict", "1", True),
             ("kernel.yama.ptrace_scope", "1", False), ("kernel.kexec_load_disabled", "1", True),
             ("net.core.bpf_jit_harden", "2", True))
    for name in ("kernel/kptr_restrict", "kernel/dmesg_restrict", "net/core/bpf_jit_harden"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("0\n")
    (tmp_path / "net/core/bpf_jit_harden").unlink()
    (tmp_path / "net/core/bpf_jit_harden").mkdir()  # a write that fails (EISDIR)
    warnings = early.harden_sysctls(tmp_path, table)
    assert (tmp_path / "kernel/kptr_restrict").read_text() == "2\n"
    assert (tmp_path / "kernel/dmesg_restrict").read_text() == "1\n"
    assert warnings == ["sysctl kernel.kexec_load_disabled = 1: this kernel does not have it",
                        "sysctl net.core.bpf_jit_harden = 2: Is a directory"], warnings
    assert not (tmp_path / "kernel/yama").exists() and not (tmp_path / "kernel/kexec_load_disabled").exists()


def test_base_directories_on_a_root_with_only_what_nixos_stage_2_makes(tmp_path: Path) -> None:
    """A fresh NixOS root (stage 2 made /etc, /etc/nixos and /tmp, with mode 1777; tmpfiles never
    ran): every base directory is made with its mode (the umask does not narrow /var/tmp), and the
    console capsule's /var/log grant exists. A second run changes nothing and says nothing."""
    root = tmp_path / "root"
    (root / "etc/nixos").mkdir(parents=True)
    (root / "tmp").mkdir(mode=0o755)  # (a mode tmpfiles would correct)
    (root / "run").mkdir()
    assert not (root / "var").exists()
    assert early.make_base_directories(root) == []
    for name, mode in early.BASE_DIRECTORIES:
        path = root / name.lstrip("/")
        assert path.is_dir() and not path.is_symlink(), name
        assert oct(path.stat().st_mode & 0o7777) == oct(mode), name
    assert "/var/log" in dict(early.BASE_DIRECTORIES) and "/var/lib" in dict(early.BASE_DIRECTORIES)
    assert early.make_base_directories(root) == []


def test_base_directories_leave_symlinks_and_report_what_is_in_the_way(tmp_path: Path) -> None:
    """/var/log a symlink to another disk's directory: kept, not chmodded. A file where /var/lib
    should be, and a parent that cannot be made: one warning each, the others still made."""
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    (tmp_path / "var").mkdir()
    (tmp_path / "var/log").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "var/lib").write_text("")
    table = (("/var/log", 0o755), ("/var/lib", 0o755), ("/var/cache", 0o755), ("/nope/x", 0o755))
    warnings = early.make_base_directories(tmp_path, table)
    assert warnings == ["/var/lib: not a directory; capsules granted it will not start",
                        "/nope/x: No such file or directory"], warnings
    assert (tmp_path / "var/log").is_symlink() and (tmp_path / "elsewhere").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "var/cache").is_dir()


def test_exo_init_log_is_rotated(tmp_path: Path) -> None:
    """5 MiB of log lines: exo_init.log stays under its size and LOGFILE_KEEP old files are kept."""
    path = tmp_path / "exo_init.log"
    before = pid1_log.log.files[:]
    pid1_log.add_logfile(path)
    try:
        for i in range(5 * 1024):
            pid1_log.log.debug("line %d %s", i, "x" * 1000)
    finally:
        for f in pid1_log.log.files[len(before):]:
            f.close()
        pid1_log.log.files = before
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["exo_init.log", *(f"exo_init.log.{i}" for i in range(1, pid1_log.LOGFILE_KEEP + 1))], files
    assert all(p.stat().st_size <= pid1_log.LOGFILE_BYTES for p in tmp_path.iterdir())
    assert "line 5119 " in path.read_text()
