"""What the Compare sessions widget shows, as arrays on the baseline grid (no napari here).

The follow-up is resampled onto the baseline grid through the registration, so both sessions share one world
grid and one slice slider; each lesion is painted with a code of its status (:data:`STATUS_CODES`)."""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..io.nifti import Volume
from .compare import SessionComparison
from .register import followup_on_baseline_grid

#: Label value of each status in the status maps; a rejected new lesion gets its own.
STATUS_CODES = {"persisting": 1, "grown": 2, "new": 3, "resolved": 4, "rejected": 5}
#: Their colours: apart from the class colours (red microbleed, cyan iron) so a new lesion stands out.
STATUS_COLORS = {
    0: (0.0, 0.0, 0.0, 0.0),
    1: (0.4, 0.73, 0.4, 1.0),  # persisting: green
    2: (1.0, 0.6, 0.0, 1.0),  # grown: orange
    3: (1.0, 0.0, 1.0, 1.0),  # new: magenta
    4: (0.2, 0.6, 1.0, 1.0),  # resolved: blue
    5: (0.47, 0.47, 0.47, 1.0),  # rejected new: grey
    None: (1.0, 1.0, 0.0, 1.0),
}


@dataclass
class ComparisonViews:
    """Baseline SWI, follow-up SWI on the baseline grid, and each session's lesion ids there."""

    baseline_swi: np.ndarray
    followup_swi: np.ndarray
    baseline_ids: np.ndarray
    followup_ids: np.ndarray

    @classmethod
    def of(cls, comparison: SessionComparison) -> "ComparisonViews":
        base, follow = comparison.baseline.subject, comparison.followup.subject
        registration = comparison.registration
        follow_ids = comparison.followup.lesion_id_map()
        grid = (base.shape, base.affine)
        return cls(
            base.swi,
            followup_on_baseline_grid(Volume(follow.swi, follow.affine), registration, *grid),
            comparison.baseline.lesion_id_map(),
            followup_on_baseline_grid(Volume(follow_ids, follow.affine), registration, *grid, order=0).astype(np.int32),
        )

    def status_maps(self, changes: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(baseline, follow-up) maps of status codes for ``changes`` (a rejected new lesion is ``rejected``)."""
        maps = []
        for ids, column in ((self.baseline_ids, "baseline_lesion_id"), (self.followup_ids, "followup_lesion_id")):
            rows = changes.dropna(subset=[column])
            lookup = np.zeros(max(int(ids.max()), int(rows[column].max()) if len(rows) else 0) + 1, np.uint8)
            for row in rows.itertuples():
                status = "rejected" if row.review == "rejected" else row.status
                lookup[int(getattr(row, column))] = STATUS_CODES[status]
            maps.append(lookup[ids])
        return maps[0], maps[1]
