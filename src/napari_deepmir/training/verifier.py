"""Training the second stage (:mod:`..model.verifier`) on candidates from annotated subjects.

Candidates come from where the verifier will meet them and from where a new scanner may make them:
the U-Net's lesions at a loose threshold (its false positives are the hard negatives), the classical
blob finder of the labelling guidance (dark spots the U-Net has not learnt to fire on: veins, mimics),
the annotated lesions themselves and, in a subject made by ``deepmir synth``, the simulator's own veins,
flow voids, calcifications and other mimics (:func:`simulated_mimic_seeds`). A candidate that touches an
annotated lesion (26-neighbourhood) takes its class; any other is "not a lesion". The candidates a rater
rejected in the labelling tool (:func:`rejected_candidate_seeds`) are "not a lesion" too, whatever they touch.
"""

import copy
import hashlib
import time
import warnings
import zipfile
import zlib
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..detection.inference import iter_probabilities, prepare_input
from ..detection.verification import kept_lesions, verifier_probabilities
from ..io import InputError
from ..io.atomic import atomic_path
from ..io.bids import subject_files_matching
from ..io.derivatives import read_table
from ..io.jsonfile import read_json
from ..lesions.candidates import find_candidates, grown_components
from ..lesions.components import CONNECTIVITY_26
from ..lesions.evaluate import score_lesions
from ..lesions.patches import PATCH_SHAPE, candidate_patches
from ..lesions.postprocess import apply_postprocess
from ..model.card import ModelCard
from ..model.files import LoadedModel, load_model, model_sha256, save_model
from ..progress import run_to_end
from .common import (
    THRESHOLD_SUBJECTS,
    TrainingConfig,
    TrainingReport,
    open_destination,
    pooled_metrics,
    training_split,
    validation_score,
)
from .common import THRESHOLDS as VERIFIER_THRESHOLDS  # the U-Net's threshold grid serves the verifier too
from .data import AnnotatedSubject

#: Peak lesion probability of the U-Net's candidates used for training (looser than prediction).
LOOSE_PROBABILITY = 0.2
#: Blob-finder candidates taken per subject (most of them dark spots that are not lesions: hard negatives).
BLOB_CANDIDATES = 100
#: Points taken along the simulator's veins per synthetic subject (all its other mimics are taken).
SIMULATED_VEIN_POINTS = 40
#: Version of the recipe of :func:`subject_examples`, part of the key of cached examples.
EXAMPLES_RECIPE = 3
#: The rejected candidates the labelling tool's export writes in an annotation folder (with their reasons).
REJECTED_CANDIDATES = "*_desc-rejected_candidates.tsv"
#: Learning rate of the second stage when it follows a U-Net fine-tune.
FINE_TUNE_LR = 5e-4
#: Examples per verifier training step.
VERIFIER_BATCH = 32
#: Share of each target class in a training batch (not a lesion, CMB, iron).
CLASS_SHARES = (0.5, 0.3, 0.2)


@dataclass
class VerifierExamples:
    """Patches (n, channels, *PATCH_SHAPE) with targets (n,) 0 not a lesion / 1 CMB / 2 iron."""

    patches: np.ndarray
    targets: np.ndarray

    @staticmethod
    def concatenate(parts: list["VerifierExamples"]) -> "VerifierExamples":
        return VerifierExamples(
            np.concatenate([p.patches for p in parts]), np.concatenate([p.targets for p in parts]).astype(np.int64)
        )


def near_classes(truth: np.ndarray) -> list[np.ndarray]:
    """Masks of the annotated CMBs and iron deposits, each grown by one voxel (26-neighbourhood)."""
    return [ndimage.binary_dilation(truth == value, structure=CONNECTIVITY_26) for value in (1, 2)]


def candidate_targets(components: np.ndarray, count: int, near: list[np.ndarray]) -> np.ndarray:
    """Target class of each component 1..count: the annotated class (:func:`near_classes`) it touches
    most, 0 when none."""
    index = np.arange(1, count + 1)
    touches = np.stack([ndimage.sum_labels(mask, components, index) for mask in near], axis=1)
    return np.where(touches.max(axis=1) > 0, touches.argmax(axis=1) + 1, 0).astype(np.int64)


def simulated_mimic_seeds(folder: Path, subject) -> np.ndarray:
    """SWI-grid voxels (n, 3) inside the brain at the objects that are not lesions in a ``deepmir synth``
    subject's ``*_lesions.json`` (veins, at most :data:`SIMULATED_VEIN_POINTS` points along them, flow voids,
    calcifications, cavernomas...): where a new scanner's U-Net may fire. Empty without such a record."""
    records = subject_files_matching(folder, "*_lesions.json") if Path(folder).is_dir() else []
    records = [r for r in records if "_desc-" not in r.name]  # not the sidecar of an exported lesion table
    if not records:
        return np.zeros((0, 3), int)
    try:
        objects = [o for o in read_json(records[0])["lesions"] if int(o["label"]) == 0]
        veins = [o for o in objects if o["kind"] == "vein"]
        points = [np.asarray(o["centre_mm"], float) for o in objects if o["kind"] != "vein"]
        rng = np.random.default_rng(zlib.crc32(Path(folder).name.encode()))
        for number in rng.permutation(len(veins)):
            vein = veins[number]
            along = rng.uniform(-0.5, 0.5) * float(vein["length_mm"])
            direction = np.asarray(vein.get("direction", (0.0, 0.0, 0.0)), float)  # the default world's: the centre
            points.append(np.asarray(vein["centre_mm"], float) + along * direction)
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(records[0], f"not a synthetic subject's object record ({error})") from error
    if not points:
        return np.zeros((0, 3), int)
    world = np.c_[np.asarray(points).reshape(-1, 3), np.ones(len(points))]
    voxels = np.rint((world @ np.linalg.inv(subject.affine).T)[:, :3]).astype(int)
    inside = ((voxels >= 0) & (voxels < subject.shape)).all(axis=1)
    inside[inside] = subject.mask[tuple(voxels[inside].T)]
    is_vein = np.arange(len(points)) >= len(points) - len(veins)
    keep = inside & (~is_vein | (np.cumsum(inside & is_vein) <= SIMULATED_VEIN_POINTS))
    return voxels[keep]


def rejected_candidate_seeds(folder: Path, subject) -> np.ndarray:
    """SWI-grid voxels (n, 3) of the candidates a rater rejected in the labelling tool (the
    :data:`REJECTED_CANDIDATES` table of an annotation folder): each one's seed voxel, else its centre through
    the affine; those outside the grid are left out. Empty without such a table."""
    tables = sorted(Path(folder).glob(REJECTED_CANDIDATES)) if Path(folder).is_dir() else []
    if not tables:
        return np.zeros((0, 3), int)
    try:
        table = read_table(tables[0])
        world = table[["x_mm", "y_mm", "z_mm"]].to_numpy(float)
        seeds = table.reindex(columns=["seed_i", "seed_j", "seed_k"]).to_numpy(float)
    except (ValueError, KeyError) as error:
        raise InputError(tables[0], f"not a table of rejected candidates ({str(error)[:200]})") from error
    centres = (np.c_[world, np.ones(len(world))] @ np.linalg.inv(subject.affine).T)[:, :3]
    voxels = np.rint(np.where(np.isfinite(seeds), seeds, centres)).astype(int)
    return voxels[((voxels >= 0) & (voxels < subject.shape)).all(axis=1)]


def subject_examples(
    subject,
    truth: np.ndarray,
    loaded,
    *,
    batch_size: int = 8,
    mimic_seeds: np.ndarray | None = None,
    rejected_seeds: np.ndarray | None = None,
) -> VerifierExamples:
    """Training examples of one annotated subject for ``loaded``'s verifier (see the module docstring);
    ``mimic_seeds``: voxels of known non-lesions (:func:`simulated_mimic_seeds`); ``rejected_seeds``: the
    rater's rejected candidates (:func:`rejected_candidate_seeds`), "not a lesion" unless painted after all."""
    prepared, loose = unet_lesions(subject, loaded, min_probability=LOOSE_PROBABILITY, batch_size=batch_size)
    seeds = find_candidates(subject, max_candidates=BLOB_CANDIDATES)[["seed_i", "seed_j", "seed_k"]].to_numpy()
    sources = [
        ndimage.label(loose > 0, structure=CONNECTIVITY_26),
        ndimage.label(truth > 0, structure=CONNECTIVITY_26),
        grown_components(subject, seeds),
    ]
    if mimic_seeds is not None and len(mimic_seeds):
        sources.append(grown_components(subject, mimic_seeds))
    near = near_classes(truth)
    patch_shape = loaded.card.verifier["patch_shape"] if loaded.card.verifier else PATCH_SHAPE
    parts = []
    for components, count in sources:
        if count:
            patches = candidate_patches(prepared, components, count, patch_shape)
            parts.append(VerifierExamples(patches, candidate_targets(components, count, near)))
    if rejected_seeds is not None and len(rejected_seeds):
        unpainted = np.asarray(rejected_seeds)[truth[tuple(np.asarray(rejected_seeds).T)] == 0]
        components, count = grown_components(subject, unpainted)
        if count:
            patches = candidate_patches(prepared, components, count, patch_shape)
            parts.append(VerifierExamples(patches, np.zeros(count, np.int64)))
    return VerifierExamples.concatenate(parts)


def augment_batch(patches: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flips on every axis, in-plane quarter turns, shifts of up to 2 voxels, per-channel contrast and
    offset changes and noise on the image channels (the last channel, the candidate mask, keeps 0/1), and
    now and then no QSM (zeros, as where a QSM's eroded mask has no data)."""
    out = patches.copy()
    for n in range(len(out)):
        sample = out[n]
        for axis in (1, 2, 3):
            if rng.random() < 0.5:
                sample = np.flip(sample, axis=axis)
        if rng.random() < 0.5:
            sample = np.swapaxes(sample, 1, 2)
        sample = np.roll(sample, tuple(rng.integers(-2, 3, size=3)), axis=(1, 2, 3))
        images = sample[:-1] * rng.uniform(0.75, 1.3, size=(len(sample) - 1, 1, 1, 1))
        images += rng.uniform(-0.3, 0.3, size=(len(images), 1, 1, 1)) + rng.normal(0, 0.15, images.shape)
        sample = np.concatenate([images, sample[-1:]]).astype(np.float32)
        out[n] = sample
    return out


def balanced_indices(targets: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` example indices, each class drawn with its :data:`CLASS_SHARES` (classes without examples
    give their share to the others)."""
    pools = [np.flatnonzero(targets == value) for value in range(3)]
    shares = np.array([share if len(pool) else 0.0 for share, pool in zip(CLASS_SHARES, pools)])
    classes = rng.choice(3, size=size, p=shares / shares.sum())
    return np.array([rng.choice(pools[c]) for c in classes])


def iter_fit(verifier, examples: VerifierExamples, *, steps: int, lr: float = 1e-3, seed: int = 0, bf16: bool = False):
    """Train ``verifier`` in place on ``examples`` (balanced, augmented batches of :data:`VERIFIER_BATCH`,
    AdamW with cosine decay), yielding ``(step, loss)`` after each step; close the generator to stop."""
    import torch

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    device = next(verifier.parameters()).device
    optimizer = torch.optim.AdamW(verifier.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1))
    verifier.train()
    try:
        for step in range(1, steps + 1):
            index = balanced_indices(examples.targets, VERIFIER_BATCH, rng)
            inputs = torch.from_numpy(augment_batch(examples.patches[index], rng)).to(device)
            targets = torch.from_numpy(examples.targets[index]).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = torch.nn.functional.cross_entropy(verifier(inputs).float(), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            yield step, float(loss.detach())
    finally:
        verifier.eval()


#: Largest drop in the share of annotated lesions found that a verifier threshold may cost (validation).
MAX_SENSITIVITY_LOSS = 0.05
#: Second stage of a model that had none: small enough to train on a laptop CPU in minutes.
NEW_VERIFIER = {"base_filters": 16, "patch_shape": list(PATCH_SHAPE), "min_probability": 0.5}


def unet_lesions(subject, loaded, *, min_probability: float | None = None, batch_size: int = 8):
    """(prepared input, labels) of the U-Net of ``loaded`` alone on ``subject`` (post-processed, with the card's
    ``min_probability`` unless given): the candidates its verifier sees."""
    prepared = prepare_input(subject, loaded.card)
    probabilities = run_to_end(iter_probabilities(prepared, loaded, batch_size=batch_size))
    return prepared, apply_postprocess(probabilities, subject, loaded.card, min_probability=min_probability)


@dataclass
class ValidationCase:
    """An annotated subject's truth, its U-Net lesions (labels and their components) and their patches."""

    truth: np.ndarray
    labels: np.ndarray
    components: np.ndarray
    patches: np.ndarray

    def scores(self, probabilities: np.ndarray | None, threshold: float | None) -> dict:
        """Lesion-wise scores of the U-Net alone (``threshold`` None) or with a verifier's ``probabilities``."""
        if threshold is None:
            return score_lesions(self.truth, self.labels)
        return score_lesions(self.truth, kept_lesions(self.labels, self.components, probabilities, threshold))


def validation_cases(loaded, subjects) -> list[ValidationCase]:
    """One U-Net pass over each annotated subject, kept for scoring any verifier of ``loaded``."""
    patch_shape = loaded.card.verifier["patch_shape"] if loaded.card.verifier else PATCH_SHAPE
    cases = []
    for annotated in subjects:
        prepared, labels = unet_lesions(annotated.subject, loaded)
        ids, count = ndimage.label(labels > 0, structure=CONNECTIVITY_26)
        cases.append(ValidationCase(annotated.truth, labels, ids, candidate_patches(prepared, ids, count, patch_shape)))
    return cases


def validate_verifier(verifier, cases: list[ValidationCase], thresholds=VERIFIER_THRESHOLDS, *, bf16=False) -> dict:
    """Pooled lesion-wise metrics on validation ``cases``: ``unet`` (the U-Net alone), and with ``verifier`` at
    each of ``thresholds``; ``best`` = (threshold, metrics) chosen by :func:`choose_threshold`."""
    probabilities = [verifier_probabilities(verifier, case.patches, bf16=bf16) for case in cases]
    results = {"unet": pooled_metrics([case.scores(None, None) for case in cases])}
    for threshold in thresholds:
        results[threshold] = pooled_metrics([c.scores(p, threshold) for c, p in zip(cases, probabilities)])
    results["best"] = choose_threshold(results, thresholds)
    return results


def _found(metrics: dict) -> float:
    """Share of the annotated lesions (both classes pooled) found."""
    truth = sum(metrics[name]["n_truth"] for name in ("cmb", "iron"))
    return sum(metrics[name]["n_truth_found"] for name in ("cmb", "iron")) / truth if truth else 1.0


def choose_threshold(results: dict, thresholds=VERIFIER_THRESHOLDS) -> tuple[float, dict]:
    """(threshold, metrics) with the highest mean F1 among the ``thresholds`` that find at most
    :data:`MAX_SENSITIVITY_LOSS` fewer of the annotated lesions than the U-Net alone (the lowest threshold
    when none does): the second stage is there to remove false positives, not microbleeds."""
    allowed = [t for t in thresholds if _found(results[t]) >= _found(results["unet"]) - MAX_SENSITIVITY_LOSS]
    best = max(allowed or sorted(thresholds)[:1], key=lambda t: (validation_score(results[t]), -t))
    return best, results[best]


def _content_key(annotated, seeds: tuple[np.ndarray, ...], model_sha: str) -> str:
    """A digest of what a subject's examples are made from: its images, brain mask, affine and annotation, the
    simulator's mimics and the rater's rejected candidates (``seeds``), the model's weights and the recipe; not
    its folder's name (an annotation emptied in place changes the key)."""
    subject = annotated.subject
    digest = hashlib.sha256(f"{model_sha}|{EXAMPLES_RECIPE}|{','.join(subject.available)}".encode())
    for array in (subject.affine, subject.mask, annotated.truth, *seeds, *map(subject.modality, subject.available)):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.reshape(-1).view(np.uint8))  # the bytes in place, no copy
    return digest.hexdigest()[:32]


def _read_cached(path: Path) -> VerifierExamples | None:
    """The examples stored at ``path``, or None (with a warning) when the file is not a readable cache of them."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            patches, targets = stored["patches"], stored["targets"]
        if patches.ndim != 5 or targets.shape != (len(patches),) or not np.isfinite(patches).all():
            raise ValueError("unexpected arrays")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        warnings.warn(f"{path}: not a readable examples cache ({error}); it is made again", stacklevel=3)
        return None
    return VerifierExamples(patches.astype(np.float32), targets.astype(np.int64))


def cached_examples(annotated, loaded, cache: Path | None) -> VerifierExamples:
    """:func:`subject_examples` of an annotated subject, read from ``cache`` when an earlier run with the same
    model and the same subject content (:func:`_content_key`, the rater's rejected candidates included) stored
    them there, else made (and stored). A corrupt cache file is reported and made again."""
    folder = Path(annotated.name)
    mimics = simulated_mimic_seeds(folder, annotated.subject)
    rejected = rejected_candidate_seeds(folder, annotated.subject)

    def make() -> VerifierExamples:
        return subject_examples(annotated.subject, annotated.truth, loaded, mimic_seeds=mimics, rejected_seeds=rejected)

    if cache is None or loaded.path is None:
        return make()
    path = Path(cache) / f"examples-{_content_key(annotated, (mimics, rejected), model_sha256(loaded.path))}.npz"
    examples = _read_cached(path) if path.exists() else None
    if examples is not None:
        return examples
    examples = make()
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.savez_compressed(handle, patches=examples.patches.astype(np.float16), targets=examples.targets)
    return examples


def _training_examples(
    subjects: list[AnnotatedSubject], base: LoadedModel, cache: Path | None, should_stop: Callable[[], bool]
) -> VerifierExamples | None:
    """The examples of the training ``subjects`` (:func:`cached_examples`); None once a stop is asked for."""
    parts = []
    for annotated in subjects:
        if should_stop():
            return None
        parts.append(cached_examples(annotated, base, cache))
    return VerifierExamples.concatenate(parts)


def _starting_verifier(card: ModelCard, base: LoadedModel, device):
    """A copy of the base's verifier to fine-tune, or a new :data:`NEW_VERIFIER` (written into ``card``)."""
    from ..model.verifier import CandidateVerifier  # noqa: PLC0415 (imports torch)

    if card.verifier is None:
        card.verifier = dict(NEW_VERIFIER)
        return CandidateVerifier(len(card.modalities) + 1, 3, card.verifier["base_filters"]).to(device)
    return copy.deepcopy(base.verifier)


def _compare(verifier, base: LoadedModel, cases: list[ValidationCase], bf16: bool) -> tuple[dict, float, dict]:
    """(the base's metrics, the trained verifier's chosen threshold, its metrics there) on ``cases``: the base
    is its U-Net alone, or with its own verifier at that one's threshold."""
    results = validate_verifier(verifier, cases, bf16=bf16)
    before = results["unet"]
    if base.verifier is not None:
        threshold = base.card.verifier["min_probability"]
        before = validate_verifier(base.verifier, cases, (threshold,), bf16=bf16)[threshold]
    threshold, after = results["best"]
    return before, threshold, after


def _verifier_record(config: TrainingConfig, subjects: tuple[list, list], examples, steps: int, kept: bool) -> dict:
    """The card's ``training.verifier`` section: the (train, validation) ``subjects``, the examples' classes..."""
    counts = np.bincount(examples.targets, minlength=3)
    return {
        "data": [str(p) for p in config.data],
        "train_subjects": [s.name for s in subjects[0]],
        "validation_subjects": [s.name for s in subjects[1]],
        "examples": {"not_lesion": int(counts[0]), "cmb": int(counts[1]), "iron": int(counts[2])},
        "steps": steps,
        "lr": config.lr,
        "batch_size": VERIFIER_BATCH,
        "seed": config.seed,
        "kept": bool(kept),
        "command": config.command,
    }


def iter_train_verifier(
    config: TrainingConfig, should_stop: Callable[[], bool] = lambda: False, examples_cache: Path | None = None
) -> Generator[TrainingReport, None, ModelCard | None]:
    """Train the second stage of ``config.base`` on ``config``'s annotated subjects and write the model (the
    base's U-Net with the new verifier) to ``config.out``; yields a ``TrainingReport`` per step and one after
    validation, and returns the card written. A base with a verifier is fine-tuned from it, one without gets
    :data:`NEW_VERIFIER`.

    The verifier is kept only when it beats the base on the validation subjects (mean lesion-wise F1, its
    ``min_probability`` tuned there); otherwise ``out`` gets the base's behaviour unchanged, and says so in
    its card. Without validation subjects it is kept with the threshold tuned on the training subjects.
    Stopped (``should_stop()``) before the end, it writes nothing (and returns None). ``examples_cache``: a
    folder keeping each subject's examples for the next run (:func:`cached_examples`)."""
    started = time.perf_counter()
    if config.base is None:
        raise InputError(config.out, "a verifier is trained for a model: give the model (--model)")
    into_base = config.out.resolve() == config.base.resolve()  # the second half of a fine-tune into its own output
    device = open_destination(config, config.overwrite or into_base)
    base = load_model(config.base, device)
    card = copy.deepcopy(base.card)
    train_subjects, val_subjects = training_split(config, card)
    examples = _training_examples(train_subjects, base, examples_cache, should_stop)
    if examples is None:
        return None
    verifier = _starting_verifier(card, base, device)
    step = 0
    for step, loss in iter_fit(
        verifier, examples, steps=config.steps, lr=config.lr, seed=config.seed, bf16=config.bf16
    ):
        yield TrainingReport(step, config.steps, loss, config.lr, elapsed_s=time.perf_counter() - started)
        if should_stop():  # stopped: the model at ``out`` (if any) stays as it was
            return None
    cases = validation_cases(base, val_subjects or train_subjects[:THRESHOLD_SUBJECTS])
    before, threshold, after = _compare(verifier, base, cases, config.bf16)
    improved = not val_subjects or validation_score(after) > validation_score(before)
    if improved:
        card.verifier["min_probability"] = threshold
    else:
        card.verifier, verifier = copy.deepcopy(base.card.verifier), base.verifier
    record = _verifier_record(config, (train_subjects, val_subjects), examples, step, improved)
    card.training = {**card.training, "verifier": record}
    card.metrics = {**card.metrics, "verifier": {"validation_before": before, "validation_after": after}}
    if not into_base:
        card.name = config.name or config.out.name
        card.parent = {"name": base.card.name, "sha256": model_sha256(base.path)}
    save_model(config.out, base.module, card, overwrite=True, verifier=verifier)
    kept = after if improved else before
    yield TrainingReport(
        step,
        config.steps,
        None,
        config.lr,
        metrics=kept,
        score=validation_score(after),
        best_score=validation_score(kept),
        best_step=step if improved else 0,
        saved=True,
        elapsed_s=time.perf_counter() - started,
    )
    return card
