"""Run a baseline or reference learner:  python -m baselines.run method=lwf benchmark=pmnist seed=1 [key=value ...]"""

import sys
from pathlib import Path

from baselines import METHODS
from common.runner import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], METHODS, Path(__file__).parent))
