"""Every menu path the docs give (*File > ...*, *Layers > ...*, *Plugins > ...*) is one napari's menu bar has, with
this plugin installed: a user following the docs finds each item where they say."""

import re
from pathlib import Path

from qtpy.QtWidgets import QMenu

ROOT = Path(__file__).resolve().parents[1]
#: A menu path in italics or bold: ``*File > Open Sample > ...*`` or ``**Plugins > DEEPMIR microbleeds**``.
MENU_PATH = re.compile(r"\*{1,2}((?:File|Layers|Plugins) > [^*\n]+?)\*{1,2}")


def _doc_menu_paths() -> dict[str, list[str]]:
    paths: dict[str, list[str]] = {}
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for match in MENU_PATH.finditer(page.read_text()):
            paths.setdefault(match.group(1), []).append(page.name)
    return paths


def _title(action) -> str:
    return action.text().replace("&", "")


def _missing_step(menu: QMenu, steps: list[str]) -> str | None:
    """The first step of ``steps`` that ``menu`` lacks (an item matches when its title starts with the step, as
    "Open Folder..." does "Open Folder"); None when the path is there. A path may go on past an item that opens a
    dialog (*File > Preferences > Plugins*: a page of the dialog)."""
    step, *rest = steps
    for action in menu.actions():
        if _title(action).startswith(step):
            if action.menu() is None:
                return None
            return _missing_step(action.menu(), rest) if rest else None
    return f"{step!r} (there: {[_title(a) for a in menu.actions() if _title(a)]})"


def test_the_docs_menu_paths_are_napari_menus(make_napari_viewer):
    viewer = make_napari_viewer()
    bar = viewer.window._qt_window.menuBar()
    top = QMenu()
    for action in bar.actions():
        top.addAction(action)
    paths = _doc_menu_paths()
    assert len(paths) >= 8  # the docs do give menu paths
    wrong = {path: _missing_step(top, path.split(" > ")) for path in paths}
    assert {path: (step, paths[path]) for path, step in wrong.items() if step} == {}
