"""Make the pre-made sample subject shipped with the plugin (File > Open Sample): run once, commit the files.

The phantom simulates the subject (half a minute); the sample opens it from these files in a second.
Volumes are stored as integers in steps of 1/300 of their range (below the noise; a few MB in all).
"""

import shutil

import nibabel as nib
import numpy as np

from napari_deepmir._sample_data import SAMPLE_FOLDER, SAMPLE_SUBJECT
from napari_deepmir.phantom import Acquisition, generate_subject
from napari_deepmir.phantom.generate import write_subject

SHAPE = (160, 192, 48)
VOXEL_MM = (1.0, 1.0, 2.5)
FINE_VOXEL_MM = (0.7, 0.7, 1.25)
#: Integer steps across the 99.9th percentile of each volume's magnitude.
QUANTA = 300


def main() -> None:
    subject = generate_subject(
        seed=7,
        acquisition=Acquisition(shape=SHAPE, voxel_mm=VOXEL_MM),
        name=SAMPLE_SUBJECT,
        fine_voxel_mm=FINE_VOXEL_MM,
    )
    shutil.rmtree(SAMPLE_FOLDER, ignore_errors=True)
    paths = write_subject(subject, SAMPLE_FOLDER.parent)
    for kind in ("t2", "swi", "qsm"):
        image = nib.load(str(paths[kind]))
        data = np.asarray(image.dataobj, dtype=np.float32)
        step = float(np.percentile(np.abs(data), 99.9)) / QUANTA
        small = nib.Nifti1Image(np.round(data / step).astype(np.int16), image.affine, image.header)
        small.header.set_slope_inter(step, 0.0)
        nib.save(small, str(paths[kind]))
    total = sum(p.stat().st_size for p in SAMPLE_FOLDER.rglob("*") if p.is_file())
    print(f"{SAMPLE_FOLDER}: {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
