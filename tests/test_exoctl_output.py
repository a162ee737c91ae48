"""exoctl prints for a person unless `--json`: an accepted poweroff or reboot is a sentence and
`info` is `key: value` lines, never the API's raw JSON (issue 24); `--json` is the API's JSON.
Against a real exo_init on this host (a child subreaper: a shutdown ends it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.exo import REPO, ExoInit

MANIFEST = {"capsules": {"svc": {"argv": ["/bin/sleep", "100"]}}}


def exoctl(e: ExoInit, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exo_init.client.exoctl", "--socket", str(e.runtime / "control.sock"),
                           *args], capture_output=True, text=True, timeout=60, check=False, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize(("verb", "sentence"), [
    ("poweroff", "powering off: every capsule stops, then the machine powers off\n"),
    ("reboot", "rebooting: every capsule stops, then the machine restarts\n"),
])
def test_shutdown_verbs_print_a_sentence(tmp_path: Path, verb: str, sentence: str) -> None:
    e = ExoInit(tmp_path, MANIFEST)
    try:
        e.wait_state("svc", "ready")
        done = exoctl(e, verb)
        assert (done.returncode, done.stdout, done.stderr) == (0, sentence, "")
        e.proc.wait(60)  # the shutdown happened: exo_init stopped its capsules and ended
        assert "svc" in e.log()
    finally:
        e.close()


def test_json_is_the_apis_answer(tmp_path: Path) -> None:
    e = ExoInit(tmp_path, MANIFEST)
    try:
        e.wait_state("svc", "ready")
        info = exoctl(e, "--json", "info")
        assert info.returncode == 0 and json.loads(info.stdout)["hostname"] == "test", info
        done = exoctl(e, "--json", "poweroff")
        assert done.returncode == 0 and json.loads(done.stdout) == {"action": "poweroff"}, done
        e.proc.wait(60)
    finally:
        e.close()


def test_info_is_key_value_lines(tmp_path: Path) -> None:
    e = ExoInit(tmp_path, MANIFEST)
    try:
        e.wait_state("svc", "ready")
        done = exoctl(e, "info")
        assert done.returncode == 0, done
        lines = done.stdout.splitlines()
        assert "{" not in done.stdout and "hostname: test" in [" ".join(line.split()) for line in lines], lines
        assert [" ".join(line.split()) for line in lines if line.startswith("capsules:")] == ["capsules: 1"], lines
        record = json.loads(exoctl(e, "--json", "info").stdout)
        keys = sorted([k for k, v in record.items() if not (isinstance(v, dict) and v)]
                      + [f"{k}.{inner}" for k, v in record.items() if isinstance(v, dict) for inner in v])
        assert [" ".join(line.split()) for line in lines if line.startswith("degraded:")] == ["degraded: -"], lines
        assert [line.split(":")[0] for line in lines] == keys
    finally:
        e.close()
