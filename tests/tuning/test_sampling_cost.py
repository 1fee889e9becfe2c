"""The sweep's ranking shows each trial's sampling cost: network evaluations per slice and the
median seconds per slice its validation measured (the first epoch also pays start-up)."""

from __future__ import annotations

import json
from pathlib import Path

from dcesynth.tuning.ranking import sampling_cost


def test_sampling_cost_is_the_median_over_epochs(tmp_path: Path) -> None:
    rows = [
        {"epoch": 1, "sample_s_per_slice": 9.0, "nfe_per_slice": 8},
        {"epoch": 2, "sample_s_per_slice": 0.25, "nfe_per_slice": 8},
        {"epoch": 3, "sample_s_per_slice": 0.5, "nfe_per_slice": 8},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert sampling_cost(tmp_path) == {"s_per_slice": "0.5", "nfe_per_slice": "8"}
    assert sampling_cost(tmp_path / "none") == {"s_per_slice": "", "nfe_per_slice": ""}
