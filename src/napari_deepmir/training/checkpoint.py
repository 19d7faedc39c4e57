"""Resumable training state without pickles: tensors in safetensors, everything else in JSON."""

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..io.atomic import atomic_path, write_text_atomic

TENSORS, STATE = "checkpoint.safetensors", "checkpoint.json"


def save_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Write weights, optimizer moments and torch RNG (safetensors) and ``state`` (JSON), atomically.

    Batches are drawn from generators seeded by (seed, step), so the step number is the data's state."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    optim_state = optimizer.state_dict()
    for index, values in optim_state["state"].items():
        for key, value in values.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    with atomic_path(folder / TENSORS) as tmp:
        save_file(tensors, str(tmp))
    record = dict(state, param_groups=optim_state["param_groups"])
    write_text_atomic(folder / STATE, json.dumps(record, indent=1))


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Restore what :func:`save_checkpoint` wrote into ``model`` and ``optimizer``; return the state."""
    record = json.loads((folder / STATE).read_text(encoding="utf-8"))
    tensors = load_file(str(folder / TENSORS))
    model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
    optim_state: dict = {"state": {}, "param_groups": record.pop("param_groups")}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            optim_state["state"].setdefault(int(index), {})[name] = value
    optimizer.load_state_dict(optim_state)
    torch.set_rng_state(tensors["rng.torch"])
    return record


def has_checkpoint(folder: Path) -> bool:
    return (folder / TENSORS).exists() and (folder / STATE).exists()
