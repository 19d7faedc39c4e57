"""A participant's lesions as rating scales report them: MARS counts, burden category, pattern, volumes.

Rules (docs/lesion-tables.md): microbleeds are counted after MARS (Gregoire et al., Neurology 2009) per
region and side when the table has a ``region`` column, and per location category in any case, definite and
possible apart (a table without a ``certainty`` column counts every lesion as definite), with MARS's deep
(deep + basal ganglia) and infratentorial (brainstem + cerebellum) totals. A microbleed-class lesion over 10 mm
across on an axial slice (the table's ``macrobleed``) is a macrobleed: counted apart, left out of every microbleed
count, the burden and the pattern. The burden category (0, 1, 2-4, >=5) and the pattern use the *definite*
microbleeds. Pattern, after the Boston criteria v2.0 (Charidimou et al., Lancet Neurol 2022): lobar microbleeds
only -> strictly lobar; deep, basal-ganglia or brainstem only -> strictly deep; both -> mixed; cerebellar
microbleeds count as neither lobar nor deep (with lobar ones the pattern stays strictly lobar), so cerebellar
only -> cerebellar only; no definite microbleed -> none; a definite microbleed outside the lobar/deep/cerebellar
categories, or an infratentorial one not told brainstem or cerebellum where that decides -> undetermined.
"""

import numpy as np
import pandas as pd

from ..conventions import CLASS_NAMES, HEMISPHERES, LOCATION_NAMES, REGION_NAMES

CERTAINTIES: tuple[str, ...] = ("definite", "possible")
BURDEN_CATEGORIES: tuple[str, ...] = ("0", "1", "2-4", ">=5")
PATTERNS: tuple[str, ...] = ("none", "strictly lobar", "strictly deep", "mixed", "cerebellar only", "undetermined")
#: Location categories on each side of the lobar / deep pattern, and the neutral one (Boston criteria v2.0).
LOBAR_LOCATIONS = frozenset({"lobar"})
DEEP_PATTERN_LOCATIONS = frozenset({"deep", "basal ganglia", "brainstem"})
NEUTRAL_LOCATIONS = frozenset({"cerebellum"})
#: Brainstem or cerebellum, not told apart: deep or neutral.
UNSPLIT_LOCATIONS = frozenset({"infratentorial"})
#: Location categories counted per participant (``outside`` is left out: not brain tissue of a scale).
COUNTED_LOCATIONS: tuple[str, ...] = tuple(name for name in LOCATION_NAMES.values() if name != "outside")
#: MARS's totals over location categories.
MARS_TOTALS: dict[str, frozenset[str]] = {
    "mars_deep": frozenset({"deep", "basal ganglia"}),
    "mars_infratentorial": frozenset({"infratentorial", "brainstem", "cerebellum"}),
}


def _key(text: str) -> str:
    return text.replace(" ", "_")


def _summary_columns() -> dict[str, tuple[str, str | None]]:
    columns: dict[str, tuple[str, str | None]] = {
        "participant_id": ("Participant (sub-X, or sub-X_ses-Y)", None),
        "n_lesions": ("Lesions of both classes, definite and possible, macrobleeds included", None),
    }
    for name in CLASS_NAMES.values():
        columns[f"n_{name}"] = (f"Lesions of class {name}, definite and possible (microbleeds: no macrobleed)", None)
        for certainty in CERTAINTIES:
            columns[f"n_{name}_{certainty}"] = (f"Lesions of class {name} rated {certainty} (no macrobleed)", None)
    columns["n_cmb_macrobleeds"] = ("Microbleed-class lesions over 10 mm across on an axial slice: macrobleeds", None)
    columns["cmb_burden"] = ("Burden category of the definite microbleeds: " + ", ".join(BURDEN_CATEGORIES), None)
    columns["cmb_pattern"] = ("Pattern of the definite microbleeds: " + ", ".join(PATTERNS), None)
    for certainty in CERTAINTIES:
        for location in COUNTED_LOCATIONS:
            columns[f"cmb_{certainty}_{_key(location)}"] = (f"{certainty.capitalize()} microbleeds, {location}", None)
        for total, locations in MARS_TOTALS.items():
            columns[f"cmb_{certainty}_{total}"] = (
                f"{certainty.capitalize()} microbleeds, MARS {total[5:]} total: " + ", ".join(sorted(locations)),
                None,
            )
    for certainty in CERTAINTIES:
        for region in REGION_NAMES.values():
            for side in HEMISPHERES:
                columns[f"cmb_{certainty}_{_key(region)}_{side}"] = (
                    f"{certainty.capitalize()} microbleeds, {region}, {side} (empty without a region map)",
                    None,
                )
    for name in CLASS_NAMES.values():
        columns[f"{name}_volume_mm3"] = (f"Total volume of the {name} lesions (no macrobleed)", "mm^3")
        columns[f"{name}_susceptibility_moment_ppb_mm3"] = (
            f"Sum over the {name} lesions (no macrobleed) of (susceptibility - local tissue) x volume (Liu et al., "
            + "MRM 2012: independent of echo time; empty without QSM)",
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
    places = set(locations)
    if not places:
        return "none"
    known = LOBAR_LOCATIONS | DEEP_PATTERN_LOCATIONS | NEUTRAL_LOCATIONS | UNSPLIT_LOCATIONS
    if places - known:
        return "undetermined"
    lobar, deep, unsplit = (
        bool(places & LOBAR_LOCATIONS),
        bool(places & DEEP_PATTERN_LOCATIONS),
        bool(places & UNSPLIT_LOCATIONS),
    )
    if lobar and deep:
        return "mixed"
    if lobar:
        return "undetermined" if unsplit else "strictly lobar"
    if deep:
        return "strictly deep"
    return "undetermined" if unsplit else "cerebellar only"


def certainty_of(table: pd.DataFrame) -> pd.Series:
    """Each lesion's certainty: the ``certainty`` column, ``definite`` where it is absent or empty."""
    if "certainty" not in table.columns:
        return pd.Series("definite", index=table.index)
    return table["certainty"].where(table["certainty"].isin(CERTAINTIES), "definite")


def macrobleeds(table: pd.DataFrame) -> pd.Series:
    """Which lesions are macrobleeds: the table's ``macrobleed`` column, none where it is absent or empty."""
    if "macrobleed" not in table.columns:
        return pd.Series(False, index=table.index)
    return table["macrobleed"].fillna(False).astype(bool)


def participant_summary(table: pd.DataFrame, participant: str) -> dict:
    """One row of :data:`SUMMARY_COLUMNS` for a participant's lesion table (columns of lesions.measure.COLUMNS,
    plus ``certainty`` when a rater gave one)."""
    row: dict = {"participant_id": participant, "n_lesions": len(table)}
    macro = macrobleeds(table)
    row_macrobleeds = int((macro & (table["class"] == "cmb")).sum()) if len(table) else 0
    table = table[~macro]
    certainty = certainty_of(table)
    for name in CLASS_NAMES.values():
        of_class = table["class"] == name if len(table) else pd.Series(dtype=bool)
        row[f"n_{name}"] = int(of_class.sum())
        for level in CERTAINTIES:
            row[f"n_{name}_{level}"] = int((of_class & (certainty == level)).sum())
    row["n_cmb_macrobleeds"] = row_macrobleeds
    cmb = table[table["class"] == "cmb"] if len(table) else table
    cmb_certainty = certainty.loc[cmb.index]
    locations = cmb["location"] if "location" in cmb.columns else pd.Series(None, index=cmb.index, dtype=object)
    definite = cmb_certainty == "definite"
    row["cmb_burden"] = burden_category(int(definite.sum()))
    row["cmb_pattern"] = cmb_pattern(locations[definite].fillna(""))
    for level in CERTAINTIES:
        for location in COUNTED_LOCATIONS:
            row[f"cmb_{level}_{_key(location)}"] = int(((cmb_certainty == level) & (locations == location)).sum())
        for total, places in MARS_TOTALS.items():
            row[f"cmb_{level}_{total}"] = int(((cmb_certainty == level) & locations.isin(places)).sum())
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
        moments = lesions.get("susceptibility_moment_ppb_mm3", pd.Series(np.nan, index=lesions.index))
        row[f"{name}_susceptibility_moment_ppb_mm3"] = (
            float(moments.sum()) if len(lesions) == 0 or moments.notna().all() else np.nan
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
