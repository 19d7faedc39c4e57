"""Which models there are: the shipped default, models in the user's models folder, and registered ones.

The user models folder is ``$DEEPMIR_MODELS_DIR`` or the platform's user data folder
(``~/.local/share/napari-deepmir/models`` on Linux). A model fine-tuned in the viewer is saved there;
a model elsewhere is remembered in ``registry.json`` there, so every widget lists it.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..io.atomic import write_text_atomic
from ..io.errors import InputError
from .card import ModelCard
from .files import CARD, model_folder, read_card, recover_folder


@dataclass
class ModelEntry:
    name: str
    path: Path
    card: ModelCard


def default_model_path() -> Path:
    """The shipped default model (package data)."""
    return Path(__file__).resolve().parent.parent / "models" / "default"


def user_models_dir() -> Path:
    """Where fine-tuned models go by default, and where the registry of other models lives."""
    configured = os.environ.get("DEEPMIR_MODELS_DIR")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "napari-deepmir" / "models"


def _registry_file() -> Path:
    return user_models_dir() / "registry.json"


def _registered_paths() -> list[Path]:
    try:
        return [Path(p) for p in json.loads(_registry_file().read_text(encoding="utf-8"))]
    except (OSError, ValueError):
        return []


def register_model(path: str | Path) -> ModelEntry:
    """Remember a model (checked by reading its card) so it is listed everywhere; returns its entry."""
    folder = model_folder(path).resolve()
    card = read_card(folder)
    paths = [p for p in _registered_paths() if p != folder] + [folder]
    write_text_atomic(_registry_file(), json.dumps([str(p) for p in paths], indent=1))
    return ModelEntry(card.name, folder, card)


def list_models() -> list[ModelEntry]:
    """The default model first, then user models (folder contents and registered), newest last."""
    candidates = [default_model_path()]
    users = user_models_dir()
    if users.is_dir():
        candidates += sorted(
            p.parent for p in users.glob(f"*/{CARD}") if not p.parent.name.startswith(".")
        )  # not staging copies
    candidates += _registered_paths()
    entries, seen = [], set()
    for folder in candidates:
        folder = folder.resolve()
        if folder in seen or not (folder / CARD).exists():
            continue
        seen.add(folder)
        try:
            card = read_card(folder)
        except InputError:
            continue
        name = "default (shipped)" if folder == default_model_path().resolve() else card.name
        entries.append(ModelEntry(name, folder, card))
    return entries


def resolve_model(path: str | Path | None) -> Path:
    """A model folder from a user's choice; None means the shipped default."""
    folder = default_model_path() if path is None else recover_folder(model_folder(path))
    if not (folder / CARD).exists():
        if path is None:
            raise InputError(folder, "the shipped default model is missing from this installation")
        read_card(folder)  # raises the precise error
    return folder
