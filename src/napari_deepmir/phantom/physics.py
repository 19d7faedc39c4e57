"""MR physics of the phantom: dipole field, GRE signal with blooming, QSM by TKD (SWI: :mod:`..swi`)."""

import numpy as np
from scipy import fft, ndimage

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


def tkd_inversion(local_field: np.ndarray, voxel_mm, b0_voxel: np.ndarray, threshold: float = 0.2) -> np.ndarray:
    """Truncated k-space division: chi = IFFT(FFT(field) / D), |D| clipped at ``threshold`` (keeps the sign)."""
    kernel = dipole_kernel(local_field.shape, voxel_mm, b0_voxel)
    inverse = np.where(np.abs(kernel) > threshold, 1 / np.where(kernel == 0, 1, kernel), np.sign(kernel) / threshold)
    inverse[0, 0, 0] = 0
    return fft.irfftn(
        fft.rfftn(local_field, workers=-1) * inverse.astype(np.float32), s=local_field.shape, workers=-1
    ).astype(np.float32)


def _gradient_power(shape, voxel_mm) -> np.ndarray:
    """|G(k)|^2 of the forward-difference gradient on the rFFT grid (1/mm^2)."""
    freqs = [fft.fftfreq(n).astype(np.float32) for n in shape[:-1]] + [fft.rfftfreq(shape[-1]).astype(np.float32)]
    axes = np.meshgrid(*freqs, indexing="ij", sparse=True)
    return sum((2 * np.sin(np.pi * k) / np.float32(d)) ** 2 for k, d in zip(axes, voxel_mm)).astype(np.float32)


def tikhonov_inversion(local_field: np.ndarray, voxel_mm, b0_voxel: np.ndarray, weight: float = 0.02) -> np.ndarray:
    """Closed-form L2 inversion with a gradient penalty: chi = IFFT(D F / (D^2 + weight |G|^2))."""
    kernel = dipole_kernel(local_field.shape, voxel_mm, b0_voxel)
    denominator = kernel**2 + np.float32(weight) * _gradient_power(local_field.shape, voxel_mm)
    denominator[0, 0, 0] = 1.0
    return fft.irfftn(
        fft.rfftn(local_field, workers=-1) * (kernel / denominator), s=local_field.shape, workers=-1
    ).astype(np.float32)


def cg_inversion(
    local_field: np.ndarray,
    data_weight: np.ndarray,
    voxel_mm,
    b0_voxel: np.ndarray,
    weight: float = 0.02,
    iterations: int = 20,
) -> np.ndarray:
    """Iterative weighted L2 inversion (conjugate gradient, as in iLSQR/MEDI-L2):
    min ||W (D chi - f)||^2 + weight ||G chi||^2, W the data weight (magnitude in the mask, 0 outside)."""
    shape = local_field.shape
    kernel = dipole_kernel(shape, voxel_mm, b0_voxel)
    regulariser = np.float32(weight) * _gradient_power(shape, voxel_mm)
    w2 = (data_weight**2).astype(np.float32)

    def normal_operator(chi):
        spectrum = fft.rfftn(chi, workers=-1)
        dipole = fft.irfftn(spectrum * kernel, s=shape, workers=-1) * w2
        return fft.irfftn(fft.rfftn(dipole, workers=-1) * kernel + spectrum * regulariser, s=shape, workers=-1)

    rhs = fft.irfftn(fft.rfftn(w2 * local_field, workers=-1) * kernel, s=shape, workers=-1)
    chi = np.zeros(shape, np.float32)
    residual = rhs.astype(np.float32)
    direction = residual.copy()
    energy = float(np.vdot(residual, residual))
    for _ in range(iterations):
        applied = normal_operator(direction)
        step = energy / max(float(np.vdot(direction, applied)), 1e-30)
        chi += np.float32(step) * direction
        residual -= np.float32(step) * applied.astype(np.float32)
        new_energy = float(np.vdot(residual, residual))
        direction = residual + np.float32(new_energy / max(energy, 1e-30)) * direction
        energy = new_energy
    return chi.astype(np.float32)


def sharp_background_removal(
    total_field: np.ndarray, mask: np.ndarray, voxel_mm, radius_mm: float, threshold: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """SHARP: the spherical-mean-value filter removes harmonic (background) fields inside the mask eroded by
    the sphere, then a truncated deconvolution restores the local field. Returns (local field, eroded mask)."""
    shape = total_field.shape
    grid = np.meshgrid(*[fft.fftfreq(n, 1 / n) * d for n, d in zip(shape, voxel_mm)], indexing="ij", sparse=True)
    sphere = (sum(g**2 for g in grid) <= radius_mm**2).astype(np.float32)
    sphere /= sphere.sum()
    complement = 1 - fft.rfftn(sphere, workers=-1).real.astype(np.float32)  # delta - sphere
    eroded = ndimage.distance_transform_edt(mask, sampling=voxel_mm) > radius_mm
    filtered = fft.irfftn(fft.rfftn(total_field * mask, workers=-1) * complement, s=shape, workers=-1) * eroded
    inverse = np.where(np.abs(complement) > threshold, 1 / np.where(complement == 0, 1, complement), 0)
    local = fft.irfftn(fft.rfftn(filtered, workers=-1) * inverse.astype(np.float32), s=shape, workers=-1)
    return (local * eroded).astype(np.float32), eroded


def imaging_artefacts(signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A receive-coil bias field, Gibbs ringing (k-space truncated to 75-95 % in-plane) and mild motion
    ghosts (every n-th phase-encode line with a phase error) on the complex acquisition-grid signal."""
    nx, ny = signal.shape[:2]
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in signal.shape], indexing="ij", sparse=True)
    c = rng.normal(0, 1, 4)
    bias = np.exp(0.15 * (c[0] * x + c[1] * y + c[2] * z + c[3] * (x**2 + y**2 - 0.5)))
    spectrum = fft.fftn(signal * bias.astype(np.float32), axes=(0, 1), workers=-1)
    keep = rng.uniform(0.75, 0.95)
    kx, ky = np.abs(fft.fftfreq(nx))[:, None, None], np.abs(fft.fftfreq(ny))[None, :, None]
    spectrum *= ((kx <= keep / 2) & (ky <= keep / 2)).astype(np.float32)
    every = int(rng.integers(2, 5))
    spectrum[:, ::every] *= np.exp(1j * rng.uniform(0.05, 0.2)).astype(np.complex64)
    return fft.ifftn(spectrum, axes=(0, 1), workers=-1).astype(np.complex64)
