"""Start a model for fewer inputs from a trained one: drop modalities' input channels from its first layer.

The network's input channels are modality-major (each modality with its ``2k+1`` neighbouring slices,
``detection.inference._stack_context``), so dropping a modality removes its ``2k+1`` columns of the first
convolution's weights and keeps every other weight as it was. The result computes what the base
would compute with the dropped modalities' channels set to 0 (their normalised value at the brain's
median), which is where fine-tuning on the remaining inputs starts.
"""

import copy

from ..conventions import MODALITIES
from ..io import InputError


def kept_channels(modalities, kept, context_slices: int) -> list[int]:
    """Indices of the input channels of ``kept`` modalities in a network fed ``modalities``."""
    per_modality = 2 * context_slices + 1
    return [
        index * per_modality + offset
        for index, modality in enumerate(modalities)
        if modality in kept
        for offset in range(per_modality)
    ]


def drop_modalities(module, card, modalities, name: str | None = None):
    """(module, card) of a copy of ``module`` (a DeepmirUNet described by ``card``) that reads only
    ``modalities``, a subset of the card's that holds SWI; InputError otherwise."""
    import torch

    from ..model.unet import DeepmirUNet  # noqa: PLC0415 (imports torch)

    wanted = [m for m in MODALITIES if m in modalities]
    extra = [m for m in wanted if m not in card.modalities]
    if extra or "swi" not in wanted:
        raise InputError(
            None,
            f"cannot start a {'+'.join(m.upper() for m in wanted)} model from {card.name!r} "
            f"({'+'.join(m.upper() for m in card.modalities)}): the modalities must be a subset of the base's, "
            "SWI among them",
        )
    new_card = copy.deepcopy(card)
    new_card.modalities = wanted
    if name is not None:
        new_card.name = name
    arch = card.architecture
    state = {key: value.detach().clone() for key, value in module.state_dict().items()}
    first = "encoders.0.0.weight"
    keep = torch.tensor(kept_channels(card.modalities, wanted, card.context_slices), device=state[first].device)
    state[first] = state[first].index_select(1, keep)
    new_module = DeepmirUNet(new_card.in_channels, card.n_classes, arch["base_filters"], arch["depth"])
    new_module.load_state_dict(state)
    device = next(module.parameters()).device
    return new_module.to(device), new_card
