"""Kernel modules of the image: which to keep, and the order to load them in (from modules.dep)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from exo_init.pid1.graph import topological_order


def _name(path: str) -> str:
    return Path(path).name.split(".ko")[0].replace("-", "_")


def _graph(moddir: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """modules.dep as {module path: [dependency paths]} and {module name: module path}."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
        by_name[_name(mod)] = mod
    return deps, by_name


def load_order(moddir: Path, wanted: Sequence[str]) -> list[str]:
    """Relative paths (kernel/...ko) of the wanted modules and everything they depend on, each after
    its dependencies (the order insmod needs). Names that are not modules are skipped: they are
    built in, or missing (`missing_modules` tells which)."""
    deps, by_name = _graph(moddir)
    names = (name.replace("-", "_") for name in wanted)
    return topological_order(deps, [by_name[n] for n in names if n in by_name])


def builtin(moddir: Path, name: str) -> bool:
    wanted = name.replace("-", "_")
    return any(_name(line) == wanted for line in (moddir / "modules.builtin").read_text().splitlines())


def missing_modules(moddir: Path, wanted: Sequence[str]) -> list[str]:
    """The wanted names that are neither a module in modules.dep nor built into the kernel."""
    _, by_name = _graph(moddir)
    return [m for m in wanted if m.replace("-", "_") not in by_name and not builtin(moddir, m)]
