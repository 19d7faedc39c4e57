"""One decision (issue 21): no reported lesion carries a protocol flag that says it is no lesion at all.

The network's confident detections pass the post-processing's own rules (QSM source at least 20 ppb, the
SWI tube rule) yet the lesion table, judging them by the labelling protocol, flags a weak source as "not
paramagnetic on QSM" and an elongated streak as "likely a vessel". The output must not report as a lesion
what its own rules reject: such detections are dropped and listed with their reason."""

import numpy as np
from conftest import sphere_world

from napari_deepmir.inference import apply_postprocess
from napari_deepmir.io import Subject
from napari_deepmir.lesions.guidance import FLAG_NOT_PARAMAGNETIC, FLAG_VESSEL, REJECTING_FLAGS
from napari_deepmir.lesions.measure import measure_lesions
from napari_deepmir.lesions.rules import rejected_by_rules
from napari_deepmir.model.card import ModelCard

SHAPE = (56, 56, 24)
AFFINE = np.diag([1.0, 1.0, 2.0, 1.0])
BLEED = ((20.0, 20.0, 24.0), 1.6)  # a microbleed: 400 ppb above the tissue
WEAK = ((36.0, 20.0, 24.0), 1.6)  # dark on SWI with a faint source: above the post-processing's 20 ppb, below 40
STREAK = (slice(14, 26), 38, 12)  # a straight dark paramagnetic line in one slice, 12 mm long: a vessel


def _subject() -> Subject:
    rng = np.random.default_rng(5)
    head = sphere_world(SHAPE, AFFINE, (28, 28, 24), 27)
    swi = np.where(head, 100 + rng.normal(0, 1, SHAPE), 0).astype(np.float32)
    qsm = np.where(head, rng.normal(0, 2, SHAPE), 0).astype(np.float32)
    for (centre, radius), source in ((BLEED, 400.0), (WEAK, 30.0)):
        region = sphere_world(SHAPE, AFFINE, centre, radius)
        swi[region], qsm[region] = 30.0, qsm[region] + source
    swi[STREAK], qsm[STREAK] = 30.0, qsm[STREAK] + 350.0
    return Subject(swi=swi, affine=AFFINE, qsm=qsm, name="sub-rules")


def _network_output(subject: Subject) -> np.ndarray:
    """Probabilities of a network that calls all three a microbleed with confidence."""
    probabilities = np.zeros((3, *subject.shape), np.float32)
    probabilities[0] = 1.0
    regions = [sphere_world(SHAPE, AFFINE, *BLEED), sphere_world(SHAPE, AFFINE, *WEAK), np.zeros(SHAPE, bool)]
    regions[2][STREAK] = True
    for region in regions:
        probabilities[:, region] = np.array([0.02, 0.97, 0.01])[:, None]
    return probabilities


def _rejecting(table) -> list[str]:
    return [flag for flags in table["flags"] for flag in flags.split(";") if flag in REJECTING_FLAGS]


def test_detections_the_protocol_rejects_are_dropped_with_their_reason():
    subject = _subject()
    labels = apply_postprocess(_network_output(subject), subject, ModelCard(name="rules"))
    before = measure_lesions(labels, subject)
    assert len(before) == 3  # the post-processing alone keeps all three
    assert sorted(_rejecting(before)) == sorted([FLAG_NOT_PARAMAGNETIC, FLAG_VESSEL])

    kept, rejected = rejected_by_rules(labels, subject)
    after = measure_lesions(kept, subject)
    assert len(after) == 1 and not _rejecting(after)
    assert kept[tuple(np.round(BLEED[0] / np.diag(AFFINE)[:3]).astype(int))] == 1  # the microbleed stays
    assert sorted(flag for record in rejected for flag in record["flags"]) == sorted(
        [FLAG_NOT_PARAMAGNETIC, FLAG_VESSEL]
    )
    reasons = " | ".join(record["reason"] for record in rejected)
    assert "a vessel" in reasons and "no paramagnetic source" in reasons
    assert all(record["class"] == "cmb" and len(record["centre_mm"]) == 3 for record in rejected)
