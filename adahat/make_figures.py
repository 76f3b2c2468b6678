"""The AdaHAT study's figures from run records (`adahat/figures.py`), never from training.

    python -m adahat.make_figures [--out results/adahat/figures] [--seeds 1-5] [--benchmarks pmnist]
                                  [--figures capacity,long_sequence,alpha,ablation] [key=value ...]

Writes `<name>.png` and `<name>.pdf` per figure and a README.md naming the command and the commits of its runs.
Missing runs are drawn as missing and listed at the end with the sweep commands that make them.
"""

import sys

from adahat.figures import FIGURES
from common.figures import main as figures_main


def main(argv=None) -> int:
    return figures_main("adahat", FIGURES, argv)


if __name__ == "__main__":
    sys.exit(main())
