"""Candidate finder on phantom subjects: recall of true lesions in the first N candidates, mimics flagged.

    .venv/bin/python benchmarks/bench_candidates.py [--subjects 10] [--top 30]

Prints per subject and pooled: true CMBs / iron deposits hit by the first --top candidates (a hit is a
grown candidate region sharing a voxel with the lesion), every generator calcification's verdict
(assess_region on the voxels a rater would paint on it, and the flags and suggestion of any listed
candidate on it), and
the time per subject.
"""

import argparse
import time

import numpy as np

from napari_deepmir.conventions import CLASS_NAMES
from napari_deepmir.io import Subject
from napari_deepmir.lesions.candidates import candidate_recall, find_candidates
from napari_deepmir.lesions.guidance import FLAG_DIAMAGNETIC, FLAG_NO_QSM, FLAG_NOT_PARAMAGNETIC, assess_region
from napari_deepmir.phantom import generate_subject


def _voxel(affine: np.ndarray, centre_mm) -> np.ndarray:
    return np.round(np.linalg.solve(affine[:3, :3], np.asarray(centre_mm, float) - affine[:3, 3])).astype(int)


def _painted(subject, lesion) -> np.ndarray:
    """The voxels a rater would paint on a calcification: those within its radius (at least its centre voxel)."""
    grid = np.indices(subject.shape).reshape(3, -1)
    world = subject.affine[:3, :3] @ grid + subject.affine[:3, 3:4]
    mask = (
        np.linalg.norm(world - np.asarray(lesion["centre_mm"])[:, None], axis=0) <= lesion["diameter_mm"] / 2
    ).reshape(subject.shape)
    mask[tuple(_voxel(subject.affine, lesion["centre_mm"]))] = True
    return mask


def run(n_subjects: int, top: int) -> None:
    hits = {name: [0, 0] for name in CLASS_NAMES.values()}
    calcifications = [0, 0, 0, 0, 0]  # total, flagged when painted, listed candidates all flagged, all flagged or
    # rejected, painted as a microbleed and flagged (diamagnetic, not paramagnetic, or no QSM there)
    for seed in range(n_subjects):
        phantom = generate_subject(seed)
        subject = Subject(
            swi=phantom.swi, affine=phantom.affine, qsm=phantom.qsm, t2=phantom.t2, name=f"sub-{seed:03d}"
        )
        start = time.perf_counter()
        table = find_candidates(subject, locations=phantom.locations)
        seconds = time.perf_counter() - start
        line = []
        for name, (found, count) in candidate_recall(table, subject, phantom.labels, top=top).items():
            hits[name][0] += found
            hits[name][1] += count
            line.append(f"{name} {found}/{count}")
        centres = np.stack([table["x_mm"], table["y_mm"], table["z_mm"]], axis=1) if len(table) else np.zeros((0, 3))
        for lesion in (l for l in phantom.lesions if l["kind"] == "calcification"):
            calcifications[0] += 1
            painted = _painted(subject, lesion)
            calcifications[1] += FLAG_DIAMAGNETIC in assess_region(painted, subject, phantom.locations).flags
            as_cmb = assess_region(painted, subject, phantom.locations, labelled_as="cmb").flags
            calcifications[4] += bool({FLAG_DIAMAGNETIC, FLAG_NOT_PARAMAGNETIC, FLAG_NO_QSM} & set(as_cmb))
            near = np.linalg.norm(centres - np.asarray(lesion["centre_mm"]), axis=1) <= lesion["diameter_mm"] / 2 + 1.0
            listed = table.loc[near]
            calcifications[2] += all(FLAG_DIAMAGNETIC in flags for flags in listed["flags"])
            calcifications[3] += all(
                (listed["suggested_class"] == "reject") | listed["flags"].str.contains(FLAG_DIAMAGNETIC)
            )
        print(f"{subject.name}: top {top}: {', '.join(line)}; {len(table)} candidates in {seconds:.1f} s")
    total_found = sum(h[0] for h in hits.values())
    total = sum(h[1] for h in hits.values())
    print(
        f"\nrecall in the first {top} candidates over {n_subjects} subjects: {total_found}/{total} = "
        f"{total_found / max(total, 1):.3f}"
    )
    for name, (found, count) in hits.items():
        print(f"  {name}: {found}/{count} = {found / max(count, 1):.3f}")
    print(
        f"calcifications: {calcifications[0]}; flagged diamagnetic when painted at their true extent: "
        f"{calcifications[1]}; "
        f"listed candidates on them all flagged: {calcifications[2]}/{calcifications[0]}; "
        f"all flagged or suggested 'reject': {calcifications[3]}/{calcifications[0]}; "
        "painted as a microbleed, flagged (diamagnetic, not paramagnetic or no QSM): "
        f"{calcifications[4]}/{calcifications[0]}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--top", type=int, default=30)
    options = parser.parse_args()
    run(options.subjects, options.top)
