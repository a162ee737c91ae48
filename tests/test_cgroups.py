"""CgroupTree.prepare's choice of what to write, on a directory standing in for a cgroup leaf
(the host's cgroup2 has no controllers to delegate; the booted image tests the real kernel's
answers in tests/vm/test_quotas.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exo_init.pid1.cgroups import CgroupTree, QuotaError
from exo_init.pid1.manifest import Quotas


def tree(tmp_path: Path, controllers: set[str]) -> CgroupTree:
    t = CgroupTree(tmp_path)
    t.capsules.mkdir()
    t.controllers = frozenset(controllers)
    return t


def files(leaf: Path) -> dict[str, str]:
    return {p.name: p.read_text().strip() for p in leaf.iterdir()}


def test_declared_limits_defaults_and_resets(tmp_path: Path) -> None:
    t = tree(tmp_path, {"cpu", "memory", "pids"})
    leaf = t.prepare("svc", Quotas(memory_max=str(64 << 20), cpu_max="20000 100000"), Quotas(pids_max="1024"))
    got = files(leaf)
    assert got["memory.max"] == str(64 << 20) and got["cpu.max"] == "20000 100000" and got["pids.max"] == "1024"
    # The next run declares nothing: the old limits do not outlive the manifest that set them.
    got = files(t.prepare("svc", Quotas(), Quotas(memory_max="1000")))
    assert (got["memory.max"], got["cpu.max"], got["pids.max"]) == ("1000", "max", "max")
    assert "io.weight" not in got  # no io controller: nothing written there


def test_a_declared_limit_needs_its_controller_a_default_does_not(tmp_path: Path) -> None:
    t = tree(tmp_path, {"cpu"})
    with pytest.raises(QuotaError, match="the pids controller is not available"):
        t.prepare("svc", Quotas(pids_max="16"))
    leaf = t.prepare("other", Quotas(), Quotas(pids_max="1024", memory_max="1000"))
    assert "pids.max" not in files(leaf) and "memory.max" not in files(leaf)


def test_only_what_differs_from_the_leaf_is_written(tmp_path: Path) -> None:
    """A new leaf holds the kernel's defaults; a reused one what this tree wrote last: a restart
    with the same limits writes nothing. A leaf this tree did not make gets every reset."""
    t = tree(tmp_path, {"cpu", "memory", "pids", "io"})
    leaf = t.prepare("svc", Quotas())
    assert files(leaf) == {}, "a new leaf already holds the defaults"
    leaf = t.prepare("svc", Quotas(cpu_max="20000 100000"), Quotas(pids_max="1024"))
    assert files(leaf) == {"cpu.max": "20000 100000", "pids.max": "1024"}
    (leaf / "cpu.max").unlink()  # (a restart with the same limits must not write it again)
    assert files(t.prepare("svc", Quotas(cpu_max="20000 100000"), Quotas(pids_max="1024"))) == {"pids.max": "1024"}
    stranger = CgroupTree(tmp_path)  # e.g. a leaf left from before this tree: what it holds is unknown
    stranger.controllers = frozenset({"cpu", "memory", "pids", "io"})
    assert set(files(stranger.prepare("svc", Quotas()))) >= {"cpu.max", "memory.max", "pids.max", "io.weight"}


def test_an_io_max_device_no_longer_declared_is_set_back_to_max(tmp_path: Path) -> None:
    """io.max holds a line per device: a device's limit the next run does not declare is written
    back to max (the kernel then drops the line), once; a leaf this tree did not make is read. (The
    stand-in file keeps only the last write: the kernel's keeps every device's line.)"""
    t = tree(tmp_path, {"io"})
    leaf = t.prepare("svc", Quotas(io_max=("7:0 rbps=1048576", "7:1 wbps=1024")))
    leaf = t.prepare("svc", Quotas(io_max=("7:1 wbps=1024",)))
    assert files(leaf)["io.max"] == "7:0 rbps=max wbps=max riops=max wiops=max"
    (leaf / "io.max").unlink()
    assert "io.max" not in files(t.prepare("svc", Quotas(io_max=("7:1 wbps=1024",)))), "reset once, not again"
    (leaf / "io.max").write_text("8:0 rbps=2048 wbps=max riops=max wiops=max\n")  # as the kernel shows it
    stranger = CgroupTree(tmp_path)
    stranger.controllers = frozenset({"io"})
    assert files(stranger.prepare("svc", Quotas()))["io.max"] == "8:0 rbps=max wbps=max riops=max wiops=max"
