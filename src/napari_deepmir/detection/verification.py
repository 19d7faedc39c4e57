"""Second-stage verification of the U-Net's lesions: each connected lesion is shown to the model's
:class:`~..model.verifier.CandidateVerifier` as a 3D patch and kept or dropped.

The card's ``verifier`` section sets the threshold (``min_probability``) of :func:`kept_lesions`: a
microbleed stays when the verifier takes it for a lesion of either class, an iron deposit only when it takes
it for iron; a kept lesion keeps the U-Net's class (the verifier removes false positives; letting it relabel
lesions cost microbleeds, docs/model.md).

With ``verifier.blob_candidates`` in the card, the verifier also looks at that many of the labelling
guidance's blob candidates away from the U-Net's lesions (:func:`missed_lesions`): microbleeds the U-Net
did not see at all (small ones, other field strengths) are added when it takes them for lesions."""

import numpy as np
from scipy import ndimage

from ..conventions import CMB, IRON
from ..lesions.candidates import find_candidates, grown_components
from ..lesions.components import CONNECTIVITY_26
from ..lesions.patches import candidate_patches


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


def verify_lesions(labels: np.ndarray, prepared, loaded, *, bf16: bool = False) -> np.ndarray:
    """``labels`` (0/1/2 on the SWI grid) with each lesion kept (in its class) or dropped by the model's verifier
    (:func:`kept_lesions`); ``labels`` as they are when the model has none."""
    if loaded.verifier is None:
        return labels
    components, count = ndimage.label(labels > 0, structure=CONNECTIVITY_26)
    if not count:
        return labels
    settings = loaded.card.verifier
    patches = candidate_patches(prepared, components, count, settings["patch_shape"])
    probabilities = verifier_probabilities(loaded.verifier, patches, bf16=bf16)
    return kept_lesions(labels, components, probabilities, float(settings["min_probability"]))


def find_missed_lesions(
    verified: np.ndarray, labels: np.ndarray, subject, prepared, loaded, *, bf16: bool = False
) -> np.ndarray:
    """``verified`` (the :func:`verify_lesions` of ``labels``) plus the :func:`missed_lesions` the verifier
    confirms, when the card asks for them (``verifier.blob_candidates``); ``verified`` as it is otherwise."""
    if loaded.verifier is None or not loaded.card.verifier.get("blob_candidates"):
        return verified
    return np.where(verified > 0, verified, missed_lesions(labels, subject, prepared, loaded, bf16=bf16))


def missed_lesions(labels: np.ndarray, subject, prepared, loaded, *, bf16: bool = False) -> np.ndarray:
    """Labels (0/1/2) of the lesions the U-Net missed that the verifier finds among the labelling guidance's
    blob candidates: the card's ``verifier.blob_candidates`` best ones (:func:`..lesions.candidates.find_candidates`)
    that the guidance does not reject (diamagnetic, tubular, not paramagnetic) and that do not touch a lesion
    of ``labels``; one stays when P(CMB) + P(iron) reaches ``verifier.blob_min_probability``, in the likelier
    of the two classes."""
    settings = loaded.card.verifier
    table = find_candidates(subject, max_candidates=int(settings["blob_candidates"]))
    table = table[table["suggested_class"] != "reject"]
    components, count = grown_components(subject, table[["seed_i", "seed_j", "seed_k"]].to_numpy())
    if count == 0:
        return np.zeros(labels.shape, np.uint8)
    index = np.arange(1, count + 1)
    near_lesion = ndimage.binary_dilation(labels > 0, structure=CONNECTIVITY_26)
    apart = np.asarray(ndimage.maximum(near_lesion, components, index)) == 0
    patches = candidate_patches(prepared, components, count, settings["patch_shape"])
    probabilities = verifier_probabilities(loaded.verifier, patches, bf16=bf16)
    confirmed = apart & (probabilities[:, 1] + probabilities[:, 2] >= float(settings["blob_min_probability"]))
    classes = np.where(probabilities[:, 2] > probabilities[:, 1], IRON, CMB)
    return np.concatenate([[0], classes * confirmed]).astype(np.uint8)[components]


def kept_lesions(labels: np.ndarray, components: np.ndarray, probabilities: np.ndarray, min_probability: float):
    """``labels`` without the lesions (numbered by ``components``, one row of ``probabilities`` each) the
    verifier does not support: a microbleed needs a probability of being a lesion of either class of at least
    ``min_probability``, an iron deposit a probability of being an iron deposit. Kept lesions keep their class."""
    classes = np.asarray(ndimage.maximum(labels, components, np.arange(1, len(probabilities) + 1)))
    support = np.where(classes == IRON, probabilities[:, 2], probabilities[:, 1] + probabilities[:, 2])
    keep = np.concatenate([[False], support >= min_probability])
    return np.where(keep[components], labels, 0).astype(np.uint8)
