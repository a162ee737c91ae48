"""The systemd variant of the dev image boots (one boot; the comparison itself is the benchmark,
tests/bench/versus.py): systemd is PID 1, the units `exoctl export-systemd`'s translator wrote from
the same Nix-rendered manifest reach active, the system is running, the units' sandboxes hold, and
systemd passes a capsule the same arguments exo_init does."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from exo_init.client.systemd_units import unit_name
from exo_init.pid1.manifest import Manifest, load_manifest
from qemu.build import EXO_INIT_PLANE, Image, build
from qemu.vm import VMConfig
from tests.machine import Machine
from tests.vm.conftest import BOOT_TIMEOUT, TEST_LAYER

TARGET_REACHED = r"Reached target .*Exosphere capsules"


@pytest.fixture(scope="module")
def systemd_image() -> Image:
    return build([TEST_LAYER], iso=False, init="systemd")


@pytest.fixture(scope="module")
def manifest(systemd_image: Image) -> Manifest:
    return load_manifest(systemd_image.manifest)


@pytest.fixture(scope="module")
def sd(systemd_image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    cfg = VMConfig(kernel=systemd_image.kernel, initrd=systemd_image.initrd, cmdline=systemd_image.cmdline)
    m = Machine("systemd", cfg, tmp_path_factory.mktemp("systemd"))
    with m.running():
        m.wait_for_console_text(TARGET_REACHED, BOOT_TIMEOUT)
        yield m
    print(f"\n[{m.name}] serial log: {m.serial_log}")


def show(m: Machine, units: list[str], props: str) -> dict[str, dict[str, str]]:
    """`systemctl show` of several units: {Id: {property: value}}."""
    out: dict[str, dict[str, str]] = {}
    for block in m.succeed(f"systemctl show -p Id,{props} {' '.join(units)}").strip().split("\n\n"):
        fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        out[fields["Id"]] = fields
    return out


def test_pid1_is_systemd(sd: Machine) -> None:
    assert sd.succeed("readlink /proc/1/exe").strip() == "/usr/lib/systemd/systemd"
    assert sd.execute("pgrep -f '^/usr/bin/python3 -I /usr/sbin/exo_init'").rc == 1


def test_the_manifest_units_reach_active(sd: Machine, manifest: Manifest) -> None:
    wanted = [unit_name(n) for n, c in sorted(manifest.capsules.items()) if c.autostart and n not in EXO_INIT_PLANE]
    assert "exo-agent.service" in wanted and "exo-dbus.service" in wanted and len(wanted) >= 7
    states = show(sd, wanted, "ActiveState,SubState")
    bad = {u: f"{s['ActiveState']}/{s['SubState']}" for u, s in states.items() if s["ActiveState"] != "active"}
    detail = "".join(sd.execute(f"systemctl status --no-pager {u}").out for u in bad)
    assert bad == {}, f"not active: {bad}\n{detail}"
    plane = sd.execute(f"systemctl list-unit-files --no-legend {' '.join(unit_name(n) for n in EXO_INIT_PLANE)}")
    assert plane.out.strip() == "", f"exo_init's own plane is not a systemd unit: {plane.out}"


def test_the_system_is_running(sd: Machine) -> None:
    r = sd.execute("systemctl is-system-running --wait", timeout=120)
    failed = sd.execute("systemctl --failed --no-pager --no-legend").out
    assert r.out.strip() == "running", f"{r.out.strip()}; failed units:\n{failed}"


def test_the_sandboxes_hold(sd: Machine) -> None:
    """The scope options as exo_init's grants mean them: the console shell is root without any
    capability, the compositor keeps only CAP_SYS_TTY_CONFIG (bit 26), no new privileges."""
    def status(unit: str) -> dict[str, str]:
        pid = sd.succeed(f"systemctl show -p MainPID --value {unit}").strip()
        text = sd.succeed(f"cat /proc/{pid}/status")
        return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}

    console, compositor = status("exo-console.service"), status("exo-nexquelium.service")
    assert console["Uid"].split()[0] == "0" and int(console["CapEff"], 16) == 0 and console["NoNewPrivs"] == "1"
    assert int(compositor["CapEff"], 16) == 1 << 26 and int(compositor["CapBnd"], 16) == 1 << 26


def test_systemd_passes_the_arguments_exo_init_passes(sd: Machine, manifest: Manifest) -> None:
    """The translator's quoting, read back by systemd itself: spaces, %, $, a lone ;, backslashes,
    quotes and an empty argument arrive as the manifest has them."""
    sd.succeed("systemctl start exo-argv-probe.service")
    out = sd.succeed("journalctl -u exo-argv-probe.service -o cat --no-pager")
    printed = [line for line in out.splitlines() if line.startswith("[")]
    assert printed, out
    assert json.loads(printed[-1]) == list(manifest.capsules["argv-probe"].argv[3:])


def test_the_boot_figures_are_there(sd: Machine) -> None:
    """What tests/bench/versus.py reads: the manager's and the units' monotonic timestamps."""
    manager = sd.succeed("systemctl show -p UserspaceTimestampMonotonic,FinishTimestampMonotonic")
    values = dict(line.split("=", 1) for line in manager.split())
    assert 0 < int(values["UserspaceTimestampMonotonic"]) < int(values["FinishTimestampMonotonic"])
