"""``deepmir locations``: a FreeSurfer/SynthSeg segmentation file -> location and MARS region maps on the SWI grid.

Writes, in the output folder, ``<participant>_desc-locations_dseg.nii.gz`` (LOCATION_NAMES values),
``<participant>_desc-regions_dseg.nii.gz`` (REGION_NAMES codes, + RIGHT_OFFSET on the right), the region
map's lookup ``<participant>_desc-regions_dseg.tsv`` (index, name, hemisphere) and a JSON sidecar with the
sources and what the segmentation lacked. Files of these names are replaced only with ``overwrite``; a
segmentation that does not lie on the SWI's head, or whose label numbers are not whole, is refused.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..conventions import BIDS_SUFFIXES, LOCATION_NAMES, REGION_LOCATION, REGION_NAMES, RIGHT_OFFSET
from ..io.atomic import atomic_path
from ..io.derivatives import write_json
from ..io.destinations import check_destinations, generated_by
from ..io.errors import InputError
from ..io.mask import brain_mask, coverage
from ..io.nifti import Volume, load_volume, save_labels
from ..io.resample import resample_volume_to
from ..io.sidecar import sidecar_path
from .segmentation import DK_LOBES, STRUCTURES, known_cortex_labels, region_name, regions_from_segmentation


@dataclass(frozen=True)
class RegionFiles:
    """The files :func:`write_region_maps` writes for one participant in ``folder``."""

    folder: Path
    participant: str

    @property
    def locations(self) -> Path:
        return self.folder / f"{self.participant}_{BIDS_SUFFIXES['locations']}.nii.gz"

    @property
    def regions(self) -> Path:
        return self.folder / f"{self.participant}_{BIDS_SUFFIXES['regions']}.nii.gz"

    @property
    def lookup(self) -> Path:
        return self.folder / f"{self.participant}_{BIDS_SUFFIXES['regions']}.tsv"

    @property
    def sidecar(self) -> Path:
        return self.folder / f"{self.participant}_{BIDS_SUFFIXES['regions']}.json"

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.locations, self.regions, self.lookup, self.sidecar)


#: FreeSurfer labels that are known but carry no region (ventricles 3rd/4th, CSF, vessels, choroid plexus,
#: optic chiasm, unknown cortex...): taken as outside without a note.
KNOWN_WITHOUT_REGION = frozenset({14, 15, 24, 30, 31, 62, 63, 72, 80, 81, 82, 85, 1000, 2000, 3000, 4000})
#: Largest label number read: FreeSurfer's own go to 14175; larger ones would wrap in a 32-bit label map.
MAX_LABEL = 2**31 - 1
#: Share of the segmentation's labelled voxels (on the SWI grid) that must lie in the SWI's head (within
#: HEAD_MARGIN_MM), and share of the head that must lie near a labelled voxel (within HEAD_REACH_MM): a
#: segmentation of another head, or shifted by centimetres, fails one of them.
MIN_IN_HEAD, HEAD_MARGIN_MM = 0.9, 5.0
MIN_HEAD_COVERED, HEAD_REACH_MM = 0.7, 15.0


def _known(value: int) -> bool:
    return (
        value == 0
        or value in STRUCTURES
        or value in KNOWN_WITHOUT_REGION
        or (value % 1000 in DK_LOBES and value // 1000 in (1, 2))
        or 3000 <= value < 3100
        or 4000 <= value < 4100
    )


def load_segmentation(path: str | Path) -> Volume:
    """A FreeSurfer/SynthSeg label volume; an error naming the file if it is not one. Label numbers stored as
    floats must be whole numbers within 0..MAX_LABEL; numbers FreeSurfer's tables do not give a region are
    listed in ``warnings`` (taken as outside)."""
    volume = load_volume(path, dtype=np.float64, check_values=False)
    data = volume.data
    if not np.all(np.isfinite(data)) or np.any(data != np.round(data)):
        raise InputError(path, "not a segmentation: it has non-integer values")
    if data.min() < 0 or data.max() > MAX_LABEL:
        raise InputError(
            path, f"not a segmentation: label numbers {data.min():.0f}..{data.max():.0f} (FreeSurfer's are 0..14175)"
        )
    numbers, counts = np.unique(data.astype(np.int64), return_counts=True)
    values = set(numbers.tolist())
    if not {2, 41} & values and not known_cortex_labels(values):
        known = sorted(values & set(STRUCTURES))[:8]
        raise InputError(
            path,
            "no FreeSurfer/SynthSeg cerebral labels (2/41 white matter, 3/42 or 1000s/2000s cortex) found"
            + (f"; found {known}" if known else ""),
        )
    if not known_cortex_labels(values):
        raise InputError(
            path,
            "no cortex labels these rules know (3/42; Desikan-Killiany 1000s/2000s; Destrieux aparc.a2009s "
            "11100s/12100s or aparc.a2005s 1100s/2100s): without the cortex, white matter under it would read "
            "deep instead of lobar",
        )
    cortex = known_cortex_labels(values)
    unknown = [(int(v), int(n)) for v, n in zip(numbers, counts) if int(v) not in cortex and not _known(int(v))]
    if unknown:
        listed = ", ".join(f"{v} ({n} voxels)" for v, n in unknown[:8]) + (" ..." if len(unknown) > 8 else "")
        volume.warnings.append(f"{Path(path).name}: label numbers with no region, taken as outside: {listed}")
    volume.data = data.astype(np.int32)
    return volume


def check_in_head(segmentation: Volume, reference: Volume) -> None:
    """Refuse (InputError naming the segmentation) one that does not lie on the SWI's head: its labelled voxels
    outside the head, or the head far from any labelled voxel (:data:`MIN_IN_HEAD`, :data:`MIN_HEAD_COVERED`)."""
    labelled = (
        resample_volume_to(Volume((segmentation.data > 0).astype(np.float32), segmentation.affine), reference, order=0)
        > 0.5
    )
    head = brain_mask(reference.data)
    inside = coverage(head, labelled, reference.spacing, margin_mm=HEAD_MARGIN_MM) if labelled.any() else 0.0
    covered = coverage(labelled, head, reference.spacing, margin_mm=HEAD_REACH_MM) if labelled.any() else 0.0
    if inside < MIN_IN_HEAD or covered < MIN_HEAD_COVERED:
        raise InputError(
            segmentation.path,
            f"does not lie on the head of {reference.path}: {100 * inside:.0f}% of its labelled voxels in the head "
            f"(at least {100 * MIN_IN_HEAD:.0f}% needed), {100 * covered:.0f}% of the head near a label (at least "
            f"{100 * MIN_HEAD_COVERED:.0f}%); is it of this subject, with its own affine?",
        )


def region_lookup() -> pd.DataFrame:
    """The region map's lookup: index, name, hemisphere, and the MARS location category."""
    rows = [{"index": 0, "name": "outside or unknown", "hemisphere": "n/a", "location": LOCATION_NAMES[0]}]
    for code in [*REGION_NAMES, *(code + RIGHT_OFFSET for code in REGION_NAMES)]:
        name, hemisphere = region_name(code)
        location = LOCATION_NAMES[REGION_LOCATION[code % RIGHT_OFFSET]]
        rows.append({"index": code, "name": name, "hemisphere": hemisphere, "location": location})
    return pd.DataFrame(rows)


def write_region_maps(
    segmentation: str | Path, swi: str | Path, out: str | Path, *, participant: str, overwrite: bool = False
) -> tuple[RegionFiles, list[str]]:
    """Convert ``segmentation`` into location and region maps on the grid of ``swi``; returns the files and
    notes (what the segmentation lacked, see :func:`~napari_deepmir.regions.segmentation.regions_from_segmentation`)."""
    files = RegionFiles(Path(out), participant)
    check_destinations(files.files, overwrite=overwrite, inputs=[segmentation, swi, sidecar_path(swi)])
    reference = load_volume(swi, complex_to_magnitude=True)
    volume = load_segmentation(segmentation)
    check_in_head(volume, reference)
    maps = regions_from_segmentation(volume.data, volume.affine)
    on_swi = {
        name: resample_volume_to(Volume(data, volume.affine, volume.path), reference, order=0).astype(np.uint8)
        for name, data in (("regions", maps.regions), ("locations", maps.locations))
    }
    save_labels(files.regions, on_swi["regions"], reference.affine)
    save_labels(files.locations, on_swi["locations"], reference.affine)
    with atomic_path(files.lookup) as tmp:
        region_lookup().to_csv(tmp, sep="\t", index=False)
    write_json(
        files.sidecar,
        {
            "Description": "MARS regions (Gregoire et al., Neurology 2009) from a FreeSurfer/SynthSeg segmentation; "
            f"left = code, right = code + {RIGHT_OFFSET}; rules in docs/regions.md",
            "Sources": [str(Path(segmentation)), str(Path(swi))],
            "Notes": [*volume.warnings, *maps.notes],
            "GeneratedBy": generated_by(),
        },
    )
    return files, [*volume.warnings, *maps.notes]
