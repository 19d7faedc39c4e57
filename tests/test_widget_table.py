"""The Lesion table widget in a real viewer: rows from known spheres, row click <-> viewer, live edits, export."""

import numpy as np
import pandas as pd
import pytest
from conftest import oblique_affine, sphere_world
from lesion_scenes import SPACING, scene, world_of, write_scene
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox

from napari_deepmir.io.derivatives import read_table
from napari_deepmir.widgets._layers import camera_of
from napari_deepmir.widgets.table import FIELD_OF_VIEW_MM

AFFINE = oblique_affine(SPACING)
#: (centre RAS mm, radius mm, QSM ppb): two microbleeds and, third, a sphere relabelled as an iron deposit.
SPHERES = [
    (world_of(AFFINE, (20, 22, 8)), 2.5, 400.0),
    (world_of(AFFINE, (44, 40, 15)), 3.0, 250.0),
    (world_of(AFFINE, (30, 46, 11)), 4.0, 120.0),
]


@pytest.fixture
def viewer_and_widget(make_napari_viewer, tmp_path, qtbot):
    swi, qsm, labels, affine = scene(SPHERES)
    labels[sphere_world(labels.shape, affine, SPHERES[2][0], SPHERES[2][1])] = 2
    folder = tmp_path / "sub-01"
    write_scene(folder, swi, qsm, labels, affine)
    viewer = make_napari_viewer(show=True)
    viewer.open(str(folder), plugin="napari-deepmir")
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Lesion table")
    return viewer, widget


def _shows_yellow(viewer) -> bool:
    """Whether the rendered canvas shows yellow (the ring marking a lesion)."""
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    return bool(((shot[..., 0] > 200) & (shot[..., 1] > 200) & (shot[..., 2] < 80)).any())


def _row_of(table: pd.DataFrame, centre) -> pd.Series:
    distance = np.linalg.norm(table[["x_mm", "y_mm", "z_mm"]].to_numpy() - centre, axis=1)
    return table.iloc[int(np.argmin(distance))]


def test_table_lists_the_spheres_with_their_measurements(viewer_and_widget):
    viewer, widget = viewer_and_widget
    assert widget.layer == viewer.layers["sub-01 labels"]
    assert widget.findChild(QComboBox).currentText() == "sub-01 labels"  # the picker shows the layer measured
    table = widget.table
    assert len(table) == 3 and widget.proxy.rowCount() == 3
    assert sorted(table["class"]) == ["cmb", "cmb", "iron"]
    for centre, radius, chi in SPHERES:
        row = _row_of(table, centre)
        assert np.linalg.norm(row[["x_mm", "y_mm", "z_mm"]].to_numpy(float) - centre) < 0.3
        assert row["qsm_mean_ppb"] == pytest.approx(chi, abs=0.5)  # the QSM layer on the grid is used
        assert row["volume_mm3"] == pytest.approx(4 / 3 * np.pi * radius**3, rel=0.15)
    assert "2 CMBs, 1 iron deposit" in widget.summary_label.text()


def test_columns_sort_as_numbers(viewer_and_widget):
    _, widget = viewer_and_widget
    column = list(widget.model.frame.columns).index("volume_mm3")
    widget.view.sortByColumn(column, Qt.SortOrder.DescendingOrder)
    shown = [float(widget.proxy.index(r, column).data(widget.proxy.sortRole())) for r in range(3)]
    assert shown == sorted(widget.table["volume_mm3"], reverse=True)


def test_clicking_a_row_moves_the_viewer_to_the_lesion(viewer_and_widget, qtbot):
    viewer, widget = viewer_and_widget
    for row in range(widget.proxy.rowCount()):
        lesion = widget.table.set_index("lesion_id").loc[int(widget.proxy.index(row, 0).data(widget.proxy.sortRole()))]
        rect = widget.view.visualRect(widget.proxy.index(row, 1))
        qtbot.mouseClick(widget.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        z, y, x = lesion["z_mm"], lesion["y_mm"], lesion["x_mm"]
        slab = viewer.dims.range[0].step / 2 + 1e-6  # dims snap the point to the nearest slice
        assert viewer.dims.point[0] == pytest.approx(z, abs=slab)
        assert camera_of(viewer).center[-2:] == pytest.approx((y, x), abs=1e-3)
        assert camera_of(viewer).zoom == pytest.approx(min(viewer.canvas.size) / FIELD_OF_VIEW_MM)
        labels = viewer.layers["sub-01 labels"]
        index = np.round(labels.world_to_data((viewer.dims.point[0], y, x))).astype(int)
        assert labels.data[tuple(index)] == lesion["label"]  # the shown slice cuts through the lesion
        ring = viewer.layers["current lesion"]  # a ring marks it, drawn on the slice shown
        ringed = ring.data_to_world(ring.data[0])
        assert ringed == pytest.approx((viewer.dims.point[0], y, x)) and _shows_yellow(viewer)


def test_clicking_a_lesion_in_the_viewer_selects_its_row(viewer_and_widget, qtbot):
    viewer, widget = viewer_and_widget
    target = int(widget.table.sort_values("volume_mm3")["lesion_id"].iloc[-1])
    widget.go_to_lesion(target)  # the lesion is now at the centre of the canvas
    widget.view.clearSelection()
    canvas = viewer.window._qt_viewer.canvas
    height, width = viewer.canvas.size
    for event in (canvas.events.mouse_press, canvas.events.mouse_release):
        event(pos=(width / 2, height / 2), modifiers=(), button=0)
    assert widget.selected_lesion() == target
    other = int(widget.table.loc[widget.table["lesion_id"] != target, "lesion_id"].iloc[0])
    widget.go_to_lesion(other)
    centre, point = camera_of(viewer).center, viewer.dims.point
    widget.select_lesion(target)  # selecting from the viewer side never moves the camera
    assert widget.selected_lesion() == target
    assert camera_of(viewer).center == centre and viewer.dims.point == point


def test_editing_the_labels_updates_the_table(viewer_and_widget, qtbot):
    viewer, widget = viewer_and_widget
    layer = viewer.layers["sub-01 labels"]
    corner = np.zeros(layer.data.shape, bool)
    corner[1:3, 2:4, 2:4] = True  # a new 8-voxel microbleed far from the spheres
    layer.data_setitem(np.nonzero(corner), 1)
    qtbot.waitUntil(lambda: len(widget.table) == 4, timeout=3000)
    cmb = _row_of(widget.table, SPHERES[0][0])  # ids are renumbered in scan order after each edit
    erased = np.nonzero(widget.measurement.geometry.to_display(widget.measurement.lesion_ids) == cmb["lesion_id"])
    layer.data_setitem(erased, 0)
    qtbot.waitUntil(lambda: len(widget.table) == 3, timeout=3000)
    assert np.min(np.linalg.norm(widget.table[["x_mm", "y_mm", "z_mm"]].to_numpy() - SPHERES[0][0], axis=1)) > 5


def test_export_writes_csv_and_tsv(viewer_and_widget, tmp_path):
    _, widget = viewer_and_widget
    for name in ("lesions.csv", "lesions.tsv"):
        written = read_table(widget.export(tmp_path / name))
        assert len(written) == 3 and list(written["lesion_id"]) == list(widget.table["lesion_id"])
        assert written["volume_mm3"].to_numpy() == pytest.approx(widget.table["volume_mm3"].to_numpy(), abs=1e-3)
    assert (tmp_path / "lesions.json").exists()  # the column sidecar


def test_lesion_id_layer_carries_the_table_as_features(viewer_and_widget):
    viewer, widget = viewer_and_widget
    widget.ids_check.value = True
    ids = viewer.layers["sub-01 labels ids"]
    assert not ids.visible and ids.data.shape == viewer.layers["sub-01 labels"].data.shape
    features = ids.features.set_index("index")
    for lesion in widget.table.itertuples():
        voxels = np.argwhere(ids.data == lesion.lesion_id)
        assert len(voxels) == lesion.voxels and features.loc[lesion.lesion_id, "class"] == lesion._3


def test_summary_section_gives_mars_counts_by_region_from_the_region_layer(make_napari_viewer, tmp_path, qtbot):
    from conftest import write_nifti

    from napari_deepmir.conventions import RIGHT_OFFSET

    swi, qsm, labels, affine = scene(SPHERES)
    labels[sphere_world(labels.shape, affine, SPHERES[2][0], SPHERES[2][1])] = 2
    regions = np.full(labels.shape, 1, np.uint8)  # frontal; the right half (i >= 32) on the right
    regions[32:] = 1 + RIGHT_OFFSET
    folder = tmp_path / "sub-01"
    write_scene(folder, swi, qsm, labels, affine)
    write_nifti(folder / "sub-01_desc-regions_dseg.nii.gz", regions, affine)
    viewer = make_napari_viewer(show=True)
    viewer.open(str(folder), plugin="napari-deepmir")
    assert "sub-01 regions" in viewer.layers
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Lesion table")
    assert widget.layer == viewer.layers["sub-01 labels"]  # the region map is no class layer to measure
    assert sorted(zip(widget.table["region"], widget.table["hemisphere"])) == [
        ("frontal", "left"),
        ("frontal", "left"),
        ("frontal", "right"),
    ]
    shown = dict(widget.summary_model.frame.itertuples(index=False, name=None))
    # the CMBs: one at i = 20 (left), one at i = 44 (right); the iron deposit (i = 30) is no microbleed
    assert shown["cmb_definite_frontal_left"] == 1 and shown["cmb_definite_frontal_right"] == 1
    assert shown["cmb_burden"] == "2-4" and shown["cmb_pattern"] == "strictly lobar"
    assert "cmb_definite_thalamus_left" not in shown  # zero counts are left out of the view


def _dock(viewer, widget):
    from napari._qt.widgets.qt_viewer_dock_widget import QtViewerDockWidget

    return next(d for d in viewer.window._qt_window.findChildren(QtViewerDockWidget) if d.widget() is widget)


def _calls_back(emitter, widget) -> bool:
    """Whether a napari event emitter still calls a method of ``widget``."""
    for callback in emitter.callbacks:
        owner = callback[0]() if isinstance(callback, tuple) else getattr(callback, "__self__", None)
        if owner is widget:
            return True
    return False


def test_closing_the_panel_lets_go_of_the_viewer_and_the_layer(viewer_and_widget, qtbot):
    viewer, widget = viewer_and_widget
    layer = viewer.layers["sub-01 labels"]
    assert _calls_back(layer.events.paint, widget) and _calls_back(viewer.layers.events, widget)
    _dock(viewer, widget).title.close_button.click()  # the user closes the panel (napari never calls close())
    assert not any(getattr(callback, "__self__", None) is widget for callback in viewer.mouse_drag_callbacks)
    assert not _calls_back(viewer.layers.events, widget)
    assert not any(_calls_back(event, widget) for event in (layer.events.data, layer.events.paint))
    corner = np.zeros(layer.data.shape, bool)
    corner[1:3, 2:4, 2:4] = True
    layer.data_setitem(np.nonzero(corner), 1)  # an edit after closing: a closed panel measures nothing
    qtbot.wait(1000)
    assert len(widget.table) == 3


def test_removing_the_measured_layer_lets_go_of_it(viewer_and_widget):
    viewer, widget = viewer_and_widget
    layer = viewer.layers["sub-01 labels"]
    viewer.layers.remove(layer)
    assert widget.layer is None and widget.table.empty
    assert not any(_calls_back(event, widget) for event in (layer.events.data, layer.events.paint))
