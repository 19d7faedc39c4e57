"""Labelling the shipped sample in a real viewer: the annotations go to the user's data folder, never into
the installed package."""

import os
from pathlib import Path

import napari_deepmir
from napari_deepmir.rating.store import user_annotations_dir


def _package_files() -> set[Path]:
    package = Path(napari_deepmir.__file__).parent
    return {p for p in package.rglob("*") if "__pycache__" not in p.parts}


def test_the_samples_annotations_go_to_the_user_data_folder(make_napari_viewer):
    before = _package_files()
    viewer = make_napari_viewer()
    viewer.open_sample("napari-deepmir", "synthetic_subject")
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Label lesions")
    widget.start_button.click()  # no folder chosen: the default one
    widget.layer.paint(tuple(s // 2 for s in widget.layer.data.shape), 1)
    assert widget.autosave()

    saved = widget.session.labels_path
    assert saved.exists() and user_annotations_dir() in saved.parents
    assert Path(os.environ["XDG_DATA_HOME"]) in saved.parents  # platformdirs' user data folder (isolated here)
    assert str(widget.session.folder) in widget.status_label.text()  # the rater is told where
    assert _package_files() == before  # nothing written into the package


def test_starting_a_session_shows_the_busy_cursor(make_napari_viewer, tmp_path):
    """Opening a session writes the subject's images and reads its labels on the GUI thread: the cursor says so."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QApplication

    viewer = make_napari_viewer()
    viewer.open_sample("napari-deepmir", "synthetic_subject")
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Label lesions")
    widget.folder_edit.value = tmp_path / "annotations"
    cursors = []

    def on_inserted(event):  # the annotation layer arrives while the session opens
        cursor = QApplication.overrideCursor()
        cursors.append(None if cursor is None else cursor.shape())

    viewer.layers.events.inserted.connect(on_inserted)
    widget.start_button.click()
    assert cursors == [Qt.CursorShape.WaitCursor]
    assert QApplication.overrideCursor() is None  # and back to normal after
