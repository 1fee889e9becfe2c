"""Two prediction sets: identity (the pre-contrast input) and 0.8·GT + 0.3·N(0,1) + 0.1."""
import shutil
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

mha, out = Path(sys.argv[1]), Path(sys.argv[2])
rng = np.random.default_rng(0)
for s in ("identity", "noisy"):
    (out / s).mkdir(parents=True, exist_ok=True)
for f in sorted((mha / "input").glob("*.mha")):
    shutil.copy(f, out / "identity" / f.name)
    gt = sitk.ReadImage(str(mha / "ground_truth" / f.name))
    a = sitk.GetArrayFromImage(gt)
    img = sitk.GetImageFromArray((0.8 * a + 0.3 * rng.normal(size=a.shape) + 0.1).astype(np.float32))
    img.CopyInformation(gt)
    sitk.WriteImage(img, str(out / "noisy" / f.name))
