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

#: Colours of the rater's own annotation in the viewer: lighter tints of the class colours (pink, pale cyan), so an
#: annotation never looks like a detection or the truth painted over the same lesion (see LABEL_ROLE_STYLES).
ANNOTATION_COLORS: dict[int | None, tuple[float, float, float, float]] = {
    BACKGROUND: (0.0, 0.0, 0.0, 0.0),
    CMB: (1.0, 0.55, 0.8, 1.0),
    IRON: (0.6, 1.0, 0.95, 1.0),
    None: (1.0, 1.0, 0.0, 1.0),
}

#: Modalities in their canonical order (model input channels follow this order).
MODALITIES: tuple[str, ...] = ("swi", "qsm", "t2")
#: BIDS suffix (with the entities that tell it apart) of each file kind: sub-X_<suffix>.nii.gz, the name written.
#: BIDS has no SWI suffix (BEP004 was never merged): an SWI is a ``T2starw`` image reconstructed from the gradient
#: echo's magnitude and phase, hence ``rec-swi``. ``magnitude`` and ``phase`` are the parts of that gradient echo
#: (BIDS ``part-`` entity), from which an SWI is made when none is given. QSM is ``Chimap`` (ppm per BIDS).
BIDS_SUFFIXES: dict[str, str] = {
    "t2": "T2w",
    "swi": "rec-swi_T2starw",
    "qsm": "Chimap",
    "magnitude": "part-mag_T2starw",
    "phase": "part-phase_T2starw",
    "labels": "dseg",
    "locations": "desc-locations_dseg",
    "regions": "desc-regions_dseg",
}
#: Names also read as a kind, besides the one written: ``_swi`` (BEP004 drafts, many groups, datasets written
#: before this project followed the BIDS validator) and an ``acq-swi`` label; upper-case labels too.
OTHER_SUFFIXES_READ: dict[str, tuple[str, ...]] = {
    "swi": ("rec-SWI_T2starw", "acq-swi_T2starw", "acq-SWI_T2starw", "swi"),
}
MODALITY_TITLES: dict[str, str] = {"swi": "SWI", "qsm": "QSM", "t2": "T2"}

#: Location categories (the value of a location map, see docs/conventions.md), after MARS. Brainstem and
#: cerebellum are apart because the Boston criteria v2.0 count a brainstem bleed as deep and a cerebellar one as
#: neither lobar nor deep; 4 (infratentorial, the two not told apart) is what a map that merges them may hold.
LOCATION_NAMES: dict[int, str] = {
    0: "outside",
    1: "lobar",
    2: "deep",
    3: "basal ganglia",
    4: "infratentorial",
    5: "brainstem",
    6: "cerebellum",
}
#: Location categories that count as "deep" in MARS terms.
DEEP_LOCATIONS = frozenset({2, 3})
#: Location categories that are infratentorial in MARS terms.
INFRATENTORIAL_LOCATIONS = frozenset({4, 5, 6})

#: MARS regions (Gregoire et al., Neurology 2009), the finer places a rating scale counts per side.
#: A region map (``sub-X_desc-regions_dseg.nii.gz``) stores ``code`` on the left and ``code + RIGHT_OFFSET`` on
#: the right; the lesion table's ``region`` and ``hemisphere`` columns use these names.
REGION_NAMES: dict[int, str] = {
    1: "frontal",
    2: "parietal",
    3: "temporal",
    4: "occipital",
    5: "insula",
    6: "basal ganglia",
    7: "thalamus",
    8: "internal capsule",
    9: "external capsule",
    10: "corpus callosum",
    11: "deep and periventricular white matter",
    12: "brainstem",
    13: "cerebellum",
}
#: The location category (a LOCATION_NAMES key) each MARS region belongs to.
REGION_LOCATION: dict[int, int] = {1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 3, 7: 2, 8: 2, 9: 2, 10: 2, 11: 2, 12: 5, 13: 6}
#: Added to a region code on the right hemisphere in a region map.
RIGHT_OFFSET = 100
HEMISPHERES: tuple[str, ...] = ("left", "right")


#: Every value a region map may hold: 0 (no region) and each region code on either side.
REGION_MAP_VALUES: frozenset[int] = frozenset({0, *REGION_NAMES, *(c + RIGHT_OFFSET for c in REGION_NAMES)})
