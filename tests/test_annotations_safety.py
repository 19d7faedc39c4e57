"""A hostile or malformed decisions file is set aside with a clear message: never trusted, never read outside
its folder."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import sphere_world, write_nifti

from napari_deepmir.io import InputError, load_subject
from napari_deepmir.rating.store import AnnotationStore

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
SECRET = "rank,x_mm,y_mm,z_mm,secret\n0,1,2,3,outside-the-folder\n"


@pytest.fixture
def saved(tmp_path):
    """A subject with an annotation session holding 3 candidates, 2 decisions and a review position."""
    shape = (24, 24, 12)
    swi = sphere_world(shape, AFFINE, (20, 20, 10), 15) * 100.0 + np.random.default_rng(0).normal(0, 1, shape) + 5
    subject = load_subject(write_nifti(tmp_path / "sub-01_swi.nii.gz", swi.astype(np.float32), AFFINE))
    store = AnnotationStore(tmp_path / "annotations")
    session = store.open(subject, rater="ann")
    session.set_candidates(
        pd.DataFrame({"rank": [0, 1, 2], "x_mm": [10.0, 20, 30], "y_mm": [10.0, 20, 30], "z_mm": [8.0, 10, 12]})
    )
    session.record(session.candidates.iloc[0], "accepted-cmb")
    session.record(session.candidates.iloc[1], "rejected")
    session.set_position(2)
    (tmp_path / "secret.csv").write_text(SECRET)
    return {"store": store, "subject": subject, "session": session, "tmp_path": tmp_path}


def _hostile(content, session, tmp_path):
    """Ways a decisions file can lie; each edits ``content`` in place (some also plant a file)."""
    return {
        "parent path": lambda: content.update(candidates="../../../../etc/hostname"),
        "secret beside": lambda: content.update(candidates="../../secret.csv"),
        "absolute path": lambda: content.update(candidates=str(tmp_path / "secret.csv")),
        "symlink out": lambda: (
            (session.folder / "link.csv").symlink_to(tmp_path / "secret.csv"),
            content.update(candidates="link.csv"),
        ),
        "candidates not text": lambda: content.update(candidates=["x.csv"]),
        "negative position": lambda: content.update(position=-1),
        "position as text": lambda: content.update(position="2"),
        "position as bool": lambda: content.update(position=True),
        "position fractional": lambda: content.update(position=1.5),
        "control characters in rater": lambda: content.update(rater="ann\x1b[2J"),
        "huge rater": lambda: content.update(rater="a" * 10_000),
        "rater not text": lambda: content["decisions"][0].update(rater={"name": "x"}),
        "unknown decision": lambda: content["decisions"][0].update(decision="accepted-everything"),
        "rank as text": lambda: content["decisions"][0].update(rank="0"),
        "NaN coordinate": lambda: content["decisions"][0].update(x_mm=float("nan")),
        "extra field": lambda: content["decisions"][0].update(command="rm -rf /"),
        "missing field": lambda: content["decisions"][0].pop("time"),
        "bad time": lambda: content["decisions"][0].update(time="yesterday"),
        "decisions not a list": lambda: content.update(decisions={"0": "rejected"}),
        "other subject": lambda: content.update(subject="sub-99"),
        "unknown version": lambda: content.update(version=99),
        "unknown certainty": lambda: content["decisions"][0].update(certainty="probable"),
        "certainty on a rejection": lambda: content["decisions"][1].update(certainty="definite"),
        "unknown reason": lambda: content["decisions"][1].update(reason="looked odd"),
        "reason not text": lambda: content["decisions"][1].update(reason=["vein"]),
        "reason on an acceptance": lambda: content["decisions"][0].update(reason="vein"),
        "blinded as text": lambda: content.update(blinded="yes"),
        "blinded without a seed": lambda: content.update(blinded=True, order_seed=None),
    }


HOSTILE = list(_hostile({}, None, None))


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_decisions_file_is_set_aside_and_nothing_outside_is_read(saved, case):
    session, tmp_path = saved["session"], saved["tmp_path"]
    content = json.loads(session.decisions_path.read_text())
    _hostile(content, session, tmp_path)[case]()
    hostile = json.dumps(content)
    session.decisions_path.write_text(hostile)
    with pytest.warns(UserWarning, match="unreadable decisions .*kept aside"):
        reopened = saved["store"].open(saved["subject"])
    assert reopened.decisions == [] and reopened.candidates is None and reopened.position == 0
    assert reopened.rater != "ann\x1b[2J" and len(reopened.rater) < 100
    (kept,) = session.folder.glob("*_decisions.json.corrupt-*")
    assert kept.read_text() == hostile  # the rater's file is kept as it was, never overwritten
    assert (tmp_path / "secret.csv").read_text() == SECRET


def test_a_review_position_beyond_the_list_resumes_at_the_last_candidate_keeping_decisions(saved):
    session = saved["session"]
    content = json.loads(session.decisions_path.read_text())
    content["position"] = 10**9
    session.decisions_path.write_text(json.dumps(content))
    with pytest.warns(UserWarning, match="review position 1000000000 is beyond the 3 candidates; resuming at 2"):
        reopened = saved["store"].open(saved["subject"])
    assert reopened.position == 2 and [d.decision for d in reopened.decisions] == ["accepted-cmb", "rejected"]


def test_an_unreadable_candidate_list_is_set_aside_and_the_decisions_kept(saved):
    session = saved["session"]
    session.candidates_path.write_text("rank,x_mm\nzero,one\n")
    with pytest.warns(UserWarning, match="unreadable candidate list .*kept aside"):
        reopened = saved["store"].open(saved["subject"])
    assert reopened.candidates is None and [d.decision for d in reopened.decisions] == ["accepted-cmb", "rejected"]
    assert [p.read_text() for p in session.folder.glob("*_candidates.csv.corrupt-*")] == ["rank,x_mm\nzero,one\n"]


@pytest.mark.parametrize("rater", ["ann\nbob", "x" * 65, " "])
def test_a_bad_rater_name_is_refused_clearly(saved, rater):
    with pytest.raises(InputError, match="rater must be"):
        saved["store"].open(saved["subject"], rater=rater)


def test_a_decisions_file_from_before_certainty_and_reasons_still_resumes(saved):
    """Version 1 files (no certainty, no reasons, no blinded mode) are read as they are."""
    session = saved["session"]
    content = json.loads(session.decisions_path.read_text())
    assert content["version"] == 2 and content["blinded"] is False
    assert [(d["certainty"], d["reason"]) for d in content["decisions"]] == [("definite", None), (None, "other")]
    content["version"] = 1
    for key in ("blinded", "order_seed"):
        del content[key]
    for decision in content["decisions"]:
        del decision["certainty"], decision["reason"]
    session.decisions_path.write_text(json.dumps(content))
    reopened = saved["store"].open(saved["subject"])
    assert [(d.decision, d.certainty, d.reason) for d in reopened.decisions] == [
        ("accepted-cmb", None, None),
        ("rejected", None, None),
    ]
    assert reopened.position == 2 and not reopened.blinded and not list(session.folder.glob("*.corrupt-*"))
