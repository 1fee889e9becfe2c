"""The phantom challenge run's figure: pre-contrast input, real target and our prediction for
the first test cases, on one z-score scale, tumour outline in each panel.

    python docs/challenge/run_figure.py TASK_DIR PRED_DIR OUT.png [N]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import SimpleITK as sitk


def read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(np.float32)


def main(task: Path, preds: Path, out: Path, n: int = 4) -> None:
    splits = json.loads((task / "manifest.json").read_text())["splits"]
    cases = sorted(c for c, s in splits.items() if s == "test")[:n]
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.5 * n))
    for row, cid in zip(axes, cases, strict=True):
        pre, gt = (
            read(task / "mha/input" / f"{cid}.mha"),
            read(task / "mha/ground_truth" / f"{cid}.mha"),
        )
        mask, fake = read(task / "mha/mask" / f"{cid}.mha"), read(preds / f"{cid}.mha")
        hi = float(np.percentile(gt, 99.8))
        for ax, img, title in zip(
            row, (pre, gt, fake), ("pre-contrast (input)", "real target", "ours"), strict=True
        ):
            ax.imshow(img, cmap="gray", vmin=float(pre.min()), vmax=hi)
            ax.contour(mask > 0, levels=[0.5], colors="tab:red", linewidths=0.6)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"{cid}: {title}" if title.startswith("pre") else title, fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main(
        Path(sys.argv[1]),
        Path(sys.argv[2]),
        Path(sys.argv[3]),
        int(sys.argv[4]) if len(sys.argv) > 4 else 4,
    )
