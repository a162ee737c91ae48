"""`capabilities.manage`: a scoped capsule (its own dynamic uid, not root) may call the mutating
control operations it was granted, and only those; each call is in the event log with its name.
A real exo_init on the host (child-subreaper mode, as root) with real scoped capsules."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from exo_init.pid1.manifest import parse_manifest
from exo_init.pid1.scope import DYNAMIC_UIDS
from tests.exo import ExoInit

SYSTEM_PY = "/usr/bin/python3"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="namespaces and mounts need root"),
    pytest.mark.skipif(not os.path.exists(SYSTEM_PY), reason="needs the system's /usr/bin/python3"),
]

# Calls each operation of argv[2:] ("op:name") on the control socket argv[1], prints the answers.
CALLER = """
import json, socket, sys
out = {}
for item in sys.argv[2:]:
    op, name = item.split(":")
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.sendall(json.dumps({"op": op, "name": name}).encode() + b"\\n")
    answer = json.loads(s.makefile().readline())
    out[item] = "ok" if answer["ok"] else answer["error"]
    s.close()
print("CALLS " + json.dumps(out), flush=True)
"""


def caller(control: Path, *calls: str, **capabilities: object) -> dict[str, object]:
    return {"argv": [SYSTEM_PY, "-c", CALLER, str(control), *calls], "type": "oneshot",
            "requires": ["target"], "capabilities": {"control": True, **capabilities},
            "restart": {"policy": "never"}}


def _comm(proc: Path) -> str:
    try:
        return (proc / "comm").read_text().strip()
    except OSError:
        return ""


def report(e: ExoInit, name: str) -> dict[str, str]:
    e.wait_state(name, "exited", 30)
    lines = e.call("logs", name=name, lines=20)["lines"]
    for line in lines:
        if "CALLS " in line:
            return dict(json.loads(line.split("CALLS ", 1)[1]))
    raise AssertionError(f"{name}: no report:\n" + "\n".join(lines) + e.log())


def test_a_granted_capsule_may_call_what_it_was_granted_and_nothing_else(tmp_path: Path) -> None:
    e = ExoInit(tmp_path / "exo", {"capsules": {}})
    try:
        control = e.runtime / "control.sock"
        e.write_manifest({"capsules": {
            "target": {"argv": ["/bin/sleep", "1000"]},
            "manager": caller(control, "restart:target", "stop:target", "freeze:target", manage=["restart"]),
            "bystander": caller(control, "restart:target", "stop:target"),
        }})
        e.call("reload")
        first = e.wait_state("target", "ready", 30)["pid"]
        assert report(e, "manager") == {"restart:target": "ok", "stop:target": "AccessDenied",
                                        "freeze:target": "AccessDenied"}
        assert report(e, "bystander") == {"restart:target": "AccessDenied", "stop:target": "AccessDenied"}
        st = e.wait_state("target", "ready", 30)
        assert st["pid"] != first, st
        actions = [ev for ev in e.call("events") if ev.get("kind") == "action"]
        assert [(a["action"], a["capsule"], a["by"], a["source"]) for a in actions] == \
            [("restart", "target", "manager", "exo_init")], actions
    finally:
        e.close()


@pytest.mark.parametrize(("capabilities", "extra", "message"), [
    ({"manage": ["restart"]}, {}, "needs control = true"),
    ({"control": True, "manage": ["restart"]}, {"user": "root"}, "needs the capsule's own dynamic uid"),
    ({"control": True, "manage": ["reboot"]}, {}, "reboot"),
])
def test_a_manage_grant_that_cannot_hold_is_refused(capabilities: dict[str, object], extra: dict[str, object],
                                                    message: str) -> None:
    m = parse_manifest({"version": 1, "capsules": {"c": {"argv": ["/bin/true"], "capabilities": capabilities,
                                                         **extra}}})
    assert "c" not in m.capsules
    assert message in str(m.errors["c"]), m.errors



def test_exo_init_names_the_display_clients_by_uid(tmp_path: Path) -> None:
    """Config.display_clients: {uid: capsule} of the running capsules granted `display` (what
    Nexquelium names the views with), kept true as they start and stop."""
    e = ExoInit(tmp_path / "exo", {"capsules": {}})
    try:
        clients = e.runtime / "display" / "clients.json"
        e.write_manifest({"capsules": {
            "painter": {"argv": ["/bin/sleep", "1000"], "capabilities": {"display": True}},
            "plain": {"argv": ["/bin/sleep", "1000"]},
            "rooted": {"argv": ["/bin/sleep", "1000"], "user": "root", "capabilities": {"display": True}},
        }})
        e.call("reload")
        e.wait_state("painter", "ready", 30)
        e.wait_state("rooted", "ready", 30)
        e.wait_for(lambda: clients.exists() and list(json.loads(clients.read_text()).values()) == ["painter"], 10,
                   "painter named (not the root one, whose uid is not its own)")
        uid = int(next(iter(json.loads(clients.read_text()))))
        assert uid in DYNAMIC_UIDS
        # The uid is the one painter's program runs as (its `sleep`, inside its PID namespace).
        sleepers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _comm(p) == "sleep"]
        assert uid in {p.stat().st_uid for p in sleepers}
        e.call("stop", name="painter")
        e.wait_state("painter", "stopped", 30)
        e.wait_for(lambda: json.loads(clients.read_text()) == {}, 10, "painter gone from the names")
    finally:
        e.close()
