"""Guided two-class labelling: review candidates by key (definite / possible, a reason for each rejection),
paint what the detector missed, autosave, export; optionally blinded (unranked, no suggestions).

Thin over :mod:`napari_deepmir.annotations` (the store), :mod:`napari_deepmir.lesions.candidates`
(candidates, grown regions) and :mod:`napari_deepmir.lesions.guidance` (the protocol's evidence).
"""

import html
import math
import time

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, LineEdit
from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QButtonGroup,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QWidget,
)
from superqt import QCollapsible

from ..annotations import (
    ACCEPTED,
    DEFINITE,
    POSSIBLE,
    REJECTED,
    REJECTION_REASONS,
    AnnotationStore,
    candidate_centre,
    candidate_seed,
    default_rater,
    export_session,
)
from ..consensus import consensus_region, is_consensus_candidate
from ..conventions import ANNOTATION_COLORS, CLASS_NAMES, CLASS_TITLES, CMB, IRON
from ..layers import labels_layer_data, layer_name
from ._blinding import Blinds
from ._busy import shows_busy
from ._consensus import ConsensusPanel
from ._docking import TabbedPanel, scrolling_layout
from ._hooks import HooksWhileShown
from ._inputs import SubjectInputs
from ._layers import add_layer, camera_of, centre_on, geometry_of, show_marker, subject_from_layers

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
BLINDED_NOTE = (
    "Blinded session: candidates in a random order, no suggestions, no model probabilities. It stays blinded."
)
BLINDED_HIDDEN_NOTE = "Hidden while it runs (shown again when it ends or this panel closes): "
#: Delay (ms) between the last brush stroke and the autosave; unsignalled edits (undo) are saved every few seconds.
AUTOSAVE_DELAY_MS = 1500
AUTOSAVE_POLL_MS = 5000
#: A candidate is shown this many times larger than the whole-brain view.
CANDIDATE_ZOOM = 2.0
_DECISION_TEXT = {ACCEPTED[CMB]: "CMB", ACCEPTED[IRON]: "iron", REJECTED: "rejected"}
_REJECT_CHOICE = "Reject because…"
_WARNING_COLOUR = "#ff9f1a"


def _colour(value: int) -> str:
    return QColor.fromRgbF(*ANNOTATION_COLORS[value]).name()  # as the annotation layer paints it


def _ppb(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:+.0f} ppb"


def guidance_html(evidence: dict, *, title: str, blinded: bool = False) -> str:
    """The protocol's evidence on one region (an Assessment's or a candidate row's values) as rich text;
    ``blinded``: the measurements only, without the protocol's flags and suggestion."""
    contrast = float(evidence.get("qsm_contrast_ppb", math.nan))
    sign = "n/a" if not math.isfinite(contrast) else ("paramagnetic (+)" if contrast > 0 else "diamagnetic (−)")
    rows = [
        ("diameter", f"{float(evidence['diameter_mm']):.1f} mm"),
        ("QSM source", f"{_ppb(contrast)} over the tissue around it: {sign}"),
        ("QSM", f"mean {_ppb(float(evidence['qsm_mean_ppb']))}, peak {_ppb(float(evidence['qsm_peak_ppb']))}"),
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
    text += [f"<span style='color:{_WARNING_COLOUR}'>⚠ {html.escape(flag)}</span><br>" for flag in flags]
    if calls:  # nothing is suggested to a consensus reader
        return "".join(text)
    suggested = str(evidence.get("suggested_class") or "")
    text.append(f"suggested: <b>{html.escape(suggested)}</b> — {html.escape(str(evidence.get('reason') or ''))}")
    return "".join(text)


def _keys_table() -> str:
    """The shortcuts (ours, then napari's Labels keys) as a two-column rich-text table."""
    entries = [(key.replace("-", "+"), text) for key, (text, _, _) in KEYS.items()]
    entries += [("P / E / F", "paint / erase / fill"), ("[ / ]", "brush smaller / larger"), ("Ctrl+Z", "undo")]
    cells = [f"<td><b>{html.escape(k)}</b>&nbsp;</td><td>{html.escape(t)}&nbsp;&nbsp;</td>" for k, t in entries]
    rows = ["<tr>" + "".join(cells[i : i + 2]) + "</tr>" for i in range(0, len(cells), 2)]
    return "<table style='font-size:small'>" + "".join(rows) + "</table>"


class AnnotateWidget(HooksWhileShown, TabbedPanel, QWidget):
    """Label microbleeds and iron deposits: candidates by key, guidance from the protocol, autosave and resume."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.session = None
        self.subject = None
        self.geometry = None
        self.locations = None
        self.layer = None
        self.worker = None
        self._fit_zoom = None
        self._display_shape = None
        self.blinds = Blinds(napari_viewer, on_hidden=self._show_mode)
        self._build()
        self._autosave_timer = QTimer(self, singleShot=True, interval=AUTOSAVE_DELAY_MS)
        self._autosave_timer.timeout.connect(self.autosave)
        self._poll_timer = QTimer(self, interval=AUTOSAVE_POLL_MS)
        self._poll_timer.timeout.connect(self.autosave)
        self._counts_timer = QTimer(self, singleShot=True, interval=300)
        self._counts_timer.timeout.connect(self._update_counts)
        self.hold_hooks(True)

    def hook_viewer(self) -> None:
        """Follow the viewer and bind the review keys on the annotation layer (see :mod:`._hooks`)."""
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self.viewer.layers.events.inserted.connect(self._on_layer_inserted)
        self.inputs.connect_viewer()
        self._on_layer_removed()  # catch up with layers removed while the panel was closed
        self._bind_keys(True)
        self._blind()

    def release_viewer(self) -> None:
        """Save, unbind the keys and stop following the viewer."""
        self.autosave()
        self._bind_keys(False)
        self.blinds.lift()
        self.viewer.layers.events.removed.disconnect(self._on_layer_removed)
        self.viewer.layers.events.inserted.disconnect(self._on_layer_inserted)
        self.inputs.disconnect_viewer()

    # ---- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        layout = scrolling_layout(self)  # the widget fits any screen height: what does not fit scrolls
        self.inputs = SubjectInputs(self.viewer)
        layout.addWidget(self.inputs.native)
        self.folder_edit = FileEdit(
            label="Save to", mode="d", nullable=True, tooltip="Empty: <dataset>/derivatives/deepmir-annotations/"
        )
        self.folder_edit.line_edit.native.setPlaceholderText("<dataset>/derivatives/deepmir-annotations/")
        self.rater_edit = LineEdit(
            label="Rater", value=default_rater(), tooltip="Your name or initials: recorded with every decision"
        )
        where = Container(widgets=[self.folder_edit, self.rater_edit], labels=True)
        where.margins = (0, 0, 0, 0)
        layout.addWidget(where.native)
        self.blinded_check = CheckBox(
            text="Blinded first pass (unranked, no suggestions)",
            tooltip="Chosen before a subject's session starts; a blinded session stays blinded",
        )
        layout.addWidget(self.blinded_check.native)
        self.start_button = QPushButton("Start / resume")
        self.start_button.setToolTip("Open the subject's annotation (or resume it where it was left) as a layer")
        self.start_button.clicked.connect(lambda: self.start())
        layout.addWidget(self.start_button)
        self.mode_label = QLabel(wordWrap=True)
        layout.addWidget(self.mode_label)

        classes = QGroupBox("Paint class")
        class_layout = QGridLayout(classes)
        self.class_group = QButtonGroup(self)
        self.class_buttons = {}
        for row, value in enumerate((CMB, IRON)):
            button = QRadioButton(CLASS_TITLES[value])
            button.setToolTip(f"Paint with the brush as {CLASS_TITLES[value]} (Shift+{'C' if value == CMB else 'I'})")
            button.setStyleSheet(f"color: {_colour(value)}")
            self.class_group.addButton(button, value)
            self.class_buttons[value] = button
            class_layout.addWidget(button, row, 0)
        self.class_buttons[CMB].setChecked(True)
        self.class_group.idToggled.connect(lambda value, on: on and self._set_paint_class(value))
        self.brush_mm = FloatSpinBox(
            min=0.5, max=20.0, step=0.5, value=2.0, tooltip="Brush diameter in millimetres ([ and ] change it too)"
        )
        self.brush_mm.changed.connect(self._apply_brush_size)
        class_layout.addWidget(QLabel("brush (mm)"), 2, 0)
        class_layout.addWidget(self.brush_mm.native, 2, 1)
        self.counts_label = QLabel()
        class_layout.addWidget(self.counts_label, 3, 0, 1, 2)
        layout.addWidget(classes)

        find_row = QHBoxLayout()
        self.find_button = QPushButton("Find candidates")
        self.find_button.clicked.connect(self.find_candidates)
        self.find_button.setToolTip("List dark SWI blobs to review, best first (in a random order when blinded)")
        self.use_model = CheckBox(
            text="use model probabilities",
            tooltip="Rank candidates with the probability layers of a detection (never in a blinded session)",
        )
        find_row.addWidget(self.find_button)
        find_row.addWidget(self.use_model.native)
        layout.addLayout(find_row)
        self.busy = QProgressBar(minimum=0, maximum=0, visible=False, textVisible=False)
        layout.addWidget(self.busy)
        self.progress_label = QLabel("no candidates yet")
        layout.addWidget(self.progress_label)
        self.candidate_list = QListWidget()
        self.candidate_list.currentRowChanged.connect(self._on_row_selected)
        self.candidate_list.setMinimumHeight(150)
        self.candidate_list.setToolTip("Candidates and your decisions; a click shows one in the viewer")
        layout.addWidget(self.candidate_list, stretch=1)

        actions = QGridLayout()
        for column, (label, slot) in enumerate((("◀ Previous", self.previous), ("Next ▶", self.next))):
            button = QPushButton(label)
            button.setToolTip(f"{'Previous' if slot == self.previous else 'Next'} candidate (Shift+N / N)")
            button.clicked.connect(slot)
            actions.addWidget(button, 0, column * 2, 1, 2 if column == 0 else 1)
        for key, column, row in (("C", 0, 1), ("I", 1, 1), ("R", 2, 1), ("Alt-C", 0, 2), ("Alt-I", 1, 2)):
            text, method, arguments = KEYS[key]
            label = text.split(": ", 1)[1] if key != "R" else "reject"
            button = QPushButton(f"{label} ({key.replace('-', '+')})")
            button.setToolTip(f"{text[:1].upper()}{text[1:]} and go to the next candidate")
            button.clicked.connect(lambda _=False, m=method, a=arguments: getattr(self, m)(*a))
            actions.addWidget(button, row, column)
        self.reject_reason = ComboBox(
            choices=[_REJECT_CHOICE, *REJECTION_REASONS],
            value=_REJECT_CHOICE,
            tooltip="Reject the candidate for a reason (vein, calcification, ...) and go to the next",
        )
        self.reject_reason.changed.connect(self._reject_chosen)
        actions.addWidget(self.reject_reason.native, 2, 2)
        layout.addLayout(actions)
        self.export_button = QPushButton("Export lesion table and rejected candidates")
        self.export_button.setToolTip("Save, then write the lesion table (with certainty) and the rejected candidates")
        self.export_button.clicked.connect(self.export)
        layout.addWidget(self.export_button)
        self.consensus_panel = ConsensusPanel(self)
        layout.addWidget(self.consensus_panel)

        self.guidance = QLabel(wordWrap=True, textFormat=Qt.TextFormat.RichText)
        self.guidance.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.guidance.setMinimumHeight(100)
        layout.addWidget(self.guidance)
        self.status_label = QLabel(wordWrap=True)  # the last result; autosaves are noted below it
        layout.addWidget(self.status_label)
        self.saved_label = QLabel(wordWrap=True, enabled=False)
        layout.addWidget(self.saved_label)
        keys = QCollapsible("Keys (on the annotation layer)")
        keys.setToolTip("The review keys act while the annotation layer is the selected layer")
        self.keys_label = QLabel(_keys_table(), textFormat=Qt.TextFormat.RichText)
        keys.addWidget(self.keys_label)
        layout.addWidget(keys)

    def _on_layer_inserted(self, event=None) -> None:
        self._update_use_model()

    def _on_layer_removed(self, event=None) -> None:
        self._update_use_model()
        if self.layer is not None and self.layer not in self.viewer.layers:
            self._release_layer(save=True)

    def _release_layer(self, *, save: bool) -> None:
        """Save, then let go of the annotation layer: its keys, paint hook and the autosave poll."""
        if self.layer is None:
            return
        if save:
            self.autosave()
        self._bind_keys(False)
        self.blinds.lift()
        self.layer.events.paint.disconnect(self._on_paint)
        self._poll_timer.stop()
        self.layer = None

    @property
    def blinded(self) -> bool:
        return self.session is not None and self.session.blinded

    def _update_use_model(self) -> None:
        """Model probabilities are offered when a prediction is open, never in a blinded session."""
        if self.blinded:
            self.use_model.value = False
        self.use_model.enabled = not self.blinded and bool(self._probability_layers())

    def _probability_layers(self) -> dict[int, object]:
        found = {}
        for layer in self.viewer.layers:
            info = layer.metadata.get("deepmir", {})
            if info.get("kind") == "probability" and tuple(layer.data.shape) == self._display_shape:
                found[int(info["class"])] = layer
        return found if set(found) == set(CLASS_NAMES) else {}

    # ---- session ------------------------------------------------------------------------------
    @shows_busy
    def start(self) -> None:
        """Open (or resume) the annotation of the chosen subject and show its annotation layer."""
        if self.inputs.problem:
            self._status(self.inputs.problem)
            return
        swi, qsm, t2 = (self.inputs.layers[m] for m in ("swi", "qsm", "t2"))
        self.autosave()
        self.subject = subject_from_layers(swi, qsm, t2, qsm_units=self.inputs.qsm_units)
        self.geometry = geometry_of(swi)
        self._display_shape = tuple(swi.data.shape)
        try:
            self.session = AnnotationStore(self.folder_edit.value).open(
                self.subject, rater=self.rater_edit.value.strip() or None, blinded=self.blinded_check.value
            )
        except ValueError as error:  # InputError: no file and no folder chosen
            self._status(str(error))
            return
        self.rater_edit.value = self.session.rater
        self._show_mode()
        self.locations = self._locations()
        name = layer_name(self.subject.name, "annotation")
        metadata = {"path": str(self.session.labels_path), "origin": "annotation", "subject": self.subject.name}
        layer_data = labels_layer_data(self.session.labels, self.geometry, name=name, metadata=metadata)
        self._release_layer(save=False)
        self.layer = add_layer(self.viewer, layer_data)
        self.layer.events.paint.connect(self._on_paint)
        self._bind_keys(True)
        self._set_paint_class(self.class_group.checkedId())
        self._apply_brush_size()
        self.viewer.reset_view()
        self._fit_zoom = camera_of(self.viewer).zoom
        self._activate_layer()
        self._blind()
        self._poll_timer.start()
        self._update_use_model()
        self._show_candidates()
        self._update_counts()
        self._status(" ".join([f"Saving to {self.session.folder}", *self.session.warnings]))

    def _show_mode(self) -> None:
        """The session's mode: a blinded one says so and stays so; blinding is offered until candidates are listed."""
        session = self.session
        self.blinded_check.value = session.blinded
        self.blinded_check.enabled = not session.blinded and session.candidates is None and not session.decisions
        hidden = self.blinds.names()
        note = BLINDED_NOTE + (f"\n{BLINDED_HIDDEN_NOTE}{', '.join(hidden)}." if hidden else "")
        self.mode_label.setText(note if session.blinded else "")

    def _blind(self) -> None:
        """In a blinded session, hide every other layer that could hold a verdict (see :mod:`._blinding`)."""
        if self.blinded and self.layer is not None and self.layer in self.viewer.layers:
            self.blinds.lower(self.layer)
            self._show_mode()

    def _locations(self):
        for layer in self.viewer.layers:
            kind = layer.metadata.get("deepmir", {}).get("kind")
            if kind == "locations" and tuple(layer.data.shape) == self._display_shape:
                return self.geometry.from_display(np.asarray(layer.data))
        return None

    def autosave(self) -> bool:
        """Save the annotation layer if it changed since the last save; True when written."""
        if self.session is None or self.layer is None:
            return False
        labels = self.geometry.from_display(np.asarray(self.layer.data))
        written = self.session.save_labels(labels)
        if written:
            self._update_counts()
            self.saved_label.setText(f"autosaved {self.session.labels_path.name} at {time.strftime('%H:%M:%S')}")
            if self.session.mark_stale(labels):  # an undo or erase took an accepted candidate's paint
                self._show_candidates(move=False)
        return written

    def _on_paint(self, event=None) -> None:
        self._autosave_timer.start()
        self._counts_timer.start()

    def _bind_keys(self, on: bool) -> None:
        """Bind (or unbind) the review keys on the annotation layer."""
        if self.layer is None:
            return
        for key, (text, method, arguments) in KEYS.items():
            self.layer.bind_key(key, self._key_handler(text, method, arguments) if on else None, overwrite=True)

    # ---- painting -----------------------------------------------------------------------------
    def _set_paint_class(self, value: int) -> None:
        self.class_buttons[value].setChecked(True)
        if self.layer is not None:
            self.layer.selected_label = value

    def _apply_brush_size(self, *_) -> None:
        if self.layer is not None and self.geometry is not None:
            self.layer.brush_size = max(1, round(self.brush_mm.value / float(np.min(self.geometry.spacing))))

    def paint_mode(self, value: int) -> None:
        """Brush mode with class ``value``."""
        if self.layer is None:
            return
        self._set_paint_class(value)
        self._activate_layer()
        self.layer.mode = "paint"

    def _update_counts(self) -> None:
        if self.layer is None:
            self.counts_label.setText("")
            return
        from ..lesions.components import class_components

        data = np.asarray(self.layer.data)
        counts = {value: class_components(data, value)[1] for value in (CMB, IRON)}
        for value, button in self.class_buttons.items():
            button.setText(f"{CLASS_TITLES[value]}: {counts[value]}")
        self.counts_label.setText(f"{counts[CMB]} microbleeds, {counts[IRON]} iron deposits painted")

    def _activate_layer(self) -> None:
        if self.layer is not None and self.layer in self.viewer.layers:
            self.viewer.layers.selection.active = self.layer

    # ---- candidates ---------------------------------------------------------------------------
    def find_candidates(self) -> None:
        """Run the candidate finder in a thread; the list fills when it is done."""
        if self.session is None:
            self.start()
            if self.session is None:
                return
        from napari.qt.threading import create_worker

        from ..lesions.candidates import find_candidates

        probabilities = None
        layers = self._probability_layers()
        if self.use_model.value and layers and not self.blinded:
            lesion = [self.geometry.from_display(np.asarray(layers[v].data)) for v in (CMB, IRON)]
            probabilities = np.stack([np.clip(1.0 - lesion[0] - lesion[1], 0, 1), *lesion])
        self.worker = create_worker(
            find_candidates, self.subject, probabilities=probabilities, locations=self.locations
        )
        self.worker.returned.connect(self._candidates_found)
        self.worker.errored.connect(lambda error: self._status(f"candidate search failed: {error}"))
        self.worker.finished.connect(lambda: (self.busy.setVisible(False), self.find_button.setEnabled(True)))
        self.busy.setVisible(True)
        self.find_button.setEnabled(False)
        self._status("finding candidates…")
        self.worker.start()

    def _candidates_found(self, table) -> None:
        self.session.set_candidates(table)
        self.session.set_position(0)
        self._show_mode()
        self._show_candidates()
        if self.blinded:
            from ..lesions.candidates import BLINDED_CAP, USEFUL_SCORE_SHARE

            self._status(
                f"{len(self.session.candidates)} of {len(table)} candidates, in a random order (blinded): the useful "
                f"list, scoring at least {USEFUL_SCORE_SHARE:.0%} of the best, at most {BLINDED_CAP}"
            )
        else:
            self._status(f"{len(table)} candidates, best first")

    def _show_candidates(self, *, move: bool = True) -> None:
        self.candidate_list.blockSignals(True)
        self.candidate_list.clear()
        table = None if self.session is None else self.session.candidates
        if table is not None:
            for _, row in table.iterrows():
                self.candidate_list.addItem(QListWidgetItem())
                self._describe_row(int(row.name))
        self.candidate_list.blockSignals(False)
        if table is not None and len(table) and move:
            self.go_to(self.session.position)
        elif table is not None and len(table):
            self.candidate_list.setCurrentRow(self.session.position)
        self._update_progress()

    def _describe_row(self, index: int) -> None:
        row = self.session.candidates.iloc[index]
        decision = self.session.decision_for(row)
        verdict = "·" if decision is None else _DECISION_TEXT[decision.decision]
        if decision is not None and (decision.certainty or decision.reason):
            verdict += f" ({decision.certainty})" if decision.certainty else f": {decision.reason}"
        if decision is not None and decision.stale:
            verdict += " (stale: its paint is gone; decide again)"
        evidence = f"{float(row['diameter_mm']):.1f} mm  {_ppb(float(row.get('qsm_contrast_ppb', math.nan)))}"
        suggestion = "" if self.blinded else f"  {row['suggested_class']}"
        suggestion = f"  {row['calls']}" if "calls" in row else suggestion
        text = f"#{int(row['rank'])}{suggestion}  {evidence}  → {verdict}"
        item = self.candidate_list.item(index)
        item.setText(text)
        if decision is not None and decision.decision != REJECTED and not decision.stale:
            item.setForeground(QColor(_colour(CMB if decision.decision == ACCEPTED[CMB] else IRON)))
        elif decision is not None:
            item.setForeground(QColor("gray"))

    def _update_progress(self) -> None:
        table = None if self.session is None else self.session.candidates
        if table is None:
            self.progress_label.setText("no candidates yet")
            return
        self.progress_label.setText(f"reviewed {self.session.reviewed} / {len(table)}")

    @property
    def current(self):
        """The candidate table row under review, or None."""
        table = None if self.session is None else self.session.candidates
        if table is None or not len(table):
            return None
        return table.iloc[self.session.position]

    def go_to(self, index: int) -> None:
        """Review candidate ``index``: jump the viewer to it and show its guidance."""
        table = self.session.candidates
        index = int(np.clip(index, 0, len(table) - 1))
        if index != self.session.position:
            self.session.set_position(index)
        self.candidate_list.blockSignals(True)
        self.candidate_list.setCurrentRow(index)
        self.candidate_list.scrollToItem(self.candidate_list.item(index), QListWidget.ScrollHint.PositionAtCenter)
        self.candidate_list.blockSignals(False)
        row = table.iloc[index]
        zoom = None if self._fit_zoom is None else self._fit_zoom * CANDIDATE_ZOOM
        centre_on(self.viewer, candidate_centre(row), zoom=zoom)
        show_marker(self.viewer, candidate_centre(row), grid=self.layer, lesion_diameter_mm=row["diameter_mm"])
        self._activate_layer()
        title = f"Candidate #{int(row['rank'])} of {len(table)}"
        self.guidance.setText(guidance_html(row.to_dict(), title=title, blinded=self.blinded))

    def _on_row_selected(self, index: int) -> None:
        if index >= 0 and self.session is not None:
            self.go_to(index)

    def next(self) -> None:
        if self.current is not None:
            self.go_to(self.session.position + 1)

    def previous(self) -> None:
        if self.current is not None:
            self.go_to(self.session.position - 1)

    def accept(self, value: int, certainty: str = DEFINITE) -> None:
        """Accept the candidate as class ``value``, ``definite`` or ``possible``; paint it and move on."""
        self._decide(value, certainty=certainty)

    def reject(self, reason: str = "other") -> None:
        """Reject the candidate for ``reason`` (:data:`~napari_deepmir.annotations.REJECTION_REASONS`), move on."""
        self._decide(None, reason=reason)

    def _reject_chosen(self, reason: str) -> None:
        if reason != _REJECT_CHOICE:
            self.reject(reason)
            self.reject_reason.value = _REJECT_CHOICE

    def _decide(self, value: int | None, **detail) -> None:
        """Paint (or, when rejecting, unpaint) the candidate's grown region, record the decision with its
        certainty or reason, move on."""
        row = self.current
        if row is None or self.layer is None:
            return
        try:
            region = np.nonzero(self.geometry.to_display(self._region_of(row)))
        except ValueError as error:  # InputError: a rater's label map changed under a consensus read
            self._status(str(error))
            return
        previous = self.session.decision_for(row)
        if value is not None:
            self.layer.data_setitem(region, value)  # one step of the layer's undo history
        elif previous is not None and previous.decision != REJECTED:
            was = CMB if previous.decision == ACCEPTED[CMB] else IRON
            painted = np.asarray(self.layer.data)[region] == was
            self.layer.data_setitem(tuple(axis[painted] for axis in region), 0)
        self.session.record(row, REJECTED if value is None else ACCEPTED[value], **detail)
        self.autosave()
        self._describe_row(self.session.position)
        self._update_progress()
        self.next()

    def _region_of(self, row) -> np.ndarray:
        """What a decision on ``row`` paints: the raters' lesion of a disagreement, else the grown candidate."""
        from ..lesions.candidates import grow_region

        return consensus_region(row) if is_consensus_candidate(row) else grow_region(self.subject, candidate_seed(row))

    # ---- guidance for painted lesions ---------------------------------------------------------
    def assess_at_cursor(self) -> None:
        """Show the guidance for the painted lesion (or the SWI blob) under the mouse cursor."""
        if self.layer is None:
            return
        from scipy import ndimage

        from ..lesions.candidates import grow_region
        from ..lesions.components import CONNECTIVITY_26
        from ..lesions.guidance import assess_region

        index = np.round(self.layer.world_to_data(self.viewer.cursor.position)).astype(int)[-3:]
        data = np.asarray(self.layer.data)
        if np.any(index < 0) or np.any(index >= data.shape):
            return
        value = int(data[tuple(index)])
        if value:
            components, _ = ndimage.label(data == value, structure=CONNECTIVITY_26)
            region = self.geometry.from_display(components == components[tuple(index)])
            title, labelled_as = f"Painted {CLASS_TITLES[value]}", CLASS_NAMES[value]
        else:
            voxel = np.round(self.geometry.napari_to_source_voxel(self.layer.data_to_world(index))).astype(int)
            region, title, labelled_as = grow_region(self.subject, voxel), "Dark blob under the cursor", None
        assessment = assess_region(region, self.subject, self.locations, labelled_as=labelled_as)
        evidence = assessment.as_dict() | {"flags": assessment.flags}
        self.guidance.setText(guidance_html(evidence, title=title, blinded=self.blinded))

    # ---- export -------------------------------------------------------------------------------
    def export(self) -> None:
        """Save, then write the lesion table (with certainty) and the rejected candidates (with reasons)."""
        if self.session is None:
            self._status("Start a session first")
            return
        self.autosave()
        try:
            paths = export_session(self.session, self.subject, locations=self.locations)
        except OSError as error:
            self._status(f"export failed: {error}")
            return
        self._status("exported " + ", ".join(path.name for path in paths) + f" to {self.session.folder}")

    # ---- keys and messages --------------------------------------------------------------------
    def _key_handler(self, text: str, method: str, arguments: tuple):
        def handler(layer):
            getattr(self, method)(*arguments)

        handler.__doc__ = text
        return handler

    def _status(self, text: str) -> None:
        self.status_label.setText(text)
