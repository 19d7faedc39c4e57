"""Cohort runs: every subject of a BIDS dataset predicted and measured, on Dask (local or a cluster).

A LocalCluster of single-threaded worker processes runs by default; ``scheduler`` connects to a running
Dask scheduler instead (a cluster started by hand or by dask-jobqueue). Each worker loads the model once
(a per-process cache) and gives torch ``cores / workers`` threads, because oversubscribed PyTorch
threads slow everything down badly. Outputs are BIDS derivatives, written atomically, the lesion
table last: a subject whose table exists is done, and a re-run skips it unless ``overwrite``.
"""

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import __version__
from .conventions import BIDS_SUFFIXES
from .io import InputError
from .io.bids import find_subject_files, subject_id

#: Per worker process: model folder -> LoadedModel, so the model is read once per worker, not per subject.
_MODELS: dict = {}
_SESSION = re.compile(r"ses-[A-Za-z0-9]+")


@dataclass
class CohortSubject:
    participant_id: str  # sub-X, or sub-X_ses-Y for sessions
    folder: Path
    locations: Path | None = None  # its location map, when it has one


@dataclass
class CohortResult:
    out_dir: Path
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def summary_line(self) -> str:
        total = len(self.done) + len(self.skipped) + len(self.failed)
        line = f"{total} subjects: {len(self.done)} done, {len(self.skipped)} skipped (already done), {len(self.failed)} failed"
        if self.failed:
            line += f" -> {self.out_dir / 'failures.tsv'}"
        return line


def find_cohort(bids_root: str | Path, modalities=("swi", "qsm", "t2")) -> tuple[list[CohortSubject], dict[str, str]]:
    """Subjects of ``bids_root`` (``sub-X/``, ``sub-X/anat/``, ``sub-X/ses-Y/anat/``) with every needed
    modality, and the others with the reason they cannot run."""
    root = Path(bids_root)
    if not root.is_dir():
        raise InputError(root, "BIDS folder not found")
    ready, problems = [], {}
    for folder in sorted({p for p in root.glob("sub-*") if p.is_dir()} | {p for p in root.glob("sub-*/ses-*") if p.is_dir()}):
        if any(child.name.startswith("ses-") and child.is_dir() for child in folder.iterdir()):
            continue  # the sessions are the subjects
        session = _SESSION.search(folder.name)
        participant = subject_id(folder) + (f"_{session.group()}" if session else "")
        try:
            files = find_subject_files(folder)
        except InputError as error:
            problems[participant] = error.problem
            continue
        missing = [m for m in modalities if m not in files]
        if missing:
            wanted = ", ".join(f"*_{BIDS_SUFFIXES[m]}.nii.gz" for m in missing)
            problems[participant] = f"missing {'/'.join(m.upper() for m in missing)} (no {wanted} in {folder})"
        else:
            ready.append(CohortSubject(participant, folder, files.get("locations")))
    return ready, problems


def outputs_of(out_dir: Path, participant: str) -> dict[str, Path]:
    """BIDS-derivative output paths of one participant."""
    subject = participant.split("_")[0]
    folder = Path(out_dir) / subject / (participant.split("_")[1] if "_" in participant else "") / "anat"
    return {
        "labels": folder / f"{participant}_space-swi_desc-deepmir_dseg.nii.gz",
        "lesions": folder / f"{participant}_desc-deepmir_lesions.tsv",
    }


def process_subject(subject: CohortSubject, out_dir: str | Path, model_path: str, device: str, overwrite: bool, threads: int) -> dict:
    """Predict, measure and write one subject (a Dask task). Never raises: failures are reported."""
    from .io.derivatives import read_table

    outputs = outputs_of(Path(out_dir), subject.participant_id)
    if outputs["lesions"].exists() and not overwrite:
        return {"participant_id": subject.participant_id, "status": "skipped", "lesions": read_table(outputs["lesions"])}
    try:
        table = _predict_and_write(subject, outputs, model_path, device, threads)
    except InputError as error:
        return {"participant_id": subject.participant_id, "status": "failed", "reason": str(error)}
    except Exception as error:  # one subject must never stop the cohort; the reason goes to failures.tsv
        return {"participant_id": subject.participant_id, "status": "failed", "reason": f"{type(error).__name__}: {error}"}
    return {"participant_id": subject.participant_id, "status": "done", "lesions": table}


def _predict_and_write(subject: CohortSubject, outputs: dict[str, Path], model_path: str, device: str, threads: int) -> pd.DataFrame:
    import torch

    from .inference import predict_subject
    from .io import load_subject_dir, save_labels
    from .io.derivatives import write_table_with_sidecar
    from .lesions.components import load_location_map
    from .lesions.measure import COLUMNS, measure_lesions
    from .model.files import load_model

    torch.set_num_threads(threads)
    if model_path not in _MODELS:
        _MODELS[model_path] = load_model(model_path, device if device != "auto" else "cpu")
    loaded = _MODELS[model_path]
    data = load_subject_dir(subject.folder)
    prediction = predict_subject(data, loaded, device=device, return_probabilities=True)
    locations = None if subject.locations is None else load_location_map(subject.locations).data
    table = measure_lesions(prediction.labels, data, probabilities=prediction.probabilities, locations=locations)
    save_labels(outputs["labels"], prediction.labels, data.affine)
    write_table_with_sidecar(outputs["lesions"], table, COLUMNS)  # last: its presence means "done"
    return table


def run_cohort(
    bids_root: str | Path,
    out_dir: str | Path,
    *,
    model: str | Path | None = None,
    device: str = "auto",
    workers: int | None = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> CohortResult:
    """Run every subject of ``bids_root``; write per-subject outputs and the cohort tables to ``out_dir``."""
    from dask.distributed import Client, LocalCluster, as_completed
    from tqdm import tqdm

    from .model.files import read_card
    from .model.registry import resolve_model

    out_dir = Path(out_dir)
    model_path = str(resolve_model(model).resolve())
    card = read_card(model_path)
    subjects, problems = find_cohort(bids_root, tuple(card.modalities))
    cores = os.cpu_count() or 1
    workers = workers or max(1, cores // 2)
    threads = max(1, cores // workers)
    result = CohortResult(out_dir, failed=dict(problems))
    rows: list[dict] = []
    lesion_tables: list[pd.DataFrame] = []
    cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        with Client(scheduler or cluster) as client:
            futures = [client.submit(process_subject, s, out_dir, model_path, device, overwrite, threads, pure=False) for s in subjects]
            bar = tqdm(total=len(futures), desc="cohort", unit="subject", file=sys.stderr, disable=not progress)
            for future in as_completed(futures):
                outcome = future.result()
                bar.update(1)
                _collect(outcome, result, rows, lesion_tables)
            bar.close()
    finally:
        if cluster is not None:
            cluster.close()
    _write_cohort_tables(out_dir, result, rows, lesion_tables, card, model_path)
    return result


def _collect(outcome: dict, result: CohortResult, rows: list[dict], lesion_tables: list[pd.DataFrame]) -> None:
    from .lesions.measure import summarize_lesions

    participant, status = outcome["participant_id"], outcome["status"]
    if status == "failed":
        result.failed[participant] = outcome["reason"]
        return
    (result.done if status == "done" else result.skipped).append(participant)
    table = outcome["lesions"]
    summary = summarize_lesions(table, participant)
    summary.pop("subject", None)
    rows.append({"participant_id": participant, "status": status, **summary})
    lesion_tables.append(table.assign(participant_id=participant)[["participant_id", *table.columns]])


def _write_cohort_tables(out_dir: Path, result: CohortResult, rows, lesion_tables, card, model_path: str) -> None:
    from .io.derivatives import write_dseg_lookup, write_json, write_table
    from .model.files import model_sha256

    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(
        out_dir / "dataset_description.json",
        {
            "Name": "napari-deepmir cerebral microbleeds and iron deposits",
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "napari-deepmir", "Version": __version__, "Description": f"model {card.name}"}],
            "ModelSha256": model_sha256(model_path),
        },
    )
    write_dseg_lookup(out_dir / "dseg.tsv")
    summary = pd.DataFrame(rows + [{"participant_id": p, "status": "failed"} for p in result.failed])
    write_table(out_dir / "summary.tsv", summary.sort_values("participant_id") if len(summary) else summary)
    lesions = pd.concat(lesion_tables, ignore_index=True) if lesion_tables else pd.DataFrame(columns=["participant_id"])
    write_table(out_dir / "lesions.tsv", lesions.sort_values(["participant_id", "lesion_id"]) if len(lesions) else lesions)
    failures = pd.DataFrame(sorted(result.failed.items()), columns=["participant_id", "reason"])
    write_table(out_dir / "failures.tsv", failures)
