"""Is the viewer still usable while the Fine-tune widget trains? (micro-sam saw napari >= 0.5 slow down
badly with a training worker.) Measures Qt event-loop latency: a 20 ms timer's lateness, idle and during
a CPU fine-tune of the shipped model, plus the time to redraw after a slice change. Needs a display
(Xvfb: `xvfb-run -a python benchmarks/bench_viewer_responsiveness.py`).

    python benchmarks/bench_viewer_responsiveness.py [--steps 80] [--seconds 20]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")


def _lateness(app, seconds: float, during=lambda: True) -> list[float]:
    """Milliseconds by which a 20 ms QTimer fires late, over ``seconds`` (while ``during()``)."""
    from qtpy.QtCore import QTimer

    late, last = [], [time.perf_counter()]
    timer = QTimer(interval=20)

    def tick():
        now = time.perf_counter()
        late.append(max(0.0, (now - last[0]) * 1000 - 20))
        last[0] = now

    timer.timeout.connect(tick)
    timer.start()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end and during():
        app.processEvents()
        time.sleep(0.002)
    timer.stop()
    return late


def _slice_change_ms(app, viewer, repeats: int = 20) -> float:
    """Median time to move one slice and process the resulting events (the redraw)."""
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        viewer.dims.set_current_step(0, 10 + i % 20)
        app.processEvents()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _summary(name: str, late: list[float], slice_ms: float) -> str:
    late = sorted(late)
    p95 = late[int(0.95 * (len(late) - 1))] if late else float("nan")
    return f"| {name} | {statistics.median(late):.1f} | {p95:.1f} | {max(late):.0f} | {slice_ms:.0f} |"


def main(argv=None) -> int:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_deepmir.phantom import generate_cohort
    from napari_deepmir.widgets.finetune import FinetuneWidget

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args(argv)
    os.environ.setdefault(
        "DEEPMIR_MODELS_DIR", tempfile.mkdtemp(prefix="deepmir-models-")
    )  # keep the user's models folder clean
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.open_sample("napari-deepmir", "synthetic_subject")
    widget = FinetuneWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Fine-tune")
    print("| viewer state | timer lateness median ms | p95 ms | max ms | slice change ms |")
    print("|---|---|---|---|---|")
    print(_summary("idle", _lateness(app, args.seconds / 2), _slice_change_ms(app, viewer)), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        widget.add_folder(generate_cohort(Path(tmp), 1, seed=5)[0])
        widget.steps_box.setValue(args.steps)
        widget.val_box.setValue(0.0)
        widget.device_box.setCurrentText("cpu")
        widget.start()
        _lateness(app, 3)  # past the start-up (loading, preparing subjects)
        late = _lateness(app, args.seconds, during=lambda: widget.worker is not None)
        slice_ms = _slice_change_ms(app, viewer)
        print(_summary("fine-tuning (CPU)", late, slice_ms), flush=True)
        widget.stop()
        while widget.worker is not None:
            app.processEvents()
            time.sleep(0.05)
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
