"""The image builder's content cache and lock (README: "The image is built on first use and cached
by content"; qemu/build.py: "Concurrent builds wait for each other").

* the cache key (qemu/build.py image_key) of copies of the repository's image inputs: the same
  content gives the same key wherever it is, and what is not an input (README, tests, byte-code)
  changes nothing; each input changed changes it;
* the lock (build_lock) taken by real processes: a second builder waits, says so, and goes on
  when the first is done, or dies.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from qemu.arch import Arch
from qemu.build import Layer, image_key
from tests.exo import REPO

INPUTS = ("exo_init", "corecaps", "crush", "qemu", "dbus")
BASE = Path("/cache/base-0123456789abcdef")
MANIFEST = '{"version": 1, "capsules": {}}\n'


def copy_repo(dest: Path) -> Path:
    """The repository's image inputs, a file that is not one, and a layer's files."""
    for name in INPUTS:
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "README.md").write_text("# Exosphere\n")
    (dest / "tests" / "guest" / "wasm").mkdir(parents=True)
    (dest / "tests" / "guest" / "agent.py").write_text("print('agent')\n")
    (dest / "tests" / "guest" / "wasm" / "a.wat").write_text("(module)\n")
    return dest


def layer(root: Path, agent_dst: str = "/usr/lib/exosphere/test/agent.py") -> Layer:
    guest = root / "tests" / "guest"
    return Layer("test", files=((guest / "agent.py", agent_dst), (guest / "wasm", "/usr/lib/exosphere/test/wasm")))


def key(root: Path, *, manifest: str = MANIFEST, base: Path = BASE, arch: Arch = Arch.AMD64, init: str = "exo_init",
        layers: tuple[Layer, ...] | None = None) -> str:
    return image_key(root, base, manifest, (layer(root),) if layers is None else layers, arch=arch, init=init)


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return (copy_repo(tmp_path_factory.mktemp("one") / "repo"),
            copy_repo(tmp_path_factory.mktemp("two") / "somewhere" / "else"))


def test_the_same_content_anywhere_is_the_same_key(copies: tuple[Path, Path]) -> None:
    one, two = copies
    assert key(one) == key(two), "the key is the content, not where the repository or the layer's files are"
    assert key(REPO, layers=()) == key(one, layers=()), "a copy of the repository: the same key"
    assert key(one) == key(one), "the same inputs, the same key"


def test_what_is_not_an_input_changes_nothing(tmp_path: Path) -> None:
    root = copy_repo(tmp_path / "repo")
    before = key(root)
    (root / "README.md").write_text("# Exosphere, edited\n")
    (root / "tests" / "test_new.py").write_text("def test_x() -> None: ...\n")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(root / "exo_init"), str(root / "tests" / "guest")],
                   check=True, timeout=300)
    assert list((root / "exo_init").rglob("__pycache__")), "byte-code was written"
    assert key(root) == before


Change = Callable[[Path], object]


def edit(rel: str) -> Change:
    def change(root: Path) -> None:
        with open(root / rel, "a") as f:
            f.write("\n# edited\n")
    return change


def add(rel: str) -> Change:
    return lambda root: (root / rel).write_text("x = 1\n")


def rename(rel: str, to: str) -> Change:
    return lambda root: (root / rel).rename(root / to)


CHANGES: dict[str, Change] = {
    "exo_init source": edit("exo_init/pid1/supervisor.py"),
    "a new corecaps module": add("corecaps/extra.py"),
    "a CoreCap program (CRUSH, compiled into the image)": edit("corecaps/crush/ls.py"),
    "a crush module renamed": rename("crush/vm.py", "crush/vm2.py"),
    "the builder": edit("qemu/build.py"),
    "the stage-1 init": edit("qemu/stage1-init"),
    "the module list": edit("qemu/kmods.py"),
    "the D-Bus policy": edit("dbus/org.exosphere.Core1.conf"),
    "a layer file": edit("tests/guest/agent.py"),
    "a file in a layer directory": add("tests/guest/wasm/b.wat"),
}


def test_each_input_changes_the_key(tmp_path: Path) -> None:
    pristine = copy_repo(tmp_path / "pristine")
    before = key(pristine)
    keys = {before: "before"}
    for i, (what, change) in enumerate(CHANGES.items()):
        root = shutil.copytree(pristine, tmp_path / f"changed{i}", symlinks=True)
        assert key(root) == before
        change(root)
        k = key(root)
        assert k not in keys, f"{what}: the key did not change (same as {keys.get(k)})"
        keys[k] = what
    for what, k in {
        "the manifest": key(pristine, manifest=MANIFEST.replace("{}", '{"web": {}}')),
        "the base": key(pristine, base=BASE.with_name("base-fedcba9876543210")),
        "the init (systemd variant)": key(pristine, init="systemd"),
        "the architecture (its wheels)": key(pristine, arch=Arch.ARM64),
        "where a layer file goes": key(pristine, layers=(layer(pristine, "/usr/lib/exosphere/test/agent2.py"),)),
        "no layer": key(pristine, layers=()),
    }.items():
        assert k not in keys, f"{what}: the key did not change (same as {keys.get(k)})"
        keys[k] = what


def test_the_cross_build_is_an_input_of_the_arm64_image_only(tmp_path: Path) -> None:
    """arm64's pywayland is built by qemu/cross.py (amd64's is PyPI's wheel): a change to it rebuilds
    the arm64 image, not the amd64 one."""
    root = copy_repo(tmp_path / "repo")
    before = {arch: key(root, arch=arch) for arch in Arch}
    edit("qemu/cross.py")(root)
    assert key(root, arch=Arch.ARM64) != before[Arch.ARM64]
    assert key(root, arch=Arch.AMD64) == before[Arch.AMD64]


# --- the lock --------------------------------------------------------------------------------------------

BUILDER = ("import sys, time\nfrom pathlib import Path\nfrom qemu.build import build_lock\n"
           "with build_lock(Path(sys.argv[1])):\n"
           "    print(f'building at {time.monotonic()}', flush=True)\n"
           "    sys.stdin.readline()  # (the test says when this build is done)\n"
           "    print(f'releasing at {time.monotonic()}', flush=True)\n"
           "print('done', flush=True)\n")


class Builder:
    def __init__(self, cache: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", BUILDER, str(cache)], cwd=REPO, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env={**os.environ, "PYTHONPATH": str(REPO)})
        self.out = {"stdout": b"", "stderr": b""}

    def wait_for(self, stream: str, text: str, timeout: float = 60.0) -> None:
        """Until `text` is in the builder's stdout or stderr; fails after `timeout` with what it said."""
        pipe = getattr(self.proc, stream)
        end = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(pipe, selectors.EVENT_READ)
            while text.encode() not in self.out[stream]:
                left = end - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise AssertionError(f"builder did not say {text!r} within {timeout:g} s: {self.out}")
                chunk = os.read(pipe.fileno(), 4096)
                if not chunk:
                    raise AssertionError(f"builder ended ({self.proc.wait()}) before saying {text!r}: {self.out}")
                self.out[stream] += chunk

    def said(self, stream: str) -> bytes:
        """What it said so far, without waiting."""
        pipe = getattr(self.proc, stream)
        with selectors.DefaultSelector() as sel:
            sel.register(pipe, selectors.EVENT_READ)
            while sel.select(0):
                chunk = os.read(pipe.fileno(), 4096)
                if not chunk:
                    break
                self.out[stream] += chunk
        return self.out[stream]

    def wait_until_blocked(self, timeout: float = 60.0) -> None:
        """Until the kernel lists this builder as waiting for a lock (a `->` line of /proc/locks)."""
        end = time.monotonic() + timeout
        while True:
            locks = Path("/proc/locks").read_text()
            if any(line.split()[1] == "->" and line.split()[5] == str(self.proc.pid) for line in locks.splitlines()):
                return
            if time.monotonic() > end:
                raise AssertionError(f"builder {self.proc.pid} not waiting for a lock within {timeout:g} s: "
                                     f"{self.out}\n/proc/locks:\n{locks}")
            time.sleep(0.02)

    def finish(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def moment(builder: Builder, what: str) -> float:
    """When (CLOCK_MONOTONIC, the same in every process) the builder said `what`."""
    line = next(x for x in builder.out["stdout"].decode().splitlines() if x.startswith(what))
    return float(line.rsplit(" ", 1)[1])


def test_a_second_builder_waits_for_the_first(tmp_path: Path) -> None:
    first, second = Builder(tmp_path), None
    try:
        first.wait_for("stdout", "building")
        second = Builder(tmp_path)
        second.wait_for("stderr", f"waiting for another build to finish (lock {tmp_path / '.lock'})")
        second.wait_until_blocked()
        assert b"building" not in second.said("stdout") and second.proc.poll() is None, "it waits"
        first.finish()
        first.wait_for("stdout", "done")
        second.wait_for("stdout", "building")
        second.finish()
        assert second.proc.wait(60) == 0 and first.proc.wait(60) == 0
        second.wait_for("stdout", "done")
        released, entered = moment(first, "releasing"), moment(second, "building")
        assert entered > released, f"the second build began {released - entered:.3f} s before the first ended"
    finally:
        first.close()
        if second is not None:
            second.close()


def test_a_builder_that_dies_releases_the_lock(tmp_path: Path) -> None:
    first, second = Builder(tmp_path), None
    try:
        first.wait_for("stdout", "building")
        second = Builder(tmp_path)
        second.wait_for("stderr", "waiting for another build to finish")
        first.proc.send_signal(signal.SIGKILL)
        second.wait_for("stdout", "building")
        second.finish()
        assert second.proc.wait(60) == 0
    finally:
        first.close()
        if second is not None:
            second.close()
