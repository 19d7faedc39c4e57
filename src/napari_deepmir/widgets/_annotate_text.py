"""The labelling panel's text: its review keys, their table, and the protocol's evidence on a region as rich text."""

import html
import math

from qtpy.QtGui import QColor

from ..conventions import ANNOTATION_COLORS, CMB, IRON
from ..rating.decisions import ACCEPTED, DEFINITE, POSSIBLE, REJECTED

#: Keyboard shortcuts bound on the annotation Labels layer only: they act while it is the selected
#: layer and go with it (napari's own Labels keys — P paint, E erase, F fill, [ and ] brush size,
#: Ctrl+Z undo — keep working). None of these is a napari default for Labels layers, and no Alt key is
#: a mnemonic of napari's menus (File, View, Layers, Plugins, Debug, Window, Help).
#: Key -> (what it does, method, arguments).
KEYS = {
    "N": ("next candidate", "next", ()),
    "Shift-N": ("previous candidate", "previous", ()),
    "C": ("accept: microbleed, definite", "accept", (CMB, DEFINITE)),
    "Alt-C": ("accept: microbleed, possible", "accept", (CMB, POSSIBLE)),
    "I": ("accept: iron deposit, definite", "accept", (IRON, DEFINITE)),
    "Alt-I": ("accept: iron deposit, possible", "accept", (IRON, POSSIBLE)),
    "R": ("reject: other", "reject", ("other",)),
    "Alt-E": ("reject: vein", "reject", ("vein",)),
    "Alt-K": ("reject: calcification", "reject", ("calcification",)),
    "Alt-O": ("reject: flow void", "reject", ("flow void",)),
    "Alt-S": ("reject: cortical superficial siderosis", "reject", ("cortical superficial siderosis",)),
    "Alt-M": ("reject: cavernoma", "reject", ("cavernoma",)),
    "Alt-A": ("reject: artefact", "reject", ("artefact",)),
    "G": ("guidance at the cursor", "assess_at_cursor", ()),
    "Shift-C": ("paint microbleed", "paint_mode", (CMB,)),
    "Shift-I": ("paint iron deposit", "paint_mode", (IRON,)),
}
DECISION_TEXT = {ACCEPTED[CMB]: "CMB", ACCEPTED[IRON]: "iron", REJECTED: "rejected"}
REJECT_CHOICE = "Reject because…"
WARNING_COLOUR = "#ff9f1a"


def class_colour(value: int) -> str:
    return QColor.fromRgbF(*ANNOTATION_COLORS[value]).name()  # as the annotation layer paints it


def ppb_text(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:+.0f} ppb"


def guidance_html(evidence: dict, *, title: str, blinded: bool = False) -> str:
    """The protocol's evidence on one region (an Assessment's or a candidate row's values) as rich text;
    ``blinded``: the measurements only, without the protocol's flags and suggestion."""
    contrast = float(evidence.get("qsm_contrast_ppb", math.nan))
    sign = "n/a" if not math.isfinite(contrast) else ("paramagnetic (+)" if contrast > 0 else "diamagnetic (−)")
    rows = [
        ("diameter", f"{float(evidence['diameter_mm']):.1f} mm"),
        ("QSM source", f"{ppb_text(contrast)} over the tissue around it: {sign}"),
        ("QSM", f"mean {ppb_text(float(evidence['qsm_mean_ppb']))}, peak {ppb_text(float(evidence['qsm_peak_ppb']))}"),
        ("SWI contrast", f"{float(evidence['swi_contrast']):.2f}"),
        ("elongation", f"{float(evidence['elongation']):.1f}"),
        ("location", html.escape(str(evidence.get("location") or "unknown"))),
    ]
    flags = evidence.get("flags") or []
    if isinstance(flags, str):
        flags = [f for f in flags.split(";") if f]
    text = [f"<b>{html.escape(title)}</b><br>"]
    text += [f"{name}: {value}<br>" for name, value in rows]
    calls = str(evidence.get("calls") or "")  # a consensus read: the two raters' calls
    text += [f"raters: <b>{html.escape(calls)}</b><br>"] if calls else []
    if blinded:
        return "".join(text)
    text += [f"<span style='color:{WARNING_COLOUR}'>⚠ {html.escape(flag)}</span><br>" for flag in flags]
    if calls:  # nothing is suggested to a consensus reader
        return "".join(text)
    suggested = str(evidence.get("suggested_class") or "")
    text.append(f"suggested: <b>{html.escape(suggested)}</b> — {html.escape(str(evidence.get('reason') or ''))}")
    return "".join(text)


def keys_table() -> str:
    """The shortcuts (ours, then napari's Labels keys) as a two-column rich-text table."""
    entries = [(key.replace("-", "+"), text) for key, (text, _, _) in KEYS.items()]
    entries += [("P / E / F", "paint / erase / fill"), ("[ / ]", "brush smaller / larger"), ("Ctrl+Z", "undo")]
    cells = [f"<td><b>{html.escape(k)}</b>&nbsp;</td><td>{html.escape(t)}&nbsp;&nbsp;</td>" for k, t in entries]
    rows = ["<tr>" + "".join(cells[i : i + 2]) + "</tr>" for i in range(0, len(cells), 2)]
    return "<table style='font-size:small'>" + "".join(rows) + "</table>"
