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
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..conventions import MODALITIES
from ..detection.pipeline import predict_subject
from ..io import InputError
from ..lesions.evaluate import score_lesions
from ..lesions.postprocess import apply_postprocess
from ..model.card import ModelCard, now_iso
from ..model.files import LoadedModel, load_model, model_sha256, save_model
from ..model.unet import DeepmirUNet
from ..progress import run_to_end
from .augment import Augmentation, augment_patch
from .checkpoint import STATE, TENSORS, has_checkpoint, load_checkpoint, save_checkpoint
from .common import (
    THRESHOLD_SUBJECTS,
    THRESHOLDS,
    TrainingConfig,
    TrainingReport,
    TrainingResult,
    open_destination,
    pooled_metrics,
    training_split,
    validation_score,
)
from .data import AnnotatedSubject
from .losses import LesionLoss
from .sampling import PatchSampler
from .transfer import drop_modalities
from .verifier import FINE_TUNE_LR, iter_train_verifier


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


def _new_card(config: TrainingConfig) -> ModelCard:
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
    """Raised when a stop is asked for before the first step, or inside a validation (which is abandoned)."""


def _validate(
    module, card, subjects: list[AnnotatedSubject], device, tune_threshold: bool, should_stop=lambda: False
) -> tuple[dict, float | None]:
    """Pooled lesion-wise metrics on full volumes via the inference path; with ``tune_threshold`` the
    ``min_probability`` giving the best mean F1 is chosen (and returned), else the card's is used.
    Raises :class:`_Stopped` between two batches of slices once ``should_stop()`` is true."""

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


@dataclass(kw_only=True)
class _Progress:
    """What a run has done so far; a checkpoint stores it (as JSON, under these names)."""

    step: int = 0
    best_score: float = -math.inf
    best_step: int = 0
    base_metrics: dict | None = None
    best_metrics: dict | None = None
    since_best: int = 0
    losses: list = field(default_factory=list)
    saved: bool = False
    stopped_early: bool = False
    threshold: float


@dataclass
class _Run:
    """A U-Net training run once started: its settings, network, optimizer, subjects and progress."""

    config: TrainingConfig
    started: float
    checkpoint_dir: Path
    resuming: bool
    may_replace: bool
    device: object
    module: torch.nn.Module
    card: ModelCard
    parent: dict | None
    verifier: object | None
    train_subjects: list[AnnotatedSubject]
    val_subjects: list[AnnotatedSubject]
    sampler: PatchSampler
    optimizer: torch.optim.Optimizer
    warmup: int
    loss_fn: LesionLoss
    progress: _Progress = field(init=False)

    def __post_init__(self) -> None:
        self.progress = _Progress(threshold=self.card.postprocess["min_probability"])

    def report(self, step: int, loss: float | None, metrics: dict | None = None) -> TrainingReport:
        score = None if metrics is None else validation_score(metrics)
        best = self.progress
        return TrainingReport(
            step,
            self.config.steps,
            loss,
            self.optimizer.param_groups[0]["lr"],
            metrics,
            score,
            best.best_score,
            best.best_step,
            elapsed_s=self.elapsed_s(),
        )

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started


def _checkpoint_folder(config: TrainingConfig) -> tuple[Path, bool]:
    """(the run's checkpoint folder, whether the run resumes from it); an interrupted run's checkpoint is
    never deleted silently: without ``resume`` it is an InputError."""
    checkpoint_dir = config.out.parent / f".{config.out.name}.checkpoint"
    if not config.resume and has_checkpoint(checkpoint_dir):
        raise InputError(
            checkpoint_dir,
            f"holds the checkpoint of an interrupted run into {config.out.name}; pass --resume to continue it, or "
            "delete this folder to start afresh",
        )
    return checkpoint_dir, config.resume and has_checkpoint(checkpoint_dir)


def _training_record(config: TrainingConfig, card: ModelCard, train_subjects: list, val_subjects: list) -> dict:
    """The card's ``training`` section for this run (a second stage's record is kept with the verifier)."""
    return {
        **{k: v for k, v in card.training.items() if k == "verifier"},
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


def _start(config: TrainingConfig) -> _Run:
    """Phase 1: check the destination, then build the network, the subjects, the sampler and the optimizer."""
    started = time.perf_counter()
    if config.base is not None and config.out.resolve() == config.base.resolve():
        raise InputError(
            config.out, "the output folder is the base model; write the fine-tuned model to another folder"
        )
    checkpoint_dir, resuming = _checkpoint_folder(config)
    may_replace = config.overwrite or resuming  # a resumed run's model at ``out`` is its own
    device = open_destination(config, may_replace)
    torch.manual_seed(config.seed)
    module, card, parent, verifier = _initial_model(config, device)
    train_subjects, val_subjects = training_split(config, card)
    swi_channel = list(card.modalities).index("swi")
    sampler = PatchSampler(train_subjects, config.patch_size, card.architecture["context_slices"], swi_channel)
    optimizer = torch.optim.AdamW(module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    warmup = max(1, int(config.warmup_share * config.steps))
    for group in optimizer.param_groups:
        group["lr"] = config.lr * _schedule(0, config.steps, warmup)
    loss_fn = LesionLoss().to(device)
    card.training = _training_record(config, card, train_subjects, val_subjects)
    if parent is not None:
        card.parent = parent
    return _Run(
        config,
        started,
        checkpoint_dir,
        resuming,
        may_replace,
        device,
        module,
        card,
        parent,
        verifier,
        train_subjects,
        val_subjects,
        sampler,
        optimizer,
        warmup,
        loss_fn,
    )


def _begin(run: _Run, should_stop: Callable[[], bool]) -> Iterator[TrainingReport]:
    """Phase 2: restore the checkpoint, or validate the starting model (a base is the model to beat) and
    report it as step 0. Raises :class:`_Stopped` when a stop is asked for meanwhile."""
    progress = run.progress
    if run.resuming:
        record = load_checkpoint(run.checkpoint_dir, run.module, run.optimizer, dataclasses.asdict(progress))
        run.progress = dataclasses.replace(progress, **{f.name: record[f.name] for f in dataclasses.fields(progress)})
        return
    if not run.val_subjects:
        return
    metrics, _ = _validate(run.module, run.card, run.val_subjects, run.device, False, should_stop)
    progress.base_metrics = metrics
    if run.parent is not None:  # the base is the model to beat; a fine-tune that never improves keeps it
        progress.best_score, progress.best_metrics = validation_score(metrics), metrics
    yield run.report(0, None, metrics)
    if should_stop():
        raise _Stopped


def _batches(run: _Run) -> torch.utils.data.DataLoader:
    """The batches of the steps left, prepared by the run's data workers (if any)."""
    workers = _data_workers(run.config, run.device)
    config = run.config
    augmentation = Augmentation.for_training(config.augment, config.modality_dropout, run.card.modalities)
    return torch.utils.data.DataLoader(
        _BatchStream(run.sampler, config, run.progress.step, augmentation),
        batch_size=None,
        num_workers=workers,
        pin_memory=run.device.type == "cuda",
        prefetch_factor=4 if workers else None,
    )


def _optimise(run: _Run, step: int, images: torch.Tensor, targets: torch.Tensor) -> TrainingReport:
    """Phase 3, one step: forward, backward, the optimizer's step and the next learning rate."""
    config, device = run.config, run.device
    images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=config.bf16):
        logits = run.module(images)
    loss = run.loss_fn(logits, targets)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    time_share = 0.0 if config.max_minutes is None else run.elapsed_s() / (60 * config.max_minutes)
    for group in run.optimizer.param_groups:
        group["lr"] = config.lr * _schedule(step + 1, config.steps, run.warmup, time_share)
    run.progress.step = step + 1
    run.progress.losses.append(loss.item())
    return run.report(step + 1, run.progress.losses[-1])


def _validate_step(run: _Run, report: TrainingReport, should_stop: Callable[[], bool]) -> None:
    """Phase 4: validate after a step (into ``report``); an improvement is saved at once.
    Raises :class:`_Stopped` when a stop is asked for meanwhile."""
    config, progress = run.config, run.progress
    metrics, threshold = _validate(
        run.module, run.card, run.val_subjects, run.device, config.tune_threshold, should_stop
    )
    report.metrics, report.score = metrics, validation_score(metrics)
    if report.score > progress.best_score:
        progress.best_score, progress.best_step, progress.best_metrics = report.score, report.step, metrics
        progress.since_best, progress.threshold = 0, threshold
        _save(run, run.module)
        report.saved = True
    else:
        progress.since_best += 1
    report.best_score, report.best_step = progress.best_score, progress.best_step


def _train_steps(run: _Run, should_stop: Callable[[], bool]) -> Generator[TrainingReport, None, bool]:
    """Phases 3 and 4 until the last step, the time budget, the patience or a stop; yields a report per
    step and returns whether a stop cut the run short."""
    config, progress = run.config, run.progress
    run.module.train()
    for step, (images, targets) in enumerate(_batches(run), start=progress.step):
        report = _optimise(run, step, images, targets)
        out_of_time = config.max_minutes is not None and run.elapsed_s() > 60 * config.max_minutes
        is_last = step + 1 == config.steps or out_of_time
        if run.val_subjects and ((step + 1) % config.eval_every == 0 or is_last):
            try:
                _validate_step(run, report, should_stop)
            except _Stopped:
                return True
        if (step + 1) % config.checkpoint_every == 0 and not is_last:
            save_checkpoint(run.checkpoint_dir, run.module, run.optimizer, dataclasses.asdict(progress))
        yield report
        if should_stop():
            return True
        if out_of_time or (config.patience and progress.since_best >= config.patience):
            progress.stopped_early = True
            break
    return False


def _finish(run: _Run, stopped: bool) -> None:
    """Phase 5: a run that saved nothing yet keeps the base's weights (a fine-tune with validation) or its
    last ones; the checkpoint goes unless a stop cut the run short."""
    progress = run.progress
    if not progress.saved and progress.step > 0:
        module = run.module
        if run.parent is not None and run.val_subjects:
            module = _initial_model(run.config, run.device)[0]
        else:
            progress.best_step = progress.step
            if run.config.tune_threshold and not run.val_subjects:  # a stale threshold would hide what was learnt
                subjects = run.train_subjects[:THRESHOLD_SUBJECTS]
                _, progress.threshold = _validate(module, run.card, subjects, run.device, True)
        _save(run, module)
    if not stopped:
        for name in (TENSORS, STATE):
            (run.checkpoint_dir / name).unlink(missing_ok=True)
        if run.checkpoint_dir.exists() and not any(run.checkpoint_dir.iterdir()):
            run.checkpoint_dir.rmdir()


def _save(run: _Run, module) -> None:
    """Write ``module`` with the card updated from the progress (threshold, metrics before/after, steps);
    a model at ``out`` is replaced if the run may replace it or saved it itself."""
    card, progress = run.card, run.progress
    card.postprocess["min_probability"] = progress.threshold
    card.metrics = {
        **{k: v for k, v in card.metrics.items() if k == "verifier"},
        "validation_before": progress.base_metrics,
        "validation_after": progress.best_metrics,
        "best_step": progress.best_step,
        "n_validation_subjects": len(run.val_subjects),
    }
    card.training["steps_run"] = progress.step
    save_model(run.config.out, module, card, overwrite=run.may_replace or progress.saved, verifier=run.verifier)
    progress.saved = True


def iter_train(
    config: TrainingConfig, should_stop: Callable[[], bool] = lambda: False
) -> Generator[TrainingReport, None, ModelCard | None]:
    """Train, yielding a report after every step and after every validation; close the generator, or
    make ``should_stop()`` true, to stop: the best model so far is kept. A validation under way when
    ``should_stop()`` turns true is abandoned within a batch of slices. Returns the card of the model
    written (None when nothing was).

    Validation (every ``eval_every`` steps, and before the first step) predicts the validation subjects'
    full volumes and scores them lesion-wise; an improvement of the mean F1 saves the model at once.
    """
    run = _start(config)
    try:
        yield from _begin(run, should_stop)
    except _Stopped:
        return None
    try:
        stopped = yield from _train_steps(run, should_stop)
    except GeneratorExit:
        stopped = True
    _finish(run, stopped)
    return run.card if run.progress.saved else None


def run_training(
    config: TrainingConfig, should_stop: Callable[[], bool] = lambda: False
) -> Generator[TrainingReport, None, TrainingResult]:
    """:func:`iter_train`, ended cleanly (best model kept, base untouched) as soon as ``should_stop()``
    is true after a step, then the second stage when ``config`` asks for one; yields every report and
    returns the :class:`TrainingResult`."""
    unet, last = iter_train(config, should_stop), None
    while True:
        try:
            report = next(unet)
        except StopIteration as end:
            card = end.value
            break
        last = report
        yield report
    if card is None or last is None or (last.step == 0 and should_stop()):
        return TrainingResult(None, None, None, None, 0, 0, stopped_early=True)
    if config.second_stage_steps and not should_stop():  # then the second stage, on the fine-tuned U-Net's lesions
        second = dataclasses.replace(config, base=config.out, steps=config.second_stage_steps, lr=FINE_TUNE_LR)
        card = (yield from iter_train_verifier(second, should_stop)) or card
    metrics = card.metrics or {}
    return TrainingResult(
        model_path=Path(config.out),
        card=card,
        base_metrics=metrics.get("validation_before"),
        best_metrics=metrics.get("validation_after"),
        steps_run=last.step,
        best_step=metrics.get("best_step", 0),
        stopped_early=last.step < config.steps,
    )


def train(config: TrainingConfig, progress: Callable[[TrainingReport], None] | None = None) -> TrainingResult:
    """Run :func:`iter_train` to the end (``progress`` is called with every report)."""
    return run_to_end(run_training(config), progress)
