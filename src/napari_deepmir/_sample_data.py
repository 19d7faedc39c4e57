"""npe2 sample data: a synthetic subject with known lesions (File > Open Sample > napari-deepmir).

The subject is pre-made by ``scripts/make_sample_subject.py`` (the phantom, seeded) and shipped as
package data, so it opens in about a second; it reads like any subject folder.
"""

from pathlib import Path

SAMPLE_SUBJECT = "sub-sample"
SAMPLE_FOLDER = Path(__file__).parent / "sample" / SAMPLE_SUBJECT


def make_synthetic_subject() -> list[tuple]:
    """T2, QSM (hidden), SWI on top, the location map and the true labels of the shipped synthetic subject."""
    from ._reader import read_subject_folder

    layers = read_subject_folder(SAMPLE_FOLDER)
    for _, kwargs, _ in layers:
        if kwargs["name"] == f"{SAMPLE_SUBJECT} labels":
            kwargs["name"] = f"{SAMPLE_SUBJECT} true lesions"
            kwargs["metadata"]["deepmir"]["origin"] = "truth"
    return layers
