"""PID 1's capsule log writer (exo_init/pid1/logsink.py), on real files."""

from __future__ import annotations

import re
from pathlib import Path

from exo_init.lib.logfile import tail
from exo_init.pid1 import logsink
from exo_init.pid1.logsink import LogSink

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} "


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def test_every_line_is_timestamped_and_partial_lines_wait_for_their_newline(tmp_path: Path) -> None:
    sink = LogSink(tmp_path, "svc")
    sink.feed(b"one\ntw")
    sink.feed(b"o\n\nthree")
    got = lines(sink.path)
    assert [re.sub(STAMP.encode(), b"", g) for g in got] == [b"one", b"two", b""]
    assert all(re.match(STAMP.encode(), g) for g in got)
    assert sink.last_line == ""
    sink.flush_partial()
    assert lines(sink.path)[-1].endswith(b" three") and sink.last_line == "three"
    sink.line("[exo_init] main process exited 0")
    assert tail(sink.path, 1)[0].endswith("[exo_init] main process exited 0")


def test_a_line_without_end_is_cut_at_max_line(tmp_path: Path) -> None:
    sink = LogSink(tmp_path, "svc")
    sink.feed(b"x" * (logsink.MAX_LINE + 10))
    sink.feed(b"y\n")
    got = [re.sub(STAMP.encode(), b"", g) for g in lines(sink.path)]
    assert got == [b"x" * (logsink.MAX_LINE + 10), b"y"]
    assert len(sink.last_line) == 1


def test_bytes_are_kept_and_read_back_with_replacement(tmp_path: Path) -> None:
    sink = LogSink(tmp_path, "svc")
    sink.feed(b"caf\xc3\xa9 \xff\xfe\n")
    assert lines(sink.path)[0].endswith(b"caf\xc3\xa9 \xff\xfe")
    assert tail(sink.path, 1)[0].endswith("café \ufffd\ufffd")


def test_rotation_keeps_three_old_files(tmp_path: Path) -> None:
    sink = LogSink(tmp_path, "svc")
    chunk = (b"z" * 1023 + b"\n") * 256  # 256 KiB a feed
    for _ in range(4 * 5 + 2):
        sink.feed(chunk)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["svc.log", "svc.log.1", "svc.log.2", "svc.log.3"]
    assert all(p.stat().st_size <= logsink.MAX_BYTES + len(chunk) * 2 for p in tmp_path.iterdir())
    sink.close()
    # A new sink (exo_init restarted) counts the existing file's size.
    again = LogSink(tmp_path, "svc")
    size = again.path.stat().st_size
    again.feed(b"after\n")
    assert again.path.stat().st_size > size
