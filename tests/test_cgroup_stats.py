"""CgroupTree.stats on a directory standing in for a cgroup leaf: cpu.stat read every time, the
other figures at most once per STATS_TTL, and dropped when exo_init writes to the cgroup or finds it
empty."""

from __future__ import annotations

from pathlib import Path

from exo_init.pid1.cgroups import CgroupTree


def test_stats_reads_cpu_every_time_and_the_rest_once_per_ttl(tmp_path: Path) -> None:
    tree = CgroupTree(tmp_path)
    leaf = tree.path("svc")
    leaf.mkdir(parents=True)
    (leaf / "cpu.stat").write_text("usage_usec 100\nnr_throttled 0\n")
    (leaf / "memory.current").write_text("5\n")
    (leaf / "cgroup.freeze").write_text("0\n")
    first = tree.stats("svc")
    (leaf / "cpu.stat").write_text("usage_usec 250\nnr_throttled 3\n")
    (leaf / "memory.current").write_text("7\n")
    second = tree.stats("svc")
    assert (first.cpu_usage_usec, first.memory_current) == (100, 5)
    assert (second.cpu_usage_usec, second.cpu_nr_throttled, second.memory_current) == (250, 3, 5)
    tree.freeze("svc", True)  # exo_init wrote to the cgroup: what it shows is read again
    assert tree.stats("svc").memory_current == 7
    assert tree.stats("missing").memory_current == 0  # (a leaf that is gone reads as zeros)


def test_a_cgroup_found_empty_shows_its_figures_afresh(tmp_path: Path) -> None:
    """The booted fork-storm drill saw a stopped capsule with 54 pids: figures read while the storm
    was being killed, still within their STATS_TTL when the stop was reported."""
    tree = CgroupTree(tmp_path)
    leaf = tree.path("storm")
    leaf.mkdir(parents=True)
    (leaf / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    (leaf / "pids.current").write_text("54\n")
    assert tree.stats("storm").pids_current == 54
    (leaf / "pids.current").write_text("0\n")
    assert tree.populated("storm") and tree.stats("storm").pids_current == 54  # (still within the TTL)
    (leaf / "cgroup.events").write_text("populated 0\nfrozen 0\n")
    assert not tree.populated("storm")
    assert tree.stats("storm").pids_current == 0
