"""One writer per output folder: a lock file beside it, held for as long as the command runs.

Two ``dcectl ingest`` runs into one ``--out`` would each clean up the other's temporary folder;
two trainings in one run folder would interleave checkpoints. Every command that writes a
folder (ingest's dataset, a training run, a sweep's storage, a segmentation study, predict's
OUT) holds :func:`folder_lock` on it; a second process is refused at once with the holder's
PID, host, start time and command line.

The lock is ``.<folder name>.lock`` beside the folder (inside it would make a fresh dataset
folder look non-empty), locked with ``flock``: the kernel releases it when its process dies,
however it dies. A lock file left by a killed process is therefore stale as soon as ``flock``
succeeds on it; it is taken over with a warning naming the dead holder. Where the file system
refuses ``flock`` (some network mounts), the holder's PID is checked on this host instead.
Locks are re-entrant within a process (``dcectl study`` runs stages that lock the same
folders).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

_HELD: dict[str, int] = {}  # lock file → how many times this process holds it


class FolderLocked(ValueError):
    """Another process writes the folder; the message names it (a user error: exit 2)."""


def lock_path(folder: str | Path) -> Path:
    """The lock file of ``folder``: ``.<name>.lock`` beside it."""
    f = Path(folder).absolute()
    return f.parent / f".{f.name}.lock"


def _holder_text(info: dict) -> str:
    started = info.get("started", "?")
    cmd = info.get("command", "")
    return f"PID {info.get('pid', '?')} on {info.get('host', '?')}, started {started}" + (
        f" ({cmd})" if cmd else ""
    )


def _read(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 65536)
    try:
        info = json.loads(raw) if raw.strip() else {}
    except ValueError:
        info = {"pid": "?", "command": "unreadable lock file"}
    return info if isinstance(info, dict) else {}


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _mine(what: str) -> bytes:
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv)[:300],
        "what": what,
    }
    return json.dumps(info).encode()


def _acquire(path: Path, folder: Path, what: str) -> int:
    """Open and lock ``path``; returns the descriptor. Raises FolderLocked when held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(20):  # the file may be replaced between open and lock: try again
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                flocked = True
            except BlockingIOError:
                holder = _read(fd)
                raise FolderLocked(
                    f"{folder}: in use by another {holder.get('what', 'dcectl')} process "
                    f"({_holder_text(holder)}); wait for it to finish, or stop it "
                    f"(lock file {path})"
                ) from None
            except (ImportError, OSError) as e:
                if isinstance(e, OSError) and e.errno not in (
                    errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL
                ):  # fmt: skip
                    raise
                flocked = False  # no flock here: judge the holder by its PID below
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if not same:  # its holder removed it as we opened it: lock the new one
                os.close(fd)
                continue
            old = _read(fd)
            if old:
                here = old.get("host") == socket.gethostname()
                if not flocked and (not here or _alive(old.get("pid"))):
                    raise FolderLocked(
                        f"{folder}: in use by another {old.get('what', 'dcectl')} process "
                        f"({_holder_text(old)}); if it is not running, delete {path}"
                    )
                log.warning(
                    "%s: taking over the lock of %s, which is no longer running",
                    folder,
                    _holder_text(old),
                )
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, _mine(what))
            os.fsync(fd)
            return fd
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
    raise FolderLocked(f"{folder}: its lock file {path} keeps changing; another process races")


@contextmanager
def folder_lock(folder: str | Path, what: str = "dcectl") -> Iterator[Path]:
    """Hold the lock of ``folder`` for the ``with`` block.

    Args:
        folder: the output folder (it need not exist yet).
        what: the command, for the message a second process gets (e.g. ``ingest``).

    Raises:
        FolderLocked: another live process holds it (its PID, host, start and command named).
    """
    path = lock_path(folder)
    key = str(path)
    if _HELD.get(key):
        _HELD[key] += 1
        try:
            yield path
        finally:
            _HELD[key] -= 1
        return
    fd = _acquire(path, Path(folder), what)
    _HELD[key] = 1
    try:
        yield path
    finally:
        del _HELD[key]
        # remove it while still locked, then unlock: a process that opened the old file sees
        # it gone (the inode check above) and locks a fresh one
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)
