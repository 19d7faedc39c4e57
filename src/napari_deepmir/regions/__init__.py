"""Regions: location and MARS region maps from a FreeSurfer/SynthSeg segmentation (the rules in
:mod:`.segmentation`) and ``deepmir locations``' files on the SWI grid (:mod:`.maps`)."""
