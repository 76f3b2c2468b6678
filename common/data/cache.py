"""The tensor cache: `{data_dir}/cache/{name}[-CxHxW]-v1.pt`, read if sound, written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import torch

from common.data.sources import SOURCES

CACHE_VERSION = "v1"


def cache_path(name: str, data_dir: str | os.PathLike = "data", shape: tuple[int, ...] | None = None) -> Path:
    """Where `load_source` keeps the cached tensors of `name`: `{name}-v1.pt` in the dataset's own image shape,
    `{name}-{C}x{H}x{W}-v1.pt` in another one."""
    shape = tuple(shape) if shape else SOURCES[name].image_shape
    tag = "" if shape == SOURCES[name].image_shape else "-" + "x".join(str(d) for d in shape)
    return Path(data_dir) / "cache" / f"{name}{tag}-{CACHE_VERSION}.pt"



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

