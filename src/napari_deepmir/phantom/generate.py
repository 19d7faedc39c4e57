"""Assemble a synthetic subject (anatomy -> lesions -> physics -> images) and write it as BIDS-like files."""

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from .. import __version__
from ..io import save_labels, save_nifti
from ..io.atomic import write_text_atomic
from ..io.bids import raw_path, write_dataset_files
from ..io.destinations import check_new_folder, ensure_writable_folder
from ..io.nifti import voxel_sizes
from ..io.resample import resample_to_grid
from ..io.swi import swi_from_signal
from .acquisition import Acquisition, grid_affine
from .anatomy import brain_mask, draw_head, property_map
from .lesions import Maps, place_all
from .physics import (
    block_mean,
    cg_inversion,
    dipole_field,
    imaging_artefacts,
    rad_per_ppb,
    sharp_background_removal,
    tikhonov_inversion,
    tkd_inversion,
)
from .physiology import air_and_bone, physiological_iron
from .world import World

#: Finest simulation voxel (mm): the acquisition grid is subdivided until its voxels are at most this.
FINE_VOXEL_MM = (0.55, 0.55, 0.8)


@dataclass
class SyntheticSubject:
    """Images, truth and lesion list of one synthetic subject. QSM is in ``acquisition.qsm_units``."""

    name: str
    swi: np.ndarray
    qsm: np.ndarray
    t2: np.ndarray
    t2_affine: np.ndarray
    affine: np.ndarray
    labels: np.ndarray
    locations: np.ndarray
    lesions: list[dict]
    acquisition: Acquisition
    seed: int = 0
    magnitude: np.ndarray | None = field(default=None, repr=False)
    world: World = field(default_factory=World)


def _fine_grid(acquisition: Acquisition, fine_voxel_mm):
    factors = tuple(int(np.ceil(v / f - 1e-6)) for v, f in zip(acquisition.voxel_mm, fine_voxel_mm))
    shape = tuple(n * f for n, f in zip(acquisition.shape, factors))
    to_acquisition = np.eye(4)
    to_acquisition[:3, :3] = np.diag(1 / np.array(factors))
    to_acquisition[:3, 3] = (1 / np.array(factors) - 1) / 2
    return factors, shape, acquisition.affine @ to_acquisition


def _world_coordinates(shape, affine) -> np.ndarray:
    grid = np.indices(shape, dtype=np.float32)
    return (
        np.einsum("ij,j...->i...", affine[:3, :3].astype(np.float32), grid)
        + affine[:3, 3].astype(np.float32)[:, None, None, None]
    )


def _background_field(xyz: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Smooth field of sources outside the brain (air/bone interfaces, shim): low order + a sinus blob (ppb)."""
    x, y, z = xyz / 100.0
    c = rng.normal(0, 1, 6)
    sinus = np.exp(-((xyz[0] / 25) ** 2 + ((xyz[1] - 60) / 20) ** 2 + ((xyz[2] + 30) / 20) ** 2))
    return (
        40 * (c[0] * x + c[1] * y + c[2] * z) + 30 * (c[3] * x * y + c[4] * z**2) + rng.uniform(200, 600) * sinus
    ).astype(np.float32)


def _qsm_mask(brain: np.ndarray, voxel_mm, erosion_mm: float | None) -> np.ndarray:
    """The brain mask eroded by ``erosion_mm`` (None: one voxel, the default world)."""
    if erosion_mm is None:
        return ndimage.binary_erosion(brain, iterations=1)
    return ndimage.distance_transform_edt(brain, sampling=voxel_mm) > erosion_mm


def _smooth_residual(shape, rng: np.random.Generator, std_ppb: float) -> np.ndarray:
    """A smooth field of low spatial order with std ``std_ppb`` (what background removal leaves behind)."""
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in shape], indexing="ij", sparse=True)
    c = rng.normal(0, 1, 7)
    field = c[0] * x + c[1] * y + c[2] * z + c[3] * x * y + c[4] * y * z + c[5] * z**2 + c[6] * (x**2 - y**2)
    return (std_ppb * field / (field.std() + 1e-6)).astype(np.float32)


@dataclass
class Scene:
    """A drawn head on the fine grid, before imaging: property maps, lesion list and the random streams
    that go on into the imaging (``rng`` for the physics draws, ``world_rng`` for the world's)."""

    maps: Maps
    inside: np.ndarray  # the brain on the fine grid
    lesions: list[dict]
    factors: tuple[int, ...]
    rng: np.random.Generator
    world_rng: np.random.Generator
    world: World
    seed: int


def draw_scene(seed: int, acquisition: Acquisition, fine_voxel_mm=FINE_VOXEL_MM, world: World | None = None) -> Scene:
    """Draw a subject's head, physiological iron, lesions and mimics on the fine grid (no imaging yet)."""
    world = world or World()
    rng = np.random.default_rng(seed)
    world_rng = np.random.default_rng([seed, 11])
    factors, fine_shape, fine_affine = _fine_grid(acquisition, fine_voxel_mm)
    fine_voxel = voxel_sizes(fine_affine)
    xyz = _world_coordinates(fine_shape, fine_affine)
    head = draw_head(xyz, rng, fine_voxel, world, world_rng)
    del xyz
    tissue = head.tissue
    inside = brain_mask(tissue)
    maps = Maps(
        affine=fine_affine,
        voxel_mm=fine_voxel,
        tissue=tissue,
        location=property_map(tissue, "location").astype(np.uint8),
        chi=(head.chi_ppb[tissue] + 6.0 * head.texture * inside).astype(np.float32),
        proton_density=(property_map(tissue, "proton_density") * (1 + 0.04 * head.texture)).astype(np.float32),
        r2star=(property_map(tissue, "r2star") + 2.0 * head.texture).astype(np.float32),
        t2w=(property_map(tissue, "t2w") * (1 + 0.05 * head.texture)).astype(np.float32),
        truth=np.zeros(fine_shape, np.uint8),
    )
    if world.air_and_bone:
        air_and_bone(maps, head, world_rng)
    if world.iron_texture:
        physiological_iron(maps, head, world_rng)
    lesions = place_all(maps, rng, world, head, world_rng)
    return Scene(maps, inside, lesions, factors, rng, world_rng, world, seed)


def generate_subject(
    seed: int = 0,
    acquisition: Acquisition | None = None,
    *,
    name: str | None = None,
    fine_voxel_mm=FINE_VOXEL_MM,
    world: World | None = None,
) -> SyntheticSubject:
    """Simulate one subject: a varied head with lesions and mimics, imaged by ``acquisition``.

    The physics runs on a grid subdivided to at most ``fine_voxel_mm`` (blooming needs sub-voxel
    field variation); coarser values are faster and bloom less. ``world`` (default ``World()``, the
    training world of the shipped model) sets anatomy, vessels, lesion burden, mimics and the QSM pipeline;
    its extra draws come from a stream of their own, so the default world is unchanged.
    """
    acquisition = acquisition or Acquisition()
    scene = draw_scene(seed, acquisition, fine_voxel_mm, world)
    return image_scene(scene, acquisition, name=name or f"sub-{seed:03d}")


def image_scene(
    scene: Scene,
    acquisition: Acquisition,
    *,
    name: str,
    rng: np.random.Generator | None = None,
    world_rng: np.random.Generator | None = None,
) -> SyntheticSubject:
    """Image a drawn :class:`Scene` with ``acquisition``: field, complex signal with blooming, noise, SWI,
    QSM, T2 and the truth labels. ``rng`` / ``world_rng`` (default: the scene's own streams) draw the
    background field, noise, artefacts and pipeline choices, so another pair gives another scan of one head.
    The lesion list's ``centre_mm`` must be in the world of the maps' affine."""
    maps, lesions, factors, world = scene.maps, scene.lesions, scene.factors, scene.world
    rng = scene.rng if rng is None else rng
    world_rng = scene.world_rng if world_rng is None else world_rng
    fine_affine, fine_voxel, tissue = maps.affine, maps.voxel_mm, maps.tissue
    fine_shape, inside = tissue.shape, scene.inside
    xyz = _world_coordinates(fine_shape, fine_affine)
    rotation = acquisition.affine[:3, :3] / voxel_sizes(acquisition.affine)
    b0_voxel = rotation.T @ acquisition.b0_unit
    field = dipole_field(maps.chi, fine_voxel, b0_voxel)
    phase_per_ppb = rad_per_ppb(acquisition.field_t, acquisition.te_ms)
    total = field + _background_field(xyz, rng)
    del xyz
    total_field = block_mean(total, factors) if world.background_removal == "sharp" else None
    r2star = np.clip(maps.r2star, 0, None) * (acquisition.field_t / 3.0)  # R2* grows about linearly with B0
    fine_signal = (maps.proton_density * np.exp(-acquisition.te_ms * 1e-3 * r2star)).astype(np.complex64)
    del r2star
    fine_signal *= np.exp(-1j * acquisition.phase_sign * phase_per_ppb * total).astype(np.complex64)
    del total
    signal = block_mean(fine_signal, factors).astype(np.complex64)  # intravoxel dephasing: blooming
    del fine_signal
    if world.swi_artefacts:
        signal = imaging_artefacts(signal, world_rng)
    brain = block_mean(inside.astype(np.float32), factors) > 0.5
    sigma = _add_noise(signal, tissue, factors, acquisition.snr, rng)
    magnitude = np.abs(signal)

    filter_px = max(16, round(64 * acquisition.shape[0] / 176))
    swi = swi_from_signal(signal, acquisition.phase_sign, filter_px=filter_px)

    # QSM: the local (background-free) field as a pipeline would estimate it, noisy where signal is low
    noise_sd = np.clip(sigma / (np.maximum(magnitude, 1e-6) * phase_per_ppb), 0, 300.0)
    noise = noise_sd * rng.standard_normal(magnitude.shape)
    qsm_mask = _qsm_mask(brain, acquisition.voxel_mm, world.qsm_erosion_mm)
    if total_field is not None:
        radius = float(world_rng.uniform(4, 6))
        local, eroded = sharp_background_removal(
            (total_field + noise).astype(np.float32), brain, acquisition.voxel_mm, radius
        )
        qsm_mask &= eroded
    else:  # an ideal removal: the field of the brain's own susceptibility
        local = block_mean(field, factors)
        if world.air_and_bone:
            local -= dipole_field(block_mean(maps.chi * ~inside, factors), acquisition.voxel_mm, b0_voxel)
        local = (local + noise).astype(np.float32)
    if world.residual_background_ppb:
        local += _smooth_residual(local.shape, world_rng, world.residual_background_ppb)
    qsm = _invert(local * qsm_mask, qsm_mask, magnitude, acquisition.voxel_mm, b0_voxel, world.inversion) * qsm_mask
    qsm = _referenced(qsm, qsm_mask, tissue, factors, world.qsm_reference, acquisition.qsm_units)

    t2, t2_affine = _t2_image(maps, factors, acquisition, rng)
    labels = _truth_labels(maps, factors, acquisition, lesions)
    centres = tuple(slice(f // 2, None, f) for f in factors)
    locations = maps.location[centres][tuple(slice(0, n) for n in acquisition.shape)]
    return SyntheticSubject(
        name=name,
        swi=(swi * 1000).astype(np.float32),
        qsm=qsm,
        t2=t2,
        t2_affine=t2_affine,
        affine=acquisition.affine,
        labels=labels,
        locations=np.ascontiguousarray(locations),
        lesions=lesions,
        acquisition=acquisition,
        seed=scene.seed,
        magnitude=(magnitude * 1000).astype(np.float32),
        world=world,
    )


def _t2_image(maps: Maps, factors, acquisition: Acquisition, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(T2-weighted image, its affine): on the SWI grid, or on a grid of its own (``acquisition.t2_voxel_mm``)."""
    fine_affine, fine_voxel, fine_shape = maps.affine, maps.voxel_mm, maps.tissue.shape
    bias = 1 + 0.15 * np.sin(np.linspace(0, np.pi, fine_shape[1]))[None, :, None] * rng.uniform(0.5, 1)
    t2_fine = (maps.t2w * bias).astype(np.float32)
    if acquisition.t2_voxel_mm is None:
        t2_affine = acquisition.affine
        t2 = block_mean(t2_fine, factors)
    else:
        extent = np.array(acquisition.shape) * np.array(acquisition.voxel_mm)
        t2_shape = tuple(int(np.ceil(e / v)) for e, v in zip(extent, acquisition.t2_voxel_mm))
        t2_affine = grid_affine(t2_shape, acquisition.t2_voxel_mm, rng.uniform(-4, 4), rng.uniform(-3, 3, 3))
        smoothing = np.array(acquisition.t2_voxel_mm) / fine_voxel / 2.355
        t2 = resample_to_grid(ndimage.gaussian_filter(t2_fine, smoothing), fine_affine, t2_shape, t2_affine, order=1)
    t2 = (t2 + rng.normal(0, 0.6 / acquisition.snr, t2.shape)).astype(np.float32) * 1000

    return t2, t2_affine


def _truth_labels(maps: Maps, factors, acquisition: Acquisition, lesions: list[dict]) -> np.ndarray:
    """The truth label map on the acquisition grid; each lesion's ``centre_voxel`` is recorded."""
    labels = np.zeros(acquisition.shape, np.uint8)
    for value in (1, 2):
        labels[block_mean((maps.truth == value).astype(np.float32), factors) >= 0.5] = value
    for lesion in lesions:  # no lesion vanishes: the voxel holding its centre is always labelled
        if lesion["label"]:
            index = np.round(np.linalg.inv(acquisition.affine) @ np.append(lesion["centre_mm"], 1))[:3].astype(int)
            if np.all(index >= 0) and np.all(index < acquisition.shape):
                labels[tuple(index)] = lesion["label"]
                lesion["centre_voxel"] = index.tolist()
    return labels


def _add_noise(signal: np.ndarray, tissue: np.ndarray, factors, snr: float, rng: np.random.Generator) -> float:
    """Add complex Gaussian noise to ``signal`` (in place) at ``snr`` in white matter; returns its sigma."""
    white = block_mean((tissue == 5).astype(np.float32), factors) > 0.9
    sigma = float(np.median(np.abs(signal[white]))) / snr
    signal += (sigma * (rng.standard_normal(signal.shape) + 1j * rng.standard_normal(signal.shape))).astype(
        np.complex64
    )
    return sigma


def _referenced(qsm, qsm_mask, tissue, factors, reference: str, units: str) -> np.ndarray:
    """The QSM referenced to CSF, the whole brain or nothing, masked, in ``units``."""
    csf = qsm_mask & (block_mean((tissue == 3) | (tissue == 15), factors) > 0.5)
    if reference == "csf" and csf.any():
        qsm -= np.median(qsm[csf])
    elif reference == "brain" and qsm_mask.any():
        qsm -= qsm[qsm_mask].mean()
    qsm = (qsm * qsm_mask).astype(np.float32)
    return qsm / np.float32(1000.0) if units == "ppm" else qsm


def _invert(local, mask, magnitude, voxel_mm, b0_voxel, method: str) -> np.ndarray:
    """Dipole inversion by ``method``: TKD, closed-form Tikhonov, or magnitude-weighted CG."""
    if method == "tkd":
        return tkd_inversion(local, voxel_mm, b0_voxel)
    if method == "tikhonov":
        return tikhonov_inversion(local, voxel_mm, b0_voxel)
    weight = mask * magnitude / (np.percentile(magnitude[mask], 99) if mask.any() else 1.0)
    return cg_inversion(local, np.clip(weight, 0, 1).astype(np.float32), voxel_mm, b0_voxel)


#: The ground truth a synthetic subject keeps beside its images (read from there, as a hand-annotated
#: subject's labels are, by train, evaluate and the napari reader); BIDS has no name for it in a raw dataset,
#: so the dataset's .bidsignore tells the BIDS validator to skip it.
GROUND_TRUTH_FILES = ("*_dseg.nii.gz", "*_lesions.json")
DATASET_DESCRIPTION = {
    "Name": "Synthetic SWI/QSM/T2 subjects with known lesions (deepmir synth)",
    "GeneratedBy": [
        {"Name": "napari-deepmir", "Version": __version__, "Description": "deepmir synth: physics-based phantom"}
    ],
}
DATASET_README = """Synthetic subjects made by `deepmir synth` (napari-deepmir): physics-based phantoms with known
cerebral microbleeds and iron deposits.

Per subject, in sub-X/anat/:
- sub-X_rec-swi_T2starw.nii.gz  SWI (BIDS has no SWI suffix: a T2*-weighted image reconstructed from the
                                gradient echo's magnitude and phase)
- sub-X_Chimap.nii.gz           QSM; sub-X_Chimap.json states its units (ppm as BIDS
                                defines Chimap, unless --qsm-units ppb or --randomize)
- sub-X_T2w.nii.gz              T2-weighted
- sub-X_dseg.nii.gz             ground truth: 0 background, 1 cerebral microbleed, 2 iron deposit
- sub-X_desc-locations_dseg.nii.gz  location map; sub-X_lesions.json: every object drawn
The ground-truth files are listed in .bidsignore (BIDS keeps labels in derivatives, not beside raw images).
"""


def write_subject(subject: SyntheticSubject, out_dir: str | Path, *, session: str | None = None) -> dict[str, Path]:
    """Write ``out_dir/<name>/anat/<name>_{T2w,rec-swi_T2starw,Chimap}.nii.gz`` (BIDS raw names, see ``io.bids``),
    a ``_Chimap.json`` sidecar stating the QSM's units (ppm or ppb as drawn: BIDS expects ppm, so the units are
    stated rather than left to detection), and the ground truth beside them: ``_dseg.nii.gz``,
    ``_desc-locations_dseg.nii.gz`` and ``_lesions.json`` (every object drawn). A name without ``sub-`` gets it.
    ``session`` (e.g. ``1`` for a subject named ``sub-001_ses-1``): in ``out_dir/sub-001/ses-1/anat/``."""
    label = subject.name.split("_ses-")[0].removeprefix("sub-")

    def path(kind: str, extension: str = ".nii.gz") -> Path:
        return raw_path(out_dir, label, session, kind, extension)

    paths = {
        "t2": save_nifti(path("t2"), subject.t2, subject.t2_affine),
        "swi": save_nifti(path("swi"), subject.swi, subject.affine),
        "qsm": save_nifti(path("qsm"), subject.qsm, subject.affine),
        "labels": save_labels(path("labels"), subject.labels, subject.affine),
        "locations": save_labels(path("locations"), subject.locations, subject.affine),
    }
    paths["qsm_sidecar"] = write_text_atomic(path("qsm", ".json"), json.dumps({"Units": subject.acquisition.qsm_units}))
    acquisition = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(subject.acquisition).items()}
    record = {
        "subject": subject.name,
        "seed": subject.seed,
        "qsm_units": subject.acquisition.qsm_units,
        "acquisition": acquisition,
        **({} if subject.world == World() else {"world": asdict(subject.world)}),
        "lesions": subject.lesions,
    }
    lesions = paths["swi"].with_name(f"sub-{label}{f'_ses-{session}' if session else ''}_lesions.json")
    paths["lesions"] = write_text_atomic(lesions, json.dumps(record, indent=1))
    return paths


def check_subject_folders(out_dir: str | Path, n_subjects: int, *, overwrite: bool = False) -> None:
    """Refuse (InputError) to make subjects ``sub-001``... in ``out_dir`` where such a folder already holds
    anything, unless ``overwrite`` (:func:`..io.destinations.check_new_folder`)."""
    ensure_writable_folder(out_dir)
    for i in range(n_subjects):
        check_new_folder(Path(out_dir) / f"sub-{i + 1:03d}", overwrite=overwrite)


def generate_cohort(
    out_dir: str | Path,
    n_subjects: int,
    seed: int = 0,
    acquisition: Acquisition | None = None,
    *,
    randomize: bool = False,
    progress=None,
    fine_voxel_mm=FINE_VOXEL_MM,
    world: World | Callable[[np.random.Generator], World] | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write ``n_subjects`` subjects ``sub-001``...; subject i depends only on (seed, i).

    ``randomize``: each subject gets its own :meth:`Acquisition.randomized` acquisition (at the field
    strength of ``acquisition``). ``world``: one :class:`World` for all, or a function drawing one per
    subject from a generator (e.g. ``World.randomized``). ``progress(done, total)`` is called after each subject.
    A subject folder that already holds anything is never replaced unless ``overwrite`` (checked before any
    subject is made). The folder is a BIDS raw dataset: its dataset_description.json, README and .bidsignore are
    written when missing.
    """
    check_subject_folders(out_dir, n_subjects, overwrite=overwrite)
    write_dataset_files(out_dir, DATASET_DESCRIPTION, DATASET_README, ignore=GROUND_TRUTH_FILES)
    folders = []
    for i in range(n_subjects):
        subject_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        this = acquisition
        if randomize:
            this = Acquisition.randomized(np.random.default_rng(subject_seed + 1))
            this = this.with_(field_t=acquisition.field_t) if acquisition is not None else this
        this_world = world(np.random.default_rng(subject_seed + 2)) if callable(world) else world
        subject = generate_subject(
            subject_seed, this, name=f"sub-{i + 1:03d}", fine_voxel_mm=fine_voxel_mm, world=this_world
        )
        folders.append(write_subject(subject, out_dir)["swi"].parent.parent)
        if progress is not None:
            progress(i + 1, n_subjects)
    return folders
