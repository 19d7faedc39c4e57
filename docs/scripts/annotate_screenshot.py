"""Screenshot of the labelling widget for docs/labelling-protocol.md (run under Xvfb).

    xvfb-run -a .venv/bin/python docs/scripts/annotate_screenshot.py docs/images/annotate-widget.png [FOLDER]

FOLDER: a subject folder to show (default: a phantom subject generated in a temporary folder).
"""

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")

import napari
from qtpy.QtWidgets import QApplication

from napari_deepmir.io.bids import find_subject_folders


def _phantom_subject() -> Path:
    from napari_deepmir.phantom import generate_cohort

    root = Path(tempfile.mkdtemp(prefix="deepmir-shot-"))
    generate_cohort(root, 1, 7)
    (folder,) = find_subject_folders(root)
    for labels in folder.rglob("*_dseg.nii.gz"):
        if "_desc-" not in labels.name:
            labels.unlink()  # the rater starts from nothing
    return folder


def main(out: str, folder: Path | None) -> None:
    folder = folder or _phantom_subject()
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    viewer.open(str(folder), plugin="napari-deepmir")
    for layer in viewer.layers:  # SWI under the annotation; QSM and T2 a V key away
        if layer.metadata.get("deepmir", {}).get("modality") in ("qsm", "t2"):
            layer.visible = False
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Label lesions")  # as Plugins > ... does
    widget.start()
    widget.find_candidates()
    app = QApplication.instance()
    while not widget.find_button.isEnabled():
        app.processEvents()
        time.sleep(0.05)
    widget.accept(1, "possible")  # accept #1 (painted), then show a flagged candidate with its guidance
    flagged = widget.session.candidates.index[widget.session.candidates["flags"].str.contains("diamagnetic")]
    if len(flagged):
        widget.go_to(int(flagged[0]))
    for _ in range(20):
        app.processEvents()
        time.sleep(0.05)
    from napari._qt.dialogs.qt_notification import NapariQtNotification
    from qtpy.QtWidgets import QScrollArea

    for note in viewer.window._qt_window.findChildren(NapariQtNotification):
        note.close()  # napari's one-time notes (the reader preference) over the canvas
    widget.findChild(QScrollArea).ensureWidgetVisible(widget.guidance)  # the candidate's evidence in sight
    for _ in range(20):
        app.processEvents()
        time.sleep(0.05)
    viewer.screenshot(out, canvas_only=False)
    print(f"{out}: {len(widget.session.candidates)} candidates, showing #{widget.session.position + 1}")
    viewer.close()


if __name__ == "__main__":
    arguments = sys.argv[1:]
    out = arguments[0] if arguments else "docs/images/annotate-widget.png"
    main(out, Path(arguments[1]) if len(arguments) > 1 else None)
