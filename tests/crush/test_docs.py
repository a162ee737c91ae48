"""docs/crush.md's tables are the code's: the gas table is casm.OPS, the exit statuses are cli.Exit."""

from __future__ import annotations

import re

from crush import cli
from crush.casm import OPS
from tests.crush.support import REPO

DOC = (REPO / "docs" / "crush.md").read_text()


def test_the_gas_table_is_the_instruction_set() -> None:
    rows = re.findall(r"^\| (\d+) \| `([A-Z_]+)` \| ([a-z -]+) \| (\d+) \|", DOC, re.M)
    documented = {int(code): (name, operands.strip(), int(gas)) for code, name, operands, gas in rows}
    actual = {code: (s.name, " ".join(o.value for o in s.operands) or "-", s.gas) for code, s in OPS.items()}
    assert documented == actual


def test_the_exit_statuses_are_the_clis() -> None:
    section = DOC.split("## CLI", 1)[1].split("## ", 1)[0]
    statuses = {int(n) for n in re.findall(r"^\| (\d+) \|", section, re.M)}
    assert statuses == {int(e) for e in cli.Exit}
