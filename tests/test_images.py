"""SequentialImages-v0 and its image-folder loader, on tiny PNG / JPEG trees written here.

Expected facts (split membership, pixel values, counts) are recomputed in this file from the
files themselves, with numpy and Pillow, not read back from the loader.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections import Counter
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from PIL import Image
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import memenvs
from memenvs.data import DATA_ENV, images as image_data
from memenvs.tasks.images import SequentialImagesTask
from helpers import run_episode

CLASSES = ("cat", "ant", "bird")  # written in this order; class ids are sorted: ant 0, bird 1, cat 2
SORTED = tuple(sorted(CLASSES))
PALETTE = ((0, 0, 0), (255, 255, 255), (200, 30, 60))
SUFFIXES = (".png", ".jpg", ".jpeg")


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    """No $MEMENVS_DATA from the machine, and no decoded split from another test (tmp paths differ,
    but a cache hit across tests would hide a decoding bug)."""
    monkeypatch.delenv(DATA_ENV, raising=False)
    image_data.clear_cache()


def write_class(folder: Path, n: int, rng: np.random.Generator, start: int = 0, names: str = "img") -> None:
    """``n`` noisy images of distinct sizes, PNG and JPEG alternately, each with its bottom-right
    quarter one colour of PALETTE (so last pixels repeat and the memoryless table is not trivial)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        h, w = 8 + (i * 3) % 11, 9 + (i * 5) % 13
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        pixels[h // 2 :, w // 2 :] = PALETTE[rng.integers(len(PALETTE))]
        suffix = ".png" if i % 2 == 0 else ".jpg"
        Image.fromarray(pixels).save(folder / f"{names}{i:02d}{suffix}", quality=95)


@pytest.fixture
def tree(tmp_path) -> Path:
    """root/<class>/*: 3 classes x 5 images (15), plus files the loader must ignore."""
    root = tmp_path / "pets"
    rng = np.random.default_rng(0)
    for name in CLASSES:
        write_class(root / name, 5, rng)
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "cat" / ".hidden.png").write_bytes(b"junk")
    (root / ".cache").mkdir()
    return root


def listing(tree_dir: Path) -> list[tuple[str, str]]:
    """(class, file) of every image under a class tree, sorted by class then file name."""
    return sorted(
        (d.name, f.name)
        for d in tree_dir.iterdir()
        if d.is_dir() and not d.name.startswith(".")
        for f in d.iterdir()
        if f.suffix.lower() in SUFFIXES and not f.name.startswith(".")
    )


def expected_splits(tree_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """The documented rule: shuffle with RandomState(50); test = last n//5, validation = n//10 before."""
    files = listing(tree_dir)
    n = len(files)
    n_val, n_test = max(1, n // 10), max(1, n // 5)
    order = np.random.RandomState(50).permutation(n)
    cut = n - n_val - n_test
    parts = {"train": order[:cut], "validation": order[cut : n - n_test], "test": order[n - n_test :]}
    return {split: [files[i] for i in idx] for split, idx in parts.items()}


def relative(paths: list[Path]) -> list[tuple[str, str]]:
    return [(p.parent.name, p.name) for p in paths]


def expected_pixels(path: Path, side: int) -> np.ndarray:
    """uint8 [side, side, 3]: RGB, centre square cut with numpy, bicubic resize by Pillow."""
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"))
    h, w = rgb.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    square = rgb[top : top + s, left : left + s]
    if s == side:
        return square
    return np.asarray(Image.fromarray(square).resize((side, side), Image.Resampling.BICUBIC))


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def run_oracle(env: gym.Env, seed: int) -> float:
    return run_episode(env, lambda e: e.oracle_action(), seed=seed)


# --------------------------------------------------------------------------------------------
# Loader: layouts, classes, splits
# --------------------------------------------------------------------------------------------


def test_plain_tree_classes_and_fixed_splits(tree):
    data = image_data.load_image_folder(tree, side=8)
    assert data.classes == SORTED and data.name == "pets"
    want = expected_splits(tree)
    assert sum(map(len, want.values())) == 15  # the .txt, hidden file and hidden folder are ignored
    for split in ("train", "validation", "test"):
        got = relative(data.images.paths[split])
        assert got == want[split], split
        np.testing.assert_array_equal(data.labels[split], [SORTED.index(c) for c, _ in got])
    assert [len(want[s]) for s in ("train", "validation", "test")] == [11, 1, 3]
    every = [f for s in want for f in want[s]]
    assert len(set(every)) == len(every) == 15  # no overlap, nothing lost
    again = image_data.load_image_folder(tree, side=8)
    assert {s: relative(p) for s, p in again.images.paths.items()} == want
    info = SequentialImagesTask(data_dir=tree, side=8).dataset
    assert info.to_dict() == {"name": "pets", "source": str(tree.resolve()), "embedded": False,
                              "splits": {"train": 11, "validation": 1, "test": 3}}


def test_explicit_train_test_layout(tmp_path):
    root = tmp_path / "mine"
    rng = np.random.default_rng(1)
    for name in CLASSES:
        write_class(root / "train" / name, 4, rng)
        write_class(root / "test" / name, 2, rng, start=10)
    data = image_data.load_image_folder(root, side=8)
    assert data.classes == SORTED
    assert relative(data.images.paths["test"]) == listing(root / "test")  # test: sorted order
    train_files = listing(root / "train")
    kept, held = np.split(np.random.RandomState(50).permutation(12), [12 - 12 // 10])
    assert relative(data.images.paths["train"]) == [train_files[i] for i in kept]
    assert relative(data.images.paths["validation"]) == [train_files[i] for i in held]
    np.testing.assert_array_equal(data.labels["test"], [0, 0, 1, 1, 2, 2])
    # a validation folder is used as it is
    write_class(root / "validation" / "ant", 1, rng, start=20)
    write_class(root / "validation" / "cat", 1, rng, start=21)
    data = image_data.load_image_folder(root, side=8)
    assert relative(data.images.paths["train"]) == train_files
    np.testing.assert_array_equal(data.labels["validation"], [0, 2])
    # a test class unknown to train is refused, naming it
    write_class(root / "test" / "dog", 1, rng)
    with pytest.raises(ValueError, match=r"\['dog'\].*training split"):
        image_data.load_image_folder(root, side=8)


def test_stanford_dogs_layout_as_unpacked(tmp_path, monkeypatch):
    breeds = ("n02085936-Maltese_dog", "n02085620-Chihuahua", "n02086240-Shih-Tzu")
    holder = tmp_path / "data"
    rng = np.random.default_rng(2)
    for breed in breeds:
        write_class(holder / "stanford-dogs" / "Images" / breed, 3, rng, names=breed.split("-")[0] + "_")
    dogs = holder / "stanford-dogs"
    for where in (dogs, dogs / "Images", holder):  # the tarball's parent, Images/ itself, a data folder
        data = image_data.load_image_folder(where, side=4)
        assert data.name == "stanford-dogs" and data.classes == tuple(sorted(breeds))
        assert data.source == str((dogs / "Images").resolve())
        assert {s: relative(p) for s, p in data.images.paths.items()} == expected_splits(dogs / "Images")
    monkeypatch.setenv(DATA_ENV, str(holder))
    task = memenvs.make_task("SequentialImages-v0", side=4)
    assert task.dataset.name == "stanford-dogs" and task.num_outputs == 3 and task.classes[0] == "n02085620-Chihuahua"


def test_memenvs_data_folder_and_its_subfolders(tree, tmp_path, monkeypatch):
    holder = tmp_path / "datasets"
    (holder / "mnist").mkdir(parents=True)  # other datasets beside it are not taken for classes
    (holder / "mnist" / "train-images-idx3-ubyte").write_bytes(b"\0" * 16)
    monkeypatch.setenv(DATA_ENV, str(holder))
    with pytest.raises(FileNotFoundError, match=r"\$MEMENVS_DATA="):
        image_data.load_image_folder(side=8)
    tree.rename(holder / "images")
    assert image_data.load_image_folder(side=8).name == "images"
    monkeypatch.setenv(DATA_ENV, str(holder / "images"))  # the tree itself
    assert image_data.load_image_folder(side=8).classes == SORTED
    other = tmp_path / "other"
    with pytest.raises(FileNotFoundError, match="data_dir="):  # an explicit data_dir must hold the data
        image_data.load_image_folder(other, side=8)


def test_missing_data_says_what_to_put_where(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        SequentialImagesTask()
    message = str(err.value)
    assert "MEMENVS_DATA is not set" in message and "root/<class>/" in message
    assert "vision.stanford.edu" in message and "Images/" in message and "\n" not in message
    assert not memenvs.data.available("memenvs/SequentialImages-v0")
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        gym.make("memenvs/SequentialImages-v0", data_dir=str(tmp_path))


def test_available_with_data(tree):
    assert memenvs.data.available("memenvs/SequentialImages-v0", data_dir=str(tree), side=4)


def test_pillow_is_imported_only_to_decode(tree):
    code = (
        "import sys, numpy as np, memenvs\n"
        f"task = memenvs.make_task('SequentialImages-v0', data_dir={str(tree)!r}, side=4)\n"
        "assert 'PIL' not in sys.modules, 'listing imported Pillow'\n"
        "task.sample(1, np.random.default_rng(0))\n"
        "assert 'PIL' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_bad_folders_are_named(tmp_path):
    root = tmp_path / "bad"
    rng = np.random.default_rng(3)
    write_class(root / "a", 2, rng)
    (root / "b").mkdir()
    (root / "b" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"bad/b: class folder holds no image files"):
        image_data.load_image_folder(root)
    (root / "b" / "readme.txt").unlink()
    (root / "b").rmdir()
    with pytest.raises(ValueError, match=r"1 class folder\(s\) \['a'\]"):
        image_data.load_image_folder(root)


def test_corrupt_and_truncated_files_are_named(tree):
    bad = tree / "ant" / "img99.jpg"
    bad.write_bytes(b"this is not a jpeg")
    task = SequentialImagesTask(data_dir=tree, side=4)  # building the task decodes nothing
    split = next(s for s, paths in task.data.images.paths.items() if bad in paths)
    with pytest.raises(ValueError, match=r"img99\.jpg: not a readable image file"):
        task.data.images[split]
    good = next(p for p in (tree / "ant").iterdir() if p.suffix == ".jpg" and p != bad)
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])  # truncated JPEG
    image_data.clear_cache()
    with pytest.raises(ValueError, match=r"(?i)img99\.jpg: not a readable image file.*truncated"):
        SequentialImagesTask(data_dir=tree, side=4).data.images[split]


# --------------------------------------------------------------------------------------------
# Pixels: crop, resize, colour
# --------------------------------------------------------------------------------------------


def test_centre_crop_without_resampling_is_exact(tmp_path):
    """Every image's short side is 8 and side=8: the episode is the centre square, computed with
    numpy slicing alone (Pillow returns an image already of the asked size unchanged)."""
    root = tmp_path / "crop"
    rng = np.random.default_rng(4)
    raw = {
        ("a", "wide.png"): rng.integers(0, 256, (8, 13, 3), dtype=np.uint8),   # h 8, w 13: columns 2..9
        ("a", "tall.png"): rng.integers(0, 256, (11, 8, 3), dtype=np.uint8),   # rows 1..8
        ("b", "square.png"): rng.integers(0, 256, (8, 8, 3), dtype=np.uint8),
        ("b", "grey.png"): rng.integers(0, 256, (8, 10), dtype=np.uint8),       # mode L
    }
    for (cls, name), pixels in raw.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / cls / name)
    crops = {
        ("a", "wide.png"): raw[("a", "wide.png")][:, 2:10],
        ("a", "tall.png"): raw[("a", "tall.png")][1:9],
        ("b", "square.png"): raw[("b", "square.png")],
        ("b", "grey.png"): np.repeat(raw[("b", "grey.png")][:, 1:9, None], 3, axis=2),
    }
    for colour in ("rgb", "grey", "channels"):
        task = SequentialImagesTask(data_dir=root, side=8, colour=colour)
        for split in ("train", "validation", "test"):
            batch = next(task.iterate(split))
            for b, key in enumerate(relative(task.data.images.paths[split])):
                shown = batch.inputs[:, b] * 255
                if colour == "rgb":
                    np.testing.assert_allclose(shown, crops[key].reshape(64, 3), atol=1e-3)
                elif colour == "channels":
                    np.testing.assert_allclose(shown, crops[key].reshape(192, 1), atol=1e-3)
                elif key == ("b", "grey.png"):  # a grey file reads back exactly
                    np.testing.assert_allclose(shown, raw[key][:, 1:9].reshape(64, 1), atol=1e-3)
                else:
                    assert np.abs(shown[:, 0] - luminance(crops[key]).reshape(64)).max() <= 0.5 + 1e-3
                assert batch.targets[-1, b] == "ab".index(key[0])


@pytest.mark.parametrize("colour", ["rgb", "grey", "channels"])
def test_episodes_are_the_resized_pixels_in_order_with_the_label_last(tree, colour):
    side = 6
    task = SequentialImagesTask(split="train", data_dir=tree, side=side, colour=colour)
    files = expected_splits(tree)["train"]
    steps = {"rgb": 36, "grey": 36, "channels": 108}[colour]
    assert task.max_length == steps and task.num_outputs == 3
    assert task.num_inputs == (3 if colour == "rgb" else 1)
    batches = list(task.iterate(batch_size=4))
    assert [b.batch_size for b in batches] == [4, 4, 3]
    inputs = np.concatenate([b.inputs for b in batches], axis=1)
    targets = np.concatenate([b.targets for b in batches], axis=1)
    mask = np.concatenate([b.mask for b in batches], axis=1)
    assert mask[-1].all() and not mask[:-1].any()
    for b, (cls, name) in enumerate(files):
        rgb = expected_pixels(tree / cls / name, side)
        if colour == "rgb":
            np.testing.assert_allclose(inputs[:, b], rgb.reshape(36, 3) / 255, atol=1e-6)
            r, c = divmod(20, side)  # step 20 shows row 3, column 2
            np.testing.assert_allclose(inputs[20, b], rgb[r, c] / 255, atol=1e-6)
        elif colour == "channels":
            np.testing.assert_allclose(inputs[3 * 7 + 1, b, 0], rgb[1, 1, 1] / 255, atol=1e-6)  # G of pixel 7
            np.testing.assert_allclose(inputs[:, b, 0], rgb.reshape(108) / 255, atol=1e-6)
        else:
            assert np.abs(inputs[:, b, 0] * 255 - luminance(rgb).reshape(36)).max() <= 0.5 + 1e-3
        assert targets[-1, b] == SORTED.index(cls)


def test_tokens_and_extra_step(tree):
    task = SequentialImagesTask(data_dir=tree, side=5, colour="grey", pixels="tokens", extra_step=True)
    assert task.input_kind == "symbols" and task.num_inputs == 257 and task.max_length == 26
    plain = SequentialImagesTask(data_dir=tree, side=5, colour="grey")
    a = task.sample(4, np.random.default_rng(9))
    b = plain.sample(4, np.random.default_rng(9))
    np.testing.assert_array_equal(a.inputs[:25], np.rint(b.inputs[:, :, 0] * 255).astype(np.int64))
    assert (a.inputs[25] == 256).all() and a.mask[25].all() and not a.mask[:25].any()
    np.testing.assert_array_equal(a.targets[25], b.targets[24])


def test_side_128_gives_16384_steps(tree):
    task = SequentialImagesTask(data_dir=tree, side=128, colour="grey", pixels="tokens")
    batch = task.sample(2, np.random.default_rng(0))
    assert task.max_length == 16_384 and batch.inputs.shape == (16_384, 2)
    assert task.data.images["train"].shape == (11, 128, 128, 1)
    assert SequentialImagesTask(data_dir=tree, side=128, colour="channels").max_length == 3 * 16_384
    first = expected_splits(tree)["test"][0]
    test_batch = next(task.iterate("test", batch_size=1))
    lum = luminance(expected_pixels(tree / first[0] / first[1], 128)).reshape(-1)
    assert np.abs(test_batch.inputs[:, 0] - lum).max() <= 0.5 + 1e-3


# --------------------------------------------------------------------------------------------
# References, oracle, Gymnasium / SB3
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("colour", ["rgb", "grey", "channels"])
def test_memoryless_reference_by_brute_force(tree, colour):
    task = SequentialImagesTask(data_dir=tree, side=6, colour=colour)
    files = expected_splits(tree)["train"]
    last = []
    for cls, name in files:
        rgb = expected_pixels(tree / cls / name, 6)
        value = {"rgb": tuple(rgb[-1, -1]), "channels": rgb[-1, -1, 2], "grey": round(luminance(rgb[-1, -1]))}[colour]
        last.append((int(value) if colour != "rgb" else value, SORTED.index(cls)))
    best: Counter = Counter()
    for (value, _), count in Counter(last).items():
        best[value] = max(best[value], count)
    expected = sum(best.values()) / len(files)
    ref = task.reference_scores()
    assert ref.memoryless == pytest.approx(expected, abs=1e-12)
    assert ref.random == pytest.approx(1 / 3) and ref.optimal == 1.0
    if colour == "grey":
        assert expected < 1.0  # the palette corners repeat: not every image is told apart
    returns = []
    for batch in task.iterate(batch_size=4):
        preds = np.stack([task.memoryless_prediction(batch.inputs[t], t) for t in range(batch.seq_len)])
        returns.append(task.returns(preds, batch))
    assert np.concatenate(returns).mean() == pytest.approx(expected, abs=1e-12)
    counts = np.bincount([label for _, label in last], minlength=3)
    extra = SequentialImagesTask(data_dir=tree, side=6, colour=colour, extra_step=True)
    assert extra.reference_scores().memoryless == pytest.approx(counts.max() / len(files))


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"colour": "rgb"}, {"pixels": "tokens", "obs_mode": "index"}, {"colour": "channels", "extra_step": True}],
)
def test_env_checkers_and_oracle(tree, kwargs):
    env = gym.make("memenvs/SequentialImages-v0", data_dir=str(tree), side=5, **kwargs)
    check_env(env.unwrapped)
    sb3_check_env(env.unwrapped)
    assert env.action_space == gym.spaces.Discrete(3)
    for seed in range(3):
        assert run_oracle(env, seed) == 1.0


def test_seeded_reset_replays_the_episode(tree):
    env = gym.make("memenvs/SequentialImages-v0", data_dir=str(tree), side=4)

    def observations(seed: int) -> np.ndarray:
        obs, _ = env.reset(seed=seed)
        seen, done = [obs], False
        while not done:
            obs, _, done, _, _ = env.step(0)
            seen.append(obs)
        return np.stack(seen)

    first = observations(7)
    np.testing.assert_array_equal(first, observations(7))
    played = env.unwrapped.task.sample(1, np.random.default_rng(7))
    np.testing.assert_array_equal(first[:-1], played.inputs[:, 0])
    assert any(not np.array_equal(first, observations(s)) for s in range(8, 12))
    vec = gym.make_vec("memenvs/SequentialImages-v0", num_envs=2, data_dir=str(tree), side=4)
    obs, _ = vec.reset(seed=6)
    np.testing.assert_array_equal(obs[1], first[0])


def test_pickle_and_make_task_round_trip(tree):
    task = memenvs.make_task("sequential_images", data_dir=str(tree), side=32, colour="channels")
    assert task.kwargs == {"split": "train", "side": 32, "colour": "channels", "pixels": "float",
                           "extra_step": False, "data_dir": str(tree)}
    undecoded = pickle.dumps(task)
    rebuilt = type(task)(**task.kwargs)
    a = task.sample(3, np.random.default_rng(1))
    np.testing.assert_array_equal(rebuilt.sample(3, np.random.default_rng(1)).inputs, a.inputs)
    blob = pickle.dumps(task)
    assert len(blob) == len(undecoded) < task.data.images["train"].nbytes / 4  # decoded images are not pickled
    clone = pickle.loads(blob)
    b = clone.sample(3, np.random.default_rng(1))
    np.testing.assert_array_equal(b.inputs, a.inputs)
    np.testing.assert_array_equal(b.targets, a.targets)
    assert clone.reference_scores() == task.reference_scores()
    assert task.with_kwargs(side=4).max_length == 48 and task.length_knob == "side"


def test_each_split_is_decoded_once_per_process(tree, monkeypatch):
    calls: list[Path] = []
    decode = image_data.decode_image
    monkeypatch.setattr(image_data, "decode_image", lambda path, *a: calls.append(path) or decode(path, *a))
    task = SequentialImagesTask(data_dir=tree, side=4, colour="rgb")
    assert calls == []  # building a task decodes nothing
    task.sample(2, np.random.default_rng(0))
    assert len(calls) == 11  # the train split only
    SequentialImagesTask(data_dir=tree, side=4, colour="channels").sample(2, np.random.default_rng(0))
    SequentialImagesTask(data_dir=tree, side=4, colour="rgb").reference_scores()
    assert len(calls) == 11  # channels and rgb share the decoded RGB images
    SequentialImagesTask(data_dir=tree, side=4, colour="grey").sample(1, np.random.default_rng(0))
    SequentialImagesTask(data_dir=tree, side=5, colour="rgb").sample(1, np.random.default_rng(0))
    assert len(calls) == 33
    path = task.data.images.paths["train"][0]
    Image.fromarray(np.zeros((9, 9, 3), dtype=np.uint8)).save(path, format="PNG" if path.suffix == ".png" else "JPEG")
    rewritten = SequentialImagesTask(data_dir=tree, side=4, colour="rgb")
    assert (rewritten.data.images["train"][0] == 0).all() and len(calls) == 44  # a rewritten file is re-read
    assert not task.data.images["train"].flags.writeable and not task.data.labels["train"].flags.writeable


def test_bad_kwargs_are_one_line_value_errors(tree):
    cases = [
        ({"side": 0}, "side=0", "allowed"),
        ({"side": 10**12}, "side=1000000000000", "allowed"),
        ({"side": 600, "colour": "channels"}, "side=600", "allowed in [1, 577]"),
        ({"side": 2.5}, "side=2.5", "integer"),
        ({"colour": "hsv"}, "colour='hsv'", "'grey', 'rgb', 'channels'"),
        ({"pixels": "int"}, "pixels='int'", "'float', 'tokens'"),
        ({"pixels": "tokens", "colour": "rgb"}, "pixels='tokens'", "colour='rgb'"),
        ({"split": "dev"}, "split='dev'", "'train', 'validation', 'test'"),
        ({"extra_step": 1}, "extra_step=1", "True or False"),
        ({"data_dir": 3}, "data_dir=3", "folder path"),
    ]
    for kwargs, named, allowed in cases:
        for data_dir in (tree, None):  # checked before any data is looked for
            with pytest.raises(ValueError) as err:
                SequentialImagesTask(**{"data_dir": data_dir, **kwargs})
            message = str(err.value)
            assert named in message and allowed in message and "\n" not in message, message


def test_training_records_the_images_and_scores_the_test_split(tree, tmp_path):
    """A training run end to end on pixel tokens under truncated BPTT and the auxiliary loss: the
    dataset recorded in the summary, the best checkpoint scored on the whole test split."""
    from agents.supervised import TrainConfig, train

    config = TrainConfig(task="SequentialImages-v0", task_kwargs={"data_dir": str(tree), "side": 6, "pixels": "tokens"},
                         cell="lstm", hidden_size=8, encoder="embedding", embedding_dim=4, batch_size=4, updates=4,
                         eval_every=2, eval_split="validation", eval_batches=0, eval_batch_size=8, tbptt=10,
                         aux="reconstruction", aux_kwargs={"segment_length": 6})
    summary = train(config, tmp_path / "run", progress=False)
    assert summary["status"] == "completed"
    dataset = summary["dataset"]
    assert dataset["name"] == "pets" and not dataset["embedded"] and sum(dataset["splits"].values()) == 15
    assert 0.0 <= summary["test"]["metrics"]["accuracy"] <= 1.0
