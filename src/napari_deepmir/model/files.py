"""Model files: ``model.safetensors`` (weights, which cannot carry code) + ``model.json`` (the card).

Writing is atomic: both files go into a temporary sibling folder that replaces the target folder in
one rename, so a crash or a cancel never leaves a half-written model nor damages the model at that path.
"""

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..io.errors import InputError
from .card import FORMAT_VERSION, ModelCard

WEIGHTS, CARD = "model.safetensors", "model.json"


@dataclass
class LoadedModel:
    """A network in eval mode with its card; ``path`` is None for a model that lives only in memory."""

    module: object
    card: ModelCard
    path: Path | None


def model_folder(path: str | Path) -> Path:
    """The folder of a model given as its folder, its .safetensors or its .json file."""
    path = Path(path)
    return path.parent if path.suffix in (".safetensors", ".json") else path


def model_sha256(path: str | Path | None) -> str | None:
    """SHA-256 of a model's weights file (its identity in lineage records)."""
    if path is None:
        return None
    digest = hashlib.sha256()
    with open(model_folder(path) / WEIGHTS, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_card(path: str | Path) -> ModelCard:
    """The card of a model folder, with clear errors for a missing or invalid one."""
    folder = model_folder(path)
    card_path = folder / CARD
    if not folder.exists():
        raise InputError(folder, "model not found")
    if not card_path.exists():
        raise InputError(folder, f"not a model folder: {CARD} (the model card) is missing")
    try:
        data = json.loads(card_path.read_text(encoding="utf-8"))
        card = ModelCard.from_dict(data)
    except (ValueError, TypeError) as error:
        raise InputError(card_path, f"invalid model card ({error})") from None
    if card.format_version > FORMAT_VERSION:
        raise InputError(card_path, f"model format {card.format_version} is newer than this napari-deepmir reads ({FORMAT_VERSION}); upgrade")
    return card


def save_model(folder: str | Path, module, card: ModelCard) -> Path:
    """Write weights and card to ``folder`` atomically (replacing any model there). Returns the folder."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        state = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
        save_file(state, str(staging / WEIGHTS), metadata={"format": "pt", "napari-deepmir": str(FORMAT_VERSION)})
        card.training = dict(card.training)
        (staging / CARD).write_text(json.dumps({**card.to_dict(), "sha256": model_sha256(staging)}, indent=2), encoding="utf-8")
        _swap_into_place(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _swap_into_place(staging: Path, folder: Path) -> None:
    """Replace ``folder`` by ``staging``: two renames; the old model is removed only once the new one is in place."""
    if not folder.exists():
        os.replace(staging, folder)
        return
    retired = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(retired, ignore_errors=True)
    os.replace(folder, retired)
    os.replace(staging, folder)
    shutil.rmtree(retired, ignore_errors=True)


def load_model(path: str | Path, device: str | object = "cpu") -> LoadedModel:
    """Load a model folder (or its .safetensors file) onto ``device``; never unpickles anything."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .unet import DeepmirUNet

    folder = model_folder(path)
    if Path(path).suffix not in ("", ".safetensors", ".json"):
        raise InputError(path, "not a model: expected a model folder or a .safetensors file (pickled .pt/.pth models are refused: they can run code)")
    card = read_card(folder)
    weights = folder / WEIGHTS
    if not weights.exists():
        raise InputError(folder, f"{WEIGHTS} (the weights) is missing")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as error:
        raise InputError(weights, f"not a readable safetensors file ({error})") from None
    arch = card.architecture
    module = DeepmirUNet(card.in_channels, card.n_classes, arch["base_filters"], arch["depth"])
    expected = module.state_dict()
    problems = [k for k in expected if k not in state] + [k for k in state if k not in expected]
    problems += [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if problems:
        first = problems[0]
        detail = f"{first}: weights {tuple(state[first].shape) if first in state else 'missing'}, card expects {tuple(expected[first].shape) if first in expected else 'none'}"
        raise InputError(weights, f"weights do not fit the model card ({card.in_channels} input channels, {card.n_classes} classes); {len(problems)} mismatched tensors, e.g. {detail}")
    module.load_state_dict(state)
    module.to(torch.device(device) if isinstance(device, str) else device).eval()
    return LoadedModel(module, card, folder)
