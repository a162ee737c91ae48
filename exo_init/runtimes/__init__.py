"""Capsule runtimes: programs PID 1 runs *for* a capsule whose manifest `runtime` is not `exec`.

`python3 -m exo_init.runtimes.wasm` runs a WebAssembly module (wasm.py). Each runtime reads its
configuration from `$EXO_RUNTIME` and talks back to PID 1 by the protocol in exo_init/lib/runtime.py
(`common.py` has its runtime side); it runs inside the capsule's cgroup and Scoped HAL like any
capsule program, and on top of that confines the code it runs to the capsule's grants (grants.py).

This layer may import exo_init.lib, exo_init.client and third-party libraries (wasmtime), never
exo_init.pid1 (tests/test_layers.py).
"""

from __future__ import annotations
