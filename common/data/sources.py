"""The registry of dataset sources: for every dataset, how to read it, where its files go, its classes, image shape
and normalisation, and its real sizes; the members of the multi-dataset benchmarks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import torch
from torchvision import datasets as tvd

from common.data.file_readers import (
    AHDD_FILES,
    AHDD_FOLDER,
    KANNADA_FILES,
    KANNADA_FOLDER,
    LINNAEUS_CLASSES,
    LINNAEUS_FOLDER,
    NOTMNIST_URL,
    _ahdd,
    _hat_pickles,
    _kannada,
    _linnaeus5,
    _notmnist_full,
    _sign_language,
    _url_download,
)
from common.data.readers import _cifar, _mnist_like, _svhn, _tv_images

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

# The multi-dataset benchmarks: image shape and members in task order (docs/benchmarks.md).
COMBINED: dict[str, tuple[tuple[int, int, int], tuple[str, ...]]] = {
    "combined20": ((3, 32, 32), (
        "cifar10", "cifar100", "mnist", "svhn", "fashion_mnist", "traffic_signs", "facescrub", "notmnist_hat",
        "emnist_digits", "emnist_letters", "ahdd", "kannada_mnist", "sign_language_mnist", "kmnist", "food101",
        "linnaeus5", "caltech101", "eurosat", "dtd", "country211")),
    "combined5": ((1, 28, 28), ("mnist", "notmnist", "fashion_mnist", "kmnist", "sign_language_mnist")),
}



def _source(name: str) -> Source:
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(SOURCES)}")
    return SOURCES[name]


def _root(name: str, data_dir: str | os.PathLike) -> str:
    """The folder the raw files of dataset `name` live in (torchvision's root for the torchvision sets)."""
    subdir = SOURCES[name].subdir
    return os.path.join(os.fspath(data_dir), subdir) if subdir else os.fspath(data_dir)
