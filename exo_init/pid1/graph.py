"""Dependency graphs: {node: [nodes it depends on]}. Edges to nodes that are not keys are ignored
(a dependency outside the graph orders nothing). Both functions visit nodes and edges in sorted
order, so their results are deterministic."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def find_cycles(deps: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Every dependency cycle (as a closed path a -> b -> a), found by depth-first search."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(deps, WHITE)
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        colour[node] = GREY
        stack.append(node)
        for nxt in sorted(deps.get(node, ())):
            if nxt not in colour:
                continue
            if colour[nxt] == GREY:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif colour[nxt] == WHITE:
                visit(nxt)
        stack.pop()
        colour[node] = BLACK

    for node in sorted(deps):
        if colour[node] == WHITE:
            visit(node)
    return cycles


def topological_order(deps: Mapping[str, Iterable[str]], roots: Iterable[str] | None = None) -> list[str]:
    """Names ordered so that each comes after everything it depends on (acyclic input): every name
    in `deps`, or only `roots` and what they depend on."""
    order: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        if node in done:
            return
        done.add(node)
        for nxt in sorted(deps.get(node, ())):
            if nxt in deps:
                visit(nxt)
        order.append(node)

    for node in sorted(deps) if roots is None else roots:
        visit(node)
    return order
