"""Physics-based synthetic subjects (T2, SWI, QSM with known microbleeds, iron deposits and mimics)."""

from .acquisition import Acquisition
from .generate import SyntheticSubject, generate_cohort, generate_subject, write_subject
from .world import World

__all__ = ["Acquisition", "SyntheticSubject", "World", "generate_cohort", "generate_subject", "write_subject"]
