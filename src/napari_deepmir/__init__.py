"""napari-deepmir: find cerebral microbleeds and iron deposits in T2/SWI/QSM brain MRI."""

__version__ = "0.1.0"
