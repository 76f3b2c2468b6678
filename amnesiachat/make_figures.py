"""The AmnesiacHAT study's figures from run records (`amnesiachat/figures.py`), never from training.

    python -m amnesiachat.make_figures [--out results/amnesiachat/figures] [--seeds 1-3]
                                       [--figures trajectories,dd_ag,hparams,pruning] [key=value ...]

Writes `<name>.png` and `<name>.pdf` per figure and a README.md naming the command and the commits of its runs.
Missing runs are drawn as missing and listed at the end with the sweep commands that make them.
"""

import sys

from amnesiachat.figures import FIGURES
from common.figures import main as figures_main


def main(argv=None) -> int:
    return figures_main("amnesiachat", FIGURES, argv)


if __name__ == "__main__":
    sys.exit(main())
