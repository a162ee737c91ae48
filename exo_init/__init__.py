"""Exosphere OS: PID 1 (exo_init) and the programs around it, in five layers; imports only go down.

- `exo_init.pid1`: the code that runs inside PID 1 (and in the children it forks before exec):
  boot checklist, supervisor, capsule state machine, spawn and the Scoped HAL, cgroups, the
  control-socket server, generations, logs.
- `exo_init.system`: the programs of the system capsules (Sentry, dashboard, Nexquelium, network,
  D-Bus bridge, power button, coldplug, system bus launcher). They run as capsules and talk to
  PID 1 only through the control API.
- `exo_init.runtimes`: capsule runtimes, the programs PID 1 runs for a capsule whose manifest
  `runtime` is not `exec` (`python3 -m exo_init.runtimes.wasm`: WebAssembly with wasmtime). They
  may use `client` and `lib` and third-party libraries, never `pid1`.
- `exo_init.client`: the control API's clients: the socket client, `exoctl`, the D-Bus interface.
- `exo_init.lib`: small pieces every layer shares (log-file reading, event log, sd_notify, units,
  well-known paths); imports nothing else from exo_init.

`corecaps` (the CoreCaps tools) sits beside `exo_init.system`: it may use `client` and `lib`.
"""

from __future__ import annotations

__version__ = "0.1.0"
