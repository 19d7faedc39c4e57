"""How long File > Open Sample > Synthetic subject takes: the sample's layers read and added to a viewer.

Run under a display (``xvfb-run -a python benchmarks/bench_sample.py``); prints seconds per try.
"""

import time

import napari


def main(tries: int = 3) -> None:
    viewer = napari.Viewer(show=False)
    for attempt in range(tries):
        viewer.layers.clear()
        start = time.perf_counter()
        viewer.open_sample("napari-deepmir", "synthetic_subject")
        print(f"open sample, try {attempt + 1}: {time.perf_counter() - start:.2f} s ({len(viewer.layers)} layers)")
    viewer.close()


if __name__ == "__main__":
    main()
