"""Compare sessions: a follow-up beside its baseline on one world grid, new lesions highlighted, reviewed by key,
and the ARIA-H grade exported.

Thin over :func:`napari_deepmir.longitudinal.run.run_comparison` (registration, lesions of both sessions,
matching, grade; written as ``deepmir longitudinal`` writes), :class:`~napari_deepmir.longitudinal.views.
ComparisonViews` (the follow-up resampled onto the baseline grid) and :class:`~napari_deepmir.longitudinal.
review.ChangeReview` (decisions autosaved, the reviewed grade exported). The follow-up is drawn to the right
of the baseline, both on the baseline's grid: one slice slider, one cursor height, the same anatomy side by side.
"""

from pathlib import Path

import numpy as np
from magicgui.widgets import Container, FileEdit, LineEdit
from napari.qt.threading import create_worker
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..io.display import DisplayGeometry
from ..layer_data import image_layer_data, labels_layer_data
from ..longitudinal.review import CONFIRMED, REJECTED, ChangeReview
from ..longitudinal.run import run_comparison
from ..longitudinal.views import STATUS_COLORS, ComparisonViews
from ..rating.decisions import default_rater
from ._hooks import HooksWhileShown
from ._layers import add_layer, camera_of, show_marker

#: Gap (mm) between the baseline and the follow-up drawn to its right.
GAP_MM = 10.0
#: Review keys (on the follow-up's change layer): key -> (what it does, method, arguments).
KEYS = {
    "N": ("next new lesion", "step", (1,)),
    "Shift-N": ("previous new lesion", "step", (-1,)),
    "C": ("confirm the new lesion", "decide", (CONFIRMED, "")),
    "R": ("reject: other", "decide", (REJECTED, "other")),
    "Alt-P": ("reject: persisting (not matched)", "decide", (REJECTED, "persisting (not matched)")),
    "Alt-E": ("reject: vein", "decide", (REJECTED, "vein")),
    "Alt-A": ("reject: artefact", "decide", (REJECTED, "artefact")),
}
TABLE_COLUMNS = ("change_id", "class", "status", "review", "distance_mm")
CHANGES_LAYER = "follow-up changes"


class CompareWidget(HooksWhileShown, QWidget):
    """Run or reopen a comparison of two sessions, review its new lesions by key, export the grade."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.comparison = self.views = self.review = self.worker = None
        self.current: int | None = None  # change id under review
        self._build()
        self.hold_hooks(True)

    def hook_viewer(self) -> None:
        self._bind_keys(True)

    def release_viewer(self) -> None:
        self._bind_keys(False)

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        self.baseline_edit = FileEdit(label="Baseline", mode="d")
        self.followup_edit = FileEdit(label="Follow-up", mode="d")
        self.baseline_labels_edit = FileEdit(label="Baseline labels", mode="r", nullable=True)
        self.followup_labels_edit = FileEdit(label="Follow-up labels", mode="r", nullable=True)
        self.out_edit = FileEdit(label="Save to", mode="d")
        self.rater_edit = LineEdit(label="Rater", value=default_rater())
        form = Container(
            widgets=[
                self.baseline_edit,
                self.followup_edit,
                self.baseline_labels_edit,
                self.followup_labels_edit,
                self.out_edit,
                self.rater_edit,
            ],
            labels=True,
        )
        form.margins = (0, 0, 0, 0)
        layout.addWidget(form.native)
        buttons = QHBoxLayout()
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("Empty labels: the shipped model detects lesions in that session")
        self.compare_button.clicked.connect(self.compare)
        self.export_button = QPushButton("Export grade")
        self.export_button.clicked.connect(self.export_grade)
        self.export_button.setEnabled(False)
        buttons.addWidget(self.compare_button)
        buttons.addWidget(self.export_button)
        layout.addLayout(buttons)
        self.grade_label = QLabel("")
        self.grade_label.setWordWrap(True)
        layout.addWidget(self.grade_label)
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.cellClicked.connect(lambda row, _: self.jump_to(int(self.table.item(row, 0).text())))
        layout.addWidget(self.table)
        keys = ", ".join(f"<b>{key}</b> {text}" for key, (text, _, _) in KEYS.items())
        help_label = QLabel(f"Keys on the '{CHANGES_LAYER}' layer: {keys}")
        help_label.setWordWrap(True)
        layout.addWidget(help_label)
        self.status_label = QLabel("Choose the two session folders, then Compare.")
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)

    # ---- comparing ----------------------------------------------------------------------------
    def compare(self) -> None:
        """Run the comparison in a thread worker; the layers and the table appear when it returns."""
        baseline, followup, out = self.baseline_edit.value, self.followup_edit.value, self.out_edit.value
        if not all(str(p) not in ("", ".") for p in (baseline, followup, out)):
            self.status_label.setText("Choose the baseline and follow-up folders and where to save.")
            return
        self.worker = create_worker(
            run_comparison,
            baseline,
            followup,
            out,
            baseline_labels=self.baseline_labels_edit.value or None,
            followup_labels=self.followup_labels_edit.value or None,
            overwrite=False,
            _connect={"returned": self._show, "errored": self._failed, "finished": self._finished},
            _start_thread=False,
        )
        self.compare_button.setEnabled(False)
        self.status_label.setText("Registering the follow-up, finding and matching lesions…")
        self.worker.start()

    def _failed(self, error) -> None:
        self.status_label.setText(f"Comparison failed: {error}")

    def _finished(self) -> None:
        self.worker = None
        self.compare_button.setEnabled(True)

    def _show(self, result) -> None:
        self.comparison, outputs = result
        self.review = ChangeReview.open(outputs, self.rater_edit.value or default_rater())
        self.views = ComparisonViews.of(self.comparison)
        subject = self.comparison.baseline.subject
        self.geometry = DisplayGeometry(subject.shape, subject.affine)
        self._offset = float(np.ptp(self._corners_x())) + GAP_MM
        self._add_layers()
        self._fill_table()
        self.export_button.setEnabled(True)
        self.status_label.setText(self.comparison.registration.describe())
        if self.review.new_ids:
            self.jump_to(self.review.new_ids[0])

    def _corners_x(self) -> np.ndarray:
        corners = np.array(np.meshgrid(*[(0, n - 1) for n in self.geometry.shape], indexing="ij")).reshape(3, -1)
        return (self.geometry.affine[:3, :3] @ corners + self.geometry.affine[:3, 3:4])[0]

    def _placed(self, layer_data: tuple, *, right: bool) -> tuple:
        data, kwargs, kind = layer_data
        if right:
            kwargs["affine"] = kwargs["affine"].copy()
            kwargs["affine"][2, 3] += self._offset  # napari's last world axis is scanner x
        return data, kwargs, kind

    def _add_layers(self) -> None:
        name, views = self.comparison.participant, self.views
        sessions = (self.comparison.baseline.label, self.comparison.followup.label)
        for image, title, right in (
            (views.baseline_swi, f"{name} {sessions[0]} SWI", False),
            (views.followup_swi, f"{name} {sessions[1]} SWI (registered)", True),
        ):
            add_layer(
                self.viewer,
                self._placed(image_layer_data(image, self.geometry, modality="swi", name=title), right=right),
            )
        self._bind_keys(False)
        for status, title, right in zip(
            views.status_maps(self.review.changes), ("baseline changes", CHANGES_LAYER), (False, True)
        ):
            data, kwargs, _ = self._placed(labels_layer_data(status, self.geometry, name=title), right=right)
            kwargs.update(colormap=STATUS_COLORS, opacity=0.8)
            if title in self.viewer.layers:
                self.viewer.layers.remove(title)
            self.viewer.add_labels(data, **kwargs)
        self.viewer.layers.selection.active = self.viewer.layers[CHANGES_LAYER]
        self.viewer.reset_view()  # both sessions in sight
        self._bind_keys(True)

    def _refresh_status(self) -> None:
        _, followup_status = self.views.status_maps(self.review.changes)
        self.viewer.layers[CHANGES_LAYER].data = self.geometry.to_display(followup_status)
        self._fill_table()

    def _fill_table(self) -> None:
        changes = self.review.changes
        self.table.setRowCount(len(changes))
        for i, (_, row) in enumerate(changes.iterrows()):
            for j, column in enumerate(TABLE_COLUMNS):
                value = int(row[column]) if column == "change_id" else row[column]
                text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else value
                self.table.setItem(i, j, QTableWidgetItem(f"{text:.1f}" if isinstance(text, float) else str(text)))
        self.grade_label.setText(self.review.grade.describe())

    # ---- review -------------------------------------------------------------------------------
    def jump_to(self, change_id: int) -> None:
        """Show change ``change_id``: its axial slice, the camera between the two sessions, rings on both."""
        row = self.review.row(change_id)
        self.current = change_id
        xyz = row[["x_mm", "y_mm", "z_mm"]].to_numpy(float)
        self.viewer.dims.set_point(0, xyz[2])
        camera = camera_of(self.viewer)
        camera.center = (xyz[1], xyz[0] + self._offset / 2)
        show_marker(self.viewer, xyz, grid=self.viewer.layers["baseline changes"])
        marker = self.viewer.layers["current lesion"]  # in the baseline grid's steps: the offset, in those steps too
        marker.data = np.vstack([marker.data[:1], marker.data[:1] + [0, 0, self._offset / marker.scale[-1]]])
        index = int(np.flatnonzero(self.review.changes["change_id"] == change_id)[0])
        self.table.selectRow(index)
        self.viewer.layers.selection.active = self.viewer.layers[CHANGES_LAYER]
        self.status_label.setText(f"change {change_id}: {row['class']} {row['status']}")

    def step(self, direction: int) -> None:
        """Go to the next (1) or previous (-1) new lesion."""
        ids = self.review.new_ids if self.review is not None else []
        if not ids:
            return
        at = ids.index(self.current) if self.current in ids else (-1 if direction > 0 else 0)
        self.jump_to(ids[(at + direction) % len(ids)])

    def decide(self, decision: str, reason: str) -> None:
        """Confirm or reject the new lesion under review (saved at once), then go to the next."""
        if self.review is None or self.current not in self.review.new_ids:
            self.status_label.setText("Go to a new lesion first (N).")
            return
        self.review.decide(self.current, decision, reason)
        self._refresh_status()
        self.step(1)

    def export_grade(self) -> Path | None:
        """Write the reviewed grade beside the comparison."""
        if self.review is None:
            return None
        path = self.review.export_grade()
        self.status_label.setText(f"{self.review.grade.describe()} -> {path}")
        return path

    def _bind_keys(self, on: bool) -> None:
        if CHANGES_LAYER not in self.viewer.layers:
            return
        layer = self.viewer.layers[CHANGES_LAYER]
        for key, (text, method, arguments) in KEYS.items():
            layer.bind_key(key, self._key_handler(text, method, arguments) if on else None, overwrite=True)

    def _key_handler(self, text: str, method: str, arguments: tuple):
        def handler(layer):
            getattr(self, method)(*arguments)

        handler.__doc__ = text
        return handler
