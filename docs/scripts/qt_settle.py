"""Shared by the screenshot scripts: let Qt draw before a screenshot is taken."""

import time

from qtpy.QtWidgets import QApplication


def settle(seconds: float = 1.0) -> None:
    """Process Qt events for ``seconds`` (layers drawn, docks laid out)."""
    app = QApplication.instance()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)
