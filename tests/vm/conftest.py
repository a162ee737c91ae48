"""Fixtures that build the test image and boot it in QEMU."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from qemu.build import KERNEL_CMDLINE, Image, Layer, build
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
           (GUEST / "scope_probe.py", "/usr/lib/exosphere/test/scope_probe.py")),
)
BOOT_TIMEOUT = 300.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:  # (this hook sees every collected item, not only this directory's)
        if here in Path(item.fspath).resolve().parents:
            item.add_marker(pytest.mark.vm)


@pytest.fixture(scope="session")
def test_image() -> Image:
    if os.geteuid() != 0:
        pytest.fail("the VM tests build the image, which needs root")
    return build([TEST_LAYER], iso=False)


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


@pytest.fixture(scope="session")
def make_machine(test_image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MachineFactory]:
    """Boot a fresh test VM (to "boot complete"); every machine is stopped at the end."""
    machines: list[Machine] = []

    def factory(name: str = "exo", **vm: object) -> Machine:
        cfg = VMConfig(**{"kernel": test_image.kernel, "initrd": test_image.initrd,
                          "cmdline": KERNEL_CMDLINE, **vm})  # type: ignore[arg-type]
        m = Machine(name, cfg, tmp_path_factory.mktemp(name))
        machines.append(m)
        m.start()
        m.wait_for_console_text(r"boot complete: .*\n", BOOT_TIMEOUT)
        return m

    yield factory
    for m in machines:
        m.stop()
        sys_log = m.serial_log
        print(f"\n[{m.name}] serial log: {sys_log}")


@pytest.fixture(scope="session")
def shared_machine(make_machine: MachineFactory) -> Machine:
    return make_machine("exo")


@pytest.fixture
def machine(shared_machine: Machine) -> Machine:
    """One booted VM shared by the non-destructive tests; each test gets the full global-timeout budget."""
    shared_machine.renew_deadline()
    return shared_machine
