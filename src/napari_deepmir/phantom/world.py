"""What a synthetic subject's world holds, beyond its acquisition: vessels, lesion burden, physiological iron,
mimics, air and bone, head shape and folds, the QSM pipeline and SWI artefacts.

``World()`` is the world the shipped model was trained on: a seed gives the same subject as before worlds
existed. ``World.randomized(rng)`` draws a wide world (the ``deepmir synth --world wide`` of issue 11); the
values it never draws (``HELD_OUT``) make the stress sets of ``benchmarks/bench_detection.py``.
"""

from dataclasses import dataclass, replace

import numpy as np

VEIN_MODELS = ("parenchymal", "anatomical")
LESION_BURDENS = ("default", "cohort", "none")
HEAD_SHAPES = ("ellipsoid", "long", "round", "boxy")
BACKGROUND_REMOVALS = ("ideal", "sharp")
INVERSIONS = ("tkd", "tikhonov", "cg")
REFERENCES = ("csf", "brain", "none")

#: Settings ``World.randomized`` never draws: a model trained on wide worlds has not seen them.
HELD_OUT = {"inversion": "cg", "head_shape": "boxy", "vein_density": 3.0}


@dataclass(frozen=True)
class World:
    """Anatomy, objects and processing of a synthetic subject (defaults: the training world of the shipped model).

    ``veins``: ``parenchymal`` (12-25 tubes inside the brain, 70 % along z) or ``anatomical`` (pial, medullary,
    deep veins and dural sinuses, tens to hundreds, ``vein_density`` scales pial and medullary counts).
    ``lesion_burden``: ``default`` (3-12 CMBs, 1-4 iron deposits), ``cohort`` (most subjects without CMBs,
    a few with dozens) or ``none`` (no labelled lesion). ``qsm_erosion_mm`` None erodes the QSM mask by one
    voxel; ``residual_background_ppb`` is the std of a smooth field background removal leaves behind.
    """

    veins: str = "parenchymal"
    vein_density: float = 1.0
    lesion_burden: str = "default"
    iron_texture: bool = False
    mimics: bool = False
    air_and_bone: bool = False
    head_shape: str = "ellipsoid"
    gyri: bool = False
    background_removal: str = "ideal"
    residual_background_ppb: float = 0.0
    inversion: str = "tkd"
    qsm_erosion_mm: float | None = None
    qsm_reference: str = "csf"
    swi_artefacts: bool = False

    def __post_init__(self):
        for name, allowed in (
            ("veins", VEIN_MODELS),
            ("lesion_burden", LESION_BURDENS),
            ("head_shape", HEAD_SHAPES),
            ("background_removal", BACKGROUND_REMOVALS),
            ("inversion", INVERSIONS),
            ("qsm_reference", REFERENCES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")
        if self.vein_density < 0:
            raise ValueError("vein_density must be >= 0")

    @classmethod
    def wide(cls, **fixed) -> "World":
        """Every feature on, at typical values (``fixed`` overrides any of them)."""
        return cls(
            veins="anatomical",
            lesion_burden="cohort",
            iron_texture=True,
            mimics=True,
            air_and_bone=True,
            gyri=True,
            background_removal="sharp",
            residual_background_ppb=10.0,
            qsm_erosion_mm=2.0,
            swi_artefacts=True,
        ).with_(**fixed)

    @classmethod
    def randomized(cls, rng: np.random.Generator, **fixed) -> "World":
        """A wide world with its pipeline drawn: vein density 0.5-2, head shape, background removal, TKD or
        Tikhonov, QSM mask erosion 0-5 mm, reference; ``fixed`` pins settings after the draw (same stream)."""
        drawn = cls.wide(
            vein_density=float(np.exp(rng.uniform(np.log(0.5), np.log(2.0)))),
            head_shape=str(rng.choice(["ellipsoid", "long", "round"])),
            background_removal=str(rng.choice(BACKGROUND_REMOVALS)),
            residual_background_ppb=float(rng.uniform(0, 20)),
            inversion=str(rng.choice(["tkd", "tikhonov"])),
            qsm_erosion_mm=float(rng.uniform(0, 5)),
            qsm_reference=str(rng.choice(REFERENCES)),
        )
        return drawn.with_(**fixed)

    def with_(self, **changes) -> "World":
        return replace(self, **changes)
