"""The "Detect lesions" widget: run a DEEPMIR model on the T2/SWI/QSM layers in a thread, add a Labels layer.

Thin over :func:`napari_deepmir.widgets._lesions.detect_in_layers` (subject from layers, prediction,
measurement) and :mod:`napari_deepmir.model.registry` (the models to choose from, and the shipped model
the chosen layers call for when the model is left automatic).
"""

from functools import partial
from pathlib import Path

from magicgui.widgets import CheckBox, Container, PushButton
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error
from qtpy.QtWidgets import QFileDialog, QLabel, QProgressBar, QPushButton, QWidget

from ..conventions import MODALITIES, MODALITY_TITLES
from ..detection.pipeline import write_detection
from ..io.outputs import OutputSet
from ..lesions.measure import count_summary
from ..lesions.rules import rejections_summary
from ..model.registry import ModelChoice, choose_model, register_model
from ._busy import shows_busy
from ._docking import TabbedPanel, scrolling_layout
from ._hooks import HooksWhileShown
from ._inputs import SubjectInputs
from ._lesions import companion_layers, detect_in_layers, lesions_layer_name, show_detection
from ._model_inputs import AUTOMATIC, device_picker, model_inputs, model_picker, models_registered, select_model


class DetectWidget(HooksWhileShown, TabbedPanel, QWidget):
    """Pick the subject's layers, a model and a device; Run predicts in a thread (Cancel stops it)."""

    @shows_busy  # the first open imports torch and reads the model cards
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None
        self.result_layer = None
        self.detection = None
        # the status line holds the last result: the same readiness note does not replace it, a changed one does
        self._ready_note: str | None = None
        self._result_for: str | None = None
        self._build()
        self.refresh_models()
        self.hold_hooks(True)
        # napari deletes a closed viewer's docks without hiding them first: let go of the model signal then too
        self.destroyed.connect(partial(models_registered.disconnect, self.refresh_models, missing_ok=True))

    def hook_viewer(self) -> None:
        """Follow the viewer's layers, and models registered elsewhere, while the panel is open (see :mod:`._hooks`)."""
        self.inputs.connect_viewer()
        models_registered.connect(self.refresh_models)

    def release_viewer(self) -> None:
        self.inputs.disconnect_viewer()
        models_registered.disconnect(self.refresh_models)

    # ---- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        layout = scrolling_layout(self)
        self.inputs = SubjectInputs(self.viewer, mask=True)
        self.inputs.changed.connect(self._check_inputs)
        layout.addWidget(self.inputs.native)
        self.model_box = model_picker("Model", automatic=True)
        self.model_box.changed.connect(self._check_inputs)
        browse = PushButton(
            text="Browse…", tooltip="Add a model folder or .safetensors file (with its JSON model card)"
        )
        browse.changed.connect(self._browse_model)
        self.device_box = device_picker()
        self.probabilities_check = CheckBox(
            text="probability layers", tooltip="Also add each class's probability map as an image layer"
        )
        model_row = Container(widgets=[self.model_box, browse], layout="horizontal", labels=False, label="Model")
        model_row.margins = (0, 0, 0, 0)
        self.options = Container(widgets=[model_row, self.device_box, self.probabilities_check], labels=True)
        self.options.margins = (0, 0, 0, 0)
        layout.addWidget(self.options.native)
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Detect microbleeds and iron deposits on the chosen layers; while it runs: Cancel")
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
        self.model_box.reset_choices()
        self._check_inputs()

    def showEvent(self, event) -> None:
        self.refresh_models()
        super().showEvent(event)

    def add_model(self, path: str | Path) -> None:
        """Register a model folder or file and choose it."""
        try:
            entry = register_model(path)
        except (ValueError, OSError) as error:  # InputError: not a model, unreadable card
            self._report(str(error))
            return
        self.refresh_models()
        select_model(self.model_box, entry.path)

    def _browse_model(self, *_) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a model", "", "DEEPMIR model (*.safetensors *.json)")
        if path:
            self.add_model(path)

    # ---- inputs -------------------------------------------------------------------------------
    @property
    def model_entry(self):
        """The model chosen in the list (a ModelEntry), or None when it is automatic or there is none."""
        value = self.model_box.value
        return None if value == AUTOMATIC else value

    @property
    def automatic(self) -> bool:
        return self.model_box.value == AUTOMATIC

    def model_choice(self):
        """The model a Run would use, and why (a ModelChoice); None when there is none."""
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
        elif self.model_box.value is None:
            message = "No model found: add one with Browse…"
        elif missing:
            names = " and ".join(MODALITY_TITLES[m] for m in missing)
            message = (
                f"Model {self.model_entry.name} needs {model_inputs(self.model_entry)}: "
                f"choose a {names} layer, or a model without {names}."
            )
        else:
            try:
                described = self.model_choice().describe()
                message, ready = f"{described[:1].upper()}{described[1:]}.", True
            except ValueError as error:  # InputError: the shipped models are missing
                message = str(error)
        self._ready_note = message if ready else None
        if self.worker is None and not (ready and message == self._result_for):
            self.status_label.setText(message)
            self._result_for = None
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
            mask_layer=self.inputs.mask_layer,
            model=choice,
            device=self.device_box.value,
            qsm_units=self.inputs.qsm_units,
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
        layers = show_detection(self.viewer, detection, probabilities=self.probabilities_check.value)
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
        notes = [*self._registration_notes(detection), rejections_summary(detection.result.rejected)]
        notes = [note for note in notes if note]
        message = ". ".join([message, *(n for n in notes if not any(n in w for w in detection.result.warnings))])
        for warning in detection.result.warnings:  # the subject's, and an acquisition outside the model's training
            message += f"\nWarning: {warning}"
        self.status_label.setText(message)
        self._result_for = self._ready_note

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
