"""A busy cursor over work the GUI thread does itself (reading layers, opening a session, listing models), so a
pause of a second or more never looks like a frozen viewer; long work runs in napari's thread workers instead."""

import functools
from contextlib import contextmanager

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication


@contextmanager
def busy_cursor():
    """Show the wait cursor over the whole application while the block runs."""
    QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
    try:
        yield
    finally:
        QApplication.restoreOverrideCursor()


@contextmanager
def busy_cursor_in_gui():
    """:func:`busy_cursor` when a Qt application runs (napari reading a file), else nothing (a script)."""
    if QApplication.instance() is None:
        yield
        return
    with busy_cursor():
        yield


def shows_busy(method):
    """Decorate a widget method that works on the GUI thread: the wait cursor shows while it runs."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with busy_cursor():
            return method(*args, **kwargs)

    return wrapper
