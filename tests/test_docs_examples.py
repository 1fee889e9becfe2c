"""The documented examples that use `make demo`'s output run against a real one (issue 21).

tests/test_docs.py checks statically that every `demo_out/…` path the docs name is one the demo
writes; here every bash block of README.md and docs/ that mentions `demo_out` is *run*, line by
line, in a scratch folder holding a copy of a finished demo output (`DCESYNTH_DEMO_OUT`). A line
that cannot run as written in a test falls under an explicit rule of RULES below; a line no rule
covers fails the test, so a new example cannot be skipped silently.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# test_docs' helpers, loaded by path: pytest's importlib mode puts no test folder on sys.path
_spec = importlib.util.spec_from_file_location(
    "_test_docs", Path(__file__).with_name("test_docs.py")
)
assert _spec and _spec.loader
test_docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(test_docs)
ROOT, DEMO_PATH = test_docs.ROOT, test_docs.DEMO_PATH


@dataclass(frozen=True)
class Rule:
    pattern: str  # re.search on the line without its `.venv/bin/` prefix
    how: str  # assign | skip | help | ui | override | weights | run
    why: str
    extra: str = ""  # `override`: arguments appended (cost overrides of the command's config)


# First match wins, so each line lands in exactly one category.
RULES = [
    Rule(r"^[A-Za-z_]\w*=", "assign", "a shell variable: prefixed to every later line"),
    Rule(r"PRED_DIR|new_patients/", "skip", "a placeholder for the reader's own data"),
    Rule(r"^make demo\b", "help", "it made the output under test; `make -n demo` only"),
    Rule(r"^ray job submit\b", "help", "needs a Ray cluster and /shared storage"),
    Rule(r"^dcectl (study|submit|bench)\b", "help", "an hour / a cluster / a benchmark"),
    Rule(r"^dcectl sweep (?!status\b)", "help", "re-runs the demo's whole sweep"),
    Rule(r"^dcectl ui runs\b", "help", "no line of its block writes a runs/ store"),
    Rule(r"^dcectl ui\b", "ui", "a server: must answer HTTP 200 on a free port, then stopped"),
    # TrainConfig.epochs: one epoch still reads the config and dataset and writes the run folder
    Rule(r"^dcectl train (?!--resume)", "override", "minutes of Ray Train", "epochs=1"),
    # SegmentConfig.backend: the same study graph (prepare, plan, folds, Table 3) in seconds
    Rule(
        r"^dcectl segment (?!status|--resume)",
        "override",
        "nnU-Net folds: ~15 min",
        "backend=threshold",
    ),
    # docs/evaluation.md: a configured metric whose file is missing fails first, with a message
    Rule(
        r"^dcectl (select|evaluate|trust) (?!.*(--no-pretrained|eval_no_weights))",
        "weights",
        "needs pretrained weights: exit 0 where present, else a clean refusal (exit 2)",
    ),
    Rule(
        r"^dcectl (phantom|ingest|train --resume|select|evaluate|trust|synthesize|export|predict"
        r"|model info|weights status|(sweep|segment) status|segment --resume|challenge \w+)\b",
        "run",
        "cheap enough as written",
    ),
]


@dataclass(frozen=True)
class Line:
    doc: str
    text: str  # backslash continuations joined
    rule: Rule | None


def _bare(text: str) -> str:
    return text.strip().removeprefix("$ ").removeprefix(".venv/bin/")


def _uncomment(text: str) -> str:
    return re.sub(r"\s+#\s.*$", "", text)


def classify(text: str) -> Rule | None:
    return next((r for r in RULES if re.search(r.pattern, _bare(text))), None)


def demo_blocks(docs: list[Path]) -> list[tuple[str, list[Line]]]:
    """(document, lines) of every code block of ``docs`` that mentions `demo_out`, in order."""
    found = []
    for doc in docs:
        if doc in test_docs.GENERATED:
            continue
        name = str(doc.relative_to(ROOT)) if doc.is_relative_to(ROOT) else doc.name
        for block in test_docs._code_blocks(doc.read_text()):
            if "demo_out" not in block:
                continue
            texts = [t.strip() for t in re.sub(r"\s*\\\n\s*", " ", block).splitlines()]
            lines = [Line(name, t, classify(t)) for t in texts if t and not t.startswith("#")]
            found.append((name, lines))
    return found


def unclassified(blocks: list[tuple[str, list[Line]]]) -> list[str]:
    return [f"{ln.doc}: {ln.text}" for _, lines in blocks for ln in lines if ln.rule is None]


BLOCKS = demo_blocks(test_docs.DOCS)


def test_examples_are_collected_and_every_line_is_classified(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text(
        "```bash\nR=demo_out/sweeps/demo/runs/<trial>\n.venv/bin/dcectl export $R \\\n"
        "    --out m.dcem   # one file\n# a comment\n.venv/bin/dcectl frobnicate demo_out\n```\n"
        "```bash\n.venv/bin/dcectl study\n```\n"  # no demo_out: not an example of its output
    )
    ((_, lines),) = demo_blocks([doc])
    assert [ln.text for ln in lines][1] == ".venv/bin/dcectl export $R --out m.dcem   # one file"
    assert [ln.rule and ln.rule.how for ln in lines] == ["assign", "run", None]
    assert unclassified(demo_blocks([doc])) == ["x.md: .venv/bin/dcectl frobnicate demo_out"]
    assert len(BLOCKS) >= 8 and not unclassified(BLOCKS), unclassified(BLOCKS)


# -- running them ----------------------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in folder.rglob("*")
    }


def _relocate(copy: Path, original: Path) -> None:
    """The demo records absolute paths into its output (configs, selection, MLflow artefact
    locations); the user's demo_out points at itself. Point the copy's at the copy, so that it
    reads like a demo made here and no command writes into the original."""
    old, new = str(original.resolve()), str(copy.resolve())
    for f in copy.rglob("*"):
        if f.suffix in {".yaml", ".json"} and f.is_file() and not f.is_symlink():
            try:  # text only: Tune's searcher state is a pickle named .json
                text = f.read_text()
            except UnicodeDecodeError:
                continue
            if old in text:
                f.write_text(text.replace(old, new))
    # every store: the demo's, and any a later command opened below it (export logs into its
    # run's parent folder) — a missed one sent the copy's artefacts into the original (seen)
    for store in copy.rglob("mlflow.db"):
        with sqlite3.connect(store) as db:
            db.execute("UPDATE experiments SET artifact_location=replace(artifact_location,?,?)",
                       (old, new))  # fmt: skip
            db.execute("UPDATE runs SET artifact_uri=replace(artifact_uri,?,?)", (old, new))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(text: str, n: int = 40) -> str:
    return "\n".join(text.splitlines()[-n:])


def _serve(cmd: str, cwd: Path, env: dict[str, str]) -> str | None:
    """Start a `dcectl ui` line, wait for HTTP 200, stop its process group: None or the error."""
    port = _free_port()
    proc = subprocess.Popen(["bash", "-c", f"{cmd} --port {port}"], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120  # mlflow's server takes up to a minute on 2 cores
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    if r.status == 200:
                        return None
            except OSError:
                time.sleep(2)
        return f"no HTTP 200 on port {port} (exit {proc.poll()})"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        if proc.returncode not in (0, -signal.SIGTERM, 143):
            print(_tail(out))


def _help_command(text: str) -> str:
    """The command's own help: its words up to the first argument or option."""
    words = shlex.split(_uncomment(_bare(text)))
    if words[0] == "make":  # prints the recipe, runs nothing; the Makefile is the repository's
        return f"make -n -C {ROOT} " + " ".join(words[1:])
    lead = list(itertools.takewhile(re.compile(r"[a-z][a-z-]*").fullmatch, words))
    return " ".join([*lead, "--help"])


@pytest.fixture(scope="module")
def demo_out() -> Iterator[Path]:
    out = Path(os.environ["DCESYNTH_DEMO_OUT"]).resolve()
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and not p.is_symlink())
    assert size < 1e9, f"{out}: {size / 1e9:.1f} GB, too large to copy once per block"
    before = _snapshot(out)
    yield out
    assert _snapshot(out) == before, f"an example changed the demo output {out}"


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.skipif(
    not (
        Path(os.environ.get("DCESYNTH_DEMO_OUT", "/nonexistent")) / "sweeps/demo/selection.json"
    ).is_file(),
    reason="set DCESYNTH_DEMO_OUT to a finished `dcectl demo --out DIR` to run the examples",
)
@pytest.mark.parametrize("doc, lines", BLOCKS, ids=[f"{d}#{i}" for i, (d, _) in enumerate(BLOCKS)])
def test_documented_examples_run_on_a_demo_output(
    doc: str, lines: list[Line], demo_out: Path, tmp_path: Path
) -> None:
    trial = json.loads((demo_out / "sweeps/demo/selection.json").read_text())["best"]
    trial = trial.split("/")[0]  # "trial_…/epoch N", as test_docs' real-output test reads it
    shutil.copytree(demo_out, tmp_path / "demo_out", symlinks=True)
    _relocate(tmp_path / "demo_out", demo_out)
    for name in ("jobs", "search_spaces", ".venv"):  # `.venv/bin/dcectl`, relative configs
        (tmp_path / name).symlink_to(ROOT / name)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local Ray, always
    # Tracking as the user gets it (the conftest turns it off for the suite): the examples log
    # into the copy's store, which `dcectl ui` then serves; _relocate keeps it in the copy.
    env.pop("DCESYNTH_TRACKING", None)
    env["PATH"] = f"{tmp_path / '.venv/bin'}:{env['PATH']}"  # tracking.md's bare `dcectl`
    assigns: list[str] = []
    for ln in lines:
        assert ln.rule is not None, f"{doc}: no rule for {ln.text!r}"
        text, how = ln.text.replace("<trial>", trial), ln.rule.how
        where = f"{doc}: {ln.text}\n({how}: {ln.rule.why})"
        if how == "assign":
            assigns.append(_uncomment(text))
            continue
        if how == "skip":
            continue
        shown = text
        for a in assigns:  # the variables' values, to check the paths a line names
            k, v = a.split("=", 1)
            shown = shown.replace(f"${k}", v)
        for p in DEMO_PATH.findall(shown):
            assert (tmp_path / p.rstrip("/.")).exists(), f"{where}\nno {p} in the demo output"
        cmd = "; ".join(["set -euo pipefail", *assigns, ""])
        if how == "ui":
            err = _serve(cmd + _uncomment(text), tmp_path, env)
            assert err is None, f"{where}\n{err}"
            continue
        run = _help_command(text) if how == "help" else _uncomment(text) + " " + ln.rule.extra
        res = subprocess.run(["bash", "-c", cmd + run], cwd=tmp_path, env=env, text=True,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)  # fmt: skip
        out = f"{where}\n$ {run}\nexit {res.returncode}; last lines:\n{_tail(res.stdout)}"
        if how == "weights" and res.returncode != 0:
            assert res.returncode == 2 and "Traceback" not in res.stdout, out
            assert re.search(r"weights", res.stdout), out  # names the file and `weights fetch`
            continue
        assert res.returncode == 0, out
        if how in ("run", "override"):  # what the line promises to write is there
            outs = re.findall(r"--out\s+(\S+)", _uncomment(shown))
            missing = [o for o in outs if not (tmp_path / o).exists()]
            assert not missing, f"{out}\nnot written: {missing}"
    shutil.rmtree(tmp_path / "demo_out")  # ~300 MB a block; pytest keeps 3 sessions' folders
