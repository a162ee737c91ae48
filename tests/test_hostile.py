"""Issue 13 on the host: a real exo_init (child subreaper) under the attacks a local user can make
on its control socket, and bad values at boot. The attacker is tests/guest/hostile.py, run as
other uids (nobody, and uids with no passwd entry); while it attacks, this process asks `info`
every 50 ms as root and samples exo_init's RSS and open fds. The requirements are asserted where
the issue states them (info within 1 s, RSS under 64 MiB, fds under PID 1's own bound, nothing
logged as "Too many open files", no supervisor error, the bystander capsule untouched); every
figure is printed in a table at the end of the module.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from exo_init.client.control import call
from exo_init.lib.errors import ApiError
from exo_init.pid1 import control, early, readiness
from tests.exo import ExoInit
from tests.guest.hostile import parse_report

HOSTILE = (Path(__file__).parent / "guest" / "hostile.py").read_text()
SYSTEM_PY = "/usr/bin/python3"
RSS_BOUND = 64 * 1024 * 1024
LATENCY_BOUND = 1.0
NOBODY = 65534

pytestmark = [
    pytest.mark.skipif(not Path(SYSTEM_PY).exists(), reason="needs the system's /usr/bin/python3"),
    pytest.mark.skipif(os.geteuid() != 0, reason="attacks as other uids need root"),
]


@dataclass
class Monitor:
    """`info` every 50 ms as root, and exo_init's RSS and fds, from a thread, while it runs."""

    sock: Path
    pid: int
    worst: float = 0.0
    calls: int = 0
    failures: list[str] = field(default_factory=list)
    rss_max: int = 0
    fds_max: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        proc = psutil.Process(self.pid)
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                call(self.sock, {"op": "info"}, timeout=5.0)
            except (OSError, ApiError, ValueError) as e:
                self.failures.append(f"{type(e).__name__}: {e}")
            self.worst = max(self.worst, time.monotonic() - t0)
            self.calls += 1
            self.rss_max = max(self.rss_max, proc.memory_info().rss)
            self.fds_max = max(self.fds_max, proc.num_fds())
            self.stop.wait(0.05)


TABLE: list[tuple[str, str, str, str, str]] = []


@pytest.fixture(scope="module")
def exo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExoInit]:
    tmp = tmp_path_factory.mktemp("hostile")
    chatty = "import sys\nfor i in range(6000): print(f'line {i} ' + 'x' * 100)\nsys.stdout.flush()\n" \
             "import time\ntime.sleep(1000)\n"
    e = ExoInit(tmp, {"capsules": {
        "bystander": {"argv": ["/bin/sleep", "1000"]},
        "chatty": {"argv": [SYSTEM_PY, "-c", chatty]},
        "flapper": {"argv": ["/bin/sleep", "1000"]},
    }})
    e.wait_state("bystander", "ready")
    e.wait_state("chatty", "ready")
    e.wait_for(lambda: "line 5999 " in "".join(e.call("logs", name="chatty", lines=1)["lines"]), 30, "chatty's log")
    bystander = e.status("bystander")["pid"]
    yield e
    try:
        assert e.status("bystander")["pid"] == bystander and e.status("bystander")["state"] == "ready"
        log = e.log() + (e.runtime / "exo_init.log").read_text()
        assert "Too many open files" not in log
        assert "supervisor error" not in log
        assert "Traceback" not in e.log(), "a traceback on the console"
    finally:
        print_table()
        e.close()


def hostile(e: ExoInit, uid: int, *args: str, timeout: float = 60.0) -> dict[str, Any]:
    out = subprocess.run([SYSTEM_PY, "-c", HOSTILE, str(e.runtime / "control.sock"), *args], user=uid,
                         capture_output=True, text=True, cwd="/", timeout=timeout, check=False)
    assert out.returncode == 0, out.stderr
    return parse_report(out.stdout)


@dataclass
class Attack:
    name: str
    e: ExoInit
    monitor: Monitor | None = None
    thread: threading.Thread | None = None

    def __enter__(self) -> Attack:
        self.monitor = Monitor(self.e.runtime / "control.sock", self.e.proc.pid)
        self.thread = threading.Thread(target=self.monitor.run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self.monitor is not None and self.thread is not None
        self.monitor.stop.set()
        self.thread.join(10)

    def check(self, what_pid1_did: str, latency_bound: bool = True) -> None:
        """Record the row; assert the issue's bounds."""
        m = self.monitor
        assert m is not None
        proc = psutil.Process(self.e.proc.pid)
        rss, fds = proc.memory_info().rss, proc.num_fds()
        TABLE.append((self.name, what_pid1_did, f"{m.worst * 1000:.0f} ms ({m.calls} calls)",
                      f"{max(rss, m.rss_max) / 2**20:.1f} MiB", f"{fds} (max {m.fds_max})"))
        assert max(rss, m.rss_max) < RSS_BOUND, f"{self.name}: RSS {max(rss, m.rss_max)}"
        assert m.fds_max < early.FD_LIMIT, f"{self.name}: {m.fds_max} fds"
        if latency_bound:
            assert not m.failures, f"{self.name}: info failed: {m.failures[:3]}"
            assert m.worst < LATENCY_BOUND, f"{self.name}: info took {m.worst:.2f} s"


def print_table() -> None:
    head = ("attack", "what PID 1 did", "worst info", "PID 1 RSS", "fds after")
    widths = [max(len(r[i]) for r in [head, *TABLE]) + 2 for i in range(4)]
    print()
    for row in [head, *TABLE]:
        print("".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + row[4])


def figures(e: ExoInit) -> dict[str, int]:
    result: dict[str, int] = e.call("info")["control"]
    return result


def test_pid1_raised_its_file_limit(exo: ExoInit) -> None:
    soft, hard = psutil.Process(exo.proc.pid).rlimit(psutil.RLIMIT_NOFILE)
    assert soft >= early.FD_LIMIT and hard >= early.FD_LIMIT, (soft, hard)


def test_idle_connections_from_one_user(exo: ExoInit) -> None:
    """1100 idle connections from nobody (the issue's 1031 took PID 1 down): it holds its share,
    the rest are refused at once, and the held ones are closed at the request deadline."""
    with Attack("1100 idle connections (nobody)", exo) as a:
        r = hostile(exo, NOBODY, "idle", "1100", str(control.REQUEST_DEADLINE + 3))
        a.check(f"held {r['held']}, refused {r.get('refused Busy', 0)} (Busy) + {r.get('EAGAIN', 0)} (backlog "
                f"full), closed the held after {r['last_closed_after']} s")
    assert r["held"] == control.PER_UID, r
    assert r.get("refused Busy", 0) + r.get("EAGAIN", 0) == 1100 - control.PER_UID, r
    assert r["closed_by_server"] == r["held"] and r["last_closed_after"] <= control.REQUEST_DEADLINE + 1.5, r


def test_idle_connections_from_many_users_leave_roots_reserve(exo: ExoInit) -> None:
    """Eight uids with no passwd entry each try 40: non-root uids together hold at most
    MAX_CLIENTS - ROOT_RESERVE, and root still gets in (the monitor) and can open its reserve."""
    hold = str(control.REQUEST_DEADLINE + 2)
    with Attack("8 uids x 40 idle connections", exo) as a:
        procs = [subprocess.Popen([SYSTEM_PY, "-c", HOSTILE, str(exo.runtime / "control.sock"), "idle", "40", hold],
                                  user=60001 + i, stdout=subprocess.PIPE, text=True, cwd="/") for i in range(8)]
        out = [parse_report(p.communicate(timeout=60)[0]) for p in procs]
        held = sum(r["held"] for r in out)
        a.check(f"held {held} of 320 (non-root limit {control.MAX_CLIENTS - control.ROOT_RESERVE}), "
                f"refused {sum(r.get('refused Busy', 0) for r in out)}")
    assert held == control.MAX_CLIENTS - control.ROOT_RESERVE, out
    assert all(r["held"] <= control.PER_UID for r in out), out


def test_a_trickling_client_is_closed(exo: ExoInit) -> None:
    with Attack("a request trickled 1 byte / 0.5 s", exo) as a:
        r = hostile(exo, NOBODY, "trickle", "20")
        a.check(f"closed it after {r['closed_after']} s ({r['bytes_sent']} bytes), no answer")
    assert r["closed_after"] <= control.REQUEST_DEADLINE + 1.5 and r["answer"] == "", r


def test_clients_that_never_read_their_answers(exo: ExoInit) -> None:
    """200 `logs` requests of ~300 KiB answers each (the last 256 KiB of chatty's log), never read: the ones over
    their share of the output budget are dropped at once, the rest at the reply deadline."""
    before = figures(exo)
    request = json.dumps({"op": "logs", "name": "chatty", "lines": 6000})
    with Attack("200 logs answers never read (root)", exo) as a:
        r = hostile(exo, 0, "noread", "200", str(control.REPLY_DEADLINE + 3), request)
        after = figures(exo)
        over = after.get("dropped_over_share", 0) - before.get("dropped_over_share", 0)
        slow = after.get("dropped_slow", 0) - before.get("dropped_slow", 0)
        a.check(f"dropped {over} over their share of the {control.OUTBUF_TOTAL >> 20} MiB output budget at once, "
                f"{slow} at the reply deadline")
    assert r["closed_by_server"] == 200 and over > 0, r
    assert after["outbuf"] == 0 and after["clients"] <= 2, after


def test_subscribers_that_never_read(exo: ExoInit) -> None:
    with Attack("30 subscribers never reading (nobody)", exo) as a:
        proc = subprocess.Popen([SYSTEM_PY, "-c", HOSTILE, str(exo.runtime / "control.sock"), "subscribers", "30",
                                 "8"], user=NOBODY, stdout=subprocess.PIPE, text=True, cwd="/")
        for _ in range(5):  # events for them not to read
            exo.call("restart", name="flapper")
            exo.wait_state("flapper", "ready")
        r = parse_report(proc.communicate(timeout=60)[0])
        a.check(f"kept {r['held']} subscribers (their events are small); none grew PID 1")
    assert r["held"] == 30, r


def test_bad_requests_get_one_answer_and_no_log_line_each(exo: ExoInit) -> None:
    console_before = exo.log().count("\n")
    with Attack("9 kinds of bad request x 30 (nobody)", exo) as a:
        r = hostile(exo, NOBODY, "bad", "30")
        lines = exo.log().count("\n") - console_before
        a.check(f"answered each with one error ({len(r['answers'])} kinds); {lines} console lines for 270")
    for kind, answers in r["answers"].items():
        assert len(answers) == 1 and next(iter(answers.values())) == 30, (kind, answers)
        assert set(answers) <= {"BadRequest", "UnknownOperation", "AccessDenied"}, (kind, answers)
    assert lines <= 3, exo.log()[-2000:]


def test_bytes_after_a_request_never_run_another(exo: ExoInit) -> None:
    with Attack("a ping followed by a reboot on one connection", exo) as a:
        r = hostile(exo, 0, "extra")
        a.check(f"{r['answer_lines']} answer, the rest never read")
    assert r["answer_lines"] == 1 and '"pid"' in r["answer"], r
    assert exo.call("info")["shutting_down"] is None


def test_a_connect_flood(exo: ExoInit) -> None:
    with Attack("connect/close flood, 4 s (nobody)", exo) as a:
        r = hostile(exo, NOBODY, "flood", "4")
        a.check(f"the attacker connected {r['connects']} times; accepted {control.ACCEPTS_PER_TURN} per loop turn")
    assert r["connects"] > 100, r


def test_a_notify_flood(exo: ExoInit) -> None:
    """Two senders as nobody flood the sd_notify socket (mode 0666; each message costs PID 1 a look
    at the sender's cgroup): PID 1 reads NOTIFY_PER_TURN a turn and serves its clients between."""
    sock = str(exo.runtime / "notify.sock")
    with Attack("sd_notify flood, 2 senders, 4 s (nobody)", exo) as a:
        procs = [subprocess.Popen([SYSTEM_PY, "-c", HOSTILE, sock, "notify", "4"], user=NOBODY,
                                  stdout=subprocess.PIPE, text=True, cwd="/") for _ in range(2)]
        out = [parse_report(p.communicate(timeout=60)[0]) for p in procs]
        a.check(f"read {readiness.NOTIFY_PER_TURN} a turn; {sum(r['sent'] for r in out)} datagrams sent, "
                "none from a capsule")
    assert all(r["sent"] > 100 for r in out), out


def test_notify_messages_are_read_in_bounded_turns(tmp_path: Path) -> None:
    """The mechanism: one wake-up reads at most `limit` messages (NOTIFY_PER_TURN in PID 1), in
    order; the rest are read on the next ones (the loop's selector is level-triggered). (The
    kernel queues only net.unix.max_dgram_qlen datagrams, 10 by default: the flood above is
    senders refilling the queue while PID 1 reads it, which a bound per turn is what stops.)"""
    path = tmp_path / "notify.sock"
    notify = readiness.NotifySocket(path)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK) as sender:
            for i in range(8):
                sender.sendto(f"STATUS={i}".encode(), str(path))
        turns = [notify.receive(limit=3) for _ in range(4)]
    finally:
        notify.close()
    assert [len(turn) for turn in turns] == [3, 3, 2, 0]
    assert [fields["STATUS"] for turn in turns for _pid, _uid, fields in turn] == [str(i) for i in range(8)]
    assert {pid for turn in turns for pid, _uid, _fields in turn} == {os.getpid()}


def test_out_of_file_descriptors_pauses_accepting(exo: ExoInit) -> None:
    """The last line of defence: exo_init's own fd limit lowered under it (prlimit), then root
    connects 40 times. accept() fails with EMFILE: accepting pauses (not a supervisor error), and
    resumes once fds are there again (here: the limit restored)."""
    proc = psutil.Process(exo.proc.pid)
    limits = proc.rlimit(psutil.RLIMIT_NOFILE)
    before = figures(exo)
    limit = proc.num_fds() + 12
    with Attack("EMFILE: fd limit lowered, 40 idle (root)", exo) as a:
        proc.rlimit(psutil.RLIMIT_NOFILE, (limit, limits[1]))
        try:
            attacker = subprocess.Popen([SYSTEM_PY, "-c", HOSTILE, str(exo.runtime / "control.sock"), "idle", "40",
                                         str(control.REQUEST_DEADLINE + 6)], stdout=subprocess.PIPE, text=True)
            exo.wait_for(lambda: proc.num_fds() >= limit - 1, 10, "exo_init out of file descriptors")
        finally:
            proc.rlimit(psutil.RLIMIT_NOFILE, limits)
        r = parse_report(attacker.communicate(timeout=60)[0])
        t0 = time.monotonic()
        after = figures(exo)
        took = time.monotonic() - t0
        a.check(f"paused accepting {after.get('accept_paused', 0) - before.get('accept_paused', 0)}x, resumed, "
                f"closed all 40 at their deadline", latency_bound=False)
    assert after.get("accept_paused", 0) > before.get("accept_paused", 0), after
    assert r["held"] == 40 and r["closed_by_server"] == 40, r
    assert after["accepting"] == 1 and took < LATENCY_BOUND


def test_a_subscriber_that_talks_is_closed(exo: ExoInit) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(exo.runtime / "control.sock"))
        s.sendall(b'{"op": "subscribe"}\n')
        assert b"subscribed" in s.recv(100)
        s.sendall(b"x" * 2 * control.SUBSCRIBER_TALK)
        while data := s.recv(65536):  # events, if any, then the close (a timeout fails the test)
            assert b'"event"' in data


def test_root_has_a_socket_of_its_own(exo: ExoInit) -> None:
    """control.root.sock: mode 0600, so other users cannot even connect; root's clients use it."""
    root_sock = exo.runtime / "control.root.sock"
    assert (root_sock.stat().st_mode & 0o777) == 0o600
    before = figures(exo).get("root_socket", 0)
    exo.call("ping")
    assert figures(exo)["root_socket"] > before, "root's call came in on the root-only socket"
    probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
             "try:\n    s.connect(sys.argv[1])\n    print('connected')\n"
             "except PermissionError:\n    print('refused')\n")
    out = subprocess.run([SYSTEM_PY, "-c", probe, str(root_sock)], user=NOBODY, capture_output=True, text=True,
                         cwd="/", check=True)
    assert out.stdout.strip() == "refused"
