"""One decision (issue 21): no reported lesion carries a protocol flag that says it is no lesion at all.

The network's confident detections pass the post-processing's own rules (QSM source at least 20 ppb, the
SWI tube rule) yet the lesion table, judging them by the labelling protocol, flags a weak source as "not
paramagnetic on QSM" and an elongated streak as "likely a vessel". The output must not report as a lesion
what its own rules reject: such detections are dropped and listed with their reason."""

import numpy as np
from conftest import sphere_world

from napari_deepmir.io import Subject
from napari_deepmir.lesions.guidance import FLAG_NOT_PARAMAGNETIC, FLAG_VESSEL, REJECTING_FLAGS
from napari_deepmir.lesions.measure import measure_lesions
from napari_deepmir.lesions.postprocess import apply_postprocess
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

    kept, rejected, lesions = rejected_by_rules(labels, subject)
    after = measure_lesions(kept, subject)
    assert len(after) == 1 and not _rejecting(after)
    assert measure_lesions(kept, subject, lesions=lesions).equals(after)  # the table reuses the rules' measurement
    assert kept[tuple(np.round(BLEED[0] / np.diag(AFFINE)[:3]).astype(int))] == 1  # the microbleed stays
    assert sorted(flag for record in rejected for flag in record["flags"]) == sorted(
        [FLAG_NOT_PARAMAGNETIC, FLAG_VESSEL]
    )
    reasons = " | ".join(record["reason"] for record in rejected)
    assert "a vessel" in reasons and "no paramagnetic source" in reasons
    assert all(record["class"] == "cmb" and len(record["centre_mm"]) == 3 for record in rejected)


def test_an_iron_deposit_as_long_as_its_nucleus_is_not_taken_for_a_vessel_but_a_thin_tube_is():
    """Putaminal deposits follow the putamen, which is itself long and thin: axis ratio 2.5-3 is no vessel; and a
    deposit adds little to its nucleus (+30 ppb here): paramagnetic enough for iron, not for a microbleed."""
    rng = np.random.default_rng(6)
    head = sphere_world(SHAPE, AFFINE, (28, 28, 24), 27)
    swi = np.where(head, 100 + rng.normal(0, 1, SHAPE), 0).astype(np.float32)
    qsm = np.where(head, 60 + rng.normal(0, 2, SHAPE), 0).astype(np.float32)  # putamen-like tissue
    grid = np.indices(SHAPE).transpose(1, 2, 3, 0) * np.diag(AFFINE)[:3]
    deposit = (((grid - (28.0, 16.0, 24.0)) / (6.5, 2.0, 2.2)) ** 2).sum(-1) <= 1  # 13 x 4 x 4.4 mm
    tube = np.zeros(SHAPE, bool)
    tube[14:27, 38, 12] = True  # 13 mm long, one voxel thin
    for region, source in ((deposit, 30.0), (tube, 150.0)):
        swi[region], qsm[region] = 50.0, qsm[region] + source
    subject = Subject(swi=swi, affine=AFFINE, qsm=qsm, name="sub-putamen")
    labels = (2 * (deposit | tube)).astype(np.uint8)

    table = measure_lesions(labels, subject).sort_values("j")
    assert table.iloc[0]["elongation"] >= 2.5 and table.iloc[0]["extent_mm"] >= 8  # what the CMB rule calls a tube
    kept, rejected, _ = rejected_by_rules(labels, subject)
    assert kept[deposit].all() and not kept[tube].any()
    assert [record["flags"] for record in rejected] == [[FLAG_VESSEL]]
    as_microbleed, rejected, _ = rejected_by_rules(labels // 2, subject)
    assert not as_microbleed.any() and any(FLAG_NOT_PARAMAGNETIC in record["flags"] for record in rejected)
