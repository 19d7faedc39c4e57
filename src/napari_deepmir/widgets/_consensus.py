"""The consensus read of the labelling widget: open an agreement's disagreements.tsv, export the consensus.

Thin over :mod:`napari_deepmir.rating.consensus`: the session is the labelling widget's own (same keys, autosave and
resume), kept in ``consensus/`` beside the table; this panel only opens it and exports it.
"""

from pathlib import Path

import numpy as np
from magicgui.widgets import FileEdit
from qtpy.QtWidgets import QGroupBox, QLabel, QPushButton, QVBoxLayout

from ..io import InputError
from ..rating.consensus import agreement_text, consensus_root, export_consensus, start_consensus


class ConsensusPanel(QGroupBox):
    """Open two raters' disagreements in the labelling widget ``labelling``, decide each by key, export."""

    def __init__(self, labelling):
        super().__init__("Consensus read of two raters")
        self.labelling = labelling
        #: The consensus map's agreement with each rater, after an export (see ``consensus.consensus_agreement``).
        self.report = None
        layout = QVBoxLayout(self)
        self.table_edit = FileEdit(
            label="Disagreements",
            filter="*.tsv",
            tooltip="disagreements.tsv of `deepmir agreement`; the consensus is saved in consensus/ beside it",
        )
        layout.addWidget(self.table_edit.native)
        self.open_button = QPushButton("Open disagreements")
        self.open_button.setToolTip(
            "Review the chosen subject's disagreements with the review keys; 'Blinded' hides who said what"
        )
        self.open_button.clicked.connect(self.open)
        layout.addWidget(self.open_button)
        self.export_button = QPushButton("Export consensus")
        self.export_button.setToolTip(
            "Write the consensus label map, lesion table and decisions, and report its agreement with each rater"
        )
        self.export_button.clicked.connect(self.export)
        layout.addWidget(self.export_button)
        self.result_label = QLabel(wordWrap=True)
        layout.addWidget(self.result_label)

    def open(self) -> None:
        """Start (or resume) the consensus read of the chosen subject in ``consensus/`` beside the table."""
        widget, path = self.labelling, Path(self.table_edit.value)
        if not path.is_file():
            widget._status(f"{path}: choose the disagreements.tsv of `deepmir agreement`")
            return
        widget.folder_edit.value = str(consensus_root(path))
        widget.start()
        if widget.session is None or widget.session.folder.parent != consensus_root(path):
            return
        try:
            started = start_consensus(widget.session, widget.subject, path, locations=widget.locations)
        except ValueError as error:  # InputError: no disagreement of this subject, other grid, unreadable map
            widget._status(str(error))
            return
        widget.layer.data = np.asarray(widget.geometry.to_display(widget.session.labels)).copy()
        widget._show_mode()
        widget._show_candidates()
        widget._update_counts()
        verb = "Started" if started else "Resumed"
        count = len(widget.session.candidates)
        widget._status(f"{verb} the consensus read of {count} disagreements; saving to {widget.session.folder}")

    def export(self) -> None:
        """Save, then write the consensus map, its tables and its agreement with each rater; show the agreement."""
        widget = self.labelling
        if widget.session is None:
            widget._status("Open disagreements first")
            return
        widget.autosave()
        try:
            paths, self.report = export_consensus(widget.session, widget.subject, locations=widget.locations)
        except (InputError, OSError) as error:
            widget._status(f"consensus export failed: {error}")
            return
        undecided = self.report["undecided"]
        note = f"\n{undecided} disagreements undecided: left out of the consensus map" if undecided else ""
        self.result_label.setText(agreement_text(self.report) + note)
        widget._status(
            f"exported {widget.session.labels_path.name}, "
            + ", ".join(p.name for p in paths)
            + f" to {widget.session.folder}"
        )
