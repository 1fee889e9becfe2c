"""The repository documents itself: README and docs/ link only to files that exist in it, every
`dcectl` command they show exists, the command reference is current, and every path they name
in `make demo`'s output is one the demo writes."""

from __future__ import annotations

import inspect
import os
import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
GENERATED = {ROOT / "docs" / "cli.md"}  # the command reference: generated, not examples

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
LINK = re.compile(r"\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")


def _rel(doc: Path) -> str:
    return str(doc.relative_to(ROOT))


def _code_blocks(text: str) -> list[str]:
    return FENCE.findall(text)


def _prose(text: str) -> str:
    return FENCE.sub("", text)


def test_docs_are_found_recursively() -> None:
    names = {_rel(d) for d in DOCS}
    assert {"README.md", "docs/index.md", "docs/challenge/evaluator_notes.md"} <= names


def test_no_document_points_outside_the_repository() -> None:
    for doc in DOCS:
        assert "../shared" not in doc.read_text(), doc


def test_relative_links_resolve() -> None:
    """Every relative link and image, in README.md and every docs/**/*.md, is a file or folder."""
    broken = []
    for doc in DOCS:
        for target in LINK.findall(_prose(doc.read_text())):
            if "://" in target or target.startswith(("#", "mailto:")):
                continue
            path = target.split("#", 1)[0]
            if not (doc.parent / path).exists():
                broken.append(f"{_rel(doc)}: {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)


# -- every dcectl command shown exists -------------------------------------------------------


def _shown_commands() -> dict[str, list[str]]:
    """`dcectl …` lines of every code block, by 'file: line', as argument lists."""
    found: dict[str, list[str]] = {}
    for doc in DOCS:
        if doc in GENERATED:
            continue
        for block in _code_blocks(doc.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip().removeprefix("$ ")
                for prefix in (".venv/bin/dcectl ", "dcectl "):
                    if line.startswith(prefix):
                        words = shlex.split(line[len(prefix) :], comments=True)
                        found[f"{_rel(doc)}: {line}"] = words
    return found


def _command_path(root, words: list[str]) -> tuple[list[str], str | None]:
    """The subcommand path of ``words`` (up to the first argument or option), or an error."""
    cmd, path = root, []
    for w in words:
        if w.startswith("-"):
            if cmd is root and w == "--verbose":
                continue
            break
        commands = getattr(cmd, "commands", None)
        if commands is None:
            break  # a command's arguments start here
        if w not in commands:
            return path, f"no command {' '.join(['dcectl', *path, w])!r}"
        cmd, path = commands[w], [*path, w]
    if getattr(cmd, "commands", None) is not None and cmd is not root and not path:
        return path, "no command"
    return path, None


def test_every_dcectl_command_shown_exists() -> None:
    import typer
    from typer.testing import CliRunner

    from dcesynth.cli.app import app

    root = typer.main.get_command(app)
    shown = _shown_commands()
    assert len(shown) > 50, "the guides show dcectl commands in code blocks"
    runner = CliRunner()
    problems, checked = [], {}
    for where, words in shown.items():
        path, err = _command_path(root, words)
        if err or not path:
            problems.append(f"{where}: {err or 'no subcommand'}")
            continue
        key = tuple(path)
        if key not in checked:
            res = runner.invoke(app, [*path, "--help"])
            checked[key] = res.exit_code == 0 or f"exit {res.exit_code}: {res.output[-300:]}"
        if checked[key] is not True:
            problems.append(f"{where}: `dcectl {' '.join(path)} --help` failed: {checked[key]}")
    assert not problems, "\n".join(problems)


# -- the command reference -------------------------------------------------------------------


def test_cli_reference_is_up_to_date() -> None:
    from dcesynth.cli.reference import render

    committed = (ROOT / "docs" / "cli.md").read_text()
    assert committed == render(), "docs/cli.md is stale: run `make docs` and commit docs/cli.md"


# -- paths in make demo's output -------------------------------------------------------------

DEMO_PATH = re.compile(r"(?<![\w/.-])demo_out(?:/[^\s`'\"),;:*]+)?")
# Paths under demo_out/ that another documented command writes, not the demo, and the train
# config that writes each (its runs_dir/name is checked): an example may name one only in a
# code block that runs that config first.
WRITTEN_BY_OTHERS = {"demo_out/runs/demo_phase1": "jobs/configs/train_demo.yaml"}


def _demo_paths_shown(docs: list[Path] = DOCS) -> list[tuple[str, str, str]]:
    """(path, document, snippet) of every `demo_out/…` path in code blocks and code spans."""
    found = []
    for doc in docs:
        if doc in GENERATED:
            continue
        text = doc.read_text()
        code = _code_blocks(text) + re.findall(r"`([^`\n]+)`", _prose(text))
        for snippet in code:
            for p in DEMO_PATH.findall(snippet):
                found.append((p.rstrip("/."), doc.name, snippet))
    return found


def _not_written_by_the_demo(shown: list[tuple[str, str, str]]) -> list[str]:
    from dcesynth.cli.demo import outputs

    promised = [tuple(p.parts) for p in outputs()]
    wrong = []
    for path, doc, snippet in shown:
        if path in WRITTEN_BY_OTHERS:
            cfg_file = WRITTEN_BY_OTHERS[path]
            cfg = yaml.safe_load((ROOT / cfg_file).read_text())
            assert path == f"{cfg['runs_dir']}/{cfg['name']}", (path, cfg)
            if f"dcectl train {cfg_file}" in snippet:
                continue
            wrong.append(f"{path} (in {doc}, without `dcectl train {cfg_file}` before it)")
        elif not any(_matches(tuple(Path(path).parts), p) for p in promised):
            wrong.append(f"{path} (in {doc})")
    return sorted(set(wrong))


def _matches(shown: tuple[str, ...], promised: tuple[str, ...]) -> bool:
    """``shown`` is ``promised`` or a folder above it; a ``<placeholder>`` is any one name."""
    if len(shown) > len(promised):
        return False
    pairs = zip(shown, promised[: len(shown)], strict=True)
    return all(a == b or a.startswith("<") or b.startswith("<") for a, b in pairs)


def test_demo_manifest_uses_the_demos_own_names() -> None:
    from dcesynth.cli.demo import demo

    params = inspect.signature(demo).parameters
    assert params["out"].default == Path("demo_out")
    assert params["space"].default == Path("search_spaces/demo.yaml")
    assert params["segment"].default == Path("jobs/configs/segment_demo.yaml")
    assert yaml.safe_load((ROOT / "search_spaces/demo.yaml").read_text())["name"] == "demo"
    assert yaml.safe_load((ROOT / "jobs/configs/segment_demo.yaml").read_text())["name"] == "demo"


def test_every_demo_output_the_docs_name_is_one_the_demo_writes() -> None:
    """An example that names `make demo`'s output uses a path the demo creates (the manifest
    `dcesynth.cli.demo.outputs`, which the demo itself checks at its end)."""
    shown = _demo_paths_shown()
    assert any(p == "demo_out/sweeps/demo/runs/<trial>" for p, _, _ in shown)
    wrong = _not_written_by_the_demo(shown)
    assert not wrong, "paths `make demo` does not write:\n" + "\n".join(wrong)


def test_the_demo_path_check_finds_a_path_the_demo_never_writes(tmp_path: Path) -> None:
    doc = tmp_path / "old.md"
    doc.write_text(
        "```bash\nR=demo_out/runs/demo_phase1\ndcectl export $R --out m.dcem\n```\n"
        "`demo_out/sweeps/demo/runs/<trial>/report/report.md`, `demo_out/sweeps/demo/nope`\n"
    )
    assert _not_written_by_the_demo(_demo_paths_shown([doc])) == [
        "demo_out/runs/demo_phase1 (in old.md, without `dcectl train "
        "jobs/configs/train_demo.yaml` before it)",
        "demo_out/sweeps/demo/nope (in old.md)",
    ]


@pytest.mark.skipif(
    "DCESYNTH_DEMO_OUT" not in os.environ,
    reason="set DCESYNTH_DEMO_OUT to a finished `dcectl demo --out DIR` to check its manifest",
)
def test_a_real_demo_output_holds_every_promised_path() -> None:
    import json

    from dcesynth.cli.demo import missing_outputs

    out = Path(os.environ["DCESYNTH_DEMO_OUT"])
    trial = json.loads((out / "sweeps/demo/selection.json").read_text())["best"].split("/")[0]
    assert missing_outputs(out, 10, "demo", trial, "demo") == []
