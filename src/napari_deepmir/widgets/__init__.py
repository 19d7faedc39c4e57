"""napari widgets: thin faces over the core functions (detect, annotate, fine-tune, lesion table)."""
