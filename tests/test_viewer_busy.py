"""The pauses of 1-4 s a user met with no sign of life (Open Sample, Open Folder, the first Detect open, Fine-tune's
Start) show the wait cursor, and the cursor comes back after each."""

import numpy as np
import pytest
from conftest import oblique_affine, write_nifti
from qtpy.QtCore import Qt
from qtpy.QtGui import QCursor
from qtpy.QtWidgets import QApplication


@pytest.fixture
def cursors_set(monkeypatch):
    """The shapes of the cursors put over the application (Qt's call still runs; only recorded)."""
    shapes = []
    set_cursor = QApplication.setOverrideCursor

    def record(cursor):
        shapes.append(QCursor(cursor).shape())
        set_cursor(cursor)

    monkeypatch.setattr(QApplication, "setOverrideCursor", staticmethod(record))
    return shapes


def _subject_folder(tmp_path):
    folder = tmp_path / "sub-003"
    folder.mkdir()
    swi = np.random.default_rng(0).uniform(50, 100, (24, 20, 8)).astype(np.float32)
    write_nifti(folder / "sub-003_swi.nii.gz", swi, oblique_affine((0.8, 0.8, 2.0), 0.0))
    return folder


def test_the_wait_cursor_shows_over_each_pause(make_napari_viewer, cursors_set, tmp_path):
    viewer = make_napari_viewer()
    actions = {
        "Open Sample": lambda: viewer.open_sample("napari-deepmir", "synthetic_subject"),
        "Open Folder": lambda: viewer.open(str(_subject_folder(tmp_path)), plugin="napari-deepmir"),
        "first Detect open": lambda: viewer.window.add_plugin_dock_widget("napari-deepmir", "Detect lesions"),
        "Fine-tune Start": lambda: viewer.window.add_plugin_dock_widget("napari-deepmir", "Fine-tune model")[
            1
        ].start_button.click(),
    }
    without = []
    for name, action in actions.items():
        cursors_set.clear()
        action()
        if Qt.CursorShape.WaitCursor not in cursors_set:
            without.append(name)
        assert QApplication.overrideCursor() is None, name  # and the normal cursor after it
    assert without == []
