"""The "Detect lesions" widget: run a DEEPMIR model on the T2/SWI/QSM layers in a thread, add a Labels layer.

Thin over :func:`napari_deepmir.widgets._lesions.detect_in_layers` (subject from layers, prediction,
measurement) and :mod:`napari_deepmir.model.registry` (the models to choose from).
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


def _inputs(entry) -> str:
    """A model's input modalities, e.g. ``SWI+QSM``."""
    return "+".join(MODALITY_TITLES[m] for m in MODALITIES if m in entry.card.modalities)


def fill_model_box(box: QComboBox) -> None:
    """List the models in ``box`` (the default first), each with its path and inputs as tooltip, keeping
    the current choice when it is still listed; no change signal is emitted while filling."""
    from ..model.registry import list_models

    current = box.currentData()
    box.blockSignals(True)
    box.clear()
    for entry in list_models():
        box.addItem(entry.name, entry)
        box.setItemData(box.count() - 1, f"{entry.path}\ninputs: {_inputs(entry)}", Qt.ItemDataRole.ToolTipRole)
    paths = [Path(box.itemData(i).path) for i in range(box.count())]
    box.setCurrentIndex(paths.index(Path(current.path)) if current is not None and Path(current.path) in paths else 0)
    box.blockSignals(False)


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
        fill_model_box(self.model_box)
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
        paths = [Path(self.model_box.itemData(i).path) for i in range(self.model_box.count())]
        return paths.index(Path(path)) if Path(path) in paths else -1

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a model", "", "DEEPMIR model (*.safetensors *.json)")
        if path:
            self.add_model(path)

    # ---- inputs -------------------------------------------------------------------------------
    @property
    def model_entry(self):
        return self.model_box.currentData()

    def missing_modalities(self) -> list[str]:
        """Modalities the chosen model needs that have no layer chosen."""
        if self.model_entry is None:
            return []
        needed = self.model_entry.card.modalities
        return [m for m in MODALITIES if m in needed and self.inputs.layers[m] is None]

    def _check_inputs(self, *_) -> bool:
        missing = self.missing_modalities()
        if self.inputs.problem:
            message = self.inputs.problem
        elif self.model_entry is None:
            message = "No model found: add one with Browse…"
        elif missing:
            names = " and ".join(MODALITY_TITLES[m] for m in missing)
            message = (
                f"Model {self.model_entry.name} needs {_inputs(self.model_entry)}: "
                f"choose a {names} layer, or a model without {names}."
            )
        else:
            message = ""
        if self.worker is None:
            self.status_label.setText(message)
        return not message

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
        from napari.qt.threading import create_worker

        swi, qsm, t2 = (self.inputs.layers[m] for m in ("swi", "qsm", "t2"))
        companions = companion_layers(self.viewer.layers, swi)
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
            locations_layer=companions.locations,
            regions_layer=companions.regions,
            model=self.model_entry.path,
            device=self.device_box.currentText(),
            _connect=handlers,
            _start_thread=False,
        )
        self.run_button.setText("Cancel")
        self.progress.setRange(0, 0)  # busy until the first slices are done
        self.status_label.setText(f"Detecting with {self.model_entry.name} on {swi.name}…")
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
        message = f"{detection.subject.name}: {count_summary(detection.measurement.table)}"
        default_name = lesions_layer_name(detection.subject.name)
        if self.result_layer.name != default_name:
            message += (
                f" in a new layer {self.result_layer.name!r}: {default_name!r} holds corrections, kept as they are"
            )
        self.status_label.setText(". ".join([message, *self._registration_notes(detection)]))

    def _registration_notes(self, detection) -> list[str]:
        """What was registered to the SWI: by this detection, or by the reader when it opened the layers."""
        notes = [a.describe() for a in detection.subject.alignments.values() if a.registered]
        for layer in self.inputs.layers.values():
            note = None if layer is None else layer.metadata.get("deepmir", {}).get("registration")
            if note and note not in notes:
                notes.append(note)
        return notes

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
