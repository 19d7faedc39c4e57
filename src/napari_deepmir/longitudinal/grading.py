"""ARIA-H grade of a follow-up scan from its new microbleeds and new areas of superficial siderosis.

The rule (the anti-amyloid antibodies' prescribing information; Cogswell et al., AJNR 2022, reporting
template), read on T2*-GRE or SWI against the baseline:

- new microbleeds: none 0, mild 1-4, moderate 5-9, severe 10 or more;
- new areas of superficial siderosis: none 0, mild 1, moderate 2, severe more than 2.

The grade is the more severe of the two. napari-deepmir has no siderosis detector: the siderosis part is
"not assessed" and the grade rests on microbleeds alone, which every record says.
"""

from dataclasses import dataclass

import numpy as np

#: Grades from least to most severe.
GRADES: tuple[str, ...] = ("none", "mild", "moderate", "severe")
#: Where the rule comes from (written into every grade record).
GRADE_SOURCE = "ARIA-H: prescribing information of anti-amyloid antibodies; Cogswell et al., AJNR 2022"
MICROBLEED_RULE = "new microbleeds: 0 none, 1-4 mild, 5-9 moderate, >= 10 severe"
SIDEROSIS_RULE = "new superficial siderosis areas: 0 none, 1 mild, 2 moderate, > 2 severe"
NOT_ASSESSED = "not assessed (no superficial siderosis detector): the grade rests on new microbleeds only"


def microbleed_grade(new_microbleeds: int) -> str:
    """ARIA-H grade of a number of new microbleeds."""
    if new_microbleeds < 0:
        raise ValueError("a number of new microbleeds cannot be negative")
    return (
        "none"
        if new_microbleeds == 0
        else "mild"
        if new_microbleeds <= 4
        else "moderate"
        if new_microbleeds <= 9
        else "severe"
    )


def siderosis_grade(new_areas: int) -> str:
    """ARIA-H grade of a number of new areas of superficial siderosis."""
    if new_areas < 0:
        raise ValueError("a number of new siderosis areas cannot be negative")
    return GRADES[min(new_areas, 3)]


@dataclass(frozen=True)
class AriaGrade:
    """The grade of one follow-up and what gave it. ``new_siderosis`` None: not assessed."""

    new_microbleeds: int
    new_siderosis: int | None = None

    @property
    def grade(self) -> str:
        grades = [microbleed_grade(self.new_microbleeds)]
        if self.new_siderosis is not None:
            grades.append(siderosis_grade(self.new_siderosis))
        return max(grades, key=GRADES.index)

    def describe(self) -> str:
        """'ARIA-H mild: 3 new microbleeds (1-4 mild); superficial siderosis not assessed ...'."""
        siderosis = NOT_ASSESSED if self.new_siderosis is None else f"{self.new_siderosis} new siderosis area(s)"
        return (
            f"ARIA-H {self.grade}: {self.new_microbleeds} new microbleed(s) ({MICROBLEED_RULE}); "
            f"superficial siderosis {siderosis}"
        )

    def record(self) -> dict:
        """The grade as written into the longitudinal provenance and the exported grade."""
        return {
            "Grade": self.grade,
            "NewMicrobleeds": self.new_microbleeds,
            "MicrobleedGrade": microbleed_grade(self.new_microbleeds),
            "NewSuperficialSiderosis": "n/a" if self.new_siderosis is None else self.new_siderosis,
            "SiderosisGrade": NOT_ASSESSED if self.new_siderosis is None else siderosis_grade(self.new_siderosis),
            "Rule": f"{MICROBLEED_RULE}; {SIDEROSIS_RULE}; the more severe of the two",
            "Source": GRADE_SOURCE,
        }


def weighted_kappa(a: list[str], b: list[str]) -> float:
    """Cohen's kappa with linear weights of two lists of grades (:data:`GRADES`); NaN when chance agreement
    is complete (every grade the same on both sides)."""
    if len(a) != len(b):
        raise ValueError("two lists of grades of the same length are needed")
    n = len(GRADES)
    observed = np.zeros((n, n))
    for x, y in zip(a, b):
        observed[GRADES.index(x), GRADES.index(y)] += 1
    if observed.sum() == 0:
        return float("nan")
    observed /= observed.sum()
    expected = np.outer(observed.sum(1), observed.sum(0))
    weights = np.abs(np.subtract.outer(np.arange(n), np.arange(n))) / (n - 1)
    chance = float((weights * expected).sum())
    return float("nan") if chance == 0 else 1.0 - float((weights * observed).sum()) / chance
