"""Names taken from headers are untrusted: the one way they become file and folder names.

A PatientID, a SeriesDescription or a study name is whatever the sending machine wrote:
``x/y`` would make a sub-folder, ``../../evil`` or ``/etc/passwd`` would leave the folder,
and a plain "replace odd characters by _" sends ``x/y`` and ``x_y`` to the same place, so one
patient's output overwrites another's. :func:`safe_name` maps every value to one path
component, injectively:

* a value that is already a plain name (letters, digits, ``_``, ``-``, ``.``; not starting
  with ``.`` or ``-``; at most 100 characters) is kept as it is — ``Breast_MRI_001`` names its
  folder and its mask file ``Breast_MRI_001.nii.gz``;
* any other value becomes its readable part (odd characters as ``_``, at most 60 of them) plus
  ``~`` and 10 hex digits of its SHA-256: ``x/y`` → ``x_y~a1b2c3d4e5``. ``~`` never occurs in a
  kept name, so a changed name cannot equal a kept one, and two changed names differ unless
  their hashes collide (:func:`unique_names` checks a whole set).

:func:`child` joins such a name to its folder and checks that the result stays inside it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
ODD = re.compile(r"[^A-Za-z0-9._-]")
MARK = "~"  # separates the readable part from the hash; never in a kept name


def safe_name(value: str) -> str:
    """``value`` as one safe path component, distinct for distinct values.

    Args:
        value: a header-derived string (PatientID, series or study name).

    Raises:
        TypeError: ``value`` is not a string.
    """
    if not isinstance(value, str):
        raise TypeError(f"safe_name: expected a str, got {type(value).__name__}")
    if PLAIN.fullmatch(value) and value not in (".", ".."):
        return value
    readable = ODD.sub("_", value)[:60].lstrip(".-") or "_"
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{readable}{MARK}{digest}"


def unique_names(values: Iterable[str]) -> dict[str, str]:
    """``{value: safe_name(value)}`` for a set of values, checked to be injective.

    Raises:
        ValueError: two values map to one name (a hash collision: practically never), naming
            both.
    """
    out: dict[str, str] = {}
    owner: dict[str, str] = {}
    for v in values:
        name = safe_name(v)
        if name in owner and owner[name] != v:
            raise ValueError(
                f"values {owner[name]!r} and {v!r} map to one file name {name!r}; rename one"
            )
        owner[name] = v
        out[v] = name
    return out


def child(folder: str | Path, value: str, suffix: str = "") -> Path:
    """``folder / (safe_name(value) + suffix)``: the file or folder for ``value``, never outside
    ``folder``.

    Args:
        folder: the output or lookup folder.
        value: the untrusted header value.
        suffix: e.g. ``.nii.gz``; must itself be a plain suffix.

    Raises:
        ValueError: ``suffix`` holds a path separator or the joined path leaves ``folder``.
    """
    if "/" in suffix or "\\" in suffix or "\x00" in suffix:
        raise ValueError(f"child: suffix {suffix!r} must not contain a path separator")
    base = Path(folder)
    path = base / f"{safe_name(value)}{suffix}"
    if path.parent != base or path.name in ("", ".", ".."):  # the guarantee, checked
        raise ValueError(f"{value!r}: would name {path}, outside {base}")
    return path


def within(folder: str | Path, name: str) -> Path:
    """``folder / name`` for a name that is already one safe component (a :func:`safe_name`
    or a pseudonym), checked rather than trusted.

    Raises:
        ValueError: ``name`` is empty, ``.``/``..``, or holds a path separator.
    """
    base = Path(folder)
    path = base / name
    if not name or name in (".", "..") or "\\" in name or path.parent != base:
        raise ValueError(f"{name!r}: not a single file name inside {base}")
    return path
