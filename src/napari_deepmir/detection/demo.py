"""The README's main job: the shipped model on a synthetic subject, ending in a lesion table."""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..io import load_subject_dir
from ..io.bids import find_subject_files
from ..io.derivatives import write_json
from ..io.destinations import ensure_writable_folder
from ..io.outputs import OutputSet
from ..lesions.components import load_label_map, load_location_map
from ..lesions.evaluate import score_lesions
from ..phantom import generate_cohort
from .pipeline import detect, write_detection


@dataclass
class DemoResult:
    subject_folder: Path
    outputs: OutputSet
    table: pd.DataFrame
    scores: dict
    summary: str


def run_demo(out_dir: str | Path, *, seed: int = 2026, device: str = "auto", progress=None) -> DemoResult:
    """Make a synthetic subject, detect with the shipped model (the one pipeline, :mod:`.pipeline`), score it.

    Writes ``out_dir/synthetic/sub-001/anat/`` (the subject and its truth) and ``out_dir/prediction/`` (the
    output set of ``deepmir predict`` plus ``scores.json``). A re-run replaces its own earlier outputs,
    never files it did not write.
    """
    out_dir = Path(out_dir)
    result_dir = ensure_writable_folder(out_dir / "prediction")
    own = out_dir / "synthetic" / "sub-001"
    ours = own.is_dir() and any(own.rglob("sub-001_lesions.json"))  # the demo's own subject (its object record)
    folder = generate_cohort(out_dir / "synthetic", 1, seed, overwrite=ours)[0]
    subject, files = load_subject_dir(folder), find_subject_files(folder)
    locations = load_location_map(files["locations"]).data
    result = detect(subject, None, device=device, locations=locations, progress=progress)
    outputs = OutputSet(result_dir, subject.name)
    write_detection(result, outputs, overwrite=outputs.provenance() is not None)  # replaces only a set of ours
    truth = load_label_map(files["labels"]).data
    scores = score_lesions(truth, result.labels)
    write_json(result_dir / "scores.json", scores)
    return DemoResult(folder, outputs, result.table, scores, f"{subject.name}: {result.summary()}")
