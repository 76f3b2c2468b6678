"""Exit 0 if a benchmark's data is ready (preparing what can be fetched), else print why and exit 1.

    python -m scripts.check_data BENCHMARK [--data-dir data]
"""

import argparse
import sys

from common import config as config_lib
from common.benchmarks import build_benchmark
from common import data
from common.data import DataMissingError

SOURCES = {"pmnist": ["mnist"], "rmnist": ["mnist"], "smnist": ["mnist"], "scifar10": ["cifar10"],
           "scifar100": ["cifar100"], "combined20": ["combined20"], "combined5": ["combined5"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("benchmark")
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args(argv)
    num_tasks = config_lib.benchmark_yaml(args.benchmark)["num_tasks"]
    for name in SOURCES.get(args.benchmark, []):
        data.main(["prepare", name, "--data-dir", args.data_dir])  # fetches what it can; reports the rest
    try:
        build_benchmark(args.benchmark, num_tasks, args.data_dir)
    except DataMissingError as err:
        print(f"{args.benchmark}: data missing, skipped (shown as missing in the tables)\n  {err}")
        return 1
    print(f"{args.benchmark}: data ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
