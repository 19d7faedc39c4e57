"""Make docs/images/phantom.png: a synthetic subject's SWI, QSM, T2 and labels, and lesion close-ups.

.venv/bin/python docs/scripts/phantom_figure.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from napari_deepmir.io.resample import resample_to_grid
from napari_deepmir.phantom import generate_subject

OUT = Path(__file__).resolve().parents[1] / "images" / "phantom.png"


def main() -> None:
    subject = generate_subject(7)
    t2 = resample_to_grid(subject.t2, subject.t2_affine, subject.swi.shape, subject.affine)
    z = int(np.argmax((subject.labels > 0).sum(axis=(0, 1))))
    fig, axes = plt.subplots(2, 4, figsize=(16, 8.5))
    panels = [
        ("SWI", subject.swi, "gray", None),
        ("QSM (ppb)", subject.qsm, "bwr", (-200, 200)),
        ("T2-weighted", t2, "gray", None),
    ]
    for ax, (title, data, cmap, limits) in zip(axes[0], panels):
        image = ax.imshow(
            data[:, :, z].T, cmap=cmap, origin="lower", **({"vmin": limits[0], "vmax": limits[1]} if limits else {})
        )
        ax.set_title(f"{title}, slice {z}")
        if limits:
            fig.colorbar(image, ax=ax, fraction=0.04)
    labels = np.ma.masked_equal(subject.labels[:, :, z].T, 0)
    axes[0, 3].imshow(subject.swi[:, :, z].T, cmap="gray", origin="lower")
    axes[0, 3].imshow(
        labels,
        cmap=matplotlib.colors.ListedColormap(["red", "dodgerblue"]),
        vmin=1,
        vmax=2,
        origin="lower",
        interpolation="nearest",
    )
    axes[0, 3].set_title("truth: CMB red, iron deposit blue")
    picks = [next(l for l in subject.lesions if l["kind"] == kind) for kind in ("cmb", "iron", "calcification", "vein")]
    for ax, lesion in zip(axes[1], picks):
        i, j, k = np.round(np.linalg.inv(subject.affine) @ np.append(lesion["centre_mm"], 1))[:3].astype(int)
        box = (slice(max(0, i - 12), i + 13), slice(max(0, j - 12), j + 13), k)
        swi_patch, qsm_patch = subject.swi[box].T, subject.qsm[box].T
        ax.imshow(
            np.hstack([swi_patch / np.percentile(subject.swi, 99), 0.5 + qsm_patch / 800]),
            cmap="gray",
            origin="lower",
            vmin=0,
            vmax=1,
        )
        ax.set_title(
            f"{lesion['kind']} {lesion['diameter_mm']:.1f} mm, {lesion['susceptibility_ppb']:+.0f} ppb\nSWI | QSM"
        )
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=70)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
