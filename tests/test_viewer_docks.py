"""The four workflow panels, opened as getting-started lists them, fit a 1600x1000 screen (pytest-xvfb's screen
is set to that size in pyproject.toml): one tab group, the window no taller than the screen, nothing clipped."""

from qtpy.QtWidgets import QAbstractButton, QLabel, QScrollArea

from napari_deepmir.widgets.finetune import PLOT_MIN_HEIGHT

PANELS = ("Detect lesions", "Label lesions", "Lesion table", "Fine-tune model")
SCREEN = (1600, 1000)


def _dock(viewer, widget):
    from napari._qt.widgets.qt_viewer_dock_widget import QtViewerDockWidget

    return next(d for d in viewer.window._qt_window.findChildren(QtViewerDockWidget) if d.widget() is widget)


def _key_controls(name: str, widget) -> list:
    return {
        "Detect lesions": lambda: [widget.inputs.native, widget.model_box.native, widget.run_button],
        "Label lesions": lambda: [widget.start_button, widget.find_button, widget.candidate_list, widget.guidance],
        "Lesion table": lambda: [widget.layer_box.native, widget.view, widget.export_button],
        "Fine-tune model": lambda: [widget.annotations.native, widget.start_button, widget.plot],
    }[name]()


def _clipped(widget) -> list[str]:
    """Texts of the visible labels and buttons of ``widget`` narrower than their text needs."""
    clipped = []
    for child in widget.findChildren((QLabel, QAbstractButton)):
        if not child.isVisible() or not child.text():
            continue
        wrapping = isinstance(child, QLabel) and child.wordWrap()
        needed = (child.minimumSizeHint() if wrapping else child.sizeHint()).width()
        if needed > child.width():
            clipped.append(f"{child.text()[:40]!r}: {child.width()} < {needed} px")
    return clipped


def test_the_four_panels_fit_a_1600x1000_screen_as_tabs(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    assert (window.screen().geometry().width(), window.screen().geometry().height()) == SCREEN
    window.resize(*SCREEN)
    window.move(0, 0)
    viewer.open_sample("napari-deepmir", "synthetic_subject")
    widgets = {name: viewer.window.add_plugin_dock_widget("napari-deepmir", name)[1] for name in PANELS}
    docks = {name: _dock(viewer, widget) for name, widget in widgets.items()}
    others = {dock.name for dock in docks.values()} - {docks[PANELS[0]].name}
    in_tabs = lambda: {dock.name for dock in window.tabifiedDockWidgets(docks[PANELS[0]])} == others
    qtbot.waitUntil(in_tabs, timeout=10_000)  # one tab group, once the panels are shown
    labelling = widgets["Label lesions"]
    labelling.folder_edit.value = tmp_path / "annotations"
    labelling.start_button.click()  # a session under way: its status, layer and guidance shown
    qtbot.wait(100)

    assert window.frameGeometry().height() <= SCREEN[1] and window.height() <= SCREEN[1]
    for name, widget in widgets.items():
        docks[name].raise_()
        qtbot.wait(100)
        assert window.frameGeometry().height() <= SCREEN[1]
        for control in _key_controls(name, widget):
            assert control.isVisible() and control.width() > 0 and control.height() > 0, (name, control)
        assert _clipped(widget) == [], name
        scroll = widget.findChild(QScrollArea)
        assert scroll.horizontalScrollBar().value() == 0  # never scrolled sideways
        assert scroll.widget().minimumSizeHint().width() <= scroll.widget().width() <= scroll.viewport().width()
    assert widgets["Fine-tune model"].plot.height() >= PLOT_MIN_HEIGHT  # the loss plot is never a strip
    assert widgets["Label lesions"].candidate_list.height() >= 150
