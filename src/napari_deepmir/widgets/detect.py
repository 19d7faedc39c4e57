"""The "Detect lesions" widget: run a DEEPMIR model on the T2/SWI/QSM layers in a thread, add a Labels layer.

Thin over :func:`napari_deepmir.widgets._lesions.detect_in_layers` (subject from layers, prediction,
measurement) and :mod:`napari_deepmir.model.registry` (the models to choose from, and the shipped model
the chosen layers call for when the model is left automatic).
"""

from pathlib import Path

from napari.utils.notifications import show_error
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..conventions import MODALITIES, MODALITY_TITLES
from ..lesions.measure import count_summary
from ._inputs import SubjectInputs
from ._lesions import companion_layers, detect_in_layers, lesions_layer_name, show_detection


def available_devices() -> list[str]:
    """``auto`` plus the torch devices present on this machine (cpu always; cuda, mps when available)."""
    import torch

    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


#: The Model list's first item: the shipped model for the modalities that have a layer chosen.
AUTOMATIC = "automatic (by the inputs)"


def _inputs(entry) -> str:
    """A model's input modalities, e.g. ``SWI+QSM``."""
    return "+".join(MODALITY_TITLES[m] for m in MODALITIES if m in entry.card.modalities)


def fill_model_box(box: QComboBox, automatic: bool = False) -> None:
    """List the models in ``box`` (the shipped ones first, after :data:`AUTOMATIC` if ``automatic``), each
    with its path and inputs as tooltip, keeping the current choice when it is still listed; no change
    signal is emitted while filling."""
    from ..model.registry import list_models

    current = box.currentData()
    box.blockSignals(True)
    box.clear()
    if automatic:
        box.addItem(AUTOMATIC, AUTOMATIC)
        box.setItemData(
            0, "The shipped model for the chosen layers: SWI+QSM+T2, SWI+QSM or SWI", Qt.ItemDataRole.ToolTipRole
        )
    for entry in list_models():
        box.addItem(entry.name, entry)
        box.setItemData(box.count() - 1, f"{entry.path}\ninputs: {_inputs(entry)}", Qt.ItemDataRole.ToolTipRole)
    keys = [_model_key(box.itemData(i)) for i in range(box.count())]
    box.setCurrentIndex(keys.index(_model_key(current)) if current is not None and _model_key(current) in keys else 0)
    box.blockSignals(False)


def _model_key(data):
    """What identifies a Model list item: the automatic choice, or a model's folder."""
    return data if data == AUTOMATIC else Path(data.path)


class DetectWidget(QWidget):
    """Pick the subject's layers, a model and a device; Run predicts in a thread (Cancel stops it)."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None
        self.result_layer = None
        self.detection = None
        self._build()
        self.refresh_models()

    # ---- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        self.inputs = SubjectInputs(self.viewer)
        self.inputs.changed.connect(self._check_inputs)
        layout.addWidget(self.inputs.native)
        form = QFormLayout()
        model_row = QHBoxLayout()
        self.model_box = QComboBox()
        self.model_box.currentIndexChanged.connect(self._check_inputs)
        browse = QPushButton("Browse…")
        browse.setToolTip("Add a model folder or .safetensors file (with its JSON model card)")
        browse.clicked.connect(self._browse_model)
        model_row.addWidget(self.model_box, stretch=1)
        model_row.addWidget(browse)
        form.addRow("Model", model_row)
        self.device_box = QComboBox()
        self.device_box.addItems(available_devices())
        form.addRow("Device", self.device_box)
        layout.addLayout(form)
        self.probabilities_check = QCheckBox("probability layers")
        self.probabilities_check.setToolTip("Also add each class's probability map as an image layer")
        layout.addWidget(self.probabilities_check)
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.run_or_cancel)
        layout.addWidget(self.run_button)
        self.save_button = QPushButton("Save results…", enabled=False)
        self.save_button.setToolTip(
            "Write the labels, the lesion table and their provenance to a folder (as deepmir predict does)"
        )
        self.save_button.clicked.connect(self._browse_save)
        layout.addWidget(self.save_button)
        self.progress = QProgressBar(minimum=0, maximum=1, value=0)
        layout.addWidget(self.progress)
        self.status_label = QLabel(wordWrap=True)
        layout.addWidget(self.status_label)
        layout.addStretch()

    def refresh_models(self) -> None:
        """List the registered models again (the default first); keeps the current choice when it is still there."""
        fill_model_box(self.model_box, automatic=True)
        self._check_inputs()

    def showEvent(self, event) -> None:
        self.refresh_models()
        super().showEvent(event)

    def add_model(self, path: str | Path) -> None:
        """Register a model folder or file and choose it."""
        from ..model.registry import register_model

        try:
            entry = register_model(path)
        except (ValueError, OSError) as error:  # InputError: not a model, unreadable card
            self._report(str(error))
            return
        self.refresh_models()
        self.model_box.setCurrentIndex(self._model_index(entry.path))

    def _model_index(self, path) -> int:
        keys = [_model_key(self.model_box.itemData(i)) for i in range(self.model_box.count())]
        return keys.index(Path(path)) if Path(path) in keys else -1

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a model", "", "DEEPMIR model (*.safetensors *.json)")
        if path:
            self.add_model(path)

    # ---- inputs -------------------------------------------------------------------------------
    @property
    def model_entry(self):
        """The model chosen in the list (a ModelEntry), or None when it is automatic or there is none."""
        data = self.model_box.currentData()
        return None if data == AUTOMATIC else data

    @property
    def automatic(self) -> bool:
        return self.model_box.currentData() == AUTOMATIC

    def model_choice(self):
        """The model a Run would use, and why (a ModelChoice); None when there is none."""
        from ..model.registry import ModelChoice, choose_model

        if self.automatic:
            return choose_model([m for m, layer in self.inputs.layers.items() if layer is not None])
        entry = self.model_entry
        return None if entry is None else ModelChoice(entry.path, entry.card, "chosen in the Model list")

    def missing_modalities(self) -> list[str]:
        """Modalities the chosen model needs that have no layer chosen (none when it is automatic)."""
        if self.model_entry is None:
            return []
        needed = self.model_entry.card.modalities
        return [m for m in MODALITIES if m in needed and self.inputs.layers[m] is None]

    def _check_inputs(self, *_) -> bool:
        """Show why the inputs cannot run, or which model will run and why; True when they can run."""
        missing = self.missing_modalities()
        ready = False
        if self.inputs.problem:
            message = self.inputs.problem
        elif self.model_box.currentData() is None:
            message = "No model found: add one with Browse…"
        elif missing:
            names = " and ".join(MODALITY_TITLES[m] for m in missing)
            message = (
                f"Model {self.model_entry.name} needs {_inputs(self.model_entry)}: "
                f"choose a {names} layer, or a model without {names}."
            )
        else:
            try:
                described = self.model_choice().describe()
                message, ready = f"{described[:1].upper()}{described[1:]}.", True
            except ValueError as error:  # InputError: the shipped models are missing
                message = str(error)
        if self.worker is None:
            self.status_label.setText(message)
        return ready

    # ---- running ------------------------------------------------------------------------------
    def run_or_cancel(self) -> None:
        """Start a prediction, or cancel the one running."""
        if self.worker is not None:
            self.cancel()
        else:
            self.run()

    def run(self) -> None:
        """Predict on the chosen layers in a thread worker; the result layers are added when it returns."""
        if not self._check_inputs():
            self._report(self.status_label.text())
            return
        choice = self.model_choice()
        from napari.qt.threading import create_worker

        swi, qsm, t2 = (self.inputs.layers[m] for m in ("swi", "qsm", "t2"))
        locations = companion_layers(self.viewer.layers, swi).locations
        handlers = {
            "yielded": self._on_progress,
            "returned": self._on_result,
            # napari's worker also shows the error as a notification; the viewer keeps running
            "errored": lambda error: self.status_label.setText(f"Detection failed: {error}"),
            "aborted": lambda: self.status_label.setText("Cancelled."),
            "finished": self._on_finished,
        }
        self.worker = create_worker(
            detect_in_layers,
            swi,
            qsm,
            t2,
            locations_layer=locations,
            model=choice,
            device=self.device_box.currentText(),
            _connect=handlers,
            _start_thread=False,
        )
        self.run_button.setText("Cancel")
        self.progress.setRange(0, 0)  # busy until the first slices are done
        self.status_label.setText(f"Detecting on {swi.name} with {choice.describe()}…")
        self.worker.start()

    def cancel(self) -> None:
        """Stop the running prediction at its next batch; no layer is added."""
        if self.worker is not None:
            self.worker.quit()
            self.status_label.setText("Cancelling…")

    def _on_progress(self, progress: tuple[int, int]) -> None:
        done, total = progress
        self.progress.setRange(0, max(int(total), 1))
        self.progress.setValue(int(done))

    def _on_result(self, detection) -> None:
        layers = show_detection(self.viewer, detection, probabilities=self.probabilities_check.isChecked())
        self.result_layer = layers[-1]
        self.detection = detection
        self.save_button.setEnabled(True)
        self.progress.setValue(self.progress.maximum())
        made_by = detection.result.model
        message = (
            f"{detection.subject.name}: {count_summary(detection.measurement.table)} "
            f"(model {made_by['Model']}: {made_by['ModelChoice']})"
        )
        default_name = lesions_layer_name(detection.subject.name)
        if self.result_layer.name != default_name:
            message += (
                f" in a new layer {self.result_layer.name!r}: {default_name!r} holds corrections, kept as they are"
            )
        self.status_label.setText(message)

    def _on_finished(self) -> None:
        self.worker = None
        self.run_button.setText("Run")
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)

    def save_results(self, folder: str | Path, *, overwrite: bool = False) -> Path | None:
        """Write the last detection to ``folder`` as ``deepmir predict`` does; returns the lesion table's path."""
        from ..io.outputs import OutputSet
        from ..pipeline import write_detection

        try:
            outputs = write_detection(
                self.detection.result, OutputSet(Path(folder), self.detection.subject.name), overwrite=overwrite
            )
        except (ValueError, OSError) as error:  # InputError: outputs there already, folder not writable
            self._report(str(error))
            return None
        self.status_label.setText(f"Saved to {outputs.folder}")
        return outputs.lesions

    def _browse_save(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save the detection in a folder")
        if folder:
            self.save_results(folder)

    def _report(self, message: str) -> None:
        self.status_label.setText(message)
        show_error(message)

    def closeEvent(self, event) -> None:
        self.cancel()
        super().closeEvent(event)
