"""Resumable training state without pickles: tensors in safetensors, everything else in JSON.

Both files are written together as one folder (``model.files.write_folder``: atomic, umask honoured),
so a kill never leaves tensors of one step beside the state of another.
"""

import json
import math
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from ..io.errors import InputError
from ..io.jsonfile import read_json
from ..model.files import CHECKPOINT_FILES, recover_folder, write_folder

TENSORS, STATE = CHECKPOINT_FILES


def save_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Write weights, optimizer moments and torch RNG (safetensors) and ``state`` (JSON), atomically.

    Batches are drawn from generators seeded by (seed, step), so the step number is the data's state."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    optim_state = optimizer.state_dict()
    for index, values in optim_state["state"].items():
        for key, value in values.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    record = dict(state, param_groups=optim_state["param_groups"])

    def write(staging: Path) -> None:
        (staging / TENSORS).write_bytes(save(tensors))  # not save_file, whose files ignore the umask
        (staging / STATE).write_text(json.dumps(record, indent=1), encoding="utf-8")

    write_folder(folder, write, frozenset({TENSORS, STATE}))


def _same_kind(value, template) -> bool:
    """Whether a saved entry has the kind of the trainer's initial one (None: anything; float: any number)."""
    if template is None:
        return True
    if isinstance(template, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
    return type(value) is type(template)


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> dict:
    """Restore what :func:`save_checkpoint` wrote into ``model`` and ``optimizer``; return the saved state,
    whose entries must have the kinds of those in ``state``. A corrupt or incompatible checkpoint is an
    InputError naming its file."""
    folder = recover_folder(folder)
    try:
        record = read_json(folder / STATE)
        if not isinstance(record, dict) or not isinstance(record.get("param_groups"), list):
            raise TypeError("not a checkpoint record")
        wrong = [key for key, value in state.items() if key not in record or not _same_kind(record[key], value)]
        if wrong:
            raise ValueError(f"missing or invalid {', '.join(wrong)}")
    except (OSError, ValueError, TypeError) as error:  # InputError is a ValueError
        reason = error.problem if isinstance(error, InputError) else error
        raise InputError(folder / STATE, f"corrupt checkpoint ({reason}); delete its folder to start afresh") from None
    try:
        tensors = load_file(str(folder / TENSORS))
        model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
        optim_state: dict = {"state": {}, "param_groups": record.pop("param_groups")}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                optim_state["state"].setdefault(int(index), {})[name] = value
        optimizer.load_state_dict(optim_state)
        torch.set_rng_state(tensors["rng.torch"])
    except (SafetensorError, OSError, KeyError, ValueError, TypeError, RuntimeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(
            folder / TENSORS,
            f"corrupt checkpoint, or one of another model ({reason}); delete its folder to start afresh",
        ) from None
    return record


def has_checkpoint(folder: Path) -> bool:
    folder = recover_folder(folder)
    return (folder / TENSORS).exists() and (folder / STATE).exists()
