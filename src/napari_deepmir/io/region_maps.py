"""``deepmir locations``: a FreeSurfer/SynthSeg segmentation file -> location and MARS region maps on the SWI grid.

Writes, in the output folder, ``<participant>_desc-locations_dseg.nii.gz`` (LOCATION_NAMES values),
``<participant>_desc-regions_dseg.nii.gz`` (REGION_NAMES codes, + RIGHT_OFFSET on the right), the region
map's lookup ``<participant>_desc-regions_dseg.tsv`` (index, name, hemisphere) and a JSON sidecar with the
sources and what the segmentation lacked. Files of these names are replaced only with ``overwrite``.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..conventions import BIDS_SUFFIXES, LOCATION_NAMES, REGION_NAMES, RIGHT_OFFSET
from .atomic import atomic_path
from .derivatives import write_json
from .errors import InputError
from .nifti import Volume, load_volume, save_labels
from .outputs import ensure_writable_folder
from .resample import resample_volume_to


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


def load_segmentation(path: str | Path) -> Volume:
    """A FreeSurfer/SynthSeg label volume; an error naming the file if it is not one."""
    from ..regions import STRUCTURES, known_cortex_labels

    volume = load_volume(path, check_values=False)
    data = volume.data
    if not np.all(np.isfinite(data)) or np.any(data != np.round(data)):
        raise InputError(path, "not a segmentation: it has non-integer values")
    values = set(np.unique(data).astype(int).tolist())
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
    volume.data = data.astype(np.int32)
    return volume


def region_lookup() -> pd.DataFrame:
    """The region map's lookup: index, name, hemisphere, and the MARS location category."""
    from ..conventions import REGION_LOCATION
    from ..regions import region_name

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
    notes (what the segmentation lacked, see :func:`~napari_deepmir.regions.regions_from_segmentation`)."""
    from ..regions import regions_from_segmentation

    files = RegionFiles(ensure_writable_folder(out), participant)
    existing = [p for p in files.files if p.exists()]
    if existing and not overwrite:
        raise InputError(existing[0], "exists; pass --overwrite to replace it")
    reference = load_volume(swi, complex_to_magnitude=True)
    volume = load_segmentation(segmentation)
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
            "Notes": maps.notes,
        },
    )
    return files, maps.notes
