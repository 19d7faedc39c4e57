"""Option groups more than one command family shares, and reading the subject they name."""

import argparse
from pathlib import Path

from ..io import InputError, Volume, load_subject, load_subject_dir
from ..io.bids import find_subject_files
from ..io.mask import load_brain_mask, use_brain_mask
from ..lesions.components import check_same_grid, load_label_map, load_location_map, load_region_map
from ..lesions.matching import distance_problem


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model folder, .safetensors file or shipped model name (default, swi-qsm, swi); default: the shipped "
        "model reading the most of the subject's inputs (SWI+QSM+T2, SWI+QSM or SWI)",
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")


def add_subject_args(parser: argparse.ArgumentParser) -> None:
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
    add_registration_arg(group)


def add_registration_arg(group) -> None:
    group.add_argument(
        "--registration",
        choices=("auto", "check", "off"),
        default="auto",
        help="check that T2/QSM are in register with the SWI and register them rigidly when not (auto, the "
        "default); only check and warn (check); trust the headers (off)",
    )


def add_place_args(parser: argparse.ArgumentParser) -> None:
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


def add_match_args(parser: argparse.ArgumentParser) -> None:
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


def check_match_args(args: argparse.Namespace) -> None:
    if args.match == "distance" and distance_problem(args.max_distance_mm):
        raise InputError(None, f"--match distance needs --max-distance-mm {distance_problem(args.max_distance_mm)}")
    if args.match != "distance" and args.max_distance_mm is not None:
        raise InputError(None, "--max-distance-mm goes with --match distance")


def load_subject_from_args(args: argparse.Namespace):
    """The subject of ``--subject`` or ``--swi/--qsm/--t2``, with the user's ``--mask`` when given
    (it replaces the estimated whole brain, :func:`.io.mask.use_brain_mask`)."""
    if args.subject is not None:
        if args.swi or args.qsm or args.t2:
            raise InputError(args.subject, "give either --subject or --swi/--qsm/--t2, not both")
        subject = load_subject_dir(args.subject, qsm_units=args.qsm_units, registration=args.registration)
    elif args.swi is None:
        raise InputError(None, "an SWI image is required: give --swi FILE or --subject DIR")
    else:
        subject = load_subject(args.swi, args.qsm, args.t2, qsm_units=args.qsm_units, registration=args.registration)
    if args.mask is not None:
        use_brain_mask(subject, load_brain_mask(args.mask, subject), args.mask)
    return subject


def subject_label_map(args: argparse.Namespace, subject, given: Path | None, kind: str):
    """A label-like map (``labels``, ``locations`` or ``regions``) on the subject's SWI grid: the file given,
    else the subject folder's own file, else None. A map on another grid is an error naming both files."""
    if given is None and args.subject is not None:
        given = find_subject_files(args.subject).get(kind)
    if given is None:
        return None
    loader = {"labels": load_label_map, "locations": load_location_map, "regions": load_region_map}[kind]
    volume = loader(given)
    check_same_grid(Volume(subject.swi, subject.affine, subject.paths.get("swi")), volume, what=f"{kind} map")
    return volume.data


def subject_places(args: argparse.Namespace, subject) -> tuple:
    """The subject's (location map, region map) on its SWI grid, each None when absent."""
    return (
        subject_label_map(args, subject, args.locations, "locations"),
        subject_label_map(args, subject, args.regions, "regions"),
    )
