"""Model files: ``model.safetensors`` (weights, which cannot carry code) + ``model.json`` (the card).

Writing (:func:`write_folder`, behind :func:`save_model` and training checkpoints): the files go into a
staging folder ``.NAME.tmp.<pid>.<token>`` beside ``NAME``, made with the user's umask, which then
takes the place of ``NAME``. A new ``NAME`` takes one rename; replacing one takes two: ``NAME`` becomes
``.NAME.old``, the staging folder becomes ``NAME``, then ``.NAME.old`` is deleted. A process killed
between the two renames leaves ``.NAME.old`` and no ``NAME``: whatever reads or writes ``NAME`` next
(:func:`recover_folder`, called by :func:`read_card`, :func:`load_model`, :func:`save_model`) renames
``.NAME.old`` back, so the previous model is never lost. Staging folders and stale ``.NAME.old`` that a
killed run left are deleted at the next write into the same parent folder, but only those named so,
older than this process and holding nothing but the files we write.

Only a folder that is new, empty or a model (``model.json`` and nothing but model files) is ever
replaced, and a model only when ``overwrite`` is given.

Loading (:func:`load_model`) trusts nothing before checking it: the card against its schema
(:mod:`.card`), the tensor names, shapes and dtypes in the safetensors header against the network the
card describes (before anything is allocated), the weights' SHA-256 against the one the card records
(a card without one, hand-made or older, loads with a warning), and every weight for NaN/inf.
"""

import hashlib
import json
import os
import re
import secrets
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..io.errors import InputError
from ..io.jsonfile import read_json
from .card import FORMAT_VERSION, ModelCard

WEIGHTS, CARD = "model.safetensors", "model.json"
#: Prefix of the second stage's tensors in the weights file.
VERIFIER_PREFIX = "verifier."
MODEL_FILES = frozenset({WEIGHTS, CARD})
#: safetensors dtypes a floating-point tensor may have; integer tensors must be exactly what the network holds.
_FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})
#: Leftovers of an interrupted write are only those older than this process.
_STARTED = time.time()
_STAGING = re.compile(r"\..+\.tmp\.\d+\.[0-9a-f]+")


@dataclass
class LoadedModel:
    """A network in eval mode with its card; ``path`` is None for a model that lives only in memory;
    ``sha256``: its weights' SHA-256 (:func:`model_sha256`), computed once when it was loaded."""

    module: object
    card: ModelCard
    path: Path | None
    verifier: object | None = None
    sha256: str | None = None


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


def _retired(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}.old")


def _holds_only(folder: Path, names: frozenset) -> bool:
    return all(entry.name in names and entry.is_file() and not entry.is_symlink() for entry in folder.iterdir())


#: The files of a training checkpoint (:mod:`..training.checkpoint`), written by :func:`write_folder` too.
CHECKPOINT_FILES = ("checkpoint.safetensors", "checkpoint.json")
#: Files a retired ``.NAME.old`` folder of ours may hold: a model's, or a training checkpoint's.
RECOVERABLE_FILES = MODEL_FILES | set(CHECKPOINT_FILES)


def recover_folder(folder: str | Path) -> Path:
    """``folder``, put back from ``.NAME.old`` first if a write was killed between its two renames. Only a
    ``.NAME.old`` that holds nothing but our files (:data:`RECOVERABLE_FILES`) is ours to rename: a user's
    own folder of that name stays where it is."""
    folder = Path(folder)
    retired = _retired(folder)
    if (
        not folder.exists()
        and retired.is_dir()
        and not retired.is_symlink()
        and any(retired.iterdir())
        and _holds_only(retired, RECOVERABLE_FILES)
    ):
        try:
            retired.rename(folder)
        except OSError:  # a read-only place: read the retired copy where it is
            return retired
    return folder


def _remove_leftovers(parent: Path, names: frozenset) -> None:
    """Delete staging folders and stale ``.NAME.old`` folders left in ``parent`` by a killed earlier run."""
    for entry in parent.iterdir():
        if not (
            _STAGING.fullmatch(entry.name)
            or (entry.name.endswith(".old") and entry.name.startswith(".") and (parent / entry.name[1:-4]).is_dir())
        ):
            continue
        try:
            if (
                entry.is_dir()
                and not entry.is_symlink()
                and entry.stat().st_mtime < _STARTED
                and _holds_only(entry, names)
            ):
                shutil.rmtree(entry)
        except OSError:
            pass  # another process got there first, or it is not ours to delete


def write_folder(folder: str | Path, write: Callable[[Path], None], names: frozenset) -> Path:
    """Make ``folder`` hold what ``write(staging)`` writes (files named in ``names``), atomically, as the
    module docstring describes; the caller has checked that ``folder`` may be replaced."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(folder.parent, names)
    staging = folder.with_name(f".{folder.name}.tmp.{os.getpid()}.{secrets.token_hex(4)}")
    staging.mkdir()  # unlike tempfile.mkdtemp, honours the umask
    try:
        write(staging)
        if recover_folder(folder).exists():
            retired = _retired(folder)
            if retired.exists():
                if not retired.is_dir() or retired.is_symlink() or not _holds_only(retired, names):
                    raise InputError(
                        retired,
                        f"is in the way of replacing {folder.name} and holds files we did not write; move it away",
                    )
                shutil.rmtree(retired)
            os.replace(folder, retired)
            os.replace(staging, folder)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def check_model_destination(folder: str | Path, overwrite: bool = False) -> None:
    """Raise InputError unless a model may be written to ``folder``: a new or empty folder, or, with
    ``overwrite``, a model folder. A folder holding anything else is never replaced."""
    folder = recover_folder(folder)
    if not folder.exists():
        return
    if not folder.is_dir() or folder.is_symlink():
        raise InputError(folder, "exists and is not a folder; give a new folder for the model")
    entries = sorted(entry.name for entry in folder.iterdir())
    if not entries:
        return
    if CARD not in entries or not _holds_only(folder, MODEL_FILES):
        others = [name for name in entries if name not in MODEL_FILES] or entries
        raise InputError(
            folder,
            f"not a model folder (it holds {others[0]!r}{' and more' if len(others) > 1 else ''}); "
            "it is never replaced: give a new or empty folder",
        )
    if not overwrite:
        raise InputError(folder, "a model is already there; pass --overwrite to replace it")


def _parse_card(folder: Path) -> tuple[ModelCard, dict]:
    """(card, the JSON it was read from) of a model folder; InputError for a missing or invalid card."""
    card_path = folder / CARD
    if not folder.exists():
        raise InputError(folder, "model not found")
    if not card_path.exists():
        raise InputError(folder, f"not a model folder: {CARD} (the model card) is missing")
    try:
        data = read_json(card_path)
    except InputError as error:
        raise InputError(card_path, f"invalid model card: {error.problem}") from None
    version = data.get("format_version") if isinstance(data, dict) else None
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise InputError(
            card_path, f"model format {version} is newer than this napari-deepmir reads ({FORMAT_VERSION}); upgrade"
        )
    try:
        return ModelCard.from_dict(data), data
    except (ValueError, TypeError) as error:
        raise InputError(card_path, f"invalid model card: {error}") from None


def read_card(path: str | Path) -> ModelCard:
    """The card of a model folder, checked against its schema; InputError for a missing or invalid one."""
    return _parse_card(recover_folder(model_folder(path)))[0]


def save_model(folder: str | Path, module, card: ModelCard, overwrite: bool = False, verifier=None) -> Path:
    """Write weights (the U-Net's, and the second stage's under ``verifier.`` when the card has one) and
    card to ``folder`` atomically; an existing model there is replaced only with ``overwrite``, and a folder
    holding anything else never (InputError). Returns the folder."""
    from safetensors.torch import save

    if (verifier is None) != (card.verifier is None):
        raise ValueError("a model card with a verifier section needs the verifier's weights, and only then")
    check_model_destination(folder, overwrite)
    card.training = dict(card.training)

    def write(staging: Path) -> None:
        state = {k: v.detach().to("cpu").contiguous() for k, v in _state(module, verifier).items()}
        # bytes written by Python honour the umask; safetensors' save_file makes its files 0600
        (staging / WEIGHTS).write_bytes(save(state, metadata={"format": "pt", "napari-deepmir": str(FORMAT_VERSION)}))
        (staging / CARD).write_text(
            json.dumps({**card.to_dict(), "sha256": model_sha256(staging)}, indent=2), encoding="utf-8"
        )

    return write_folder(folder, write, MODEL_FILES)


def _state(module, verifier) -> dict:
    """One state dict for the U-Net and, with the prefix ``verifier.``, the second stage."""
    state = dict(module.state_dict())
    if verifier is not None:
        state.update({f"{VERIFIER_PREFIX}{k}": v for k, v in verifier.state_dict().items()})
    return state


def _networks(card: ModelCard):
    """(U-Net, verifier or None) as the card describes them, on the current default device."""
    from .unet import DeepmirUNet  # noqa: PLC0415 (a torch module)
    from .verifier import CandidateVerifier  # noqa: PLC0415 (a torch module)

    arch = card.architecture
    module = DeepmirUNet(card.in_channels, card.n_classes, arch["base_filters"], arch["depth"])
    verifier = None
    if card.verifier is not None:
        verifier = CandidateVerifier(len(card.modalities) + 1, 3, card.verifier["base_filters"])
    return module, verifier


def _check_weights_header(weights: Path, card: ModelCard) -> None:
    """Compare the tensors the safetensors header lists with those of the networks the card describes,
    built on the meta device (no memory): names, shapes, and dtypes (floating point, integer only where
    the network has an integer, e.g. BatchNorm's batch counter)."""
    import torch
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="pt") as handle:
            header = {
                k: (tuple(handle.get_slice(k).get_shape()), handle.get_slice(k).get_dtype())
                for k in handle.keys()  # noqa: SIM118 (a safetensors handle, not a dict)
            }
    except (SafetensorError, OSError, ValueError) as error:
        raise InputError(weights, f"not a readable safetensors file ({error})") from None
    arch = card.architecture
    with torch.device("meta"):
        expected = _state(*_networks(card))
    problems = [k for k in expected if k not in header] + [k for k in header if k not in expected]
    problems += [k for k in expected if k in header and header[k][0] != tuple(expected[k].shape)]
    if problems:
        first = problems[0]
        found = header[first][0] if first in header else "missing"
        wanted = tuple(expected[first].shape) if first in expected else "none"
        detail = f"{first}: weights {found}, card expects {wanted}"
        raise InputError(
            weights,
            f"weights do not fit the model card ({card.in_channels} input channels, {card.n_classes} classes, "
            f"base_filters {arch['base_filters']}, depth {arch['depth']}); {len(problems)} mismatched tensors, e.g. "
            f"{detail}",
        )
    for key, tensor in expected.items():
        allowed = (
            _FLOAT_DTYPES if tensor.is_floating_point() else {"I64"}
        )  # the network's only integers: BatchNorm's counters
        if header[key][1] not in allowed:
            raise InputError(
                weights, f"tensor {key} has dtype {header[key][1]}, expected {' or '.join(sorted(allowed))}"
            )


def _check_sha256(folder: Path, recorded) -> str:
    """The weights' SHA-256, checked against the one the card records."""
    actual = model_sha256(folder)
    if recorded is None:
        warnings.warn(
            f"{folder / CARD}: no sha256 recorded, so the weights cannot be checked against the card", stacklevel=3
        )
    elif recorded != actual:
        raise InputError(
            folder / WEIGHTS,
            f"the weights are not those the model card was written with (SHA-256 differs from {CARD}'s)",
        )
    return actual


def load_model(path: str | Path, device: str | object = "cpu") -> LoadedModel:
    """Load a model folder (or its .safetensors file) onto ``device`` after the checks of the module
    docstring; never unpickles anything."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if (
        Path(path).suffix not in ("", ".safetensors", ".json") and not Path(path).is_dir()
    ):  # a folder may be "model-1.2"
        raise InputError(
            path,
            "not a model: expected a model folder or a .safetensors file (pickled .pt/.pth models are refused: they "
            "can run code)",
        )
    folder = recover_folder(model_folder(path))
    card, data = _parse_card(folder)
    weights = folder / WEIGHTS
    if not weights.exists():
        raise InputError(folder, f"{WEIGHTS} (the weights) is missing")
    _check_weights_header(weights, card)
    sha256 = _check_sha256(folder, data.get("sha256"))
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as error:
        raise InputError(weights, f"not a readable safetensors file ({error})") from None
    broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise InputError(weights, f"{len(broken)} weight tensors hold NaN or infinite values, e.g. {broken[0]}")
    module, verifier = _networks(card)
    module.load_state_dict({k: v for k, v in state.items() if not k.startswith(VERIFIER_PREFIX)})
    device = torch.device(device) if isinstance(device, str) else device
    module.to(device).eval()
    if verifier is not None:
        prefix = len(VERIFIER_PREFIX)
        verifier.load_state_dict({k[prefix:]: v for k, v in state.items() if k.startswith(VERIFIER_PREFIX)})
        verifier.to(device).eval()
    return LoadedModel(module, card, folder, verifier, sha256)
