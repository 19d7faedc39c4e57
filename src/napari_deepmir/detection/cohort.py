"""Cohort runs: every subject of a BIDS dataset predicted and measured, on Dask (local or a cluster).

A LocalCluster of single-threaded worker processes runs by default, on 127.0.0.1 with TLS and credentials made
for the run (no other user of the machine can reach its workers); ``scheduler`` connects to a running Dask
scheduler instead (a cluster started by hand or by dask-jobqueue; TLS credentials by :func:`scheduler_security`
or Dask's configuration). Each worker loads the model once
(a per-process cache) and gives torch ``cores / workers`` threads, because oversubscribed PyTorch
threads slow everything down badly. Each subject goes through the one detection pipeline
(:mod:`.pipeline`) and its outputs are one BIDS-derivative output set (:mod:`..io.outputs`) whose sidecar
names the model that made it: a subject with a complete set is done, and a re-run skips it unless
``overwrite``. Folders named against BIDS, subjects missing a modality and subjects that fail go to
``failures.tsv``; the others run. Without a model given, each subject gets the shipped model for the
modalities it has (:func:`~napari_deepmir.model.registry.choose_model`).
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .. import __version__
from ..conventions import MODALITIES
from ..io import InputError, load_subject_dir
from ..io.bids import find_subject_files, has_swi, names_read, subject_id
from ..io.derivatives import (
    dseg_lookup_text,
    read_table,
    write_dseg_lookup,
    write_json,
    write_table,
    write_table_with_sidecar,
)
from ..io.destinations import (
    check_destinations,
    check_output_folder,
    ensure_writable_folder,
    generated_by_us,
    our_table,
    output_lock,
    same_text,
)
from ..io.outputs import LOOKUP, dataset_outputs
from ..lesions.components import load_location_map, load_region_map
from ..lesions.measure import COLUMNS
from ..lesions.summary import SUMMARY_COLUMNS, participant_summary
from ..model.files import load_model, model_sha256, read_card
from ..model.registry import choose_model, resolve_model
from ..progress import progress_bar
from .pipeline import detect, write_detection

#: Per worker process: model folder -> LoadedModel, so the model is read once per worker, not per subject.
_MODELS: dict = {}
#: BIDS entity labels are letters and digits only (ASCII); anything else is not a subject or session folder.
_SUBJECT_FOLDER = re.compile(r"sub-[A-Za-z0-9]+", re.ASCII)
_SESSION_FOLDER = re.compile(r"ses-[A-Za-z0-9]+", re.ASCII)


@dataclass
class CohortSubject:
    participant_id: str  # sub-X, or sub-X_ses-Y for sessions
    folder: Path
    locations: Path | None = None  # its location map, when it has one
    modalities: tuple[str, ...] = ("swi",)  # the modalities it has files for
    regions: Path | None = None  # its region map, when it has one


@dataclass
class CohortResult:
    out_dir: Path
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    #: participant -> provenance of its outputs (model name and sha256), done and skipped alike
    models: dict[str, dict] = field(default_factory=dict)
    #: participant -> sha256 of the model this run chose for it
    chosen: dict[str, str] = field(default_factory=dict)

    def other_models(self) -> list[str]:
        """Participants whose outputs were made by a model other than the one this run chose for them
        (earlier runs, skipped now)."""
        return sorted(p for p, m in self.models.items() if m.get("ModelSha256") != self.chosen.get(p))

    def summary_line(self) -> str:
        total = len(self.done) + len(self.skipped) + len(self.failed)
        counts = f"{len(self.done)} done, {len(self.skipped)} skipped (already done), {len(self.failed)} failed"
        line = f"{total} subjects: {counts}"
        if self.failed:
            line += f" -> {self.out_dir / 'failures.tsv'}"
        return line


def _subject_folders(root: Path) -> tuple[list[tuple[str, Path]], dict[str, str]]:
    """(participant id, folder) of every BIDS subject or session folder, and the folders refused by name."""
    found, refused = [], {}
    for folder in sorted(p for p in root.glob("sub-*") if p.is_dir()):
        if not _SUBJECT_FOLDER.fullmatch(folder.name):
            refused[folder.name] = "not a BIDS subject folder name: sub-<label> with letters and digits only"
            continue
        sessions = sorted(p for p in folder.glob("ses-*") if p.is_dir())
        for session in sessions:
            if _SESSION_FOLDER.fullmatch(session.name):
                found.append((f"{folder.name}_{session.name}", session))
            else:
                refused[f"{folder.name}/{session.name}"] = (
                    "not a BIDS session folder name: ses-<label> with letters and digits only"
                )
        if not sessions:
            found.append((folder.name, folder))
    return found, refused


def find_cohort(bids_root: str | Path, modalities=("swi",)) -> tuple[list[CohortSubject], dict[str, str]]:
    """Subjects of ``bids_root`` (``sub-X/``, ``sub-X/anat/``, ``sub-X/ses-Y/anat/``) with every needed
    modality (an SWI may be made from a gradient-echo magnitude and phase), and the others (folders named
    against BIDS included) with the reason they cannot run."""
    root = Path(bids_root)
    if not root.is_dir():
        raise InputError(root, "BIDS folder not found")
    folders, problems = _subject_folders(root)
    ready = []
    for participant, folder in folders:
        try:
            files = find_subject_files(folder)
        except InputError as error:
            problems[participant] = error.problem
            continue
        strangers = [p.name for p in files.values() if subject_id(p.name) not in (None, participant.split("_")[0])]
        missing = [m for m in modalities if m not in files and not (m == "swi" and has_swi(files))]
        if strangers:
            problems[participant] = f"files named for another subject in {folder}: {', '.join(strangers)}"
        elif missing:
            wanted = ", ".join(names_read(m) for m in missing)
            problems[participant] = f"missing {'/'.join(m.upper() for m in missing)} (no {wanted} in {folder})"
        else:
            ready.append(
                CohortSubject(
                    participant,
                    folder,
                    files.get("locations"),
                    tuple(m for m in MODALITIES if m in files or (m == "swi" and has_swi(files))),
                    files.get("regions"),
                )
            )
    return ready, problems


def process_subject(
    subject: CohortSubject, out_dir: str | Path, choice, device: str, overwrite: bool, threads: int
) -> dict:
    """Detect, measure and write one subject (a Dask task) through :mod:`.pipeline`. Never raises:
    failures are reported. A subject whose output set is complete is skipped unless ``overwrite``."""
    outputs = dataset_outputs(out_dir, subject.participant_id)
    outcome = {"participant_id": subject.participant_id}
    if outputs.is_complete() and not overwrite:
        made = outputs.provenance().get("GeneratedBy", {})
        model = {k: made.get(k) for k in ("Model", "ModelSha256")}
        return outcome | {"status": "skipped", "lesions": read_table(outputs.lesions), "model": model}
    try:
        result = _detect_and_write(subject, outputs, choice, device, overwrite, threads)
    except InputError as error:
        return outcome | {"status": "failed", "reason": str(error)}
    except Exception as error:  # noqa: BLE001 (one subject must never stop the cohort; reason to failures.tsv)
        return outcome | {"status": "failed", "reason": f"{type(error).__name__}: {error}"}
    model = {k: result.model[k] for k in ("Model", "ModelSha256")}
    return outcome | {"status": "done", "lesions": result.table, "model": model}


def _detect_and_write(subject: CohortSubject, outputs, choice, device: str, overwrite: bool, threads: int):
    """Detect with ``choice`` (a ModelChoice), loaded once per worker, and write the subject's outputs."""
    import torch

    torch.set_num_threads(threads)
    if choice.path not in _MODELS:
        _MODELS[choice.path] = load_model(choice.path, device if device != "auto" else "cpu")
    data = load_subject_dir(subject.folder)
    locations = None if subject.locations is None else load_location_map(subject.locations).data
    regions = None if subject.regions is None else load_region_map(subject.regions).data
    result = detect(data, _MODELS[choice.path], device=device, locations=locations, regions=regions)
    result.model["ModelChoice"] = choice.reason
    write_detection(result, outputs, overwrite=overwrite, lookup=False)  # the lookup lives at the dataset root
    return result


def start_local_cluster(workers: int):
    """A LocalCluster of ``workers`` single-threaded processes on 127.0.0.1 that speaks TLS with credentials made
    for this run (``Security.temporary()``: a key and self-signed certificate that live only in this process
    and its workers), so no other user of the machine can connect to its scheduler and run code in its workers."""
    import dask
    from dask.distributed import LocalCluster
    from distributed.security import Security

    try:
        security = Security.temporary()
    except ImportError as error:  # the package ``cryptography`` (a dependency) is missing
        raise InputError(None, f"cannot secure the local Dask cluster: {error}") from None
    no_http_pages = {"distributed.scheduler.http.routes": [], "distributed.worker.http.routes": []}
    with dask.config.set(no_http_pages):  # no dashboard, no information pages over plain HTTP either
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            host="127.0.0.1",
            protocol="tls://",
            security=security,
        )


def scheduler_security(ca_file=None, cert=None, key=None):
    """The TLS credentials for ``--scheduler`` (a ``distributed.security.Security``), from the three files
    given together; None when none is given (then Dask's configuration, ``distributed.comm.tls.*``, applies)."""
    given = {"--tls-ca-file": ca_file, "--tls-cert": cert, "--tls-key": key}
    if not any(given.values()):
        return None
    missing = [name for name, value in given.items() if not value]
    if missing:
        raise InputError(
            None, f"TLS for --scheduler needs --tls-ca-file, --tls-cert and --tls-key; missing {missing[0]}"
        )
    for value in given.values():
        if not Path(value).is_file():
            raise InputError(value, "TLS file not found")
    from distributed.security import Security

    return Security(
        tls_ca_file=str(ca_file), tls_client_cert=str(cert), tls_client_key=str(key), require_encryption=True
    )


def _dataset_files(out_dir: Path) -> dict[Path, object]:
    """The files of the cohort's own at ``out_dir``'s top, each with the test that it is ours
    (:mod:`.io.destinations`)."""
    summary = our_table(_COHORT_COLUMNS | SUMMARY_COLUMNS)
    return {
        out_dir / "dataset_description.json": generated_by_us,
        out_dir / LOOKUP: same_text(dseg_lookup_text()),
        out_dir / "summary.tsv": summary,
        out_dir / "summary.json": summary,
        out_dir / "lesions.tsv": our_table(COLUMNS),
        out_dir / "failures.tsv": our_table({"reason": None}),
    }


def run_cohort(
    bids_root: str | Path,
    out_dir: str | Path,
    *,
    model: str | Path | None = None,
    device: str = "auto",
    workers: int | None = None,
    scheduler: str | None = None,
    security=None,
    overwrite: bool = False,
    progress: bool = True,
) -> CohortResult:
    """Run every subject of ``bids_root``; write per-subject outputs and the cohort tables to ``out_dir``.
    ``security``: TLS credentials for ``scheduler`` (:func:`scheduler_security`); the local cluster makes its own.

    ``out_dir`` may not be or hold ``bids_root``, its files of our names are replaced only when ours (or
    ``overwrite``), and a lock refuses a second cohort into the same ``out_dir`` while this one runs."""
    from dask.distributed import Client, as_completed

    check_output_folder(out_dir, [bids_root])
    needed = ("swi",) if model is None else tuple(read_card(resolve_model(model)).modalities)
    subjects, problems = find_cohort(bids_root, needed)
    choices = {s.participant_id: choose_model(s.modalities, model) for s in subjects}
    shas = {path: model_sha256(path) for path in {c.path for c in choices.values()}}
    out_dir = ensure_writable_folder(out_dir)  # before any work: a read-only disk fails now, not after the cohort
    tests = _dataset_files(out_dir)
    check_destinations(tests, overwrite=overwrite, ours=lambda path: tests[path](path))
    cores = os.cpu_count() or 1
    workers = workers or max(1, cores // 2)
    threads = max(1, cores // workers)
    result = CohortResult(out_dir, failed=dict(problems), chosen={p: shas[c.path] for p, c in choices.items()})
    rows: list[dict] = []
    lesion_tables: list[pd.DataFrame] = []
    with output_lock(out_dir, "deepmir cohort"):
        cluster = None if scheduler else start_local_cluster(workers)
        try:
            with Client(scheduler or cluster, security=security if scheduler else None) as client:
                futures = [
                    client.submit(
                        process_subject, s, out_dir, choices[s.participant_id], device, overwrite, threads, pure=False
                    )
                    for s in subjects
                ]
                with progress_bar("cohort", total=len(futures), unit="subject", enabled=progress) as bar:
                    for future in as_completed(futures):
                        _collect(future.result(), result, rows, lesion_tables)
                        bar.update(1)
        finally:
            if cluster is not None:
                cluster.close()
        _write_cohort_tables(out_dir, result, rows, lesion_tables)
    return result


def _collect(outcome: dict, result: CohortResult, rows: list[dict], lesion_tables: list[pd.DataFrame]) -> None:

    participant, status = outcome["participant_id"], outcome["status"]
    if status == "failed":
        result.failed[participant] = outcome["reason"]
        return
    (result.done if status == "done" else result.skipped).append(participant)
    result.models[participant] = outcome["model"]
    table = outcome["lesions"]
    summary = participant_summary(table, participant)
    model = {"model": outcome["model"]["Model"], "model_sha256": outcome["model"]["ModelSha256"]}
    rows.append({"participant_id": participant, "status": status, **model, **summary})
    lesion_tables.append(table.assign(participant_id=participant)[["participant_id", *table.columns]])


#: The cohort's own columns of summary.tsv, before the participant summary's (lesions.summary.SUMMARY_COLUMNS).
_COHORT_COLUMNS = {
    "participant_id": ("Participant (sub-X, or sub-X_ses-Y)", None),
    "status": ("done (run now), skipped (outputs of an earlier run) or failed (see failures.tsv)", None),
    "model": ("Name of the model that made the participant's outputs", None),
    "model_sha256": ("sha256 of that model's weights", None),
}


def _models_used(result: CohortResult) -> list[dict]:
    """Each model that made outputs in the dataset, with its participants (a re-run may add another)."""
    used: dict[tuple, list[str]] = {}
    for participant, model in sorted(result.models.items()):
        used.setdefault((model.get("Model"), model.get("ModelSha256")), []).append(participant)
    return [
        {"Model": name, "ModelSha256": sha, "Participants": participants} for (name, sha), participants in used.items()
    ]


def _write_cohort_tables(out_dir: Path, result: CohortResult, rows, lesion_tables) -> None:

    models = _models_used(result)
    write_json(
        out_dir / "dataset_description.json",
        {
            "Name": "napari-deepmir cerebral microbleeds and iron deposits",
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            # BIDS requires GeneratedBy (at least one entry) in a derivative dataset, even when no subject ran
            "GeneratedBy": [
                {
                    "Name": "napari-deepmir",
                    "Version": __version__,
                    "Description": f"model {m['Model']} (sha256 {m['ModelSha256']})",
                }
                for m in models
            ]
            or [{"Name": "napari-deepmir", "Version": __version__}],
            "Models": models,
        },
    )
    write_dseg_lookup(out_dir / LOOKUP)
    summary = pd.DataFrame(rows + [{"participant_id": p, "status": "failed"} for p in result.failed])
    write_table_with_sidecar(
        out_dir / "summary.tsv",
        summary.sort_values("participant_id") if len(summary) else summary,
        _COHORT_COLUMNS | SUMMARY_COLUMNS,
    )
    lesions = pd.concat(lesion_tables, ignore_index=True) if lesion_tables else pd.DataFrame(columns=["participant_id"])
    write_table(
        out_dir / "lesions.tsv", lesions.sort_values(["participant_id", "lesion_id"]) if len(lesions) else lesions
    )
    failures = pd.DataFrame(sorted(result.failed.items()), columns=["participant_id", "reason"])
    write_table(out_dir / "failures.tsv", failures)
