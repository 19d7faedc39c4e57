"""npe2 sample data: a synthetic subject with known lesions (File > Open Sample > napari-deepmir)."""

from .io.display import DisplayGeometry
from .io.resample import resample_to_grid
from .layers import image_layer_data, labels_layer_data, locations_layer_data

#: Small enough to open in a few seconds, large enough to hold every kind of lesion and mimic.
SAMPLE_SHAPE = (160, 192, 48)
SAMPLE_VOXEL_MM = (1.0, 1.0, 2.5)
#: Physics grid of the sample: twice as fine as the acquisition, which keeps blooming and opens in seconds.
SAMPLE_FINE_VOXEL_MM = (0.7, 0.7, 1.25)


def make_synthetic_subject() -> list[tuple]:
    """T2, SWI, QSM, the true labels and the location map of a seeded synthetic subject."""
    from .phantom import Acquisition, generate_subject

    subject = generate_subject(
        seed=7, acquisition=Acquisition(shape=SAMPLE_SHAPE, voxel_mm=SAMPLE_VOXEL_MM), name="sub-sample", fine_voxel_mm=SAMPLE_FINE_VOXEL_MM
    )
    geometry = DisplayGeometry(subject.swi.shape, subject.affine)
    t2 = resample_to_grid(subject.t2, subject.t2_affine, subject.swi.shape, subject.affine)
    layers = [image_layer_data(data, geometry, modality=m, name=f"sample {m.upper()}") for m, data in (("t2", t2), ("swi", subject.swi), ("qsm", subject.qsm))]
    layers.append(locations_layer_data(subject.locations, geometry, name="sample locations"))
    layers.append(labels_layer_data(subject.labels, geometry, name="sample true lesions"))
    return layers
