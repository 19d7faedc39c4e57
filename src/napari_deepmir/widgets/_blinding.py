"""A blinded read shows the images and the rater's own annotation, nothing else that holds a verdict.

While a blinded labelling session runs, every other Labels layer (a detection, the sample's true lesions,
another rater's labels, location and region maps) and the model's probability maps are hidden; a layer
shown again or added meanwhile (a Detect run) is hidden at once. When the session ends, the layers it hid
are shown again.
"""

from napari.layers import Labels

from ._lesions import kind_of


def hidden_while_blinded(layer, annotation) -> bool:
    """Whether a blinded session with the annotation layer ``annotation`` hides ``layer``."""
    return layer != annotation and (isinstance(layer, Labels) or kind_of(layer) == "probability")


class Blinds:
    """Hides what a blinded session must not show, keeps it hidden, and shows it again at the end."""

    def __init__(self, viewer, *, on_hidden=None):
        self.viewer = viewer
        self.on_hidden = on_hidden  # called after a layer shown or added meanwhile was hidden
        self.annotation = None
        self.hidden = []  # layers that were visible when hidden, in the order hidden

    @property
    def down(self) -> bool:
        return self.annotation is not None

    def lower(self, annotation) -> None:
        """Hide every layer :func:`hidden_while_blinded` names, and keep them hidden until :meth:`lift`."""
        if self.down:
            self.lift()
        self.annotation = annotation
        self.viewer.layers.events.connect(self._on_layers_event)
        self._hide()

    def lift(self) -> None:
        """Stop hiding; show the layers this hid that are still open."""
        if not self.down:
            return
        self.viewer.layers.events.disconnect(self._on_layers_event)
        for layer in self.hidden:
            if layer in self.viewer.layers:
                layer.visible = True
        self.annotation, self.hidden = None, []

    def names(self) -> list[str]:
        """The names of the layers hidden now."""
        return [layer.name for layer in self.hidden if layer in self.viewer.layers]

    def _on_layers_event(self, event) -> None:
        if event.type in ("inserted", "visible") and self._hide() and self.on_hidden is not None:
            self.on_hidden()

    def _hide(self) -> bool:
        """Hide what must be hidden; True when a layer was hidden."""
        hid = False
        for layer in list(self.viewer.layers):
            if layer.visible and hidden_while_blinded(layer, self.annotation):
                layer.visible = False
                hid = True
                if layer not in self.hidden:
                    self.hidden.append(layer)
        return hid
