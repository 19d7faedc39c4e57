"""The trainer behind ``deepmir train``/``finetune`` and the Fine-tune widget.

:func:`iter_train` is a generator of :class:`TrainingReport` (one per step, plus one per validation):
a GUI runs it in a worker and stops it by closing the generator. :func:`train` runs it to the end.
The model is written only through ``model.files.save_model`` (atomic), each time validation improves
(best-model keeping), so a crash or a stop leaves the best model so far and never touches the base.
The output folder is checked before anything else: it must be new or empty, or a model that the run
may replace (``overwrite``, or the run's own model when resuming from its checkpoint).
"""

import copy
import dataclasses
import math
import os
import time
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..conventions import CLASS_NAMES, MODALITIES
from ..io import InputError
from ..lesions.evaluate import lesion_metrics, score_lesions
from .augment import Augmentation, augment_patch
from .checkpoint import STATE, TENSORS, has_checkpoint, load_checkpoint, save_checkpoint
from .data import AnnotatedSubject, annotated_folders, load_annotated_subject, prepare_annotated
from .losses import LesionLoss
from .sampling import PatchSampler
from .transfer import drop_modalities

#: Thresholds tried on the validation subjects for ``postprocess.min_probability``.
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: Without validation subjects, the threshold is tuned on at most this many training subjects.
THRESHOLD_SUBJECTS = 4
#: Second-stage steps after fine-tuning a model that has a verifier.
DEFAULT_VERIFIER_STEPS = 300


@dataclass
class TrainingConfig:
    """Everything a training run needs. ``data`` folders and/or in-memory ``samples`` (subject, labels).

    ``base``: a model to fine-tune (its architecture and working grid are kept); ``modalities``, if given
    with a base, a subset of the base's: the other modalities' input channels are dropped from its
    first layer (:mod:`.transfer`). Without a base a new network is built from ``base_filters``,
    ``depth``, ``context_slices``, ``modalities`` (default all), ``spacing_mm``.
    ``overwrite``: replace a model already at ``out`` (a folder holding anything else is never replaced).
    ``patience``: validations without improvement before stopping early (0: never); ``max_minutes``:
    a wall-time budget, after which the run validates once more and ends (the learning rate anneals
    by steps or by time, whichever is further along). ``data_workers``: processes
    preparing batches (None: none on the CPU, several beside a GPU). ``registration``: how T2 and QSM
    are checked against the SWI when subjects are read (``auto``, ``check``, ``off``; see
    :mod:`napari_deepmir.io.registration`).
    """

    out: Path
    data: list[Path] = field(default_factory=list)
    samples: list[tuple] = field(default_factory=list)
    base: Path | None = None
    name: str | None = None
    base_filters: int = 16
    depth: int = 5
    context_slices: int = 1
    modalities: tuple[str, ...] | None = None
    spacing_mm: tuple[float, float, float] | None = None
    steps: int = 300
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_share: float = 0.05
    batch_size: int = 8
    patch_size: int = 64
    val_share: float = 0.25
    seed: int = 0
    device: str = "auto"
    eval_every: int = 50
    patience: int = 0
    max_minutes: float | None = None
    bf16: bool = False
    augment: bool = True
    #: Probability that a training sample has one input modality flattened (:mod:`.augment`); 0: never.
    modality_dropout: float = 0.0
    tune_threshold: bool = True
    checkpoint_every: int = 50
    resume: bool = False
    overwrite: bool = False
    data_workers: int | None = None
    registration: str = "auto"
    command: str | None = None
    #: Steps of second-stage training after a fine-tune (:mod:`.verifier`); None: 300 when the base has one.
    verifier_steps: int | None = None

    @property
    def second_stage_steps(self) -> int:
        """Verifier steps to run after the U-Net (0: none)."""
        if self.verifier_steps is not None:
            return self.verifier_steps
        if self.base is None:
            return 0
        from ..model.files import read_card

        return DEFAULT_VERIFIER_STEPS if read_card(self.base).verifier is not None else 0


@dataclass
class TrainingReport:
    """Progress after one step. ``metrics`` (per class: sensitivity, precision, f1, ...) only on validation steps."""

    step: int
    total_steps: int
    loss: float | None
    lr: float
    metrics: dict | None = None
    score: float | None = None
    best_score: float | None = None
    best_step: int | None = None
    saved: bool = False
    elapsed_s: float = 0.0


@dataclass
class TrainingResult:
    """What a run wrote; ``model_path`` and ``card`` are None when it was stopped before its first step."""

    model_path: Path | None
    card: object
    base_metrics: dict | None
    best_metrics: dict | None
    steps_run: int
    best_step: int
    stopped_early: bool


def validation_score(metrics: dict | None) -> float:
    """Mean lesion-wise F1 over the classes that have truth or predicted lesions (0 when none has)."""
    if not metrics:
        return -math.inf
    values = [metrics[name]["f1"] for name in CLASS_NAMES.values() if not math.isnan(metrics[name]["f1"])]
    return float(np.mean(values)) if values else 0.0


def pooled_metrics(per_subject: list[dict]) -> dict:
    """Lesion-wise metrics per class from counts pooled over subjects, plus mean false positives per subject."""
    pooled = {}
    for name in CLASS_NAMES.values():
        counts = [
            sum(s[name][key] for s in per_subject) for key in ("n_truth", "n_truth_found", "n_pred", "n_pred_true")
        ]
        pooled[name] = lesion_metrics(*counts)
        pooled[name]["fp_per_subject"] = pooled[name]["false_positives"] / max(len(per_subject), 1)
    return pooled


def load_training_subjects(config: TrainingConfig, card) -> list[AnnotatedSubject]:
    """Every annotated subject of ``config`` (folders, then in-memory samples), prepared for ``card``."""
    subjects = (
        [load_annotated_subject(folder, card, config.registration) for folder in annotated_folders(config.data)]
        if config.data
        else []
    )
    subjects += [prepare_annotated(subject, labels, card) for subject, labels in config.samples]
    if not subjects:
        raise ValueError("no annotated subjects: give data folders or samples")
    if not any(subject.truth.any() for subject in subjects):
        warnings.warn(
            f"no lesion in the annotations of any of the {len(subjects)} subject(s) ({subjects[0].name}...): the "
            "model learns only background and will find nothing; check the *_dseg label maps",
            stacklevel=2,
        )
    return subjects


def split_subjects(subjects: list, val_share: float, seed: int) -> tuple[list, list]:
    """(train, validation) by a seeded shuffle; at least one of each when there are 2+ subjects and a share."""
    order = np.random.default_rng(seed).permutation(len(subjects))
    n_val = (
        0 if val_share <= 0 or len(subjects) < 2 else min(len(subjects) - 1, max(1, round(val_share * len(subjects))))
    )
    return [subjects[i] for i in order[n_val:]], [subjects[i] for i in order[:n_val]]


def _schedule(step: int, total: int, warmup: int, time_share: float = 0.0) -> float:
    """Linear warm-up then cosine decay to 5% of the peak learning rate, by the share of the steps
    done or of the time budget spent (``time_share``), whichever is further along."""
    if step < warmup:
        return (step + 1) / warmup
    progress = max((step - warmup) / max(1, total - warmup), time_share)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _batch(
    sampler: PatchSampler, config: TrainingConfig, step: int, augmentation: Augmentation
) -> tuple[torch.Tensor, torch.Tensor]:
    """The patches of one step, drawn with a generator seeded by (seed, step): the same batches in any
    worker, after a resume, and with or without data workers."""
    rng = np.random.default_rng([config.seed, step])
    pairs = [
        augment_patch(*sampler.sample(rng), config.patch_size, rng, augmentation) for _ in range(config.batch_size)
    ]
    return torch.from_numpy(np.stack([p[0] for p in pairs])), torch.from_numpy(np.stack([p[1] for p in pairs]))


class _BatchStream(torch.utils.data.IterableDataset):
    """Batches of steps ``first..steps-1`` in order; with DataLoader workers, worker i makes every n-th one."""

    def __init__(self, sampler: PatchSampler, config: TrainingConfig, first: int, augmentation: Augmentation):
        self.sampler, self.config, self.first, self.augmentation = sampler, config, first, augmentation

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, n_workers = (0, 1) if info is None else (info.id, info.num_workers)
        for step in range(self.first + worker, self.config.steps, n_workers):
            yield _batch(self.sampler, self.config, step, self.augmentation)


def _data_workers(config: TrainingConfig, device) -> int:
    """Processes preparing batches: none on the CPU (they would take the network's cores), else cores - 2."""
    if config.data_workers is not None:
        return config.data_workers
    return 0 if device.type == "cpu" else max(0, min(8, (os.cpu_count() or 1) - 2))


def _new_card(config: TrainingConfig):
    from ..model.card import ModelCard

    extra = {} if config.spacing_mm is None else {"spacing_mm": list(config.spacing_mm)}
    try:
        return ModelCard(
            name=config.name or Path(config.out).name,
            architecture={
                "base_filters": config.base_filters,
                "depth": config.depth,
                "context_slices": config.context_slices,
            },
            modalities=list(config.modalities or MODALITIES),
            **extra,
        )
    except (ValueError, TypeError) as error:
        raise InputError(config.out, f"cannot make this model: {error}") from None


def _initial_model(config: TrainingConfig, device):
    """(module, card, parent, verifier) — the base model's copy to fine-tune (with its second stage, which
    the U-Net training leaves as it is), or a new network with a new card."""
    from ..model.card import now_iso
    from ..model.files import load_model, model_sha256
    from ..model.unet import DeepmirUNet

    if config.base is not None:
        base = load_model(config.base, device)
        name = config.name or Path(config.out).name
        parent = {"name": base.card.name, "sha256": model_sha256(base.path)}
        if config.modalities and set(config.modalities) != set(base.card.modalities):
            module, card = drop_modalities(base.module, base.card, config.modalities, name)
            card.verifier, verifier = None, None  # the base's second stage reads the modalities dropped here
            parent["dropped_modalities"] = [m for m in base.card.modalities if m not in card.modalities]
        else:
            module, card, verifier = base.module, copy.deepcopy(base.card), base.verifier
            card.name = name
        card.created = now_iso()
        return module, card, parent, verifier
    card = _new_card(config)
    arch = card.architecture
    module = DeepmirUNet(card.in_channels, n_classes=3, base_filters=arch["base_filters"], depth=arch["depth"]).to(
        device
    )
    return module, card, None, None


class _Stopped(Exception):
    """Raised inside a validation when a stop is asked for: the validation is abandoned."""


def _validate(
    module, card, subjects: list[AnnotatedSubject], device, tune_threshold: bool, should_stop=lambda: False
) -> tuple[dict, float | None]:
    """Pooled lesion-wise metrics on full volumes via the inference path; with ``tune_threshold`` the
    ``min_probability`` giving the best mean F1 is chosen (and returned), else the card's is used.
    Raises :class:`_Stopped` between two batches of slices once ``should_stop()`` is true."""
    from ..detection.pipeline import predict_subject
    from ..lesions.postprocess import apply_postprocess
    from ..model.files import LoadedModel

    def check(*_) -> None:
        if should_stop():
            raise _Stopped

    module.eval()
    loaded = LoadedModel(module, card, None)
    try:
        predictions = [
            predict_subject(s.subject, loaded, device=device, return_probabilities=True, progress=check)
            for s in subjects
        ]
    finally:
        module.train()
    thresholds = THRESHOLDS if tune_threshold else (card.postprocess["min_probability"],)
    best = None
    for threshold in thresholds:
        per_subject = [
            score_lesions(s.truth, apply_postprocess(p.probabilities, s.subject, card, min_probability=threshold))
            for s, p in zip(subjects, predictions, strict=True)
        ]
        metrics = pooled_metrics(per_subject)
        if best is None or validation_score(metrics) > validation_score(best[0]):
            best = (metrics, threshold)
    return best


def iter_train(config: TrainingConfig, should_stop: Callable[[], bool] = lambda: False) -> Iterator[TrainingReport]:
    """Train, yielding a report after every step and after every validation; close the generator to stop.
    A validation under way when ``should_stop()`` turns true is abandoned within a batch of slices, and
    the run ends as a stopped one (the best model so far is kept).

    Validation (every ``eval_every`` steps, and before the first step) predicts the validation subjects'
    full volumes and scores them lesion-wise; an improvement of the mean F1 saves the model at once.
    """
    from ..detection.inference import select_device
    from ..model.files import check_model_destination

    started = time.perf_counter()
    config = dataclasses.replace(config, out=Path(config.out), base=None if config.base is None else Path(config.base))
    if config.base is not None and config.out.resolve() == config.base.resolve():
        raise InputError(
            config.out, "the output folder is the base model; write the fine-tuned model to another folder"
        )
    checkpoint_dir = config.out.parent / f".{config.out.name}.checkpoint"
    resuming = config.resume and has_checkpoint(checkpoint_dir)
    if not config.resume and has_checkpoint(checkpoint_dir):  # an interrupted run's work is never deleted silently
        raise InputError(
            checkpoint_dir,
            f"holds the checkpoint of an interrupted run into {config.out.name}; pass --resume to continue it, or "
            "delete this folder to start afresh",
        )
    may_replace = config.overwrite or resuming  # a resumed run's model at ``out`` is its own
    check_model_destination(config.out, may_replace)
    torch.manual_seed(config.seed)
    device = select_device(config.device)
    module, card, parent, verifier = _initial_model(config, device)
    subjects = load_training_subjects(config, card)
    train_subjects, val_subjects = split_subjects(subjects, config.val_share, config.seed)
    swi_channel = list(card.modalities).index("swi")
    sampler = PatchSampler(train_subjects, config.patch_size, card.architecture["context_slices"], swi_channel)
    optimizer = torch.optim.AdamW(module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    warmup = max(1, int(config.warmup_share * config.steps))
    for group in optimizer.param_groups:
        group["lr"] = config.lr * _schedule(0, config.steps, warmup)
    loss_fn = LesionLoss().to(device)

    second_stage = {k: v for k, v in card.training.items() if k == "verifier"}  # kept with the verifier
    card.training = {
        **second_stage,
        "data": [str(p) for p in config.data] + [f"in-memory:{s.name}" for s, _ in config.samples],
        "train_subjects": [s.name for s in train_subjects],
        "validation_subjects": [s.name for s in val_subjects],
        "steps": config.steps,
        "lr": config.lr,
        "batch_size": config.batch_size,
        "patch_size": config.patch_size,
        "seed": config.seed,
        "augment": config.augment,
        **({"modality_dropout": config.modality_dropout} if config.modality_dropout else {}),
        "loss": "soft Dice (lesion classes, batch) + weighted cross-entropy",
        "command": config.command,
    }
    if parent is not None:
        card.parent = parent

    state = {
        "step": 0,
        "best_score": -math.inf,
        "best_step": 0,
        "base_metrics": None,
        "best_metrics": None,
        "since_best": 0,
        "losses": [],
        "saved": False,
        "stopped_early": False,
        "threshold": card.postprocess["min_probability"],
    }
    if resuming:
        state.update(load_checkpoint(checkpoint_dir, module, optimizer, state))
    elif val_subjects:
        try:
            metrics, threshold = _validate(module, card, val_subjects, device, False, should_stop)
        except _Stopped:
            return
        state["base_metrics"] = metrics
        if parent is not None:  # the base is the model to beat; a fine-tune that never improves keeps it
            state["best_score"], state["best_metrics"] = validation_score(metrics), metrics
        yield TrainingReport(
            0,
            config.steps,
            None,
            optimizer.param_groups[0]["lr"],
            metrics,
            validation_score(metrics),
            state["best_score"],
            0,
            elapsed_s=time.perf_counter() - started,
        )

    stopped = False
    workers = _data_workers(config, device)
    augmentation = Augmentation.for_training(config.augment, config.modality_dropout, card.modalities)
    batches = torch.utils.data.DataLoader(
        _BatchStream(sampler, config, state["step"], augmentation),
        batch_size=None,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if workers else None,
    )
    try:
        module.train()
        for step, (images, targets) in enumerate(batches, start=state["step"]):
            images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=config.bf16):
                logits = module(images)
            loss = loss_fn(logits, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            time_share = (
                0.0 if config.max_minutes is None else (time.perf_counter() - started) / (60 * config.max_minutes)
            )
            for group in optimizer.param_groups:
                group["lr"] = config.lr * _schedule(step + 1, config.steps, warmup, time_share)
            state["step"] = step + 1
            state["losses"].append(loss.item())
            report = TrainingReport(
                step + 1,
                config.steps,
                state["losses"][-1],
                optimizer.param_groups[0]["lr"],
                best_score=state["best_score"],
                best_step=state["best_step"],
                elapsed_s=time.perf_counter() - started,
            )
            out_of_time = config.max_minutes is not None and time.perf_counter() - started > 60 * config.max_minutes
            is_last = step + 1 == config.steps or out_of_time
            if val_subjects and ((step + 1) % config.eval_every == 0 or is_last):
                try:
                    metrics, threshold = _validate(
                        module, card, val_subjects, device, config.tune_threshold, should_stop
                    )
                except _Stopped:
                    stopped = True
                    break
                report.metrics, report.score = metrics, validation_score(metrics)
                if report.score > state["best_score"]:
                    state.update(
                        best_score=report.score,
                        best_step=step + 1,
                        best_metrics=metrics,
                        since_best=0,
                        threshold=threshold,
                    )
                    _record_and_save(module, card, config.out, state, len(val_subjects), may_replace, verifier)
                    report.saved = True
                else:
                    state["since_best"] += 1
                report.best_score, report.best_step = state["best_score"], state["best_step"]
            if (step + 1) % config.checkpoint_every == 0 and not is_last:
                save_checkpoint(checkpoint_dir, module, optimizer, state)
            yield report
            if out_of_time or (config.patience and state["since_best"] >= config.patience):
                state["stopped_early"] = True
                break
    except GeneratorExit:
        stopped = True
    if not state["saved"] and state["step"] > 0:
        # no validation improved on the start: keep the base's weights (fine-tune) or the last ones (no validation)
        if parent is not None and val_subjects:
            module = _initial_model(config, device)[0]
        else:
            state["best_step"] = state["step"]
            if config.tune_threshold and not val_subjects:  # a stale threshold would hide what was learnt
                _, state["threshold"] = _validate(module, card, train_subjects[:THRESHOLD_SUBJECTS], device, True)
        _record_and_save(module, card, config.out, state, len(val_subjects), may_replace, verifier)
    if not stopped:
        for name in (TENSORS, STATE):
            (checkpoint_dir / name).unlink(missing_ok=True)
        if checkpoint_dir.exists() and not any(checkpoint_dir.iterdir()):
            checkpoint_dir.rmdir()


def _record_and_save(module, card, out: Path, state: dict, n_validation: int, may_replace: bool, verifier=None) -> None:
    """Write ``module`` with the card updated from ``state`` (threshold, metrics before/after, steps);
    a model at ``out`` is replaced if ``may_replace`` or if this run saved it."""
    from ..model.files import save_model

    card.postprocess["min_probability"] = state["threshold"]
    card.metrics = {
        **{k: v for k, v in card.metrics.items() if k == "verifier"},
        "validation_before": state["base_metrics"],
        "validation_after": state["best_metrics"],
        "best_step": state["best_step"],
        "n_validation_subjects": n_validation,
    }
    card.training["steps_run"] = state["step"]
    save_model(out, module, card, overwrite=may_replace or state["saved"], verifier=verifier)
    state["saved"] = True


def run_training(
    config: TrainingConfig, should_stop: Callable[[], bool] = lambda: False
) -> Generator[TrainingReport, None, TrainingResult]:
    """:func:`iter_train`, ended cleanly (best model kept, base untouched) as soon as ``should_stop()``
    is true after a step; yields every report and returns the :class:`TrainingResult`."""
    from ..model.files import load_model

    run, last = iter_train(config, should_stop), None
    for report in run:
        last = report
        yield report
        if should_stop():
            run.close()
            break
    if last is None or (last.step == 0 and should_stop()):
        return TrainingResult(None, None, None, None, 0, 0, stopped_early=True)
    if config.second_stage_steps and not should_stop():  # then the second stage, on the fine-tuned U-Net's lesions
        from .verifier import FINE_TUNE_LR, iter_train_verifier

        second = dataclasses.replace(config, base=config.out, steps=config.second_stage_steps, lr=FINE_TUNE_LR)
        yield from iter_train_verifier(second, should_stop)
    loaded = load_model(config.out, "cpu")
    metrics = loaded.card.metrics or {}
    return TrainingResult(
        model_path=Path(config.out),
        card=loaded.card,
        base_metrics=metrics.get("validation_before"),
        best_metrics=metrics.get("validation_after"),
        steps_run=last.step if last else 0,
        best_step=metrics.get("best_step", 0),
        stopped_early=last is not None and last.step < config.steps,
    )


def train(config: TrainingConfig, progress: Callable[[TrainingReport], None] | None = None) -> TrainingResult:
    """Run :func:`iter_train` to the end (``progress`` is called with every report)."""
    from ..progress import run_to_end

    return run_to_end(run_training(config), progress)
