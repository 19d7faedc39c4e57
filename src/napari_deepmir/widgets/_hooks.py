"""Viewer hooks a dock widget holds only while its panel is open.

napari never calls a dock widget's ``close()``: closing the panel takes the widget out of its dock
(which hides it) and deletes the dock later. So a widget's event connections, mouse callbacks and
key bindings are released when it is hidden and made again when it is shown.
"""


class HooksWhileShown:
    """Mixin for a dock widget (list it before QWidget): :meth:`hook_viewer` connects to the viewer,
    :meth:`release_viewer` undoes it. The widget calls ``hold_hooks(True)`` once built; hiding
    releases the hooks and showing makes them again (and catches up with what changed meanwhile)."""

    _hooked = False

    def hook_viewer(self) -> None:
        raise NotImplementedError

    def release_viewer(self) -> None:
        raise NotImplementedError

    def hold_hooks(self, on: bool) -> None:
        """Make (``on``) or release the hooks; nothing happens when they are already in that state."""
        if on != self._hooked:
            self._hooked = on
            self.hook_viewer() if on else self.release_viewer()

    def showEvent(self, event) -> None:
        self.hold_hooks(True)
        super().showEvent(event)

    def hideEvent(self, event) -> None:
        self.hold_hooks(False)
        super().hideEvent(event)
