"""Commands that bring data in or describe it: ``deepmir import``, ``synth`` and ``info``."""

import argparse
import sys
from functools import partial
from pathlib import Path

import numpy as np

from ..io import InputError
from ..io.dicom import import_dicom
from ..phantom import Acquisition, World, generate_cohort
from ..phantom.generate import check_subject_folders
from ..phantom.sessions import generate_pairs
from ..progress import progress_bar
from .options import add_subject_args, load_subject_from_args


def add_info(commands) -> None:
    info = commands.add_parser("info", help="load a subject and describe it (grid, units, warnings)")
    add_subject_args(info)
    info.set_defaults(handler=_info)


def add_import(commands) -> None:
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
    dicom.set_defaults(handler=_import)


def add_synth(commands) -> None:
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
    _add_world_args(synth)
    synth.set_defaults(handler=_synth)


def _add_world_args(synth: argparse.ArgumentParser) -> None:
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


def _import(args: argparse.Namespace) -> int:
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


def _info(args: argparse.Namespace) -> int:
    subject = load_subject_from_args(args)
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


def _synth(args: argparse.Namespace) -> int:
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
