"""One susceptibility rule (a region's QSM source against the tissue around it) for the labelling guidance,
the post-processing and the lesion table."""

import numpy as np
import pytest
from conftest import sphere_world

from napari_deepmir.io import Subject
from napari_deepmir.lesions.features import qsm_contrast
from napari_deepmir.lesions.guidance import assess_region
from napari_deepmir.lesions.measure import measure_lesions
from napari_deepmir.lesions.postprocess import apply_postprocess
from napari_deepmir.model.card import ModelCard

SHAPE = (48, 48, 24)
AFFINE = np.diag([1.0, 1.0, 2.0, 1.0])
NUCLEUS = ((24.0, 24.0, 24.0), 10.0, 150.0)  # an iron-rich nucleus (pallidum-like), centre mm, radius, ppb
BLEED = ((21.0, 24.0, 24.0), 1.5)  # a microbleed inside it, 300 ppb above it
SPOT = ((28.0, 25.0, 24.0), 1.5)  # dark on SWI, no source of its own: the nucleus' susceptibility only


def _subject(offset=0.0) -> Subject:
    """A head with the nucleus, a bleed and a sourceless dark spot in it; QSM referenced to ``offset``."""
    rng = np.random.default_rng(3)
    head = sphere_world(SHAPE, AFFINE, (24, 24, 24), 23)
    swi = np.where(head, 100 + rng.normal(0, 2, SHAPE), 0).astype(np.float32)
    qsm = np.where(head, rng.normal(0, 5, SHAPE), 0).astype(np.float32)
    qsm[sphere_world(SHAPE, AFFINE, *NUCLEUS[:2])] += NUCLEUS[2]
    for centre, radius in (BLEED, SPOT):
        swi[sphere_world(SHAPE, AFFINE, centre, radius)] = 30.0
    qsm[sphere_world(SHAPE, AFFINE, *BLEED)] += 300.0
    qsm[head] += offset
    return Subject(swi=swi, affine=AFFINE, qsm=qsm)


@pytest.mark.parametrize("offset", [0.0, -80.0])
def test_the_rule_measures_a_source_against_its_own_surroundings(offset):
    subject = _subject(offset)
    bleed, spot = (np.argwhere(sphere_world(SHAPE, AFFINE, *where)) for where in (BLEED, SPOT))
    assert qsm_contrast(subject.qsm, bleed, subject.spacing, swi=subject.swi) == pytest.approx(300, abs=25)
    assert abs(qsm_contrast(subject.qsm, spot, subject.spacing, swi=subject.swi)) < 25  # the nucleus is no source
    qsm = subject.qsm.copy()
    qsm[tuple(bleed.T)] = 0  # no QSM data in the region: no verdict
    assert np.isnan(qsm_contrast(qsm, bleed, subject.spacing, swi=subject.swi))


def test_guidance_post_processing_and_table_agree_on_bleed_and_sourceless_spot():
    """The spot's mean is 150 ppb above the brain's median (the old post-processing kept it; the old
    guidance called it paramagnetic); against its surroundings it has no source, and every part says so."""
    subject = _subject()
    bleed, spot = (sphere_world(SHAPE, AFFINE, *where) for where in (BLEED, SPOT))

    assert assess_region(bleed, subject).suggested_class == "cmb"
    verdict = assess_region(spot, subject)
    assert verdict.suggested_class == "reject" and "no paramagnetic source" in verdict.reason
    assert verdict.qsm_mean_ppb > 100 and abs(verdict.qsm_contrast_ppb) < 25

    probabilities = np.zeros((3, *SHAPE), np.float32)
    probabilities[0] = 1.0
    for region in (bleed, spot):
        probabilities[:, region] = np.array([0.02, 0.97, 0.01])[:, None]
    labels = apply_postprocess(probabilities, subject, ModelCard(name="rule"))
    assert labels[bleed].all() and not labels[spot].any()
    kept_without_rule = apply_postprocess(probabilities, subject, ModelCard(name="rule"), min_qsm_ppb=-1e9)
    assert kept_without_rule[spot].all()

    labels = bleed.astype(np.uint8) + spot
    table = measure_lesions(labels, subject).set_index(np.arange(2))
    by_centre = np.argsort(table["x_mm"].to_numpy())  # the bleed lies left of the spot
    bleed_row, spot_row = table.iloc[by_centre[0]], table.iloc[by_centre[1]]
    assert bleed_row["qsm_contrast_ppb"] == pytest.approx(300, abs=25) and bleed_row["qsm_confirmed"] == "yes"
    assert abs(spot_row["qsm_contrast_ppb"]) < 25 and spot_row["qsm_confirmed"] == "no"


def test_in_the_basal_ganglia_a_bloomed_bleed_is_a_cmb_and_a_weak_diffuse_source_iron():
    """No size or elongation rule: a large, elongated region with a bleed's strong source stays a CMB."""
    rng = np.random.default_rng(4)
    head = sphere_world(SHAPE, AFFINE, (24, 24, 24), 23)
    swi = np.where(head, 100 + rng.normal(0, 2, SHAPE), 0).astype(np.float32)
    qsm = np.where(head, 60 + rng.normal(0, 5, SHAPE), 0).astype(np.float32)  # putamen-like tissue
    bloom = sphere_world(SHAPE, AFFINE, (14, 24, 24), 2.5) | sphere_world(SHAPE, AFFINE, (14, 24, 28), 2.5)
    source = sphere_world(SHAPE, AFFINE, (14, 24, 26), 2.0)
    swi[bloom], swi[source] = 30.0, 5.0  # bloomed along B0 (z) on SWI, darkest at the source
    qsm[source] += 700.0  # the haemosiderin
    deposit = sphere_world(SHAPE, AFFINE, (32, 24, 24), 3.5)
    swi[deposit], qsm[deposit] = 60.0, qsm[deposit] + 150.0
    subject = Subject(swi=swi, affine=AFFINE, qsm=qsm)
    basal_ganglia = np.full(SHAPE, 3)

    bleed = assess_region(bloom, subject, basal_ganglia)
    assert bleed.diameter_mm >= 5 and bleed.elongation >= 1.5  # what the old rule called iron
    assert bleed.suggested_class == "cmb" and "basal ganglia" in bleed.reason and "ppb" in bleed.reason
    iron = assess_region(deposit, subject, basal_ganglia)
    assert iron.suggested_class == "iron" and "basal ganglia" in iron.reason and "ppb" in iron.reason
