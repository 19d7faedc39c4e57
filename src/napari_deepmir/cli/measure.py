"""Commands that measure, rank and compare lesions: ``deepmir table``, ``candidates``, ``evaluate``,
``agreement``, ``locations`` and ``consensus``."""

import argparse
import math
import sys
from pathlib import Path

from ..conventions import CLASS_NAMES, CMB, IRON
from ..detection.pipeline import predict_subject
from ..io import InputError
from ..io.bids import find_subject_files, names_read, subject_id
from ..io.derivatives import write_json, write_table_with_sidecar
from ..io.destinations import check_destinations, generated_by, generated_by_us, our_table
from ..lesions.agreement import agreement, check_agreement_outputs, write_agreement
from ..lesions.candidates import find_candidates, table_descriptions
from ..lesions.components import locations_from_regions
from ..lesions.evaluate import evaluate
from ..lesions.measure import COLUMNS, measure_lesions
from ..lesions.report_figure import save_report_figure
from ..lesions.summary import SUMMARY_COLUMNS, summary_table
from ..rating.consensus import agreement_text, consensus_root, export_consensus_reads
from ..regions.maps import write_region_maps
from .options import (
    add_match_args,
    add_place_args,
    add_subject_args,
    check_match_args,
    load_subject_from_args,
    subject_label_map,
    subject_places,
)


def add_candidates(commands) -> None:
    candidates = commands.add_parser("candidates", help="rank likely lesions for review; writes a CSV, best first")
    add_subject_args(candidates)
    candidates.add_argument("--model", type=Path, default=None, help="also use this model's probabilities")
    add_place_args(candidates)
    candidates.add_argument("--max", type=int, default=200, help="at most this many candidates (default 200)")
    candidates.add_argument("--out", type=Path, required=True, help="candidates.csv")
    candidates.add_argument(
        "--overwrite", action="store_true", help="replace files at --out (and its .json) that deepmir did not write"
    )
    candidates.set_defaults(handler=_candidates)


def add_table(commands) -> None:
    table = commands.add_parser("table", help="measure every lesion of a label map; writes CSV or TSV")
    add_subject_args(table)
    table.add_argument(
        "--labels",
        type=Path,
        default=None,
        help="label map on the SWI grid (1 CMB, 2 iron); default with --subject: its *_dseg file",
    )
    add_place_args(table)
    table.add_argument(
        "--out",
        type=Path,
        required=True,
        help="lesions.csv or lesions.tsv (a JSON sidecar describing the columns is written beside it)",
    )
    table.add_argument(
        "--summary",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write the participant's summary (MARS counts per region and side, burden category, pattern, "
        "volumes) to this CSV/TSV, with its JSON sidecar",
    )
    table.add_argument(
        "--overwrite", action="store_true", help="replace files at --out/--summary that deepmir did not write"
    )
    table.set_defaults(handler=_table)


def add_locations(commands) -> None:
    locations = commands.add_parser(
        "locations",
        help="location and MARS region maps on the SWI grid from a FreeSurfer or SynthSeg segmentation",
        description="Convert a FreeSurfer aseg / aparc+aseg / wmparc or a SynthSeg segmentation (FreeSurfer label "
        "numbers) into the location map (*_desc-locations_dseg) and the MARS region map (*_desc-regions_dseg, "
        "code on the left, code + 100 on the right) on the SWI grid; rules in docs/regions.md.",
    )
    locations.add_argument("--aseg", type=Path, required=True, help="segmentation NIfTI (aseg, aparc+aseg, SynthSeg)")
    source = locations.add_mutually_exclusive_group(required=True)
    source.add_argument("--swi", type=Path, help="SWI NIfTI file whose grid the maps take")
    source.add_argument("--subject", type=Path, help="subject folder with a *_swi.nii.gz file")
    locations.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: the folder of the SWI file, where "
        "deepmir predict --subject finds the location map)",
    )
    locations.add_argument("--overwrite", action="store_true", help="replace location/region maps already there")
    locations.set_defaults(handler=_locations)


def add_evaluate(commands) -> None:
    evaluate_parser = commands.add_parser(
        "evaluate", help="lesion-wise sensitivity, precision, F1, FP per subject, FROC; JSON report and PNG"
    )
    evaluate_parser.add_argument("--truth", type=Path, required=True, help="truth label file or folder")
    evaluate_parser.add_argument(
        "--pred",
        type=Path,
        required=True,
        help="predicted label file or folder (its *_label-<class>_*probseg files give the FROC curve)",
    )
    add_match_args(evaluate_parser)
    evaluate_parser.add_argument("--out", type=Path, default=None, help="report.json (and report.png beside it)")
    evaluate_parser.add_argument(
        "--overwrite", action="store_true", help="replace a report at --out (and its .png) that deepmir did not write"
    )
    evaluate_parser.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="also score predictions whose output set is marked incomplete (an interrupted run)",
    )
    evaluate_parser.set_defaults(handler=_evaluate)


def add_agreement(commands) -> None:
    agreement_parser = commands.add_parser(
        "agreement", help="two raters' label maps: lesion-wise matches, kappa, ICC, table of disagreements"
    )
    agreement_parser.add_argument("--a", type=Path, required=True, help="rater A: label file or folder of subjects")
    agreement_parser.add_argument("--b", type=Path, required=True, help="rater B: label file or folder of subjects")
    add_match_args(agreement_parser)
    agreement_parser.add_argument(
        "--out", type=Path, required=True, help="output folder: agreement.json and disagreements.tsv"
    )
    agreement_parser.add_argument(
        "--overwrite", action="store_true", help="replace agreement files at --out that deepmir did not write"
    )
    agreement_parser.set_defaults(handler=_agreement)


def add_consensus(commands) -> None:
    consensus = commands.add_parser(
        "consensus",
        help="export the consensus reads of an agreement's disagreements (made in Label lesions): consensus tables "
        "and each consensus map's agreement with each rater",
    )
    consensus.add_argument("--disagreements", type=Path, required=True, help="disagreements.tsv of deepmir agreement")
    consensus.set_defaults(handler=_consensus)


def _candidates(args: argparse.Namespace) -> int:
    _check_tables([(args.out, table_descriptions())], args)
    subject = load_subject_from_args(args)
    locations, regions = subject_places(args, subject)
    if locations is None and regions is not None:
        locations = locations_from_regions(regions)
    probabilities = None
    if args.model is not None:
        probabilities = predict_subject(subject, model=args.model, return_probabilities=True).probabilities
    print(f"deepmir candidates: searching {subject.name}", file=sys.stderr)
    table = find_candidates(subject, probabilities=probabilities, locations=locations, max_candidates=args.max)
    write_table_with_sidecar(args.out, table, table_descriptions())
    counts = table["suggested_class"].value_counts().to_dict()
    summary = ", ".join(f"{counts.get(name, 0)} {name}" for name in (*CLASS_NAMES.values(), "reject"))
    print(f"{subject.name}: {len(table)} candidates ({summary} suggested) -> {args.out}")
    return 0


def _check_tables(tables: list[tuple], args: argparse.Namespace) -> None:
    """Before any work: each table (CSV/TSV) of ``tables`` ((path or None, column descriptions) pairs) and its
    JSON sidecar may be written (docs/data-safety.md): files there are replaced only when they are tables of
    ours, or with --overwrite; no output is an input, no two outputs are one file."""
    tests, files = {}, []
    for path, descriptions in (pair for pair in tables if pair[0] is not None):
        if path.suffix.lower() not in (".csv", ".tsv"):
            raise InputError(path, "table files must end in .csv or .tsv")
        files += [path, path.with_suffix(".json")]
        tests[path] = tests[path.with_suffix(".json")] = our_table(descriptions)
    inputs = [getattr(args, name, None) for name in ("swi", "qsm", "t2", "mask", "labels", "locations", "regions")]
    check_destinations(files, overwrite=args.overwrite, ours=lambda path: tests[path](path), inputs=inputs)


def _table(args: argparse.Namespace) -> int:
    _check_tables([(args.out, COLUMNS), (args.summary, SUMMARY_COLUMNS)], args)
    subject = load_subject_from_args(args)
    labels = subject_label_map(args, subject, args.labels, "labels")
    if labels is None:
        raise InputError(
            args.subject or args.swi, "no label map: give --labels FILE (or a subject folder with *_dseg.nii.gz)"
        )
    locations, regions = subject_places(args, subject)
    table = measure_lesions(labels, subject, locations=locations, regions=regions)
    write_table_with_sidecar(args.out, table, COLUMNS)
    summary = summary_table({subject.name: table})
    row = summary.iloc[0]
    volumes = ", ".join(f"{row['n_' + n]} {n} ({row[n + '_volume_mm3']:.1f} mm3)" for n in CLASS_NAMES.values())
    print(f"{subject.name}: {len(table)} lesions: {volumes} -> {args.out}")
    if args.summary is not None:
        write_table_with_sidecar(args.summary, summary, SUMMARY_COLUMNS)
        print(f"{subject.name}: CMB burden {row['cmb_burden']}, pattern {row['cmb_pattern']} -> {args.summary}")
    return 0


def _locations(args: argparse.Namespace) -> int:
    swi = args.swi
    if args.subject is not None:
        swi = find_subject_files(args.subject).get("swi")
        if swi is None:
            raise InputError(args.subject, f"no SWI file in this subject folder (looked for {names_read('swi')})")
    participant = subject_id(swi) or Path(swi).name.split(".")[0].removesuffix("_swi")
    files, notes = write_region_maps(
        args.aseg, swi, args.out or Path(swi).parent, participant=participant, overwrite=args.overwrite
    )
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{participant}: locations -> {files.locations}; MARS regions -> {files.regions}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    check_match_args(args)
    if args.out is not None:  # the figure beside the report is ours when the report is
        check_destinations(
            [args.out, args.out.with_suffix(".png")],
            overwrite=args.overwrite,
            ours=lambda path: generated_by_us(args.out),
            inputs=[args.truth, args.pred],
        )
    report = evaluate(
        args.truth,
        args.pred,
        rule=args.match,
        max_distance_mm=args.max_distance_mm,
        progress=True,
        allow_incomplete=args.allow_incomplete,
    )
    for side in ("truth", "pred"):
        if report[f"unpaired_{side}"]:
            print(f"warning: only in --{side}: {', '.join(report[f'unpaired_{side}'])}", file=sys.stderr)
    print(
        f"{'class':6s} {'truth':>6s} {'found':>6s} {'pred':>6s} {'TP':>6s} {'sens':>6s} {'prec':>6s} {'F1':>6s} "
        f"{'FP/subj':>8s}"
    )
    for name in CLASS_NAMES.values():
        r = report[name]
        print(
            f"{name:6s} {r['n_truth']:6d} {r['n_truth_found']:6d} {r['n_pred']:6d} {r['n_pred_true']:6d} "
            f"{r['sensitivity']:6.3f} {r['precision']:6.3f} {r['f1']:6.3f} {r['fp_per_subject']:8.2f}"
        )
    confusion, cmb, iron = report["confusion"], CLASS_NAMES[CMB], CLASS_NAMES[IRON]
    print(f"CMB predicted as iron: {confusion[cmb][iron]}; iron predicted as CMB: {confusion[iron][cmb]}")
    destination = ""
    if args.out is not None:
        write_json(args.out, {**report, "GeneratedBy": generated_by()})
        figure = save_report_figure(report, args.out.with_suffix(".png"))
        destination = f" -> {args.out}, {figure}"
    print(f"evaluated {report['n_subjects']} subject(s), matching {args.match}{destination}")
    return 0


def _consensus(args: argparse.Namespace) -> int:
    for subject, report in export_consensus_reads(args.disagreements):
        undecided = f" ({report['undecided']} disagreements undecided)" if report["undecided"] else ""
        print(f"{subject}{undecided}:\n" + agreement_text(report))
    print(f"-> {consensus_root(args.disagreements)}")
    return 0


def _agreement(args: argparse.Namespace) -> int:
    check_match_args(args)
    check_agreement_outputs(args.out, overwrite=args.overwrite, inputs=(args.a, args.b))
    result = agreement(args.a, args.b, rule=args.match, max_distance_mm=args.max_distance_mm, progress=True)
    for side in ("a", "b"):
        if result.report[f"only_{side}"]:
            print(f"warning: only in --{side}: {', '.join(result.report[f'only_{side}'])}", file=sys.stderr)
    report_path, disagreements_path = write_agreement(result, args.out, overwrite=args.overwrite)
    for name in CLASS_NAMES.values():
        r = result.report[name]
        print(
            f"{name:5s} lesions A {r['n_a']}, B {r['n_b']}, matched {r['n_matched']}; presence kappa "
            f"{_number(r['presence_kappa'])}; count {r['count_icc']['form']} {_number(r['count_icc']['icc'])}"
        )
    print(
        f"{result.report['n_subjects']} subject(s), {len(result.disagreements)} disagreement(s) -> "
        f"{report_path}, {disagreements_path}"
    )
    return 0


def _number(value) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"
