"""Readers of the datasets torchvision knows: IDX (MNIST family), CIFAR pickle batches, SVHN .mat files, and
torchvision's image folders (Food-101, Caltech-101, EuroSAT, DTD, Country211) read into 3x32x32."""

from __future__ import annotations

import os
from typing import Callable

import torch
from torchvision import datasets as tvd

from common.data.errors import BadFile, _one_line
from common.data.images import _stack, load_image, pil_image_tensor, whole_set_split


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

