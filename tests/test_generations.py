"""The generation store (host, temporary directories) and switch / rollback / probation through a
real exo_init (child subreaper, real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exo_init.lib import eventlog
from exo_init.lib.errors import ApiError
from exo_init.pid1.generations import CURRENT, GenerationError, GenerationStore
from exo_init.pid1.statedisk import has_ext_filesystem, root_is_persistent
from exo_init.pid1.switch import boot_manifest
from tests.exo import REPO, ExoInit, manifest_json

PY = sys.executable


def manifest_doc(capsules: dict[str, Any]) -> bytes:
    return manifest_json(capsules).encode()


# --- the store ---------------------------------------------------------------------------------------


def test_store_create_and_switch(tmp_path: Path) -> None:
    store = GenerationStore(tmp_path / "g")
    assert store.current() is None and store.list() == []
    one = store.create(manifest_doc({}), "/a.json")
    two = store.create(manifest_doc({"x": {"argv": ["/bin/true"]}}), "/b.json")
    assert (one.number, two.number) == (1, 2)
    assert store.current() is None, "creating a generation must not switch to it"
    store.set_current(1)
    assert store.current() == 1
    store.set_current(2)
    assert store.current() == 2
    assert os.readlink(tmp_path / "g" / CURRENT) == "2"
    assert [g.number for g in store.list()] == [1, 2]
    assert store.previous(2) == 1 and store.previous(1) is None
    assert two.manifest.read_bytes() == manifest_doc({"x": {"argv": ["/bin/true"]}})
    meta = json.loads((two.path / "meta.json").read_text())
    assert meta["source"] == "/b.json" and meta["created"] > 0 and meta["number"] == 2
    with pytest.raises(GenerationError, match="generation 7 does not exist"):
        store.set_current(7)
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["1", "2", CURRENT]


def test_crash_between_write_and_flip_keeps_old_current(tmp_path: Path) -> None:
    root = tmp_path / "g"
    store = GenerationStore(root)
    store.set_current(store.create(manifest_doc({}), "/a.json").number)
    # What a power cut leaves mid-way: a half-written generation, and a new link not yet renamed.
    half = root / ".tmp-2-999"
    half.mkdir()
    (half / "manifest.json").write_text('{"version": 1, "capsu')
    os.symlink("2", root / ".current-999")
    # and a numbered directory without its meta.json (never produced by rename, but be strict)
    (root / "3").mkdir()
    reopened = GenerationStore(root)
    assert reopened.current() == 1
    assert reopened.numbers() == [1]
    assert not half.exists() and not (root / ".current-999").is_symlink()
    new = reopened.create(manifest_doc({}), "/b.json")
    assert new.number == 4, "a number that was ever on disk is not reused"


def test_dangling_current_is_no_current(tmp_path: Path) -> None:
    root = tmp_path / "g"
    store = GenerationStore(root)
    os.symlink("5", root / CURRENT)
    assert store.current() is None


def test_import_image_once(tmp_path: Path) -> None:
    store = GenerationStore(tmp_path / "g")
    first = store.import_image(manifest_doc({}), "/etc/m.json")
    assert first is not None and first.number == 1 and store.current() == 1
    assert store.import_image(manifest_doc({}), "/etc/m.json") is None, "the same image is imported once"
    store.set_current(store.create(manifest_doc({"a": {"argv": ["/bin/true"]}}), "switch").number)
    assert store.import_image(manifest_doc({}), "/etc/m.json") is None, "a switch is kept across boots"
    new_image = store.import_image(manifest_doc({"b": {"argv": ["/bin/true"]}}), "/etc/m.json")
    assert new_image is not None and new_image.number == 3 and store.current() == 3
    # A switch to what becomes the next image (exosphere-switch) is not imported a second time.
    store.set_current(store.create(manifest_doc({"c": {"argv": ["/bin/true"]}}), "switch").number)
    assert store.import_image(manifest_doc({"c": {"argv": ["/bin/true"]}}), "/etc/m.json") is None
    assert store.numbers() == [1, 2, 3, 4] and store.current() == 4


def test_event_log_append_and_tail(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    for i in range(5):
        eventlog.append(log, {"kind": "test", "i": i})
    with log.open("ab") as f:
        f.write(b'{"torn": ')
    assert [e["i"] for e in eventlog.tail(log, 3)] == [2, 3, 4]
    assert eventlog.tail(tmp_path / "none.jsonl", 3) == []


def test_state_disk_helpers() -> None:
    head = bytearray(2048)
    assert not has_ext_filesystem(bytes(head))
    head[0x438:0x43A] = b"\x53\xef"
    assert has_ext_filesystem(bytes(head))
    assert not root_is_persistent("rootfs / rootfs rw 0 0\nproc /proc proc rw 0 0\n")
    assert root_is_persistent("rootfs / rootfs rw 0 0\n/dev/vda1 / ext4 rw 0 0\n")


# --- switch / rollback / probation through exo_init ---------------------------------------------------


@pytest.fixture
def exo(tmp_path: Path) -> Iterator[ExoInit]:
    e = ExoInit(tmp_path / "exo", {"capsules": {"base": {"argv": ["/bin/sleep", "100"]}}}, cgroups=False)
    yield e
    e.close()


def write(path: Path, capsules: dict[str, Any]) -> Path:
    path.write_bytes(manifest_doc(capsules))
    return path


def test_boot_makes_generation_one(exo: ExoInit) -> None:
    exo.wait_state("base", "ready")
    gens = exo.call("generations")
    assert gens["current"] == 1 and gens["booted"] == 1 and gens["running"] == 1
    assert [g["number"] for g in gens["generations"]] == [1]


def test_malformed_switch_changes_nothing(exo: ExoInit, tmp_path: Path) -> None:
    exo.wait_state("base", "ready")
    pid = exo.status("base")["pid"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "capsules": {"x": ')
    with pytest.raises(ApiError) as info:
        exo.call("switch", target=str(bad))
    assert info.value.name == "InvalidManifest" and "not valid JSON" in info.value.message
    invalid = write(tmp_path / "invalid.json", {"x": {"argv": ["relative/path"]}})
    with pytest.raises(ApiError) as info:
        exo.call("switch", target=str(invalid))
    assert info.value.name == "InvalidManifest" and "argv" in info.value.message
    gens = exo.call("generations")
    assert [g["number"] for g in gens["generations"]] == [1] and gens["current"] == 1
    assert exo.status("base")["pid"] == pid
    with pytest.raises(ApiError) as info:
        exo.call("switch", target="9")
    assert info.value.name == "NoSuchGeneration"


def test_switch_no_try_and_rollback(exo: ExoInit, tmp_path: Path) -> None:
    exo.wait_state("base", "ready")
    base_pid = exo.status("base")["pid"]
    new = write(tmp_path / "two.json", {"base": {"argv": ["/bin/sleep", "100"]},
                                        "extra": {"argv": ["/bin/sleep", "200"]}})
    result = exo.call("switch", target=str(new), **{"try": False})
    assert result["generation"] == 2 and result["added"] == ["extra"] and result["probation"] == 0
    exo.wait_state("extra", "ready")
    assert exo.status("base")["pid"] == base_pid, "an unchanged capsule is left alone"
    assert exo.call("generations")["current"] == 2
    back = exo.call("rollback")
    assert back["generation"] == 1 and back["rolled_back"] == 2 and back["removed"] == ["extra"]
    exo.wait_for(lambda: "extra" not in [s["name"] for s in exo.call("status")], 10, "extra removed")
    gens = exo.call("generations")
    assert gens["current"] == 1 and gens["running"] == 1
    kinds = [e["kind"] for e in exo.call("events")]
    assert kinds[-3:] == ["switch", "switch", "rollback"]


def test_crash_loop_is_rolled_back_within_probation(exo: ExoInit, tmp_path: Path) -> None:
    exo.wait_state("base", "ready")
    new = write(tmp_path / "bad.json", {
        "base": {"argv": ["/bin/sh", "-c", "echo broken; exit 3"], "restart": {"policy": "always", "delay": 0.1}},
    })
    result = exo.call("switch", target=str(new), probation=15)
    assert result["generation"] == 2 and result["probation"] == 15 and result["changed"] == ["base"]
    assert exo.call("generations")["current"] == 1, "on probation, current still names the old generation"

    def rolled_back() -> bool:
        return bool(exo.call("generations")["last_rollback"])

    exo.wait_for(rolled_back, 15, "automatic rollback")
    gens = exo.call("generations")
    assert gens["current"] == 1 and gens["running"] == 1 and gens["probation"] is None
    assert "crash-looping" in gens["last_rollback"]["reason"] and "base" in gens["last_rollback"]["reason"]
    st = exo.wait_state("base", "ready")
    assert st["pid"] is not None
    rollback = [e for e in exo.call("events") if e["kind"] == "rollback"]
    assert rollback and rollback[-1]["automatic"] is True and rollback[-1]["generation"] == 2


def test_not_ready_is_rolled_back_and_good_switch_commits(exo: ExoInit, tmp_path: Path) -> None:
    exo.wait_state("base", "ready")
    never_ready = write(tmp_path / "slow.json", {
        "base": {"argv": ["/bin/sleep", "100"]},
        "slow": {"argv": ["/bin/sleep", "100"], "readiness": {"kind": "file", "path": str(tmp_path / "never")}},
    })
    exo.call("switch", target=str(never_ready), probation=1.0)
    exo.wait_for(lambda: bool(exo.call("generations")["last_rollback"]), 10, "rollback")
    assert "not ready" in exo.call("generations")["last_rollback"]["reason"]
    exo.wait_for(lambda: "slow" not in [s["name"] for s in exo.call("status")], 10, "slow removed")
    good = write(tmp_path / "good.json", {"base": {"argv": ["/bin/sleep", "100"]},
                                          "more": {"argv": ["/bin/sleep", "100"]}})
    result = exo.call("switch", target=str(good), probation=3.0)
    exo.wait_for(lambda: exo.call("generations")["current"] == result["generation"], 10, "commit")
    assert [e["kind"] for e in exo.call("events")][-1] == "commit"
    assert exo.status("more")["state"] == "ready"


def test_exoctl_switch_generations_events(exo: ExoInit, tmp_path: Path) -> None:
    def exoctl(*args: str) -> subprocess.CompletedProcess[str]:
        sock = str(exo.runtime / "control.sock")
        return subprocess.run([PY, "-m", "exo_init.client.exoctl", "--socket", sock, *args],
                              cwd=REPO, capture_output=True, text=True, timeout=30, check=False)

    exo.wait_state("base", "ready")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    r = exoctl("switch", str(bad))
    assert r.returncode == 1 and r.stderr.startswith("exoctl: ") and "not valid JSON" in r.stderr, r
    assert r.stderr.count("\n") == 1, "one clear error line"
    good = write(tmp_path / "good.json", {"base": {"argv": ["/bin/sleep", "100"]},
                                          "more": {"argv": ["/bin/sleep", "100"]}})
    r = exoctl("switch", str(good), "--no-try")
    assert r.returncode == 0 and "generation 2" in r.stdout and "added: more" in r.stdout, r
    r = exoctl("generations")
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and lines[0].split()[0] == "1" and "current" in lines[1] and "booted" in lines[0], r
    r = exoctl("events")
    assert r.returncode == 0 and "switch" in r.stdout, r
    r = exoctl("switch", "42")
    assert r.returncode == 1 and "generation 42 does not exist" in r.stderr, r


def test_boot_manifest_choice(tmp_path: Path) -> None:
    image = tmp_path / "image.json"
    image.write_bytes(manifest_doc({"img": {"argv": ["/bin/true"]}}))
    store = GenerationStore(tmp_path / "g")
    manifest, booted = boot_manifest(store, image, None)
    assert booted == 1 and set(manifest.capsules) == {"img"}, "an empty store: the image is generation 1"
    store.set_current(store.create(manifest_doc({"two": {"argv": ["/bin/true"]}}), "switch").number)
    manifest, booted = boot_manifest(store, image, None)
    assert booted == 2 and set(manifest.capsules) == {"two"}, "current wins over an already imported image"
    manifest, booted = boot_manifest(store, image, 1)
    assert booted == 1 and set(manifest.capsules) == {"img"}, "exo.generation=1"
    assert store.current() == 2, "booting a named generation does not change current"
    manifest, booted = boot_manifest(store, image, 9)
    assert booted == 2, "a missing exo.generation falls back to current"
    (store.root / "2" / "manifest.json").write_text("{")
    manifest, booted = boot_manifest(store, image, None)
    assert booted is None and set(manifest.capsules) == {"img"}, "a broken current: the image manifest"


def test_reload_records_a_generation(exo: ExoInit) -> None:
    exo.wait_state("base", "ready")
    exo.call("reload")
    assert [g["number"] for g in exo.call("generations")["generations"]] == [1], "same content: no new generation"
    exo.write_manifest({"capsules": {"base": {"argv": ["/bin/sleep", "100"]}, "new": {"argv": ["/bin/sleep", "50"]}}})
    done = exo.call("reload")
    assert done["added"] == ["new"]
    gens = exo.call("generations")
    assert gens["current"] == 2 and gens["running"] == 2 and gens["generations"][1]["source"] == str(exo.manifest_path)
    exo.wait_state("new", "ready")
