"""One client, one error, the operations listed once (issue 14, "One client").

* every operation of exo_init/lib/ops.py is served by a real exo_init (none answers
  UnknownOperation), the mutating ones refuse a non-root caller, and a name not in the table is
  UnknownOperation: the server's access rule is the table's;
* the D-Bus API's methods carry exactly the table's operations, with its mutating flag;
* only exo_init/client/control.py speaks the socket's framing (no other module sends a request by
  hand), and the error the clients raise is the one PID 1 raises.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from exo_init.client import dbus_api
from exo_init.client.control import Lines, Subscription, call
from exo_init.lib import errors, ops
from tests.exo import REPO, ExoInit

# A request for each operation that does nothing harmful on a throwaway exo_init.
SAFE_ARGS: dict[str, dict[str, object]] = {
    "status": {"name": "svc"}, "logs": {"name": "svc", "lines": 1}, "start": {"name": "svc"},
    "stop": {"name": "svc"}, "restart": {"name": "svc"}, "freeze": {"name": "nope"}, "thaw": {"name": "nope"},
    "switch": {"target": "/nonexistent.json"}, "events": {"lines": 1}, "checkpoint": {"name": "svc"},
}
NOT_CALLED = {"poweroff", "reboot", "subscribe"}  # (subscribe: see Subscription below; the others end it)


def test_every_operation_is_served_and_the_table_decides_access(tmp_path: Path) -> None:
    e = ExoInit(tmp_path, {"capsules": {"svc": {"argv": ["/bin/sleep", "100"]}}})
    try:
        e.wait_state("svc", "ready")
        seen: dict[str, str] = {}
        for name in sorted(set(ops.OPERATIONS) - NOT_CALLED):
            try:
                call(e.runtime / "control.sock", {"op": name, **SAFE_ARGS.get(name, {})})
                seen[name] = "ok"
            except errors.ApiError as err:
                seen[name] = err.name
        print("\n" + "\n".join(f"{k:<12} {v}" for k, v in seen.items()))
        assert "UnknownOperation" not in seen.values(), seen
        with pytest.raises(errors.ApiError) as info:
            e.call("not-in-the-table")
        assert info.value.name == "UnknownOperation"
        with Subscription(e.runtime / "control.sock") as sub:
            e.call("restart", name="svc")
            got = sub.events(10.0)
            assert got and got[0]["capsule"] == "svc", got
        pid = e.wait_state("svc", "ready")["pid"]
        # A non-root caller: every mutating operation is refused, every read-only one is not.
        probe = ("import json, sys\nfrom pathlib import Path\nfrom exo_init.client.control import call\n"
                 "from exo_init.lib import errors, ops\nout = {}\n"
                 "for name in sorted(set(ops.OPERATIONS) - {'subscribe'}):\n"
                 "    try:\n        call(Path(sys.argv[1]), {'op': name, 'name': 'svc', 'target': '/x'})\n"
                 "        out[name] = 'ok'\n    except errors.ApiError as e:\n        out[name] = e.name\n"
                 "print(json.dumps(out))\n")
        out = subprocess.run(["/usr/bin/python3", "-c", probe, str(e.runtime / "control.sock")], user="nobody",
                             capture_output=True, text=True, env={"PYTHONPATH": str(REPO)}, cwd="/", check=True)
        refused = {k for k, v in json.loads(out.stdout).items() if v == "AccessDenied"}
        assert refused == set(ops.MUTATING), refused
        st = e.status("svc")
        assert st["state"] == "ready" and st["pid"] == pid, "nothing a non-root caller sent changed anything"
    finally:
        e.close()


def test_dbus_methods_carry_the_tables_operations() -> None:
    carried = {m: op.name for m, op in ops.BY_DBUS_METHOD.items()}
    assert set(carried) <= set(dbus_api.METHODS), "an operation names a D-Bus method that does not exist"
    for method, spec in dbus_api.METHODS.items():
        if method in carried:
            assert spec.mutating == ops.OPERATIONS[carried[method]].mutating, method
            assert dbus_api.control_request(method, ("x", 1)[:len(spec.args)])["op"] == carried[method]
        else:
            assert not spec.mutating, f"{method} carries no operation, so it cannot change anything"
    assert {n for n, op in ops.OPERATIONS.items() if not op.dbus} == ops.SOCKET_ONLY
    assert {n for n in ops.OPERATIONS if dbus_api.supports(n)} == set(ops.OPERATIONS) - ops.SOCKET_ONLY


def test_only_the_client_module_frames_requests() -> None:
    """No program of the system, client or CoreCap talks to the socket by hand: the framing (and
    the subscribe request) exist once, in exo_init/client/control.py."""
    pattern = re.compile(r"""b?['"]\{"op": """)
    found = []
    for path in sorted([*REPO.glob("exo_init/**/*.py"), *REPO.glob("corecaps/**/*.py")]):
        rel = path.relative_to(REPO).as_posix()
        if rel in ("exo_init/client/control.py", "exo_init/pid1/control.py"):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line) or "SO_PEERCRED" in line:
                found.append(f"{rel}:{n}: {line.strip()}")
    assert found == [], "control socket requests written by hand:\n" + "\n".join(found)


def test_one_error_class() -> None:
    """Every layer raises and catches the same ApiError; nothing defines another name+message one."""
    defined = []
    for path in sorted([*REPO.glob("exo_init/**/*.py"), *REPO.glob("corecaps/**/*.py")]):
        text = path.read_text()
        for m in re.finditer(r"class (\w+)\(Exception\):\n(?:    \"\"\"[^\n]*\n)?    def __init__\(self, name: str, "
                             r"message: str\)", text):
            defined.append(f"{path.relative_to(REPO)}: {m.group(1)}")
    assert defined == ["exo_init/lib/errors.py: ApiError"], defined
    err = errors.ApiError("NoSuchCapsule", "no capsule named 'x'")
    assert (err.name, err.message, str(err)) == ("NoSuchCapsule", "no capsule named 'x'",
                                                 "NoSuchCapsule: no capsule named 'x'")


def test_line_framing_is_bounded() -> None:
    lines = Lines(limit=10)
    assert lines.feed(b"ab") == [] and lines.feed(b"c\nde\nf") == [b"abc", b"de"]
    assert lines.feed(b"\n") == [b"f"]
    with pytest.raises(ConnectionError):
        lines.feed(b"x" * 11)


# A client process holding many files: the subscription's socket gets an fd number above 1023,
# which select() refuses ("filedescriptor out of range"); the client waits with poll().
def test_a_subscription_waits_on_a_socket_numbered_above_1023(tmp_path: Path) -> None:
    e = ExoInit(tmp_path, {"capsules": {"svc": {"argv": ["/bin/sleep", "100"]}}})
    try:
        e.wait_state("svc", "ready")
        code = ("import fcntl, resource, sys\nfrom pathlib import Path\n"
                "from exo_init.client.control import Subscription, call\n"
                "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
                "resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))\n"
                "held = [fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 0) for _ in range(1100)]\n"
                "with Subscription(Path(sys.argv[1])) as sub:\n"
                "    print(sub.sock.fileno() >= 1024)\n"
                "    call(Path(sys.argv[1]), {'op': 'restart', 'name': 'svc'})\n"
                "    print(' '.join(sorted({ev['new'] for ev in sub.events(10.0)})))\n")
        out = subprocess.run([sys.executable, "-c", code, str(e.runtime / "control.sock")], check=False, cwd=REPO,
                             text=True, capture_output=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert out.returncode == 0, out.stderr
        high, states = out.stdout.splitlines()
        assert high == "True" and "stopping" in states.split(), out.stdout
    finally:
        e.close()
