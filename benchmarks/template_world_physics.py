"""Physics of the template world (``bench_template_world.py``): tissue properties, qsm-forward's field, signal,
k-space crop and noise, then a QSM pipeline written here (Laplacian unwrapping, V-SHARP, TV-ADMM) and a T2."""

import numpy as np
from scipy import fft, ndimage

FIELD_T, TE_S, TR_S, FLIP_DEG = 3.0, 0.025, 0.035, 15.0
GAMMA_MHZ = 42.58
SIM_VOXEL_MM, SWI_VOXEL_MM, T2_VOXEL_MM = (1.0, 1.0, 1.0), (1.0, 1.0, 2.0), (1.0, 1.0, 4.0)
PEAK_SNR = (40.0, 80.0)
QSM_MASK_EROSION_MM = 2.0

#: Susceptibility (ppm, relative to CSF) drawn per subject from these ranges (docs: domain brief, 3 T).
TISSUE_CHI = {
    "gm": (0.010, 0.020),
    "wm": (-0.035, -0.025),
    "caudate": (0.050, 0.070),
    "putamen": (0.050, 0.090),
    "pallidum": (0.150, 0.190),
    "thalamus": (0.010, 0.070),
    "nigra": (0.130, 0.200),
    "red_nucleus": (0.090, 0.110),
    "dentate": (0.100, 0.160),
    "vein": (0.300, 0.450),
}
#: Typical 3 T relaxation and proton density per tissue: (R2* 1/s, R1 1/s, M0).
TISSUE_RELAXATION = {
    "csf": (4.0, 0.25, 1.0),
    "gm": (17.0, 0.70, 0.82),
    "wm": (21.0, 1.10, 0.70),
    "caudate": (22.0, 0.80, 0.80),
    "putamen": (26.0, 0.85, 0.78),
    "pallidum": (38.0, 1.00, 0.74),
    "thalamus": (22.0, 0.90, 0.76),
    "nigra": (40.0, 1.00, 0.74),
    "red_nucleus": (35.0, 1.00, 0.74),
    "dentate": (35.0, 1.00, 0.74),
}
#: Air-like spheres outside the brain (frontal sinus, ear canals): centre (MNI mm), radius mm, chi ppm.
AIR = (((0.0, 66.0, -58.0), 9.0, 9.4), ((62.0, -22.0, -62.0), 7.0, 9.4), ((-62.0, -22.0, -62.0), 7.0, 9.4))
#: qsm-forward's susceptibility -> R2' relaxivity (Hz/ppm, Shin et al. 2021), used for lesions, veins, calcium.
DR_HZ_PER_PPM = 137.0


# --- physics -------------------------------------------------------------------------------------------------------


def air_field(shape, affine) -> np.ndarray:
    """Field (ppm) inside the box of the air-like spheres of :data:`AIR` outside it (a uniformly magnetised sphere:
    chi R^3 / 3 (3 cos^2 - 1) / r^3, B0 along z)."""
    grid = np.indices(shape, dtype=np.float32).reshape(3, -1)
    world = (affine[:3, :3] @ grid + affine[:3, 3:4]).astype(np.float32)
    field = np.zeros(world.shape[1], np.float32)
    for centre, radius, chi in AIR:
        r = world - np.asarray(centre, np.float32)[:, None]
        distance = np.maximum(np.linalg.norm(r, axis=0), radius)
        cos2 = (r[2] / distance) ** 2
        field += chi * radius**3 / 3 * (3 * cos2 - 1) / distance**3
    return field.reshape(shape)


def relaxation_maps(maps, occ_lesions, chi_add, vein_occ):
    """(R2*, R1, M0) on the 1 mm grid: tissue values blended by the template's probabilities, nuclei on top, then
    R2' = 137 Hz/ppm x |chi| (qsm-forward's relaxivity) for lesions and veins."""
    csf = np.clip(maps["brain"] - maps["gm"] - maps["wm"], 0, 1)
    out = []
    for column in range(3):
        value = (
            sum(maps[t] * TISSUE_RELAXATION[t][column] for t in ("gm", "wm")) + csf * TISSUE_RELAXATION["csf"][column]
        )
        for nucleus in ("caudate", "putamen", "pallidum", "thalamus", "nigra", "red_nucleus", "dentate"):
            value = np.where(maps[nucleus], TISSUE_RELAXATION[nucleus][column], value)
        out.append(value.astype(np.float32) * maps["brain"])
    r2s, r1, m0 = out
    r2s = r2s + DR_HZ_PER_PPM * (np.abs(chi_add) + vein_occ * 0.35)
    return r2s, np.maximum(r1, 0.2), m0


def susceptibility(maps, rng, chi_add, vein_occ) -> tuple[np.ndarray, dict]:
    """Chi (ppm) on the 1 mm grid: per-tissue values drawn from :data:`TISSUE_CHI`, blended by GM/WM probability
    (CSF 0), nuclei replacing them, a little smooth texture, then veins and lesions."""
    drawn = {name: float(rng.uniform(*span)) for name, span in TISSUE_CHI.items()}
    chi = maps["gm"] * drawn["gm"] + maps["wm"] * drawn["wm"]
    for nucleus in ("caudate", "putamen", "pallidum", "thalamus", "nigra", "red_nucleus", "dentate"):
        chi = np.where(maps[nucleus], drawn[nucleus], chi)
    chi = ndimage.gaussian_filter(chi, 0.6) + ndimage.gaussian_filter(rng.normal(0, 0.02, chi.shape), 2.0)
    chi = chi * maps["brain"]
    chi = chi * (1 - vein_occ) + vein_occ * drawn["vein"] + chi_add
    return chi.astype(np.float32), drawn


def acquire(chi, r2s, r1, m0, brain, affine, rng):
    """qsm-forward: field (its dipole convolution) + the air spheres' field, GRE signal at 3 T / TE 25 ms, k-space crop
    to 1 x 1 x 2 mm, complex noise. Returns the complex signal on the 1 x 1 x 2 mm grid."""
    import qsm_forward

    field = qsm_forward.generate_field(chi, mask=brain, voxel_size=list(SIM_VOXEL_MM), B0_dir=[0, 0, 1])
    field = field.astype(np.float32) + air_field(chi.shape, affine)
    signal = qsm_forward.generate_signal(
        field, B0=FIELD_T, TR=TR_S, TE=TE_S, flip_angle=FLIP_DEG, R1=r1, R2star=r2s, M0=m0
    )
    del field
    coarse = (chi.shape[0], chi.shape[1], chi.shape[2] // 2)
    signal = qsm_forward.crop_kspace(signal, coarse)
    return qsm_forward.add_noise(signal, peak_snr=rng.uniform(*PEAK_SNR), rng=rng).astype(np.complex64)


def _kspace(shape, voxel_mm):
    return np.meshgrid(*[fft.fftfreq(n, d) for n, d in zip(shape, voxel_mm)], indexing="ij", sparse=True)


def laplacian_unwrap(phase, voxel_mm) -> np.ndarray:
    """Laplacian phase unwrapping (Schofield & Zhu 2003): del^-2 [cos del^2 sin - sin del^2 cos]."""
    k = _kspace(phase.shape, voxel_mm)
    k2 = -4 * np.pi**2 * sum(ki**2 for ki in k)
    inverse = np.where(k2 == 0, 0, 1 / np.where(k2 == 0, 1, k2))

    def lap(x):
        return fft.ifftn(fft.fftn(x, workers=-1) * k2, workers=-1).real

    s, c = np.sin(phase), np.cos(phase)
    return fft.ifftn(fft.fftn(c * lap(s) - s * lap(c), workers=-1) * inverse, workers=-1).real.astype(np.float32)


def vsharp(field, mask, voxel_mm, radii_mm=(10, 8, 6, 4, 2), threshold=0.05):
    """V-SHARP (Wu et al., MRM 2012): spherical-mean high-pass with the largest sphere that fits at each voxel,
    deconvolved with the largest kernel; returns (local field, mask eroded by the smallest radius)."""
    k_shape = field.shape
    grid = np.meshgrid(*[fft.fftfreq(n, 1 / n) * d for n, d in zip(k_shape, voxel_mm)], indexing="ij", sparse=True)
    distance = ndimage.distance_transform_edt(mask, sampling=voxel_mm)
    spectrum = fft.fftn(field * mask, workers=-1)
    high_pass, done = np.zeros(k_shape, np.float32), np.zeros(k_shape, bool)
    first = None
    for radius in radii_mm:
        sphere = (sum(g**2 for g in grid) <= radius**2).astype(np.float32)
        kernel = 1 - fft.fftn(sphere / sphere.sum(), workers=-1).real
        first = kernel if first is None else first
        valid = (distance > radius) & ~done
        high_pass[valid] = fft.ifftn(spectrum * kernel, workers=-1).real[valid]
        done |= valid
    inverse = np.where(np.abs(first) > threshold, 1 / np.where(first == 0, 1, first), 0)
    local = fft.ifftn(fft.fftn(high_pass, workers=-1) * inverse, workers=-1).real
    return (local * done).astype(np.float32), done


def tv_admm(local_field, mask, voxel_mm, alpha=4e-4, rho=None, iterations=30):
    """Total-variation dipole inversion by ADMM with closed-form k-space updates (Bilgic et al., MRM 2014)."""
    k = _kspace(local_field.shape, voxel_mm)
    k2 = sum(ki**2 for ki in k)
    dipole = 1 / 3 - np.where(k2 == 0, 0, k[2] ** 2 / np.where(k2 == 0, 1, k2))
    grads = [np.exp(2j * np.pi * ki * d) - 1 for ki, d in zip(k, voxel_mm)]  # forward differences
    rho = 10 * alpha if rho is None else rho
    denominator = dipole**2 + rho * sum(np.abs(g) ** 2 for g in grads)
    data = dipole * fft.fftn(local_field * mask, workers=-1)
    z = [np.zeros(local_field.shape, np.float32) for _ in grads]
    u = [np.zeros(local_field.shape, np.float32) for _ in grads]
    for _ in range(iterations):
        rhs = data + rho * sum(np.conj(g) * fft.fftn(zi - ui, workers=-1) for g, zi, ui in zip(grads, z, u))
        chi_k = rhs / denominator
        for i, g in enumerate(grads):
            gx = fft.ifftn(g * chi_k, workers=-1).real
            v = gx + u[i]
            z[i] = np.sign(v) * np.maximum(np.abs(v) - alpha / rho, 0)
            u[i] = v - z[i]
    return fft.ifftn(chi_k, workers=-1).real.astype(np.float32)


def reconstruct(signal, brain_coarse):
    """(SWI, QSM ppm, QSM mask) from the complex signal on the 1 x 1 x 2 mm grid."""
    from napari_deepmir.io.swi import swi_from_signal

    swi = swi_from_signal(signal, phase_sign=-1)  # qsm-forward: positive field -> positive phase (left-handed)
    phase = np.angle(signal) * brain_coarse
    field_ppm = laplacian_unwrap(phase, SWI_VOXEL_MM) / (2 * np.pi * GAMMA_MHZ * FIELD_T * TE_S)
    local, mask = vsharp(field_ppm, brain_coarse, SWI_VOXEL_MM, radii_mm=(10, 8, 6, 4, QSM_MASK_EROSION_MM))
    qsm = tv_admm(local, mask, SWI_VOXEL_MM) * mask
    qsm = (qsm - qsm[mask].mean()) * mask
    return swi, qsm.astype(np.float32), mask


def z_triangle(volume):
    """1 mm -> 2 mm slices by the weights of the k-space crop's sampling (0.25, 0.5, 0.25 around even slices)."""
    padded = np.pad(volume, ((0, 0), (0, 0), (1, 1)))
    return 0.25 * padded[:, :, 0:-2:2] + 0.5 * padded[:, :, 1:-1:2] + 0.25 * padded[:, :, 2::2]


def t2_image(t1, maps, occ, vein_occ, affine, rng):
    """A T2-like contrast (the template T1 inverted: CSF bright, WM dark), lesions and veins slightly dark, averaged
    to 1 x 1 x 4 mm slices on its own grid; returns (image, affine)."""
    t2 = np.clip(1.15 - t1, 0, None) * maps["brain"]
    t2 = t2 * (1 - 0.3 * occ["cmb"] - 0.2 * occ["iron"] - 0.3 * occ["calcification"] - 0.3 * vein_occ)
    nz = t2.shape[2] // 4 * 4
    blocks = t2[:, :, :nz].reshape(t2.shape[0], t2.shape[1], nz // 4, 4).mean(-1)
    blocks = np.abs(blocks + rng.normal(0, 0.015, blocks.shape) + 1j * rng.normal(0, 0.015, blocks.shape))
    t2_affine = affine @ np.diag([1.0, 1.0, 4.0, 1.0])
    t2_affine[:3, 3] = affine[:3, :3] @ [0.0, 0.0, 1.5] + affine[:3, 3]
    return (blocks * 1000).astype(np.float32), t2_affine
