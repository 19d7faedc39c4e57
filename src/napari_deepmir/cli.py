"""The ``deepmir`` command line: argument parsing only; each sub-command hands over to a core function.

Each ``_cmd_*`` function below belongs to one sub-command. Heavy modules are imported inside them so
``deepmir --help`` stays fast.
"""

import argparse
import sys
from pathlib import Path

from . import __version__


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None, help="model folder or .safetensors file (default: the shipped model)")
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")


def _add_subject_args(parser: argparse.ArgumentParser, *, swi_required: bool = True) -> None:
    group = parser.add_argument_group("input images (resampled onto the SWI grid)")
    group.add_argument("--subject", type=Path, help="folder with BIDS-like names: sub-X_swi/_Chimap/_T2w.nii.gz")
    group.add_argument("--swi", type=Path, help="SWI NIfTI file (defines the output grid)")
    group.add_argument("--qsm", type=Path, help="QSM NIfTI file (ppm or ppb)")
    group.add_argument("--t2", type=Path, help="T2-weighted NIfTI file")
    group.add_argument("--qsm-units", choices=("auto", "ppm", "ppb"), default="auto", help="units of the QSM file (default: detect)")


def _load_subject_from_args(args: argparse.Namespace):
    from .io import InputError, load_subject, load_subject_dir

    if args.subject is not None:
        if args.swi or args.qsm or args.t2:
            raise InputError(args.subject, "give either --subject or --swi/--qsm/--t2, not both")
        return load_subject_dir(args.subject, qsm_units=args.qsm_units)
    if args.swi is None:
        raise InputError(None, "an SWI image is required: give --swi FILE or --subject DIR")
    return load_subject(args.swi, args.qsm, args.t2, qsm_units=args.qsm_units)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepmir",
        description="Find cerebral microbleeds (label 1) and iron deposits (label 2) in T2/SWI/QSM brain MRI.",
    )
    parser.add_argument("--version", action="version", version=f"napari-deepmir {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    info = commands.add_parser("info", help="load a subject and describe it (grid, units, warnings)")
    _add_subject_args(info)
    info.set_defaults(handler=_cmd_info)

    synth = commands.add_parser("synth", help="write synthetic subjects with known lesions (physics-based phantom)")
    synth.add_argument("out_dir", type=Path)
    synth.add_argument("--subjects", type=int, default=1, help="number of subjects (default 1)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (same seed, same output)")
    synth.set_defaults(handler=_cmd_synth)

    predict = commands.add_parser("predict", help="detect lesions in one subject; writes labels.nii.gz and lesions.csv")
    _add_subject_args(predict)
    _add_model_args(predict)
    predict.add_argument("--out", type=Path, required=True, help="output folder")
    predict.set_defaults(handler=_cmd_predict)

    train = commands.add_parser("train", help="train a model from scratch on annotated subjects")
    train.add_argument("--data", type=Path, nargs="+", required=True, help="folders of subjects (modalities + *_dseg.nii.gz)")
    train.add_argument("--out", type=Path, required=True, help="model folder to write")
    train.set_defaults(handler=_cmd_train)

    finetune = commands.add_parser("finetune", help="fine-tune a model on annotated subjects")
    finetune.add_argument("--data", type=Path, nargs="+", required=True, help="folders of subjects (modalities + *_dseg.nii.gz)")
    finetune.add_argument("--out", type=Path, required=True, help="model folder to write")
    finetune.add_argument("--base", type=Path, default=None, help="model to start from (default: the shipped model)")
    finetune.add_argument("--steps", type=int, default=300, help="optimisation steps (default 300)")
    finetune.set_defaults(handler=_cmd_finetune)

    candidates = commands.add_parser("candidates", help="rank likely lesions for review; writes a CSV, best first")
    _add_subject_args(candidates)
    candidates.add_argument("--model", type=Path, default=None, help="also use this model's probabilities")
    candidates.add_argument("--out", type=Path, required=True, help="candidates.csv")
    candidates.set_defaults(handler=_cmd_candidates)

    table = commands.add_parser("table", help="measure every lesion of a label map; writes CSV or TSV")
    _add_subject_args(table)
    table.add_argument("--labels", type=Path, required=True, help="label map on the SWI grid (1 CMB, 2 iron)")
    table.add_argument("--out", type=Path, required=True, help="lesions.csv or lesions.tsv")
    table.set_defaults(handler=_cmd_table)

    evaluate = commands.add_parser("evaluate", help="lesion-wise sensitivity, precision, F1, FP per subject")
    evaluate.add_argument("--truth", type=Path, required=True, help="truth label file or folder")
    evaluate.add_argument("--pred", type=Path, required=True, help="predicted label file or folder")
    evaluate.add_argument("--out", type=Path, default=None, help="report.json")
    evaluate.set_defaults(handler=_cmd_evaluate)

    cohort = commands.add_parser("cohort", help="predict and measure every subject of a BIDS dataset with Dask")
    cohort.add_argument("bids_root", type=Path)
    cohort.add_argument("--out", type=Path, required=True, help="derivatives folder")
    _add_model_args(cohort)
    cohort.add_argument("--workers", type=int, default=None, help="local Dask workers (default: one per 2 cores)")
    cohort.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (tcp://host:8786)")
    cohort.add_argument("--overwrite", action="store_true", help="redo subjects that already have outputs")
    cohort.set_defaults(handler=_cmd_cohort)
    return parser


def _cmd_info(args: argparse.Namespace) -> int:
    import numpy as np

    subject = _load_subject_from_args(args)
    spacing = " x ".join(f"{s:.3g}" for s in subject.spacing)
    print(f"{subject.name}: grid {subject.shape} voxels of {spacing} mm (SWI grid)")
    for modality in subject.available:
        data = subject.modality(modality)
        inside = data[subject.mask]
        unit = " ppb" if modality == "qsm" else ""
        low, high = np.percentile(inside, [1, 99]) if inside.size else (np.nan, np.nan)
        print(f"  {modality.upper():4s} {subject.paths[modality]}  brain 1st..99th percentile {low:.4g}..{high:.4g}{unit}")
    if subject.qsm_units:
        print(f"  QSM units: {subject.qsm_units} (reported in ppb)")
    print(f"  brain mask: {int(subject.mask.sum())} voxels")
    for warning in subject.warnings:
        print(f"  warning: {warning}")
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    raise NotImplementedError("deepmir synth: phantom issue")


def _cmd_predict(args: argparse.Namespace) -> int:
    raise NotImplementedError("deepmir predict: model issue")


def _cmd_train(args: argparse.Namespace) -> int:
    raise NotImplementedError("deepmir train: training issue")


def _cmd_finetune(args: argparse.Namespace) -> int:
    raise NotImplementedError("deepmir finetune: training issue")


def _cmd_candidates(args: argparse.Namespace) -> int:
    raise NotImplementedError("deepmir candidates: labelling issue")


def _cmd_table(args: argparse.Namespace) -> int:
    raise NotImplementedError("deepmir table: lesion table issue")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    raise NotImplementedError("deepmir evaluate: lesion table issue")


def _cmd_cohort(args: argparse.Namespace) -> int:
    raise NotImplementedError("deepmir cohort: cohort issue")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``deepmir`` console script."""
    from .io import InputError

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except InputError as error:
        print(f"deepmir {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"deepmir {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
