"""What napari runs when this plugin first does something in a session (npe2's ``on_activate``).

napari's builtin reader also claims ``*.nii`` and ``*.nii.gz`` (through imageio), so with two readers
File > Open and drag-and-drop ask "Choose reader" on every NIfTI unless napari's settings name a
preferred reader for the name (``settings.plugins.extension2reader``, a glob -> plugin table napari
keeps between sessions; a folder is matched with a trailing separator). On activation this plugin
fills that table for :data:`READER_PATTERNS` where it holds nothing yet, says so in a notification,
and remembers what it set for that settings file (:func:`offered_patterns_file`): a pattern the user
has set, changed or removed in Preferences > Plugins is never set again. npe2 offers no way to be preferred before the
plugin first runs, so in a fresh napari the first NIfTI opened before any DEEPMIR widget or sample may
still show the dialog once (docs/getting-started.md).
"""

import json
from pathlib import Path

import platformdirs

from ._writer import PLUGIN_NAME, list_writers_first
from .io.atomic import write_text_atomic
from .io.jsonfile import read_json

#: NIfTI files, and BIDS subject folders (``sub-*``, matched on the folder's path with a trailing separator).
READER_PATTERNS = ("*.nii", "*.nii.gz", "*/sub-*/")


def on_activate(context) -> None:
    """npe2's activation hook: this plugin's NIfTI writers first, its reader preferred (see the module)."""
    list_writers_first()
    patterns = prefer_this_reader()
    if patterns:
        from napari.utils.notifications import show_info

        show_info(
            f"{PLUGIN_NAME} now opens {', '.join(patterns)} without asking which reader; "
            "change it in File > Preferences > Plugins."
        )


def offered_patterns_file() -> Path:
    """Where the patterns this plugin has set once are remembered (platformdirs' user config folder)."""
    return platformdirs.user_config_path(PLUGIN_NAME, appauthor=False) / "reader-preference.json"


def prefer_this_reader() -> list[str]:
    """Name this plugin napari's preferred reader for each of :data:`READER_PATTERNS` that has no preferred
    reader and was never set by this plugin before; returns the patterns set."""
    from napari.settings import get_settings

    settings = get_settings()
    preferred = settings.plugins.extension2reader
    record = offered_patterns_file()
    offered = read_json(record) if record.exists() else {}
    key = str(settings.config_path)  # napari keeps one settings file per Python environment
    new = [p for p in READER_PATTERNS if p not in preferred and p not in offered.get(key, [])]
    if new:
        settings.plugins.extension2reader = {**preferred, **dict.fromkeys(new, PLUGIN_NAME)}
        record.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(record, json.dumps({**offered, key: sorted({*offered.get(key, []), *new})}, indent=1))
    return new
