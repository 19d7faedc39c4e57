"""Predict wall time per stage and peak memory for one 176x208x64 subject, per device.

Each measurement runs in a fresh process (so imports are paid as a user pays them and peak resident memory is
that of one prediction) and walks the stages of ``detection.pipeline.iter_detect`` one by one, as
``deepmir predict --subject`` runs them: imports and device selection, reading the subject (with its location
and region maps), loading the model, preparing the input, the U-Net's forward pass, post-processing, the
verifier, the blob finder (missed lesions), the protocol's rules, measuring the lesion table, writing the
output set.

    python benchmarks/bench_predict.py [--model DIR] [--devices cpu cuda] [--threads 2] [--subject DIR] [--repeats 3]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class Stages:
    """Seconds per named stage, each from the end of the previous one."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._last, 2)
        self._last = now


def measure(subject_dir: str, model: str | None, device: str, threads: int) -> dict:
    """One prediction in this process, stage by stage: seconds per stage and in all, peak memory."""
    stages = Stages()
    import torch

    torch.set_num_threads(threads)
    from napari_deepmir.detection.inference import (
        iter_probabilities,
        load_detection_model,
        prepare_input,
        select_device,
    )
    from napari_deepmir.detection.pipeline import DetectionResult, measure_detection, model_provenance, write_detection
    from napari_deepmir.detection.verification import find_missed_lesions, verify_lesions
    from napari_deepmir.io import load_subject_dir
    from napari_deepmir.io.bids import find_subject_files
    from napari_deepmir.io.outputs import OutputSet
    from napari_deepmir.lesions.components import load_location_map, load_region_map
    from napari_deepmir.lesions.postprocess import apply_postprocess
    from napari_deepmir.lesions.rules import rejected_by_rules
    from napari_deepmir.progress import run_to_end

    torch_device = select_device(device)
    stages.done("imports_device_s")
    subject = load_subject_dir(subject_dir)
    files = find_subject_files(subject_dir)
    locations = load_location_map(files["locations"]).data if "locations" in files else None
    regions = load_region_map(files["regions"]).data if "regions" in files else None
    stages.done("read_s")
    loaded, choice = load_detection_model(subject, model, torch_device)
    stages.done("model_load_s")
    prepared = prepare_input(subject, loaded.card)
    stages.done("prepare_s")
    probabilities = run_to_end(iter_probabilities(prepared, loaded))
    if torch_device.type == "cuda":
        torch.cuda.synchronize()
    stages.done("forward_s")
    labels = apply_postprocess(probabilities, subject, loaded.card)
    stages.done("postprocess_s")
    verified = verify_lesions(labels, prepared, loaded)
    stages.done("verifier_s")
    labels = find_missed_lesions(verified, labels, subject, prepared, loaded)
    stages.done("blob_finder_s")
    labels, rejected, lesions = rejected_by_rules(labels, subject)
    stages.done("rules_s")
    result = DetectionResult(subject, labels, probabilities, model_provenance(loaded, choice), [], rejected)
    measure_detection(result, lesions, locations=locations, regions=regions)
    stages.done("measure_s")
    with tempfile.TemporaryDirectory() as out:
        write_detection(result, OutputSet(Path(out), subject.name))
        stages.done("write_s")
    return {
        "device": device if torch_device.type != "cuda" else torch.cuda.get_device_name(),
        "threads": threads,
        "total_s": round(sum(stages.seconds.values()), 2),
        **stages.seconds,
        "peak_rss_gb": round(_peak_rss_kb() / 2**20, 2),
        "lesions": result.summary(),
        **({"peak_gpu_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2)} if torch_device.type == "cuda" else {}),
    }


def _peak_rss_kb() -> int:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it is not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model for the subject)")
    parser.add_argument("--devices", nargs="+", default=["cpu"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--subject", default=None, help="subject folder (default: a synthetic 176x208x64 subject)")
    parser.add_argument(
        "--repeats", type=int, default=2, help="runs per device (the first pays the file-cache warm-up)"
    )
    parser.add_argument("--measure", nargs=2, metavar=("SUBJECT", "DEVICE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure[0], args.model, args.measure[1], args.threads)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        subject = args.subject
        if subject is None:
            from napari_deepmir.phantom import generate_cohort

            subject = str(generate_cohort(Path(tmp), 1, seed=4242)[0])
        for device in args.devices:
            for _ in range(args.repeats):
                command = [sys.executable, __file__, "--measure", subject, device, "--threads", str(args.threads)]
                command += ["--model", args.model] if args.model else []
                output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                print(output.strip().splitlines()[-1], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
