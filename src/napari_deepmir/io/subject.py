"""A participant's T2, SWI and QSM on one grid (the SWI grid), with their units and warnings."""

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..conventions import BIDS_SUFFIXES, MODALITIES
from .bids import find_subject_files, has_swi, names_read, subject_id
from .errors import InputError
from .mask import MIN_COVERAGE, brain_mask, coverage, whole_brain_mask
from .nifti import Volume, load_volume, voxel_sizes
from .qsm_units import QSM_UNITS, check_qsm_units, detect_qsm_units, to_ppb
from .registration import Alignment, align_to_reference
from .resample import resample_volume_to
from .sidecar import read_sidecar, scan_parameters, stated_qsm_units
from .swi import gre_signal, phase_range, phase_sign_for, swi_from_signal, vein_check


@dataclass
class Subject:
    """Co-registered modalities on the SWI grid.

    ``qsm`` is always in ppb. Missing modalities are None. ``affine`` is the SWI voxel-to-world affine.
    ``alignments``: how T2 and QSM lined up with the SWI and whether they were registered (see
    :mod:`.registration`).
    ``qsm_units`` are the QSM file's units and ``qsm_units_source`` how they were known (``given``,
    ``sidecar`` or ``detected``); ``scan`` holds the SWI's echo time and field strength where its BIDS
    sidecar states them (``echo_time_s``, ``field_strength_t``). ``brain_mask_source`` names the user's brain
    mask that replaced the estimated one (a file or a layer, see :func:`.mask.use_brain_mask`); None: estimated.
    """

    swi: np.ndarray
    affine: np.ndarray
    qsm: np.ndarray | None = None
    t2: np.ndarray | None = None
    name: str = "subject"
    paths: dict[str, Path] = field(default_factory=dict)
    qsm_units: str | None = None
    qsm_units_source: str | None = None
    scan: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    alignments: dict[str, Alignment] = field(default_factory=dict)
    brain_mask_source: str | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.swi.shape)

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size in mm along each array axis."""
        return voxel_sizes(self.affine)

    @property
    def available(self) -> tuple[str, ...]:
        """Modalities present, in canonical order."""
        return tuple(m for m in MODALITIES if getattr(self, m) is not None)

    def modality(self, name: str) -> np.ndarray:
        """The array of modality ``name``; a clear error if the subject lacks it."""
        if name not in MODALITIES:
            raise ValueError(f"unknown modality {name!r}; expected one of {', '.join(MODALITIES)}")
        data = getattr(self, name)
        if data is None:
            raise InputError(self.paths.get("swi"), f"subject {self.name} has no {name.upper()} image")
        return data

    @cached_property
    def mask(self) -> np.ndarray:
        """Brain mask on the SWI grid (estimated, see :func:`brain_mask`)."""
        return brain_mask(self.swi, self.qsm)

    @cached_property
    def whole_brain(self) -> np.ndarray:
        """The brain including the cortex an eroded QSM leaves out (see :func:`whole_brain_mask`)."""
        return whole_brain_mask(self.swi, self.qsm, self.spacing)


def load_subject(
    swi: str | Path | None,
    qsm: str | Path | None = None,
    t2: str | Path | None = None,
    *,
    magnitude: str | Path | None = None,
    phase: str | Path | None = None,
    phase_sign: int | None = None,
    qsm_units: str = "auto",
    name: str | None = None,
    registration: str = "auto",
) -> Subject:
    """Load SWI, QSM and T2 files; resample QSM and T2 onto the SWI grid in world space.

    Without an SWI file, the SWI is made from a gradient-echo ``magnitude`` and ``phase`` (see
    :func:`made_swi`; ``phase_sign`` is the scanner's handedness, None: from the sidecar's Manufacturer), and a
    warning says so.
    ``qsm_units``: ``auto`` (the QSM sidecar's ``Units`` if stated, else detected, see :func:`detect_qsm_units`),
    ``ppm``, ``ppb`` or ``si``. The SWI's (else the magnitude's) sidecar gives ``Subject.scan``.
    ``registration``: ``auto``, ``check`` or ``off`` (see :func:`assemble_subject`).
    NaNs are set to 0 and reported in ``Subject.warnings``; NaNs inside the brain are reported too.
    A complex SWI or T2 is read as its magnitude (with a warning); a complex QSM is refused.
    """
    if swi is None and (magnitude is None or phase is None):
        raise InputError(magnitude or phase, "an SWI image, or a gradient-echo magnitude and phase, is required")
    first = swi if swi is not None else magnitude
    stated = None if qsm is None else stated_qsm_units(read_sidecar(qsm), qsm)
    units = stated if qsm_units == "auto" and stated else qsm_units
    subject = assemble_subject(
        load_volume(swi, complex_to_magnitude=True) if swi is not None else made_swi(magnitude, phase, phase_sign),
        qsm=None if qsm is None else load_volume(qsm),
        t2=None if t2 is None else load_volume(t2, complex_to_magnitude=True),
        qsm_units=units,
        name=name or subject_id(first) or Path(first).name.split(".")[0],
        registration=registration,
    )
    if swi is None:
        subject.paths.update(magnitude=Path(magnitude), phase=Path(phase))
    if subject.qsm is not None and stated and units == stated:
        subject.qsm_units_source = "sidecar"
    elif stated and stated != units:
        subject.warnings.append(f"{qsm}: its sidecar states units {stated!r}; {units!r} was given and used")
    subject.scan = scan_parameters(read_sidecar(first))
    return subject


def made_swi(magnitude: str | Path, phase: str | Path, phase_sign: int | None = None) -> Volume:
    """An SWI made from a gradient-echo magnitude and phase on one grid (:func:`..swi.swi_from_signal`), on the
    magnitude's grid; its warnings say it was made, how, and whether the phase sign passed the vein check.

    The phase's range (:func:`..swi.phase_range`) and, when ``phase_sign`` is None, its sign
    (:func:`..swi.phase_sign_for`) come from the phase's sidecar (else the magnitude's) Manufacturer."""
    magnitude_volume = load_volume(magnitude, complex_to_magnitude=True)
    phase_volume = load_volume(phase, check_values=False)
    if phase_volume.data.shape != magnitude_volume.data.shape or not np.allclose(
        phase_volume.affine, magnitude_volume.affine, atol=1e-3
    ):
        raise InputError(phase, f"the phase must be on the grid of the magnitude {Path(magnitude).name}")
    manufacturer = str(read_sidecar(phase).get("Manufacturer") or read_sidecar(magnitude).get("Manufacturer") or "")
    try:
        stored = phase_range(phase_volume.data, manufacturer)
        signal = gre_signal(magnitude_volume.data, phase_volume.data, manufacturer)
    except ValueError as error:
        raise InputError(phase, str(error)) from None
    if phase_sign is None:
        phase_sign, known = phase_sign_for(manufacturer)
        source = f"for {manufacturer}" if known else f"the default: manufacturer {manufacturer or 'not stated'}"
    else:
        source = "as given"
    handedness = "right-handed: paramagnetic = negative phase" if phase_sign == 1 else "left-handed"
    made = (
        f"no SWI file: the SWI was made from {Path(magnitude).name} and {Path(phase).name} "
        f"(homodyne high-pass, phase mask^4, phase stored as {stored.name}, phase sign {phase_sign:+d} {source}, "
        f"{handedness})"
    )
    suspicious = vein_check(signal, phase_sign)
    notes = [made] if suspicious is None else [made, f"{phase}: {suspicious}"]
    data = swi_from_signal(signal, phase_sign)
    return Volume(data, magnitude_volume.affine, None, [*magnitude_volume.warnings, *phase_volume.warnings, *notes])


def assemble_subject(
    swi: Volume,
    *,
    qsm: Volume | None = None,
    t2: Volume | None = None,
    qsm_units: str = "auto",
    name: str = "subject",
    registration: str = "auto",
) -> Subject:
    """Put volumes (each on its own grid) together on the SWI grid; QSM converted to ppb.

    ``registration``: ``auto`` checks that T2 and QSM are in register with the SWI and registers them rigidly
    when they are not (with a warning); ``check`` only warns; ``off`` trusts the headers (see
    :mod:`.registration`). The outcome is in ``Subject.alignments``.

    Raises :class:`InputError` if QSM or T2 data cover less than :data:`MIN_COVERAGE` of the head seen on SWI,
    or if the QSM values are implausible in their units (given or detected, see :func:`check_qsm_units`).
    """
    if qsm_units not in ("auto", *QSM_UNITS):
        raise ValueError(f"qsm_units must be auto, {', '.join(QSM_UNITS)}, not {qsm_units!r}")
    head = None
    subject = Subject(swi=swi.data, affine=swi.affine, name=name, warnings=list(swi.warnings))
    if swi.path is not None:
        subject.paths["swi"] = Path(swi.path)
    invalid = [swi] if swi.invalid is not None else []
    for modality, volume in (("qsm", qsm), ("t2", t2)):
        if volume is None:
            continue
        if volume.invalid is not None:
            invalid.append(volume)
        data = resample_volume_to(volume, swi).astype(np.float32)
        head = brain_mask(swi.data) if head is None else head
        covered = coverage(data != 0, head, swi.spacing)
        if covered < MIN_COVERAGE:
            raise InputError(
                volume.path,
                f"its data cover {100 * covered:.0f}% of the head in {swi.path.name if swi.path else 'the SWI image'}; "
                f"at least {100 * MIN_COVERAGE:.0f}% needed (check that it is the same subject and its affine)",
            )
        volume, alignment = align_to_reference(modality, volume, swi, head, mode=registration)
        if alignment is not None:
            subject.alignments[modality] = alignment
            if alignment.registered:
                data = resample_volume_to(volume, swi).astype(np.float32)
            if alignment.registered or alignment.needs_registration:
                subject.warnings.append(alignment.describe())
        setattr(subject, modality, data)
        if volume.path is not None:
            subject.paths[modality] = Path(volume.path)
        subject.warnings.extend(volume.warnings)
    if subject.qsm is not None:
        units = detect_qsm_units(subject.qsm, subject.qsm != 0) if qsm_units == "auto" else qsm_units
        check_qsm_units(subject.qsm, units, qsm.path, subject.qsm != 0)
        subject.qsm = to_ppb(subject.qsm, units)
        subject.qsm_units = units
        subject.qsm_units_source = "detected" if qsm_units == "auto" else "given"
    for volume in invalid:
        _report_invalid_in_brain(subject, volume, swi)
    return subject


def _report_invalid_in_brain(subject: Subject, volume: Volume, reference: Volume) -> None:
    """Add a warning if NaN/inf voxels of ``volume`` fall inside the brain (they were set to 0)."""
    on_grid = resample_volume_to(
        Volume(volume.invalid.astype(np.uint8), volume.affine, volume.path), reference, order=0
    )
    n_inside = int((on_grid.astype(bool) & subject.mask).sum())
    if n_inside:
        subject.warnings.append(
            f"{volume.path}: {n_inside} NaN/infinite voxels inside the brain were set to 0; results there are "
            "unreliable"
        )


def load_subject_dir(
    folder: str | Path,
    *,
    qsm_units: str = "auto",
    require: tuple[str, ...] = ("swi",),
    phase_sign: int | None = None,
    registration: str = "auto",
    only: tuple[str, ...] = MODALITIES,
) -> Subject:
    """Load a subject from a folder of BIDS names (``sub-X_rec-swi_T2starw.nii.gz`` or ``sub-X_swi.nii.gz``,
    ``_Chimap``, ``_T2w``; in the folder or its ``anat/``, see :mod:`.bids`); ``only``
    these modalities are read (as if the others were missing).

    A folder without an SWI but with a gradient-echo magnitude and phase (``_part-mag_T2starw``,
    ``_part-phase_T2starw``) gets an SWI made from them (see :func:`load_subject`)."""
    files = {k: v for k, v in find_subject_files(folder).items() if k == "swi" or k in only or k not in MODALITIES}
    missing = [m for m in require if m not in files and not (m == "swi" and has_swi(files))]
    if missing:
        wanted = ", ".join(names_read(m) for m in missing)
        if "swi" in missing:
            wanted += f" or *_{BIDS_SUFFIXES['magnitude']} with *_{BIDS_SUFFIXES['phase']}"
        raise InputError(folder, f"no {'/'.join(m.upper() for m in missing)} file found (looked for {wanted})")
    made = "swi" not in files and has_swi(files)
    return load_subject(
        files.get("swi"),
        files.get("qsm"),
        files.get("t2"),
        magnitude=files.get("magnitude") if made else None,
        phase=files.get("phase") if made else None,
        phase_sign=phase_sign,
        qsm_units=qsm_units,
        name=subject_id(folder) or Path(folder).name,
        registration=registration,
    )
