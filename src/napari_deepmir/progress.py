"""Progress on stderr: a live tqdm bar on a terminal, one line per stage in a log file or a pipe."""

import sys
import time
from collections.abc import Callable, Generator

from tqdm import tqdm


def run_to_end(steps: Generator, on_yield: Callable | None = None):
    """Drive a generator that reports progress (the ``iter_*`` functions) to its end and return its value;
    ``on_yield`` gets each yielded item (a ``(done, total)`` pair is passed as two arguments)."""
    while True:
        try:
            item = next(steps)
        except StopIteration as finished:
            return finished.value
        if on_yield is None:
            continue
        if isinstance(item, tuple):
            on_yield(*item)
        else:
            on_yield(item)


class _StageLines:
    """tqdm's small interface used here, printing a line when a stage starts and one when it ends."""

    def __init__(self, desc: str, total: int | None, unit: str, *, quiet: bool = False):
        self.desc, self.total, self.unit, self.n = desc, total, unit, 0
        self._postfix: dict = {}
        self._start = None if quiet else time.perf_counter()
        if not quiet:
            print(f"{desc}: started", file=sys.stderr, flush=True)

    def update(self, count: int = 1) -> None:
        self.n += count

    def set_postfix(self, **values) -> None:
        self._postfix = values

    def refresh(self) -> None:
        pass

    @staticmethod
    def write(message: str, file=None) -> None:
        print(message, file=file or sys.stderr, flush=True)

    def close(self) -> None:
        if self._start is None:
            return
        of = f"/{self.total}" if self.total else ""
        extra = "".join(f", {key} {value}" for key, value in self._postfix.items())
        print(
            f"{self.desc}: {self.n}{of} {self.unit} in {time.perf_counter() - self._start:.1f} s{extra}",
            file=sys.stderr,
            flush=True,
        )
        self._start = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_bar(desc: str, *, total: int | None = None, unit: str = "it", enabled: bool = True):
    """A tqdm bar when stderr is a terminal; otherwise :class:`_StageLines` (no thousands of lines in a log);
    nothing at all when not ``enabled``."""
    if enabled and sys.stderr.isatty():
        return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr)
    return _StageLines(desc, total, unit, quiet=not enabled)
