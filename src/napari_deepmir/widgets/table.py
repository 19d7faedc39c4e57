"""The Lesion table widget: one row per lesion of a Labels layer, linked both ways with the viewer.

Thin over :func:`napari_deepmir.widgets._lesions.measure_labels_layer` (measurement with the images
on the layer's grid) and :func:`napari_deepmir.io.derivatives.write_table_with_sidecar` (export).
"""

import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from magicgui.widgets import CheckBox, ComboBox, Container
from napari.layers import Labels
from qtpy.QtCore import QAbstractTableModel, QItemSelectionModel, QSortFilterProxyModel, Qt, QTimer
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableView,
    QWidget,
)
from superqt import QCollapsible

from ..io.derivatives import write_table_with_sidecar
from ..lesions.measure import COLUMNS, count_summary
from ..lesions.summary import SUMMARY_COLUMNS, participant_summary, summary_rows
from ._busy import shows_busy
from ._docking import TabbedPanel, scrolling_layout
from ._hooks import HooksWhileShown
from ._layers import centre_on, show_marker, subject_from_layers
from ._lesions import companion_layers, kind_of, measure_labels_layer, show_lesion_ids

#: Columns shown, in this order, when the table has them (export writes every column).
SHOWN_COLUMNS = (
    "lesion_id",
    "class",
    "volume_mm3",
    "diameter_mm",
    "axial_diameter_mm",
    "macrobleed",
    "extent_mm",
    "x_mm",
    "y_mm",
    "z_mm",
    "qsm_mean_ppb",
    "qsm_peak_ppb",
    "qsm_contrast_ppb",
    "swi_contrast",
    "probability_mean",
    "location",
    "suggested_class",
    "flags",
)
#: This plugin's Labels layers that hold no classes (lesion ids, location and region maps).
_NOT_CLASS_LAYERS = ("lesion_ids", "locations", "regions")
#: Delay (ms) between the last edit of the labels and the new table.
UPDATE_DELAY_MS = 300
#: Field of view (mm across the shorter side of the canvas) when jumping to a lesion.
FIELD_OF_VIEW_MM = 60.0
#: Sort role: the raw value (numbers sort as numbers; missing values first).
SORT_ROLE = Qt.ItemDataRole.UserRole


def _format(column: str, value) -> str:
    if isinstance(value, float | np.floating):
        if not math.isfinite(value):
            return ""
        return f"{value:.1f}" if column.endswith(("_mm", "_mm3", "_ppb")) else f"{value:.2f}"
    return str(value)


class DataFrameModel(QAbstractTableModel):
    """Read-only Qt model over a pandas DataFrame (display text formatted, raw values for sorting)."""

    def __init__(self, parent=None, descriptions: dict | None = None):
        super().__init__(parent)
        self.frame = pd.DataFrame()
        self.descriptions = descriptions or {}

    def set_frame(self, frame: pd.DataFrame) -> None:
        self.beginResetModel()
        self.frame = frame.reset_index(drop=True)
        self.endResetModel()

    def rowCount(self, parent=None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self.frame)

    def columnCount(self, parent=None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self.frame.columns)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        column = self.frame.columns[index.column()]
        value = self.frame.iat[index.row(), index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return _format(column, value)
        if role == SORT_ROLE:
            if isinstance(value, float | np.floating):
                return float(value) if math.isfinite(value) else -math.inf
            return value.item() if isinstance(value, np.generic) else value
        if role == Qt.ItemDataRole.ToolTipRole and column in self.descriptions:
            description, units = self.descriptions[column]
            return description + (f" ({units})" if units else "")
        if role == Qt.ItemDataRole.ToolTipRole and column == "quantity" and value in SUMMARY_COLUMNS:
            description, units = SUMMARY_COLUMNS[value]
            return description + (f" ({units})" if units else "")
        if role == Qt.ItemDataRole.TextAlignmentRole and isinstance(value, (int, float, np.number)):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return str(self.frame.columns[section])
        return None


class LesionTableWidget(HooksWhileShown, TabbedPanel, QWidget):
    """Every lesion of a Labels layer in a sortable table; a row click jumps to the lesion, a click on a
    lesion in the viewer selects its row; the table follows edits of the labels and exports to CSV/TSV.
    Its hooks on the viewer and the layer are held while the panel is open (see :mod:`._hooks`)."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.layer = None
        self.measurement = None
        self._ids_display = None
        self._checksum = None
        self._subject_key = None
        self._subject = None
        self._selecting_from_viewer = False
        self._build()
        self._update_timer = QTimer(self, singleShot=True, interval=UPDATE_DELAY_MS)
        self._update_timer.timeout.connect(self.update_table)
        self.hold_hooks(True)

    def hook_viewer(self) -> None:
        self.viewer.layers.events.connect(self._on_layers_event)
        self.viewer.mouse_drag_callbacks.append(self._on_mouse_drag)
        for event in self._layer_events():
            event.connect(self._schedule_update)
        self._refresh_layer_choices()  # the layers may have changed while the panel was closed

    def release_viewer(self) -> None:
        self._update_timer.stop()
        self.viewer.layers.events.disconnect(self._on_layers_event)
        if self._on_mouse_drag in self.viewer.mouse_drag_callbacks:
            self.viewer.mouse_drag_callbacks.remove(self._on_mouse_drag)
        for event in self._layer_events():
            event.disconnect(self._schedule_update)

    # ---- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        layout = scrolling_layout(self)
        self.layer_box = ComboBox(
            label="Labels",
            choices=self._choices,
            nullable=True,
            tooltip="The Labels layer (0 background, 1 microbleed, 2 iron deposit) whose lesions are listed",
        )
        self.layer_box.changed.connect(self.set_layer)
        self.ids_check = CheckBox(
            text="lesion-id layer with this table (napari Features table)",
            tooltip="Keep a hidden Labels layer of lesion ids whose features are this table",
        )
        self.ids_check.changed.connect(lambda on: on and self.update_table(force=True))
        form = Container(widgets=[self.layer_box, self.ids_check], labels=True)
        form.margins = (0, 0, 0, 0)
        layout.addWidget(form.native)
        self.summary_label = QLabel()
        layout.addWidget(self.summary_label)
        self.model = DataFrameModel(self, COLUMNS)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.setToolTip("One row per lesion: a click shows it in the viewer; a click on a header sorts")
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.verticalHeader().setVisible(False)
        self.view.clicked.connect(lambda index: self._on_row_chosen(index))
        self.view.selectionModel().currentRowChanged.connect(lambda index, _: self._on_row_chosen(index))
        self.view.setMinimumHeight(200)  # the panel scrolls rather than squeeze the table to a few rows
        layout.addWidget(self.view, stretch=1)
        self.summary_box = QCollapsible("Participant summary (MARS counts, burden, pattern)")
        self.summary_model = DataFrameModel(self)
        self.summary_view = QTableView()
        self.summary_view.setModel(self.summary_model)
        self.summary_box.setToolTip("Counts per MARS region and side, burden and pattern of the listed lesions")
        self.summary_view.verticalHeader().setVisible(False)
        self.summary_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.summary_view.setMinimumHeight(160)
        self.summary_box.addWidget(self.summary_view)
        layout.addWidget(self.summary_box)
        buttons = QHBoxLayout()
        self.export_button = QPushButton("Export CSV/TSV…")
        self.export_button.setToolTip("Write every column of the lesion table, with a JSON sidecar describing them")
        self.export_button.clicked.connect(self._export_clicked)
        buttons.addStretch()
        buttons.addWidget(self.export_button)
        layout.addLayout(buttons)

    def _choices(self, widget=None) -> list[tuple[str, object]]:
        return [
            (layer.name, layer)
            for layer in self.viewer.layers
            if isinstance(layer, Labels) and layer.data.ndim == 3 and kind_of(layer) not in _NOT_CLASS_LAYERS
        ]

    def _on_layers_event(self, event) -> None:
        if event.type in ("inserted", "removed", "moved", "reordered", "name"):
            self._refresh_layer_choices()

    def _refresh_layer_choices(self) -> None:
        """List the class Labels layers again; keep the tracked one, else take the active (or the last) one."""
        with self.layer_box.changed.blocked():
            self.layer_box.reset_choices()
            choices = [layer for _, layer in self._choices()]
            current = self.layer if self.layer in choices else None
            if current is None and choices:
                active = self.viewer.layers.selection.active
                current = active if active in choices else choices[-1]
            self.layer_box.value = current
        if current != self.layer:
            self.set_layer(current)
        elif self.layer is not None:
            self._update_timer.start()  # an SWI/QSM/probability layer may have come or gone

    # ---- the tracked layer --------------------------------------------------------------------
    def set_layer(self, layer) -> None:
        """Track ``layer`` (a class Labels layer, or None) and show its lesions."""
        if layer == self.layer:
            return
        for event in self._layer_events():
            event.disconnect(self._schedule_update)
        self.layer = layer
        self._checksum = None
        if self._hooked:
            for event in self._layer_events():
                event.connect(self._schedule_update)
        if layer is not None:
            if self.layer_box.value != layer:
                with self.layer_box.changed.blocked():
                    self.layer_box.value = layer
            self.ids_check.value = self._ids_layer_name() in self.viewer.layers
        self.update_table(force=True)

    def _layer_events(self) -> list:
        """The tracked layer's events that change its labels."""
        if self.layer is None:
            return []
        return [self.layer.events.data, self.layer.events.paint, self.layer.events.set_data]

    def _ids_layer_name(self) -> str:
        return f"{self.layer.name} ids"

    def _schedule_update(self, event=None) -> None:
        self._update_timer.start()

    def _subject_for(self, companions):
        """The subject of the SWI/QSM layers, cached while those layers' data stay the same."""
        if companions.swi is None:
            return None
        key = (id(companions.swi.data), None if companions.qsm is None else id(companions.qsm.data))
        if key != self._subject_key:
            self._subject_key, self._subject = key, subject_from_layers(companions.swi, companions.qsm)
        return self._subject

    @shows_busy
    def update_table(self, force: bool = False) -> None:
        """Measure the tracked layer again (skipped when its data did not change, unless ``force``)."""
        if self.layer is None or self.layer not in self.viewer.layers:
            self.measurement, self._ids_display = None, None
            self.model.set_frame(pd.DataFrame())
            self.summary_model.set_frame(pd.DataFrame())
            self.summary_label.setText("No Labels layer: open or detect lesions first.")
            return
        data = np.ascontiguousarray(self.layer.data)
        checksum = (data.shape, data.dtype.str, zlib.crc32(data))
        if checksum == self._checksum and not force:
            return
        self._checksum = checksum
        companions = companion_layers(self.viewer.layers, self.layer)
        self.measurement = measure_labels_layer(self.layer, companions, subject=self._subject_for(companions))
        self._ids_display = self.measurement.geometry.to_display(self.measurement.lesion_ids)
        table = self.measurement.table
        shown = [c for c in SHOWN_COLUMNS if c in table.columns and (not len(table) or table[c].notna().any())]
        selected = self.selected_lesion()
        self.model.set_frame(table[shown])
        self.summary_model.set_frame(summary_rows(self.summary))
        if selected is not None and selected in set(table["lesion_id"]):
            self.select_lesion(selected)
        images = (
            "no SWI layer on this grid: image columns empty"
            if companions.swi is None
            else "with " + "/".join(m.upper() for m in ("swi", "qsm") if getattr(companions, m) is not None)
        )
        self.summary_label.setText(f"{count_summary(table)} ({images})")
        if self.ids_check.value:
            show_lesion_ids(self.viewer, self.measurement, name=self._ids_layer_name())

    @property
    def summary(self) -> dict:
        """The participant summary (:func:`~napari_deepmir.lesions.summary.participant_summary`) of the table."""
        subject = (self.layer.metadata.get("deepmir", {}).get("subject") if self.layer is not None else None) or ""
        return participant_summary(self.table, subject or (self.layer.name if self.layer is not None else ""))

    @property
    def table(self) -> pd.DataFrame:
        """The full lesion table of the tracked layer (every column)."""
        return pd.DataFrame() if self.measurement is None else self.measurement.table

    # ---- table -> viewer ----------------------------------------------------------------------
    def _on_row_chosen(self, index) -> None:
        if index.isValid() and not self._selecting_from_viewer:
            lesion = self.model.frame.iloc[self.proxy.mapToSource(index).row()]["lesion_id"]
            self.go_to_lesion(int(lesion))

    def go_to_lesion(self, lesion_id: int) -> None:
        """Show a lesion: the axial slice through its centroid, camera centred on it, zoomed in, ringed."""
        row = self.table.set_index("lesion_id").loc[lesion_id]
        zoom = float(min(self.viewer.canvas.size)) / FIELD_OF_VIEW_MM
        centre = (row["x_mm"], row["y_mm"], row["z_mm"])
        centre_on(self.viewer, centre, zoom=zoom)
        show_marker(self.viewer, centre, grid=self.layer, lesion_diameter_mm=row["diameter_mm"])

    # ---- viewer -> table ----------------------------------------------------------------------
    def selected_lesion(self) -> int | None:
        """The lesion id of the selected row, or None."""
        rows = self.view.selectionModel().selectedRows()
        if not rows:
            return None
        return int(self.model.frame.iloc[self.proxy.mapToSource(rows[0]).row()]["lesion_id"])

    def select_lesion(self, lesion_id: int) -> None:
        """Select (and scroll to) a lesion's row without moving the viewer."""
        matches = np.flatnonzero(self.model.frame["lesion_id"].to_numpy() == lesion_id) if len(self.model.frame) else []
        if not len(matches):
            return
        index = self.proxy.mapFromSource(self.model.index(int(matches[0]), 0))
        self._selecting_from_viewer = True
        try:
            flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
            self.view.selectionModel().setCurrentIndex(index, flags)
            self.view.scrollTo(index)
        finally:
            self._selecting_from_viewer = False

    def lesion_at(self, world_position) -> int | None:
        """The lesion id of the tracked layer under a napari world position, or None."""
        if self._ids_display is None or self.layer is None:
            return None
        index = np.round(self.layer.world_to_data(np.asarray(world_position)[-3:])).astype(int)
        if np.any(index < 0) or np.any(index >= self._ids_display.shape):
            return None
        lesion = int(self._ids_display[tuple(index)])
        return lesion or None

    def _on_mouse_drag(self, viewer, event):
        """A click (press and release without moving) on a lesion selects its row."""
        dragged = False
        yield
        while event.type == "mouse_move":
            dragged = True
            yield
        if not dragged and self.layer is not None and self.layer.visible:
            lesion = self.lesion_at(event.position)
            if lesion is not None:
                self.select_lesion(lesion)

    # ---- export -------------------------------------------------------------------------------
    def export(self, path: str | Path) -> Path:
        """Write the full lesion table as CSV or TSV (by suffix) with its JSON column sidecar."""
        return write_table_with_sidecar(path, self.table, COLUMNS)

    def _export_clicked(self) -> None:
        if self.measurement is None:
            return
        start = Path(self.layer.metadata.get("deepmir", {}).get("path") or Path.cwd() / "labels").parent
        default = start / f"{self.layer.name.replace(' ', '_')}_lesions.tsv"
        path, chosen = QFileDialog.getSaveFileName(
            self, "Export lesion table", str(default), "Tab-separated (*.tsv);;Comma-separated (*.csv)"
        )
        if not path:
            return
        if Path(path).suffix.lower() not in (".csv", ".tsv"):
            path += ".csv" if "csv" in chosen else ".tsv"
        self.summary_label.setText(f"{count_summary(self.table)} — exported to {self.export(path)}")
