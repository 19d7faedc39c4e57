"""The README's main job: the shipped model on a synthetic subject, ending in a lesion table."""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass
class DemoResult:
    subject_folder: Path
    labels: Path
    table_path: Path
    table: pd.DataFrame
    scores: dict
    summary: str


def run_demo(out_dir: str | Path, *, seed: int = 2026, device: str = "auto", progress=None) -> DemoResult:
    """Make a synthetic subject, predict with the shipped model, measure, and score against the truth.

    Writes ``out_dir/synthetic/sub-001/`` (the subject and its truth) and ``out_dir/prediction/``
    (``labels.nii.gz``, ``lesions.csv``, ``dseg.tsv``, ``scores.json``).
    """
    from .inference import predict_subject
    from .io import load_subject_dir, save_labels
    from .io.derivatives import write_dseg_lookup, write_json, write_table
    from .lesions.components import load_label_map, load_location_map
    from .lesions.evaluate import score_lesions
    from .lesions.measure import measure_lesions
    from .phantom import generate_cohort

    out_dir = Path(out_dir)
    folder = generate_cohort(out_dir / "synthetic", 1, seed)[0]
    subject = load_subject_dir(folder)
    prediction = predict_subject(subject, None, device=device, return_probabilities=True, progress=progress)
    result_dir = out_dir / "prediction"
    labels_path = save_labels(result_dir / "labels.nii.gz", prediction.labels, subject.affine)
    locations = load_location_map(folder / f"{subject.name}_desc-locations_dseg.nii.gz").data
    table = measure_lesions(prediction.labels, subject, probabilities=prediction.probabilities, locations=locations)
    table_path = write_table(result_dir / "lesions.csv", table)
    write_dseg_lookup(result_dir / "dseg.tsv")
    truth = load_label_map(folder / f"{subject.name}_dseg.nii.gz").data
    scores = score_lesions(truth, prediction.labels)
    write_json(result_dir / "scores.json", scores)
    return DemoResult(folder, labels_path, table_path, table, scores, f"{subject.name}: {prediction.summary()}")
