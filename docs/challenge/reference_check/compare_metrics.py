"""Our challenge metrics on the folders the official evaluator scored; relative differences."""
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from dcesynth.challenge import metrics as C

W = Path(sys.argv[1])
mha = W / "official_prep" / "mha"


def arr(p: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(p))).astype(np.float64)


for s in ("identity", "noisy"):
    off = json.loads((W / "official_eval" / s / "metrics.json").read_text())
    worst = {"mse": 0.0, "ssim_tumour": 0.0}
    gts, preds, masks = [], [], []
    for f in sorted((W / "preds" / s).glob("*.mha")):
        gt_p, m_p = mha / "ground_truth" / f.name, mha / "mask" / f.name
        p, g, m = arr(f), arr(gt_p), arr(m_p)
        ours = {"mse": C.mse(p, g), "ssim_tumour": C.ssim_tumour(p, g, m)}
        for k, v in ours.items():
            o = off["case"][f.stem][k]
            worst[k] = max(worst[k], abs(v - o) / abs(o) if o else abs(v))
            print(f"{s:8s} {f.stem:16s} {k:11s} ours={v:.12g} official={o:.12g}")
        if (m > 0).any():
            gts.append(gt_p), preds.append(f), masks.append(m_p)
    frd_off = off["aggregates"].get("frd", {}).get("mean")
    frd_ours = C.frd(gts, preds, masks)
    rel = abs(frd_ours - frd_off) / abs(frd_off) if frd_off else None
    print(f"{s:8s} FRD ours={frd_ours:.10g} official={frd_off} rel={rel}")
    print(json.dumps({"set": s, "max_rel_diff": worst, "frd_rel_diff": rel,
                      "official_aggregate_keys": sorted(off["aggregates"])}))
