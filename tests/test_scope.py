"""The Scoped HAL on the host: real namespaces, mounts, credentials and seccomp, made by a real
exo_init (child-subreaper mode, as root). The capsules run tests/guest/scope_probe.py with the
system's Python (the only one their world holds: /usr is bound, nothing else of the host)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.exo import ExoInit

PROBE = (Path(__file__).parent / "guest" / "scope_probe.py").read_text()
SYSTEM_PY = "/usr/bin/python3"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="namespaces and mounts need root"),
    pytest.mark.skipif(not os.path.exists(SYSTEM_PY), reason="needs the system's /usr/bin/python3"),
]


def probe_capsule(todo: dict[str, Any], capabilities: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"argv": [SYSTEM_PY, "-c", PROBE], "env": {"PROBE": json.dumps(todo)}, "type": "oneshot",
            "capabilities": capabilities, "restart": {"policy": "never"}, **extra}


@pytest.fixture
def world() -> Iterator[Path]:
    """A directory tree outside /usr: ro/, rw/ (writable by anyone), secret/."""
    base = Path("/var/tmp") / f"exo-scope-{os.getpid()}"
    for sub in ("ro", "rw", "secret"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "ro" / "file").write_text("granted\n")
    (base / "rw").chmod(0o777)
    yield base
    for sub in ("ro", "rw", "secret"):
        for f in (base / sub).iterdir():
            f.unlink()
        (base / sub).rmdir()
    base.rmdir()


def run_probe(tmp_path: Path, capsules: dict[str, Any], name: str) -> dict[str, Any]:
    e = ExoInit(tmp_path / "exo", {"capsules": capsules})
    try:
        st = e.wait_state(name, "exited", 30) if capsules[name].get("type") == "oneshot" else e.status(name)
        lines = e.call("logs", name=name, lines=50)["lines"]
        for line in lines:
            if "SCOPE " in line:
                return dict(json.loads(line.split("SCOPE ", 1)[1]))
        raise AssertionError(f"{name}: no probe report; status {st}; log:\n" + "\n".join(lines) + e.log())
    finally:
        e.close()


def test_an_isolated_capsule_sees_only_what_it_was_granted(tmp_path: Path, world: Path) -> None:
    todo = {"exists": ["/root", "/home", "/var", str(world / "secret"), str(world / "ro" / "file"), "/dev/kmsg",
                       "/dev/null", "/sys", "/usr/bin"],
            "write": [str(world / "ro" / "new"), str(world / "rw" / "new"), "/usr/probe", "/probe",
                      "/proc/sys/kernel/hostname"],
            "connect": ["127.0.0.1:1", "10.0.2.2:53"],
            "mkdir": "/tmp/allowed"}
    r = run_probe(tmp_path, {"iso": probe_capsule(todo, {"filesystem": {str(world / "ro"): "ro",
                                                                        str(world / "rw"): "rw"}})}, "iso")
    assert r["exists"] == {"/root": False, "/home": False, "/var": True, str(world / "secret"): False,
                           str(world / "ro" / "file"): True, "/dev/kmsg": False, "/dev/null": True, "/sys": False,
                           "/usr/bin": True}, r["exists"]
    assert r["write"] == {str(world / "ro" / "new"): "EROFS", str(world / "rw" / "new"): "ok", "/usr/probe": "EROFS",
                          "/probe": "EROFS", "/proc/sys/kernel/hostname": "EROFS"}, r["write"]
    assert (world / "rw" / "new").read_text() == "probe\n", "the rw grant is the host's directory"
    assert r["links"] == ["lo"], "network none: only lo"
    assert r["connect"]["127.0.0.1:1"] == "ECONNREFUSED", "lo is up"
    assert r["connect"]["10.0.2.2:53"] == "ENETUNREACH"
    assert r["mkdir"] == "ok", "its private /tmp is writable"
    assert 61184 <= r["uid"] < 65520 and r["gid"] == r["uid"], "a dynamic unprivileged uid"
    assert r["no_new_privs"] == "1" and int(r["cap_eff"], 16) == 0 and int(r["cap_bnd"], 16) == 0
    assert r["pid"] == 2 and r["procs"] == [1, 2], "own PID namespace: its init and itself"
    assert r["hostname"] == "iso"
    system = {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "nix", "usr"}  # those the host has
    assert {"dev", "etc", "proc", "run", "tmp", "usr", "var"} <= set(r["root"]) <= system | {
        "dev", "etc", "proc", "run", "tmp", "var"}, r["root"]  # var: the parent of the granted paths
    assert not (world / "secret" / "new").exists()


def test_declared_caps_user_and_seccomp(tmp_path: Path) -> None:
    caps = {"caps": ["CAP_NET_BIND_SERVICE"], "seccomp_deny": ["mkdir", "mkdirat"]}
    r = run_probe(tmp_path, {"c": probe_capsule({"mkdir": "/tmp/denied"}, caps)}, "c")
    assert int(r["cap_eff"], 16) == 1 << 10, "CapEff is exactly CAP_NET_BIND_SERVICE, for a non-root uid too"
    assert int(r["cap_bnd"], 16) == 1 << 10
    assert r["uid"] >= 61184 and r["seccomp"] == "2" and r["mkdir"] == "EPERM"
    r = run_probe(tmp_path, {"r": probe_capsule({}, {}, user="root")}, "r")
    assert r["uid"] == 0 and int(r["cap_eff"], 16) == 0, "root in a capsule holds no capabilities"


def test_network_host_and_grants_that_cannot_be_honoured(tmp_path: Path, world: Path) -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        r = run_probe(tmp_path, {"h": probe_capsule({"connect": [f"127.0.0.1:{port}"]}, {"network": "host"})}, "h")
    assert r["connect"] == {f"127.0.0.1:{port}": "ok"} and "lo" in r["links"]
    e = ExoInit(tmp_path / "exo2", {"capsules": {
        "gone": probe_capsule({}, {"filesystem": {str(world / "missing"): "ro"}}),
        "nodev": probe_capsule({}, {"devices": ["/dev/no-such-device"]}),
    }})
    try:
        st = e.wait_state("gone", "failed", 10)
        assert f"capabilities.filesystem: {world}/missing does not exist" in st["reason"], st
        st = e.wait_state("nodev", "failed", 10)
        assert "capabilities.devices: /dev/no-such-device does not exist" in st["reason"], st
    finally:
        e.close()


def test_a_scoped_capsule_is_stopped_by_its_signal_and_reports_how_it_died(tmp_path: Path) -> None:
    """The namespace's init forwards the stop signal; a killed main process reads "killed by"."""
    e = ExoInit(tmp_path / "exo", {"capsules": {
        "sleeper": {"argv": ["/bin/sleep", "1000"], "capabilities": {}},
        "victim": {"argv": ["/bin/sleep", "1000"], "capabilities": {}, "restart": {"policy": "never"}},
    }})
    try:
        e.wait_state("sleeper", "ready")  # (the namespace init's exec: the program may not run yet)
        e.call("stop", name="sleeper")
        st = e.wait_state("sleeper", "stopped", 10)
        assert "killed by SIGTERM" in e.call("logs", name="sleeper", lines=5)["lines"][-1], st
        victim = e.wait_state("victim", "ready")
        inner = [int(p) for p in Path(f"/proc/{victim['pid']}/task/{victim['pid']}/children").read_text().split()]
        assert len(inner) == 1
        os.kill(inner[0], 9)
        st = e.wait_state("victim", "failed", 10)
        assert st["reason"].startswith("killed by SIGKILL"), st
    finally:
        e.close()


def test_a_stop_right_after_the_start_reaches_the_program(tmp_path: Path) -> None:
    """A stop signal sent while the capsule's namespace is still being built (before its small init
    waits for signals) is kept pending, not dropped: a PID namespace's init ignores a signal it has
    no handler for, and the stop would wait for its timeout's SIGKILL (seen once in CI under load)."""
    e = ExoInit(tmp_path / "exo", {"capsules": {
        "early": {"argv": ["/bin/sleep", "1000"], "capabilities": {}, "autostart": False,
                  "restart": {"policy": "never"}, "stop": {"timeout": 60}},
    }})
    try:
        for attempt in range(5):
            e.call("start", name="early")
            e.call("stop", name="early")
            st = e.wait_state("early", "stopped", 20)
            last = e.call("logs", name="early", lines=5)["lines"][-1]
            assert "killed by SIGTERM" in last, (attempt, last, st)
    finally:
        e.close()


def test_a_granted_etc_replaces_the_generated_one(tmp_path: Path) -> None:
    todo = {"exists": ["/etc/os-release", "/etc/ld.so.cache"], "write": ["/etc/planted"]}
    r = run_probe(tmp_path, {"e": probe_capsule(todo, {"filesystem": {"/etc": "ro"}}, user="root")}, "e")
    assert r["exists"] == {"/etc/os-release": True, "/etc/ld.so.cache": True}
    assert r["write"] == {"/etc/planted": "EROFS"}


# The escape attempts of issue 13 (#3) and what the baseline filter answers: EPERM, or ENOSYS for
# clone3 (so libc falls back to clone, whose flags it can see). What must keep working does.
ESCAPE_EXPECTED = {
    "unshare user": "EPERM", "unshare net": "EPERM", "unshare user+mount, mount tmpfs": "EPERM",
    "unshare user+net, AF_PACKET": "EPERM", "clone NEWUSER": "EPERM", "clone3": "ENOSYS", "setns": "EPERM",
    "mount tmpfs": "EPERM", "socket AF_PACKET": "EPERM", "socket NETLINK_NETFILTER": "EPERM",
    "bpf map": "EPERM", "io_uring_setup": "EPERM", "keyctl": "EPERM", "userfaultfd": "EPERM",
    "perf_event_open": "EPERM", "ptrace TRACEME": "EPERM", "personality ADDR_NO_RANDOMIZE": "EPERM",
    "socket NETLINK_ROUTE": "ok", "fork, thread, exec": "ok",
}


def print_escapes(title: str, results: dict[str, dict[str, str]]) -> None:
    names = list(next(iter(results.values())))
    print(f"\n{title}\n{'attempt':<34}" + "".join(f"{who:<18}" for who in results))
    for name in names:
        print(f"{name:<34}" + "".join(f"{r[name]:<18}" for r in results.values()))


def test_the_baseline_filter_refuses_every_escape(tmp_path: Path) -> None:
    """A dynamic-uid capsule and a root one (the shape of dbus-bridge and console), no grants:
    no namespace, no mount, no AF_PACKET or netfilter socket, no bpf, io_uring, keyring,
    userfaultfd, perf, ptrace or personality; ordinary work is untouched."""
    todo = {"escape": list(ESCAPE_EXPECTED)}
    results = {"dynamic uid": run_probe(tmp_path / "d", {"d": probe_capsule(todo, {})}, "d")["escape"],
               "root, scoped": run_probe(tmp_path / "r", {"r": probe_capsule(todo, {}, user="root")}, "r")["escape"]}
    print_escapes("scoped capsules, no grants", results)
    for who, got in results.items():
        assert got == ESCAPE_EXPECTED, (who, {k: v for k, v in got.items() if v != ESCAPE_EXPECTED[k]})


def test_a_granted_class_is_open_and_only_that_one(tmp_path: Path) -> None:
    """seccomp_allow opens exactly the classes named: the filter, not the kernel, was what refused."""
    todo = {"escape": ["unshare user+mount, mount tmpfs", "clone NEWUSER", "ptrace TRACEME", "keyctl",
                       "socket AF_PACKET", "io_uring_setup"]}
    caps = {"seccomp_allow": ["namespaces", "mount", "ptrace"]}
    r = run_probe(tmp_path, {"g": probe_capsule(todo, caps)}, "g")["escape"]
    print_escapes("seccomp_allow = namespaces, mount, ptrace", {"dynamic uid": r})
    assert r["unshare user+mount, mount tmpfs"] == "ok" and r["clone NEWUSER"] == "ok", r
    assert r["ptrace TRACEME"] == "ok", r
    assert r["keyctl"] == "EPERM" and r["socket AF_PACKET"] == "EPERM" and r["io_uring_setup"] == "EPERM", r


def test_host_capsules_have_no_filter(tmp_path: Path) -> None:
    r = run_probe(tmp_path, {"h": probe_capsule({"escape": ["keyctl", "io_uring_setup"]}, {"host": True})}, "h")
    assert r["seccomp"] == "0" and r["escape"] == {"keyctl": "ok", "io_uring_setup": "ok"}, r


LISTEN = ("import socket, time\n"
          "time.sleep(1)\n"
          "s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(1000)\n")
TOUCH = "import time, pathlib\ntime.sleep(1)\npathlib.Path('{path}').write_text('x')\ntime.sleep(1000)\n"


def test_readiness_probes_look_inside_the_capsules_world(tmp_path: Path) -> None:
    """A scoped capsule's tcp and file readiness are probed in its own network namespace and root:
    its own listener and file count, a listener or file of the host's with the same address or
    path does not (it would fake readiness; before, the capsule's own never counted)."""
    marker = f"/tmp/exo-probe-{os.getpid()}"
    Path(marker).write_text("host")
    with socket.socket() as host_srv:
        host_srv.bind(("127.0.0.1", 0))
        host_srv.listen()
        port = host_srv.getsockname()[1]
        timeout = {"kind": "tcp", "port": port, "timeout": 4}
        e = ExoInit(tmp_path / "exo", {"capsules": {
            "tcp": {"argv": [SYSTEM_PY, "-c", LISTEN.format(port=port)], "capabilities": {},
                    "readiness": {"kind": "tcp", "port": port, "timeout": 30}},
            "file": {"argv": [SYSTEM_PY, "-c", TOUCH.format(path=marker)], "capabilities": {},
                     "readiness": {"kind": "file", "path": marker, "timeout": 30}},
            "faketcp": {"argv": ["/bin/sleep", "1000"], "capabilities": {}, "readiness": timeout,
                        "restart": {"policy": "never"}},
            "fakefile": {"argv": ["/bin/sleep", "1000"], "capabilities": {}, "restart": {"policy": "never"},
                         "readiness": {"kind": "file", "path": marker, "timeout": 4}},
        }})
        try:
            for name in ("tcp", "file"):
                st = e.wait_state(name, "ready", 20)
                assert st["reason"] == f"probe {name} ok", st
            for name in ("faketcp", "fakefile"):
                st = e.wait_state(name, "failed", 20)
                assert st["reason"].startswith("not ready within 4 s"), st
        finally:
            e.close()
            Path(marker).unlink()


def test_a_file_probe_does_not_follow_the_capsules_symlinks_out_of_its_root(tmp_path: Path) -> None:
    marker = f"/var/tmp/exo-probe-target-{os.getpid()}"
    Path(marker).write_text("host only")
    link = "import os, time\nos.symlink('" + marker + "', '/tmp/link')\ntime.sleep(1000)\n"
    e = ExoInit(tmp_path / "exo", {"capsules": {
        "sly": {"argv": [SYSTEM_PY, "-c", link], "capabilities": {}, "restart": {"policy": "never"},
                "readiness": {"kind": "file", "path": "/tmp/link", "timeout": 3}}}})
    try:
        st = e.wait_state("sly", "failed", 20)
        assert st["reason"].startswith("not ready within 3 s"), st
    finally:
        e.close()
        Path(marker).unlink()


ATTACK_SOCKETS = """
import errno, json, os, socket, sys
out = {}
for path in sys.argv[1:]:
    for name, fn in (("chmod", lambda: os.chmod(path, 0)), ("unlink", lambda: os.unlink(path))):
        try:
            fn(); out[name + " " + path] = "ok"
        except OSError as e:
            out[name + " " + path] = errno.errorcode[e.errno]
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1]); s.sendall(b'{"op": "ping"}\\n')
out["ping"] = json.loads(s.makefile().readline())["ok"]
print("SCOPE " + json.dumps(out), flush=True)
"""


def test_a_root_capsule_cannot_touch_the_host_sockets_it_was_granted(tmp_path: Path) -> None:
    """Granted sockets are bound read-only (issue 13 #5): a uid-0 capsule (the shape of dbus-bridge
    and the console) can still connect, but not chmod or unlink the host's control and notify
    sockets, which would lock every other client out."""
    e = ExoInit(tmp_path / "exo", {"capsules": {}})
    try:
        sockets = [str(e.runtime / "control.sock"), str(e.runtime / "notify.sock")]
        # (watchdog_sec: the notify socket is bound too)
        e.write_manifest({"capsules": {"attacker": {
            "argv": [SYSTEM_PY, "-c", ATTACK_SOCKETS, *sockets], "type": "oneshot", "user": "root",
            "capabilities": {"control": True}, "watchdog_sec": 60, "restart": {"policy": "never"}}}})
        e.call("reload")
        e.wait_state("attacker", "exited", 30)
        report = next(json.loads(line.split("SCOPE ", 1)[1]) for line in e.call("logs", name="attacker")["lines"]
                      if "SCOPE " in line)
        assert report["ping"] is True
        assert {report[f"chmod {path}"] for path in sockets} == {"EROFS"}
        assert {report[f"unlink {path}"] for path in sockets} <= {"EROFS", "EBUSY"}, report
        assert all(os.stat(path).st_mode & 0o777 == 0o666 for path in sockets)
    finally:
        e.close()


@pytest.mark.skipif(not os.path.exists("/usr/bin/dumb-init"), reason="needs dumb-init (qemu/setup-host installs it)")
def test_the_namespace_init_is_small_and_unprivileged(tmp_path: Path) -> None:
    """With dumb-init on the system, a scoped capsule's PID 1 is dumb-init, as the capsule's uid with
    the declared capabilities only, holding a fraction of the private memory the copy of PID 1's
    Python held (~3 MB); a console capsule keeps the Python init. A program that is not there is
    still the capsule's spawn error, not a restart loop."""
    e = ExoInit(tmp_path / "exo", {"capsules": {
        "small": {"argv": ["/bin/sleep", "1000"], "capabilities": {"caps": ["CAP_NET_BIND_SERVICE"]}},
        "gone": {"argv": ["/nonexistent/program"], "capabilities": {}},
    }})
    try:
        small = e.wait_state("small", "ready")
        pid = int(small["pid"])
        assert Path(f"/proc/{pid}/comm").read_text().strip() == "dumb-init"
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        assert 61184 <= int(status["Uid"].split()[0]) < 65520 and int(status["CapEff"], 16) == 1 << 10
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        private = sum(int(line.split()[1]) for line in rollup if line.startswith(("Private_Dirty", "Private_Clean")))
        assert private < 1024, f"dumb-init holds {private} kB"
        # (`started` is dumb-init's exec; the program's own follows at once)
        e.wait_for(lambda: [Path(f"/proc/{c}/comm").read_text().strip() for c in
                            Path(f"/proc/{pid}/task/{pid}/children").read_text().split()] == ["sleep"],
                   5, "the program as dumb-init's only child")
        gone = e.wait_state("gone", "failed", 10)
        assert gone["reason"] == "exec /nonexistent/program: No such file or directory", gone
    finally:
        e.close()
