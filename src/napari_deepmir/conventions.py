"""Project-wide conventions: label values, class names and colours, BIDS file suffixes.

Everything that writes or reads labels, files or tables uses these names, so they are defined once.
"""

BACKGROUND, CMB, IRON = 0, 1, 2

#: Short class names used in tables, JSON and on the command line.
CLASS_NAMES: dict[int, str] = {CMB: "cmb", IRON: "iron"}
#: Human-readable names used in the viewer and in docs.
CLASS_TITLES: dict[int, str] = {CMB: "cerebral microbleed", IRON: "iron deposit"}
#: Fixed RGBA colours for label values (napari's DirectLabelColormap takes this dict).
CLASS_COLORS: dict[int | None, tuple[float, float, float, float]] = {
    BACKGROUND: (0.0, 0.0, 0.0, 0.0),
    CMB: (1.0, 0.15, 0.15, 1.0),
    IRON: (0.1, 0.65, 1.0, 1.0),
    None: (1.0, 1.0, 0.0, 1.0),
}

#: Modalities in their canonical order (model input channels follow this order).
MODALITIES: tuple[str, ...] = ("swi", "qsm", "t2")
#: BIDS suffix of each file kind: sub-X_<suffix>.nii.gz
BIDS_SUFFIXES: dict[str, str] = {
    "t2": "T2w",
    "swi": "swi",
    "qsm": "Chimap",
    "labels": "dseg",
    "locations": "desc-locations_dseg",
}
MODALITY_TITLES: dict[str, str] = {"swi": "SWI", "qsm": "QSM", "t2": "T2"}

#: Location categories (the value of a location map, see docs/conventions.md), after MARS.
LOCATION_NAMES: dict[int, str] = {
    0: "outside",
    1: "lobar",
    2: "deep",
    3: "basal ganglia",
    4: "infratentorial",
}
#: Location categories that count as "deep" in MARS terms.
DEEP_LOCATIONS = frozenset({2, 3})
