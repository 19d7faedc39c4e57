"""Screenshots of the vein rule at work in the viewer (docs/model.md, *The vein rule*):

- ``vein-rejected.png``: a wide-world subject's vein that the U-Net calls a microbleed with confidence; the
  dark dot of the axial slice is a tube on the coronal one, and the post-processing drops it;
- ``microbleed-kept.png``: a true microbleed of the same subject, round on both slices, kept.

Each image puts the viewer's axial (left) and coronal (right) canvas side by side, zoomed on the spot, with
the SWI, the detection (red: microbleed) and the U-Net's lesion before the rule (yellow outline).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/scripts/vein_rule_screenshots.py docs/images

The subject is the first of the wide-world stress set (seed 14200, ``benchmarks/bench_detection.py --stress
--fine-voxel 0.7 0.7 1.2``); it is generated into a temporary folder (about 30 s).
"""

import copy
import os
import sys
import tempfile
from functools import partial
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")

import napari
import numpy as np
from qt_settle import settle
from scipy import ndimage
from skimage.io import imsave

from napari_deepmir.detection.pipeline import predict_subject
from napari_deepmir.io import load_subject_dir
from napari_deepmir.io.bids import find_subject_files
from napari_deepmir.io.display import DisplayGeometry
from napari_deepmir.layer_data import image_layer_data, labels_layer_data
from napari_deepmir.lesions.components import CONNECTIVITY_26, load_label_map
from napari_deepmir.lesions.postprocess import apply_postprocess
from napari_deepmir.model.files import load_model
from napari_deepmir.model.registry import resolve_model
from napari_deepmir.phantom import Acquisition, World, generate_cohort

SEED, FINE_VOXEL_MM = 14200, (0.7, 0.7, 1.2)
CANVAS = (700, 700)
FIELD_OF_VIEW_MM = 40.0


def _spots(subject, model, truth):
    """(rule-on labels, rule-off labels, the vein the rule drops with the highest CMB probability, the kept
    true microbleed with the highest CMB probability) as voxel centres."""
    probabilities = predict_subject(subject, model, device="cpu", return_probabilities=True).probabilities
    without_rule = copy.deepcopy(model.card)
    without_rule.postprocess["tube_min_length_mm"] = 0.0
    kept = apply_postprocess(probabilities, subject, model.card)
    before = apply_postprocess(probabilities, subject, without_rule)

    def best(mask):
        components, n = ndimage.label(mask, structure=CONNECTIVITY_26)
        if n == 0:
            raise SystemExit("no such lesion in this subject")
        peaks = ndimage.maximum(probabilities[1], components, range(1, n + 1))
        chosen = components == 1 + int(np.argmax(peaks))
        return np.round(np.argwhere(chosen).mean(0)).astype(int)

    vein = best((before == 1) & (kept == 0) & (truth == 0))
    microbleed = best((kept == 1) & (truth == 1))
    return kept, before, vein, microbleed


def _world_point(layer, geometry: DisplayGeometry, voxel) -> np.ndarray:
    """napari world coordinates (S, A, R mm) of a source-grid voxel."""
    marker = np.zeros(geometry.shape, np.uint8)
    marker[tuple(voxel)] = 1
    return np.asarray(layer.data_to_world(np.argwhere(geometry.to_display(marker))[0]))


def _canvas(viewer, point, order) -> np.ndarray:
    """The canvas showing the plane of ``order``'s last two axes through ``point``, superior or anterior up."""
    viewer.dims.order = order
    viewer.camera.orientation2d = ("up", "right")
    viewer.dims.point = tuple(point)
    viewer.camera.center = tuple(point[list(order[1:])])
    viewer.camera.zoom = CANVAS[0] / FIELD_OF_VIEW_MM
    settle(0.5)
    return viewer.screenshot(canvas_only=True, size=CANVAS)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(resolve_model("default"), "cpu")
    with tempfile.TemporaryDirectory() as folder:
        (subject_dir,) = generate_cohort(
            folder, 1, SEED, Acquisition(), world=partial(World.randomized), fine_voxel_mm=FINE_VOXEL_MM
        )
        subject = load_subject_dir(subject_dir)
        truth = load_label_map(find_subject_files(subject_dir)["labels"]).data
    kept, before, vein, microbleed = _spots(subject, model, truth)
    geometry = DisplayGeometry(subject.shape, subject.affine)

    viewer = napari.Viewer()
    viewer.window._qt_window.resize(1600, 1000)
    data, kwargs, _ = image_layer_data(subject.swi, geometry, modality="swi")
    swi = viewer.add_image(data, **kwargs)
    data, kwargs, _ = labels_layer_data(before, geometry, name="U-Net, before the rule")
    layer = viewer.add_labels(data, **kwargs)
    layer.contour, layer.opacity = 1, 1.0
    layer.colormap = napari.utils.DirectLabelColormap(color_dict={None: "transparent", 1: "yellow", 2: "yellow"})
    data, kwargs, _ = labels_layer_data(kept, geometry, name="lesions")
    viewer.add_labels(data, **kwargs)
    for name, voxel in (("vein-rejected", vein), ("microbleed-kept", microbleed)):
        point = _world_point(swi, geometry, voxel)
        axial, coronal = _canvas(viewer, point, (0, 1, 2)), _canvas(viewer, point, (1, 0, 2))
        gap = np.full((CANVAS[1], 12, 4), 255, np.uint8)
        imsave(out / f"{name}.png", np.concatenate([axial, gap, coronal], axis=1), check_contrast=False)
        print(f"wrote {out / name}.png (voxel {voxel.tolist()})")
    viewer.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images"))
