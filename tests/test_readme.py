"""README.md and docs/*.md name only what exists.

Checked in every document, by reading its Markdown (no rendering):
- every repository path it names in `code` or in a code block (a word whose first component is a
  top-level entry of the repository, e.g. `exo_init/pid1/scope.py`, `qemu/run --iso`) exists;
  a glob (`*`) must match something; a path run as a command (`sudo qemu/run`) is executable;
- every `python3 -m MODULE` names a module that runs: a repository module (MODULE.py, or a
  package with __main__.py) or an installed one (`pytest`, `http.server`);
- every relative link (`[x](docs/architecture.md#glossary)`, an image) points at a file that
  exists, and its `#anchor` at a heading of that file (GitHub's slugs);
- README's layout table: each file or folder named in a row exists inside that row's folder;
- README's figures table: every figure names a command a reader can run that prints figures (a
  benchmark module, a script, or `python3 -m pytest -s` on test files that print), and the date
  of the run (issue 24: a figure nobody can re-measure goes stale unnoticed).
Backticked paths are relative to the repository root in every document; links are relative to
the document, as GitHub resolves them.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from exo_init.pid1 import early

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"`([^`]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.M)
PYTHON_M = re.compile(r"python3 -m ([A-Za-z_][\w.]*)")
LEAD, TRAIL = "\"'([{", "\"')]},;:."


def top_level(repo: Path) -> frozenset[str]:
    return frozenset(p.name for p in repo.iterdir() if p.name != ".git")


def split_code(text: str) -> tuple[list[str], list[str]]:
    """(the lines of every code block, every inline code span outside them)."""
    blocks = [line for m in FENCE.finditer(text) for line in m.group(1).splitlines()]
    prose = FENCE.sub("", text)
    return blocks, [m.group(1) for m in INLINE.finditer(prose)]


def repo_words(code: str, top: frozenset[str], block: bool) -> Iterator[tuple[str, bool]]:
    """(path, run as a command) for each word of `code` that names something in the repository;
    a command is the first word (after `sudo`) of a code block's line."""
    words = code.split()
    for i, raw in enumerate(words):
        word = raw.lstrip(LEAD).rstrip(TRAIL).split("::", 1)[0]  # (pytest's FILE::TEST names FILE)
        first = word.split("/", 1)[0]
        if first not in top or ("/" not in word and word not in top):
            continue
        command = block and (i == 0 or (i == 1 and words[0] == "sudo"))
        yield word, command and "/" in word


def missing_paths(text: str, repo: Path) -> list[str]:
    top = top_level(repo)
    blocks, spans = split_code(text)
    problems: list[str] = []
    for code, block in [*((b, True) for b in blocks), *((s, False) for s in spans)]:
        for word, command in repo_words(code, top, block):
            if "*" in word:
                if not any(repo.glob(word)):
                    problems.append(f"{word}: matches nothing")
                continue
            path = repo / word
            if not path.exists():
                problems.append(f"{word}: no such file or directory")
            elif command and not os.access(path, os.X_OK):
                problems.append(f"{word}: run as a command but not executable")
    return problems


def module_runs(module: str, repo: Path) -> bool:
    parts = module.split(".")
    if (repo / parts[0]).is_dir():
        path = repo.joinpath(*parts)
        return path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def missing_modules(text: str, repo: Path) -> list[str]:
    return [f"python3 -m {m}: no such module" for m in dict.fromkeys(PYTHON_M.findall(text))
            if not module_runs(m, repo)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    out: set[str] = set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(text: str, doc: Path) -> list[str]:
    problems: list[str] = []
    for target in LINK.findall(FENCE.sub("", text)):
        if re.match(r"[a-z]+:", target):
            continue  # an absolute URL
        file_part, _, anchor = target.partition("#")
        linked = (doc.parent / file_part).resolve() if file_part else doc
        if not linked.exists():
            problems.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
            problems.append(f"{target}: no heading with that anchor in {linked.name}")
    return problems


def layout_problems(text: str, repo: Path) -> list[str]:
    """Each name in a row of the '## Layout' table exists in that row's folder."""
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    problems: list[str] = []
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert rows, "README has no layout table"
    for row in rows:
        cells = row.split(" | ")
        folder = cells[0].strip("| `").rstrip("/")
        for name in (n.rstrip("/") for n in INLINE.findall(" | ".join(cells[1:]))):
            if "/" in name or " " in name:
                continue  # repository-relative: checked with every other path
            base = repo / folder / name
            candidates = [base, base.with_name(name + ".py"), *base.parent.glob(name + ".*"),
                          repo / "exo_init" / name, repo / name]
            if not any(c.exists() for c in candidates):
                problems.append(f"layout row {folder}: {name} not found")
    return problems


DATE = re.compile(r"\d{4}-\d{2}-\d{2}\b")


def command_problem(command: str, repo: Path) -> str | None:
    """Why `command` is not one a reader can run to get a figure, or None."""
    words = command.split()
    if words[:2] == ["python3", "-m"] and len(words) > 2:
        module = words[2]
        if not module_runs(module, repo):
            return f"python3 -m {module}: no such module"
        if module == "pytest":
            files = [w for w in words[3:] if w.endswith(".py") or ".py::" in w]
            if not ({"-s", "--collect-only"} & set(words)) or not files:
                return "pytest without -s (or --collect-only) and a test file prints no figure"
            if "--collect-only" in words:
                return None  # (it prints the count of cases)
            for f in files:
                path = repo / f.split("::")[0]
                if not path.is_file() or "print(" not in path.read_text():
                    return f"{f}: not a test file that prints"
            return None
        source = repo.joinpath(*module.split(".")).with_suffix(".py")
        if source.is_file() and not re.search(r"\b(print|log)\(", source.read_text()):
            return f"python3 -m {module} prints nothing"
        return None
    path = repo / words[0] if words else repo
    if words and path.is_file() and os.access(path, os.X_OK):
        return None
    return f"{command}: not a command in this repository"


def figure_problems(text: str, repo: Path) -> list[str]:
    """Each row of README's '## Figures' table: a runnable command that prints figures, and a date."""
    section = text.split("\n## Figures\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| ---")][1:]
    assert rows, "README has no figures table"
    problems: list[str] = []
    for row in rows:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", row.strip().strip("|"))]
        if len(cells) != 4:
            problems.append(f"figure row {row[:60]!r}: {len(cells)} cells, not figure | value | command | measured")
            continue
        figure, _, command, measured = cells
        commands = INLINE.findall(command)
        if not commands:
            problems.append(f"figure {figure[:60]!r}: no command")
        problems += [f"figure {figure[:60]!r}: {why}" for c in commands
                     if (why := command_problem(c, repo)) is not None]
        if not DATE.match(measured):
            problems.append(f"figure {figure[:60]!r}: no date of the run")
    return problems


def test_every_figure_has_a_command_and_a_date() -> None:
    assert figure_problems((REPO / "README.md").read_text(), REPO) == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_paths_exist(doc: Path) -> None:
    assert missing_paths(doc.read_text(), REPO) == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_python_modules_exist(doc: Path) -> None:
    assert missing_modules(doc.read_text(), REPO) == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_links_resolve(doc: Path) -> None:
    assert broken_links(doc.read_text(), doc) == []


def test_layout_table_names_exist() -> None:
    assert layout_problems((REPO / "README.md").read_text(), REPO) == []


def test_readme_names_the_two_commands_and_the_cheap_first_step() -> None:
    first_screen = "\n".join((REPO / "README.md").read_text().splitlines()[:25])
    for command in ("qemu/run", "tests/run", 'tests/run -m "not vm"'):
        assert command in first_screen
    # As written, with no sudo: they work as root on a machine without sudo (tests/test_as_root.py).
    assert "sudo " not in "\n".join(split_code(first_screen)[0])


SYSCTL = re.compile(r"`((?:kernel|net|vm|fs|dev|user)\.[\w.]+)=([^`]+)`")


def test_readme_lists_the_hardening_sysctls_pid1_sets() -> None:
    """Issue 13: the kernel sysctls PID 1 sets at boot are listed in README, each with its value:
    the paragraph names exactly early.HARDENING_SYSCTLS, no more, no fewer."""
    text = (REPO / "README.md").read_text()
    start = text.index("**Kernel hardening at boot.**")
    paragraph = text[start:text.index("\n\n", start)]
    listed = SYSCTL.findall(paragraph)
    assert len(listed) == len(dict(listed)), f"named twice: {listed}"
    assert dict(listed) == {name: value for name, value, _required in early.HARDENING_SYSCTLS}


# The checkers themselves, on a small repository of their own: each finds what it should.

def test_checkers_find_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("")
    (tmp_path / "pkg" / "run").write_text("#!/bin/sh\n")
    (tmp_path / "doc.md").write_text("# Title\n\n## A `code` heading\n")
    text = "\n".join([
        "`pkg/mod.py` and `pkg/gone.py`, `pkg/*.py` and `pkg/*.nix`; `/abs/path` is not ours.",
        "```sh", "sudo pkg/run --flag   # not executable", "```",
        "`python3 -m pkg.mod`, `python3 -m pkg.nothing`, `python3 -m json.tool`, `python3 -m no_such_mod`.",
        "[ok](doc.md#a-code-heading) [bad anchor](doc.md#nope) [gone](gone.md) [web](https://example.org/x)",
    ])
    assert missing_paths(text, tmp_path) == [
        "pkg/run: run as a command but not executable",
        "pkg/gone.py: no such file or directory",
        "pkg/*.nix: matches nothing",
    ]
    assert missing_modules(text, tmp_path) == ["python3 -m pkg.nothing: no such module",
                                               "python3 -m no_such_mod: no such module"]
    assert broken_links(text, tmp_path / "README.md") == ["doc.md#nope: no heading with that anchor in doc.md",
                                                          "gone.md: no such file"]
    layout = "intro\n## Layout\n\n| path | what |\n| --- | --- |\n| `pkg/` | `mod.py`, `run`, `lost.py` |\n"
    assert layout_problems(layout, tmp_path) == ["layout row pkg: lost.py not found"]


def test_figure_checker_finds_figures_without_a_command_or_a_date(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "bench.py").write_text("print(1)\n")
    (tmp_path / "tests" / "quiet.py").write_text("x = 1\n")
    (tmp_path / "tests" / "test_x.py").write_text("def test_x() -> None:\n    print(2)\n")
    (tmp_path / "run").write_text("#!/bin/sh\n")
    (tmp_path / "run").chmod(0o755)
    table = "\n".join([
        "intro", "## Figures", "", "| figure | value | command | measured |", "| --- | --- | --- | --- |",
        "| good bench | 1 s | `python3 -m tests.bench 3` | 2026-12-04 (abc) |",
        "| good test | 2 s | `python3 -m pytest -s tests/test_x.py` | 2026-12-04 |",
        "| good script | 3 | `run` | 2026-12-04 |",
        "| good count | 9 | `python3 -m pytest --collect-only -q tests/test_x.py -k x` | 2026-12-04 |",
        "| no command | 4 s | measured by hand | 2026-12-04 |",
        "| no date | 5 s | `python3 -m tests.bench` | recently |",
        "| silent module | 6 | `python3 -m tests.quiet` | 2026-12-04 |",
        "| pytest without -s | 7 | `python3 -m pytest tests/test_x.py` | 2026-12-04 |",
        "| gone | 8 | `python3 -m tests.gone` | 2026-12-04 |",
        "", "## Next", "",
    ])
    assert figure_problems(table, tmp_path) == [
        "figure 'no command': no command",
        "figure 'no date': no date of the run",
        "figure 'silent module': python3 -m tests.quiet prints nothing",
        "figure 'pytest without -s': pytest without -s (or --collect-only) and a test file prints no figure",
        "figure 'gone': python3 -m tests.gone: no such module",
    ]


def test_slugs_follow_github() -> None:
    assert slug("The dev image (`qemu/`)") == "the-dev-image-qemu"
    assert slug("Nexquelium: the compositor, and the Sentry dashboard") == \
        "nexquelium-the-compositor-and-the-sentry-dashboard"
    assert anchors("# A\n## A\n") == {"a", "a-1"}
