"""Screenshots of the viewer as a new user meets it, on a 1600x1000 screen (README, docs/getting-started.md):

- ``sample-opened.png``: File > Open Sample (SWI on top, QSM hidden below, the true lesions outlined);
- ``detection-marked.png``: Detect lesions run on the sample (filled) over the true lesions (outlined), a lesion
  chosen in the Lesion table and ringed;
- ``labelling-1600x1000.png``: the Label lesions panel reviewing a candidate (ringed), nothing cut off;
- ``four-panels-1600x1000.png``: Detect, Label lesions, Lesion table and Fine-tune open as one tab group, the
  window within the screen, Label lesions in front reviewing a candidate.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/scripts/viewer_screenshots.py docs/images
"""

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")

import napari
from qt_settle import settle

SCREEN = (1600, 1000)


def _viewer():
    viewer = napari.Viewer()
    window = viewer.window._qt_window
    window.resize(*SCREEN)
    window.move(0, 0)
    viewer.open_sample("napari-deepmir", "synthetic_subject")
    settle()
    return viewer


def _shot(viewer, path: Path) -> None:
    settle()
    viewer.window._qt_window.grab().save(str(path))
    print(f"wrote {path}")


def sample_screenshot(out: Path) -> None:
    viewer = _viewer()
    viewer.dims.set_point(
        0, viewer.dims.range[0].start + 0.55 * (viewer.dims.range[0].stop - viewer.dims.range[0].start)
    )
    _shot(viewer, out / "sample-opened.png")
    viewer.close()


def detection_screenshot(out: Path) -> None:
    viewer = _viewer()
    _, detect = viewer.window.add_plugin_dock_widget("napari-deepmir", "Detect lesions")
    detect.device_box.value = "cpu"
    started = time.monotonic()
    detect.run()
    while detect.worker is not None:
        settle(0.1)
    print(f"detection: {time.monotonic() - started:.1f} s; {detect.status_label.text()}")
    _, table = viewer.window.add_plugin_dock_widget("napari-deepmir", "Lesion table", tabify=True)
    table.set_layer(viewer.layers["sub-sample lesions"])
    largest = int(table.table.sort_values("volume_mm3")["lesion_id"].iloc[-1])
    table.select_lesion(largest)
    table.go_to_lesion(largest)
    _shot(viewer, out / "detection-marked.png")
    viewer.close()


def _review_first_candidate(widget, folder: str) -> None:
    """Start a labelling session saved in ``folder``, find the candidates and step to the first one."""
    widget.folder_edit.value = folder
    widget.start_button.click()
    widget.find_button.click()
    while widget.session.candidates is None or not widget.find_button.isEnabled():
        settle(0.1)
    widget.next()


def labelling_screenshot(out: Path) -> None:
    viewer = _viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Label lesions")
    viewer.layers["sub-sample true lesions"].visible = False
    with tempfile.TemporaryDirectory() as folder:
        _review_first_candidate(widget, folder)
        _shot(viewer, out / "labelling-1600x1000.png")
        print(f"labelling panel: minimum height {widget.minimumSizeHint().height()} px, shown {widget.height()} px")
        viewer.close()


def four_panels_screenshot(out: Path) -> None:
    viewer = _viewer()
    panels = {
        name: viewer.window.add_plugin_dock_widget("napari-deepmir", name)
        for name in ("Detect lesions", "Label lesions", "Lesion table", "Fine-tune model")
    }
    settle()
    dock, widget = panels["Label lesions"]
    viewer.layers["sub-sample true lesions"].visible = False
    with tempfile.TemporaryDirectory() as folder:
        _review_first_candidate(widget, folder)
        dock.raise_()
        window = viewer.window._qt_window
        _shot(viewer, out / "four-panels-1600x1000.png")
        print(f"four panels: window {window.width()} x {window.frameGeometry().height()} px")
        viewer.close()


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images")
    which = sys.argv[2] if len(sys.argv) > 2 else "all"
    for name, make in (
        ("sample", sample_screenshot),
        ("detection", detection_screenshot),
        ("labelling", labelling_screenshot),
        ("panels", four_panels_screenshot),
    ):
        if which in ("all", name):
            make(folder)
