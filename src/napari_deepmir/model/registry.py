"""Which models there are: the shipped ones, models in the user's models folder, and registered ones;
and which model a subject gets (:func:`choose_model`).

The shipped models each read one input set: ``default`` SWI+QSM+T2, ``swi-qsm`` and ``swi``. Without a
model chosen, a subject gets the shipped model reading the most of the modalities it has.

The user models folder is ``$DEEPMIR_MODELS_DIR`` or the platform's user data folder
(``~/.local/share/napari-deepmir/models`` on Linux). A model fine-tuned in the viewer is saved there;
a model elsewhere is remembered in ``registry.json`` there, so every widget lists it.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..conventions import MODALITIES, MODALITY_TITLES
from ..io.atomic import write_text_atomic
from ..io.errors import InputError
from ..io.jsonfile import read_json
from .card import ModelCard
from .files import CARD, model_folder, read_card, recover_folder


@dataclass
class ModelEntry:
    name: str
    path: Path
    card: ModelCard


#: The shipped models (package data, ``models/<name>``), each reading one input set; ``--model``
#: and ``--base`` accept these names.
SHIPPED_MODELS = ("default", "swi-qsm", "swi")


def shipped_model_path(name: str) -> Path:
    """The folder of the shipped model called ``name`` (one of :data:`SHIPPED_MODELS`)."""
    return Path(__file__).resolve().parent.parent / "models" / name


def default_model_path() -> Path:
    """The shipped default model (SWI+QSM+T2)."""
    return shipped_model_path("default")


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
        return [Path(p) for p in read_json(_registry_file())]
    except (InputError, TypeError):
        return []


def register_model(path: str | Path) -> ModelEntry:
    """Remember a model (checked by reading its card) so it is listed everywhere; returns its entry."""
    folder = model_folder(path).resolve()
    card = read_card(folder)
    paths = [p for p in _registered_paths() if p != folder] + [folder]
    write_text_atomic(_registry_file(), json.dumps([str(p) for p in paths], indent=1))
    return ModelEntry(card.name, folder, card)


@dataclass
class ModelChoice:
    """The model a subject runs with, and why (``reason`` completes "model NAME: ...")."""

    path: Path
    card: ModelCard
    reason: str

    def describe(self) -> str:
        """'model deepmir-swi-qsm-synthetic: the subject has no T2'."""
        return f"model {self.card.name}: {self.reason}"


def _titles(modalities) -> str:
    return "+".join(MODALITY_TITLES[m] for m in MODALITIES if m in modalities)


def shipped_models() -> list[ModelEntry]:
    """The shipped models present in this installation, the default first."""
    folders = [shipped_model_path(name) for name in SHIPPED_MODELS]
    return [ModelEntry(f.name, f, read_card(f)) for f in folders if (f / CARD).exists()]


def choose_model(available, model: str | Path | None = None) -> ModelChoice:
    """The model for a subject with the modalities ``available``: ``model`` if given (InputError when it
    needs a modality the subject lacks), else the shipped model reading the largest subset of them."""
    available = [m for m in MODALITIES if m in available]
    if model is not None:
        folder = resolve_model(model)
        card = read_card(folder)
        missing = [m for m in card.modalities if m not in available]
        if missing:
            raise InputError(
                folder,
                f"model {card.name!r} needs {_titles(card.modalities)} but the subject has no "
                f"{' or '.join(MODALITY_TITLES[m] for m in missing)}; choose a model for {_titles(available)} "
                "(or none: the shipped model for the subject's inputs is chosen)",
            )
        return ModelChoice(folder, card, "chosen by the user")
    fitting = [e for e in shipped_models() if set(e.card.modalities) <= set(available)]
    if not fitting:
        raise InputError(
            default_model_path().parent, f"no shipped model reads {_titles(available)} (the shipped models are missing)"
        )
    best = max(fitting, key=lambda e: len(e.card.modalities))  # the first (default) wins a tie
    lacking = [MODALITY_TITLES[m] for m in MODALITIES if m not in available]
    unused = [MODALITY_TITLES[m] for m in available if m not in best.card.modalities]
    reason = f"the subject has no {' or '.join(lacking)}" if lacking else f"the subject has {_titles(available)}"
    if unused:
        reason += f"; {' and '.join(unused)} not used (no shipped model reads {_titles(available)})"
    return ModelChoice(best.path, best.card, reason)


def list_models() -> list[ModelEntry]:
    """The shipped models first (the default leading), then user models (folder contents and registered),
    newest last."""
    candidates = [entry.path for entry in shipped_models()]
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
        shipped = folder.parent == default_model_path().parent.resolve() and folder.name in SHIPPED_MODELS
        name = f"{folder.name} (shipped)" if shipped else card.name
        entries.append(ModelEntry(name, folder, card))
    return entries


def resolve_model(path: str | Path | None) -> Path:
    """A model folder from a user's choice: a folder or file, or a shipped model's name (when no such
    path exists); None means the shipped default."""
    shipped = "default" if path is None else str(path) if str(path) in SHIPPED_MODELS else None
    if shipped is not None and (path is None or not Path(path).exists()):
        folder = shipped_model_path(shipped)
        if not (folder / CARD).exists():
            raise InputError(folder, f"the shipped model {shipped!r} is missing from this installation")
        return folder
    folder = recover_folder(model_folder(path))
    if not (folder / CARD).exists():
        read_card(folder)  # raises the precise error
    return folder
