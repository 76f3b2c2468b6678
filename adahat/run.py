"""Run AdaHAT, its HAT variants or a baseline:  python -m adahat.run method=adahat benchmark=pmnist seed=1"""

import sys
from pathlib import Path

from adahat import METHODS
from common.runner import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], METHODS, Path(__file__).parent))
