"""``python -m napari_deepmir.cli``: the ``deepmir`` command."""

import sys

from . import main

sys.exit(main())
