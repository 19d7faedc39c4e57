"""The ``deepmir`` command line: argument parsing only; each sub-command hands over to a core function.

Each ``_cmd_*`` function below belongs to one sub-command. Heavy modules are imported inside them so
``deepmir --help`` stays fast.
"""

import argparse
import sys
from pathlib import Path

from . import __version__
from .progress import progress_bar, run_to_end


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model folder, .safetensors file or shipped model name (default, swi-qsm, swi); default: the shipped "
        "model reading the most of the subject's inputs (SWI+QSM+T2, SWI+QSM or SWI)",
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")


def _add_subject_args(parser: argparse.ArgumentParser, *, swi_required: bool = True) -> None:
    group = parser.add_argument_group("input images (resampled onto the SWI grid)")
    group.add_argument("--subject", type=Path, help="folder with BIDS-like names: sub-X_swi/_Chimap/_T2w.nii.gz")
    group.add_argument("--swi", type=Path, help="SWI NIfTI file (defines the output grid)")
    group.add_argument("--qsm", type=Path, help="QSM NIfTI file (ppm or ppb)")
    group.add_argument("--t2", type=Path, help="T2-weighted NIfTI file")
    group.add_argument(
        "--qsm-units",
        choices=("auto", "ppm", "ppb", "si"),
        default="auto",
        help="units of the QSM file (default: detect)",
    )
    group.add_argument(
        "--mask",
        type=Path,
        help="brain mask NIfTI file (non-zero = brain) where lesions are sought (default: estimated)",
    )
    _add_registration_arg(group)


def _add_registration_arg(group) -> None:
    group.add_argument(
        "--registration",
        choices=("auto", "check", "off"),
        default="auto",
        help="check that T2/QSM are in register with the SWI and register them rigidly when not (auto, the "
        "default); only check and warn (check); trust the headers (off)",
    )


def _add_place_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--locations",
        type=Path,
        default=None,
        help="location map on the SWI grid (default: the subject folder's *_desc-locations_dseg)",
    )
    parser.add_argument(
        "--regions",
        type=Path,
        default=None,
        help="MARS region map on the SWI grid, for the region and hemisphere columns (default: the subject "
        "folder's *_desc-regions_dseg)",
    )


def _add_match_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--match",
        choices=("overlap", "adjacent", "distance"),
        default="overlap",
        help="when two lesions are the same: overlap (share a voxel, default), adjacent (within one voxel, "
        "26-neighbourhood), distance (centroids within --max-distance-mm); pairs are one to one",
    )
    parser.add_argument(
        "--max-distance-mm",
        type=float,
        default=None,
        help="largest centroid distance of a pair with --match distance (e.g. 3)",
    )


def _check_match_args(args: argparse.Namespace) -> None:
    from .io import InputError
    from .lesions.matching import distance_problem

    if args.match == "distance" and distance_problem(args.max_distance_mm):
        raise InputError(None, f"--match distance needs --max-distance-mm {distance_problem(args.max_distance_mm)}")
    if args.match != "distance" and args.max_distance_mm is not None:
        raise InputError(None, "--max-distance-mm goes with --match distance")


def _load_subject_from_args(args: argparse.Namespace):
    from .io import InputError, load_subject, load_subject_dir

    if args.subject is not None:
        if args.swi or args.qsm or args.t2:
            raise InputError(args.subject, "give either --subject or --swi/--qsm/--t2, not both")
        subject = load_subject_dir(args.subject, qsm_units=args.qsm_units, registration=args.registration)
    elif args.swi is None:
        raise InputError(None, "an SWI image is required: give --swi FILE or --subject DIR")
    else:
        subject = load_subject(args.swi, args.qsm, args.t2, qsm_units=args.qsm_units, registration=args.registration)
    if args.mask is not None:
        _use_brain_mask(subject, args.mask)
    return subject


def _use_brain_mask(subject, path: Path) -> None:
    """The user's brain mask file replaces the estimated whole brain (:func:`.io.mask.use_brain_mask`)."""
    from .io.mask import load_brain_mask, use_brain_mask

    use_brain_mask(subject, load_brain_mask(path, subject), path)


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
    _add_registration_arg(group)
    group.add_argument("--no-augment", dest="augment", action="store_false", help="train without augmentation")
    group.add_argument("--resume", action="store_true", help="continue from the checkpoint an interrupted run left")
    group.add_argument(
        "--overwrite", action="store_true", help="replace a model already at --out (other folders are never replaced)"
    )


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

    dicom = commands.add_parser(
        "import",
        help="sort a folder of DICOM series into a BIDS folder (T2w, SWI, gradient-echo magnitude/phase) with dcm2niix",
        description="Convert every DICOM series under DICOM_DIR with dcm2niix and sort it into "
        "BIDS_ROOT/sub-X[/ses-Y]/anat/ as *_T2w, *_swi, *_part-mag_T2starw or *_part-phase_T2starw, each with its "
        "BIDS JSON sidecar. Series of no known role, and roles filled twice for a participant, are listed and not "
        "imported. Sidecars are de-identified (a keep-list; dates only with --keep-dates). Existing files are never "
        "replaced: the import refuses before writing anything. See docs/getting-started.md (Importing DICOM).",
    )
    dicom.add_argument(
        "dicom_dir", type=Path, metavar="DICOM_DIR", help="folder of DICOM files (searched 5 folders deep)"
    )
    dicom.add_argument(
        "--out", type=Path, required=True, metavar="BIDS_ROOT", help="BIDS folder to import into (created if needed)"
    )
    dicom.add_argument("--subject", help="subject label for all series (default: each series' PatientID)")
    visit = dicom.add_mutually_exclusive_group()
    visit.add_argument(
        "--session", help="session label for all series (default: ses-1, ses-2... per subject in acquisition order)"
    )
    visit.add_argument("--no-session", action="store_true", help="no ses- level (sub-X/anat/)")
    dicom.add_argument(
        "--keep-dates", action="store_true", help="keep acquisition dates and times in sidecars (dropped by default)"
    )
    dicom.set_defaults(handler=_cmd_import)

    synth = commands.add_parser("synth", help="write synthetic subjects with known lesions (physics-based phantom)")
    synth.add_argument("out_dir", type=Path)
    synth.add_argument(
        "--overwrite", action="store_true", help="replace subject folders (sub-001...) already in OUT_DIR"
    )
    synth.add_argument("--subjects", type=int, default=1, help="number of subjects (default 1)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (same seed, same output)")
    synth.add_argument(
        "--shape", type=int, nargs=3, default=(176, 208, 64), metavar=("X", "Y", "Z"), help="SWI/QSM matrix"
    )
    synth.add_argument("--voxel-size", type=float, nargs=3, default=(1.0, 1.0, 2.0), metavar=("X", "Y", "Z"), help="mm")
    synth.add_argument("--te", type=float, default=20.0, help="echo time in ms (default 20)")
    synth.add_argument("--snr", type=float, default=40.0, help="magnitude SNR in white matter (default 40)")
    synth.add_argument(
        "--b0", type=float, nargs=3, default=(0.0, 0.0, 1.0), metavar=("X", "Y", "Z"), help="B0 direction (world)"
    )
    synth.add_argument(
        "--qsm-units", choices=("ppm", "ppb"), default="ppm", help="units of the written QSM (default ppm, as in BIDS)"
    )
    synth.add_argument(
        "--t2-voxel-size", type=float, nargs=3, default=None, metavar=("X", "Y", "Z"), help="T2 on its own grid"
    )
    synth.add_argument("--oblique", type=float, default=0.0, help="tilt of the slice stack in degrees")
    synth.add_argument(
        "--randomize", action="store_true", help="a different random acquisition per subject (training data)"
    )
    synth.add_argument(
        "--fine-voxel",
        type=float,
        nargs=3,
        default=None,
        metavar=("X", "Y", "Z"),
        help="finest simulation voxel in mm (default 0.55 0.55 0.8; coarser is faster, blooms less)",
    )
    sessions = synth.add_argument_group("follow-up pairs (docs/follow-up.md)")
    sessions.add_argument(
        "--sessions",
        type=int,
        choices=(1, 2),
        default=1,
        help="2: each subject scanned twice (sub-X/ses-1, ses-2) with head motion, 0-12 new microbleeds, maybe one "
        "resolved, and the truth table sub-X_desc-truth_changes.tsv",
    )
    sessions.add_argument("--max-rotation", type=float, default=5.0, help="most head rotation at follow-up (degrees)")
    sessions.add_argument("--max-shift", type=float, default=5.0, help="most head shift at follow-up (mm)")
    world = synth.add_argument_group("world (docs/synthetic-data.md)")
    world.add_argument(
        "--world",
        choices=("default", "wide"),
        default="default",
        help="default: the shipped model's training world; wide: anatomical veins, cohort-like burden, mimics, "
        "air/bone, QSM pipelines drawn per subject",
    )
    world.add_argument("--vein-density", type=float, default=None, help="multiply the number of veins")
    world.add_argument("--inversion", choices=("tkd", "tikhonov", "cg"), default=None, help="QSM dipole inversion")
    world.add_argument(
        "--head-shape", choices=("ellipsoid", "long", "round", "boxy"), default=None, help="head-shape family"
    )
    world.add_argument("--qsm-erosion", type=float, default=None, help="QSM brain-mask erosion in mm")
    world.add_argument(
        "--lesion-burden",
        choices=("default", "cohort", "none"),
        default=None,
        help="microbleeds and iron deposits per subject: default (3-12 CMBs, 1-4 iron), cohort (most subjects "
        "without CMBs, a few with dozens; the wide world's own), none",
    )
    world.add_argument("--lesion-free", action="store_true", help="no microbleeds and no iron deposits (= none)")
    world.add_argument("--field-strength", type=float, default=3.0, help="B0 in tesla (default 3)")
    synth.set_defaults(handler=_cmd_synth)

    predict = commands.add_parser(
        "predict", help="detect lesions in one subject; writes its labels, lesion table and provenance"
    )
    _add_subject_args(predict)
    _add_model_args(predict)
    _add_place_args(predict)
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
    predict.set_defaults(handler=_cmd_predict)

    train = commands.add_parser("train", help="train a model from scratch on annotated subjects")
    train.add_argument(
        "--data", type=Path, nargs="+", required=True, help="folders of subjects (modalities + *_dseg.nii.gz)"
    )
    train.add_argument("--out", type=Path, required=True, help="model folder to write")
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
    train.set_defaults(handler=_cmd_train)

    finetune = commands.add_parser("finetune", help="fine-tune a model on annotated subjects")
    finetune.add_argument(
        "--data", type=Path, nargs="+", required=True, help="folders of subjects (modalities + *_dseg.nii.gz)"
    )
    finetune.add_argument("--out", type=Path, required=True, help="model folder to write")
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
    finetune.set_defaults(handler=_cmd_finetune)

    verifier = commands.add_parser(
        "train-verifier",
        help="add or retrain a model's second stage: a 3D CNN that keeps or drops each lesion",
        description="Train the second stage of --base (docs/model.md, 'Second stage'): candidates from its U-Net, the "
        "classical blob finder and the annotations, labelled by the annotations, then a small 3D CNN on patches around "
        "them. The new model (the base's U-Net with this verifier) is written to --out; the verifier is kept only when "
        "it beats the base on the validation subjects.",
    )
    verifier.add_argument(
        "--data", type=Path, nargs="+", required=True, help="folders of subjects (modalities + *_dseg.nii.gz)"
    )
    verifier.add_argument("--out", type=Path, required=True, help="model folder to write")
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
    _add_registration_arg(verifier)
    verifier.add_argument(
        "--examples-cache",
        type=Path,
        default=None,
        help="folder keeping each subject's training examples, reused by the next run with the same model and the "
        "same subject content (images and annotation)",
    )
    verifier.set_defaults(handler=_cmd_train_verifier)

    candidates = commands.add_parser("candidates", help="rank likely lesions for review; writes a CSV, best first")
    _add_subject_args(candidates)
    candidates.add_argument("--model", type=Path, default=None, help="also use this model's probabilities")
    _add_place_args(candidates)
    candidates.add_argument("--max", type=int, default=200, help="at most this many candidates (default 200)")
    candidates.add_argument("--out", type=Path, required=True, help="candidates.csv")
    candidates.add_argument(
        "--overwrite", action="store_true", help="replace files at --out (and its .json) that deepmir did not write"
    )
    candidates.set_defaults(handler=_cmd_candidates)

    table = commands.add_parser("table", help="measure every lesion of a label map; writes CSV or TSV")
    _add_subject_args(table)
    table.add_argument(
        "--labels",
        type=Path,
        default=None,
        help="label map on the SWI grid (1 CMB, 2 iron); default with --subject: its *_dseg file",
    )
    _add_place_args(table)
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
    table.set_defaults(handler=_cmd_table)

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
    locations.set_defaults(handler=_cmd_locations)

    evaluate = commands.add_parser(
        "evaluate", help="lesion-wise sensitivity, precision, F1, FP per subject, FROC; JSON report and PNG"
    )
    evaluate.add_argument("--truth", type=Path, required=True, help="truth label file or folder")
    evaluate.add_argument(
        "--pred",
        type=Path,
        required=True,
        help="predicted label file or folder (its *_label-<class>_*probseg files give the FROC curve)",
    )
    _add_match_args(evaluate)
    evaluate.add_argument("--out", type=Path, default=None, help="report.json (and report.png beside it)")
    evaluate.add_argument(
        "--overwrite", action="store_true", help="replace a report at --out (and its .png) that deepmir did not write"
    )
    evaluate.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="also score predictions whose output set is marked incomplete (an interrupted run)",
    )
    evaluate.set_defaults(handler=_cmd_evaluate)

    agreement = commands.add_parser(
        "agreement", help="two raters' label maps: lesion-wise matches, kappa, ICC, table of disagreements"
    )
    agreement.add_argument("--a", type=Path, required=True, help="rater A: label file or folder of subjects")
    agreement.add_argument("--b", type=Path, required=True, help="rater B: label file or folder of subjects")
    _add_match_args(agreement)
    agreement.add_argument(
        "--out", type=Path, required=True, help="output folder: agreement.json and disagreements.tsv"
    )
    agreement.add_argument(
        "--overwrite", action="store_true", help="replace agreement files at --out that deepmir did not write"
    )
    agreement.set_defaults(handler=_cmd_agreement)
    consensus = commands.add_parser(
        "consensus",
        help="export the consensus reads of an agreement's disagreements (made in Label lesions): consensus tables "
        "and each consensus map's agreement with each rater",
    )
    consensus.add_argument("--disagreements", type=Path, required=True, help="disagreements.tsv of deepmir agreement")
    consensus.set_defaults(handler=_cmd_consensus)

    cohort = commands.add_parser("cohort", help="predict and measure every subject of a BIDS dataset with Dask")
    cohort.add_argument("bids_root", type=Path)
    cohort.add_argument("--out", type=Path, required=True, help="derivatives folder")
    _add_model_args(cohort)
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
    cohort.set_defaults(handler=_cmd_cohort)
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
    _add_model_args(longitudinal)
    longitudinal.add_argument("--overwrite", action="store_true", help="replace this participant's earlier outputs")
    longitudinal.set_defaults(handler=_cmd_longitudinal)
    demo = commands.add_parser("demo", help="the shipped model on a synthetic subject, ending in a lesion table")
    demo.add_argument("--out", type=Path, default=Path("demo-output"), help="output folder (default demo-output)")
    demo.add_argument("--seed", type=int, default=2026, help="seed of the synthetic subject")
    demo.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    demo.set_defaults(handler=_cmd_demo)
    return parser


def _cmd_demo(args: argparse.Namespace) -> int:
    import pandas as pd

    from .demo import run_demo

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


def _cmd_import(args: argparse.Namespace) -> int:
    from .io.dicom import import_dicom

    report = import_dicom(
        args.dicom_dir,
        args.out,
        subject=args.subject,
        session="" if args.no_session else args.session,
        keep_dates=args.keep_dates,
    )
    for line in report.lines():
        print(line, file=sys.stdout if line.startswith("imported") else sys.stderr)
    print(report.summary())
    return 0 if report.imported else 1


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
        print(
            f"  {modality.upper():4s} {_source_of(subject, modality)}  brain 1st..99th percentile "
            f"{low:.4g}..{high:.4g}{unit}"
        )
    if subject.qsm_units:
        print(f"  QSM units: {subject.qsm_units} ({subject.qsm_units_source}; reported in ppb)")
    if subject.scan:
        scan = subject.scan
        stated = [
            f"echo time {scan['echo_time_s'] * 1e3:g} ms" if "echo_time_s" in scan else "",
            f"field strength {scan['field_strength_t']:g} T" if "field_strength_t" in scan else "",
        ]
        print(f"  scan (from the BIDS sidecar): {', '.join(s for s in stated if s)}")
    print(f"  brain mask: {int(subject.mask.sum())} voxels")
    for alignment in subject.alignments.values():
        print(f"  alignment: {alignment.describe()}")
    for warning in subject.warnings:
        print(f"  warning: {warning}")
    return 0


def _source_of(subject, modality: str) -> str:
    """The file a modality was read from, or what an SWI was made from."""
    if modality in subject.paths:
        return str(subject.paths[modality])
    return f"made from {subject.paths['magnitude']} and {subject.paths['phase'].name}"


def _cmd_synth(args: argparse.Namespace) -> int:
    from functools import partial

    from .phantom import Acquisition, World, generate_cohort
    from .phantom.generate import check_subject_folders

    fixed = {
        key: value
        for key, value in (
            ("vein_density", args.vein_density),
            ("inversion", args.inversion),
            ("head_shape", args.head_shape),
            ("qsm_erosion_mm", args.qsm_erosion),
            ("lesion_burden", "none" if args.lesion_free else args.lesion_burden),
        )
        if value is not None
    }
    world = partial(World.randomized, **fixed) if args.world == "wide" else World(**fixed)
    acquisition = Acquisition(
        shape=tuple(args.shape),
        voxel_mm=tuple(args.voxel_size),
        te_ms=args.te,
        snr=args.snr,
        b0_direction=tuple(args.b0),
        qsm_units=args.qsm_units,
        t2_voxel_mm=None if args.t2_voxel_size is None else tuple(args.t2_voxel_size),
        oblique_deg=args.oblique,
        field_t=args.field_strength,
    )
    check_subject_folders(args.out_dir, args.subjects, overwrite=args.overwrite)  # before the work starts
    if args.sessions == 2:
        return _synth_pairs(args, acquisition, world)
    with progress_bar("synth", total=args.subjects, unit="subject") as bar:
        folders = generate_cohort(
            args.out_dir,
            args.subjects,
            args.seed,
            acquisition,
            randomize=args.randomize,
            progress=lambda done, total: bar.update(1),
            world=world,
            overwrite=args.overwrite,
            **({} if args.fine_voxel is None else {"fine_voxel_mm": tuple(args.fine_voxel)}),
        )
    print(f"{len(folders)} synthetic subject{'s' if len(folders) != 1 else ''} -> {args.out_dir}")
    return 0


def _synth_pairs(args: argparse.Namespace, acquisition, world) -> int:
    from .io import InputError
    from .phantom.sessions import generate_pairs

    if args.randomize:
        raise InputError(args.out_dir, "--randomize is not available with --sessions 2 (one acquisition for both)")
    with progress_bar("synth", total=args.subjects, unit="pair") as bar:
        folders = generate_pairs(
            args.out_dir,
            args.subjects,
            args.seed,
            acquisition,
            progress=lambda done, total: bar.update(1),
            world=world,
            max_rotation_deg=args.max_rotation,
            max_shift_mm=args.max_shift,
            **({} if args.fine_voxel is None else {"fine_voxel_mm": tuple(args.fine_voxel)}),
        )
    print(f"{len(folders)} synthetic pair{'s' if len(folders) != 1 else ''} (ses-1, ses-2) -> {args.out_dir}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from .io.outputs import OutputSet, check_can_write
    from .model.registry import choose_model
    from .pipeline import detect, write_detection

    subject = _load_subject_from_args(args)
    outputs = OutputSet(args.out, subject.name, probabilities=args.save_probabilities)
    check_can_write(outputs, overwrite=args.overwrite)  # before the work, not after it
    choice = choose_model(subject.available, args.model)
    locations, regions = _subject_places(args, subject)
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
        from .lesions.rules import rejections_summary

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


def _training_config(args: argparse.Namespace, **extra):
    from .training.common import TrainingConfig

    return TrainingConfig(
        out=args.out,
        name=args.name,
        data=list(args.data),
        steps=args.steps,
        lr=args.lr,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        val_share=args.val_share,
        eval_every=args.eval_every,
        patience=args.patience,
        max_minutes=args.max_minutes,
        seed=args.seed,
        device=args.device,
        bf16=args.bf16,
        augment=args.augment,
        resume=args.resume,
        overwrite=args.overwrite,
        data_workers=args.data_workers,
        registration=args.registration,
        command="deepmir " + " ".join(sys.argv[1:]),
        **extra,
    )


def _run_training(config, title: str) -> int:
    from .training.trainer import train

    with progress_bar(title, total=config.steps, unit="step") as bar:

        def progress(report):
            bar.update(report.step - bar.n)
            if report.loss is not None:
                bar.set_postfix(loss=f"{report.loss:.3f}", best_f1=f"{max(report.best_score or 0, 0):.3f}")
            if report.metrics is not None:
                scores = " ".join(f"{n} F1 {report.metrics[n]['f1']:.3f}" for n in ("cmb", "iron"))
                bar.write(
                    f"step {report.step}: validation {scores}" + (" (saved)" if report.saved else ""), file=sys.stderr
                )
            bar.refresh()

        result = train(config, progress)
    columns = ("base", "tuned") if getattr(result.card, "parent", None) else ("trained",)
    if result.best_metrics:
        print(f"validation ({len(result.card.training['validation_subjects'])} subjects), lesion-wise:")
        print(f"{'class':6s} {'model':8s} {'sens':>6s} {'prec':>6s} {'F1':>6s} {'FP/subj':>8s}")
        for name in ("cmb", "iron"):
            for column, metrics in zip(
                columns, (result.base_metrics, result.best_metrics)[-len(columns) :], strict=True
            ):
                m = metrics[name]
                print(
                    f"{name:6s} {column:8s} {m['sensitivity']:6.3f} {m['precision']:6.3f} {m['f1']:6.3f} "
                    f"{m['fp_per_subject']:8.2f}"
                )
    print(f"{title}: {result.steps_run} steps, best at step {result.best_step} -> {result.model_path}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    config = _training_config(
        args,
        base_filters=args.base_filters,
        depth=args.depth,
        context_slices=args.context_slices,
        modalities=args.modalities and tuple(args.modalities),
        spacing_mm=None if args.spacing is None else tuple(args.spacing),
    )
    return _run_training(config, "deepmir train")


def _cmd_finetune(args: argparse.Namespace) -> int:
    from .model.registry import resolve_model

    config = _training_config(
        args,
        base=resolve_model(args.base),
        modalities=args.modalities and tuple(args.modalities),
        verifier_steps=args.verifier_steps,
    )
    return _run_training(config, "deepmir finetune")


def _cmd_train_verifier(args: argparse.Namespace) -> int:
    from .model.files import read_card
    from .model.registry import resolve_model
    from .training.common import TrainingConfig
    from .training.verifier import iter_train_verifier

    config = TrainingConfig(
        out=args.out,
        data=list(args.data),
        base=resolve_model(args.base),
        steps=args.steps,
        lr=args.lr,
        val_share=args.val_share,
        seed=args.seed,
        device=args.device,
        bf16=args.bf16,
        overwrite=args.overwrite,
        registration=args.registration,
        command="deepmir " + " ".join(sys.argv[1:]),
    )
    with progress_bar("deepmir train-verifier", total=config.steps, unit="step") as bar:

        def progress(report):
            bar.update(report.step - bar.n)
            if report.loss is not None:
                bar.set_postfix(loss=f"{report.loss:.3f}")

        run_to_end(iter_train_verifier(config, examples_cache=args.examples_cache), progress)
    card = read_card(config.out)
    record, metrics = card.training["verifier"], card.metrics["verifier"]
    print(f"validation ({len(record['validation_subjects'])} subjects), lesion-wise:")
    print(f"{'class':6s} {'model':8s} {'sens':>6s} {'prec':>6s} {'F1':>6s} {'FP/subj':>8s}")
    for name in ("cmb", "iron"):
        for column in ("before", "after"):
            m = metrics[f"validation_{column}"][name]
            print(
                f"{name:6s} {column:8s} {m['sensitivity']:6.3f} {m['precision']:6.3f} {m['f1']:6.3f} "
                f"{m['fp_per_subject']:8.2f}"
            )
    verdict = (
        "kept" if record["kept"] else "not kept (no better than the base on validation; the base's behaviour stays)"
    )
    print(f"deepmir train-verifier: {record['steps']} steps, verifier {verdict} -> {config.out}")
    return 0


def _subject_label_map(args: argparse.Namespace, subject, given: Path | None, kind: str):
    """A label-like map (``labels``, ``locations`` or ``regions``) on the subject's SWI grid: the file given,
    else the subject folder's own file, else None. A map on another grid is an error naming both files."""
    from .io import Volume
    from .io.bids import find_subject_files
    from .lesions.components import check_same_grid, load_label_map, load_location_map, load_region_map

    if given is None and args.subject is not None:
        given = find_subject_files(args.subject).get(kind)
    if given is None:
        return None
    loader = {"labels": load_label_map, "locations": load_location_map, "regions": load_region_map}[kind]
    volume = loader(given)
    check_same_grid(Volume(subject.swi, subject.affine, subject.paths.get("swi")), volume, what=f"{kind} map")
    return volume.data


def _subject_places(args: argparse.Namespace, subject) -> tuple:
    """The subject's (location map, region map) on its SWI grid, each None when absent."""
    return (
        _subject_label_map(args, subject, args.locations, "locations"),
        _subject_label_map(args, subject, args.regions, "regions"),
    )


def _cmd_candidates(args: argparse.Namespace) -> int:
    from .io.derivatives import write_table_with_sidecar
    from .lesions.candidates import find_candidates, table_descriptions
    from .lesions.components import locations_from_regions

    _check_tables([(args.out, table_descriptions())], args)
    subject = _load_subject_from_args(args)
    locations, regions = _subject_places(args, subject)
    if locations is None and regions is not None:
        locations = locations_from_regions(regions)
    probabilities = None
    if args.model is not None:
        from .inference import predict_subject

        probabilities = predict_subject(subject, model=args.model, return_probabilities=True).probabilities
    print(f"deepmir candidates: searching {subject.name}", file=sys.stderr)
    table = find_candidates(subject, probabilities=probabilities, locations=locations, max_candidates=args.max)
    write_table_with_sidecar(args.out, table, table_descriptions())
    counts = table["suggested_class"].value_counts().to_dict()
    summary = ", ".join(f"{counts.get(name, 0)} {name}" for name in ("cmb", "iron", "reject"))
    print(f"{subject.name}: {len(table)} candidates ({summary} suggested) -> {args.out}")
    return 0


def _check_tables(tables: list[tuple], args: argparse.Namespace) -> None:
    """Before any work: each table (CSV/TSV) of ``tables`` ((path or None, column descriptions) pairs) and its
    JSON sidecar may be written (docs/data-safety.md): files there are replaced only when they are tables of
    ours, or with --overwrite; no output is an input, no two outputs are one file."""
    from .io import InputError
    from .io.destinations import check_destinations, our_table

    tests, files = {}, []
    for path, descriptions in (pair for pair in tables if pair[0] is not None):
        if path.suffix.lower() not in (".csv", ".tsv"):
            raise InputError(path, "table files must end in .csv or .tsv")
        files += [path, path.with_suffix(".json")]
        tests[path] = tests[path.with_suffix(".json")] = our_table(descriptions)
    inputs = [getattr(args, name, None) for name in ("swi", "qsm", "t2", "mask", "labels", "locations", "regions")]
    check_destinations(files, overwrite=args.overwrite, ours=lambda path: tests[path](path), inputs=inputs)


def _cmd_table(args: argparse.Namespace) -> int:
    from .io import InputError
    from .io.derivatives import write_table_with_sidecar
    from .lesions.measure import COLUMNS, measure_lesions
    from .lesions.summary import SUMMARY_COLUMNS, summary_table

    _check_tables([(args.out, COLUMNS), (args.summary, SUMMARY_COLUMNS)], args)
    subject = _load_subject_from_args(args)
    labels = _subject_label_map(args, subject, args.labels, "labels")
    if labels is None:
        raise InputError(
            args.subject or args.swi, "no label map: give --labels FILE (or a subject folder with *_dseg.nii.gz)"
        )
    locations, regions = _subject_places(args, subject)
    table = measure_lesions(labels, subject, locations=locations, regions=regions)
    write_table_with_sidecar(args.out, table, COLUMNS)
    summary = summary_table({subject.name: table})
    row = summary.iloc[0]
    volumes = ", ".join(f"{row['n_' + n]} {n} ({row[n + '_volume_mm3']:.1f} mm3)" for n in ("cmb", "iron"))
    print(f"{subject.name}: {len(table)} lesions: {volumes} -> {args.out}")
    if args.summary is not None:
        write_table_with_sidecar(args.summary, summary, SUMMARY_COLUMNS)
        print(f"{subject.name}: CMB burden {row['cmb_burden']}, pattern {row['cmb_pattern']} -> {args.summary}")
    return 0


def _cmd_locations(args: argparse.Namespace) -> int:
    from .io import InputError
    from .io.bids import find_subject_files, names_read, subject_id
    from .io.region_maps import write_region_maps

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


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .io.derivatives import write_json
    from .io.destinations import check_destinations, generated_by, generated_by_us
    from .lesions.evaluate import evaluate
    from .lesions.report_figure import save_report_figure

    _check_match_args(args)
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
    for name in ("cmb", "iron"):
        r = report[name]
        print(
            f"{name:6s} {r['n_truth']:6d} {r['n_truth_found']:6d} {r['n_pred']:6d} {r['n_pred_true']:6d} "
            f"{r['sensitivity']:6.3f} {r['precision']:6.3f} {r['f1']:6.3f} {r['fp_per_subject']:8.2f}"
        )
    confusion = report["confusion"]
    print(f"CMB predicted as iron: {confusion['cmb']['iron']}; iron predicted as CMB: {confusion['iron']['cmb']}")
    destination = ""
    if args.out is not None:
        write_json(args.out, {**report, "GeneratedBy": generated_by()})
        figure = save_report_figure(report, args.out.with_suffix(".png"))
        destination = f" -> {args.out}, {figure}"
    print(f"evaluated {report['n_subjects']} subject(s), matching {args.match}{destination}")
    return 0


def _cmd_consensus(args: argparse.Namespace) -> int:
    from .consensus import agreement_text, consensus_root, export_consensus_reads

    for subject, report in export_consensus_reads(args.disagreements):
        undecided = f" ({report['undecided']} disagreements undecided)" if report["undecided"] else ""
        print(f"{subject}{undecided}:\n" + agreement_text(report))
    print(f"-> {consensus_root(args.disagreements)}")
    return 0


def _cmd_agreement(args: argparse.Namespace) -> int:
    from .lesions.agreement import agreement, check_agreement_outputs, write_agreement

    _check_match_args(args)
    check_agreement_outputs(args.out, overwrite=args.overwrite, inputs=(args.a, args.b))
    result = agreement(args.a, args.b, rule=args.match, max_distance_mm=args.max_distance_mm, progress=True)
    for side in ("a", "b"):
        if result.report[f"only_{side}"]:
            print(f"warning: only in --{side}: {', '.join(result.report[f'only_{side}'])}", file=sys.stderr)
    report_path, disagreements_path = write_agreement(result, args.out, overwrite=args.overwrite)
    for name in ("cmb", "iron"):
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
    import math

    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def _cmd_cohort(args: argparse.Namespace) -> int:
    from .cohort import run_cohort, scheduler_security

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
    from .longitudinal.cohort import compare_cohort_sessions

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


def _cmd_longitudinal(args: argparse.Namespace) -> int:
    from .io.derivatives import read_table
    from .longitudinal.run import run_comparison

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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``deepmir`` console script."""
    from .io import InputError

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except InputError as error:
        print(f"deepmir {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, a folder turned read-only half-way: one line, not a traceback
        where = f"{error.filename}: " if error.filename else ""
        print(f"deepmir {args.command}: error: {where}{error.strerror or error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"deepmir {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
