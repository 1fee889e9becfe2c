"""Compare our challenge preparation with the official preprocess.py outputs, file by file."""
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ours, theirs = Path(sys.argv[1]), Path(sys.argv[2])
worst = 0.0
rows = []
for sub in ("input", "ground_truth", "mask"):
    for f in sorted((theirs / "mha" / sub).glob("*.mha")):
        a, b = sitk.ReadImage(str(ours / "mha" / sub / f.name)), sitk.ReadImage(str(f))
        x, y = sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b)
        same_meta = (a.GetSpacing(), a.GetOrigin(), a.GetDirection()) == (
            b.GetSpacing(), b.GetOrigin(), b.GetDirection())
        d = float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64))))
        worst = max(worst, d)
        rows.append((sub, f.stem, x.dtype.name, y.dtype.name, x.shape == y.shape, same_meta, d))
for r in rows:
    print("%-13s %-16s ours=%-7s official=%-7s shape_eq=%s meta_eq=%s max|diff|=%.3g" % r)
print(json.dumps({"files": len(rows), "max_abs_diff": worst, "all_within_1e-5": worst <= 1e-5}))
