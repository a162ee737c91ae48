"""Issue 13 in the booted image: each attack from inside the guest, on one VM, from a non-root user
(uid 65000, through the test agent and setpriv) and from a dynamic-uid capsule granted `control`
(`hostile` in tests/guest/capsules.nix, whose arguments the test writes to /srv/hostile/args.json).
The attacker is tests/guest/hostile.py. While each attack runs, a root process in the guest, at
real-time priority, asks `info` every 50 ms on root's socket, as exoctl does as root (hostile.py's
`latency` mode); after it, PID 1's RSS and open fds are read from /proc/1. The table (attack,
what PID 1 did, worst control latency, PID 1 RSS and fds after) is printed at the end of the
module.

The latency asserted is the worst with the times the whole guest did not run taken out: under
TCG on this shared 2-core host (other sessions' VMs beside it) the guest stops for a second or
more at times, with or without an attack; a real-time heartbeat in the measuring process sees
those gaps (hostile.py `latency`). The raw worst and the longest stall are in the table too.

Asserted, as the issue states them: `info` answers within 1 s throughout, PID 1's RSS stays under
64 MiB, its fds under its own bound, nothing on the console says "Too many open files" or
"supervisor error", every other capsule stays ready. The noisy-capsule row (/usr/bin/yes) is
issue 13 #2, fixed on main by the lead and merged here.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from exo_init.pid1 import cgroups, control, early, readiness, runner
from tests.guest.hostile import STARTED, parse_report
from tests.machine import Machine
from tests.test_scope import ESCAPE_EXPECTED
from tests.vm.conftest import MachineFactory
from tests.vm.test_power import assert_clean_end

HOSTILE = "/usr/lib/exosphere/test/hostile.py"
SOCK = "/run/exosphere/control.sock"
NOTIFY_SOCK = "/run/exosphere/notify.sock"
ROOT_SOCK = "/run/exosphere/control.root.sock"  # what root's clients (exoctl) connect to
USER = "setpriv --reuid=65000 --regid=65000 --clear-groups"
RSS_BOUND_KIB = 64 * 1024
LATENCY_BOUND_MS = 1000.0
STARTED_BY_TESTS = {"hostile", "noisy", "probe-none", "probe-root"}


@dataclass
class Row:
    attack: str
    did: str
    worst_ms: float | None
    rss_kib: int
    fds: int
    raw_worst_ms: float | None = None     # including the times the whole guest did not run
    calls: int | None = None
    longest_stall_ms: float | None = None


TABLE: list[Row] = []
BASELINE: dict[str, int] = {}  # the capsules ready before the attacks, with their pids


@pytest.fixture(scope="module")
def vm(make_module_machine: MachineFactory) -> Iterator[Machine]:
    m = make_module_machine("hostile")
    m.succeed("mkdir -p /srv/hostile /srv/ro /srv/rw && chmod 755 /srv/hostile && echo granted > /srv/ro/file "
              "&& chmod 777 /srv/rw")  # (the grants of hostile and probe-none)
    yield m
    print_table()


def print_table() -> None:
    head = ("attack", "what PID 1 did", "worst info (raw; longest guest stall; calls)", "PID 1 RSS", "fds after")
    rows = [head, *((r.attack, r.did, "-" if r.worst_ms is None else
                     f"{r.worst_ms:.0f} ms ({r.raw_worst_ms:.0f}; {r.longest_stall_ms:.0f}; {r.calls})",
                     f"{r.rss_kib / 1024:.1f} MiB", str(r.fds)) for r in TABLE)]
    widths = [max(len(row[i]) for row in rows) + 2 for i in range(4)]
    print("\n\nissue 13 in the booted image:")
    for row in rows:
        print("".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + row[4])


def pid1(m: Machine) -> tuple[int, int]:
    """PID 1's RSS (KiB) and open fds."""
    out = m.succeed("grep VmRSS /proc/1/status; ls /proc/1/fd | wc -l")
    rss = re.search(r"VmRSS:\s+(\d+)", out)
    assert rss is not None, out
    return int(rss.group(1)), int(out.split()[-1])


def figures(m: Machine) -> dict[str, int]:
    result: dict[str, int] = json.loads(m.succeed("exoctl --via socket --json info"))["control"]
    return result


def ready_capsules(m: Machine) -> dict[str, int]:
    rows = json.loads(m.succeed("exoctl --via socket --json status"))
    return {r["name"]: r["pid"] for r in rows if r["state"] == "ready" and r["name"] not in STARTED_BY_TESTS}


class Measured:
    """`info` latency from a root process in the guest, for as long as the block runs."""

    def __init__(self, m: Machine, name: str) -> None:
        self.m, self.name = m, name
        self.latency: dict[str, Any] = {}
        self.before: dict[str, int] = {}

    def __enter__(self) -> Measured:
        self.before = figures(self.m)
        # Real-time priority: it measures PID 1's answers, not how the attacker starves the measurer.
        self.m.succeed(f"rm -f /tmp/lat.out; chrt -f 10 python3 {HOSTILE} {ROOT_SOCK} latency 600 "
                       "> /tmp/lat.out 2>&1 & echo $! > /tmp/lat.pid")
        self.m.wait_until_succeeds(f"grep -q '{STARTED}' /tmp/lat.out", 30)  # (its SIGTERM handler is in place)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.m.succeed("kill -TERM $(cat /tmp/lat.pid)")
        self.m.wait_until_succeeds("grep -q HOSTILE /tmp/lat.out", 30)
        self.latency = parse_report(self.m.succeed("cat /tmp/lat.out"))

    def delta(self, key: str) -> int:
        return figures(self.m).get(key, 0) - self.before.get(key, 0)

    def row(self, did: str, latency_bound: bool = True) -> Row:
        rss, fds = pid1(self.m)
        lat = self.latency
        row = Row(self.name, did, lat.get("worst_unstalled_ms"), rss, fds, lat.get("worst_ms"), lat.get("calls"),
                  lat.get("longest_stall_ms"))
        TABLE.append(row)
        assert rss < RSS_BOUND_KIB, row
        assert fds < early.FD_LIMIT, row
        if latency_bound:
            assert not self.latency.get("failures"), (row, self.latency)
            assert row.worst_ms is not None and row.worst_ms < LATENCY_BOUND_MS, (row, self.latency)
        return row


def as_user(m: Machine, *args: str, timeout: float = 120.0) -> dict[str, Any]:
    return parse_report(m.succeed(f"{USER} python3 {HOSTILE} {SOCK} {' '.join(map(shlex.quote, args))}", timeout))


def from_capsule(m: Machine, name: str, *args: str, timeout: float = 180.0) -> tuple[dict[str, Any], Measured]:
    """Run hostile.py with `args` as the `hostile` capsule (a dynamic uid); its report, and the
    measurement over the attack. The capsule is started first and waits for its arguments: the
    measurement covers the attack, not exoctl starting a capsule."""
    m.succeed("rm -f /srv/hostile/args.json")
    m.succeed("exoctl --via socket start hostile")
    with Measured(m, name) as t:
        m.succeed(f"echo {shlex.quote(json.dumps([SOCK, *args]))} > /srv/hostile/args.tmp && "
                  "mv /srv/hostile/args.tmp /srv/hostile/args.json")
        st = m.wait_for_capsule("hostile", "exited", timeout)
    assert st["reason"] == "exited 0", st
    return parse_report(m.succeed("exoctl --via socket logs hostile -n 5")), t


def test_a_baseline_is_recorded(vm: Machine) -> None:
    BASELINE.update(ready_capsules(vm))
    with Measured(vm, "(no attack)") as t:
        vm.succeed("sleep 3")  # the window the latency is measured over
    t.row(f"{len(BASELINE)} capsules ready")
    assert {"agent", "dbus", "dbus-bridge", "network", "console"} <= set(BASELINE), BASELINE


def test_idle_connections_from_a_user(vm: Machine) -> None:
    with Measured(vm, "1100 idle connections (uid 65000)") as t:
        r = as_user(vm, "idle", "1100", str(control.REQUEST_DEADLINE + 4))
    t.row(f"held at most {figures(vm)['peak_per_uid']} at once, refused {t.delta('refused')} (+ "
          f"{r.get('EAGAIN', 0)} connects refused by the full backlog); closed all by {r['last_closed_after']} s")
    assert r["closed_by_server"] == r["held"], r
    assert figures(vm)["peak_per_uid"] <= control.PER_UID


def test_idle_connections_from_a_capsule(vm: Machine) -> None:
    r, t = from_capsule(vm, "1100 idle connections (dynamic-uid capsule)", "idle", "1100",
                        str(control.REQUEST_DEADLINE + 4))
    errors = {k: v for k, v in r.items() if k.isupper() and k != "EAGAIN"}
    t.row(f"held at most {figures(vm)['peak_per_uid']} at once, refused {t.delta('refused')}"
          + (f" (the capsule itself ran out of fds: {errors})" if errors else "") + "; closed all by "
          f"{r['last_closed_after']} s")
    assert r["closed_by_server"] == r["held"], r
    assert figures(vm)["peak_per_uid"] <= control.PER_UID


def test_a_trickled_request(vm: Machine) -> None:
    r, t = from_capsule(vm, "a request trickled 1 byte / 0.5 s (capsule)", "trickle", "30")
    t.row(f"closed it after {r['closed_after']} s, no answer")
    assert r["closed_after"] <= control.REQUEST_DEADLINE + 2 and r["answer"] == "", r


def test_answers_never_read(vm: Machine) -> None:
    request = json.dumps({"op": "logs", "name": "agent", "lines": 100000})
    with Measured(vm, "32 logs answers never read (uid 65000)") as t:
        r = as_user(vm, "noread", "32", str(control.REPLY_DEADLINE + 4), request)
    t.row(f"dropped {t.delta('dropped_over_share')} over share, {t.delta('dropped_slow')} at the reply deadline")
    assert r["closed_by_server"] == r["held"], r


def test_subscribers_never_reading(vm: Machine) -> None:
    r, t = from_capsule(vm, "30 subscribers never reading (capsule)", "subscribers", "30", "6")
    t.row(f"kept {r['held']} (subscribers have no deadline; their output is bounded)")
    assert r["held"] == 30, r


def test_bad_requests(vm: Machine) -> None:
    console_before = len(vm.console.splitlines())
    with Measured(vm, "9 kinds of bad request x 20 (uid 65000)") as t:
        r = as_user(vm, "bad", "20")
    lines = len(vm.console.splitlines()) - console_before
    kinds = {kind: next(iter(answers)) for kind, answers in r["answers"].items()}
    t.row(f"one error each ({', '.join(sorted(set(kinds.values())))}); {lines} console lines for 180")
    assert all(len(answers) == 1 for answers in r["answers"].values()), r
    assert set(kinds.values()) <= {"BadRequest", "UnknownOperation", "AccessDenied"}, r
    assert lines <= 3


def test_bytes_after_a_request(vm: Machine) -> None:
    with Measured(vm, "a ping, then a reboot, on one connection (root)") as t:
        r = parse_report(vm.succeed(f"python3 {HOSTILE} {SOCK} extra"))
    t.row(f"{r['answer_lines']} answer; the rest never read")
    assert r["answer_lines"] == 1, r
    assert json.loads(vm.succeed("exoctl --via socket --json info"))["shutting_down"] is None


def test_a_connect_flood(vm: Machine) -> None:
    r, t = from_capsule(vm, "connect/close flood, 5 s (capsule)", "flood", "5")
    t.row(f"the attacker connected {r['connects']} times ({r['errors'] or 'no errors'})")


def test_a_notify_flood(vm: Machine) -> None:
    """The sd_notify socket is 0666 too: two senders as uid 65000 flood it; PID 1 reads
    NOTIFY_PER_TURN messages a turn and answers its clients between."""
    cmd = f"{USER} python3 {HOSTILE} {NOTIFY_SOCK} notify 5"
    with Measured(vm, "sd_notify flood, 2 senders, 5 s (uid 65000)") as t:
        out = vm.succeed(f"{cmd} > /tmp/notify1.out & {cmd} > /tmp/notify2.out; wait; "
                         "cat /tmp/notify1.out /tmp/notify2.out", 90)
    sent = [json.loads(line.split("HOSTILE ", 1)[1])["sent"] for line in out.splitlines() if "HOSTILE " in line]
    t.row(f"read {readiness.NOTIFY_PER_TURN} a turn; {sum(sent)} datagrams sent by {len(sent)} senders")
    assert len(sent) == 2 and all(n > 0 for n in sent), out


def test_a_noisy_capsule(vm: Machine) -> None:
    """/usr/bin/yes as an ordinary scoped capsule (issue 13 #2): the capsule slows itself, not
    PID 1. Asserted on what PID 1 wrote (the kernel's count, /proc/1/io wchar), which no load
    changes: within the log budget (the burst plus runner.LOG_RATE a second), where counting the
    bytes read let yes's 2-byte lines cost 13 times that and PID 1 a whole CPU under TCG."""
    # PID 1's CPU time (utime + stime, in ticks of 1/100 s), bytes written, and the guest's uptime.
    clock = "awk '{print $14 + $15}' /proc/1/stat; awk '/^wchar/ {print $2}' /proc/1/io; cut -d' ' -f1 /proc/uptime"
    vm.succeed("exoctl --via socket start noisy")
    vm.wait_for_capsule("noisy", "ready", 30)
    with Measured(vm, "/usr/bin/yes as a scoped capsule, 10 s") as t:
        ticks0, wrote0, up0 = map(float, vm.succeed(clock).split())
        vm.succeed("sleep 10")  # the window the latency and PID 1's CPU time are measured over
        ticks1, wrote1, up1 = map(float, vm.succeed(clock).split())
        cpu = (ticks1 - ticks0) / 100 / (up1 - up0) * 100
    status = vm.capsule_status("noisy")
    vm.succeed("exoctl --via socket stop noisy")
    wrote = wrote1 - wrote0
    t.row(f"PID 1 at {cpu:.0f} % of a CPU, wrote {wrote / 2**20:.1f} MiB in {up1 - up0:.0f} s; noisy still "
          f"{status['state']}")
    assert status["state"] == "ready", status
    # (3 MiB: the last chunk's overshoot and what else PID 1 wrote: answers, console lines)
    assert wrote < runner.LOG_BURST + runner.LOG_RATE * (up1 - up0) + 3 * 2**20, f"PID 1 wrote {wrote:.0f} bytes"


def test_bad_values_in_a_switched_manifest(vm: Machine) -> None:
    """Issue 13 #4 from inside: a document nested 50,000 deep, and capsules with a 4,301-digit
    memory_max, watchdog_sec = 1e400, a NUL in argv and the name cpu.max: refused with the
    loader's message, nothing switched, PID 1 untouched."""
    vm.succeed("python3 -c \"open('/tmp/deep.json', 'w').write('[' * 50000 + ']' * 50000)\"")
    bad = ('{"version": 1, "capsules": {"huge": {"argv": ["/bin/true"], "quotas": {"memory_max": '
           + "9" * 4301 + '}}, "wd": {"argv": ["/bin/true"], "watchdog_sec": 1e400}, '
           '"nul": {"argv": ["/bin/true\\u0000x"]}, "cpu.max": {"argv": ["/bin/true"]}}}')
    vm.succeed(f"cat > /tmp/bad.json <<'EOF'\n{bad}\nEOF")
    with Measured(vm, "switch to 50,000-deep / bad-valued manifests") as t:
        deep = vm.execute("exoctl switch /tmp/deep.json")
        values = vm.execute("exoctl switch /tmp/bad.json")
    t.row(f"refused both: {deep.out.strip()[:60]}... / {values.out.strip()[:60]}...")
    assert deep.rc != 0 and "nested too deeply" in deep.out, deep
    assert values.rc != 0 and "capsule 'cpu.max'" in values.out, values


def test_escapes_from_a_dynamic_uid_capsule(vm: Machine) -> None:
    with Measured(vm, "user namespace, mount, AF_PACKET, netfilter, bpf, ... (capsule)") as t:
        vm.succeed("exoctl --via socket start probe-none")
        vm.wait_for_capsule("probe-none", "exited", 120)
    log = vm.succeed("exoctl --via socket logs probe-none -n 50")
    got = json.loads([x for x in log.splitlines() if "SCOPE " in x][-1].split("SCOPE ", 1)[1])["escape"]
    wrong = {k: v for k, v in got.items() if v != ESCAPE_EXPECTED[k]}
    refused = sum(1 for v in ESCAPE_EXPECTED.values() if v != "ok")
    t.row(f"{refused} escape attempts refused (EPERM, clone3 ENOSYS)" + (f"; UNEXPECTED {wrong}" if wrong else ""))
    assert not wrong, wrong


def test_hardened_boot(vm: Machine) -> None:
    """The sysctls PID 1 sets, /run's size limit, exo_init.log's rotation, the fd limit."""
    values = {}
    for name, _, _ in early.HARDENING_SYSCTLS:
        r = vm.execute(f"cat /proc/sys/{name.replace('.', '/')}")
        values[name] = r.out.strip() if r.rc == 0 else ""  # (not in this kernel)
    wrong = {name: values[name] for name, want, required in early.HARDENING_SYSCTLS
             if values[name] != want and (required or values[name])}
    run = re.search(r"size=[^, ]+", vm.succeed("grep ' /run ' /proc/mounts"))
    limits = vm.succeed("grep 'Max open files' /proc/1/limits").split()
    weight = int(vm.succeed("cat /sys/fs/cgroup/exo.init/cpu.weight"))
    rss, fds = pid1(vm)
    TABLE.append(Row("hardened boot", f"{len(values) - len(wrong)}/{len(values)} sysctls set; /run "
                     f"{run.group(0) if run else 'WITHOUT size='}; RLIMIT_NOFILE {limits[3]}; PID 1's cpu.weight "
                     f"{weight}", None, rss, fds))
    assert not wrong, wrong
    assert run is not None and int(limits[3]) >= early.FD_LIMIT, limits
    assert weight == cgroups.INIT_CPU_WEIGHT


def test_pid1_kept_serving_and_nothing_else_moved(vm: Machine) -> None:
    """After every attack: no "Too many open files" or supervisor error on the console, every
    capsule that was ready is ready with the same pid, PID 1 answers. (And the longest any one
    request held PID 1's loop, per operation, for the table.)"""
    slowest = {k.removeprefix("slowest_ms_"): v for k, v in figures(vm).items() if k.startswith("slowest_ms_")}
    rss, fds = pid1(vm)
    TABLE.append(Row("(after all)", "longest one request held the loop: " + ", ".join(
        f"{op} {ms} ms" for op, ms in sorted(slowest.items(), key=lambda x: -x[1])[:4]), None, rss, fds))
    console = vm.console
    assert "Too many open files" not in console
    assert "supervisor error" not in console and "emergency shell" not in console
    assert "Traceback" not in console
    assert ready_capsules(vm) == BASELINE


def test_sigusr2_to_pid1_powers_off_cleanly_after_the_attacks(vm: Machine) -> None:
    """Last in the module (it ends the machine): SIGUSR2 to PID 1 is a poweroff (README; SIGPWR is
    tested from the recovery shell, tests/vm/test_emergency.py), and the attacked system goes down
    cleanly: QEMU exits 0, every capsule stopped, no panic, no traceback."""
    vm.renew_deadline()
    vm.succeed("(sleep 0.5; kill -USR2 1) >/dev/null 2>&1 &")
    assert_clean_end(vm, "poweroff")
    assert "signal SIGUSR2: poweroff" in vm.console
