"""``dcectl weights fetch``: download a registry file from its official URL (or a mirror),
verified before it is installed.

Nothing else in the platform downloads: a run or a metric only looks for its file
(:func:`dcesynth.weights.resolve`). Fetching is one explicit step, so machines without internet
keep working with ``dcectl weights add``.

The rules (each has a test in ``tests/test_weights_fetch.py``):

* the file is streamed into a temporary file in the weights folder and hashed on the way; it
  gets its registry name only once its sha256 matches, by a rename inside that folder (atomic),
  so a partial, corrupted or interrupted download never carries the real name;
* the temporary file is removed on any failure, Ctrl-C included;
* an entry without a published checksum (RadImageNet) or without an official direct URL is
  never fetched: the user is told where to get it and how to ``weights add`` it;
* a file already present and verified is not downloaded again.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dcesynth import weights as W
from dcesynth.weights import WeightsError, WeightsSpec

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # bytes read (and hashed) at a time
LOG_EVERY_S = 10.0  # a progress log line this often when there is no terminal for a bar
DEFAULT_TIMEOUT_S = 60.0  # per connect / read, not for the whole file
MIRROR_SCHEMES = ("http", "https")
USER_AGENT = "dcesynth-weights-fetch"  # some CDNs refuse urllib's default agent

State = Literal["installed", "present", "manual", "failed"]


class NotFetchable(WeightsError):
    """The entry has no official direct URL or no published checksum: install it by hand."""


@dataclass(frozen=True)
class FetchOutcome:
    """What happened to one registry entry.

    ``state``: installed (downloaded and verified now), present (already there and verified:
    not downloaded again), manual (cannot be fetched; ``message`` says where to get it), failed
    (``message`` names the URL and the error; nothing was installed).
    """

    name: str
    state: State
    path: Path
    message: str
    url: str | None = None

    @property
    def ok(self) -> bool:
        return self.state in ("installed", "present")


def check_mirror(base_url: str) -> str:
    """``base_url`` without a trailing slash, or a :class:`WeightsError` naming what is allowed."""
    parsed = urllib.parse.urlparse(base_url)
    if parsed.scheme not in MIRROR_SCHEMES or not parsed.netloc:
        raise WeightsError(
            f"mirror {base_url!r}: expected a URL with scheme {' or '.join(MIRROR_SCHEMES)} and a "
            f"host, e.g. https://mirror.example.org/weights (files are fetched by their name)"
        )
    return base_url.rstrip("/")


def download_url(s: WeightsSpec, base_url: str | None = None) -> str | None:
    """Where ``s`` is fetched from: ``<base_url>/<filename>`` with a mirror, else its own url."""
    if base_url is None:
        return s.url
    return f"{check_mirror(base_url)}/{urllib.parse.quote(s.filename)}"


def _by_hand(s: WeightsSpec, url: str | None) -> str:
    """How to install ``s`` without ``fetch`` (the RadImageNet sources already say it)."""
    where = f"download {url} (source: {s.source})" if url else f"get it from {s.source}"
    add = f"`dcectl weights add FILE --name {s.name}`"
    return where if add in s.source else f"{where}, then install it with {add}"


def fetch(
    name: str | WeightsSpec,
    weights_dir: Path | None = None,
    *,
    base_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    progress: bool | None = None,
) -> FetchOutcome:
    """Download registry entry ``name`` into ``weights_dir`` unless it is already there.

    Args:
        name: registry name (or the entry itself).
        weights_dir: where the platform looks (default ``~/.cache/dcesynth/weights``).
        base_url: a mirror holding the files by their file name (``<base_url>/<filename>``);
            None uses each entry's official URL.
        timeout: seconds to wait for the connection and for each read.
        progress: a rich bar (True), log lines every ``LOG_EVERY_S`` (False), or a bar only
            in a terminal (None).

    Returns:
        the outcome, state ``installed`` or ``present``.

    Raises:
        NotFetchable: the entry has no official URL or no published checksum (the message says
            where to get it by hand).
        WeightsError: unknown name, bad mirror, or the download failed or did not match its
            checksum (the message names the URL and the error); nothing was installed.
    """
    s = name if isinstance(name, WeightsSpec) else W.spec(name)
    wdir = Path(weights_dir or W.DEFAULT_WEIGHTS_DIR)
    dest = wdir / s.filename
    url = download_url(s, base_url)
    try:
        W.resolve(s, wdir)
        return FetchOutcome(
            s.name, "present", dest, f"{dest} is already present and verified; not downloaded"
        )
    except WeightsError as e:
        problem = str(e) if dest.is_file() else None  # present but corrupt / unrecorded
    if s.sha256 is None or url is None:
        # never guess a URL, never install a file nothing can be checked against
        why = [
            *(["it has no stable official download URL"] if url is None else []),
            *(["its source publishes no checksum to verify it against"] if not s.sha256 else []),
        ]
        seen = f" ({problem})" if problem else ""
        raise NotFetchable(
            f"weights {s.name!r} cannot be fetched: {' and '.join(why)}{seen}; {_by_hand(s, None)}"
        )
    if problem:
        log.warning("%s: %s; downloading it again", s.name, problem)
    tmp, digest = _download(s, url, wdir, timeout, progress)
    try:
        os.replace(tmp, dest)  # same folder: atomic, the real name appears complete or not at all
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    replaced = " (replaced the unusable file)" if problem else ""
    return FetchOutcome(
        s.name,
        "installed",
        dest,
        f"installed {dest} from {url}, sha256 {digest[:16]}… verified{replaced}",
        url,
    )


def fetch_all(
    weights_dir: Path | None = None,
    *,
    base_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    progress: bool | None = None,
) -> list[FetchOutcome]:
    """:func:`fetch` every registry entry; one outcome each, failures included (never raises
    for one entry, so one dead server does not hide the state of the others). Ctrl-C stops."""
    wdir = Path(weights_dir or W.DEFAULT_WEIGHTS_DIR)
    if base_url is not None:
        check_mirror(base_url)  # a bad mirror is the user's input: one error, not N failures
    outcomes = []
    for s in list(W.REGISTRY.values()):
        try:
            outcomes.append(fetch(s, wdir, base_url=base_url, timeout=timeout, progress=progress))
        except NotFetchable as e:
            outcomes.append(FetchOutcome(s.name, "manual", wdir / s.filename, str(e)))
        except WeightsError as e:
            url = download_url(s, base_url)
            outcomes.append(FetchOutcome(s.name, "failed", wdir / s.filename, str(e), url))
    return outcomes


def _download(
    s: WeightsSpec, url: str, wdir: Path, timeout: float, progress: bool | None
) -> tuple[Path, str]:
    """Stream ``url`` into a temporary file in ``wdir``; its path and sha256 once it matches
    ``s.sha256``. On any failure the temporary file is gone and a WeightsError says why."""
    assert s.sha256 is not None
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:  # connect first: offline, nothing is created on disk
        resp = urllib.request.urlopen(req, timeout=timeout)
    except (OSError, http.client.HTTPException) as e:
        raise _network_error(s, url, e, timeout) from None
    with resp:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        # in the target folder so the final rename is atomic; a random suffix so two fetches
        # never share one; O_EXCL never writes into another file; 0o666 less the umask, as
        # `weights add` (copyfile) gives
        tmp = wdir / f".tmp-{s.filename}.{secrets.token_hex(4)}"
        try:
            wdir.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as e:
            raise WeightsError(f"weights {s.name!r}: cannot write in {wdir}: {e}") from None
        try:
            h = hashlib.sha256()
            received = 0
            with os.fdopen(fd, "wb") as out, _progress(s.name, url, total, progress) as advance:
                while True:
                    try:
                        chunk = resp.read(CHUNK)
                    except (OSError, http.client.HTTPException) as e:
                        raise _network_error(s, url, e, timeout) from None
                    if not chunk:
                        break
                    out.write(chunk)
                    h.update(chunk)
                    received += len(chunk)
                    advance(len(chunk))
            # http.client returns b"" when the server closes early, without an error: compare
            if total is not None and received != total:
                why = f"the server closed the connection after {received} of {total} bytes"
                raise _failed(s, url, why)
            digest = h.hexdigest()
            if not digest.startswith(s.sha256.lower()):
                why = (
                    f"the downloaded file has sha256 {digest[:16]}…, expected "
                    f"{s.sha256[:16]}… (corrupted in transit, or the server sent another file)"
                )
                raise _failed(s, url, why)
            return tmp, digest
        except BaseException as e:  # Ctrl-C included: no temporary file is left behind
            tmp.unlink(missing_ok=True)
            if isinstance(e, OSError):  # reads are translated above: this is the disk
                raise WeightsError(f"weights {s.name!r}: could not write {tmp}: {e}") from None
            raise


def _network_error(s: WeightsSpec, url: str, e: Exception, timeout: float) -> WeightsError:
    if isinstance(e, urllib.error.HTTPError):
        return _failed(s, url, f"the server answered HTTP {e.code} {e.reason}")
    if isinstance(e, urllib.error.URLError):
        if isinstance(e.reason, TimeoutError):
            return _failed(s, url, f"no answer within {timeout:g} s (offline?)")
        return _failed(s, url, f"cannot reach the server ({e.reason}): offline, blocked or down")
    if isinstance(e, TimeoutError):
        return _failed(s, url, f"no data for {timeout:g} s, the transfer stalled")
    return _failed(s, url, f"the connection broke ({type(e).__name__}: {e})")


def _failed(s: WeightsSpec, url: str, why: str) -> WeightsError:
    return WeightsError(
        f"weights {s.name!r}: download of {url} failed: {why}. Nothing was installed. "
        f"Retry, point --mirror at a reachable copy, or install it by hand: {_by_hand(s, url)}"
    )


def _mb(n: int | None) -> str:
    return "size unknown" if n is None else f"{n / 1e6:.1f} MB"


@contextmanager
def _progress(
    name: str, url: str, total: int | None, show: bool | None
) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(nbytes)``: a rich bar on stderr, or log lines every ``LOG_EVERY_S``."""
    if show is None:
        from dcesynth.progress import interactive

        show = interactive()
    if show:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
        with Progress(
            TextColumn("[bold]{task.description}"), *columns, console=Console(stderr=True)
        ) as bar:
            task = bar.add_task(name, total=total)
            yield lambda n: bar.advance(task, n)
        return
    log.info("%s: downloading %s (%s)", name, url, _mb(total))
    done = 0
    last = time.monotonic()

    def advance(n: int) -> None:
        nonlocal done, last
        done += n
        if time.monotonic() - last >= LOG_EVERY_S:
            last = time.monotonic()
            share = f" ({100 * done / total:.0f}%)" if total else ""
            log.info("%s: %s of %s%s", name, _mb(done), _mb(total), share)

    yield advance
