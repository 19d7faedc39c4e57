"""Acquisition parameters of a synthetic subject, and their randomisation for training data."""

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Acquisition:
    """How the synthetic subject is 'scanned'.

    ``b0_direction`` is a vector in world (scanner RAS) coordinates; ``oblique_deg`` tilts the slice
    stack about the left-right axis; ``t2_voxel_mm`` puts the T2 on a grid of its own (None: the SWI grid).
    """

    shape: tuple[int, int, int] = (176, 208, 64)
    voxel_mm: tuple[float, float, float] = (1.0, 1.0, 2.0)
    te_ms: float = 20.0
    field_t: float = 3.0
    snr: float = 40.0
    b0_direction: tuple[float, float, float] = (0.0, 0.0, 1.0)
    qsm_units: str = "ppb"
    phase_sign: int = 1
    t2_voxel_mm: tuple[float, float, float] | None = None
    oblique_deg: float = 0.0

    def __post_init__(self):
        if self.qsm_units not in ("ppm", "ppb"):
            raise ValueError(f"qsm_units must be ppm or ppb, not {self.qsm_units!r}")
        if self.phase_sign not in (1, -1):
            raise ValueError("phase_sign must be 1 or -1")
        if np.linalg.norm(self.b0_direction) == 0:
            raise ValueError("b0_direction must be a non-zero vector")

    @property
    def affine(self) -> np.ndarray:
        """Voxel -> world affine: the field of view centred on the origin, tilted by ``oblique_deg``."""
        return grid_affine(self.shape, self.voxel_mm, self.oblique_deg)

    @property
    def b0_unit(self) -> np.ndarray:
        b = np.asarray(self.b0_direction, dtype=float)
        return b / np.linalg.norm(b)

    @classmethod
    def randomized(cls, rng: np.random.Generator, fov_mm=(176.0, 208.0, 128.0)) -> "Acquisition":
        """A plausible clinical acquisition: voxel size, slices, TE, SNR, B0 tilt, units, T2 grid, obliquity."""
        in_plane = float(rng.uniform(0.7, 1.2))
        slice_mm = float(rng.choice([1.5, 2.0, 2.5, 3.0]))
        voxel = (in_plane, in_plane, slice_mm)
        z_fov = float(rng.uniform(100, fov_mm[2]))
        shape = (round(fov_mm[0] / in_plane), round(fov_mm[1] / in_plane), round(z_fov / slice_mm))
        tilt = np.deg2rad(rng.uniform(0, 25))
        azimuth = rng.uniform(0, 2 * np.pi)
        b0 = (float(np.sin(tilt) * np.cos(azimuth)), float(np.sin(tilt) * np.sin(azimuth)), float(np.cos(tilt)))
        t2_voxel = (
            None
            if rng.random() < 0.5
            else (float(rng.uniform(0.8, 1.2)), float(rng.uniform(0.8, 1.2)), float(rng.uniform(2.0, 5.0)))
        )
        return cls(
            shape=shape,
            voxel_mm=voxel,
            te_ms=float(rng.uniform(15, 30)),
            snr=float(np.exp(rng.uniform(np.log(15), np.log(80)))),
            b0_direction=b0,
            qsm_units=str(rng.choice(["ppm", "ppb"])),
            phase_sign=int(rng.choice([1, -1])),
            t2_voxel_mm=t2_voxel,
            oblique_deg=float(rng.uniform(-12, 12)) if rng.random() < 0.3 else 0.0,
        )

    def with_(self, **changes) -> "Acquisition":
        return replace(self, **changes)


def grid_affine(shape, voxel_mm, oblique_deg: float = 0.0, shift_mm=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Affine of a grid of ``shape`` voxels of ``voxel_mm`` centred on the origin, rotated about x."""
    t = np.deg2rad(oblique_deg)
    rotation = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(voxel_mm)
    centre = (np.asarray(shape, float) - 1) / 2
    affine[:3, 3] = -affine[:3, :3] @ centre + np.asarray(shift_mm, float)
    return affine
