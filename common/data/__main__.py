"""`python -m common.data prepare NAME|all|combined20|combined5 [--data-dir DIR] [--no-download]`."""

import sys

from common.data.cli import main

sys.exit(main())
