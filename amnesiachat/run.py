"""Run an AmnesiacHAT-study method under the continual-unlearning protocol:

    python -m amnesiachat.run method=amnesiachat benchmark=pmnist num_tasks=5 unlearning_requests=published seed=1
    python -m amnesiachat.run study=main method=amnesiac_finetuning benchmark=pmnist seed=1

The retrain and original references of the run are trained first if missing (references=none skips them and DD/AG).
"""

import sys
from pathlib import Path

from amnesiachat import METHODS
from common.runner import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], METHODS, Path(__file__).parent))
