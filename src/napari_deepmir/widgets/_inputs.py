"""Layer pickers (magicgui) that follow the viewer and keep one subject's SWI, QSM and T2 together.

Layers are compared with ``==``, never ``is``: plugin widgets get napari's proxy viewer, whose
layers are fresh proxy objects at every access (equal to the layer, not identical).
"""

import re

from magicgui.widgets import ComboBox, Container
from napari.layers import Image, Labels

from ..conventions import MODALITY_TITLES
from ..io.bids import subject_id
from ._layers import modality_of

#: The QSM units a user may state for the QSM layer, as (text shown, value for subject_from_layers).
QSM_UNIT_CHOICES = [
    ("as read (sidecar, else detected)", "auto"),
    ("ppm", "ppm"),
    ("ppb", "ppb"),
    ("SI (1e-6 ppm)", "si"),
]
#: What each modality picker is for (its tooltip).
_PICKER_TIPS = {
    "swi": "The subject's SWI layer: lesions are found, painted and saved on its grid",
    "qsm": "The same subject's QSM layer (chosen with the SWI); empty: none",
    "t2": "The same subject's T2-weighted layer (chosen with the SWI); empty: none",
}
#: Layer-list events after which the choices are listed again (a layer's own ``name`` event included).
_LIST_EVENTS = {"inserted", "removed", "moved", "reordered", "name"}
#: Last words of a layer name that tell a modality or a kind of labels, dropped to leave the subject's name.
_KIND_WORDS = re.compile(r"(?i)(^|[ _-])(swi|qsm|chimap|chi|t2w?|image|labels|lesions|annotation|dseg)$")


def subject_of(layer) -> str:
    """The subject a layer belongs to: this plugin's metadata, else a ``sub-X`` in its name, else its
    name without its modality or labels word (``long SWI`` -> ``long``)."""
    subject = layer.metadata.get("deepmir", {}).get("subject")
    if subject:
        return subject
    return subject_id(layer.name) or _KIND_WORDS.sub("", layer.name.strip()) or layer.name


def source_images(layers) -> list:
    """3D image layers that can be inputs (no probability or other derived maps of this plugin)."""
    return [
        layer
        for layer in layers
        if isinstance(layer, Image) and layer.data.ndim == 3 and layer.metadata.get("deepmir", {}).get("kind") is None
    ]


def mask_layers(layers) -> list:
    """3D layers that can be a brain mask: labels layers that are not this plugin's lesion, annotation or
    region maps, and image layers of no modality and no kind (a mask opened as an image)."""
    return [
        layer
        for layer in layers
        if layer.data.ndim == 3
        and layer.metadata.get("deepmir", {}).get("kind") is None
        and (isinstance(layer, Labels) or (isinstance(layer, Image) and modality_of(layer) is None))
    ]


def subject_layer(layers, subject: str, modality: str):
    """The image layer of ``modality`` of ``subject`` among ``layers``, or None."""
    return next((la for la in source_images(layers) if modality_of(la) == modality and subject_of(la) == subject), None)


def mixed_subjects_message(swi, others: dict) -> str:
    """Why inputs from several subjects are refused ('' when they are one subject's)."""
    if swi is None:
        return ""
    wrong = [
        f"{MODALITY_TITLES[m]} {layer.name!r}"
        for m, layer in others.items()
        if layer is not None and subject_of(layer) != subject_of(swi)
    ]
    if not wrong:
        return ""
    return f"{' and '.join(wrong)} not of subject {subject_of(swi)} (SWI {swi.name!r}): choose one subject's layers."


class SubjectInputs(Container):
    """SWI, QSM and T2 pickers over the viewer's image layers, the QSM's units, and with ``mask`` an optional
    brain-mask layer.

    The SWI picker takes an SWI layer (by metadata or name) until the user chooses; choosing an SWI
    picks that subject's QSM and T2. ``problem`` says why the inputs cannot be used ('' when fine).
    ``qsm_units`` is what the user states the QSM file held (``auto``: as the reader found it)."""

    def __init__(self, viewer, modalities=("swi", "qsm", "t2"), *, mask: bool = False):
        self.viewer = viewer
        self.pickers = {
            m: ComboBox(
                label=MODALITY_TITLES[m], choices=self._choices, nullable=m != "swi", name=m, tooltip=_PICKER_TIPS[m]
            )
            for m in modalities
        }
        self.units_picker = ComboBox(label="QSM units", choices=QSM_UNIT_CHOICES, value="auto", name="qsm_units")
        self.units_picker.tooltip = (
            "Units of the QSM file: as read takes its sidecar's Units, else detects them from the values"
        )
        units = [self.units_picker] if "qsm" in modalities else []
        self.mask_picker = ComboBox(
            label="Brain mask", choices=self._mask_choices, nullable=True, value=None, name="brain_mask"
        )
        self.mask_picker.tooltip = (
            "Optional: a layer on the SWI grid (non-zero = brain) where lesions are sought; "
            "empty: estimated from the SWI and QSM"
        )
        masks = [self.mask_picker] if mask else []
        super().__init__(widgets=[*self.pickers.values(), *units, *masks], labels=True)
        self.margins = (0, 0, 0, 0)
        self._swi_chosen_by_hand = False
        self._updating = False
        self.pickers["swi"].changed.connect(self._on_swi_changed)
        self.connect_viewer()

    def _choices(self, widget=None) -> list[tuple[str, object]]:
        return [(layer.name, layer) for layer in source_images(self.viewer.layers)]

    def _mask_choices(self, widget=None) -> list[tuple[str, object]]:
        return [(layer.name, layer) for layer in mask_layers(self.viewer.layers)]

    def _on_layers_event(self, event) -> None:
        if event.type in _LIST_EVENTS:
            self.refresh()

    def refresh(self) -> None:
        """List the layers again (names follow renames); pick the SWI and its subject's layers when needed."""
        self._updating = True
        try:
            self.reset_choices()
            swi = self.pickers["swi"].value
            if swi is None or (not self._swi_chosen_by_hand and modality_of(swi) != "swi"):
                found = [la for la in source_images(self.viewer.layers) if modality_of(la) == "swi"]
                if found:
                    self.pickers["swi"].value = found[-1]
                    self._follow_swi()
            elif any(
                p.value is None and subject_layer(self.viewer.layers, subject_of(swi), m) is not None
                for m, p in self.pickers.items()
                if m != "swi"
            ):
                self._follow_swi(only_empty=True)
        finally:
            self._updating = False

    def _on_swi_changed(self, value) -> None:
        if self._updating:
            return
        self._swi_chosen_by_hand = True
        self._updating = True
        try:
            self._follow_swi()
        finally:
            self._updating = False

    def _follow_swi(self, only_empty: bool = False) -> None:
        swi = self.pickers["swi"].value
        if swi is None:
            return
        for modality, picker in self.pickers.items():
            if modality != "swi" and not (only_empty and picker.value is not None):
                picker.value = subject_layer(self.viewer.layers, subject_of(swi), modality)

    @property
    def layers(self) -> dict:
        """The chosen layer per modality (None when none is chosen)."""
        return {m: p.value for m, p in self.pickers.items()}

    @property
    def mask_layer(self):
        """The brain-mask layer chosen, or None (estimated)."""
        return self.mask_picker.value

    @property
    def qsm_units(self) -> str:
        """``auto``, ``ppm``, ``ppb`` or ``si`` (see :func:`._layers.subject_from_layers`)."""
        return self.units_picker.value

    @property
    def problem(self) -> str:
        """'' when the inputs are one subject's, else why not."""
        chosen = self.layers
        if chosen["swi"] is None:
            return "Open a subject first: an SWI layer is needed."
        return mixed_subjects_message(chosen["swi"], {m: la for m, la in chosen.items() if m != "swi"})

    def connect_viewer(self) -> None:
        """Follow the viewer's layers (again), catching up with what changed meanwhile."""
        self.viewer.layers.events.connect(self._on_layers_event)
        self.refresh()

    def disconnect_viewer(self) -> None:
        """Stop following the viewer (the widget's panel is closed)."""
        self.viewer.layers.events.disconnect(self._on_layers_event)
