"""Predict wall time and peak memory for one 176x208x64 subject, model load included, per device.

Each measurement runs in a fresh process (so peak resident memory is that of one prediction):
loading the NIfTI files, loading the model, predicting, post-processing into lesions.

    python benchmarks/bench_predict.py [--model DIR] [--devices cpu cuda] [--threads 2] [--subject DIR]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measure(subject_dir: str, model: str | None, device: str, threads: int) -> dict:
    """One prediction in this process: seconds (total and per stage) and peak memory."""
    start = time.perf_counter()
    import torch

    torch.set_num_threads(threads)
    from napari_deepmir.inference import predict_subject
    from napari_deepmir.io import load_subject_dir
    from napari_deepmir.model.files import load_model
    from napari_deepmir.model.registry import default_model_path

    subject = load_subject_dir(subject_dir)
    loaded_at = time.perf_counter()
    network = load_model(model or default_model_path(), device)
    model_at = time.perf_counter()
    prediction = predict_subject(subject, network, device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    end = time.perf_counter()
    result = {
        "device": device if not device.startswith("cuda") else torch.cuda.get_device_name(),
        "threads": threads,
        "total_s": round(end - start, 2),
        "read_s": round(loaded_at - start, 2),
        "model_load_s": round(model_at - loaded_at, 2),
        "predict_s": round(end - model_at, 2),
        "peak_rss_gb": round(_peak_rss_kb() / 2**20, 2),
        "lesions": prediction.summary(),
    }
    if device.startswith("cuda"):
        result["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return result


def _peak_rss_kb() -> int:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it is not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
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
