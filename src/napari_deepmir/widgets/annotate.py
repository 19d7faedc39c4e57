"""Guided two-class labelling: review candidates by key (definite / possible, a reason for each rejection),
paint what the detector missed, autosave, export; optionally blinded (unranked, no suggestions).

Thin over :mod:`napari_deepmir.rating` (the store), :mod:`napari_deepmir.lesions.candidates`
(candidates, grown regions) and :mod:`napari_deepmir.lesions.guidance` (the protocol's evidence).
"""

import math
import time

import numpy as np
from napari.qt.threading import create_worker
from qtpy.QtCore import QTimer
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QListWidget,
    QListWidgetItem,
    QWidget,
)
from scipy import ndimage

from ..conventions import CLASS_NAMES, CLASS_TITLES, CMB, IRON
from ..layer_data import labels_layer_data, layer_name
from ..lesions.candidates import BLINDED_CAP, USEFUL_SCORE_SHARE, find_candidates, grow_region
from ..lesions.components import CONNECTIVITY_26, class_components
from ..lesions.guidance import assess_region
from ..rating.consensus import consensus_region, is_consensus_candidate
from ..rating.decisions import (
    ACCEPTED,
    DEFINITE,
    REJECTED,
    candidate_centre,
    candidate_seed,
)
from ..rating.session import export_session
from ..rating.store import AnnotationStore
from ._annotate_layout import AnnotateLayout
from ._annotate_text import DECISION_TEXT, KEYS, REJECT_CHOICE, class_colour, guidance_html, ppb_text
from ._blinding import Blinds
from ._busy import shows_busy
from ._docking import TabbedPanel
from ._hooks import HooksWhileShown
from ._layers import add_layer, camera_of, centre_on, geometry_of, show_marker, subject_from_layers
from ._lesions import CompanionLayers, class_probabilities, companion_layers

BLINDED_NOTE = (
    "Blinded session: candidates in a random order, no suggestions, no model probabilities. It stays blinded."
)
BLINDED_HIDDEN_NOTE = "Hidden while it runs (shown again when it ends or this panel closes): "
#: Delay (ms) between the last brush stroke and the autosave; unsignalled edits (undo) are saved every few seconds.
AUTOSAVE_DELAY_MS = 1500
AUTOSAVE_POLL_MS = 5000
#: A candidate is shown this many times larger than the whole-brain view.
CANDIDATE_ZOOM = 2.0


class AnnotateWidget(AnnotateLayout, HooksWhileShown, TabbedPanel, QWidget):
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
        self._swi_layer = None
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
        self.use_model.enabled = not self.blinded and bool(self._companions().probabilities)

    def _companions(self) -> CompanionLayers:
        """The probability and location layers on the grid of the session's SWI layer."""
        if self._swi_layer is None:
            return CompanionLayers()
        return companion_layers(self.viewer.layers, self._swi_layer)

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
        self._swi_layer = swi
        try:
            self.session = AnnotationStore(self.folder_edit.value).open(
                self.subject, rater=self.rater_edit.value.strip() or None, blinded=self.blinded_check.value
            )
        except ValueError as error:  # InputError: no file and no folder chosen
            self._status(str(error))
            return
        self.rater_edit.value = self.session.rater
        self._show_mode()
        locations = self._companions().locations
        self.locations = None if locations is None else self.geometry.from_display(np.asarray(locations.data))
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

        data = np.asarray(self.layer.data)
        counts = {value: class_components(data, value)[1] for value in CLASS_NAMES}
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

        probabilities = None
        if self.use_model.value and not self.blinded:
            probabilities = class_probabilities(self._companions().probabilities, self.geometry)
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
        verdict = "·" if decision is None else DECISION_TEXT[decision.decision]
        if decision is not None and (decision.certainty or decision.reason):
            verdict += f" ({decision.certainty})" if decision.certainty else f": {decision.reason}"
        if decision is not None and decision.stale:
            verdict += " (stale: its paint is gone; decide again)"
        evidence = f"{float(row['diameter_mm']):.1f} mm  {ppb_text(float(row.get('qsm_contrast_ppb', math.nan)))}"
        suggestion = "" if self.blinded else f"  {row['suggested_class']}"
        suggestion = f"  {row['calls']}" if "calls" in row else suggestion
        text = f"#{int(row['rank'])}{suggestion}  {evidence}  → {verdict}"
        item = self.candidate_list.item(index)
        item.setText(text)
        if decision is not None and decision.decision != REJECTED and not decision.stale:
            item.setForeground(QColor(class_colour(CMB if decision.decision == ACCEPTED[CMB] else IRON)))
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
        """Reject the candidate for ``reason`` (:data:`~napari_deepmir.rating.decisions.REJECTION_REASONS`), move on."""
        self._decide(None, reason=reason)

    def _reject_chosen(self, reason: str) -> None:
        if reason != REJECT_CHOICE:
            self.reject(reason)
            self.reject_reason.value = REJECT_CHOICE

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
        return consensus_region(row) if is_consensus_candidate(row) else grow_region(self.subject, candidate_seed(row))

    # ---- guidance for painted lesions ---------------------------------------------------------
    def assess_at_cursor(self) -> None:
        """Show the guidance for the painted lesion (or the SWI blob) under the mouse cursor."""
        if self.layer is None:
            return

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
