"""A rater's rejected candidates (written by the labelling tool's export) are "not a lesion" examples of the
second stage's training."""

import numpy as np
from test_verifier import with_verifier
from training_scenes import write_blob_subject

from napari_deepmir.detection.inference import prepare_input
from napari_deepmir.io import load_subject_dir
from napari_deepmir.lesions.candidates import grown_components
from napari_deepmir.lesions.patches import candidate_patches
from napari_deepmir.model.files import load_model
from napari_deepmir.rating.decisions import REJECTED
from napari_deepmir.rating.session import export_session
from napari_deepmir.rating.store import AnnotationStore
from napari_deepmir.training.data import load_annotated_subject
from napari_deepmir.training.verifier import cached_examples, subject_examples


def _reject(session, subject, voxels, reason="vein"):
    for voxel in voxels:
        x, y, z = (subject.affine @ np.append(voxel, 1.0))[:3]
        candidate = {"rank": len(session.decisions) + 1, "x_mm": x, "y_mm": y, "z_mm": z}
        session.record(candidate, REJECTED, reason=reason)
    export_session(session, subject)


def test_rejected_candidates_become_negative_examples_of_the_verifier(tmp_path):
    folder = write_blob_subject(tmp_path / "data", 0)
    subject = load_subject_dir(folder)
    loaded = load_model(with_verifier(tmp_path)[0])
    truth = load_annotated_subject(folder, loaded.card).truth
    session = AnnotationStore(tmp_path / "annotations").open(subject, rater="rater-1")
    session.save_labels(truth)
    far = np.argwhere(subject.mask & (truth == 0))
    lesion = np.argwhere(truth == 1)[0]
    rejected = [far[len(far) // 3], far[2 * len(far) // 3]]
    _reject(session, subject, [*rejected, lesion])  # the last one was painted as a microbleed after all

    annotated = load_annotated_subject(session.folder, loaded.card)
    cache = tmp_path / "cache"
    examples = cached_examples(annotated, loaded, cache)
    without = subject_examples(annotated.subject, annotated.truth, loaded)
    assert (examples.targets == 0).sum() == (without.targets == 0).sum() + 2
    assert (examples.targets > 0).sum() == (without.targets > 0).sum()
    prepared = prepare_input(annotated.subject, loaded.card)
    components, count = grown_components(annotated.subject, np.array(rejected))
    expected = candidate_patches(prepared, components, count, loaded.card.verifier["patch_shape"])
    assert np.allclose(examples.patches[-2:], expected) and list(examples.targets[-2:]) == [0, 0]

    # cached examples are made again when the rater rejects more
    assert len(list(cache.glob("examples-*.npz"))) == 1
    _reject(session, subject, [far[len(far) // 2]], reason="artefact")
    again = cached_examples(load_annotated_subject(session.folder, loaded.card), loaded, cache)
    assert (again.targets == 0).sum() == (examples.targets == 0).sum() + 1
    assert len(list(cache.glob("examples-*.npz"))) == 2
