"""Commands that make models: ``deepmir train``, ``finetune`` and ``train-verifier``.

The trainers import torch, so they are imported inside the handlers: ``deepmir --help`` stays without it.
"""

import argparse
import sys
from pathlib import Path

from ..conventions import CLASS_NAMES
from ..model.files import read_card
from ..model.registry import resolve_model
from ..progress import progress_bar, run_to_end
from ..training.common import TrainingConfig
from .options import add_registration_arg

#: Options of the training group passed to the trainer as they are (train-verifier has some of them).
_TRAINING_OPTIONS = (
    "name",
    "steps",
    "lr",
    "batch_size",
    "patch_size",
    "val_share",
    "eval_every",
    "patience",
    "max_minutes",
    "seed",
    "device",
    "bf16",
    "augment",
    "modality_dropout",
    "resume",
    "checkpoint_every",
    "overwrite",
    "data_workers",
    "registration",
)


def add_train(commands) -> None:
    train = commands.add_parser("train", help="train a model from scratch on annotated subjects")
    _add_data_args(train)
    train.add_argument("--base-filters", type=int, default=16, help="filters of the first U-Net level (default 16)")
    train.add_argument("--depth", type=int, default=5, help="U-Net resolution levels (default 5)")
    train.add_argument(
        "--context-slices", type=int, default=1, help="neighbouring slices either side given as input (default 1)"
    )
    _add_modalities_arg(train, "input modalities (default: swi qsm t2)")
    train.add_argument(
        "--spacing",
        type=float,
        nargs=3,
        default=None,
        metavar=("X", "Y", "Z"),
        help="working grid in mm (default: the model card's)",
    )
    _add_training_args(train, steps=2000, lr=2e-3)
    train.set_defaults(handler=_train)


def add_finetune(commands) -> None:
    finetune = commands.add_parser("finetune", help="fine-tune a model on annotated subjects")
    _add_data_args(finetune)
    finetune.add_argument(
        "--base",
        type=Path,
        default=None,
        help="model to start from: a model folder or a shipped model's name (default, swi-qsm, swi; default: default)",
    )
    _add_modalities_arg(
        finetune,
        "input modalities of the new model, a subset of the base's (default: the base's); the others' input "
        "channels are dropped from the base's first layer",
    )
    _add_training_args(finetune, steps=300, lr=3e-4)
    finetune.add_argument(
        "--verifier-steps",
        type=int,
        default=None,
        help="then train the second stage (the 3D verifier) this many steps on the fine-tuned U-Net's lesions "
        "(default: 300 when the base has a verifier, else 0)",
    )
    finetune.set_defaults(handler=_finetune)


def add_train_verifier(commands) -> None:
    verifier = commands.add_parser(
        "train-verifier",
        help="add or retrain a model's second stage: a 3D CNN that keeps or drops each lesion",
        description="Train the second stage of --base (docs/model.md, 'Second stage'): candidates from its U-Net, the "
        "classical blob finder and the annotations, labelled by the annotations, then a small 3D CNN on patches around "
        "them. The new model (the base's U-Net with this verifier) is written to --out; the verifier is kept only when "
        "it beats the base on the validation subjects.",
    )
    _add_data_args(verifier)
    verifier.add_argument(
        "--base", type=Path, default=None, help="model whose U-Net finds the candidates (default: shipped)"
    )
    verifier.add_argument("--steps", type=int, default=1500, help="optimisation steps (default 1500)")
    verifier.add_argument("--lr", type=float, default=2e-3, help="peak learning rate, AdamW + cosine (default 0.002)")
    verifier.add_argument(
        "--val-share", type=float, default=0.25, help="share of subjects for validation (default 0.25)"
    )
    verifier.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    verifier.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
    verifier.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    verifier.add_argument("--overwrite", action="store_true", help="replace a model already at --out")
    add_registration_arg(verifier)
    verifier.add_argument(
        "--examples-cache",
        type=Path,
        default=None,
        help="folder keeping each subject's training examples, reused by the next run with the same model and the "
        "same subject content (images and annotation)",
    )
    verifier.set_defaults(handler=_train_verifier)


def _add_data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, nargs="+", required=True, help="folders of subjects (modalities + *_dseg.nii.gz)"
    )
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")


def _add_modalities_arg(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--modalities", nargs="+", choices=("swi", "qsm", "t2"), default=None, help=help_text)


def _add_training_args(parser: argparse.ArgumentParser, *, steps: int, lr: float) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--name", default=None, help="the new model's name (default: the --out folder's name)")
    group.add_argument("--steps", type=int, default=steps, help=f"optimisation steps (default {steps})")
    group.add_argument(
        "--lr", type=float, default=lr, help=f"peak learning rate, AdamW with warm-up + cosine (default {lr:g})"
    )
    group.add_argument("--batch-size", type=int, default=8, help="patches per step (default 8)")
    group.add_argument("--patch-size", type=int, default=64, help="patch width in voxels (default 64)")
    group.add_argument(
        "--val-share", type=float, default=0.25, help="share of subjects kept for validation (default 0.25)"
    )
    group.add_argument("--eval-every", type=int, default=50, help="validate every N steps (default 50)")
    group.add_argument(
        "--patience", type=int, default=0, help="stop after N validations without improvement (default 0: never)"
    )
    group.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="wall-time budget in minutes: the learning rate anneals by steps or time, whichever is further along; "
        "the best model is kept",
    )
    group.add_argument("--seed", type=int, default=0, help="random seed (same seed, same model)")
    group.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
    group.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the forward pass")
    group.add_argument(
        "--data-workers",
        type=int,
        default=None,
        help="processes preparing batches (default: 0 on CPU, cores-2 up to 8 beside a GPU)",
    )
    add_registration_arg(group)
    group.add_argument("--no-augment", dest="augment", action="store_false", help="train without augmentation")
    group.add_argument(
        "--modality-dropout",
        type=_probability,
        default=0.0,
        help="probability that a training sample has one input modality (T2 most often) flattened (default 0)",
    )
    group.add_argument("--resume", action="store_true", help="continue from the checkpoint an interrupted run left")
    group.add_argument(
        "--checkpoint-every", type=int, default=50, help="steps between checkpoints that --resume continues from"
    )
    group.add_argument(
        "--overwrite", action="store_true", help="replace a model already at --out (other folders are never replaced)"
    )


def _probability(text: str) -> float:
    """An argparse type: a number from 0 to 1."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a probability (0 to 1)")
    return value


def _training_config(args: argparse.Namespace, **fields):
    """The trainer's configuration from this command's options; ``fields``: the command's own."""
    options = {name: getattr(args, name) for name in _TRAINING_OPTIONS if name in vars(args)}
    return TrainingConfig(
        out=args.out, data=args.data, command="deepmir " + " ".join(sys.argv[1:]), **options, **fields
    )


def _print_validation_table(n_subjects: int, columns: dict[str, dict]) -> None:
    """The lesion-wise validation scores of each class, one row per model (``columns``: its name -> per-class
    metrics, e.g. base and tuned)."""
    print(f"validation ({n_subjects} subjects), lesion-wise:")
    print(f"{'class':6s} {'model':8s} {'sens':>6s} {'prec':>6s} {'F1':>6s} {'FP/subj':>8s}")
    for name in CLASS_NAMES.values():
        for column, metrics in columns.items():
            m = metrics[name]
            print(
                f"{name:6s} {column:8s} {m['sensitivity']:6.3f} {m['precision']:6.3f} {m['f1']:6.3f} "
                f"{m['fp_per_subject']:8.2f}"
            )


def _run_training(config, title: str) -> int:
    from ..training.trainer import train  # noqa: PLC0415 (imports torch)

    with progress_bar(title, total=config.steps, unit="step") as bar:

        def progress(report):
            bar.update(report.step - bar.n)
            if report.loss is not None:
                bar.set_postfix(loss=f"{report.loss:.3f}", best_f1=f"{max(report.best_score or 0, 0):.3f}")
            if report.metrics is not None:
                scores = " ".join(f"{n} F1 {report.metrics[n]['f1']:.3f}" for n in CLASS_NAMES.values())
                bar.write(
                    f"step {report.step}: validation {scores}" + (" (saved)" if report.saved else ""), file=sys.stderr
                )
            bar.refresh()

        result = train(config, progress)
    if result.best_metrics:
        if getattr(result.card, "parent", None):
            columns = {"base": result.base_metrics, "tuned": result.best_metrics}
        else:
            columns = {"trained": result.best_metrics}
        _print_validation_table(len(result.card.training["validation_subjects"]), columns)
    print(f"{title}: {result.steps_run} steps, best at step {result.best_step} -> {result.model_path}")
    return 0


def _train(args: argparse.Namespace) -> int:
    config = _training_config(
        args,
        base_filters=args.base_filters,
        depth=args.depth,
        context_slices=args.context_slices,
        modalities=args.modalities,
        spacing_mm=args.spacing,
    )
    return _run_training(config, "deepmir train")


def _finetune(args: argparse.Namespace) -> int:
    config = _training_config(
        args, base=resolve_model(args.base), modalities=args.modalities, verifier_steps=args.verifier_steps
    )
    return _run_training(config, "deepmir finetune")


def _train_verifier(args: argparse.Namespace) -> int:
    from ..training.verifier import iter_train_verifier  # noqa: PLC0415 (imports torch)

    config = _training_config(args, base=resolve_model(args.base))
    with progress_bar("deepmir train-verifier", total=config.steps, unit="step") as bar:

        def progress(report):
            bar.update(report.step - bar.n)
            if report.loss is not None:
                bar.set_postfix(loss=f"{report.loss:.3f}")

        run_to_end(iter_train_verifier(config, examples_cache=args.examples_cache), progress)
    card = read_card(config.out)
    record, metrics = card.training["verifier"], card.metrics["verifier"]
    columns = {column: metrics[f"validation_{column}"] for column in ("before", "after")}
    _print_validation_table(len(record["validation_subjects"]), columns)
    verdict = (
        "kept" if record["kept"] else "not kept (no better than the base on validation; the base's behaviour stays)"
    )
    print(f"deepmir train-verifier: {record['steps']} steps, verifier {verdict} -> {config.out}")
    return 0
