"""Continuations: pause anywhere, serialise, resume in a fresh process, get exactly the result and
total gas of an uninterrupted run; crafted or damaged state documents are refused cleanly."""

from __future__ import annotations

import copy
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crush import state
from crush.casm import encode
from crush.state import StateError
from crush.vm import VM, Status
from tests.crush.support import ARENA, CORPUS, GAS, REPO, compile_source, run

RESUMER = """
import json, sys
from pathlib import Path
from crush import state
from crush.casm import decode
results = []
for job in json.loads(Path(sys.argv[1]).read_text()):
    program = decode(Path(job["casm"]).read_bytes())
    out = []
    vm = state.loads(Path(job["state"]).read_bytes(), program, out=out.append, fast=job.get("fast", False))
    o = vm.run()
    results.append({"output": "".join(out), "gas": o.gas_used, "steps": o.steps, "status": o.status.value})
print(json.dumps(results))
"""


def resume_elsewhere(jobs: list[dict[str, Any]], tmp: Path) -> list[dict[str, Any]]:
    """Resume saved states in a fresh Python process (nothing shared with this one)."""
    spec = tmp / "jobs.json"
    spec.write_text(json.dumps(jobs))
    r = subprocess.run([sys.executable, "-c", RESUMER, str(spec)], capture_output=True, text=True, cwd=REPO,
                       timeout=600, check=False)
    assert r.returncode == 0, r.stderr
    results: list[dict[str, Any]] = json.loads(r.stdout)
    return results


def test_every_corpus_program_resumes_in_a_fresh_process_with_the_same_result_and_gas(tmp_path: Path) -> None:
    jobs, expected = [], []
    for path in CORPUS:
        program = compile_source(path.read_text(), path.name)
        casm_file = tmp_path / f"{path.stem}.casm"
        casm_file.write_bytes(encode(program))
        full = run(program)
        rnd = random.Random(path.name)
        for k in sorted({rnd.randrange(full.outcome.steps) for _ in range(2)}):
            out: list[str] = []
            vm = VM(program, gas=GAS, arena=ARENA, out=out.append)
            assert vm.run(max_steps=k).status == Status.PAUSED
            text = state.dumps(vm)
            assert state.dumps(state.loads(text, program)) == text  # one state, one document
            state_file = tmp_path / f"{path.stem}.{k}.json"
            state_file.write_text(text)
            jobs.append({"casm": str(casm_file), "state": str(state_file)})
            expected.append(("".join(out), full))
    results = resume_elsewhere(jobs, tmp_path)
    assert len(results) == len(expected)
    for (prefix, full), got in zip(expected, results, strict=True):
        assert prefix + got["output"] == full.output
        assert (got["gas"], got["steps"], got["status"]) == (full.outcome.gas_used, full.outcome.steps,
                                                           full.outcome.status.value)


ALIASING = """
a = [1, 'two', 3.5, 10 ** 30]
b = [a, a, (a, a)]
a.append(a)
d = {'k': b, (1, 2): 'tuple key'}
d['self'] = d
def make():
    n = [0]
    def inc():
        n[0] += 1
        return n[0]
    return inc, n
inc, cell = make()
inc()
seen = []
for k, x in enumerate(zip(range(5), 'abcde')):
    seen.append(x)
    if k == 2:
        break
b[0].append('via b0')
d['self']['new'] = 1
print(len(b[1]), b[2][1][-1], a[4][4][4][0], len(d), d[(1, 2)], inc(), cell, seen[-1], list(map(str, b[2][0][:2])))
"""


def test_aliasing_cycles_closures_and_iterators_survive_a_checkpoint() -> None:
    program = compile_source(ALIASING)
    full = run(program)
    assert full.output == "6 via b0 1 4 tuple key 2 [2] (2, 'c') ['1', 'two']\n"
    for k in range(0, full.outcome.steps, 7):
        out: list[str] = []
        vm = VM(program, gas=GAS, arena=ARENA, out=out.append)
        vm.run(max_steps=k)
        vm = state.loads(state.dumps(vm), program, out=out.append)
        outcome = vm.run()
        assert "".join(out) == full.output and outcome.gas_used == full.outcome.gas_used


# ----------------------------------------------------------------------------------------------
# Refusals


def _saved(source: str = "x = [1, 2]\nfor i in range(3):\n    x.append(i)\nprint(x)\n", k: int = 12) -> tuple[Any, Any]:
    program = compile_source(source)
    vm = VM(program, gas=GAS, arena=ARENA)
    vm.run(max_steps=k)
    return program, state.save(vm)


def _mutations() -> list[tuple[str, Any, str]]:
    def set_(path: list[Any], value: Any) -> Any:
        def f(doc: Any) -> None:
            target = doc
            for p in path[:-1]:
                target = target[p]
            target[path[-1]] = value
        return f
    return [
        ("version", set_(["crush_state"], 2), "unsupported state version"),
        ("program hash", set_(["program"], "0" * 64), "saved for program"),
        ("prelude hash", set_(["prelude"], "f" * 64), "another prelude"),
        ("gas left over the limit", set_(["gas"], [10, 11]), "gas"),
        ("negative steps", set_(["steps"], -1), "steps"),
        ("reference out of range", set_(["globals"], ["r", 999]), "out of range"),
        ("globals not a dict", set_(["globals"], ["i", "0x1"]), "wrong type"),
        ("malformed int", set_(["frames", 0, 6], [["i", "12"]]), "malformed integer"),
        ("unknown builtin", set_(["frames", 0, 6], [["b", "os.system"]]), "unknown builtin"),
        ("unbound on the stack", set_(["frames", 0, 6], [["u"]]), "unbound marker"),
        ("stack depth", set_(["frames", 0, 6], []), "the verifier proved"),
        ("pc past the end", set_(["frames", 0, 2], 10_000), "not a reachable instruction"),
        ("function index", set_(["frames", 0, 1], 5), "no loaded program"),
        ("frame shape", set_(["frames", 0], [1, 2]), "a frame is"),
        ("pending capability not declared", set_(["pending"], ["sleep", 1.0]), "does not declare"),
        ("rng", set_(["rng"], "banana"), "rng"),
        ("unknown object kind", set_(["heap", 0], ["socket"]), "unknown object kind"),
        ("tuple containing itself", set_(["heap", 0], ["tuple", [["r", 0]]]), "contains itself"),
        ("unhashable key", set_(["heap", 0], ["dict", [[["r", 0], 1]]]), "unhashable"),
        ("heap not an array", set_(["heap"], {"a": 1}), "heap"),
    ]


@pytest.mark.parametrize(("name", "mutate", "message"), _mutations(), ids=[m[0] for m in _mutations()])
def test_crafted_states_are_refused(name: str, mutate: Any, message: str) -> None:
    program, doc = _saved()
    bad = copy.deepcopy(doc)
    mutate(bad)
    with pytest.raises(StateError, match=message):
        state.restore(bad, program)


@pytest.mark.parametrize(("data", "message"), [
    (b"{", "not valid JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
    (b'{"crush_state": NaN}', "not JSON"),
    (b"[]", "a JSON object"),
], ids=["truncated", "not utf-8", "deep", "nan", "array"])
def test_damaged_documents_are_refused(data: bytes, message: str) -> None:
    program, _ = _saved()
    with pytest.raises(StateError, match=message):
        state.loads(data, program)


def test_oversized_documents_are_refused_before_parsing() -> None:
    program, _ = _saved()
    with pytest.raises(StateError, match="exceed the limit"):
        state.loads(b" " * (state.MAX_STATE_BYTES + 1), program)


def test_a_finished_run_has_no_state() -> None:
    program = compile_source("print(1)\n")
    vm = VM(program)
    vm.run()
    with pytest.raises(StateError, match="ended"):
        state.save(vm)


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 2 ** 40), st.text(max_size=4),
                        st.sampled_from(["r", "i", "f", "u", "b", "list", "tuple", "0x1", "nan"]))
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4), max_leaves=8)


def _paths(doc: Any) -> list[list[Any]]:
    out: list[list[Any]] = []
    work: list[tuple[Any, list[Any]]] = [(doc, [])]
    while work:
        v, path = work.pop()
        out.append(path)
        if isinstance(v, dict):
            work.extend((x, [*path, k]) for k, x in v.items())
        elif isinstance(v, list):
            work.extend((x, [*path, i]) for i, x in enumerate(v))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_mutated_state_is_refused_or_runs_to_an_outcome(data: st.DataObject) -> None:
    program, doc = _saved(ALIASING, k=60)
    bad = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(bad) if p]
        path = data.draw(st.sampled_from(paths))
        target = bad
        for p in path[:-1]:
            target = target[p]
        target[path[-1]] = data.draw(_json_values())
    try:
        vm = state.restore(bad, program)
    except StateError:
        return
    vm.gas = min(vm.gas, 100_000)
    outcome = vm.run() if vm.pending is None else None
    assert outcome is None or outcome.status in (Status.DONE, Status.ERROR, Status.TRAP)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_any_bytes_are_a_state_or_one_state_error(data: bytes) -> None:
    program, doc = _saved()
    for candidate in (data, json.dumps(doc).encode()[:len(data)] + data):
        try:
            state.loads(candidate, program)
        except StateError:
            pass
