"""Durable writes: a full disk leaves the previous file whole, a metrics line is never cut in
half, and errors of the machine become one line naming the path and the free space."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from dcesynth import durable
from dcesynth.durable import (
    MachineError,
    append_line,
    atomic_path,
    atomic_write_text,
    complete_lines,
    describe_os_error,
    is_machine_error,
    os_error_of,
    replace_dir,
)


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_failed_atomic_write_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "report.json"
    atomic_write_text(path, "old")
    monkeypatch.setattr(durable.os, "fsync", _enospc)  # the disk fills as the data is flushed
    with pytest.raises(OSError) as e:
        atomic_write_text(path, "new")
    assert e.value.errno == errno.ENOSPC
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary left


def test_atomic_path_renames_only_on_success(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer died")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"whole")
    assert path.read_bytes() == b"whole" and list(tmp_path.iterdir()) == [path]


class _FullAfter:
    """A file object whose write lands ``n`` bytes, then fails with ENOSPC (a full disk)."""

    def __init__(self, f, n: int) -> None:
        self.f, self.n = f, n

    def write(self, data: bytes) -> int:
        self.f.write(data[: self.n])
        self.f.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def test_append_line_leaves_no_partial_line(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "metrics.jsonl"
    append_line(path, '{"epoch": 1}')
    real_open = open
    monkeypatch.setattr(
        "builtins.open", lambda p, mode="r", *a, **k: _FullAfter(real_open(p, mode, *a, **k), 5)
    )
    with pytest.raises(OSError, match="No space"):
        append_line(path, '{"epoch": 2, "loss_g": 1.0}')
    monkeypatch.undo()
    assert path.read_text() == '{"epoch": 1}\n'


def test_complete_lines_drops_a_cut_line(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"epoch": 1}\n\n{"epoch": 2}\n{"epo')
    assert complete_lines(path) == ['{"epoch": 1}', '{"epoch": 2}']
    assert complete_lines(tmp_path / "none") == []


def test_replace_dir_swaps_whole_folders(tmp_path: Path) -> None:
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "a").write_text("new")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old").write_text("old")
    replace_dir(tmp_path / "new", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a"]


def test_describe_names_path_errno_and_free_space(tmp_path: Path) -> None:
    e = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "x.nii.gz"))
    line = describe_os_error(e)
    assert "ENOSPC" in line and str(tmp_path / "x.nii.gz") in line and "free on that" in line
    assert "\n" not in line


def test_os_error_found_through_wrappers() -> None:
    inner = OSError(errno.EIO, "Input/output error", "/data/x")

    class WorkerGroupError(Exception):  # shaped as Ray Train's
        def __init__(self):
            super().__init__("Training failed due to worker errors")
            self.worker_failures = {0: type("UserExc", (Exception,), {})()}
            self.worker_failures[0]._base_exc = inner

    wrapped = WorkerGroupError()
    assert os_error_of(wrapped) is inner and is_machine_error(wrapped)
    assert not is_machine_error(ValueError("bad case"))
    assert not is_machine_error(FileNotFoundError(errno.ENOENT, "gone"))  # not the machine's
    m = MachineError(errno.ENOSPC, "ingest stopped: one line", "/x")
    assert str(m) == "ingest stopped: one line" and isinstance(m, OSError)
    import pickle

    assert str(pickle.loads(pickle.dumps(m))) == str(m)
