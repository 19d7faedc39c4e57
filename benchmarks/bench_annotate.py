"""Labelling tool costs on a sample-sized grid: autosave of the labels, an accept (grow + paint), a resume.

    .venv/bin/python benchmarks/bench_annotate.py [--repeats 5]

Prints the median time of AnnotationSession.save_labels when the labels changed and when they did not
(the 5-s poll), of grow_region for a candidate, and of AnnotationStore.open on a saved session.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from napari_deepmir.io import Subject
from napari_deepmir.lesions.candidates import find_candidates, grow_region
from napari_deepmir.phantom import Acquisition, generate_subject
from napari_deepmir.rating.store import AnnotationStore

SHAPE, VOXEL_MM = (160, 192, 48), (1.0, 1.0, 2.5)  # the plugin's sample subject


def _median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(repeats: int) -> None:
    phantom = generate_subject(seed=1, acquisition=Acquisition(shape=SHAPE, voxel_mm=VOXEL_MM), name="sub-bench")
    subject = Subject(swi=phantom.swi, affine=phantom.affine, qsm=phantom.qsm, name="sub-bench")
    with tempfile.TemporaryDirectory() as root:
        store = AnnotationStore(Path(root))
        session = store.open(subject, rater="bench")
        table = find_candidates(subject, max_candidates=30)
        seed = table.loc[0, ["seed_i", "seed_j", "seed_k"]].to_numpy(int)
        grow = _median_seconds(lambda: grow_region(subject, seed), repeats)
        labels = session.labels.copy()
        labels[grow_region(subject, seed)] = 1

        def changed():
            labels[tuple(seed)] = 3 - labels[tuple(seed)]  # 1 <-> 2: always a change
            session.save_labels(labels)

        saved = _median_seconds(changed, repeats)
        unchanged = _median_seconds(lambda: session.save_labels(labels), repeats)
        session.set_candidates(table)
        reopen = _median_seconds(lambda: store.open(subject), repeats)
    print(f"grid {SHAPE} voxels of {VOXEL_MM} mm, median of {repeats}")
    print(f"grow_region (accept a candidate): {1000 * grow:.1f} ms")
    print(f"autosave, labels changed:         {1000 * saved:.1f} ms")
    print(f"autosave, nothing changed:        {1000 * unchanged:.1f} ms")
    print(f"resume (AnnotationStore.open):    {1000 * reopen:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    run(parser.parse_args().repeats)
