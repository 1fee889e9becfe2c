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

    def as_float32(self) -> Geometry:
        """The same grid with every number at float32 precision, NIfTI's own.

        A DICOM series (decimal strings) and its NIfTI conversion (float32) then describe one
        grid with identical numbers, so datasets made from either are byte-identical.
        """
        f32 = lambda vals: tuple(float(np.float32(v)) + 0.0 for v in vals)  # noqa: E731
        return Geometry(self.shape, f32(self.spacing), f32(self.origin), f32(self.direction))

    def allclose(self, other: Geometry, atol: float = 1e-4) -> bool:
        return (
            tuple(self.shape) == tuple(other.shape)
            and np.allclose(self.spacing, other.spacing, atol=atol)
            and np.allclose(self.origin, other.origin, atol=atol)
            and np.allclose(self.direction, other.direction, atol=atol)
        )


@dataclass(frozen=True)
class Reorientation:
    """How to bring an array into canonical axial order: axes (S, P, L) = (z, y, x), all increasing.

    Canonical arrays display anterior up and the patient's left on the image right, whatever
    order the file stored them in (DICOM series along −z, dcm2niix's row flips, …).
    """

    transpose: tuple[int, int, int]
    flip: tuple[bool, bool, bool]
    source: Geometry

    @classmethod
    def of(cls, geom: Geometry) -> Reorientation:
        d = geom.direction_matrix
        lps_of = [int(np.argmax(np.abs(d[:, a]))) for a in range(3)]  # storage axis → LPS axis
        if sorted(lps_of) != [0, 1, 2]:
            raise ValueError(f"oblique or degenerate orientation, direction {geom.direction}")
        # canonical array axis c (0 = z, 1 = y, 2 = x) shows LPS axis 2 − c; storage axis a is
        # array axis 2 − a.
        src = [lps_of.index(2 - c) for c in range(3)]
        transpose = tuple(2 - a for a in src)
        flip = tuple(bool(d[lps_of[a], a] < 0) for a in src)
        return cls(transpose, flip, geom)  # type: ignore[arg-type]

    @property
    def identity(self) -> bool:
        return self.transpose == (0, 1, 2) and not any(self.flip)

    def array(self, a: np.ndarray) -> np.ndarray:
        """The canonical view of a (z, y, x) array stored in ``source`` order."""
        if self.identity:
            return a
        out = a.transpose(self.transpose)
        return np.flip(out, axis=[c for c in range(3) if self.flip[c]])

    def to_source(self, a: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`array`: a canonical ``(z, y, x)`` array in ``source`` order
        (prediction writes its outputs on the input's own grid)."""
        if self.identity:
            return a
        out = np.flip(a, axis=[c for c in range(3) if self.flip[c]])
        return out.transpose(np.argsort(self.transpose))

    def index(self, kji: np.ndarray) -> np.ndarray:
        """Canonical indices of source array indices ``(..., 3)``."""
        kji = np.asarray(kji)
        new = kji[..., list(self.transpose)]
        shape = np.asarray(self.source.shape)[list(self.transpose)]
        return np.where(np.asarray(self.flip), shape - 1 - new, new)

    def box(self, box: tuple[int, ...]) -> tuple[int, ...]:
        """A 0-based inclusive ``(z0, z1, y0, y1, x0, x1)`` box in canonical indices."""
        lo = self.index(np.array(box[0::2]))
        hi = self.index(np.array(box[1::2]))
        a, b = np.minimum(lo, hi), np.maximum(lo, hi)
        return tuple(int(v) for pair in zip(a, b, strict=True) for v in pair)

    @property
    def geometry(self) -> Geometry:
        src = self.source
        shape = tuple(int(src.shape[t]) for t in self.transpose)
        axes_src = [2 - t for t in self.transpose]  # storage axis shown on canonical axis c
        spacing = tuple(float(src.spacing[a]) for a in axes_src[::-1])
        d = src.direction_matrix
        cols = [d[:, a] * (-1.0 if self.flip[c] else 1.0) for c, a in enumerate(axes_src)][::-1]
        # LPS position of canonical voxel 0: the source voxel that maps there.
        first = np.zeros(3, int)
        for c, t in enumerate(self.transpose):
            first[t] = src.shape[t] - 1 if self.flip[c] else 0
        origin = tuple(float(v) for v in src.index_to_lps(first))
        direction = tuple(float(v) for v in np.column_stack(cols).ravel())
        return Geometry(shape=shape, spacing=spacing, origin=origin, direction=direction)
