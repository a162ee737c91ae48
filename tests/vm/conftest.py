"""Fixtures that build the test image and boot it in QEMU."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from qemu.arch import Arch
from qemu.build import Image, Layer, build
from qemu.vm import VMConfig
from tests.machine import Machine

GUEST = Path(__file__).resolve().parent.parent / "guest"
TEST_LAYER = Layer(
    "test",
    nix_extra=(GUEST / "capsules.nix",),
    files=((GUEST / "agent.py", "/usr/lib/exosphere/test/agent.py"),
           (GUEST / "hogs.py", "/usr/lib/exosphere/test/hogs.py"),
           (GUEST / "bench_spawn.py", "/usr/lib/exosphere/test/bench_spawn.py"),
           (GUEST / "echo.py", "/usr/lib/exosphere/test/echo.py"),
           (GUEST / "viewer.py", "/usr/lib/exosphere/test/viewer.py"),
           (GUEST / "scope_probe.py", "/usr/lib/exosphere/test/scope_probe.py"),
           (GUEST / "ready.py", "/usr/lib/exosphere/test/ready.py"),
           (GUEST / "bench_versus.py", "/usr/lib/exosphere/test/bench_versus.py"),
           (GUEST / "hostile.py", "/usr/lib/exosphere/test/hostile.py"),
           (GUEST / "bench_wasm.py", "/usr/lib/exosphere/test/bench_wasm.py"),
           (GUEST / "bench_corecaps.py", "/usr/lib/exosphere/test/bench_corecaps.py"),
           (GUEST / "wasm", "/usr/lib/exosphere/test/wasm"),
           (GUEST / "crush", "/usr/lib/exosphere/test/crush")),
)
BOOT_TIMEOUT = float(os.environ.get("EXO_BOOT_TIMEOUT", "300"))  # (a host loaded by other work: more)
# pytest-timeout's bound for one booted test, its fixtures' boots included (the slowest took ~140 s
# under load): its own waits (a boot, BOOT_TIMEOUT; commands, 60-300 s) fit inside it and fail first
# with what they saw. A test with a larger budget of its own says so with @pytest.mark.timeout.
VM_TEST_TIMEOUT = 3 * BOOT_TIMEOUT
# The first test needing an image also builds it (a cold build with downloads: minutes): its bound
# has this much more per image it builds.
IMAGE_BUILD_TIMEOUT = 1800.0
IMAGES = ("test_image", "disk_root_image", "arm64_image", "arm64_product_image", "product_image")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the VM tests, and run the modules on the shared machine before
    the modules that boot their own: the shared machine stops after its last user (see `machine`),
    so the boot-heavy modules run beside no idle guest. Under TCG two guests share two host cores,
    and a third, idle one (its dashboard redraws every second) made their boots take 73-94 s
    instead of ~30 s."""
    here = Path(__file__).resolve().parent
    for item in items:  # (this hook sees every collected item, not only this directory's)
        if here in Path(item.fspath).resolve().parents:
            item.add_marker(pytest.mark.vm)
    on_shared = {item.fspath for item in items if "shared_machine" in getattr(item, "fixturenames", ())}

    def phase(item: pytest.Item) -> int:
        if here not in Path(item.fspath).resolve().parents:
            return 0
        return 1 if item.fspath in on_shared else 2

    items.sort(key=phase)  # (stable: each module's tests stay together and in order)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Each booted test's bound (pytest-timeout), once -k/-m have chosen what runs: the first test
    that needs an image builds it."""
    built: set[str] = set()
    for item in session.items:
        if item.get_closest_marker("vm") is None:
            continue
        builds = [name for name in IMAGES if name in getattr(item, "fixturenames", ()) and name not in built]
        built.update(builds)
        own = item.get_closest_marker("timeout")
        bound = float(own.args[0]) if own is not None else VM_TEST_TIMEOUT
        item.add_marker(pytest.mark.timeout(bound + IMAGE_BUILD_TIMEOUT * len(builds)), append=False)


@pytest.fixture(scope="session")
def test_image() -> Image:
    if os.geteuid() != 0:
        pytest.fail("the VM tests build the image, which needs root")
    return build([TEST_LAYER], iso=False)


@pytest.fixture(scope="session")
def disk_root_image(test_image: Image) -> Image:
    """The test image with its disk-root variant (stage-1 initramfs + ext4 root disk)."""
    return build([TEST_LAYER], iso=False, disk_root=True)


@pytest.fixture(scope="session")
def arm64_image() -> Image:
    """The test image for arm64 (an extract-only bootstrap, qemu/foreign.py), booted under TCG."""
    if os.geteuid() != 0:
        pytest.fail("the VM tests build the image, which needs root")
    return build([TEST_LAYER], iso=False, arch=Arch.ARM64)


@pytest.fixture(scope="session")
def arm64_product_image() -> Image:
    """The arm64 image a user boots (no test layer), with its UEFI ISO."""
    if os.geteuid() != 0:
        pytest.fail("the VM tests build the image, which needs root")
    return build([], iso=True, arch=Arch.ARM64)


@pytest.fixture(scope="session")
def product_image() -> Image:
    """The image a user boots (no test layer), with its ISO."""
    return build([], iso=True)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    path = Path(os.environ.get("EXO_ARTIFACTS", Path(__file__).resolve().parents[2] / "tests" / "artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


MachineFactory = Callable[..., Machine]


@contextlib.contextmanager
def machines(image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MachineFactory]:
    """A factory that boots fresh test VMs (to "boot complete"); they are stopped when the block ends.
    Idle VMs are not free under TCG (the dashboard redraws every second), so each fixture scope
    stops its own machines rather than keeping them all to the end of the session."""
    booted: list[Machine] = []

    def factory(name: str = "exo", **vm: object) -> Machine:
        cfg = VMConfig(**{"kernel": image.kernel, "initrd": image.initrd, "cmdline": image.cmdline,
                          "arch": image.arch, **vm})  # type: ignore[arg-type]
        m = Machine(name, cfg, tmp_path_factory.mktemp(name))
        booted.append(m)
        m.start()
        m.wait_for_console_text(r"boot complete: .*\n", BOOT_TIMEOUT)
        return m

    try:
        yield factory
    finally:
        for m in booted:
            m.stop()
            print(f"\n[{m.name}] serial log: {m.serial_log}")


@pytest.fixture
def make_machine(test_image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MachineFactory]:
    """Boot VMs for one test; they are stopped when the test ends."""
    with machines(test_image, tmp_path_factory) as factory:
        yield factory


@pytest.fixture(scope="module")
def make_module_machine(test_image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MachineFactory]:
    """Boot VMs shared by one test module; they are stopped when the module ends."""
    with machines(test_image, tmp_path_factory) as factory:
        yield factory


@pytest.fixture(scope="session")
def shared_machine(test_image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    with machines(test_image, tmp_path_factory) as factory:
        yield factory("exo")


@pytest.fixture
def machine(shared_machine: Machine, request: pytest.FixtureRequest) -> Iterator[Machine]:
    """One booted VM shared by the non-destructive tests; each test gets the full global-timeout
    budget. It stops after the last test that uses it, not at the end of the session."""
    shared_machine.renew_deadline()
    yield shared_machine
    users = [item for item in request.session.items if "shared_machine" in getattr(item, "fixturenames", ())]
    if users and request.node is users[-1]:
        shared_machine.stop()
