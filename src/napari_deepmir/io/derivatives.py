"""BIDS-derivative outputs: tables (CSV/TSV) with JSON sidecars, the dseg.tsv lookup, JSON reports.

All writes are atomic. Missing values are written as ``n/a`` in TSV (BIDS) and left empty in CSV;
JSON has ``null`` for NaN.
"""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..conventions import CLASS_COLORS, CLASS_NAMES, CLASS_TITLES
from .atomic import atomic_path, write_text_atomic
from .errors import InputError

#: Decimals kept in written tables: 0.001 mm / mm3 / ppb is far below anything MRI resolves.
TABLE_DECIMALS = 3


def _separator(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".tsv"):
        raise InputError(path, "table files must end in .csv or .tsv")
    return "\t" if suffix == ".tsv" else ","


def write_table(path: str | Path, table: pd.DataFrame) -> Path:
    """Write ``table`` as CSV or TSV (by suffix) atomically, floats rounded to 3 decimals, no index."""
    path = Path(path)
    separator = _separator(path)
    missing = "n/a" if separator == "\t" else ""
    with atomic_path(path) as tmp:
        table.round(TABLE_DECIMALS).to_csv(tmp, sep=separator, index=False, na_rep=missing)
    return path


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a table written by :func:`write_table`."""
    path = Path(path)
    return pd.read_csv(path, sep=_separator(path), na_values=["n/a"])


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else float(value)
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | Path, obj) -> Path:
    """Write ``obj`` as indented JSON atomically; NaN/inf become null, numpy values plain numbers."""
    return write_text_atomic(path, json.dumps(_jsonable(obj), indent=2) + "\n")


def dseg_lookup_text() -> str:
    """The BIDS ``dseg.tsv`` lookup of the label values (index, name, abbreviation, color) as text."""
    rows = [{"index": 0, "name": "background", "abbreviation": "BG", "color": "#000000"}]
    for value, name in CLASS_NAMES.items():
        rgb = "".join(f"{round(255 * c):02x}" for c in CLASS_COLORS[value][:3])
        rows.append({"index": value, "name": CLASS_TITLES[value], "abbreviation": name.upper(), "color": f"#{rgb}"})
    return pd.DataFrame(rows).to_csv(sep="\t", index=False, lineterminator="\n")


def write_dseg_lookup(path: str | Path) -> Path:
    """Write the BIDS ``dseg.tsv`` lookup (:func:`dseg_lookup_text`) atomically."""
    return write_text_atomic(path, dseg_lookup_text())


def table_sidecar(table: pd.DataFrame, descriptions: dict[str, tuple[str, str | None]]) -> dict:
    """BIDS-style sidecar for a table: ``{column: {"Description": ..., "Units": ...}}`` for its known columns."""
    sidecar = {}
    for column in table.columns:
        if column in descriptions:
            description, units = descriptions[column]
            sidecar[column] = {"Description": description} | ({"Units": units} if units else {})
    return sidecar


def write_table_with_sidecar(
    path: str | Path, table: pd.DataFrame, descriptions: dict[str, tuple[str, str | None]]
) -> Path:
    """Write ``table`` (see :func:`write_table`) and its JSON sidecar beside it (same name, ``.json``)."""
    path = write_table(path, table)
    write_json(path.with_suffix(".json"), table_sidecar(table, descriptions))
    return path
