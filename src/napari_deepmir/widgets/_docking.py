"""How the plugin's panels share napari's dock area: tabbed together, scrolling up and down, never clipped sideways.

napari stacks dock widgets opened from its menus one under the other, and the main window grows past the
screen when their minimum heights add up (napari then saves that size for the next start). So each panel
here scrolls what does not fit its height (its minimum height is a few rows), and the first time its dock
is shown it joins the other panels of this plugin in its dock area as a tab (napari's own
``add_dock_widget(..., tabify=True)`` does the same, but its menus never ask for it).
"""

from qtpy.QtCore import QEvent, Qt, QTimer
from qtpy.QtWidgets import QDockWidget, QMainWindow, QScrollArea, QStyle, QVBoxLayout, QWidget


class VerticalScrollArea(QScrollArea):
    """Scrolls its content up and down only: at least as wide as the content needs (a hard minimum width, kept
    up to date as the content changes, so no dock squeezes it), as short as one row."""

    def __init__(self):
        super().__init__(widgetResizable=True, frameShape=QScrollArea.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def setWidget(self, widget: QWidget) -> None:
        super().setWidget(widget)
        widget.installEventFilter(self)
        self._fit_content_width()

    def eventFilter(self, watched, event) -> bool:
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self._fit_content_width()
        return super().eventFilter(watched, event)

    def _fit_content_width(self) -> None:
        extent = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent, None, self.verticalScrollBar())
        bar = max(self.verticalScrollBar().sizeHint().width(), extent)
        needed = self.widget().minimumSizeHint().width() + bar + 2 * self.frameWidth()
        if self.minimumWidth() != needed:
            self.setMinimumWidth(needed)


def scrolling_layout(panel: QWidget) -> QVBoxLayout:
    """Fill ``panel`` with a :class:`VerticalScrollArea` and return the layout of the content it scrolls."""
    scroll = VerticalScrollArea()
    panel.scroll_area = scroll
    outer = QVBoxLayout(panel)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(scroll)
    content = QWidget()
    scroll.setWidget(content)
    return QVBoxLayout(content)


def dock_of(widget: QWidget) -> QDockWidget | None:
    """The dock widget holding ``widget`` in a main window, or None (closed, or not docked)."""
    dock = widget.parent()
    if isinstance(dock, QDockWidget) and isinstance(dock.parent(), QMainWindow):
        return dock
    return None


def join_plugin_tabs(panel: QWidget) -> bool:
    """Tabify ``panel``'s dock with the other :class:`TabbedPanel` docks shown in the same dock area and bring
    it to the front; True when it joined them."""
    dock = dock_of(panel)
    if dock is None or dock.isFloating():
        return False
    window = dock.parent()
    area = window.dockWidgetArea(dock)
    others = [
        other
        for other in window.findChildren(QDockWidget)
        if other is not dock
        and isinstance(other.widget(), TabbedPanel)
        and other.parent() is window
        and not other.isFloating()
        and not other.isHidden()
        and window.dockWidgetArea(other) == area
    ]
    if not others or set(others) & set(window.tabifiedDockWidgets(dock)):
        return False  # alone, or in a tab group already (another panel's dock joined this one)
    others.sort(key=lambda other: not window.tabifiedDockWidgets(other))  # an existing tab group first
    window.tabifyDockWidget(others[0], dock)
    dock.show()
    dock.raise_()
    return True


class TabbedPanel:
    """Mixin for a plugin dock widget (list it before QWidget): the first time a dock shows it, the panel
    joins the plugin's other panels as a tab (see :func:`join_plugin_tabs`). A dock the user drags out
    afterwards stays where it is put."""

    _joined_dock = None

    def showEvent(self, event) -> None:
        super().showEvent(event)
        QTimer.singleShot(0, self._join_tabs)  # once napari has put the dock in its place

    def _join_tabs(self) -> None:
        dock = dock_of(self)
        if dock is not None and dock is not self._joined_dock:
            self._joined_dock = dock
            join_plugin_tabs(self)
