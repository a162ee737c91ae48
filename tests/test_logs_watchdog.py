"""README's promises about a capsule's log, its watchdog and its backoff, kept by a real exo_init on
the host (child-subreaper mode) with real capsule processes:

* a capsule's log is rotated at 1 MiB with 3 older files kept (README: "rotated at 1 MiB (3 kept)"),
  no line lost or split between the files it keeps;
* `watchdog_sec`: a capsule sending `WATCHDOG=1` in time is left alone for many times its bound,
  and restarted once it stops;
* `restart.reset_after`: a run that lasted that long resets the backoff to `restart.delay`.

The figures are README's (1 MiB, 3), not the implementation's constants."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.exo import ExoInit

PY = sys.executable
MIB = 1 << 20
KEPT = 3


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    started: list[ExoInit] = []

    def start(capsules: dict[str, Any]) -> ExoInit:
        e = ExoInit(tmp_path / f"exo{len(started)}", {"capsules": capsules}, cgroups=False)
        started.append(e)
        return e

    yield start
    for e in started:
        e.close()


def test_a_capsules_log_rotates_at_1_mib_keeping_3(start: Any, tmp_path: Path) -> None:
    """6 MiB of numbered 1000-byte lines: the current file and 3 older ones, each rotated once past
    1 MiB (and not long before), holding the last lines in order with none missing or torn."""
    done = tmp_path / "done"
    lines = 6 * MIB // 1000
    writer = (f"import sys, pathlib\nfor i in range({lines}):\n"
              "    sys.stdout.write(f'{i:08d} ' + 'x' * 991 + '\\n')\n"
              f"sys.stdout.flush()\npathlib.Path({str(done)!r}).touch()\nimport time; time.sleep(100)\n")
    e = start({"chatty": {"argv": [PY, "-u", "-c", writer]}})
    e.wait_for(done.exists, 60, "the capsule wrote 6 MiB")
    path = Path(e.call("logs", name="chatty", lines=1)["path"])

    def last_number() -> int:
        tail = e.call("logs", name="chatty", lines=1)["lines"]
        return int(tail[0].split()[-2]) if tail and re.search(r" \d{8} x+$", tail[0]) else -1

    e.wait_for(lambda: last_number() == lines - 1, 60, f"line {lines - 1} in {path}")
    files = sorted(p.name for p in path.parent.iterdir() if p.name.startswith("chatty.log"))
    assert files == ["chatty.log", *(f"chatty.log.{n}" for n in range(1, KEPT + 1))], files
    numbers: list[int] = []
    for name in [f"chatty.log.{n}" for n in range(KEPT, 0, -1)] + ["chatty.log"]:
        data = (path.parent / name).read_bytes()
        if name != "chatty.log":
            assert MIB < len(data) <= MIB + 128 * 1024, (name, len(data), "rotated once past 1 MiB (one read more)")
        for line in data.decode().splitlines():
            m = re.fullmatch(r"\S+ (\d{8}) (x+)", line)  # (exo_init's time stamp, then the capsule's line)
            assert m and len(m.group(2)) == 991, f"{name}: a torn or foreign line: {line[:80]!r}"
            numbers.append(int(m.group(1)))
    assert numbers == list(range(numbers[0], lines)), "the kept files hold the last lines, in order, none lost"
    assert numbers[0] > lines // 3, "older lines are gone: 3 files kept, not more"


BEAT = ("import os, socket, time, pathlib\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
        "s.sendto(b'READY=1', os.environ['NOTIFY_SOCKET'])\n"
        "end = time.monotonic() + 4.0\n"
        "while time.monotonic() < end:\n"
        "    s.sendto(b'WATCHDOG=1', os.environ['NOTIFY_SOCKET']); time.sleep(0.05)\n"
        "pathlib.Path(os.environ['FLAG']).touch()\n"
        "time.sleep(100)\n")


def test_watchdog_keep_alives_keep_a_capsule_and_silence_restarts_it(start: Any, tmp_path: Path) -> None:
    flag = tmp_path / "stopped-beating"
    e = start({"dog": {"argv": [PY, "-c", BEAT], "env": {"FLAG": str(flag)}, "readiness": {"kind": "notify"},
                       "watchdog_sec": 1.0, "restart": {"policy": "on-failure", "delay": 0.1}}})
    first = e.wait_state("dog", "ready")
    e.wait_for(flag.exists, 30, "4 s of WATCHDOG=1 every 0.05 s")
    st = e.status("dog")
    assert (st["state"], st["pid"], st["restarts"]) == ("ready", first["pid"], 0), \
        f"4 times its watchdog_sec with keep-alives: the same run ({st})"
    flag.unlink()
    e.wait_for(lambda: e.status("dog")["restarts"] >= 1, 10, "a restart once the keep-alives stop")
    assert any("watchdog timeout" in ev.get("reason", "") for ev in e.events if ev["capsule"] == "dog"), e.events
    assert e.wait_state("dog", "ready")["pid"] != first["pid"]


FLAKY = ("import os, pathlib, sys, time\n"
         "count = pathlib.Path(os.environ['COUNT'])\n"
         "n = int(count.read_text()) + 1 if count.exists() else 1\n"
         "count.write_text(str(n))\n"
         "if n == 4:\n    time.sleep(4.5)\n"
         "if n >= 6:\n    time.sleep(100)\n"
         "sys.exit(1)\n")


def test_a_run_longer_than_reset_after_resets_the_backoff(start: Any, tmp_path: Path) -> None:
    """Runs 1-3 fail at once (delays 0.1, 0.2, 0.4 s), run 4 lasts 4.5 s (> reset_after 3 s) then
    fails: its delay is 0.1 s again, not 0.8 s; run 5 fails at once: 0.2 s. (A run failing "at
    once" is a Python start-up: well under 3 s even on a loaded host.)"""
    e = start({"flaky": {"argv": [PY, "-c", FLAKY], "env": {"COUNT": str(tmp_path / "count")},
                         "restart": {"policy": "on-failure", "delay": 0.1, "max_delay": 10, "reset_after": 3.0,
                                     "limit_burst": 100}, "autostart": False}})
    e.call("start", name="flaky")  # (once subscribed to its events: tests/exo.py's watcher)
    e.wait_for(lambda: (tmp_path / "count").exists() and (tmp_path / "count").read_text() == "6", 30, "the 6th run")
    e.wait_state("flaky", "ready")
    delays = [re.search(r"restart in ([\d.]+) s", ev["reason"]).group(1)  # type: ignore[union-attr]
              for ev in e.events if ev["capsule"] == "flaky" and ev.get("new") == "backoff"]
    assert delays == ["0.10", "0.20", "0.40", "0.10", "0.20"], delays
