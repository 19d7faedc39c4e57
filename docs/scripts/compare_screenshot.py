"""Screenshot of the Compare sessions widget for docs/follow-up.md: a synthetic pair (the head moved, 6 new
microbleeds), each session's true lesions standing in for detections, the first new lesion rejected.

    xvfb-run -a .venv/bin/python docs/scripts/compare_screenshot.py docs/images/compare-sessions.png
"""

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")

import napari
from qt_settle import settle

from napari_deepmir.phantom import Acquisition
from napari_deepmir.phantom.sessions import generate_pair, write_pair
from napari_deepmir.widgets.compare import CompareWidget


def main(path: Path) -> None:
    with tempfile.TemporaryDirectory() as root:
        acquisition = Acquisition(shape=(128, 150, 40), voxel_mm=(1.25, 1.25, 3.0))
        pair = generate_pair(2026, acquisition, name="sub-demo", new_cmbs=6, resolved=True, max_rotation_deg=4)
        folder = write_pair(pair, Path(root))
        viewer = napari.Viewer(show=True)
        viewer.window._qt_window.resize(1600, 1000)
        widget = CompareWidget(viewer)
        widget.setMinimumWidth(480)
        viewer.window.add_dock_widget(widget, name="Compare sessions", area="right")
        widget.baseline_edit.value = folder / "ses-1"
        widget.followup_edit.value = folder / "ses-2"
        widget.baseline_labels_edit.value = folder / "ses-1" / "sub-demo_ses-1_dseg.nii.gz"
        widget.followup_labels_edit.value = folder / "ses-2" / "sub-demo_ses-2_dseg.nii.gz"
        widget.out_edit.value = Path(root) / "out"
        widget.compare()
        while widget.worker is not None:
            settle(0.1)
        widget.decide("rejected", "artefact")
        camera = viewer.camera
        camera.zoom = camera.zoom * 0.9
        settle()
        viewer.screenshot(str(path), canvas_only=False)
        print(widget.grade_label.text())
        viewer.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
