"""`load_source`: one dataset as tensors, from the cache or else built (and checked) from its raw files."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from common.data import sources
from common.data.cache import _CACHE_KEYS, _VAL_KEYS, _read_cache, _write_cache, cache_path
from common.data.errors import BadFile, DataMissingError, _file_fault, _how_to_get, _missing_message
from common.data.images import convert_images
from common.data.sources import SOURCES, _root, _source


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
            root = _root(name, data_dir)
            raise DataMissingError(f"raw files of dataset {name} under {root} are not the real "
                                   f"dataset ({problem}). {_how_to_get(name, src, root)}")
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
        raise DataMissingError(f"raw file {err.path} of dataset {name} is {err.why}. {_how_to_get(name, src, root)}") \
            from None
    except Exception as err:  # torchvision reports bad files with assorted exception types
        raise DataMissingError(_missing_message(name, src, root, err)) from None
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
    sizes, expected = tuple(len(blob[f"{p}_y"]) for p in parts), sources.EXPECTED_SIZES.get(name)
    if check_sizes and expected and sizes != expected:
        return (f"{' / '.join(map(str, sizes))} {' / '.join(parts)} images, "
                f"expected {' / '.join(map(str, expected))}")
    return None

