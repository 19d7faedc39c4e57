"""The one rule every command that writes follows (docs/data-safety.md).

Nothing that exists is replaced unless napari-deepmir wrote it (its provenance says so, or it is a file of
exactly the kind the command writes) or the user passes ``--overwrite``. Before any work starts,
:func:`check_destinations` checks every file a command will write:

- two outputs of one command are never the same file (``table --summary`` equal to ``--out``, or two tables
  whose JSON sidecars would collide), and no output is one of the command's inputs;
- an output that is a symbolic link is refused (with ``--overwrite`` the link itself is replaced, never the
  file it points to: writes are atomic renames);
- an output that is a folder is refused; an existing file is replaced only when ``ours(path)`` says this
  project wrote it, or with ``--overwrite``;
- its folder can be written (a read-only disk fails in a second, not after an hour).

:func:`check_output_folder` keeps a dataset's outputs out of its inputs (``--out`` may not be or contain an
input dataset), :func:`check_new_folder` keeps a command that makes folders of its own (``synth``) from
replacing folders that hold something, and :func:`generated_by_us` and :func:`our_table` are the ways a file
is known to be ours. :func:`output_lock` keeps two runs from filling one output folder at once.
"""

import contextlib
import os
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .. import __version__
from .errors import InputError
from .jsonfile import read_json

#: The ``GeneratedBy`` name of every JSON record this project writes.
GENERATOR = "napari-deepmir"


def generated_by() -> dict:
    """The ``GeneratedBy`` entry of the records this project writes (BIDS derivatives' field)."""
    return {"Name": GENERATOR, "Version": __version__}


def _json_object(path: Path) -> dict | None:
    try:
        content = read_json(path)
    except InputError:
        return None
    return content if isinstance(content, dict) else None


def generated_by_us(path: str | Path) -> bool:
    """Whether ``path`` is a JSON record whose ``GeneratedBy`` (an object, or a list of them) names napari-deepmir."""
    content = _json_object(Path(path))
    made = content.get("GeneratedBy") if content else None
    entries = made if isinstance(made, list) else [made]
    return any(isinstance(entry, dict) and entry.get("Name") == GENERATOR for entry in entries)


def our_table(descriptions: dict) -> Callable[[Path], bool]:
    """A test of whether a file is a table (CSV/TSV) or column sidecar (JSON) of the columns ``descriptions``
    lists: what one of our table writers would write there. A synthetic subject's object record, a user's
    notes or another tool's table are not."""
    known = set(descriptions) | {"participant_id"}

    def is_ours(path: Path) -> bool:
        if path.suffix.lower() == ".json":
            content = _json_object(path)
            return content is not None and all(
                key in known and isinstance(value, dict) and set(value) <= {"Description", "Units"} and value
                for key, value in content.items()
            )
        try:
            with open(path, encoding="utf-8") as handle:
                header = handle.readline(1 << 16).rstrip("\r\n")
        except (OSError, UnicodeDecodeError):
            return False
        columns = header.split("\t" if path.suffix.lower() == ".tsv" else ",")
        return bool(header) and set(columns) <= known

    return is_ours


def same_text(text: str) -> Callable[[Path], bool]:
    """A test of whether a file holds exactly ``text`` (replacing it loses nothing)."""

    def is_same(path: Path) -> bool:
        try:
            return path.read_text(encoding="utf-8") == text
        except (OSError, UnicodeDecodeError):
            return False

    return is_same


def ensure_writable_folder(folder: str | Path) -> Path:
    """Create ``folder`` if needed and prove a file can be written there; an InputError names it otherwise."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(folder, "exists and is not a folder; give a folder for the outputs")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".deepmir-write-test.", suffix=".tmp"):
            pass
    except OSError as error:
        raise InputError(folder, f"cannot write outputs here ({error.strerror or error})") from None
    return folder


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(path))


def check_destinations(
    files: Iterable[str | Path],
    *,
    overwrite: bool = False,
    ours: Callable[[Path], bool] = lambda path: False,
    inputs: Iterable[str | Path | None] = (),
) -> list[Path]:
    """Check, before any work, that a command may write each of ``files`` (the rule of the module docstring);
    InputError naming the first file that may not be written. Returns the files as paths."""
    files = [Path(f) for f in files]
    seen: dict[Path, Path] = {}
    for path in files:
        key = _resolved(path)
        if key in seen:
            raise InputError(path, f"is given twice as an output (also as {seen[key]}); give each output its own name")
        seen[key] = path
    for given in (Path(p) for p in inputs if p is not None):
        if _resolved(given) in seen:
            raise InputError(given, "is an input of this command and cannot also be one of its outputs")
    for path in files:
        if path.is_symlink():
            if not overwrite:
                raise InputError(
                    path,
                    f"is a symbolic link (to {os.readlink(path)}); outputs are never written through a link: "
                    "choose another output, or pass --overwrite to replace the link (never the file it points to)",
                )
        elif path.is_dir():
            raise InputError(path, "is a folder; an output file of this name cannot be written")
        elif path.exists() and not overwrite and not ours(path):
            raise InputError(
                path, "exists and was not written by napari-deepmir; choose another output or pass --overwrite"
            )
    for folder in dict.fromkeys(p.parent for p in files):
        ensure_writable_folder(folder)
    return files


def check_output_folder(out: str | Path, inputs: Iterable[str | Path]) -> Path:
    """Refuse (InputError) an output folder that is, or holds, one of the ``inputs`` (datasets or files): a
    dataset's derivatives go beside it or in its ``derivatives/`` folder, never over it."""
    out = Path(out)
    target = _resolved(out)
    for given in inputs:
        source = _resolved(Path(given))
        if target == source or target in source.parents:
            relation = "is" if target == source else "holds"
            raise InputError(
                out,
                f"{relation} the input {given}; write the outputs to a folder of their own (e.g. "
                f"{Path(given) / 'derivatives' / 'deepmir'})",
            )
    return out


def check_new_folder(folder: str | Path, *, overwrite: bool = False) -> Path:
    """Refuse (InputError) to make ``folder`` anew where a folder holding anything (or a link, or a file) is,
    unless ``overwrite``."""
    folder = Path(folder)
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise InputError(folder, "exists and is not a folder of its own; choose another output folder")
    if folder.is_dir() and not overwrite:
        entries = sorted(entry.name for entry in folder.iterdir())
        if entries:
            raise InputError(
                folder,
                f"already holds {entries[0]}{' and more' if len(entries) > 1 else ''}; it is never replaced: "
                "choose an empty output folder or pass --overwrite",
            )
    return folder


#: The lock file a command that fills a whole output folder holds while it runs (``deepmir cohort``).
LOCK_NAME = ".deepmir.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextlib.contextmanager
def output_lock(folder: str | Path, command: str) -> Iterator[Path]:
    """Hold ``folder``'s lock file for the block: a second run into the same folder is refused (InputError
    naming the lock) instead of mixing its files with the first's. A lock whose process (on this host) has
    ended is a killed run's and is taken over."""
    lock = Path(folder) / LOCK_NAME
    record = f"{os.getpid()} {socket.gethostname()} {command}\n"
    for _ in range(2):
        try:
            descriptor = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            break
        except FileExistsError:
            owner = _lock_owner(lock)
            if owner is None:
                continue  # its owner has ended: removed, try again
            raise InputError(
                folder,
                f"another {owner} is writing to this folder (lock {lock}); wait for it to end, or delete the lock "
                "if no such run is alive",
            ) from None
    else:
        raise InputError(lock, "cannot take the output folder's lock")
    with os.fdopen(descriptor, "w") as handle:
        handle.write(record)
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError):
            if lock.read_text() == record:
                lock.unlink()


def _lock_owner(lock: Path) -> str | None:
    """Who holds ``lock`` ('deepmir cohort (pid 12, host h)'), or None after removing a lock whose process on
    this host has ended."""
    try:
        pid, host, command = lock.read_text().split(" ", 2)
        pid_number = int(pid)
    except (OSError, ValueError):
        return "run (its lock file is unreadable)"
    if host == socket.gethostname() and not _alive(pid_number):
        with contextlib.suppress(OSError):
            lock.unlink()
        return None
    return f"{command.strip()} (pid {pid_number} on {host})"
