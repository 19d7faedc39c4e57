"""JSON files read with limits: a model card, a sidecar or a record cannot cost a traceback, minutes or gigabytes.

Python's ``json`` recurses once per nesting level (a 100000-deep file ends in ``RecursionError``) and turns
a number of thousands of digits into an int that later overflows a float. :func:`read_json` checks the size
from the file system, the nesting depth by one vectorised pass over the bytes, and the length of every
number while parsing; each refusal is an :class:`InputError` naming the file.
"""

import json
import re
from pathlib import Path

import numpy as np

from .errors import InputError

#: Largest JSON file read (bytes): a model card with its training record is a few hundred kB.
MAX_JSON_BYTES = 16 * 2**20
#: Deepest nesting of objects and arrays: our files nest 5 levels, BIDS sidecars 3.
MAX_JSON_DEPTH = 64
#: Most digits in one number: a float64 has 17 significant digits, an exponent 3.
MAX_NUMBER_CHARS = 40
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def _depth(raw: bytes) -> int:
    """Deepest nesting of ``[``/``{`` outside strings."""
    codes = np.frombuffer(_STRING.sub(b'""', raw), np.uint8)
    steps = np.isin(codes, (ord("["), ord("{"))).astype(np.int32) - np.isin(codes, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))


def _number(text: str):
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError(f"a number of {len(text)} characters (at most {MAX_NUMBER_CHARS})")
    return float(text) if any(c in text for c in ".eE") else int(text)


def parse_json(raw: bytes | str, path: str | Path | None = None, *, max_depth: int = MAX_JSON_DEPTH):
    """Parse ``raw`` with the depth and number limits of the module docstring; InputError naming ``path``."""
    raw = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    depth = _depth(raw)
    if depth > max_depth:
        raise InputError(path, f"not a usable JSON file: nested {depth} levels deep (at most {max_depth})")
    try:
        return json.loads(raw.decode("utf-8"), parse_int=_number, parse_float=_number, parse_constant=float)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise InputError(path, f"not readable JSON ({error})") from None


def read_json(path: str | Path, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH):
    """The content of the JSON file ``path``, read within the limits of the module docstring."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InputError(path, f"JSON file of {size:,} bytes is over the limit of {max_bytes:,} bytes")
        raw = path.read_bytes()
    except OSError as error:
        raise InputError(path, f"cannot read ({error.strerror or error})") from None
    return parse_json(raw, path, max_depth=max_depth)
