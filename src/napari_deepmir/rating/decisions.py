"""A rater's decisions on candidates: the decision values, certainties and rejection reasons, the
:class:`Decision` record, and the checked reading of a saved decisions file (``sub-X_decisions.json``).
"""

import getpass
import math
from dataclasses import dataclass, fields
from datetime import datetime

import numpy as np

from ..conventions import CLASS_NAMES

#: A candidate's decision: accepted as a class (``accepted-cmb``, ``accepted-iron``) or rejected.
ACCEPTED = {value: f"accepted-{name}" for value, name in CLASS_NAMES.items()}
REJECTED = "rejected"
DECISIONS = (*ACCEPTED.values(), REJECTED)
#: How sure the rater is of an accepted lesion: MARS definite / possible (BOMBS: certain / uncertain).
DEFINITE, POSSIBLE = "definite", "possible"
CERTAINTIES = (DEFINITE, POSSIBLE)
#: Why a candidate was rejected: the mimics of the rating scales (Greenberg et al. 2009), artefacts, other.
REJECTION_REASONS = (
    "vein",
    "calcification",
    "flow void",
    "cortical superficial siderosis",
    "cavernoma",
    "artefact",
    "other",
)
#: A saved decision belongs to a candidate whose centre lies within this distance (mm).
SAME_CANDIDATE_MM = 1.0
#: Longest rater name accepted.
MAX_RATER_LENGTH = 64
DECISIONS_FORMAT = "deepmir-annotation-decisions"
#: Version 2 added certainty, rejection reasons and the blinded mode; version 1 files are read as they are.
DECISIONS_VERSION = 2


def default_rater() -> str:
    """The login name of the current user (the rater), or ``unknown``."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 (getpass raises various errors when no user name is set)
        return "unknown"


def rater_problem(rater) -> str | None:
    """Why ``rater`` is not a usable rater name (a short printable string), or None."""
    if not isinstance(rater, str) or not rater.strip():
        return f"rater must be a non-empty text, not {rater!r}"[:200]
    if len(rater) > MAX_RATER_LENGTH or not rater.isprintable():
        return f"rater must be printable and at most {MAX_RATER_LENGTH} characters, not {rater[:80]!r}"
    return None


@dataclass
class Decision:
    """A rater's verdict on one candidate."""

    rank: int
    x_mm: float
    y_mm: float
    z_mm: float
    decision: str
    rater: str
    time: str
    #: An acceptance whose paint is gone (undone or erased): shown as stale, not counted as accepted.
    stale: bool = False
    #: An acceptance's certainty (:data:`CERTAINTIES`); None in files written before it was recorded.
    certainty: str | None = None
    #: A rejection's reason (:data:`REJECTION_REASONS`); None in files written before it was recorded.
    reason: str | None = None

    def __post_init__(self):
        if self.decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, not {self.decision!r}")
        rejected = self.decision == REJECTED
        if self.certainty is not None and (rejected or self.certainty not in CERTAINTIES):
            raise ValueError(
                f"certainty must be one of {', '.join(CERTAINTIES)} on an acceptance, not {self.certainty!r}"
            )
        if self.reason is not None and (not rejected or self.reason not in REJECTION_REASONS):
            raise ValueError(
                f"reason must be one of {', '.join(REJECTION_REASONS)} on a rejection, not {self.reason!r}"
            )

    @property
    def centre(self) -> np.ndarray:
        return np.array([self.x_mm, self.y_mm, self.z_mm], dtype=float)


def parse_decisions(content, subject: str) -> tuple[list[Decision], int, str | None, tuple[bool, int | None]]:
    """Decisions, review position, candidate file name and (blinded, order seed) of a decisions file;
    ValueError if malformed."""
    if not isinstance(content, dict) or content.get("format") != DECISIONS_FORMAT:
        raise ValueError("not a decisions file")
    if content.get("version") not in (1, DECISIONS_VERSION):
        raise ValueError(f"unknown version {str(content.get('version'))[:80]!r}")
    if content.get("subject") != subject:
        raise ValueError(f"written for subject {str(content.get('subject'))[:80]!r}, not {subject}")
    if content.get("rater") is not None and rater_problem(content["rater"]):
        raise ValueError(rater_problem(content["rater"]))
    position = content.get("position", 0)
    if not _is_count(position):
        raise ValueError(f"position must be a non-negative whole number, not {str(position)[:80]!r}")
    candidates = content.get("candidates")
    if candidates is not None and not isinstance(candidates, str):
        raise ValueError(f"candidates must be a file name, not {str(candidates)[:80]!r}")
    blinded, order_seed = content.get("blinded", False), content.get("order_seed")
    if not isinstance(blinded, bool):
        raise TypeError(f"blinded must be true or false, not {str(blinded)[:80]!r}")
    if blinded and not _is_count(order_seed):
        raise ValueError(f"a blinded session needs a non-negative whole order_seed, not {str(order_seed)[:80]!r}")
    entries = content.get("decisions")
    if not isinstance(entries, list):
        raise TypeError("decisions must be a list")
    decisions = [_parse_decision(entry, number) for number, entry in enumerate(entries, 1)]
    return decisions, position, candidates, (blinded, order_seed if blinded else None)


def _parse_decision(entry, number: int) -> Decision:
    """One saved decision, each field checked; ValueError naming the entry if malformed. ``certainty`` and
    ``reason`` may be missing (files of version 1)."""
    names = {f.name for f in fields(Decision)}
    required = names - {"certainty", "reason"}
    if not isinstance(entry, dict) or not required <= set(entry) <= names:
        raise ValueError(f"decision {number} must have the fields {', '.join(sorted(names))}")
    if not _is_count(entry["rank"]):
        raise ValueError(f"decision {number}: rank must be a non-negative whole number")
    coordinates = [entry[c] for c in ("x_mm", "y_mm", "z_mm")]
    if not all(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) for c in coordinates):
        raise ValueError(f"decision {number}: x_mm, y_mm, z_mm must be finite numbers")
    if entry["decision"] not in DECISIONS:
        raise ValueError(f"decision {number}: decision must be one of {', '.join(DECISIONS)}")
    if rater_problem(entry["rater"]):
        raise ValueError(f"decision {number}: {rater_problem(entry['rater'])}")
    try:
        datetime.fromisoformat(entry["time"])
    except (TypeError, ValueError):
        raise ValueError(f"decision {number}: time must be an ISO 8601 date and time") from None
    if not isinstance(entry["stale"], bool):
        raise TypeError(f"decision {number}: stale must be true or false")
    for key in ("certainty", "reason"):
        if not isinstance(entry.get(key), (str, type(None))):
            raise TypeError(f"decision {number}: {key} must be a text or null")
    try:
        return Decision(**entry)
    except ValueError as error:
        raise ValueError(f"decision {number}: {str(error)[:200]}") from None


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def candidate_centre(candidate) -> tuple[float, float, float]:
    """World (scanner RAS mm) centre of a candidate table row."""
    return tuple(float(candidate[c]) for c in ("x_mm", "y_mm", "z_mm"))


def candidate_seed(candidate) -> tuple[int, int, int]:
    """Voxel (SWI grid) from which a candidate's region grows."""
    columns = ("seed_i", "seed_j", "seed_k") if "seed_i" in candidate else ("i", "j", "k")
    return tuple(round(float(candidate[c])) for c in columns)
