"""Every button and field of the four workflow panels says what it does when the mouse rests on it."""

from qtpy.QtWidgets import QAbstractButton, QAbstractItemView, QAbstractSpinBox, QComboBox, QHeaderView, QLineEdit

PANELS = ("Detect lesions", "Label lesions", "Lesion table", "Fine-tune model")
CONTROLS = (QAbstractButton, QLineEdit, QComboBox, QAbstractSpinBox, QAbstractItemView)


def _tooltip(control, panel) -> str:
    """The tooltip Qt shows over ``control``: its own, else the nearest ancestor's within the panel."""
    widget = control
    while widget is not None and widget is not panel:
        if widget.toolTip():
            return widget.toolTip()
        widget = widget.parentWidget()
    return ""


def _untipped(panel) -> list[str]:
    missing = []
    for control in panel.findChildren(CONTROLS):
        if isinstance(control, QHeaderView) or control.objectName() == "qt_tableview_cornerbutton":
            continue  # a table's headers: their tooltips are the columns' descriptions
        if not _tooltip(control, panel):
            text = control.text() if hasattr(control, "text") and callable(control.text) else ""
            missing.append(f"{type(control).__name__} {text!r} ({control.objectName()})")
    return missing


def test_every_button_and_field_has_a_tooltip(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-deepmir", "synthetic_subject")
    for name in PANELS:
        _, panel = viewer.window.add_plugin_dock_widget("napari-deepmir", name)
        assert _untipped(panel) == [], name
