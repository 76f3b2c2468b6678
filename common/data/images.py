"""Image conversion (uint8 tensors in the reference's resize) and the fixed-seed splits of every dataset."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import random_split

from common.data.errors import BadFile, _one_line

SPLIT_SEED = 42  # the reference's fixed seed for every random split of data (never the run seed)
TEST_FRACTION = 0.1  # share of a dataset without an official split that becomes its test part (docs/benchmarks.md)


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
    random_split's order. Used for every data split (train/val 90/10 and (train+val)/test 90/10 of the
    datasets without an official split); it never depends on the run seed."""
    first, second = random_split(range(n), [1 - fraction, fraction],
                                 generator=torch.Generator().manual_seed(SPLIT_SEED))
    return list(first.indices), list(second.indices)


def whole_set_split(n: int) -> tuple[list[int], list[int]]:
    """The split of a dataset without an official one (docs/benchmarks.md): (train+val indices, test indices)."""
    return seeded_split(n, TEST_FRACTION)

