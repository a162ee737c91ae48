"""The network capsule's pure logic (exo_init.system.network) and the system bus launcher (exo_init.system.sysbus):
configuration, udhcpc events, resolv.conf, link discovery, machine id. No netlink here: the VM
tests (tests/vm/test_control.py) configure a real link."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from exo_init.system.network import (
    ConfigError,
    Lease,
    find_ethernet,
    hook_script,
    lease_from_hook,
    resolv_conf,
    static_config,
    status_text,
    udhcpc_argv,
)
from exo_init.system.sysbus import ensure_machine_id, valid_machine_id

REPO = Path(__file__).resolve().parent.parent


def test_no_address_means_dhcp() -> None:
    assert static_config({}, "eth0") is None
    assert static_config({"EXO_NET_ADDRESS": "  "}, "eth0") is None


def test_static_configuration() -> None:
    lease = static_config({"EXO_NET_ADDRESS": "192.168.1.10/24", "EXO_NET_GATEWAY": "192.168.1.1",
                           "EXO_NET_DNS": "192.168.1.1, 9.9.9.9", "EXO_NET_SEARCH": "example.org lan"}, "eth1")
    assert lease == Lease(interface="eth1", address="192.168.1.10", prefixlen=24, routers=("192.168.1.1",),
                          dns=("192.168.1.1", "9.9.9.9"), search=("example.org", "lan"))
    assert lease.broadcast == "192.168.1.255"
    assert status_text(lease) == "eth1 192.168.1.10/24 via 192.168.1.1"


@pytest.mark.parametrize(("env", "message"), [
    ({"EXO_NET_ADDRESS": "192.168.1.10"}, "EXO_NET_ADDRESS: '192.168.1.10' needs a prefix length"),
    ({"EXO_NET_ADDRESS": "300.1.1.1/24"}, "EXO_NET_ADDRESS: '300.1.1.1/24' is not an IPv4 address"),
    ({"EXO_NET_ADDRESS": "10.0.0.2/8", "EXO_NET_GATEWAY": "192.168.1.1"},
     "EXO_NET_GATEWAY: 192.168.1.1 is not in 10.0.0.0/8"),
    ({"EXO_NET_ADDRESS": "10.0.0.2/8", "EXO_NET_DNS": "10.0.0.1 bogus"}, "EXO_NET_DNS: 'bogus' is not an IPv4"),
    ({"EXO_NET_GATEWAY": "10.0.0.1"}, "EXO_NET_GATEWAY is set but EXO_NET_ADDRESS"),
])
def test_bad_static_configuration_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        static_config(env, "eth0")
    assert str(err.value).startswith(message), str(err.value)


def test_lease_from_a_udhcpc_bound_event() -> None:
    # What QEMU's user network hands out, as busybox udhcpc exports it to its script.
    event = {"action": "bound", "interface": "eth0", "ip": "10.0.2.15", "mask": "24", "subnet": "255.255.255.0",
             "router": "10.0.2.2", "dns": "10.0.2.3", "lease": "86400", "serverid": "10.0.2.2"}
    lease = lease_from_hook(event)
    assert lease == Lease(interface="eth0", address="10.0.2.15", prefixlen=24, routers=("10.0.2.2",),
                          dns=("10.0.2.3",), seconds=86400, source="dhcp")
    assert status_text(lease) == "eth0 10.0.2.15/24 via 10.0.2.2"
    # Older udhcpc: only the dotted netmask.
    del event["mask"]
    assert lease_from_hook({**event, "subnet": "255.255.0.0"}).prefixlen == 16
    assert lease_from_hook({**event, "domain": "example.org"}).search == ("example.org",)


def test_a_bad_lease_is_an_error() -> None:
    with pytest.raises(ConfigError, match="udhcpc ip: 'x' is not an IPv4 address"):
        lease_from_hook({"ip": "x", "mask": "24"})
    with pytest.raises(ConfigError, match="udhcpc subnet"):
        lease_from_hook({"ip": "10.0.2.15", "subnet": "255.0.255.0"})


def test_resolv_conf() -> None:
    lease = Lease(interface="eth0", address="10.0.2.15", prefixlen=24, dns=("1.1.1.1", "2.2.2.2", "3.3.3.3",
                  "4.4.4.4"), search=("a.example",), source="dhcp")
    assert resolv_conf(lease) == (
        "# Written by the Exosphere network capsule from a DHCP lease on eth0.\n"
        "search a.example\nnameserver 1.1.1.1\nnameserver 2.2.2.2\nnameserver 3.3.3.3\n"
    )


def _link(sysfs: Path, name: str, index: int, kind: int = 1, device: bool = True) -> None:
    d = sysfs / name
    d.mkdir(parents=True)
    (d / "type").write_text(f"{kind}\n")
    (d / "ifindex").write_text(f"{index}\n")
    if device:
        (d / "device").mkdir()


def test_find_ethernet_picks_the_first_hardware_link(tmp_path: Path) -> None:
    assert find_ethernet(tmp_path / "missing") is None
    _link(tmp_path, "lo", 1, kind=772, device=False)
    assert find_ethernet(tmp_path) is None
    _link(tmp_path, "veth0", 2, device=False)    # virtual: no device
    _link(tmp_path, "enp0s4", 4)
    _link(tmp_path, "eth0", 3)
    assert find_ethernet(tmp_path) == "eth0"


def test_udhcpc_argv(tmp_path: Path) -> None:
    argv = udhcpc_argv("/sbin/udhcpc", "eth0", tmp_path / "hook", "exosphere")
    assert argv[:6] == ["/sbin/udhcpc", "-f", "-i", "eth0", "-s", str(tmp_path / "hook")]
    assert argv[-2:] == ["-x", "hostname:exosphere"]
    assert "-x" not in udhcpc_argv("/sbin/udhcpc", "eth0", tmp_path / "hook", "bad name;")


def test_hook_forwards_the_event(tmp_path: Path) -> None:
    """The udhcpc script: argv[1] and the lease variables, as one JSON datagram to the capsule."""
    import socket

    hook = tmp_path / "hook"
    hook.write_text(hook_script())
    hook.chmod(0o700)
    path = tmp_path / "hook.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(10)
        env = {"EXO_NET_HOOK_SOCKET": str(path), "ip": "10.0.2.15", "mask": "24", "router": "10.0.2.2",
               "unrelated": "x"}
        subprocess.run([str(hook), "bound"], env=env, check=True, timeout=30)
        event = json.loads(sock.recv(65536))
    assert event == {"action": "bound", "ip": "10.0.2.15", "mask": "24", "router": "10.0.2.2"}
    failed = subprocess.run([str(hook), "bound"], env={"EXO_NET_HOOK_SOCKET": str(tmp_path / "gone")},
                            capture_output=True, text=True, check=False, timeout=30)
    assert failed.returncode == 1 and "network hook: cannot reach the network capsule" in failed.stderr


def test_machine_id_is_kept_or_made(tmp_path: Path) -> None:
    etc, var = tmp_path / "etc/machine-id", tmp_path / "var/lib/dbus/machine-id"
    made = ensure_machine_id((etc, var))
    assert valid_machine_id(made) and etc.read_text() == made + "\n"
    assert ensure_machine_id((etc, var)) == made   # kept
    etc.write_text("uninitialized\n")              # what an image build leaves behind
    var.parent.mkdir(parents=True)
    var.write_text("0123456789abcdef0123456789abcdef\n")
    assert ensure_machine_id((etc, var)) == "0123456789abcdef0123456789abcdef"
