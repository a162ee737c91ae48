"""exoctl as a person runs it, against a real exo_init on the host (child-subreaper mode): its
usage errors are exit status 2 with argparse's message, and the `restart`, `reload` and `rollback`
verbs do what they say, print what they did, and fail with one line and the documented status."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from exo_init.pid1.control import MAX_LINES
from tests.exo import REPO, ExoInit


@pytest.fixture
def exo(tmp_path: Path) -> Iterator[ExoInit]:
    e = ExoInit(tmp_path / "exo", {"capsules": {"svc": {"argv": ["/bin/sleep", "100"]}}}, cgroups=False)
    e.wait_state("svc", "ready")
    yield e
    e.close()


def exoctl(exo: ExoInit | None, *args: str) -> subprocess.CompletedProcess[str]:
    sock = ["--socket", str(exo.runtime / "control.sock")] if exo is not None else []
    return subprocess.run([sys.executable, "-m", "exo_init.client.exoctl", *sock, *args], capture_output=True,
                          text=True, timeout=60, check=False, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_usage_errors_are_status_2_and_change_nothing(exo: ExoInit) -> None:
    pid = exo.status("svc")["pid"]
    for args, message in [
        ((), "the following arguments are required: command"),
        (("bogus",), "argument command: invalid choice: 'bogus'"),
        (("restart",), "the following arguments are required: name"),
        (("logs", "svc", "-n", "many"), "argument -n/--lines: invalid int value: 'many'"),
        (("--via", "pigeon", "status"), "argument --via: invalid choice: 'pigeon'"),
        (("restart", "svc", "extra"), "unrecognized arguments: extra"),
    ]:
        done = exoctl(exo, *args)
        assert done.returncode == 2 and done.stdout == "", (args, done)
        error = rf"usage: exoctl .*\nexoctl( \w+)?: error: {re.escape(message)}[^\n]*\n"
        assert re.fullmatch(error, done.stderr, re.S), done
    # A request exo_init refuses as malformed (BadRequest) is a usage error too.
    done = exoctl(exo, "logs", "svc", "-n", str(MAX_LINES + 1))
    assert (done.returncode, done.stdout) == (2, ""), done
    assert done.stderr == f'exoctl: "lines" must be an integer from 0 to {MAX_LINES}\n'
    assert exo.status("svc")["pid"] == pid


def test_restart_is_a_new_process_and_names_its_state(exo: ExoInit) -> None:
    before = exo.status("svc")
    done = exoctl(exo, "restart", "svc")
    assert done.returncode == 0 and done.stderr == "", done
    assert done.stdout in {f"svc: {state}\n" for state in ("stopping", "stopped", "starting", "ready")}, done.stdout
    after = exo.wait_state("svc", "ready")
    assert after["pid"] != before["pid"], "restart ran a new process"
    assert [s for s, _ in exo.transitions("svc")][-3:] == ["stopped", "starting", "ready"]
    done = exoctl(exo, "restart", "nope")
    assert (done.returncode, done.stdout, done.stderr) == (4, "", "exoctl: no capsule named 'nope'\n")
    assert exo.status("svc")["pid"] == after["pid"]


def test_reload_applies_the_manifest_and_a_bad_one_changes_nothing(exo: ExoInit) -> None:
    pid = exo.status("svc")["pid"]
    done = exoctl(exo, "reload")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), "nothing changed: nothing to say"
    exo.write_manifest({"capsules": {"svc": {"argv": ["/bin/sleep", "100"]}, "extra": {"argv": ["/bin/sleep", "200"]}}})
    done = exoctl(exo, "reload")
    assert (done.returncode, done.stdout, done.stderr) == (0, "added: extra\n", ""), done
    exo.wait_state("extra", "ready")
    assert exo.status("svc")["pid"] == pid, "an unchanged capsule is left alone"
    exo.write_manifest({"capsules": {"svc": {"argv": ["/bin/sleep", "100"]}, "extra": {"argv": ["/bin/sleep", "200"]},
                                     "bad": {"argv": ["relative/path"]}}})
    done = exoctl(exo, "reload")
    assert (done.returncode, done.stdout) == (1, ""), "a capsule it could not load: the reload did not all succeed"
    assert done.stderr == "exoctl: capsule 'bad': argv[0]: must be an absolute path, got 'relative/path'\n"
    assert exo.status("svc")["pid"] == pid and exo.status("extra")["state"] == "ready", "the others are applied"
    done = exoctl(exo, "--json", "reload")
    assert done.returncode == 1 and json.loads(done.stdout)["errors"], "--json changes the output, not the status"
    (exo.manifest_path).write_text("{")
    done = exoctl(exo, "reload")
    assert (done.returncode, done.stdout) == (1, "") and done.stderr.startswith("exoctl: "), done
    assert done.stderr.count("\n") == 1 and "JSON" in done.stderr, done.stderr
    assert exo.status("svc")["pid"] == pid and exo.status("extra")["state"] == "ready"


def test_rollback_goes_back_one_generation(exo: ExoInit, tmp_path: Path) -> None:
    done = exoctl(exo, "rollback")
    assert done.returncode == 1 and done.stdout == "" and done.stderr.startswith("exoctl: "), done
    assert done.stderr.count("\n") == 1
    two = tmp_path / "two.json"
    two.write_text(json.dumps({"version": 1, "hostname": "test", "capsules": {
        "svc": {"argv": ["/bin/sleep", "100"], "capabilities": {"host": True}},
        "extra": {"argv": ["/bin/sleep", "200"], "capabilities": {"host": True}}}}))
    done = exoctl(exo, "switch", str(two), "--no-try")
    assert (done.returncode, done.stdout) == (0, "generation 2\nadded: extra\n"), done
    exo.wait_state("extra", "ready")
    done = exoctl(exo, "rollback")
    assert (done.returncode, done.stdout, done.stderr) == (0, "generation 1\nremoved: extra\n", ""), done
    exo.wait_for(lambda: "extra" not in [s["name"] for s in exo.call("status")], 10, "extra removed")
    gens = exo.call("generations")
    assert gens["current"] == 1 and gens["running"] == 1
    assert exo.status("svc")["state"] == "ready"
