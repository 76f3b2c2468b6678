"""The FG-AdaHAT paper's figures from run records (`fg_adahat/figures.py`), never from training.

    python -m fg_adahat.make_figures [--out results/fg_adahat/figures] [--seeds 1-3]
                                     [--figures tradeoff,measures,hparams,accuracy_matrices] [key=value ...]

Writes `<name>.png` and `<name>.pdf` per figure and a README.md naming the command and the commits of its runs.
Missing runs are drawn as missing and listed at the end with the sweep commands that make them.
"""

import sys

from common.figures import main as figures_main
from fg_adahat.figures import FIGURES


def main(argv=None) -> int:
    return figures_main("fg_adahat", FIGURES, argv)


if __name__ == "__main__":
    sys.exit(main())
