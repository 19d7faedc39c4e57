"""The role of a converted DICOM series (T2-weighted, the scanner's SWI, gradient-echo magnitude or phase), read
from its BIDS sidecar: Modality, ImageType and ScanningSequence decide; words in the description only pick
between what those allow.

Why not words alone: Siemens' stock SWI protocols are named ``t2_swi_tra_...`` but are gradient echoes
(ScanningSequence GR), and a CT may be described "t2". A gradient echo or an echo-planar series is never
T2-weighted (its contrast is T2*), and only MR series are imported.
"""

import re

_PROJECTION_WORDS = re.compile(r"(^|[^a-z])(mip|minip|mnip)([^a-z]|$)")
_T2_WORDS = re.compile(r"t2(?!\s*\*|s\b|star|_?map)")
#: Echo time from which a spin echo is T2-weighted (seconds).
T2_ECHO_TIME_S = 0.06


def _sequence_codes(sidecar: dict) -> set[str]:
    """ScanningSequence as its codes (SE, GR, IR, EP, RM), however dcm2niix joined them."""
    value = sidecar.get("ScanningSequence", "")
    text = " ".join(value) if isinstance(value, list) else str(value)
    return {code for code in re.split(r"[\\_\s,]+", text.upper()) if code}


def series_role(sidecar: dict) -> tuple[str | None, str]:
    """The role of a series from its BIDS sidecar (``t2``, ``swi``, ``magnitude``, ``phase``), or None and why.

    Rules, in order: a Modality other than MR is left out; localizers and projections (minimum/maximum
    intensity) are left out; a phase image (``P``/``PHASE`` in ImageType) is ``phase``; ``SWI`` in ImageType is
    ``swi``; inversion recovery (FLAIR) is left out; a gradient echo (GR) or echo-planar (EP) series is never
    T2: an original magnitude is ``magnitude`` (whatever its name, e.g. ``t2_swi_tra_p2``), a derived image
    described as SWI is ``swi``, others are left out; a spin echo (SE) with TE >= 60 ms, or described "T2"
    (not T2*), is ``t2``. Anything else is left out."""
    modality = str(sidecar.get("Modality", "MR")).upper()
    image_type = {str(v).upper() for v in sidecar.get("ImageType", [])}
    words = f"{sidecar.get('SeriesDescription', '')} {sidecar.get('ProtocolName', '')}".lower()
    sequence = _sequence_codes(sidecar)
    echo_time = sidecar.get("EchoTime")
    long_echo = isinstance(echo_time, (int, float)) and echo_time >= T2_ECHO_TIME_S
    if modality != "MR":
        return None, f"Modality {modality}: only MR series are imported"
    if "LOCALIZER" in image_type or re.search(r"scout|localizer|survey", words):
        return None, "a localizer"
    if image_type & {"MIP", "MNIP", "MINIP"} or _PROJECTION_WORDS.search(words):
        return None, "a projection (minimum/maximum intensity), not an image"
    if image_type & {"P", "PHASE"}:
        return "phase", "phase image"
    if "SWI" in image_type:
        return "swi", "SWI"
    if "flair" in words or "IR" in sequence:
        return None, "an inversion-recovery (FLAIR) series, not T2-weighted"
    if sequence & {"GR", "EP"}:
        if "GR" in sequence and "ORIGINAL" in image_type and image_type & {"M", "MAGNITUDE"}:
            return "magnitude", "gradient-echo magnitude"
        if "swi" in words:
            return "swi", "SWI"
        kind = "/".join(sorted(sequence & {"GR", "EP"}))
        return None, f"a {kind} series, neither SWI nor an original magnitude or phase (never T2-weighted)"
    if "SE" in sequence and (long_echo or _T2_WORDS.search(words)):
        return "t2", "T2-weighted"
    if not sequence and long_echo and _T2_WORDS.search(words):
        return "t2", "T2-weighted (described T2, TE >= 60 ms; no ScanningSequence)"
    return None, "not a T2-weighted, SWI or gradient-echo magnitude/phase series"
