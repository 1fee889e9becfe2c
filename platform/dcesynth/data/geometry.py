"""Voxel geometry shared by the phantom, the readers and (later) the prepared dataset.

Conventions (those of DICOM and SimpleITK, so that both round-trip without thought):

* A volume is a numpy array indexed ``[slice, row, column]`` = ``[k, j, i]`` = ``(z, y, x)``.
* Physical coordinates are patient LPS millimetres (x → patient left, y → posterior,
  z → superior). ``spacing``, ``origin`` and ``direction`` are in ``(x, y, z)`` = ``(i, j, k)``
  order; ``direction`` is the 3×3 matrix (row-major, as ``SimpleITK.Image.GetDirection``) whose
  column ``n`` is the unit vector of index axis ``n``.
* NIfTI files are RAS: their affine is ``diag(-1, -1, 1, 1) @ affine_lps`` and their data array
  is the transpose ``(i, j, k)`` of ours, which is what nibabel and dcm2niix produce.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class Geometry:
    """Where each voxel of a ``(z, y, x)`` array lies in patient space.

    Args:
        shape: array shape ``(nz, ny, nx)``.
        spacing: voxel size ``(dx, dy, dz)`` in mm (column, row, slice).
        origin: LPS position (mm) of the centre of voxel ``[0, 0, 0]``.
        direction: row-major 3×3 direction cosines; column n is index axis n's unit vector.
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise ValueError(
                f"Geometry.shape must be 3 positive ints (nz, ny, nx), got {self.shape}"
            )
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise ValueError(f"Geometry.spacing must be 3 positive mm values, got {self.spacing}")
        if len(self.direction) != 9:
            raise ValueError(f"Geometry.direction must have 9 entries, got {len(self.direction)}")

    @property
    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    @property
    def affine_lps(self) -> np.ndarray:
        """4×4 matrix mapping ``(i, j, k, 1)`` (column, row, slice) to LPS mm."""
        aff = np.eye(4)
        aff[:3, :3] = self.direction_matrix * np.asarray(self.spacing)[None, :]
        aff[:3, 3] = self.origin
        return aff

    @property
    def affine_ras(self) -> np.ndarray:
        """4×4 NIfTI affine (RAS) for the transposed ``(i, j, k)`` data array."""
        return LPS_TO_RAS @ self.affine_lps

    @property
    def slice_normal(self) -> np.ndarray:
        return self.direction_matrix[:, 2]

    def index_to_lps(self, kji: np.ndarray) -> np.ndarray:
        """LPS mm of voxel indices given as ``(..., 3)`` in ``(k, j, i)`` = array order."""
        ijk = np.asarray(kji, dtype=float)[..., ::-1]
        return ijk @ self.affine_lps[:3, :3].T + self.affine_lps[:3, 3]

    def slice_position(self, k: int) -> np.ndarray:
        """LPS position of the first voxel of slice ``k`` (DICOM ImagePositionPatient)."""
        return self.index_to_lps(np.array([k, 0, 0]))

    def to_dict(self) -> dict:
        return {
            "shape": list(self.shape),
            "spacing": [float(s) for s in self.spacing],
            "origin": [float(o) for o in self.origin],
            "direction": [float(d) for d in self.direction],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Geometry:
        return cls(
            shape=tuple(int(s) for s in d["shape"]),
            spacing=tuple(float(s) for s in d["spacing"]),
            origin=tuple(float(o) for o in d["origin"]),
            direction=tuple(float(x) for x in d["direction"]),
        )

    def allclose(self, other: Geometry, atol: float = 1e-4) -> bool:
        return (
            tuple(self.shape) == tuple(other.shape)
            and np.allclose(self.spacing, other.spacing, atol=atol)
            and np.allclose(self.origin, other.origin, atol=atol)
            and np.allclose(self.direction, other.direction, atol=atol)
        )
