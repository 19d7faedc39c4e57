"""Time and peak memory of one synthetic subject (default acquisition 176x208x64, 1x1x2 mm).

.venv/bin/python benchmarks/bench_phantom.py [--repeats 3] [--world wide]
"""

import argparse
import resource
import time

import numpy as np

from napari_deepmir.phantom import Acquisition, World, generate_subject


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--world", choices=("default", "wide"), default="default")
    args = parser.parse_args()
    acquisition = Acquisition()
    times = []
    for seed in range(args.repeats):
        start = time.perf_counter()
        world = World.randomized(np.random.default_rng(seed)) if args.world == "wide" else None
        generate_subject(seed, acquisition, world=world)
        times.append(time.perf_counter() - start)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(
        f"{args.world} world, subject {acquisition.shape} at {acquisition.voxel_mm} mm: best {min(times):.1f} s, "
        f"median {sorted(times)[len(times) // 2]:.1f} s over {args.repeats}; peak memory {peak_gb:.2f} GB"
    )


if __name__ == "__main__":
    main()
