"""MR physics of the phantom: dipole field, GRE signal with blooming, SWI, QSM by TKD."""

import numpy as np
from scipy import fft

GAMMA_HZ_PER_T = 42.58e6


def dipole_kernel(shape, voxel_mm, b0_voxel: np.ndarray, *, real_fft: bool = True) -> np.ndarray:
    """D(k) = 1/3 - (k.b)^2 / |k|^2 on the FFT grid of ``shape`` (b0 in the grid's voxel-axis frame)."""
    freqs = [fft.fftfreq(n, d) for n, d in zip(shape, voxel_mm)]
    if real_fft:
        freqs[-1] = fft.rfftfreq(shape[-1], voxel_mm[-1])
    kx, ky, kz = np.meshgrid(*[f.astype(np.float32) for f in freqs], indexing="ij", sparse=True)
    k2 = kx**2 + ky**2 + kz**2
    kb = kx * b0_voxel[0] + ky * b0_voxel[1] + kz * b0_voxel[2]
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = np.float32(1 / 3) - kb**2 / k2
    kernel[0, 0, 0] = 0.0  # no mean field (the Lorentz sphere's and the background's choice)
    return kernel.astype(np.float32)


def dipole_field(chi: np.ndarray, voxel_mm, b0_voxel: np.ndarray) -> np.ndarray:
    """Relative field (same units as ``chi``) of a susceptibility map: IFFT(D * FFT(chi))."""
    kernel = dipole_kernel(chi.shape, voxel_mm, b0_voxel)
    return fft.irfftn(fft.rfftn(chi, workers=-1) * kernel, s=chi.shape, workers=-1).astype(np.float32)


def rad_per_ppb(field_t: float, te_ms: float) -> float:
    """Phase accrued per ppb of field: 2 pi gamma B0 TE (about 0.016 rad at 3 T, 20 ms)."""
    return 2 * np.pi * GAMMA_HZ_PER_T * field_t * te_ms * 1e-3 * 1e-9


def block_mean(array: np.ndarray, factors) -> np.ndarray:
    """Average non-overlapping blocks (fine grid -> acquisition grid)."""
    fx, fy, fz = factors
    x, y, z = (n // f for n, f in zip(array.shape, factors))
    return array[: x * fx, : y * fy, : z * fz].reshape(x, fx, y, fy, z, fz).mean(axis=(1, 3, 5))


def swi_from_signal(signal: np.ndarray, phase_sign: int, filter_px: int = 64, power: int = 4) -> np.ndarray:
    """SWI: homodyne high-pass of the phase (complex division by a Hanning low-pass, in-plane),
    a phase mask on the paramagnetic side, ``magnitude * mask ** power``."""
    nx, ny = signal.shape[:2]
    wx = np.zeros(nx, np.float32)
    wy = np.zeros(ny, np.float32)
    hx, hy = min(filter_px, nx), min(filter_px, ny)
    wx[:hx] = np.hanning(hx)
    wy[:hy] = np.hanning(hy)
    window = np.outer(np.roll(wx, -hx // 2), np.roll(wy, -hy // 2))[:, :, None]
    low = fft.ifft2(fft.fft2(signal, axes=(0, 1), workers=-1) * window, axes=(0, 1), workers=-1)
    phase = np.angle(signal * np.conj(low) / (np.abs(low) + 1e-12)).astype(np.float32)
    paramagnetic_phase = phase * -phase_sign  # positive field gives negative phase when phase_sign = 1
    mask = np.where(paramagnetic_phase > 0, 1 - paramagnetic_phase / np.pi, 1.0).astype(np.float32)
    return (np.abs(signal) * mask**power).astype(np.float32)


def tkd_inversion(local_field: np.ndarray, voxel_mm, b0_voxel: np.ndarray, threshold: float = 0.2) -> np.ndarray:
    """Truncated k-space division: chi = IFFT(FFT(field) / D), |D| clipped at ``threshold`` (keeps the sign)."""
    kernel = dipole_kernel(local_field.shape, voxel_mm, b0_voxel)
    inverse = np.where(np.abs(kernel) > threshold, 1 / np.where(kernel == 0, 1, kernel), np.sign(kernel) / threshold)
    inverse[0, 0, 0] = 0
    return fft.irfftn(
        fft.rfftn(local_field, workers=-1) * inverse.astype(np.float32), s=local_field.shape, workers=-1
    ).astype(np.float32)
