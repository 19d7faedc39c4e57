"""Susceptibility-weighted imaging (SWI) from a gradient-echo signal, or from its magnitude and phase images.

Haacke's recipe (Haacke et al., AJNR 2009): high-pass the phase by homodyne filtering (divide the complex
image by a Hanning-windowed low-pass of itself, in-plane), turn the filtered phase into a mask that is
below 1 only on the paramagnetic side (``m = 1 - |phi| / pi`` there, 1 elsewhere), and multiply the
magnitude by ``m ** power`` (4 by default). Paramagnetic tissue (veins, microbleeds, iron) turns darker.

Which sign of phase is paramagnetic depends on the scanner (the "handedness"): ``phase_sign = 1``, the
default, is the right-handed convention, in which a paramagnetic source (a positive field offset) has
**negative** phase; ``phase_sign = -1`` is the left-handed one (positive phase is paramagnetic). A wrong
sign darkens calcifications and brightens nothing: check that veins turn dark. :func:`phase_sign_for` gives
the sign from the scanner's manufacturer, and :func:`vein_check` checks it on the data.

Phase images come in the scanner's units; :func:`phase_range` maps the range they are stored in (signed
-4096..4095, unsigned 0..4095, radians) to one turn, 2 pi. Floats outside -pi..2 pi are refused: no range
explains them (unwrapped phase, or a phase in other units).
"""

from dataclasses import dataclass

import numpy as np
from scipy import fft

#: Width of the homodyne low-pass window as a share of the in-plane matrix (64 of 256 voxels, the usual).
FILTER_SHARE = 0.25
#: How many times the phase mask multiplies the magnitude.
MASK_POWER = 4


def swi_from_signal(
    signal: np.ndarray, phase_sign: int = 1, filter_px: int | None = None, power: int = MASK_POWER
) -> np.ndarray:
    """SWI of a complex GRE ``signal`` (x, y, slices): homodyne high-pass of the phase with a Hanning window
    ``filter_px`` voxels wide in-plane (default :data:`FILTER_SHARE` of the matrix), then the magnitude times
    the phase mask to the ``power``. ``phase_sign``: 1 right-handed (paramagnetic = negative phase), -1 left."""
    if phase_sign not in (1, -1):
        raise ValueError(f"phase_sign must be 1 (right-handed) or -1 (left-handed), not {phase_sign!r}")
    paramagnetic_phase = high_pass_phase(signal, filter_px) * -phase_sign  # positive field: negative phase at +1
    mask = np.where(paramagnetic_phase > 0, 1 - paramagnetic_phase / np.pi, 1.0).astype(np.float32)
    return (np.abs(signal) * mask**power).astype(np.float32)


def high_pass_phase(signal: np.ndarray, filter_px: int | None = None) -> np.ndarray:
    """The homodyne high-passed phase of ``signal`` (radians): the complex image divided by its low-pass
    through a Hanning window ``filter_px`` voxels wide in-plane (default :data:`FILTER_SHARE` of the matrix)."""
    nx, ny = signal.shape[:2]
    if filter_px is None:
        filter_px = max(4, round(FILTER_SHARE * min(nx, ny)))
    hx, hy = min(filter_px, nx), min(filter_px, ny)
    wx, wy = np.zeros(nx, np.float32), np.zeros(ny, np.float32)
    wx[:hx], wy[:hy] = np.hanning(hx), np.hanning(hy)
    window = np.outer(np.roll(wx, -hx // 2), np.roll(wy, -hy // 2))[:, :, None]
    low = fft.ifft2(fft.fft2(signal, axes=(0, 1), workers=-1) * window, axes=(0, 1), workers=-1)
    return np.angle(signal * np.conj(low) / (np.abs(low) + 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class PhaseRange:
    """The values a scanner stores one turn of phase in: ``low`` stands for -pi, ``high`` for +pi."""

    low: float
    high: float
    name: str


#: Ranges scanners store phase in, tried in order for integer-valued phase (after the scanner's rescaling).
INTEGER_PHASE_RANGES = (
    PhaseRange(0, 4096, "unsigned 0..4095"),
    PhaseRange(-4096, 4096, "signed -4096..4095"),
    PhaseRange(0, 65536, "unsigned 0..65535"),
    PhaseRange(-32768, 32768, "signed -32768..32767"),
)
RADIANS = PhaseRange(-np.pi, np.pi, "radians")
#: GE stores phase as radians x 1000 (-3142..3142); used when the sidecar's Manufacturer is GE.
GE_MILLIRADIANS = PhaseRange(-1000 * np.pi, 1000 * np.pi, "radians x 1000 (GE)")
_TOLERANCE = 1e-3


def phase_range(phase: np.ndarray, manufacturer: str = "") -> PhaseRange:
    """The range ``phase`` is stored in: radians when it lies in -pi..pi (or 0..2 pi), else, for integer values,
    the first of :data:`INTEGER_PHASE_RANGES` that holds it (GE's radians x 1000 first for a GE scanner).
    ValueError for values no range explains (floats outside -pi..2 pi, integers outside 16 bits)."""
    finite = phase[np.isfinite(phase)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if low >= -np.pi - _TOLERANCE and high <= 2 * np.pi + _TOLERANCE:
        return RADIANS
    if not np.allclose(finite, np.round(finite), atol=_TOLERANCE):
        raise ValueError(
            f"phase values {low:.4g}..{high:.4g} are neither radians (-pi..pi) nor scanner integers: an unwrapped "
            "phase, or a phase in other units? Give the wrapped phase in radians or as the scanner stored it"
        )
    candidates = ((GE_MILLIRADIANS,) if manufacturer.upper().startswith("GE") else ()) + INTEGER_PHASE_RANGES
    for candidate in candidates:
        if low >= candidate.low - 0.5 and high <= candidate.high + 0.5:
            return candidate
    raise ValueError(f"phase values {low:.6g}..{high:.6g} lie outside every range scanners store phase in")


def phase_in_radians(phase: np.ndarray, manufacturer: str = "") -> np.ndarray:
    """A phase image in radians: its range (:func:`phase_range`) mapped to one turn, -pi..pi; radians kept."""
    phase = np.asarray(phase, dtype=np.float32)
    stored = phase_range(phase, manufacturer)
    if stored is RADIANS:
        return phase
    turn = np.float32(2 * np.pi / (stored.high - stored.low))
    return ((phase - np.float32(stored.low)) * turn - np.float32(np.pi)).astype(np.float32)


#: Phase sign (handedness, see the module docstring) by manufacturer, as the sidecar's Manufacturer starts.
#: Ours: Siemens right-handed (paramagnetic = negative phase), GE left-handed; others unknown (+1, checked).
PHASE_SIGNS = {"SIEMENS": 1, "GE": -1}


def phase_sign_for(manufacturer: str) -> tuple[int, bool]:
    """The phase sign for a scanner's ``manufacturer`` and whether it is known (else the default, 1)."""
    for name, sign in PHASE_SIGNS.items():
        if str(manufacturer).upper().startswith(name):
            return sign, True
    return 1, False


#: The vein check compares the extremes of the high-passed phase (these percentiles) on either side...
VEIN_CHECK_PERCENTILES = (0.05, 99.95)
#: ... and finds the sign suspicious when the diamagnetic extreme is this many times the paramagnetic one.
SUSPICIOUS_RATIO = 1.5


def vein_check(signal: np.ndarray, phase_sign: int, filter_px: int | None = None) -> str | None:
    """A warning when ``phase_sign`` looks wrong for ``signal``, else None.

    The strongest phase shifts of a brain are inside veins running along B0 (their field is twice that of veins
    across it, and of the opposite sign) and in microbleeds: paramagnetic. With the right sign the extreme
    high-passed phase (:data:`VEIN_CHECK_PERCENTILES`, in the head) is larger on the paramagnetic side; when the
    diamagnetic extreme is over :data:`SUSPICIOUS_RATIO` times the paramagnetic one, veins come out bright."""
    magnitude = np.abs(signal)
    head = magnitude > 0.2 * np.percentile(magnitude, 99)
    paramagnetic = high_pass_phase(signal, filter_px)[head] * -phase_sign
    if paramagnetic.size < 1000:
        return None
    low, high = np.percentile(paramagnetic, VEIN_CHECK_PERCENTILES)
    if -low > SUSPICIOUS_RATIO * max(high, 0.05):
        return (
            f"phase sign {phase_sign:+d} looks wrong for this phase: its strongest shifts are diamagnetic "
            f"({-low:.2f} rad against {high:.2f} rad paramagnetic), so veins would come out bright; check the SWI "
            f"and, if veins are not dark, use phase sign {-phase_sign:+d}"
        )
    return None


def swi_from_magnitude_phase(
    magnitude: np.ndarray,
    phase: np.ndarray,
    *,
    phase_sign: int = 1,
    filter_px: int | None = None,
    manufacturer: str = "",
) -> np.ndarray:
    """SWI from a GRE magnitude image and its phase image (same grid; phase in radians or scanner units, see
    :func:`phase_in_radians`); ``phase_sign`` and ``filter_px`` as in :func:`swi_from_signal`."""
    return swi_from_signal(gre_signal(magnitude, phase, manufacturer), phase_sign, filter_px)


def gre_signal(magnitude: np.ndarray, phase: np.ndarray, manufacturer: str = "") -> np.ndarray:
    """The complex GRE signal of a magnitude and a phase image (phase range as in :func:`phase_in_radians`)."""
    if magnitude.shape != phase.shape:
        raise ValueError(f"magnitude {magnitude.shape} and phase {phase.shape} must have the same shape")
    radians = phase_in_radians(phase, manufacturer)
    return np.abs(magnitude).astype(np.float32) * np.exp(1j * radians).astype(np.complex64)
