"""The network capsule: brings up `lo` and the first ethernet link, and configures that link by DHCP
(busybox udhcpc, run as this capsule's child) or statically; writes /etc/resolv.conf.

    python3 -m exo_init.system.network [--udhcpc /sbin/udhcpc] [--resolv-conf /etc/resolv.conf]

Configuration, from the capsule's environment (declared in Nix, nixos-modules/capsules.nix):

    EXO_NET_INTERFACE   the link to configure (default: the first ethernet device, by ifindex)
    EXO_NET_ADDRESS     a static address with prefix length, "192.168.1.10/24"; unset: DHCP
    EXO_NET_GATEWAY     static: the default route's gateway (optional)
    EXO_NET_DNS         static: name servers, separated by spaces or commas (optional)
    EXO_NET_SEARCH      static: search domains (optional)

All netlink work is done here with pyroute2. udhcpc only speaks DHCP: its script is a small hook
(written to the runtime directory at start) that forwards each event (bound, renew, deconfig, ...)
with its lease as one JSON datagram to this process, which applies it. The state is reported to
exo_init with sd_notify: READY=1 once the link has an address, and STATUS= "eth0 10.0.2.15/24 via
10.0.2.2", which `exoctl status` shows.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exo_init.lib.notify import sd_notify
from exo_init.lib.paths import DEFAULT_RUNTIME

ARPHRD_ETHER = 1
IFF_LOWER_UP = 0x10000
RTMGRP_LINK = 1
LINK_STATE = DEFAULT_RUNTIME / "network" / "link.json"  # what the Sentry reads (exo_init/system/liveness.py)
LINK_WAIT = 15.0        # seconds to wait for an ethernet device to appear (its driver is loading)
STOP_GRACE = 3.0        # udhcpc gets this long to exit on SIGTERM
HOOK_EVENTS = ("deconfig", "bound", "renew", "leasefail", "nak")
# The udhcpc variables the hook forwards (see busybox udhcpc(8)).
HOOK_VARS = ("interface", "ip", "mask", "subnet", "router", "dns", "domain", "search", "lease", "serverid",
             "broadcast")


class ConfigError(Exception):
    """The capsule's configuration is unusable (one line, naming the variable)."""


@dataclass(frozen=True)
class Lease:
    """An IPv4 configuration for one link, from DHCP or static configuration."""

    interface: str
    address: str
    prefixlen: int
    routers: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    seconds: int | None = None       # DHCP lease time
    source: str = "static"           # "static" or "dhcp"

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefixlen}"

    @property
    def broadcast(self) -> str:
        return str(ipaddress.IPv4Interface(self.cidr).network.broadcast_address)


def _words(text: str) -> tuple[str, ...]:
    return tuple(w for w in re.split(r"[\s,]+", text.strip()) if w)


def _ipv4(value: str, what: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ConfigError(f"{what}: {value!r} is not an IPv4 address") from None


def static_config(env: Mapping[str, str], interface: str) -> Lease | None:
    """The static configuration from EXO_NET_* (None: use DHCP)."""
    text = env.get("EXO_NET_ADDRESS", "").strip()
    if not text:
        for var in ("EXO_NET_GATEWAY", "EXO_NET_DNS", "EXO_NET_SEARCH"):
            if env.get(var, "").strip():
                raise ConfigError(f"{var} is set but EXO_NET_ADDRESS (e.g. 10.1.2.3/24) is not")
        return None
    if "/" not in text:
        raise ConfigError(f"EXO_NET_ADDRESS: {text!r} needs a prefix length, such as 192.168.1.10/24")
    try:
        iface = ipaddress.IPv4Interface(text)
    except ValueError:
        raise ConfigError(f"EXO_NET_ADDRESS: {text!r} is not an IPv4 address with prefix length") from None
    gateway = env.get("EXO_NET_GATEWAY", "").strip()
    routers = (_ipv4(gateway, "EXO_NET_GATEWAY"),) if gateway else ()
    if routers and ipaddress.IPv4Address(routers[0]) not in iface.network:
        raise ConfigError(f"EXO_NET_GATEWAY: {routers[0]} is not in {iface.network}")
    dns = tuple(_ipv4(d, "EXO_NET_DNS") for d in _words(env.get("EXO_NET_DNS", "")))
    return Lease(interface=interface, address=str(iface.ip), prefixlen=iface.network.prefixlen,
                 routers=routers, dns=dns, search=_words(env.get("EXO_NET_SEARCH", "")))


def lease_from_hook(event: Mapping[str, str]) -> Lease:
    """A udhcpc `bound`/`renew` event (its environment variables) -> Lease."""
    address = _ipv4(event.get("ip", ""), "udhcpc ip")
    if event.get("mask", "").isdigit():
        prefixlen = int(event["mask"])
    elif event.get("subnet"):
        try:
            prefixlen = ipaddress.IPv4Network(f"0.0.0.0/{event['subnet']}").prefixlen
        except ValueError:
            raise ConfigError(f"udhcpc subnet: {event['subnet']!r} is not a netmask") from None
    else:
        prefixlen = 32
    if not 0 < prefixlen <= 32:
        raise ConfigError(f"udhcpc mask: {prefixlen} is not a prefix length")
    lease = event.get("lease", "")
    return Lease(
        interface=event.get("interface", ""), address=address, prefixlen=prefixlen,
        routers=tuple(_ipv4(r, "udhcpc router") for r in _words(event.get("router", ""))),
        dns=tuple(_ipv4(d, "udhcpc dns") for d in _words(event.get("dns", ""))),
        search=_words(event.get("search", "")) or _words(event.get("domain", "")),
        seconds=int(lease) if lease.isdigit() else None, source="dhcp",
    )


def status_text(lease: Lease) -> str:
    """What `exoctl status` shows for the capsule: "eth0 10.0.2.15/24 via 10.0.2.2"."""
    text = f"{lease.interface} {lease.cidr}"
    if lease.routers:
        text += f" via {lease.routers[0]}"
    return text


def resolv_conf(lease: Lease) -> str:
    how = "a DHCP lease" if lease.source == "dhcp" else "the static configuration"
    lines = [f"# Written by the Exosphere network capsule from {how} on {lease.interface}."]
    if lease.search:
        lines.append("search " + " ".join(lease.search))
    lines += [f"nameserver {ns}" for ns in lease.dns[:3]]  # the resolver reads at most three
    return "\n".join(lines) + "\n"


def write_file_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.replace(tmp, path)


def find_ethernet(sysfs: Path = Path("/sys/class/net")) -> str | None:
    """The first ethernet device (by ifindex) that is hardware (has a `device`), not a virtual link."""
    found: list[tuple[int, str]] = []
    for link in sysfs.iterdir() if sysfs.is_dir() else ():
        try:
            if int((link / "type").read_text()) != ARPHRD_ETHER or not (link / "device").exists():
                continue
            found.append((int((link / "ifindex").read_text()), link.name))
        except (OSError, ValueError):
            continue
    return min(found)[1] if found else None


def udhcpc_argv(udhcpc: str, interface: str, hook: Path, hostname: str) -> list[str]:
    argv = [udhcpc, "-f", "-i", interface, "-s", str(hook), "-t", "5", "-T", "2", "-A", "5"]
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,62}", hostname):
        argv += ["-x", f"hostname:{hostname}"]
    return argv


# udhcpc's script, written to the runtime directory at start. udhcpc waits for it at every event, so
# it is kept to the bare minimum: no site packages, no exo_init import; it forwards argv[1] and the
# lease variables as one JSON datagram to $EXO_NET_HOOK_SOCKET (this capsule's main process).
HOOK_SCRIPT = """#!{python} -IS
import json, os, socket, sys
event = {{"action": sys.argv[1] if len(sys.argv) > 1 else ""}}
event.update((k, os.environ[k]) for k in {variables!r} if k in os.environ)
path = os.environ.get("EXO_NET_HOOK_SOCKET", "")
try:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(json.dumps(event).encode(), path)
except OSError as e:
    sys.exit(f"network hook: cannot reach the network capsule at {{path!r}}: {{e.strerror or e}}")
"""


def hook_script(python: str = sys.executable) -> str:
    return HOOK_SCRIPT.format(python=python, variables=HOOK_VARS)


# --- netlink (pyroute2) ------------------------------------------------------------------------------

def carrier_of(msg: Any) -> bool | None:
    """Whether an RTM_NEWLINK message says the link has carrier (None: it does not say)."""
    carrier = msg.get_attr("IFLA_CARRIER")
    if carrier is not None:
        return bool(carrier)
    flags = msg.get("flags")
    return bool(flags & IFF_LOWER_UP) if isinstance(flags, int) else None


class Links:
    """The few netlink operations the capsule needs, over one pyroute2 IPRoute socket."""

    def __init__(self) -> None:
        from pyroute2 import IPRoute  # noqa: PLC0415 - a slow import, only where it is used

        self.ipr = IPRoute()

    def index(self, name: str) -> int:
        found = self.ipr.link_lookup(ifname=name)
        if not found:
            raise ConfigError(f"no network link named {name!r}")
        return int(found[0])

    def up(self, name: str) -> None:
        self.ipr.link("set", index=self.index(name), state="up")

    def addresses(self, name: str) -> set[str]:
        return {f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                for a in self.ipr.get_addr(family=socket.AF_INET, index=self.index(name))}

    def flush(self, name: str) -> None:
        self.ipr.flush_addr(family=socket.AF_INET, index=self.index(name))

    def apply(self, lease: Lease) -> None:
        """Give the link exactly this address, and the default route through the first router."""
        idx = self.index(lease.interface)
        self.ipr.link("set", index=idx, state="up")
        if self.addresses(lease.interface) != {lease.cidr}:
            self.flush(lease.interface)
            self.ipr.addr("add", index=idx, address=lease.address, prefixlen=lease.prefixlen,
                          broadcast=lease.broadcast)
        if lease.routers:
            self.ipr.route("replace", dst="0.0.0.0/0", gateway=lease.routers[0], oif=idx)

    def monitor(self) -> Any:
        """A second netlink socket, bound to link events (carrier changes)."""
        from pyroute2 import IPRoute  # noqa: PLC0415

        mon = IPRoute()
        mon.bind(groups=RTMGRP_LINK)
        return mon

    def close(self) -> None:
        self.ipr.close()


# --- the capsule ---------------------------------------------------------------------------------------

class Stop(Exception):
    """SIGTERM/SIGINT: exo_init is stopping the capsule."""


def _stop(_signum: int, _frame: object) -> None:
    raise Stop


def wait_for_link(configured: str) -> str | None:
    """The link to configure: EXO_NET_INTERFACE (waited for), else the first ethernet device."""
    deadline = time.monotonic() + LINK_WAIT
    while True:
        name = configured or find_ethernet()
        if name and Path("/sys/class/net", name).exists():
            return name
        if time.monotonic() > deadline:
            if configured:
                raise ConfigError(f"EXO_NET_INTERFACE: no link named {configured!r} after {LINK_WAIT:g} s")
            return None
        time.sleep(0.1)  # polling sysfs for a device whose driver is loading (bounded by the deadline)


class Capsule:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.links = Links()
        self.ready = False
        self.resolv = Path(args.resolv_conf)
        self.carrier = True   # the link's carrier, as netlink last said
        self.lease = False    # whether a lease (or a static address) is applied
        self.online: bool | None = None

    def link_state(self, interface: str, reason: str) -> None:
        """Report online (carrier and a lease) or not to LINK_STATE, on every change: the Sentry
        records a partition (link down, lease lost) and its end from it. Written once the link was first
        online."""
        online = self.carrier and self.lease
        if online == self.online or (self.online is None and not online):
            return  # (not yet online at start is no partition)
        self.online = online
        doc = {"online": online, "interface": interface, "carrier": self.carrier, "lease": self.lease,
               "reason": reason, "time": time.time()}
        try:
            write_file_atomically(Path(self.args.runtime_dir) / "link.json", json.dumps(doc) + "\n")
        except OSError as e:
            print(f"link state not written: {e.strerror or e}", file=sys.stderr, flush=True)
        print(f"link {'online' if online else 'offline'}: {reason}", flush=True)

    def report(self, status: str, ready: bool = False) -> None:
        print(status, flush=True)
        message = f"STATUS={status}"
        if ready and not self.ready:
            self.ready = True
            message = "READY=1\n" + message
        try:
            sd_notify(message)
        except OSError as e:
            print(f"sd_notify failed: {e.strerror or e}", file=sys.stderr, flush=True)

    def configure(self, lease: Lease) -> None:
        self.links.apply(lease)
        if lease.dns:
            write_file_atomically(self.resolv, resolv_conf(lease))
        self.report(status_text(lease), ready=True)

    def on_hook(self, event: dict[str, Any], interface: str) -> None:
        action = event.get("action", "")
        if action == "deconfig":
            self.links.flush(interface)
            self.links.up(interface)
            self.lease = False
            self.link_state(interface, "lease lost")
            self.report(f"{interface}: waiting for a DHCP lease")
        elif action in ("bound", "renew"):
            lease = lease_from_hook({**event, "interface": interface})
            self.configure(lease)
            self.lease = True
            self.link_state(interface, f"lease {action}")
            if lease.seconds is not None:
                print(f"{action}: lease of {lease.seconds} s from {event.get('serverid', '?')}", flush=True)
        elif action in ("leasefail", "nak"):
            self.report(f"{interface}: no DHCP lease yet ({action}); retrying")

    def run(self) -> int:
        self.links.up("lo")
        interface = wait_for_link(os.environ.get("EXO_NET_INTERFACE", "").strip())
        if interface is None:
            self.report("lo only: no ethernet link", ready=True)
            return self.idle()
        static = static_config(os.environ, interface)
        if static is not None:
            self.configure(static)
            self.lease = True
            self.link_state(interface, "static address")
            return self.idle()
        return self.dhcp(interface)

    def idle(self) -> int:
        while True:
            signal.pause()  # until SIGTERM (raises Stop)

    def dhcp(self, interface: str) -> int:
        rundir = Path(self.args.runtime_dir)
        rundir.mkdir(mode=0o700, parents=True, exist_ok=True)
        rundir.chmod(0o700)  # only root may send leases
        hook = rundir / "udhcpc-hook"
        write_file_atomically(hook, hook_script())
        hook.chmod(0o700)
        sock_path = rundir / "hook.sock"
        sock_path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        sock.bind(str(sock_path))
        self.links.up(interface)
        self.report(f"{interface}: waiting for a DHCP lease")
        argv = udhcpc_argv(self.args.udhcpc, interface, hook, socket.gethostname())
        print("$ " + " ".join(argv), flush=True)
        proc = subprocess.Popen(argv, env={**os.environ, "EXO_NET_HOOK_SOCKET": str(sock_path)},
                                stdin=subprocess.DEVNULL)
        pidfd = os.pidfd_open(proc.pid)
        sel = selectors.DefaultSelector()
        sel.register(sock, selectors.EVENT_READ, "hook")
        sel.register(pidfd, selectors.EVENT_READ, "exit")
        monitor = self.links.monitor()
        sel.register(monitor.fileno(), selectors.EVENT_READ, "link")
        index = self.links.index(interface)
        try:
            while True:
                for key, _ in sel.select():
                    if key.data == "exit":
                        code = proc.wait()
                        print(f"udhcpc exited with status {code}", file=sys.stderr, flush=True)
                        return 1
                    if key.data == "link":
                        self.on_link(monitor.get(), index, interface, proc)
                        continue
                    data = sock.recv(65536)
                    try:
                        self.on_hook(json.loads(data), interface)
                    except Stop:
                        raise
                    except Exception as e:  # a bad lease or a netlink error: report, keep serving
                        print(f"udhcpc event not applied: {type(e).__name__}: {e}", file=sys.stderr,
                              flush=True)
                        self.report(f"{interface}: lease not applied: {e}")
        except Stop:
            proc.terminate()
            try:
                proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_GRACE)
            return 0
        finally:
            os.close(pidfd)
            sock.close()
            monitor.close()

    def on_link(self, messages: Any, index: int, interface: str, udhcpc: subprocess.Popen[bytes]) -> None:
        """Netlink link events: carrier lost is a partition; carrier back asks udhcpc to renew the
        lease (SIGUSR1), whose `renew`/`bound` ends it."""
        for msg in messages:
            if msg.get("event") != "RTM_NEWLINK" or msg.get("index") != index:
                continue
            carrier = carrier_of(msg)
            if carrier is None or carrier == self.carrier:
                continue
            self.carrier = carrier
            if carrier:
                self.report(f"{interface}: link up, renewing the lease")
                self.link_state(interface, "link up, renewing the lease")
                udhcpc.send_signal(signal.SIGUSR1)
            else:
                self.lease = False  # to be confirmed again (renewed) once the link is back
                self.report(f"{interface}: link down (partitioned)")
                self.link_state(interface, "link down")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="exo_init.system.network", description="lo and the first ethernet link")
    p.add_argument("--udhcpc", default="/sbin/udhcpc", help="busybox udhcpc (DHCP)")
    p.add_argument("--resolv-conf", default="/etc/resolv.conf")
    p.add_argument("--runtime-dir", default=str(DEFAULT_RUNTIME / "network"),
                   help="where the udhcpc hook and its socket go")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        sys.exit(Capsule(args).run())
    except Stop:
        sys.exit(0)
    except ConfigError as e:
        with contextlib.suppress(OSError):
            sd_notify(f"STATUS=configuration error: {e}")
        sys.exit(f"network: {e}")


if __name__ == "__main__":
    main()
