"""The package layout is the architecture: imports only go down the layers (exo_init/__init__.py).

Every `import`/`from ... import` in the repository's Python code, also those inside functions, is
read with `ast` and checked against the allowed edges. A capsule program or a client that reaches
into PID 1's internals fails here, naming the file, the line and the import.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# layer -> the layers it may import from (itself included)
ALLOWED: dict[str, frozenset[str]] = {
    "crush": frozenset({"crush"}),  # the CRUSH VM stands alone: exo_init imports it, never the reverse
    "exo_init.lib": frozenset({"exo_init.lib"}),
    "exo_init.pid1": frozenset({"exo_init.pid1", "exo_init.lib"}),
    "exo_init.client": frozenset({"exo_init.client", "exo_init.lib"}),
    "exo_init.system": frozenset({"exo_init.system", "exo_init.client", "exo_init.lib"}),
    # capsule runtimes (python3 -m exo_init.runtimes.wasm): programs PID 1 runs for a capsule
    "exo_init.runtimes": frozenset({"exo_init.runtimes", "exo_init.client", "exo_init.lib", "crush"}),
    "corecaps": frozenset({"corecaps", "exo_init.client", "exo_init.lib", "crush"}),
}

# Single modules allowed one edge their layer does not have, each with its reason.
EXCEPTIONS: dict[str, frozenset[str]] = {
    # The systemd exporter reads a manifest with PID 1's own loader: one loader, the same Capsule
    # values PID 1 runs (the loader is pure; exoctl imports it only for `export-systemd`).
    "exo_init.client.systemd_units": frozenset({"exo_init.pid1.manifest"}),
}


def layer_of(module: str) -> str | None:
    for layer in ALLOWED:
        if module == layer or module.startswith(layer + "."):
            return layer
    if module == "exo_init":
        return "exo_init"  # the umbrella package: only __version__
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(path: Path) -> str:
    return module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]


def imports(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, imported module) for every import in `path`, relative ones resolved against `package`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target == "exo_init":  # `from exo_init import pid1` names subpackages
                out.extend((node.lineno, f"exo_init.{alias.name}") for alias in node.names)
            else:
                out.append((node.lineno, target))
    return out


def sources() -> list[Path]:
    return sorted([*REPO.glob("exo_init/**/*.py"), *REPO.glob("corecaps/**/*.py"), *REPO.glob("crush/**/*.py")])


def test_every_module_belongs_to_a_layer() -> None:
    stray = [str(p.relative_to(REPO)) for p in sources()
             if layer_of(module_name(p)) is None and module_name(p) not in ("exo_init", "exo_init.__main__")]
    assert stray == [], f"modules outside the layers of exo_init/__init__.py: {stray}"


def test_imports_only_go_down() -> None:
    wrong: list[str] = []
    for path in sources():
        layer = layer_of(module_name(path))
        if layer not in ALLOWED:
            continue
        for line, target in imports(path, package_of(path)):
            target_layer = layer_of(target)
            if target_layer is None or target_layer == "exo_init":
                continue  # the standard library, third-party packages, exo_init.__version__
            if target_layer not in ALLOWED[layer] and target not in EXCEPTIONS.get(module_name(path), ()):
                wrong.append(f"{path.relative_to(REPO)}:{line}: {layer} imports {target}")
    assert wrong == [], "imports against the layering:\n" + "\n".join(wrong)


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    """The checker itself: upward imports in a client module, absolute, relative and inside a
    function, are all seen."""
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nfrom exo_init.pid1.supervisor import Supervisor\n"
                     "def f():\n    from ..pid1 import scope\n    from exo_init import system\n")
    found = [(line, target) for line, target in imports(probe, "exo_init.client")
             if layer_of(target) not in {*ALLOWED["exo_init.client"], None}]
    assert found == [(2, "exo_init.pid1.supervisor"), (4, "exo_init.pid1"), (5, "exo_init.system")]


def test_a_runtime_may_not_reach_into_pid1(tmp_path: Path) -> None:
    """A runtime program runs in the capsule's world: PID 1's internals are not its to import."""
    probe = tmp_path / "probe.py"
    probe.write_text("import wasmtime\nfrom exo_init.lib import runtime\nfrom ..pid1 import plan\n")
    found = [(line, target) for line, target in imports(probe, "exo_init.runtimes")
             if layer_of(target) not in {*ALLOWED["exo_init.runtimes"], None}]
    assert found == [(3, "exo_init.pid1")]
