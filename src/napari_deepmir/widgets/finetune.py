"""The "Fine-tune" widget: train a model further on the annotations open in the viewer and saved earlier.

Thin over :mod:`napari_deepmir.widgets._finetune` (samples from layers, settings) and
:func:`napari_deepmir.training.trainer.run_training`, run in a thread worker: a live plot of the
training loss and the validation F1, Start becoming Stop (which keeps the best model so far), and the
new model registered so the Detect widget lists it, with its lineage and before/after metrics.
"""

import threading
import time
from pathlib import Path

from magicgui.widgets import ComboBox, Container, FloatSpinBox, LineEdit, ListEdit, Select, SpinBox
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error
from napari.utils.theme import get_theme
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from ..io import InputError
from ..model.registry import register_model
from ..training.data import annotated_folders
from ._busy import shows_busy
from ._docking import TabbedPanel, scrolling_layout
from ._finetune import (
    FinetuneSettings,
    annotation_layers,
    new_model_name,
    sample_from_layers,
    stage_after,
    start_message,
    stop_message,
    ticked_by_default,
)
from ._hooks import HooksWhileShown
from ._inputs import QSM_UNIT_CHOICES
from ._model_inputs import device_picker, model_picker, models_registered

#: Delay (ms) between the last edit of a labels layer and the list of annotations made again.
EDIT_DELAY_MS = 300
#: Seconds between redraws of the loss plot (drawing every step would slow the viewer).
PLOT_INTERVAL_S = 0.5
#: The plot's minimum height (px): the panel scrolls rather than squeeze the axes to nothing.
PLOT_MIN_HEIGHT = 220


class LossPlot(QWidget):
    """Training loss per step and validation F1 (mean over classes) per validation, drawn with matplotlib."""

    def __init__(self):
        super().__init__()
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg  # noqa: PLC0415 (heavy: matplotlib)
        from matplotlib.figure import Figure  # noqa: PLC0415 (heavy: matplotlib)

        self.figure = figure = Figure(figsize=(4, 2.4), layout="constrained")
        self.canvas = FigureCanvasQTAgg(figure)
        self.loss_axes = figure.add_subplot()
        self.loss_axes.set_xlabel("step")
        self.loss_axes.set_ylabel("training loss")
        self.score_axes = self.loss_axes.twinx()
        self.score_axes.set_ylabel("validation F1")
        self.score_axes.set_ylim(0, 1)
        (self.loss_line,) = self.loss_axes.plot([], [], color="tab:blue", lw=1)
        (self.score_line,) = self.score_axes.plot([], [], "o-", color="tab:orange", ms=4)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.setMinimumHeight(PLOT_MIN_HEIGHT)
        self.clear()

    def set_theme(self, theme_name: str) -> None:
        """Colour the plot like napari's theme ``theme_name`` (background, text, axes)."""
        theme = get_theme(theme_name)
        background, text = theme.background.as_hex(), theme.text.as_hex()
        self.figure.set_facecolor(background)
        for axes in (self.loss_axes, self.score_axes):
            axes.set_facecolor(background)
            axes.tick_params(colors=text, which="both")
            axes.xaxis.label.set_color(text)
            axes.yaxis.label.set_color(text)
            for spine in axes.spines.values():
                spine.set_edgecolor(text)
        self.canvas.draw_idle()

    def clear(self) -> None:
        self.steps, self.losses, self.score_steps, self.scores = [], [], [], []
        self._drawn_at = 0.0
        self.draw()

    def add(self, report) -> None:
        if report.loss is not None:
            self.steps.append(report.step)
            self.losses.append(report.loss)
        if report.score is not None:
            self.score_steps.append(report.step)
            self.scores.append(report.score)
        if time.monotonic() - self._drawn_at > PLOT_INTERVAL_S or report.score is not None:
            self.draw()

    def draw(self) -> None:
        self.loss_line.set_data(self.steps, self.losses)
        self.score_line.set_data(self.score_steps, self.scores)
        self.loss_axes.relim()
        self.loss_axes.autoscale_view()
        self.canvas.draw_idle()
        self._drawn_at = time.monotonic()


class FinetuneWidget(HooksWhileShown, TabbedPanel, QWidget):
    """Choose annotations and a base model, then Start; Stop ends early and keeps the best model."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None
        self.result = None
        self._stop = threading.Event()
        self._listed = set()  # annotation layers listed so far (unique ids): a new one is selected by default
        self._build()
        self._edit_timer = QTimer(self, singleShot=True, interval=EDIT_DELAY_MS)
        self._edit_timer.timeout.connect(self.refresh_annotations)
        self.refresh_models()
        self.hold_hooks(True)

    def hook_viewer(self) -> None:
        """Follow the viewer's layers and theme while the panel is open (see :mod:`._hooks`)."""
        self.viewer.layers.events.connect(self._on_layers_event)
        self.viewer.events.theme.connect(self._on_theme)
        self._on_theme()
        self.refresh_annotations()

    def release_viewer(self) -> None:
        self._edit_timer.stop()
        self.viewer.layers.events.disconnect(self._on_layers_event)
        self.viewer.events.theme.disconnect(self._on_theme)

    def _on_theme(self, event=None) -> None:
        self.plot.set_theme(self.viewer.theme)

    # ---- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        layout = scrolling_layout(self)
        self.annotations = Select(
            label="Annotations in the viewer",
            choices=self._annotation_choices,
            tooltip="The selected Labels layers are used, each with the SWI/QSM/T2 layers of its subject "
            "(Ctrl+click adds or removes one)",
        )
        self.folders = ListEdit(
            value=[],
            annotation=list[Path],
            options={"mode": "d", "nullable": True},
            layout="vertical",
            label="Annotated subjects saved earlier",
            tooltip="Subject folders with modalities and *_dseg.nii.gz labels (as the labelling tool saves them)",
        )
        self.base_box = model_picker("Base model")
        self.base_box.changed.connect(lambda entry: setattr(self.name_edit, "value", new_model_name(entry.name)))
        self.name_edit = LineEdit(
            label="New model", tooltip="Name of the fine-tuned model (a new folder in the user's model folder)"
        )
        self.steps_box = SpinBox(
            label="Steps", min=10, max=100_000, step=50, value=300, tooltip="A few hundred steps take minutes on a CPU"
        )
        self.lr_box = FloatSpinBox(
            label="Learning rate",
            min=1e-5,
            max=1e-2,
            step=1e-5,
            value=3e-4,
            tooltip="Peak learning rate (warm-up, then cosine decay); small keeps what the base model knows",
        )
        self.lr_box.step = 1e-4  # the arrows' step; the finest step above set five decimals
        self.val_box = FloatSpinBox(
            label="Validation share",
            min=0.0,
            max=0.5,
            step=0.05,
            value=0.25,
            tooltip="Share of the subjects kept aside to measure the model (lesion-wise F1) and keep the best",
        )
        self.device_box = device_picker()
        self.qsm_units_box = ComboBox(
            label="QSM units",
            choices=QSM_UNIT_CHOICES,
            value="auto",
            tooltip="Units of the QSM files of the annotations in the viewer (saved folders use their sidecars, else "
            "detect)",
        )
        # the folder fields take the panel's whole width under their title: beside the label column, with each
        # field's "Choose directory" button, they were narrower than a subject folder's name
        folders_title = QLabel(self.folders.label)
        folders_title.setToolTip(self.folders.tooltip)
        layout.addWidget(_form([self.annotations]).native)
        layout.addWidget(folders_title)
        layout.addWidget(_form([self.folders], labels=False).native)
        settings = [self.base_box, self.name_edit, self.steps_box, self.lr_box, self.val_box, self.device_box]
        layout.addWidget(_form([*settings, self.qsm_units_box]).native)

        self.start_button = QPushButton("Start")
        self.start_button.setToolTip("Train a new model from the base on the chosen annotations; while it runs: Stop")
        self.start_button.clicked.connect(self.start_or_stop)
        layout.addWidget(self.start_button)
        self.progress = QProgressBar(minimum=0, maximum=1, value=0)
        layout.addWidget(self.progress)
        self.plot = LossPlot()
        layout.addWidget(self.plot, stretch=1)
        self.status_label = QLabel(wordWrap=True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status_label)

    def _on_layers_event(self, event) -> None:
        if event.type in ("inserted", "removed", "moved", "reordered", "name"):
            self.refresh_annotations()
        elif event.type in ("paint", "data"):  # a detection the rater corrects becomes an annotation
            self._edit_timer.start()

    def _annotation_choices(self, widget=None) -> list[tuple[str, object]]:
        return [(layer.name, layer) for layer in annotation_layers(self.viewer.layers)]

    def refresh_annotations(self) -> None:
        """List the annotation layers again (names follow renames), keeping the selection; a new one is
        selected unless it is the sample's truth."""
        selected = {layer.unique_id for layer in self.annotations.value}
        self.annotations.reset_choices()
        listed = self.annotations.choices
        self.annotations.value = [
            layer
            for layer in listed
            if layer.unique_id in selected or (layer.unique_id not in self._listed and ticked_by_default(layer))
        ]
        self._listed = {layer.unique_id for layer in listed}

    def refresh_models(self) -> None:
        """List the models again (a model fine-tuned meanwhile appears); suggest a new name from the base."""
        self.base_box.reset_choices()
        if self.base_box.value is not None:
            self.name_edit.value = new_model_name(self.base_box.value.name)

    def add_folder(self, folder: str | Path) -> None:
        """Add a saved annotated subject folder (or a folder of them); one without annotations is refused."""
        try:
            _annotated_folders([folder])
        except InputError as error:
            self._report(str(error))
            return
        self.folders.value = [*self.folders.value, Path(folder)]

    # ---- running ------------------------------------------------------------------------------
    def settings(self) -> FinetuneSettings:
        """The current choices; annotation layers and folders are read now (InputError names a bad one)."""
        layers = list(self.viewer.layers)
        chosen = {layer.unique_id for layer in self.annotations.value}
        units = self.qsm_units_box.value
        samples = [
            sample_from_layers(layer, layers, qsm_units=units)
            for layer in annotation_layers(layers)
            if layer.unique_id in chosen
        ]
        base = self.base_box.value
        return FinetuneSettings(
            base=base.path,
            name=self.name_edit.value.strip() or new_model_name(base.name),
            samples=samples,
            folders=_annotated_folders([folder for folder in self.folders.value if folder is not None]),
            steps=self.steps_box.value,
            lr=self.lr_box.value,
            device=self.device_box.value,
            val_share=self.val_box.value,
        )

    def start_or_stop(self) -> None:
        if self.worker is not None:
            self.stop()
        else:
            self.start()

    @shows_busy
    def start(self) -> None:
        """Fine-tune in a thread worker (the annotations are read first, on the GUI thread)."""
        from ..training.trainer import run_training  # noqa: PLC0415 (imports torch)

        try:
            config = self.settings().config()
        except InputError as error:
            self._report(str(error))
            return
        self._stop.clear()
        self._config, self._last_step, self._total, self._verifier = config, None, config.steps, False
        self.result = None
        self.plot.clear()
        self.progress.setRange(0, config.steps)
        self.progress.setValue(0)
        handlers = {
            "yielded": self._on_report,
            "returned": self._on_result,
            "errored": lambda error: self.status_label.setText(
                f"Fine-tuning failed: {error} (the base model is unchanged)"
            ),
            "finished": self._on_finished,
        }
        self.worker = create_worker(run_training, config, self._stop.is_set, _connect=handlers, _start_thread=False)
        self.start_button.setText("Stop")
        self.status_label.setText(start_message(config, self.base_box.value.name))
        self.worker.start()

    def stop(self) -> None:
        """End after the current step; the best model so far is kept (or the base, if nothing beat it).
        The status says what the stop waits for (a validation predicts whole volumes: it can take a while)."""
        if self.worker is None or self._stop.is_set():
            return
        self._stop.set()
        self.status_label.setText(stop_message(self._last_step, self._total, self._config, verifier=self._verifier))

    def _on_report(self, report) -> None:
        if not self._verifier and self._last_step is not None and self._last_step >= self._total:
            self._verifier, self._total = True, report.total_steps  # the second stage: steps of its own
            self.progress.setRange(0, report.total_steps)
        self._last_step = report.step
        if not self._verifier:
            self.plot.add(report)
        if report.step >= self._total:  # the stage after the last step has no steps: a busy bar and its name
            self.progress.setRange(0, 0)
            stage = stage_after(report.step, self._total, self._config, verifier=self._verifier)
            self.status_label.setText(f"Step {report.step} of {self._total} done: {stage}…")
            return
        self.progress.setValue(report.step)
        if report.score is not None:
            self.status_label.setText(
                f"step {report.step}: validation F1 {report.score:.2f} (best {report.best_score:.2f} at step "
                f"{report.best_step})"
            )
        elif self._verifier:
            self.status_label.setText(stage_after(report.step - 1, self._total, self._config, verifier=True))

    def _on_result(self, result) -> None:
        self.result = result
        self.plot.draw()
        if result.model_path is None:
            self.status_label.setText("Stopped before the first step: no model was written (the base is unchanged).")
            return
        entry = register_model(result.model_path)
        models_registered.emit()
        stopped = " (stopped early)" if result.stopped_early else ""
        self.status_label.setText(
            f"{entry.name}: {result.steps_run} steps{stopped} -> {result.model_path}\n{_metrics_text(result)}"
        )

    def _on_finished(self) -> None:
        self.worker = None
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if self.result is not None and self.result.model_path is not None else 0)
        self.start_button.setText("Start")
        self.refresh_models()

    def _report(self, message: str) -> None:
        self.status_label.setText(message)
        show_error(message)

    def closeEvent(self, event) -> None:
        self.stop()
        super().closeEvent(event)


def _form(widgets: list, labels: bool = True) -> Container:
    """A magicgui form of ``widgets`` without margins (labels on the left unless ``labels`` is False)."""
    form = Container(widgets=widgets, labels=labels)
    form.margins = (0, 0, 0, 0)
    return form


def _annotated_folders(folders) -> list[str]:
    """The folders, checked to hold annotated subjects (InputError names one that does not)."""
    annotated_folders(folders)
    return [str(folder) for folder in folders]


def _metrics_text(result) -> str:
    """Lesion-wise F1 per class before and after, on the validation subjects."""
    if not result.base_metrics or not result.best_metrics:
        return "no validation subjects: metrics not measured"
    rows = []
    for name, title in (("cmb", "CMB"), ("iron", "iron")):
        before, after = result.base_metrics[name]["f1"], result.best_metrics[name]["f1"]
        rows.append(f"{title} F1 {before:.2f} -> {after:.2f}")
    return "validation: " + ", ".join(rows)
