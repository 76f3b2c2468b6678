"""Readers of the datasets torchvision does not know, placed by hand or fetched from plain URLs: HAT's pickled zips,
Arabic digits (CSV), Kannada-MNIST (gzipped IDX), Sign Language MNIST (CSV), Linnaeus 5 (image folders) and the
original notMNIST (PNG folders)."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import pickle
import tarfile
import zipfile
import zlib
from typing import Callable

import numpy as np
import torch
from torchvision.datasets.utils import check_integrity

from common.data.errors import BadFile, _one_line
from common.data.images import _stack, load_image, resize_images


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

