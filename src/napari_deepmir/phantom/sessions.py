"""Two scans of one synthetic head: a baseline and a follow-up with head motion, new microbleeds and maybe one gone.

The head, its lesions and its mimics are drawn once on the fine grid (:func:`.generate.draw_scene`). The
baseline may get one more microbleed that the follow-up lacks (*resolved*); the follow-up gets 0-12 more
(*new*). Before the follow-up is imaged, its fine property maps are moved rigidly (the head turned by a few
degrees about a random axis and shifted by millimetres, as a patient lies differently at a rescan), so the
scanner's B0, grid and noise meet the head anew: blooming, partial volume and noise all differ between the
sessions, and the follow-up must be registered to the baseline to compare them.

The truth table (:data:`CHANGE_COLUMNS`) lists every microbleed and iron deposit with its status (``new``,
``persisting``, ``resolved``) and its centre in each session's world (scanner RAS mm).
"""

import copy
import datetime
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial.transform import Rotation

from ..io.derivatives import table_sidecar, write_json, write_table
from .acquisition import Acquisition
from .generate import FINE_VOXEL_MM, Scene, SyntheticSubject, draw_scene, image_scene, write_subject
from .lesions import Maps, Placer
from .world import World

#: Most new microbleeds a synthetic follow-up gets.
MAX_NEW_CMBS = 12
#: Chance that a baseline microbleed is gone at follow-up (at most one per pair).
RESOLVED_CHANCE = 0.3
#: Date of every synthetic baseline; the follow-up comes 90-540 days later.
BASELINE_DATE = datetime.datetime(2025, 1, 6, 9, 0)

CHANGE_COLUMNS: dict[str, tuple[str, str | None]] = {
    "lesion": ("Lesion number in the synthetic subject's lesion lists (_lesions.json of each session)", None),
    "class": ("cmb or iron", None),
    "status": ("new (follow-up only), persisting (both sessions) or resolved (baseline only)", None),
    "diameter_mm": ("True diameter of the drawn lesion", "mm"),
    **{f"baseline_{a}_mm": (f"Centre in the baseline's world, scanner RAS {a} (empty when new)", "mm") for a in "xyz"},
    **{
        f"followup_{a}_mm": (
            f"Centre in the follow-up's world, scanner RAS {a} (the head moved; empty when resolved)",
            "mm",
        )
        for a in "xyz"
    },
}


@dataclass
class SessionPair:
    """A baseline and a follow-up of one head, the truth of what changed, and how the head moved.

    ``motion``: 4 x 4, baseline world -> follow-up world (where a point of the head is at the follow-up)."""

    name: str
    baseline: SyntheticSubject
    followup: SyntheticSubject
    changes: pd.DataFrame
    motion: np.ndarray
    rotation_deg: float
    shift_mm: float
    interval_days: int

    @property
    def new_cmbs(self) -> int:
        return int(((self.changes["status"] == "new") & (self.changes["class"] == "cmb")).sum())


def head_motion(
    rng: np.random.Generator, max_rotation_deg: float, max_shift_mm: float
) -> tuple[np.ndarray, float, float]:
    """(4 x 4 rigid motion about the world origin, its angle in degrees, its shift in mm): a rotation of up to
    ``max_rotation_deg`` about a random axis and a shift of up to ``max_shift_mm`` in a random direction."""
    axis = rng.normal(size=3)
    angle = float(rng.uniform(0, max_rotation_deg))
    direction = rng.normal(size=3)
    shift = float(rng.uniform(0, max_shift_mm))
    motion = np.eye(4)
    motion[:3, :3] = Rotation.from_rotvec(np.deg2rad(angle) * axis / np.linalg.norm(axis)).as_matrix()
    motion[:3, 3] = shift * direction / np.linalg.norm(direction)
    return motion, angle, shift


def _moved(maps: Maps, inside: np.ndarray, motion: np.ndarray) -> tuple[Maps, np.ndarray]:
    """The fine maps (and brain) of the head after ``motion``, on the same fine grid: linear interpolation for
    properties, nearest for codes and truth; what comes in from outside the grid is air."""
    index_map = np.linalg.inv(maps.affine) @ np.linalg.inv(motion) @ maps.affine

    def move(array: np.ndarray, order: int) -> np.ndarray:
        moved = ndimage.affine_transform(
            array.astype(np.float32) if order else array, index_map[:3, :3], index_map[:3, 3], order=order, cval=0
        )
        return moved.astype(array.dtype)

    fields = {"chi": 1, "proton_density": 1, "r2star": 1, "t2w": 1, "tissue": 0, "location": 0, "truth": 0}
    moved = Maps(
        affine=maps.affine, voxel_mm=maps.voxel_mm, **{name: move(getattr(maps, name), o) for name, o in fields.items()}
    )
    return moved, move(inside, 0)


def _lesion_rows(lesions: list[dict], status: str, motion: np.ndarray) -> list[dict]:
    rows = []
    for lesion in lesions:
        if lesion["label"] not in (1, 2):
            continue
        centre = np.asarray(lesion["centre_mm"], float)
        moved = (motion @ np.append(centre, 1.0))[:3]
        row = {"lesion": lesion["id"], "class": "cmb" if lesion["label"] == 1 else "iron", "status": status}
        row["diameter_mm"] = lesion["diameter_mm"]
        for axis, b, f in zip("xyz", centre, moved):
            row[f"baseline_{axis}_mm"] = np.nan if status == "new" else b
            row[f"followup_{axis}_mm"] = np.nan if status == "resolved" else f
        rows.append(row)
    return rows


def generate_pair(
    seed: int = 0,
    acquisition: Acquisition | None = None,
    *,
    name: str | None = None,
    fine_voxel_mm=FINE_VOXEL_MM,
    world: World | None = None,
    new_cmbs: int | None = None,
    resolved: bool | None = None,
    max_rotation_deg: float = 5.0,
    max_shift_mm: float = 5.0,
) -> SessionPair:
    """A baseline and a follow-up of one head (see the module doc). ``new_cmbs`` (default: 0-12 drawn) and
    ``resolved`` (default: drawn, 30 %) fix the change; the baseline is :func:`generate_subject`'s subject of
    ``seed`` whenever no microbleed resolves."""
    acquisition = acquisition or Acquisition()
    name = name or f"sub-{seed:03d}"
    change_rng = np.random.default_rng([seed, 29])
    n_new = int(change_rng.integers(0, MAX_NEW_CMBS + 1)) if new_cmbs is None else int(new_cmbs)
    n_resolved = int(change_rng.random() < RESOLVED_CHANCE if resolved is None else resolved)
    motion, angle, shift = head_motion(change_rng, max_rotation_deg, max_shift_mm)
    interval = int(change_rng.integers(90, 541))

    scene = draw_scene(seed, acquisition, fine_voxel_mm, world)
    followup_maps = copy.deepcopy(scene.maps)
    common = scene.lesions
    baseline_placer = Placer(scene.maps, change_rng, common)
    for _ in range(n_resolved):
        baseline_placer.microbleed()
    gone = baseline_placer.objects[len(common) :]
    followup_placer = Placer(followup_maps, change_rng, baseline_placer.objects)  # new ones keep off the gone one
    for _ in range(n_new):
        followup_placer.microbleed()
    new = followup_placer.objects[len(baseline_placer.objects) :]

    scene.lesions = common + gone
    baseline = image_scene(scene, acquisition, name=f"{name}_ses-1")
    moved_maps, moved_inside = _moved(followup_maps, scene.inside, motion)
    del followup_maps
    followup_lesions = [
        {**lesion, "centre_mm": [round(float(c), 3) for c in (motion @ np.append(lesion["centre_mm"], 1.0))[:3]]}
        for lesion in common + new
    ]
    followup_scene = Scene(
        moved_maps,
        moved_inside,
        followup_lesions,
        scene.factors,
        np.random.default_rng([seed, 31]),
        np.random.default_rng([seed, 11, 2]),
        scene.world,
        seed,
    )
    followup = image_scene(followup_scene, acquisition, name=f"{name}_ses-2")
    rows = _lesion_rows(common, "persisting", motion) + _lesion_rows(gone, "resolved", motion)
    rows += _lesion_rows(new, "new", motion)
    changes = pd.DataFrame(rows, columns=list(CHANGE_COLUMNS))
    return SessionPair(name, baseline, followup, changes, motion, angle, shift, interval)


def write_pair(pair: SessionPair, out_dir: str | Path) -> Path:
    """Write ``out_dir/<name>/ses-1`` and ``ses-2`` (each as :func:`write_subject`), the BIDS
    ``<name>_sessions.tsv`` with their dates, and the truth ``<name>_desc-truth_changes.tsv`` with its
    sidecar (columns, head motion, interval). Returns the participant folder."""
    folder = Path(out_dir) / pair.name
    for session, subject in (("1", pair.baseline), ("2", pair.followup)):
        write_subject(subject, out_dir, session=session)
    followup_date = BASELINE_DATE + datetime.timedelta(days=pair.interval_days)
    sessions = pd.DataFrame(
        {"session_id": ["ses-1", "ses-2"], "acq_time": [d.isoformat() for d in (BASELINE_DATE, followup_date)]}
    )
    write_table(folder / f"{pair.name}_sessions.tsv", sessions)
    table = write_table(folder / f"{pair.name}_desc-truth_changes.tsv", pair.changes)
    motion = {
        "BaselineToFollowupRasMm": np.round(pair.motion, 6).tolist(),
        "RotationDeg": round(pair.rotation_deg, 3),
        "ShiftMm": round(pair.shift_mm, 3),
    }
    extra = {"HeadMotion": motion, "IntervalDays": pair.interval_days, "NewMicrobleeds": pair.new_cmbs}
    write_json(table.with_suffix(".json"), {**table_sidecar(pair.changes, CHANGE_COLUMNS), **extra})
    return folder


def generate_pairs(
    out_dir: str | Path,
    n_subjects: int,
    seed: int = 0,
    acquisition: Acquisition | None = None,
    *,
    progress=None,
    world: World | Callable[[np.random.Generator], World] | None = None,
    **options,
) -> list[Path]:
    """Write ``n_subjects`` pairs ``sub-001``...; pair i depends only on (seed, i). ``world``: one
    :class:`World` or a function drawing one per pair; ``options`` go to :func:`generate_pair`;
    ``progress(done, total)`` is called after each pair."""
    folders = []
    for i in range(n_subjects):
        pair_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        this_world = world(np.random.default_rng(pair_seed + 2)) if callable(world) else world
        pair = generate_pair(pair_seed, acquisition, name=f"sub-{i + 1:03d}", world=this_world, **options)
        folders.append(write_pair(pair, out_dir))
        if progress is not None:
            progress(i + 1, n_subjects)
    return folders
