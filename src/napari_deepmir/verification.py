"""Second-stage verification of the U-Net's lesions: each connected lesion is shown to the model's
:class:`~.model.verifier.CandidateVerifier` as a 3D patch and kept, relabelled or dropped.

The card's ``verifier`` section sets the rule: a lesion is kept when the verifier's probability that it is
a lesion of either class reaches ``min_probability``, and takes the class the verifier prefers."""

import numpy as np
from scipy import ndimage

from .lesions.components import CONNECTIVITY_26
from .lesions.patches import candidate_patches


def verifier_probabilities(verifier, patches: np.ndarray, *, bf16: bool = False, batch_size: int = 64) -> np.ndarray:
    """(n, 3) probabilities (not a lesion, CMB, iron) of a stack of patches."""
    import torch

    device = next(verifier.parameters()).device
    out = np.zeros((len(patches), 3), np.float32)
    for start in range(0, len(patches), batch_size):
        batch = torch.from_numpy(patches[start : start + batch_size]).to(device)
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out[start : start + len(batch)] = torch.softmax(verifier(batch).float(), dim=1).cpu().numpy()
    return out


def verify_labels(labels: np.ndarray, prepared, loaded, *, bf16: bool = False) -> np.ndarray:
    """``labels`` (0/1/2 on the SWI grid) with each lesion kept with the verifier's class, or dropped."""
    components, count = ndimage.label(labels > 0, structure=CONNECTIVITY_26)
    if count == 0:
        return labels
    settings = loaded.card.verifier
    patches = candidate_patches(prepared, components, count, settings["patch_shape"])
    probabilities = verifier_probabilities(loaded.verifier, patches, bf16=bf16)
    min_probability = float(settings["min_probability"])
    keep = probabilities[:, 1] + probabilities[:, 2] >= min_probability
    classes = np.where(probabilities[:, 2] > probabilities[:, 1], 2, 1)
    lookup = np.concatenate([[0], classes * keep]).astype(np.uint8)
    return lookup[components]
