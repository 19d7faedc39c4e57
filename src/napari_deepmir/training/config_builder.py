"""The one place a :class:`~.trainer.TrainingConfig` is built from a user's plain values: the options of
``deepmir train``/``finetune``/``train-verifier`` and the Fine-tune widget's settings. Imports torch (via the
trainer); import it lazily."""

from collections.abc import Iterable
from pathlib import Path

from .common import TrainingConfig


def training_config(
    out: str | Path,
    data: Iterable[str | Path] = (),
    *,
    command: str,
    samples: Iterable[tuple] = (),
    base: str | Path | None = None,
    modalities: Iterable[str] | None = None,
    spacing_mm: Iterable[float] | None = None,
    **settings,
) -> TrainingConfig:
    """A training run's configuration: folders and model paths as ``Path``, modalities and spacing as tuples (None
    or empty: the default), ``command`` recorded in the model card as what made it. ``base`` is a model folder
    already resolved (:func:`..model.registry.resolve_model`); ``settings``: any other TrainingConfig field."""
    return TrainingConfig(
        out=Path(out),
        data=[Path(folder) for folder in data],
        samples=list(samples),
        base=None if base is None else Path(base),
        modalities=tuple(modalities) if modalities else None,
        spacing_mm=None if spacing_mm is None else tuple(spacing_mm),
        command=command,
        **settings,
    )
