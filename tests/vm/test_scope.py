"""The Scoped HAL in the booted image: what isolated capsules can and cannot do, tried from inside.

Each probe capsule (tests/guest/capsules.nix) runs tests/guest/scope_probe.py, which attempts the
things listed there and reports every outcome; the test prints the table of attempts and results.
"""

from __future__ import annotations

import json
from typing import Any

from tests.machine import Machine
from tests.test_scope import ESCAPE_EXPECTED

TABLE: list[tuple[str, str, str, str]] = []


def probe(machine: Machine, name: str) -> dict[str, Any]:
    machine.succeed(f"exoctl start {name}")
    st = machine.wait_for_capsule(name, "exited", 60)
    assert st["reason"] == "exited 0", st
    log = machine.succeed(f"exoctl logs {name} -n 50")
    line = [x for x in log.splitlines() if "SCOPE " in x][-1]
    return dict(json.loads(line.split("SCOPE ", 1)[1]))


def record(capsule: str, attempt: str, result: object, expected: object) -> None:
    TABLE.append((capsule, attempt, str(result), "ok" if result == expected else f"UNEXPECTED (want {expected})"))


def print_table() -> None:
    width = max(len(a) for _, a, _, _ in TABLE)
    print("\ncapsule     attempt".ljust(13 + width) + "  result        verdict")
    for capsule, attempt, result, verdict in TABLE:
        print(f"{capsule:<11} {attempt:<{width}}  {result:<13} {verdict}")


def test_isolated_capsule_sees_only_its_grants(machine: Machine) -> None:
    machine.succeed("mkdir -p /srv/ro /srv/rw && echo granted > /srv/ro/file && chmod 777 /srv/rw && rm -f /srv/rw/new")
    r = probe(machine, "probe-none")
    want_exists = {"/root": False, "/var/lib/exosphere": False, "/etc/exosphere": False, "/srv/ro/file": True,
                   "/dev/vda": False, "/dev/mem": False, "/dev/kmsg": True, "/dev/null": True, "/sys": False,
                   "/run/exosphere/control.sock": False, "/run/dbus": False}
    for path, present in want_exists.items():
        record("probe-none", f"exists {path}", r["exists"][path], present)
    want_write = {"/srv/ro/new": "EROFS", "/srv/rw/new": "ok", "/usr/bin/planted": "EROFS", "/planted": "EROFS",
                  "/proc/sys/kernel/hostname": "EROFS"}
    for path, outcome in want_write.items():
        record("probe-none", f"write {path}", r["write"][path], outcome)
    want_connect = {"10.0.2.2:53": "ENETUNREACH", "127.0.0.1:1": "ECONNREFUSED", "10.250.7.1:7": "ENETUNREACH",
                    "10.0.2.15:7": "ENETUNREACH"}
    for target, outcome in want_connect.items():
        record("probe-none", f"connect {target}", r["connect"][target], outcome)
    record("probe-none", "network links", r["links"], ["lo"])
    record("probe-none", "uid is dynamic", 61184 <= r["uid"] < 65520, True)
    record("probe-none", "NoNewPrivs", r["no_new_privs"], "1")
    record("probe-none", "CapEff", r["cap_eff"], "0000000000000000")
    record("probe-none", "own PID namespace", r["procs"], [1, 2])
    for attempt, outcome in ESCAPE_EXPECTED.items():
        record("probe-none", attempt, r["escape"][attempt], outcome)
    print_table()
    assert all(v == "ok" for *_, v in TABLE), "an attempt had an unexpected result (see the table)"
    assert machine.succeed("cat /srv/rw/new").strip() == "probe"


def test_private_veth_reaches_its_peer_and_nothing_else(machine: Machine) -> None:
    TABLE.clear()
    machine.succeed("exoctl start veth-peer")
    machine.wait_for_capsule("veth-peer", "ready", 30)
    r = probe(machine, "probe-veth")
    record("probe-veth", "network links", r["links"], ["eth0", "lo"])
    want = {"10.250.7.1:7": "ok", "10.0.2.2:53": "ENETUNREACH", "10.0.2.15:7": "ENETUNREACH",
            "127.0.0.1:1": "ECONNREFUSED"}
    for target, result in want.items():
        record("probe-veth", f"connect {target}", r["connect"][target], result)
    print_table()
    machine.succeed("exoctl stop veth-peer")
    assert all(v == "ok" for *_, v in TABLE), "an attempt had an unexpected result (see the table)"


def test_declared_capabilities_and_seccomp(machine: Machine) -> None:
    TABLE.clear()
    r = probe(machine, "probe-caps")
    record("probe-caps", "CapEff (CAP_NET_BIND_SERVICE)", int(r["cap_eff"], 16), 1 << 10)
    record("probe-caps", "CapBnd", int(r["cap_bnd"], 16), 1 << 10)
    record("probe-caps", "mkdir (seccomp deny)", r["mkdir"], "EPERM")
    record("probe-caps", "Seccomp mode", r["seccomp"], "2")
    record("probe-caps", "uid is not root", r["uid"] != 0, True)
    print_table()
    assert all(v == "ok" for *_, v in TABLE), "an attempt had an unexpected result (see the table)"


def test_no_escape_as_root_in_a_capsule_and_a_grant_opens_its_class(machine: Machine) -> None:
    TABLE.clear()
    r = probe(machine, "probe-root")
    record("probe-root", "uid", r["uid"], 0)
    for attempt, outcome in ESCAPE_EXPECTED.items():
        record("probe-root", attempt, r["escape"][attempt], outcome)
    g = probe(machine, "probe-grant")
    record("probe-grant", "unshare user+mount, mount tmpfs", g["escape"]["unshare user+mount, mount tmpfs"], "ok")
    record("probe-grant", "ptrace TRACEME", g["escape"]["ptrace TRACEME"], "ok")
    record("probe-grant", "keyctl (not granted)", g["escape"]["keyctl"], "EPERM")
    print_table()
    assert all(v == "ok" for *_, v in TABLE), "an attempt had an unexpected result (see the table)"
