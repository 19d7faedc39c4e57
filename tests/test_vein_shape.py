"""A dark dot on SWI that continues across slices (a vein seen end-on) is not a microbleed; a sphere is."""

import numpy as np
from lesion_scenes import SPACING, scene, world_of

from napari_deepmir.io import Subject
from napari_deepmir.lesions.postprocess import apply_postprocess
from napari_deepmir.lesions.shape import dark_region_extents, is_tube
from napari_deepmir.model.card import ModelCard

BLEED_IJK = (20, 24, 12)
VEIN_IJ = (44, 40)


def _scene():
    from conftest import oblique_affine

    affine = oblique_affine(SPACING, 0.0)
    swi, qsm, _, affine = scene(
        [(world_of(affine, BLEED_IJK), 2.5, 400.0)], tubes=[(*VEIN_IJ, 1, 400.0)], affine=affine
    )
    return Subject(swi=swi, affine=affine, qsm=qsm, name="sub-veins")


def test_a_vein_measures_as_a_tube_and_a_microbleed_as_round():
    subject = _scene()
    bleed = dark_region_extents(subject.swi, subject.spacing, BLEED_IJK)
    vein = dark_region_extents(subject.swi, subject.spacing, (*VEIN_IJ, 12))
    assert not is_tube(*bleed) and bleed[0] < 8.0
    assert is_tube(*vein) and vein[0] >= 15.0


def test_postprocess_drops_a_confident_microbleed_on_a_vein_and_keeps_the_real_one():
    subject = _scene()
    probabilities = np.zeros((3, *subject.shape), np.float32)
    probabilities[0] = 1.0
    for i, j, k in (BLEED_IJK, (*VEIN_IJ, 12)):  # the network calls both a microbleed on one slice
        probabilities[:, i - 1 : i + 2, j - 1 : j + 2, k] = [[[0.02]], [[0.97]], [[0.01]]]
    card = ModelCard(name="rule")
    labels = apply_postprocess(probabilities, subject, card)
    assert labels[BLEED_IJK] == 1 and labels[(*VEIN_IJ, 12)] == 0
    card.postprocess["tube_min_length_mm"] = 0.0  # the rule off: both kept
    assert apply_postprocess(probabilities, subject, card)[(*VEIN_IJ, 12)] == 1
