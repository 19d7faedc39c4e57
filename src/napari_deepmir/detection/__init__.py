"""Detection of lesions in a subject: input preparation and the U-Net (inference.py), the second stage
(verification.py), the one pipeline every front end takes (pipeline.py), cohorts (cohort.py) and the demo (demo.py)."""
