"""BIDS JSON sidecars: the acquisition (echo time, field strength) and QSM units stated beside a NIfTI file."""

from pathlib import Path

from .errors import InputError
from .jsonfile import read_json
from .nifti import NIFTI_SUFFIXES

#: How the QSM units a sidecar's ``Units`` field may state map to ours (lower case, spaces removed).
_UNIT_WORDS = {"ppm": "ppm", "ppb": "ppb", "si": "si", "1": "si", "dimensionless": "si", "ppm*1e-6": "si"}


def sidecar_path(nifti: str | Path) -> Path:
    """The JSON file beside a NIfTI file: ``sub-X_swi.nii.gz`` -> ``sub-X_swi.json``."""
    nifti = Path(nifti)
    name = nifti.name
    stem = next((name[: -len(s)] for s in NIFTI_SUFFIXES if name.lower().endswith(s)), nifti.stem)
    return nifti.with_name(stem + ".json")


def read_sidecar(nifti: str | Path) -> dict:
    """The sidecar of ``nifti`` as a dict ({} when there is none); InputError naming it when it is not JSON."""
    path = sidecar_path(nifti)
    if not path.is_file():
        return {}
    try:
        content = read_json(path)
    except InputError as error:
        raise InputError(path, f"unreadable JSON sidecar ({error.problem})") from None
    if not isinstance(content, dict):
        raise InputError(path, "a BIDS sidecar must hold a JSON object")
    return content


def _number(value) -> float | None:
    if isinstance(value, list) and value:  # multi-echo: the echo times of each echo; the first is reported
        value = value[0]
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def scan_parameters(sidecar: dict) -> dict[str, float]:
    """``echo_time_s`` and ``field_strength_t`` where the sidecar states them (BIDS EchoTime, MagneticFieldStrength)."""
    found = {
        "echo_time_s": _number(sidecar.get("EchoTime")),
        "field_strength_t": _number(sidecar.get("MagneticFieldStrength")),
    }
    return {key: value for key, value in found.items() if value is not None}


def stated_qsm_units(sidecar: dict, path: str | Path | None = None) -> str | None:
    """The QSM units the sidecar's ``Units`` field states (``ppm``, ``ppb``, ``si``), None when it states none.

    Units it states that are not QSM units raise InputError naming the file."""
    value = sidecar.get("Units")
    if value is None:
        return None
    units = _UNIT_WORDS.get(str(value).lower().replace(" ", ""))
    if units is None:
        raise InputError(path, f"its sidecar states Units {value!r}; QSM units must be ppm, ppb or SI (1)")
    return units
