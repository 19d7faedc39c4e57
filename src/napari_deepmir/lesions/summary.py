"""A participant's lesions as rating scales report them: MARS counts, burden category, pattern, volumes.

Rules (docs/lesion-tables.md): microbleeds are counted after MARS (Gregoire et al., Neurology 2009) per
region and side when the table has a ``region`` column, and per location category in any case, definite and
possible apart (a table without a ``certainty`` column counts every lesion as definite). The burden category
(0, 1, 2-4, >=5) and the pattern use the *definite* microbleeds. Pattern, after the Boston criteria v2.0
(Charidimou et al., Lancet Neurol 2022) and hypertensive arteriopathy: lobar microbleeds only -> strictly
lobar; deep, basal-ganglia or infratentorial (brainstem, cerebellum) only -> strictly deep; both -> mixed;
no definite microbleed -> none; a definite microbleed without a lobar/deep location -> undetermined.
"""

import numpy as np
import pandas as pd

from ..conventions import CLASS_NAMES, HEMISPHERES, LOCATION_NAMES, REGION_NAMES

CERTAINTIES: tuple[str, ...] = ("definite", "possible")
BURDEN_CATEGORIES: tuple[str, ...] = ("0", "1", "2-4", ">=5")
PATTERNS: tuple[str, ...] = ("none", "strictly lobar", "strictly deep", "mixed", "undetermined")
#: Location categories on each side of the lobar / deep pattern (infratentorial counts as deep).
LOBAR_LOCATIONS = frozenset({"lobar"})
DEEP_PATTERN_LOCATIONS = frozenset({"deep", "basal ganglia", "infratentorial"})
#: Location categories counted per participant (``outside`` is left out: not brain tissue of a scale).
COUNTED_LOCATIONS: tuple[str, ...] = tuple(name for name in LOCATION_NAMES.values() if name != "outside")


def _key(text: str) -> str:
    return text.replace(" ", "_")


def _summary_columns() -> dict[str, tuple[str, str | None]]:
    columns: dict[str, tuple[str, str | None]] = {
        "participant_id": ("Participant (sub-X, or sub-X_ses-Y)", None),
        "n_lesions": ("Lesions of both classes, definite and possible", None),
    }
    for name in CLASS_NAMES.values():
        columns[f"n_{name}"] = (f"Lesions of class {name}, definite and possible", None)
        for certainty in CERTAINTIES:
            columns[f"n_{name}_{certainty}"] = (f"Lesions of class {name} rated {certainty}", None)
    columns["cmb_burden"] = ("Burden category of the definite microbleeds: " + ", ".join(BURDEN_CATEGORIES), None)
    columns["cmb_pattern"] = ("Pattern of the definite microbleeds: " + ", ".join(PATTERNS), None)
    for certainty in CERTAINTIES:
        for location in COUNTED_LOCATIONS:
            columns[f"cmb_{certainty}_{_key(location)}"] = (f"{certainty.capitalize()} microbleeds, {location}", None)
    for certainty in CERTAINTIES:
        for region in REGION_NAMES.values():
            for side in HEMISPHERES:
                columns[f"cmb_{certainty}_{_key(region)}_{side}"] = (
                    f"{certainty.capitalize()} microbleeds, {region}, {side} (empty without a region map)",
                    None,
                )
    for name in CLASS_NAMES.values():
        columns[f"{name}_volume_mm3"] = (f"Total volume of the {name} lesions", "mm^3")
        columns[f"{name}_susceptibility_volume_ppb_mm3"] = (
            f"Sum over the {name} lesions of mean susceptibility x volume (less echo-time dependent than volume; empty"
            + " without QSM)",
            "ppb*mm^3",
        )
    return columns


#: Column -> (description, units) of the per-participant summary (and its JSON sidecar).
SUMMARY_COLUMNS: dict[str, tuple[str, str | None]] = _summary_columns()


def burden_category(count: int) -> str:
    """0, 1, 2-4 or >=5."""
    return "0" if count == 0 else "1" if count == 1 else "2-4" if count <= 4 else ">=5"


def cmb_pattern(locations) -> str:
    """Pattern of microbleeds given their location categories (module docstring)."""
    locations = list(locations)
    if not locations:
        return "none"
    if any(place not in LOBAR_LOCATIONS | DEEP_PATTERN_LOCATIONS for place in locations):
        return "undetermined"
    lobar = any(place in LOBAR_LOCATIONS for place in locations)
    deep = any(place in DEEP_PATTERN_LOCATIONS for place in locations)
    return "mixed" if lobar and deep else "strictly lobar" if lobar else "strictly deep"


def certainty_of(table: pd.DataFrame) -> pd.Series:
    """Each lesion's certainty: the ``certainty`` column, ``definite`` where it is absent or empty."""
    if "certainty" not in table.columns:
        return pd.Series("definite", index=table.index)
    return table["certainty"].where(table["certainty"].isin(CERTAINTIES), "definite")


def participant_summary(table: pd.DataFrame, participant: str) -> dict:
    """One row of :data:`SUMMARY_COLUMNS` for a participant's lesion table (columns of lesions.measure.COLUMNS,
    plus ``certainty`` when a rater gave one)."""
    certainty = certainty_of(table)
    row: dict = {"participant_id": participant, "n_lesions": len(table)}
    for name in CLASS_NAMES.values():
        of_class = table["class"] == name if len(table) else pd.Series(dtype=bool)
        row[f"n_{name}"] = int(of_class.sum())
        for level in CERTAINTIES:
            row[f"n_{name}_{level}"] = int((of_class & (certainty == level)).sum())
    cmb = table[table["class"] == "cmb"] if len(table) else table
    cmb_certainty = certainty.loc[cmb.index]
    locations = cmb["location"] if "location" in cmb.columns else pd.Series(None, index=cmb.index, dtype=object)
    definite = cmb_certainty == "definite"
    row["cmb_burden"] = burden_category(int(definite.sum()))
    row["cmb_pattern"] = cmb_pattern(locations[definite].fillna(""))
    for level in CERTAINTIES:
        for location in COUNTED_LOCATIONS:
            row[f"cmb_{level}_{_key(location)}"] = int(((cmb_certainty == level) & (locations == location)).sum())
    has_regions = "region" in table.columns and table["region"].notna().any()
    for level in CERTAINTIES:
        for region in REGION_NAMES.values():
            for side in HEMISPHERES:
                row[f"cmb_{level}_{_key(region)}_{side}"] = (
                    int(((cmb_certainty == level) & (cmb["region"] == region) & (cmb["hemisphere"] == side)).sum())
                    if has_regions
                    else np.nan
                )
    for name in CLASS_NAMES.values():
        lesions = table[table["class"] == name] if len(table) else table
        row[f"{name}_volume_mm3"] = float(lesions["volume_mm3"].sum()) if len(lesions) else 0.0
        weighted = lesions["qsm_mean_ppb"] * lesions["volume_mm3"] if "qsm_mean_ppb" in lesions else pd.Series()
        row[f"{name}_susceptibility_volume_ppb_mm3"] = (
            float(weighted.sum()) if len(lesions) == 0 or weighted.notna().all() else np.nan
        )
    return row


def summary_table(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The summary of several participants ({participant: lesion table}), one row each, columns in order."""
    rows = [participant_summary(table, participant) for participant, table in tables.items()]
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def summary_rows(summary: dict) -> pd.DataFrame:
    """A participant summary as (quantity, value) rows for display: per-region and per-location counts only where
    non-zero, empty values left out."""
    counts = {f"cmb_{level}_" for level in CERTAINTIES}
    rows = [
        (column, value)
        for column, value in summary.items()
        if column != "participant_id"
        and not (isinstance(value, float) and np.isnan(value))
        and not (column.startswith(tuple(counts)) and value == 0)
    ]
    return pd.DataFrame(rows, columns=["quantity", "value"])
