"""Run a method of the FG-AdaHAT study:  python -m fg_adahat.run study=main method=adahat benchmark=pmnist seed=1"""

import sys
from pathlib import Path

from common.runner import main
from fg_adahat import METHODS

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], METHODS, Path(__file__).parent))
