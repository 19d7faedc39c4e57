"""One comparison end to end, as ``deepmir longitudinal`` and ``deepmir cohort`` run it: check the output can
be written, load and detect both sessions, compare, write the session output sets and the comparison."""

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ..detection.pipeline import write_detection
from ..io.bids import subject_id
from ..io.destinations import ensure_writable_folder
from ..io.outputs import check_can_write
from .compare import SessionComparison, compare_sessions, load_session, session_label
from .evaluate import score_pair
from .outputs import ChangeSet, session_outputs, write_comparison


def run_comparison(
    baseline: str | Path,
    followup: str | Path,
    out: str | Path,
    *,
    baseline_labels: str | Path | None = None,
    followup_labels: str | Path | None = None,
    model=None,
    device: str = "auto",
    overwrite: bool = False,
    truth: pd.DataFrame | None = None,
    participant: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[SessionComparison, ChangeSet]:
    """Compare two session folders and write the result to ``out`` (see :mod:`.outputs`); nothing is
    computed before every output is known to be writable. ``truth``: a synthetic pair's truth change table,
    scored into the record. ``participant`` names the outputs (default: the ``sub-`` id of the baseline folder).
    ``progress(message)`` hears each stage."""
    say = progress or (lambda message: None)
    participant = participant or subject_id(baseline) or Path(baseline).name
    outputs = ChangeSet(ensure_writable_folder(out), participant)
    check_can_write(outputs, overwrite=overwrite)
    labels = {"baseline": session_label(baseline, "baseline"), "followup": session_label(followup, "followup")}
    if labels["baseline"] == labels["followup"]:
        labels = {"baseline": "baseline", "followup": "followup"}
    sessions = {"baseline": (baseline, baseline_labels), "followup": (followup, followup_labels)}
    for role, (folder, given) in sessions.items():
        if given is None:  # detected here: its output set must be writable too
            check_can_write(session_outputs(out, participant, labels[role]), overwrite=overwrite)
    loaded = []
    for role, (folder, given) in sessions.items():
        say(f"{participant}: loading {'' if given else 'and detecting '}the {role} ({folder})")
        loaded.append(load_session(folder, labels[role], labels=given, model=model, device=device))
    first, second = loaded
    say(f"{participant}: registering the follow-up to the baseline and matching lesions")
    comparison = compare_sessions(first, second)
    if truth is not None:
        comparison.score = score_pair(comparison.changes, truth)
    for session in (first, second):
        if session.detection is not None:
            write_detection(session.detection, session_outputs(out, participant, session.label), overwrite=overwrite)
    write_comparison(comparison, outputs, overwrite=overwrite)
    return comparison, outputs
