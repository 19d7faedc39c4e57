"""Model and device pickers (magicgui), shared by the Detect and Fine-tune widgets."""

from pathlib import Path

from magicgui.widgets import ComboBox
from psygnal import SignalInstance

from ..conventions import MODALITIES, MODALITY_TITLES
from ..model.registry import list_models


def available_devices(widget=None) -> list[str]:
    """``auto`` plus the torch devices present on this machine (cpu always; cuda, mps when available)."""
    import torch  # noqa: PLC0415 (heavy: torch)

    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def model_inputs(entry) -> str:
    """A model's input modalities, e.g. ``SWI+QSM``."""
    return "+".join(MODALITY_TITLES[m] for m in MODALITIES if m in entry.card.modalities)


#: Emitted after a widget registers a new model, so every open model picker lists it (no widget looks for another).
models_registered = SignalInstance((), name="models_registered")

#: The first choice of an automatic model picker: the shipped model for the modalities that have a layer chosen.
AUTOMATIC = "automatic (by the inputs)"


def _model_choices(widget=None) -> list[tuple[str, object]]:
    return [(entry.name, entry) for entry in list_models()]


def _automatic_and_model_choices(widget=None) -> list[tuple[str, object]]:
    return [(AUTOMATIC, AUTOMATIC), *_model_choices()]


def model_picker(label: str, automatic: bool = False) -> ComboBox:
    """The registered models (the default first, after :data:`AUTOMATIC` if ``automatic``);
    ``reset_choices()`` lists them again and keeps the choice while it is listed. The tooltip gives the
    chosen model's folder and inputs."""
    picker = ComboBox(label=label, choices=_automatic_and_model_choices if automatic else _model_choices)

    def describe(entry) -> None:
        if entry == AUTOMATIC:
            picker.tooltip = "The shipped model for the chosen layers: SWI+QSM+T2, SWI+QSM or SWI"
        else:
            picker.tooltip = "No model registered" if entry is None else f"{entry.path}\ninputs: {model_inputs(entry)}"

    picker.changed.connect(describe)
    describe(picker.value)
    return picker


def select_model(picker: ComboBox, path: str | Path) -> None:
    """Choose the listed model stored at ``path``."""
    picker.value = next(
        entry for entry in picker.choices if entry != AUTOMATIC and Path(entry.path) == Path(path).resolve()
    )


def device_picker() -> ComboBox:
    return ComboBox(
        label="Device",
        choices=available_devices,
        tooltip="auto: a GPU when there is one (CUDA or Apple MPS), else the CPU",
    )
