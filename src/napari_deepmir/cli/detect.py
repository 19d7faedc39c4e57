"""Commands that detect lesions: ``deepmir predict``, ``demo``, ``cohort`` and ``longitudinal``."""

import argparse
import sys
from pathlib import Path

import pandas as pd

from ..detection.cohort import run_cohort, scheduler_security
from ..detection.demo import run_demo
from ..detection.pipeline import detect, write_detection
from ..io.derivatives import read_table
from ..io.outputs import OutputSet, check_can_write
from ..lesions.rules import rejections_summary
from ..longitudinal.cohort import compare_cohort_sessions
from ..longitudinal.run import run_comparison
from ..model.registry import choose_model
from ..progress import progress_bar
from .options import add_model_args, add_place_args, add_subject_args, load_subject_from_args, subject_places


def add_predict(commands) -> None:
    predict = commands.add_parser(
        "predict", help="detect lesions in one subject; writes its labels, lesion table and provenance"
    )
    add_subject_args(predict)
    add_model_args(predict)
    add_place_args(predict)
    predict.add_argument(
        "--out", type=Path, required=True, help="output folder (BIDS-derivative names, see docs/model.md)"
    )
    predict.add_argument("--overwrite", action="store_true", help="replace this subject's earlier outputs in --out")
    predict.add_argument(
        "--save-probabilities",
        action="store_true",
        help="also write each class's probability map (*_label-<class>_desc-deepmir_probseg.nii.gz; "
        "deepmir evaluate draws the FROC curve from them)",
    )
    predict.set_defaults(handler=_predict)


def add_cohort(commands) -> None:
    cohort = commands.add_parser("cohort", help="predict and measure every subject of a BIDS dataset with Dask")
    cohort.add_argument("bids_root", type=Path)
    cohort.add_argument("--out", type=Path, required=True, help="derivatives folder")
    add_model_args(cohort)
    cohort.add_argument("--workers", type=int, default=None, help="local Dask workers (default: one per 2 cores)")
    cohort.add_argument(
        "--scheduler", default=None, help="address of a running Dask scheduler (tls://host:8786; docs/cohort.md)"
    )
    tls = cohort.add_argument_group("TLS for --scheduler (docs/cohort.md; default: Dask's configuration)")
    tls.add_argument("--tls-ca-file", type=Path, default=None, help="certificate authority of the cluster (PEM)")
    tls.add_argument("--tls-cert", type=Path, default=None, help="this client's certificate (PEM)")
    tls.add_argument("--tls-key", type=Path, default=None, help="this client's private key (PEM)")
    cohort.add_argument(
        "--overwrite",
        action="store_true",
        help="redo subjects that already have outputs, and replace files at --out that deepmir did not write",
    )
    cohort.set_defaults(handler=_cohort)


def add_longitudinal(commands) -> None:
    longitudinal = commands.add_parser(
        "longitudinal",
        help="compare a follow-up with its baseline: new/persisting/grown/resolved lesions and the ARIA-H grade",
        description="Register the follow-up SWI to the baseline, find the lesions of both (the model, or given label "
        "maps), match them across time and write the change table and the ARIA-H grade (docs/follow-up.md).",
    )
    longitudinal.add_argument("--baseline", type=Path, required=True, help="baseline session folder")
    longitudinal.add_argument("--followup", type=Path, required=True, help="follow-up session folder")
    longitudinal.add_argument("--out", type=Path, required=True, help="output folder")
    longitudinal.add_argument("--baseline-labels", type=Path, default=None, help="baseline lesions (no detection)")
    longitudinal.add_argument("--followup-labels", type=Path, default=None, help="follow-up lesions (no detection)")
    longitudinal.add_argument(
        "--truth", type=Path, default=None, help="truth change table of a synthetic pair: score the comparison"
    )
    add_model_args(longitudinal)
    longitudinal.add_argument("--overwrite", action="store_true", help="replace this participant's earlier outputs")
    longitudinal.set_defaults(handler=_longitudinal)


def add_demo(commands) -> None:
    demo = commands.add_parser("demo", help="the shipped model on a synthetic subject, ending in a lesion table")
    demo.add_argument("--out", type=Path, default=Path("demo-output"), help="output folder (default demo-output)")
    demo.add_argument("--seed", type=int, default=2026, help="seed of the synthetic subject")
    demo.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    print(
        "making a synthetic subject with known lesions, then detecting them with the shipped model...", file=sys.stderr
    )
    with progress_bar("predict", unit="batch") as bar:
        result = run_demo(args.out, seed=args.seed, device=args.device, progress=_bar_updater(bar))
    columns = ["lesion_id", "class", "volume_mm3", "diameter_mm", "x_mm", "y_mm", "z_mm", "qsm_mean_ppb", "location"]
    with pd.option_context("display.width", 140, "display.max_rows", 40):
        print(result.table[[c for c in columns if c in result.table]].round(1).to_string(index=False))
    for name, score in result.scores.items():
        print(
            f"{name:5s} vs truth: found {score['n_truth_found']}/{score['n_truth']}, "
            f"{score['n_pred_true']}/{score['n_pred']} predicted lesions true, F1 {score['f1']:.2f}"
        )
    print(
        f"{result.summary} -> {result.outputs.lesions} (labels {result.outputs.labels}; subject "
        f"{result.subject_folder})"
    )
    return 0


def _predict(args: argparse.Namespace) -> int:
    subject = load_subject_from_args(args)
    outputs = OutputSet(args.out, subject.name, probabilities=args.save_probabilities)
    check_can_write(outputs, overwrite=args.overwrite)  # before the work, not after it
    choice = choose_model(subject.available, args.model)
    locations, regions = subject_places(args, subject)
    for warning in subject.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{subject.name}: {choice.describe()}", file=sys.stderr)
    with progress_bar(f"predict {subject.name}", unit="batch") as bar:
        result = detect(
            subject,
            choice,
            device=args.device,
            locations=locations,
            regions=regions,
            progress=_bar_updater(bar),
        )
    for warning in result.warnings[len(subject.warnings) :]:  # the model's: acquisition outside its training
        print(f"warning: {warning}", file=sys.stderr)
    if result.rejected:
        print(f"{subject.name}: {rejections_summary(result.rejected)}", file=sys.stderr)
    write_detection(result, outputs, overwrite=args.overwrite)
    print(f"{subject.name}: {result.summary()} -> {outputs.lesions}")
    return 0


def _bar_updater(bar):
    """A ``progress(done, total)`` callback that moves ``bar``."""

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return update


def _cohort(args: argparse.Namespace) -> int:
    result = run_cohort(
        args.bids_root,
        args.out,
        model=args.model,
        device=args.device,
        workers=args.workers,
        scheduler=args.scheduler,
        security=scheduler_security(args.tls_ca_file, args.tls_cert, args.tls_key),
        overwrite=args.overwrite,
    )
    for participant, reason in sorted(result.failed.items()):
        print(f"failed: {participant}: {reason}", file=sys.stderr)
    others = result.other_models()
    if others:
        print(
            f"note: {len(others)} skipped subject(s) were made by another model ({', '.join(others[:5])}"
            f"{', ...' if len(others) > 5 else ''}); --overwrite redoes them; dataset_description.json lists every "
            "model",
            file=sys.stderr,
        )
    print(result.summary_line())
    _cohort_follow_ups(args)
    return 1 if result.failed else 0


def _cohort_follow_ups(args: argparse.Namespace) -> None:
    """Participants with two or more sessions: each session against the one before (docs/follow-up.md)."""
    pairs = compare_cohort_sessions(args.bids_root, args.out, overwrite=args.overwrite)
    if not len(pairs):
        return
    done = pairs[pairs["status"] == "done"]
    for row in pairs[pairs["status"] != "done"].itertuples():
        print(f"follow-up failed: {row.participant_id} {row.followup_session}: {row.status}", file=sys.stderr)
    per_year = done["new_cmb_per_year"].dropna()
    rate = f", {per_year.mean():.2f} new microbleeds per year on average" if len(per_year) else ""
    print(
        f"{len(done)} follow-up(s) compared: {int(done['new_cmb'].sum())} new microbleeds{rate}; "
        f"ARIA-H {dict(done['aria_h'].value_counts())} -> {args.out / 'longitudinal.tsv'}"
    )


def _longitudinal(args: argparse.Namespace) -> int:
    comparison, outputs = run_comparison(
        args.baseline,
        args.followup,
        args.out,
        baseline_labels=args.baseline_labels,
        followup_labels=args.followup_labels,
        model=args.model,
        device=args.device,
        overwrite=args.overwrite,
        truth=None if args.truth is None else read_table(args.truth),
        progress=lambda message: print(message, file=sys.stderr),
    )
    for warning in comparison.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(comparison.registration.describe())
    print(f"{comparison.summary()} -> {outputs.changes}")
    score = comparison.score
    if score is not None:
        print(
            f"against the truth: {score['found']} of {score['truth_new']} new microbleeds found, "
            f"{score['false_new']} false new, {score['persisting_called_new']} persisting called new; "
            f"grade {score['grade']} (truth {score['truth_grade']})"
        )
    return 0
