"""The ``deepmir`` command line: argument parsing only; each sub-command hands over to a core function.

One module per command family adds its sub-commands and their handlers: :mod:`.data` (import, synth, info),
:mod:`.detect` (predict, demo, cohort, longitudinal), :mod:`.train` (train, finetune, train-verifier) and
:mod:`.measure` (table, candidates, evaluate, agreement, locations, consensus); :mod:`.options` holds the option
groups they share. Torch is imported only by the handlers that train, so ``deepmir --help`` stays without it.
"""

import argparse
import sys

from .. import __version__
from ..io import InputError
from . import data, detect, measure, train

#: Each sub-command's parser, in the order ``deepmir --help`` lists them.
_COMMANDS = (
    data.add_info,
    data.add_import,
    data.add_synth,
    detect.add_predict,
    train.add_train,
    train.add_finetune,
    train.add_train_verifier,
    measure.add_candidates,
    measure.add_table,
    measure.add_locations,
    measure.add_evaluate,
    measure.add_agreement,
    measure.add_consensus,
    detect.add_cohort,
    detect.add_longitudinal,
    detect.add_demo,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepmir",
        description="Find cerebral microbleeds (label 1) and iron deposits (label 2) in T2/SWI/QSM brain MRI.",
    )
    parser.add_argument("--version", action="version", version=f"napari-deepmir {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add_command in _COMMANDS:
        add_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``deepmir`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except InputError as error:
        print(f"deepmir {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, a folder turned read-only half-way: one line, not a traceback
        where = f"{error.filename}: " if error.filename else ""
        print(f"deepmir {args.command}: error: {where}{error.strerror or error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"deepmir {args.command}: interrupted", file=sys.stderr)
        return 130
