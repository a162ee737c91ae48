from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture
def exo(tmp_path: Path) -> Iterator[Any]:
    """Start real exo_inits (child-subreaper mode, tests/exo.py) with these capsules: exo(capsules,
    cgroups=True) -> ExoInit; each is stopped when the test ends. (A module may define its own.)"""
    from tests.exo import ExoInit

    started: list[ExoInit] = []

    def start(capsules: dict[str, Any], cgroups: bool = True) -> ExoInit:
        e = ExoInit(tmp_path / f"exo{len(started)}", {"capsules": capsules}, cgroups=cgroups)
        started.append(e)
        return e

    yield start
    for e in started:
        e.close()


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CoreCaps' CRUSH programs (corecaps/crush/), compiled as the image builder compiles them."""
    from qemu.build import compile_crush_programs

    out = tmp_path_factory.mktemp("crush-programs")
    compile_crush_programs(REPO / "corecaps" / "crush", out)
    return out
