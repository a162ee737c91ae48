"""The Sentry's liveness and partition policy: what it does with health verdicts and link state.

Inputs:
- health events (`{"capsule", "health": "failing" | "ok", "action", "network", ...}`), streamed by
  PID 1 beside state events when a capsule's liveness check (its manifest `health` section, run by
  exo_init/pid1/health.py) turns failing or passes again;
- the network capsule's link state (exo_init/system/network.py writes it to `LINK_STATE`: whether
  the link has carrier and a lease), read at every sample and before acting on a check that
  depends on the network.

Policy:
- a failing capsule is acted on by its manifest's `health.action` (log, restart, freeze, kill,
  rollback), through the Sentry's own `anomaly` (its cooldown and event records);
- while the network is partitioned (link down or lease lost), a failing capsule whose check
  depends on the network (`health.network`) is marked degraded (the `degrade` operation: shown by
  `exoctl status` and the dashboard) and NOT acted on: restarting services because the cable is
  out only makes a restart storm. The partition is one `network-partition` record, its end another;
  the network capsule itself is marked degraded while it lasts (with the link's reason: what
  `exoctl status` and the dashboard's banner show);
- a degraded capsule whose check passes again is cleared; one still failing `grace` seconds after
  the partition ended is acted on as usual (the network came back; it did not);
- a Sentry restarted during a partition adopts the marks its predecessor left (`adopt`, from PID
  1's info): they are cleared when the partition it then sees ends, or `grace` seconds after its
  first look if the link is already back (no health event would come to clear them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exo_init.system.network import LINK_STATE

NETWORK = "network"  # the capsule that writes LINK_STATE (exo_init/system/network.py)
Record = Callable[..., None]
Act = Callable[[str, str, dict[str, Any], str], None]  # (capsule, anomaly, detail, action)
Degrade = Callable[[str, str], None]                    # (capsule, reason or "")


@dataclass(frozen=True)
class Link:
    online: bool
    interface: str = ""
    reason: str = ""


def read_link(path: Path) -> Link | None:
    """The network capsule's last report; None if there is none (no network capsule, or not yet)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("online"), bool):
        return None
    return Link(doc["online"], str(doc.get("interface", "")), str(doc.get("reason", "")))


class Liveness:
    def __init__(self, record: Record, act: Act, degrade: Degrade, link_state: Path = LINK_STATE,
                 grace: float = 30.0) -> None:
        self.record = record
        self.act = act
        self.degrade = degrade
        self.link_state = link_state
        self.grace = grace
        self.failing: dict[str, dict[str, Any]] = {}  # capsule -> its last failing event
        self.degraded: set[str] = set()
        self.partition_since: float | None = None     # monotonic, while partitioned
        self.healed_at: float | None = None           # monotonic, when the last partition ended
        self.adopted = False                          # marks of an earlier Sentry's, not seen to end yet

    @property
    def partitioned(self) -> bool:
        return self.partition_since is not None

    def on_health(self, event: dict[str, Any]) -> None:
        name = event.get("capsule")
        if not isinstance(name, str):
            return
        if event.get("health") == "ok":
            self.failing.pop(name, None)
            self.record(kind="recovered", anomaly="unhealthy", capsule=name, detail=event.get("detail", ""))
            if name in self.degraded:
                self.degraded.discard(name)
                self.degrade(name, "")
            return
        if event.get("health") != "failing":
            return
        self.failing[name] = event
        if event.get("network"):
            self.check_link()  # the link may have dropped since the last sample
            if self.partitioned:
                self._mark_degraded(name, event)
                return
        self._act(name, event)

    def adopt(self, marks: dict[str, str]) -> None:
        """Degraded marks found at start (PID 1's info): a partition's are ours to clear."""
        for name, reason in marks.items():
            if name == NETWORK or reason == "network partition":
                self.adopted = True
                if name != NETWORK:
                    self.degraded.add(name)

    def _act(self, name: str, event: dict[str, Any]) -> None:
        self.act(name, "unhealthy", {"failures": event.get("failures"), "detail": event.get("detail", "")},
                 str(event.get("action", "log")))

    def _mark_degraded(self, name: str, event: dict[str, Any]) -> None:
        if name in self.degraded:
            return
        self.degraded.add(name)
        self.record(kind="anomaly", anomaly="unhealthy", capsule=name, action="degrade",
                    detail=event.get("detail", ""), reason="network partition")
        self.degrade(name, "network partition")

    def check_link(self) -> None:
        """Read the link state; record a partition's start and end."""
        link = read_link(self.link_state)
        if link is None:
            return
        now = time.monotonic()
        if not link.online and self.partition_since is None:
            self.partition_since, self.adopted = now, False
            self.record(kind="anomaly", anomaly="network-partition", capsule=NETWORK, action="degrade",
                        interface=link.interface, reason=link.reason)
            self.degrade(NETWORK, f"network partition: {link.reason or 'offline'}")
            for name, event in self.failing.items():
                if event.get("network"):
                    self._mark_degraded(name, event)
        elif link.online and self.partition_since is not None:
            self.record(kind="recovered", anomaly="network-partition", capsule=NETWORK, interface=link.interface,
                        reason=link.reason, duration=round(now - self.partition_since, 3))
            self.degrade(NETWORK, "")
            self.partition_since = None
            self.healed_at = now
        elif link.online and self.adopted:  # the partition an earlier Sentry saw ended while none looked
            self.adopted = False
            self.degrade(NETWORK, "")
            self.healed_at = now

    def tick(self) -> None:
        """Every sample: the link, and degraded capsules that stayed failing after the partition."""
        self.check_link()
        if self.partitioned or self.healed_at is None or time.monotonic() - self.healed_at < self.grace:
            return
        for name in sorted(self.degraded):
            self.degraded.discard(name)
            self.degrade(name, "")
            event = self.failing.get(name)
            if event is not None:
                self._act(name, event)
