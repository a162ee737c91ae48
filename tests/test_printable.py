"""Capsule-controlled text printed by exoctl and the CoreCaps carries no control characters or
escape sequences (issue 13 #8): a capsule writes them to its log and its sd_notify status, names a
file with them, runs with them in its argv; what exoctl, ls and ps print holds none."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from exo_init.lib.text import printable
from tests.exo import REPO, ExoInit

EVIL = "\x1b]0;owned\x07\x1b[2J\x1b[31mred\x1b[0m\rover\x08\x9b1mbidi\u202eevil"
BAD_CHARS = set("\x1b\x07\x08\r\x9b\u202e")
NOTIFY = ("import os, socket, time\n"
          "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
          "s.sendto(('READY=1\\nSTATUS=' + os.environ['EVIL']).encode(), os.environ['NOTIFY_SOCKET'])\n"
          "print('log ' + os.environ['EVIL'], flush=True)\n"
          "time.sleep(100)\n")


def clean(text: str) -> bool:
    return not (set(text) & BAD_CHARS)


@pytest.mark.parametrize(("raw", "shown"), [
    ("plain text", "plain text"), ("tab\tkept", "tab\tkept"), ("\x1b[31mred\x1b[0m", "red"),
    ("title\x1b]0;x\x07!", "title!"), ("cr\rnl\n", "cr?nl?"), ("\x9b2J", ""), ("a\u202eb", "a?b"),
    ("é 漢字", "é 漢字"), ("\x1bPq#0\x1b\\dcs", "dcs"), ("lone\x1b", "lone"),
])
def test_printable(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_exoctl_prints_no_escape_sequences(tmp_path: Path) -> None:
    e = ExoInit(tmp_path, {"capsules": {"evil": {"argv": [sys.executable, "-c", NOTIFY], "env": {"EVIL": EVIL},
                                                 "readiness": {"kind": "notify"}}}})
    try:
        e.wait_state("evil", "ready")
        e.wait_for(lambda: "log " in "".join(e.call("logs", name="evil", lines=5)["lines"]), 10, "the log line")
        raw = e.status("evil")["status_text"]
        assert "\x1b" in raw, "the capsule's status did carry the escapes"
        out = {}
        for args in (["status"], ["status", "evil"], ["logs", "evil", "-n", "5"]):
            r = subprocess.run([sys.executable, "-m", "exo_init.client.exoctl", "--socket",
                                str(e.runtime / "control.sock"), *args], capture_output=True, text=True, cwd=REPO,
                               env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
            out[" ".join(args)] = r.stdout
        print(out)
        for what, text in out.items():
            assert clean(text), (what, text)
        assert out["status evil"].rstrip("\n").endswith(printable(raw)), out["status evil"]
        assert printable(EVIL) == "red?over?bidi?evil"
        assert f"log {printable(EVIL)}" in out["logs evil -n 5"]
    finally:
        e.close()
