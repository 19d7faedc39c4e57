"""Atomic writes: a crash or a kill never leaves a half-written file at the destination.

A write goes to ``.<name>.<8 characters>.tmp<suffixes>`` beside the target, then is renamed onto it. A
killed run can leave such temporaries; :func:`stale_temporaries` finds them (only names of exactly that
pattern), and :func:`atomic_path` removes stale ones of its own target when it starts.
"""

import contextlib
import glob
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

#: A temporary whose last change is older than this (seconds) belongs to a write that died.
STALE_AFTER_S = 600.0
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp(?P<suffix>(\.[^.]+){0,2})")


def _suffixes(path: Path) -> str:
    """Keep compound suffixes (``.nii.gz``) so writers that look at the name still work."""
    return "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix


def _is_temporary_of(candidate: Path, target_name: str | None = None) -> bool:
    """True if ``candidate`` is named like one of our temporaries (of ``target_name`` when given)."""
    match = _TEMPORARY.fullmatch(candidate.name)
    if match is None or match["suffix"] != _suffixes(Path(match["name"])):
        return False
    return target_name is None or match["name"] == target_name


def stale_temporaries(folder: str | Path, *, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Leftover temporaries of :func:`atomic_path` directly in ``folder`` not changed for ``older_than_s`` seconds."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(".*.tmp*") if _is_temporary_of(p) and _is_stale(p, older_than_s))


def clean_stale_temporaries(folder: str | Path, *, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Delete the files :func:`stale_temporaries` finds; return those deleted."""
    removed = []
    for path in stale_temporaries(folder, older_than_s=older_than_s):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


def _is_stale(path: Path, older_than_s: float) -> bool:
    try:
        return path.is_file() and not path.is_symlink() and time.time() - path.stat().st_mtime > older_than_s
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds.

    The file gets the mode the umask implies (as ``open`` would give it); stale temporaries of the same
    target from a killed run are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*"):
        if _is_temporary_of(leftover, path.name) and _is_stale(leftover, STALE_AFTER_S):
            leftover.unlink(missing_ok=True)
    tmp = _create_temporary(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _create_temporary(path: Path) -> Path:
    """Create an empty temporary beside ``path``, mode 0666 less the umask (``open`` semantics, unlike mkstemp)."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{_suffixes(path)}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
