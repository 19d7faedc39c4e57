"""napari's "Choose reader" dialog: napari's builtin reader also claims NIfTI, so without a preference File > Open
asks on every file. Once the plugin has activated, NIfTI files and subject folders open with it, no dialog; a
preference the user made is kept."""

import numpy as np
import pytest
from conftest import oblique_affine, write_nifti
from qtpy.QtWidgets import QFileDialog

from napari_deepmir._activate import PLUGIN_NAME, READER_PATTERNS, prefer_this_reader


def _subject(tmp_path):
    folder = tmp_path / "sub-002"
    folder.mkdir()
    affine = oblique_affine((0.8, 0.8, 2.0), 0.0)
    swi = np.random.default_rng(0).uniform(50, 100, (24, 20, 8)).astype(np.float32)
    return folder, write_nifti(folder / "sub-002_swi.nii.gz", swi, affine)


def _activate_as_npe2_does():
    """What npe2 runs when the plugin first does something in a napari session (here the session was reset)."""
    import npe2
    from npe2._plugin_manager import _call_python_name

    manager = npe2.PluginManager.instance()
    _call_python_name(manager.get_manifest(PLUGIN_NAME).on_activate, args=(manager.get_context(PLUGIN_NAME),))


@pytest.fixture
def file_menu(make_napari_viewer, monkeypatch):
    """A viewer and ``open(path)``: File > Open File(s)... (or Open Folder...) with ``path`` picked in the file
    dialog; a "Choose reader" dialog, if napari shows one, is recorded and cancelled."""
    from napari._app_model import get_app_model
    from napari._qt.dialogs.qt_reader_dialog import QtReaderDialog

    viewer = make_napari_viewer()
    asked = []
    monkeypatch.setattr(QtReaderDialog, "exec_", lambda dialog: asked.append(dialog._current_file) or 0)

    def open_with_menu(path):
        monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: ([str(path)], ""))
        monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(path))
        command = "open_folder_dialog" if path.is_dir() else "open_files_dialog"
        get_app_model().commands.execute_command(f"napari.window.file.{command}").result()

    return viewer, open_with_menu, asked


def test_file_open_reads_nifti_and_subject_folders_with_the_plugin_without_asking(file_menu, tmp_path):
    from pathlib import Path

    viewer, open_with_menu, asked = file_menu
    folder, swi = _subject(tmp_path)
    open_with_menu(Path(swi))
    assert asked and not viewer.layers  # napari alone: two readers claim the file, so it asks

    _activate_as_npe2_does()
    open_with_menu(Path(swi))
    open_with_menu(folder)
    assert len(asked) == 1  # not asked again
    assert [layer.name for layer in viewer.layers] == ["sub-002 SWI", "sub-002 SWI [1]"]
    assert all("deepmir" in layer.metadata for layer in viewer.layers)  # this plugin's layers, in millimetres


def test_a_readers_preference_the_user_made_or_removed_is_kept(make_napari_viewer):
    from napari.settings import get_settings

    make_napari_viewer()
    plugins = get_settings().plugins
    plugins.extension2reader = {"*.nii": "napari"}  # the user's choice, made before the plugin was installed
    assert prefer_this_reader() == [p for p in READER_PATTERNS if p != "*.nii"]
    assert plugins.extension2reader["*.nii"] == "napari"

    plugins.extension2reader = {"*.nii": "napari"}  # then the user removes the plugin's choices in Preferences
    assert prefer_this_reader() == []
    assert plugins.extension2reader == {"*.nii": "napari"}
