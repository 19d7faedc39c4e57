"""Lesions: per-lesion measurements, lesion-wise evaluation, labelling guidance and the candidate finder."""
