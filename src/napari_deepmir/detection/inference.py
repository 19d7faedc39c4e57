"""The first stage: one preparation of the input shared with training, the model loaded, batched slices.

The network sees every subject the same way, whatever its acquisition: reoriented to the closest
canonical (RAS) orientation so axial slices are the last axis, resampled to the model's working
spacing (``card.spacing_mm``), and normalised by a robust z-score inside the brain (median and MAD),
which also makes QSM units and SWI scaling irrelevant. Probabilities go back onto the SWI grid, where
post-processing (:mod:`..lesions.postprocess`) makes lesions of them.
"""

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
from nibabel.orientations import apply_orientation, io_orientation, ornt_transform
from scipy import ndimage

from ..conventions import CLASS_NAMES
from ..io import InputError, Subject
from ..model.files import LoadedModel, load_model
from ..model.registry import ModelChoice, choose_model

#: 1.4826 * MAD estimates the standard deviation of normally distributed values.
_MAD_TO_SD = 1.4826
#: Brain-mask dilation (working voxels) kept around the brain when zeroing the background.
_MASK_MARGIN = 2
_LABEL_OF_CLASS = {name: value for value, name in CLASS_NAMES.items()}
#: The model's working grid may hold at most this many times the subject's voxels (a 1 x 1 x 2 mm model on a
#: 2 x 2 x 4 mm scan is 8x), unless it stays under SMALL_WORKING_VOXELS (64 MiB per channel as float32) ...
MAX_UPSAMPLING = 8
SMALL_WORKING_VOXELS = 2**24
#: ... and never more than this many voxels (256 MiB per channel).
MAX_WORKING_VOXELS = 2**26


@dataclass
class PreparedInput:
    """A subject on the model's working grid: ``channels`` (modalities, X, Y, Z), normalised."""

    channels: np.ndarray
    brain: np.ndarray
    subject_shape: tuple[int, int, int]
    orientation: np.ndarray
    canonical_shape: tuple[int, int, int]
    zoom: np.ndarray  # working voxels per canonical voxel, per axis

    def labels_to_working(self, labels: np.ndarray) -> np.ndarray:
        """A label map on the SWI grid -> working grid (nearest neighbour)."""
        return _resample_zoom(
            _reorient(np.asarray(labels), self.orientation), self.zoom, self.channels.shape[1:], order=0
        )

    def to_subject_grid(self, volume: np.ndarray, order: int = 1) -> np.ndarray:
        """A working-grid volume, or a stack of them (C, X, Y, Z), -> the SWI grid, exactly its shape."""
        if volume.ndim == 4:
            return np.stack([self.to_subject_grid(v, order) for v in volume])
        canonical = _resample_zoom(
            np.asarray(volume, dtype=np.float32 if order else volume.dtype),
            1 / self.zoom,
            self.canonical_shape,
            order=order,
        )
        return _reorient(canonical, self.orientation, inverse=True)


def _reorient(array: np.ndarray, orientation: np.ndarray, inverse: bool = False) -> np.ndarray:
    identity = np.array([[0, 1], [1, 1], [2, 1]])
    transform = ornt_transform(identity, orientation) if inverse else orientation
    return np.ascontiguousarray(apply_orientation(array, transform))


def _resample_zoom(array: np.ndarray, zoom: np.ndarray, shape, order: int) -> np.ndarray:
    """Resample by per-axis ``zoom`` keeping the grid's outer edges aligned (voxel-centre convention)."""
    zoom = np.asarray(zoom, dtype=float)
    if tuple(array.shape) == tuple(shape) and np.allclose(zoom, 1):
        return array
    matrix = 1.0 / zoom
    offset = 0.5 * matrix - 0.5
    return ndimage.affine_transform(
        array, matrix, offset=offset, output_shape=tuple(shape), order=order, mode="nearest"
    )


def check_working_grid(subject: Subject, card, working_shape) -> None:
    """Refuse (InputError) a working grid of more than :data:`MAX_UPSAMPLING` times the subject's voxels (when
    over :data:`SMALL_WORKING_VOXELS`) or more than :data:`MAX_WORKING_VOXELS`: a card's fine ``spacing_mm`` on a
    coarse scan would cost minutes and gigabytes for detail the scan does not have."""
    working, voxels = int(np.prod(working_shape, dtype=np.int64)), int(np.prod(subject.shape, dtype=np.int64))
    if working <= MAX_WORKING_VOXELS and (working <= MAX_UPSAMPLING * voxels or working <= SMALL_WORKING_VOXELS):
        return
    spacing = " x ".join(f"{s:g}" for s in card.spacing_mm)
    raise InputError(
        subject.paths.get("swi"),
        f"model {card.name!r} works on a {spacing} mm grid: this subject's {voxels:,} voxels would become "
        f"{' x '.join(map(str, working_shape))} = {working:,} ({working / voxels:.1f}x; at most {MAX_UPSAMPLING}x over "
        f"{SMALL_WORKING_VOXELS:,} voxels, never over {MAX_WORKING_VOXELS:,}); use a model whose grid suits the scan",
    )


def prepare_input(subject: Subject, card) -> PreparedInput:
    """Reorient, resample to ``card.spacing_mm`` and normalise the modalities the model needs.

    Statistics come from ``subject.mask``; the network sees ``subject.whole_brain`` (with the cortex an
    eroded QSM leaves out) plus a margin, zero beyond, and a QSM channel of 0 where the QSM has no data."""
    missing = [m for m in card.modalities if getattr(subject, m) is None]
    if missing:
        raise InputError(
            subject.paths.get("swi"),
            f"model {card.name!r} needs {'+'.join(m.upper() for m in card.modalities)} but subject {subject.name} has "
            "no "
            f"{'/'.join(m.upper() for m in missing)} image",
        )
    orientation = io_orientation(subject.affine)
    canonical_spacing = np.abs(subject.spacing[orientation[:, 0].astype(int).argsort()])
    canonical_shape = tuple(_reorient(np.empty(subject.shape, np.uint8), orientation).shape)
    zoom = canonical_spacing / np.asarray(card.spacing_mm, dtype=float)
    working_shape = tuple(max(1, round(n * z)) for n, z in zip(canonical_shape, zoom))
    check_working_grid(subject, card, working_shape)  # before any array of that size is made
    zoom = np.array(working_shape) / np.array(canonical_shape)

    def to_working(data: np.ndarray, order: int) -> np.ndarray:
        return _resample_zoom(_reorient(np.asarray(data, np.float32), orientation), zoom, working_shape, order)

    reference = to_working(subject.mask, 1) > 0.5
    brain = (to_working(subject.whole_brain, 1) > 0.5) | reference
    if not reference.any():
        raise InputError(subject.paths.get("swi"), "no brain found in the SWI image (the brain mask is empty)")
    keep = ndimage.binary_dilation(brain, iterations=_MASK_MARGIN)
    clip = float(card.normalisation.get("clip", 8.0))
    channels = np.empty((len(card.modalities), *working_shape), np.float32)
    for index, modality in enumerate(card.modalities):
        image = to_working(subject.modality(modality), 1)
        channels[index] = robust_z(image, reference, clip)
        channels[index][~keep] = 0
        if modality == "qsm":  # no data (0 in the file, e.g. beyond an eroded mask) stays 0, as in training
            channels[index][to_working(subject.qsm != 0, 1) < 0.5] = 0
    return PreparedInput(channels, brain, subject.shape, orientation, canonical_shape, zoom)


def robust_z(image: np.ndarray, mask: np.ndarray, clip: float) -> np.ndarray:
    """(image - median) / (1.4826 * MAD) over ``mask``, clipped to +-``clip``."""
    values = image[mask]
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median))) * _MAD_TO_SD
    if mad <= 0:
        mad = float(values.std()) or 1.0
    return np.clip((image - median) / mad, -clip, clip).astype(np.float32)


def select_device(name: str = "auto"):
    """A torch device: ``auto`` picks CUDA, then Apple MPS, then CPU; a named one must be available."""
    import torch

    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(None, f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise InputError(None, f"device {name!r} is not available here (CUDA devices: {torch.cuda.device_count()})")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(None, "device 'mps' is not available here")
    return device


def load_detection_model(subject: Subject, model, device) -> tuple[LoadedModel, ModelChoice | None]:
    """The model that detects in ``subject``, on the torch ``device`` (:func:`select_device`), and why it was
    chosen: ``model`` is None (the shipped model for the subject's inputs), a model folder, file or shipped
    name, a :class:`~..model.registry.ModelChoice` or a :class:`~..model.files.LoadedModel` (no choice then).
    The one place a model is resolved and loaded (its weights hashed once, ``LoadedModel.sha256``)."""
    if isinstance(model, LoadedModel):
        model.module.to(device).eval()
        return model, None
    choice = model if isinstance(model, ModelChoice) else choose_model(subject.available, model)
    return load_model(choice.path, device), choice


def _slice_batches(prepared: PreparedInput, context: int, batch_size: int):
    """Indices of the axial slices that hold brain, in batches."""
    slices = np.flatnonzero(prepared.brain.any(axis=(0, 1)))
    return [slices[i : i + batch_size] for i in range(0, len(slices), batch_size)]


def _stack_context(channels: np.ndarray, slices: np.ndarray, context: int, multiple: int) -> np.ndarray:
    """(B, modalities*(2k+1), H, W) inputs: each modality with its neighbouring slices (edge-padded),
    padded in-plane."""
    depth = channels.shape[-1]
    offsets = np.arange(-context, context + 1)
    index = np.clip(slices[:, None] + offsets[None, :], 0, depth - 1)  # (B, 2k+1)
    stack = channels[:, :, :, index]  # (M, X, Y, B, 2k+1)
    stack = np.moveaxis(stack, 3, 0)  # (B, M, X, Y, 2k+1)
    stack = np.moveaxis(stack, -1, 2)  # (B, M, 2k+1, X, Y)
    batch = stack.reshape(stack.shape[0], -1, *stack.shape[-2:])
    pad = [(0, 0), (0, 0)] + [(0, (-n) % multiple) for n in batch.shape[-2:]]
    return np.pad(batch, pad)


def iter_probabilities(
    prepared: PreparedInput, loaded, *, batch_size: int = 8, bf16: bool = False
) -> Generator[tuple[int, int], None, np.ndarray]:
    """The U-Net's (background, CMB, iron) probabilities on the SWI grid, slice batch by slice batch on the
    model's device; yields ``(done, total)`` batches."""
    import torch

    card, module = loaded.card, loaded.module
    torch_device = next(module.parameters()).device
    batches = _slice_batches(prepared, card.context_slices, batch_size)
    working = np.zeros((card.n_classes, *prepared.channels.shape[1:]), np.float16)
    working[0] = 1.0
    yield 0, len(batches)
    width, height = prepared.channels.shape[1:3]
    for done, slices in enumerate(batches, start=1):
        batch = torch.from_numpy(
            _stack_context(prepared.channels, slices, card.context_slices, module.size_multiple)
        ).to(torch_device)
        with torch.inference_mode(), torch.autocast(torch_device.type, dtype=torch.bfloat16, enabled=bf16):
            probabilities = torch.softmax(module(batch).float(), dim=1)[:, :, :width, :height]
        working[:, :, :, slices] = probabilities.permute(1, 2, 3, 0).cpu().numpy().astype(np.float16)
        yield done, len(batches)
    return _as_three_classes(prepared.to_subject_grid(working.astype(np.float32), order=1), card)


def _as_three_classes(probabilities: np.ndarray, card) -> np.ndarray:
    """Probabilities in the (background, CMB, iron) layout, whatever classes the model has."""
    if probabilities.shape[0] == 3 and card.classes.get("1") == "cmb":
        return probabilities
    out = np.zeros((3, *probabilities.shape[1:]), np.float32)
    for index, name in card.classes.items():
        out[0 if name == "background" else _LABEL_OF_CLASS[name]] += probabilities[int(index)]
    return out
