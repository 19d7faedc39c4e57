"""Cohort throughput: subjects per minute of `deepmir cohort` with 1 and 2 local Dask workers.

Generates a small BIDS dataset of default-sized synthetic subjects (176x208x64) once, then runs the
cohort over it from scratch with each worker count (the shipped model on the CPU), printing the wall
time and subjects per minute. Each run includes starting the cluster and loading the model per worker.

    python benchmarks/bench_cohort.py [--subjects 6] [--workers 1 2] [--cache DIR]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    from napari_deepmir.detection.cohort import run_cohort
    from napari_deepmir.phantom import generate_cohort

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=6)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cache", type=Path, default=None, help="keep the generated dataset here and reuse it")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        dataset = args.cache or Path(tmp) / "bids"
        if not dataset.exists() or len(list(dataset.glob("sub-*"))) < args.subjects:
            generate_cohort(dataset, args.subjects, seed=777)
        print("| workers | threads each | subjects | wall s | subjects/min |")
        print("|---|---|---|---|---|")
        for workers in args.workers:
            out = Path(tmp) / f"derivatives-{workers}"
            shutil.rmtree(out, ignore_errors=True)
            start = time.perf_counter()
            result = run_cohort(dataset, out, device="cpu", workers=workers, progress=False)
            seconds = time.perf_counter() - start
            assert not result.failed, result.failed
            threads = max(1, (os.cpu_count() or 1) // workers)
            print(
                f"| {workers} | {threads} | {len(result.done)} | {seconds:.0f} | {60 * len(result.done) / seconds:.1f} "
                "|",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
