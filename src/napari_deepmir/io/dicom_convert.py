"""dcm2niix, one series at a time: each series (the files of one person's series, see :mod:`.dicom_headers`) is
linked into a folder of its own and converted there, so dcm2niix can neither merge two people's files nor
hide a series it could not convert. Its own counts ("Convert N DICOM as ...", "Converted X of Y files") are
read back and compared with the files given: a series converted in part is refused, naming the file
dcm2niix complained about.
"""

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError

_CONVERTED = re.compile(r"^Convert (\d+) DICOM as ", re.MULTILINE)
_CONVERTED_OF = re.compile(r"Converted (\d+) of (\d+) files")
_COMPLAINT = re.compile(r"^(Warning|Error|Catastrophic error)[^\n]*", re.MULTILINE | re.IGNORECASE)


@dataclass
class Conversion:
    """What dcm2niix made of one series: NIfTI files with their sidecars (None: not valid JSON), and why it
    is refused ('' when it is not)."""

    outputs: list[tuple[Path, dict | None]] = field(default_factory=list)
    refused: str = ""


def dcm2niix_binary() -> str:
    """The path of the dcm2niix executable: the ``dcm2niix`` package's, else one on PATH."""
    try:
        import dcm2niix  # noqa: PLC0415 (optional: a dcm2niix on PATH serves too)
    except ImportError:
        found = shutil.which("dcm2niix")
        if found is None:
            raise InputError(None, "dcm2niix is not installed: pip install dcm2niix") from None
        return found
    return dcm2niix.bin


def convert_series(files: list[Path], work_dir: Path) -> Conversion:
    """Convert the DICOM ``files`` of one series in ``work_dir`` (which must not exist yet)."""
    staged, out = work_dir / "dicom", work_dir / "nifti"
    staged.mkdir(parents=True)
    out.mkdir()
    originals = {}
    for index, path in enumerate(files):
        link = staged / f"{index:06d}.dcm"
        os.symlink(path.resolve(), link)
        originals[str(link)] = str(path)
    command = [dcm2niix_binary(), "-b", "y", "-ba", "n", "-z", "y", "-f", "%s_%j", "-o", str(out), str(staged)]
    done = subprocess.run(command, check=False, capture_output=True, text=True, errors="replace")
    said = f"{done.stdout}\n{done.stderr}"
    for link, original in originals.items():
        said = said.replace(link, original)
    converted = sum(int(n) for n in _CONVERTED.findall(said))
    counted = _CONVERTED_OF.search(said)
    if counted:
        converted = min(converted, int(counted.group(1))) if converted else int(counted.group(1))
    niftis = sorted(out.glob("*.nii.gz"))
    if not niftis or converted < len(files):
        lines = [m.group() for m in _COMPLAINT.finditer(said)]
        named = [line for line in lines if any(o in line for o in originals.values())]
        why = "; ".join(named or lines[-1:]) or f"dcm2niix exit status {done.returncode}"
        done_part = f"converted only {converted} of {len(files)} files" if niftis else "converted none of its files"
        return Conversion(refused=f"dcm2niix {done_part} ({why}); the series is not imported in part")
    return Conversion([(nifti, _read_sidecar(nifti)) for nifti in niftis])


def _read_sidecar(nifti: Path) -> dict | None:
    """dcm2niix's JSON sidecar of ``nifti`` ({} when it wrote none; None when it is not valid JSON)."""
    path = nifti.with_name(nifti.name[: -len(".nii.gz")] + ".json")
    if not path.exists():
        return {}
    try:
        content = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except ValueError:
        return None
    return content if isinstance(content, dict) else None
