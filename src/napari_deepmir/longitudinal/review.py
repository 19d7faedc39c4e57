"""The rater's review of a comparison's new lesions: confirm or reject each (with a reason), autosaved and
resumed, and the grade exported from what the rater kept.

Beside the comparison's output set, never over it (its change table stays the machine's):

- ``<p>_desc-longitudinal_review.tsv``: the change table with the ``review`` and ``review_reason`` columns the
  rater filled, rewritten atomically after every decision (as the labelling tool autosaves); reopening resumes;
- ``<p>_desc-reviewed_grade.json``: the exported grade (new microbleeds the rater did not reject), the rater,
  the time, which lesions were confirmed, rejected (and why) or left unreviewed, and the rule and its source.
"""

import datetime
from pathlib import Path

import pandas as pd

from ..io.derivatives import read_table, write_json, write_table_with_sidecar
from ..io.errors import InputError
from .changes import CHANGE_COLUMNS, new_microbleeds
from .grading import AriaGrade
from .outputs import ChangeSet

CONFIRMED, REJECTED = "confirmed", "rejected"
#: Why a new lesion is rejected (the labelling tool's mimics, and lesions the comparison lost across time).
REJECTION_REASONS = ("persisting (not matched)", "vein", "calcification", "artefact", "other")


class ChangeReview:
    """A rater's review of one comparison (see the module doc)."""

    def __init__(self, outputs: ChangeSet, changes: pd.DataFrame, rater: str):
        self.outputs, self.changes, self.rater = outputs, changes.reset_index(drop=True), rater

    @property
    def review_path(self) -> Path:
        return self.outputs.folder / f"{self.outputs.participant}_desc-longitudinal_review.tsv"

    @property
    def grade_path(self) -> Path:
        return self.outputs.folder / f"{self.outputs.participant}_desc-reviewed_grade.json"

    @classmethod
    def open(cls, outputs: ChangeSet, rater: str) -> "ChangeReview":
        """The comparison's change table, with the decisions of an earlier review of it when there is one."""
        if not outputs.is_complete():
            raise InputError(outputs.marker, "no complete comparison here (run deepmir longitudinal first)")
        changes = read_table(outputs.changes)
        review = cls(outputs, changes, rater)
        if review.review_path.exists():
            saved = read_table(review.review_path)
            if list(saved["change_id"]) != list(changes["change_id"]):
                raise InputError(review.review_path, "belongs to another comparison (its change ids differ)")
            review.changes[["review", "review_reason"]] = saved[["review", "review_reason"]].astype(object)
        for column in ("review", "review_reason"):
            review.changes[column] = review.changes[column].astype(object).where(review.changes[column].notna(), None)
        return review

    @property
    def new_ids(self) -> list[int]:
        """Change ids of the new lesions, in the table's order (the review's order)."""
        return [int(i) for i in self.changes.loc[self.changes["status"] == "new", "change_id"]]

    def row(self, change_id: int) -> pd.Series:
        return self.changes.loc[self.changes["change_id"] == change_id].iloc[0]

    def decide(self, change_id: int, decision: str, reason: str = "") -> None:
        """Confirm or reject new lesion ``change_id`` (a reason for a rejection), and save at once."""
        if decision not in (CONFIRMED, REJECTED):
            raise ValueError(f"decision must be {CONFIRMED} or {REJECTED}, not {decision!r}")
        if change_id not in self.new_ids:
            raise ValueError(f"change {change_id} is not a new lesion")
        where = self.changes["change_id"] == change_id
        self.changes.loc[where, "review"] = decision
        self.changes.loc[where, "review_reason"] = (reason or "other") if decision == REJECTED else None
        write_table_with_sidecar(self.review_path, self.changes, CHANGE_COLUMNS)

    @property
    def grade(self) -> AriaGrade:
        return AriaGrade(new_microbleeds(self.changes))

    def export_grade(self) -> Path:
        """Write the reviewed grade (see the module doc); returns its path."""
        new = self.changes[self.changes["status"] == "new"]

        def ids(review):
            return [int(i) for i in new.loc[new["review"].fillna("") == review, "change_id"]]

        rejected = new[new["review"] == REJECTED]
        record = {
            "ARIA-H": self.grade.record(),
            "Rater": self.rater,
            "Date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "Confirmed": ids(CONFIRMED),
            "Rejected": {str(int(r.change_id)): r.review_reason for r in rejected.itertuples()},
            "Unreviewed": ids(""),
            "Comparison": self.outputs.marker.name,
        }
        return write_json(self.grade_path, record)
