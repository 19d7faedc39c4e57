"""One detection pipeline, one output set: predict, demo, cohort and the Detect widget write the same files and
columns; outputs are never overwritten unless asked, a killed run is recognised, and output errors come first."""

import json
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from conftest import write_nifti

from napari_deepmir.cli import main
from napari_deepmir.detection.cohort import run_cohort
from napari_deepmir.detection.demo import run_demo
from napari_deepmir.io.derivatives import read_table
from napari_deepmir.io.outputs import LOOKUP, OutputSet, dataset_outputs
from napari_deepmir.lesions.guidance import REJECTING_FLAGS
from napari_deepmir.lesions.measure import COLUMNS

WORKER_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The README's demo (shipped model on a synthetic subject), run once for this module."""
    return run_demo(tmp_path_factory.mktemp("demo"), device="cpu")


def _set(folder, participant="sub-001"):
    """File names of a participant's output set in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(participant))


def _predict(subject_folder, out, *extra):
    return main(["predict", "--subject", str(subject_folder), "--device", "cpu", "--out", str(out), *extra])


def test_predict_demo_cohort_and_widget_write_the_same_files_and_columns(demo, tmp_path, make_napari_viewer, qtbot):
    subject_folder = demo.subject_folder
    demo_folder = demo.outputs.folder
    expected = _set(demo_folder)
    assert expected == sorted(p.name for p in OutputSet(demo_folder, "sub-001").files)
    assert (demo_folder / LOOKUP).exists() and (demo_folder / "scores.json").exists()
    reference = read_table(demo.outputs.lesions)
    assert list(reference.columns) == list(COLUMNS)
    assert len(reference) > 0 and reference["location"].notna().all()  # the phantom's location map was used

    assert _predict(subject_folder, tmp_path / "predict") == 0
    assert _set(tmp_path / "predict") == expected and (tmp_path / "predict" / LOOKUP).exists()

    cohort_root = tmp_path / "bids"
    shutil.copytree(subject_folder, cohort_root / "sub-001")
    run_cohort(cohort_root, tmp_path / "cohort", device="cpu", workers=1, progress=False)
    cohort_set = dataset_outputs(tmp_path / "cohort", "sub-001")
    assert _set(cohort_set.folder) == expected and (tmp_path / "cohort" / LOOKUP).exists()

    viewer = make_napari_viewer()
    viewer.open(str(subject_folder), plugin="napari-deepmir")
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Detect lesions")
    widget.device_box.value = "cpu"
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WORKER_TIMEOUT_MS)
    saved = widget.save_results(tmp_path / "widget")
    assert saved is not None and _set(tmp_path / "widget") == expected

    for folder in (tmp_path / "predict", cohort_set.folder, tmp_path / "widget"):
        table = read_table(folder / demo.outputs.lesions.name)
        assert list(table.columns) == list(reference.columns)
        assert len(table) == len(reference)
        assert np.allclose(table["volume_mm3"], reference["volume_mm3"]) and list(table["location"]) == list(
            reference["location"]
        )
        provenance = json.loads((folder / demo.outputs.marker.name).read_text())
        assert provenance["Complete"] is True and provenance["GeneratedBy"]["ModelSha256"]
        assert isinstance(provenance["RejectedByRules"], list)  # detections the protocol rejected, with reasons
        assert not any(flag in REJECTING_FLAGS for flags in table["flags"].fillna("") for flag in flags.split(";"))


def test_predict_never_overwrites_without_being_asked(demo, tmp_path, capsys):
    out = tmp_path / "out"
    assert _predict(demo.subject_folder, out) == 0
    lines = capsys.readouterr().err.splitlines()  # stderr is not a terminal here: three lines, not a bar's thousands
    assert len(lines) == 3 and lines[0].startswith("sub-001: model ") and "the subject has" in lines[0]
    assert lines[1] == "predict sub-001: started" and " batch in " in lines[2]
    labels = OutputSet(out, "sub-001").labels
    stamp = labels.stat().st_mtime_ns
    assert _predict(demo.subject_folder, out) == 2
    assert "--overwrite" in capsys.readouterr().err and labels.stat().st_mtime_ns == stamp
    assert _predict(demo.subject_folder, out, "--overwrite") == 0
    assert labels.stat().st_mtime_ns != stamp

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    mine = foreign / "sub-001_desc-deepmir_lesions.tsv"
    mine.write_text("my own notes\n")
    capsys.readouterr()
    assert _predict(demo.subject_folder, foreign) == 2
    err = capsys.readouterr().err
    assert "not written by napari-deepmir" in err and err.count("\n") == 1
    assert mine.read_text() == "my own notes\n" and _set(foreign) == ["sub-001_desc-deepmir_lesions.tsv"]


def test_a_killed_run_is_recognised_and_replaced_not_mixed(demo, tmp_path, capsys):
    """Killed between two writes: the marker still says incomplete, so neither predict nor a cohort trusts the
    files, and the next run replaces them all (no subject's labels beside another's table)."""
    out = tmp_path / "out"
    outputs = OutputSet(out, "sub-001")
    out.mkdir()
    outputs.marker.write_text(json.dumps({"Complete": False, "Files": [p.name for p in outputs.files]}))
    stale = np.full((4, 4, 4), 2, np.uint8)
    write_nifti(outputs.labels, stale, np.eye(4))  # another subject's labels, left by the killed run
    assert not outputs.is_complete()
    assert _predict(demo.subject_folder, out) == 0
    assert outputs.is_complete()
    assert nib.load(str(outputs.labels)).shape == nib.load(str(demo.outputs.labels)).shape
    assert len(read_table(outputs.lesions)) == len(demo.table)


def test_output_problems_are_one_line_errors_before_any_work(demo, tmp_path, capsys):
    afile = tmp_path / "a-file"
    afile.write_text("x")
    assert _predict(demo.subject_folder, afile) == 2
    err = capsys.readouterr().err
    assert "a-file" in err and "not a folder" in err and err.count("\n") == 1 and "Traceback" not in err

    locked = tmp_path / "locked"
    locked.mkdir()
    if subprocess.run(["chattr", "+i", str(locked)], capture_output=True, check=False).returncode != 0:
        pytest.skip("this file system cannot make a folder immutable (chattr +i)")
    try:
        assert _predict(demo.subject_folder, locked) == 2
        err = capsys.readouterr().err
        assert "locked" in err and "cannot write" in err and err.count("\n") == 1
        assert main(["cohort", str(demo.subject_folder.parent), "--out", str(locked), "--device", "cpu"]) == 2
        assert "cannot write" in capsys.readouterr().err
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)


def test_a_full_disk_is_a_one_line_error_and_leaves_no_complete_looking_set(demo, tmp_path):
    """A real full file system (an 8 kB tmpfs in a private mount namespace): the labels do not fit."""
    small = tmp_path / "small"
    small.mkdir()
    script = (
        f"mount -t tmpfs -o size=8k tmpfs {small} && {sys.executable} -m napari_deepmir.cli predict "
        f"--subject {demo.subject_folder} --device cpu --out {small}; code=$?; ls -a {small}; "
        f"cat {small}/sub-001_space-swi_desc-deepmir_dseg.json; exit $code"
    )
    if subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False).returncode != 0:
        pytest.skip("no user and mount namespaces here (unshare -rm)")
    run = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode in (1, 2), run.stderr
    errors = [line for line in run.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "Traceback" not in run.stderr
    assert '"Complete": false' in run.stdout and ".tmp" not in run.stdout
