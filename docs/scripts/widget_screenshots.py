"""Screenshots of the Detect lesions, Lesion table and Fine-tune widgets for docs/detect.md,
docs/lesion-tables.md and docs/finetuning.md.

Runs the default model on the sample synthetic subject in a real viewer (under Xvfb):

    xvfb-run -a .venv/bin/python docs/scripts/widget_screenshots.py docs/images [both|detect|table|finetune [STEPS]]

With ``table`` only, the table shows the sample's true lesions (no model needed).
"""

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")

import napari
from qt_settle import settle

from napari_deepmir.widgets.detect import DetectWidget
from napari_deepmir.widgets.table import LesionTableWidget


def detect_screenshot(viewer, path: Path):
    """Run the default model on the sample with probability layers; returns the result layer."""
    detect = DetectWidget(viewer)
    viewer.window.add_dock_widget(detect, name="Detect lesions", area="right")
    detect.probabilities_check.value = True
    started = time.monotonic()
    detect.run()
    while detect.worker is not None:
        settle(0.1)
    print(f"detection: {time.monotonic() - started:.1f} s; {detect.status_label.text()}")
    viewer.layers["sub-sample true lesions"].visible = False
    settle()
    viewer.screenshot(str(path), canvas_only=False)
    return detect.result_layer


def table_screenshot(viewer, labels_layer, path: Path) -> None:
    """The lesion table of ``labels_layer``, its largest lesion selected and shown."""
    table = LesionTableWidget(viewer)
    table.setMinimumWidth(640)
    viewer.window.add_dock_widget(table, name="Lesion table", area="right")
    table.set_layer(labels_layer)
    largest = int(table.table.sort_values("volume_mm3")["lesion_id"].iloc[-1])
    table.select_lesion(largest)
    table.go_to_lesion(largest)
    settle()
    viewer.screenshot(str(path), canvas_only=False)
    print(f"table of {labels_layer.name}: {table.summary_label.text()}; showing lesion {largest}")


def finetune_screenshot(viewer, path: Path, steps: int = 120) -> None:
    """Fine-tune the default model on the sample's true lesions plus two saved synthetic subjects."""
    from napari_deepmir.phantom import generate_cohort

    os.environ.setdefault(
        "DEEPMIR_MODELS_DIR", tempfile.mkdtemp(prefix="deepmir-models-")
    )  # keep the user's models folder clean
    _, widget = viewer.window.add_plugin_dock_widget("napari-deepmir", "Fine-tune model")  # as Plugins > ... does
    with tempfile.TemporaryDirectory() as tmp:
        for folder in generate_cohort(Path(tmp), 2, seed=31):
            widget.add_folder(folder)
        widget.steps_box.value = steps
        widget.val_box.value = 0.34
        widget.device_box.value = "cpu"
        started = time.monotonic()
        widget.start()
        while widget.worker is not None:
            settle(0.1)
    print(f"fine-tune: {time.monotonic() - started:.0f} s; {widget.status_label.text()}")
    settle()
    viewer.screenshot(str(path), canvas_only=False)


def main(folder: str, which: str = "both", steps: str = "120") -> None:
    out = Path(folder)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    viewer.open_sample("napari-deepmir", "synthetic_subject")
    viewer.layers["sub-sample QSM"].visible = False  # lesions over the SWI
    labels = viewer.layers["sub-sample true lesions"]
    if which in ("both", "detect"):
        labels = detect_screenshot(viewer, out / "detect-widget.png")
    if which in ("both", "table"):
        table_screenshot(viewer, labels, out / "lesion-table-widget.png")
    if which == "finetune":
        finetune_screenshot(viewer, out / "finetune-widget.png", int(steps))
    viewer.close()


if __name__ == "__main__":
    main(*(sys.argv[1:] or ["docs/images"]))
