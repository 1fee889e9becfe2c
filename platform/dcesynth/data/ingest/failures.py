"""How an ingest that cannot finish says so: the machine stopped it (a full disk, an I/O error:
one line with what, where and how much space), or no case at all could be used (every reason,
and the report written into ``out``)."""

from __future__ import annotations

import errno
import json
from pathlib import Path

from dcesynth.config import atomic_write_text
from dcesynth.data.ingest.source import DatasetError
from dcesynth.durable import MachineError, describe_os_error, human_bytes


def machine_error(e: OSError, out: Path, written: int, n_cases: int) -> MachineError:
    """One line for an ingest stopped by the machine: what, where, how much space."""
    need = ""
    if e.errno == errno.ENOSPC:
        need = (
            f"; the unfinished dataset had reached {human_bytes(written)} "
            f"({n_cases} case(s) to write), free at least that much more"
        )
    return MachineError(
        e.errno or errno.EIO,
        f"ingest into {out} stopped, nothing marked complete: {describe_os_error(e)}{need}; "
        "then run the same command again (it redoes the missing cases)",
        str(e.filename) if e.filename else None,
    )


def all_failed(out: Path, report: dict, n_keys: int) -> None:
    """No case could be used: write the report into ``out`` and list every reason."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "ingest_report.json", json.dumps(report, indent=1))
    reasons = [s["error"] for s in report["skipped"]]
    shown = reasons[:50]
    more = f"\n  … and {len(reasons) - 50} more" if len(reasons) > 50 else ""
    raise DatasetError(
        f"no case could be ingested ({n_keys} found); every reason:\n  - "
        + "\n  - ".join(shown)
        + more
        + f"\nreport: {out / 'ingest_report.json'}"
    )
