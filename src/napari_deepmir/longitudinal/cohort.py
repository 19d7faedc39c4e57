"""Follow-ups across a cohort: every participant with two or more sessions, each session compared with the one
before it (acquisition order), from the labels ``deepmir cohort`` wrote for each session.

Session order and dates come from the BIDS ``sub-X/sub-X_sessions.tsv`` (``session_id``, ``acq_time``) when it
has them, else from the session names. Per pair, the comparison's output set goes into the follow-up session's
derivative folder, named ``sub-X_ses-Y`` (the follow-up); ``longitudinal.tsv`` at the output root has one row
per pair (:data:`PAIR_COLUMNS`), with new microbleeds per year where both dates are known.
"""

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from ..io.derivatives import read_table, write_table_with_sidecar
from ..io.outputs import dataset_outputs, output_folder_of
from .run import run_comparison

DAYS_PER_YEAR = 365.25
PAIR_COLUMNS: dict[str, tuple[str, str | None]] = {
    "participant_id": ("Participant (sub-X)", None),
    "baseline_session": ("Earlier session (ses-X)", None),
    "followup_session": ("Later session", None),
    "interval_days": ("Days between the sessions' acq_time (empty without dates)", "day"),
    "new_cmb": ("New microbleeds at the later session", None),
    "persisting_cmb": ("Microbleeds in both sessions (grown ones included)", None),
    "resolved_cmb": ("Microbleeds of the earlier session not seen at the later one", None),
    "new_cmb_per_year": ("New microbleeds per year of interval (empty without dates)", "1/year"),
    "aria_h": ("ARIA-H grade on new microbleeds (superficial siderosis not assessed)", None),
    "residual_mm": ("Registration residual of the later session to the earlier one", "mm"),
    "status": ("done, or failed: the reason", None),
}


def ordered_sessions(subject_folder: Path) -> list[tuple[str, Path, pd.Timestamp | None]]:
    """(session, folder, acquisition time or None) of a participant, in acquisition order."""
    folders = {p.name: p for p in sorted(subject_folder.glob("ses-*")) if p.is_dir()}
    times: dict[str, pd.Timestamp] = {}
    table = subject_folder / f"{subject_folder.name}_sessions.tsv"
    if table.exists():
        sessions = read_table(table)
        if {"session_id", "acq_time"} <= set(sessions.columns):
            parsed = pd.to_datetime(sessions["acq_time"], errors="coerce")
            times = {s: t for s, t in zip(sessions["session_id"], parsed) if not pd.isna(t)}
    order = sorted(folders, key=lambda s: (times.get(s, pd.Timestamp.max), s))
    return [(s, folders[s], times.get(s)) for s in order]


def _pair_row(subject: str, earlier, later, out_dir: Path, overwrite: bool) -> dict:
    (first, first_folder, first_time), (second, second_folder, second_time) = earlier, later
    row = {"participant_id": subject, "baseline_session": first, "followup_session": second}
    labels = [dataset_outputs(out_dir, f"{subject}_{s}") for s in (first, second)]
    missing = [o.labels.name for o in labels if not o.is_complete()]
    if missing:
        return row | {"status": f"failed: no complete detection ({', '.join(missing)})"}
    try:
        comparison, _ = run_comparison(
            first_folder,
            second_folder,
            output_folder_of(out_dir, f"{subject}_{second}"),
            baseline_labels=labels[0].labels,
            followup_labels=labels[1].labels,
            overwrite=overwrite,
            participant=f"{subject}_{second}",
        )
    except Exception as error:  # noqa: BLE001 (one pair must never stop the cohort; the reason goes in the table)
        return row | {"status": f"failed: {error}"}
    cmb = comparison.changes[comparison.changes["class"] == "cmb"]
    new = comparison.grade.new_microbleeds
    days = (second_time - first_time).days if first_time is not None and second_time is not None else None
    return row | {
        "interval_days": days,
        "new_cmb": new,
        "persisting_cmb": int(cmb["status"].isin(["persisting", "grown"]).sum()),
        "resolved_cmb": int((cmb["status"] == "resolved").sum()),
        "new_cmb_per_year": new / (days / DAYS_PER_YEAR) if days else np.nan,
        "aria_h": comparison.grade.grade,
        "residual_mm": comparison.registration.residual_mm,
        "status": "done",
    }


def compare_cohort_sessions(bids_root: str | Path, out_dir: str | Path, *, overwrite: bool = False) -> pd.DataFrame:
    """Compare consecutive sessions of every participant with two or more; write and return
    ``out_dir/longitudinal.tsv`` (empty, and not written, when no participant has two sessions)."""
    root, out_dir = Path(bids_root), Path(out_dir)
    rows = []
    for subject_folder in sorted(p for p in root.glob("sub-*") if p.is_dir()):
        sessions = ordered_sessions(subject_folder)
        for earlier, later in itertools.pairwise(sessions):
            rows.append(_pair_row(subject_folder.name, earlier, later, out_dir, overwrite))
    table = pd.DataFrame(rows, columns=list(PAIR_COLUMNS))
    if len(table):
        write_table_with_sidecar(out_dir / "longitudinal.tsv", table, PAIR_COLUMNS)
    return table
