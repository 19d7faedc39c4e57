"""The error raised for bad input: its message names the file and the problem."""

from pathlib import Path


class InputError(ValueError):
    """Input a user gave us is unusable; the message says which file and why."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")
