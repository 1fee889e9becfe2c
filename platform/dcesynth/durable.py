"""Durable writes: every artefact appears whole under its final name, or not at all.

One discipline for all of them (datasets and their markers, checkpoints, metrics lines, model
files, reports, predictions): write to a temporary sibling (``.tmp-<name>.…``, in the same
folder so the rename never crosses a file system), ``fsync`` it, rename it over the final
name, ``fsync`` the folder so the rename itself survives a power cut. A full disk (ENOSPC), an
I/O error or a refused permission then leaves the previous state exactly as it was, and the
``OSError`` reaches the caller: it is about the machine, never about the data.

:func:`describe_os_error` turns such an error into one line that names the path and, for a
full disk, how much space there was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Every partial artefact's name starts with this; readers skip hidden names, and each writer's
# next run removes its own leftovers.
TMP_PREFIX = ".tmp-"


def fsync_dir(folder: str | Path) -> None:
    """Make a rename or creation inside ``folder`` durable (no-op where folders cannot be
    opened for it, e.g. on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some file systems (FUSE) refuse it on a folder
            os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write to; on success it is fsynced and renamed to
    ``path``; on any error it is removed and ``path`` is left as it was.

    Args:
        path: the final file name (its folder is created).

    Example::

        with atomic_path(run / "state.pt") as tmp:
            torch.save(state, tmp)
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{p.name}.", dir=p.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:  # the writer may have closed its own handle: reopen
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(p.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` so that readers see the old file or the whole new one, never a part."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str, keep_if_same: bool = False) -> None:
    """Write ``text`` so that readers see the old file or the whole new one, never a part.

    Args:
        path: the file.
        text: its whole new content (UTF-8).
        keep_if_same: leave an identical file untouched (its mtime too, which fingerprints of
            downstream steps, like ingest's "up to date", rely on).
    """
    p = Path(path)
    if keep_if_same and p.is_file() and p.read_text() == text:
        return
    atomic_write_bytes(p, text.encode())


def append_line(path: str | Path, line: str) -> None:
    """Append one line (a newline is added) and fsync it.

    A log such as metrics.jsonl cannot be rewritten on every epoch, so an append can still be
    cut short by a full disk: the partial last line is then removed here before the error
    propagates, and :func:`complete_lines` ignores one left by a killed process.
    """
    p = Path(path)
    data = (line.rstrip("\n") + "\n").encode()
    with open(p, "ab") as f:
        start = f.tell()
        try:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        except OSError:
            with contextlib.suppress(OSError):
                f.truncate(start)  # no partial line for the next reader
            raise


def complete_lines(path: str | Path) -> list[str]:
    """The non-empty, newline-terminated lines of ``path`` (a cut-off last line is left out);
    none when the file does not exist."""
    p = Path(path)
    if not p.is_file():
        return []
    text = p.read_text()
    body = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    return [ln for ln in body.splitlines() if ln.strip()]


def fsync_tree(root: str | Path) -> None:
    """fsync every file and folder below ``root`` (before a folder built under a temporary
    name is renamed into place: the rename must not become durable before its contents)."""
    for dirpath, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as f:
                os.fsync(f.fileno())
        fsync_dir(dirpath)


def replace_dir(tmp: str | Path, final: str | Path) -> None:
    """Move the finished folder ``tmp`` to ``final`` (same parent), its contents made durable
    first; an existing ``final`` is replaced (it is removed only once ``tmp`` is complete)."""
    tmp, final = Path(tmp), Path(final)
    fsync_tree(tmp)
    if final.exists():
        old = final.with_name(f"{TMP_PREFIX}old-{final.name}-{os.getpid()}")
        os.replace(final, old)  # out of the way in one step; removed after the new one is in
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    fsync_dir(final.parent)


def free_bytes(path: str | Path) -> int | None:
    """Free bytes on the file system holding ``path`` (its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def tree_bytes(root: str | Path) -> int:
    """Bytes of the files below ``root`` (0 when it does not exist)."""
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, name))
            except OSError:
                continue
    return total


def human_bytes(n: float | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def os_error_of(exc: BaseException) -> OSError | None:
    """The ``OSError`` (with an errno) behind ``exc``: itself, its cause, or the error a Ray
    task or Ray Train worker raised (Ray re-raises them wrapped)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        if isinstance(e, OSError) and e.errno is not None:
            return e
        # not __context__: an error raised while another is handled is not caused by it
        todo += [getattr(e, "cause", None), e.__cause__]
        # Ray Train's wrappers: a worker group's failures by rank, the controller's failure,
        # a user exception carried with its traceback
        todo += list((getattr(e, "worker_failures", None) or {}).values())
        todo += [getattr(e, "controller_failure", None), getattr(e, "_base_exc", None)]
    # Some layers keep only the text (pyarrow's file system copy, a traceback string): an
    # "[Errno 28] No space left on device: 'path'" in a message is taken at its word.
    for e in seen:
        if m := _ERRNO_TEXT.search(str(e)):
            no = int(m["no"])
            return OSError(no, os.strerror(no), m["path"])
    return None


_ERRNO_TEXT = re.compile(r"\[[Ee]rrno (?P<no>\d+)\] [^:'\n]+(?::\s*'(?P<path>[^'\n]+)')?")


def describe_os_error(exc: OSError, where: str | Path | None = None) -> str:
    """One line for an error about the machine: what failed, on which path, and for a full
    disk how much was free.

    Args:
        exc: the error (``errno``, ``strerror`` and ``filename`` are used when set).
        where: the path to name when the error carries none (e.g. the folder being written).
    """
    path = exc.filename or where
    what = exc.strerror or str(exc)
    name = errno.errorcode.get(exc.errno or 0, "")
    line = f"{what} ({name})" if name else what
    if path is not None:
        line += f": {path}"
    if exc.errno == errno.ENOSPC and path is not None:
        line += f" ({human_bytes(free_bytes(path))} free on that file system)"
    return line


# errno values that say something about this machine (disk, permissions, I/O, limits), never
# about the data being read: a reader that meets one stops the command instead of skipping a
# case, so that a re-run on a healthy machine does the missing work.
MACHINE_ERRNOS = frozenset(
    getattr(errno, n)
    for n in (
        "ENOSPC", "EDQUOT", "EIO", "EACCES", "EPERM", "EROFS", "ENOMEM", "EMFILE", "ENFILE",
        "ESTALE", "ENOLCK", "EFBIG",
    )
    if hasattr(errno, n)
)  # fmt: skip


def is_machine_error(exc: BaseException) -> bool:
    """Whether ``exc`` is (or wraps) an OSError about the machine (see ``MACHINE_ERRNOS``)."""
    e = os_error_of(exc)
    return e is not None and e.errno in MACHINE_ERRNOS


class MachineError(OSError):
    """A command stopped by the machine (full disk, I/O error, permissions): ``str()`` is one
    line that names the path and what to do; nothing was marked complete."""

    def __init__(self, err: int, message: str, filename: str | None = None) -> None:
        super().__init__(err, message, filename)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # crosses Ray's object store whole
        return (type(self), (self.errno, self.message, self.filename))
