"""The plugin is discoverable by napari and the CLI answers without heavy imports."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import oblique_affine, sphere_world, write_nifti


def test_manifest_declares_reader_writer_sample_and_widgets():
    import npe2

    manager = npe2.PluginManager.instance()
    manager.discover()
    manifest = manager.get_manifest("napari-deepmir")
    contributions = manifest.contributions
    assert {w.display_name for w in contributions.widgets} == {
        "Detect lesions",
        "Label lesions",
        "Fine-tune model",
        "Lesion table",
        "Compare sessions",
    }
    assert contributions.readers and contributions.writers and contributions.sample_data
    for command in contributions.commands:  # every command points at an importable object
        assert command.exec is not None or command.python_name
        module, _, attribute = command.python_name.partition(":")
        assert hasattr(__import__(module, fromlist=[attribute]), attribute), command.python_name


@pytest.mark.parametrize(
    ("menu", "command", "title"),
    [
        ("napari/layers/segment", "napari-deepmir.detect", "Detect lesions"),
        ("napari/layers/annotate", "napari-deepmir.annotate", "Label lesions"),
        ("napari/layers/measure", "napari-deepmir.lesion_table", "Lesion table"),
        ("napari/layers/measure", "napari-deepmir.compare", "Compare sessions"),
    ],
)
def test_napari_layers_menus_open_the_plugin_widgets(make_napari_viewer, menu, command, title):
    from napari._app_model import get_app_model

    viewer = make_napari_viewer()
    app = get_app_model()
    assert command in [item.command.id for item in app.menus.get_menu(menu) if hasattr(item, "command")]
    app.commands.execute_command(command).result()  # what choosing the menu entry does
    assert any(title in name for name in viewer.window.dock_widgets)


def test_the_napari_hub_finds_urls_licence_os_and_a_readme_picture():
    import re
    from pathlib import Path

    toml = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    root = Path(__file__).resolve().parent.parent
    project = toml.loads((root / "pyproject.toml").read_text())["project"]  # what the package metadata is built from
    assert {"Homepage", "Documentation", "Bug Tracker"} <= set(project["urls"])
    classifiers = project["classifiers"]
    assert "Framework :: napari" in classifiers
    assert any(c.startswith("License ::") for c in classifiers)
    assert any(c.startswith("Operating System ::") for c in classifiers)
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", (root / "README.md").read_text())
    # absolute, so the picture shows on PyPI and the hub, and of a file in this repository's main branch
    raw = f"{project['urls']['Source Code'].replace('github.com', 'raw.githubusercontent.com')}/main/"
    assert pictures and all(picture.startswith(raw) for picture in pictures)
    assert all((root / picture.removeprefix(raw)).is_file() for picture in pictures)


def test_cli_help_does_not_import_torch_or_napari():
    code = (
        "import sys; from napari_deepmir.cli import build_parser; build_parser(); "
        "print('torch' in sys.modules, 'napari' in sys.modules, 'qtpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False"]


def test_info_describes_a_subject_and_reports_bad_input_in_one_line(tmp_path, capsys):
    from napari_deepmir.cli import main

    affine = oblique_affine()
    head = sphere_world((64, 64, 24), affine, (0, -20, -20), 30) * 100.0 + np.random.default_rng(1).random((64, 64, 24))
    folder = tmp_path / "sub-05"
    folder.mkdir()
    write_nifti(folder / "sub-05_swi.nii.gz", head.astype(np.float32), affine)
    write_nifti(folder / "sub-05_Chimap.nii.gz", (head > 50) * np.float32(0.05), affine)
    assert main(["info", "--subject", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "sub-05: grid (64, 64, 24) voxels of 0.8 x 0.8 x 2 mm" in out and "QSM units: ppm" in out
    assert main(["info", "--swi", str(tmp_path / "absent_swi.nii.gz")]) == 2
    assert capsys.readouterr().err.strip() == f"deepmir info: error: {tmp_path / 'absent_swi.nii.gz'}: file not found"


@pytest.mark.parametrize("argv", [["--help"], ["predict", "--help"]])
def test_console_script_help(argv):
    result = subprocess.run(
        [sys.executable, "-m", "napari_deepmir.cli", *argv], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "usage: deepmir" in result.stdout
