"""Pixel-by-pixel image classification: sequential / permuted MNIST and sequential CIFAR-10
(docs/tasks.md#pixel-mnist, docs/kaf.md#experiments-and-settings, docs/aux.md#experiments-and-settings).

An image is fed one pixel per step and its class is scored once, at the last step. The memory
demand is the whole image: the label depends on pixels hundreds of steps back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from memenvs.core import (
    ReferenceScores,
    SequenceBatch,
    SequenceTask,
    check_bool,
    check_choice,
    check_int,
    register_task,
)
from memenvs.data import SPLITS, DatasetInfo, ImageSplits, Split
from memenvs.data.cifar import load_cifar10
from memenvs.data.mnist import load_mnist
from memenvs.render import shade_text

PixelMode = Literal["float", "tokens"]
Layout = Literal["rgb", "grey", "channels"]
NUM_CLASSES = 10  # MNIST and CIFAR-10; other datasets pass their own count to ``_setup``
LEVELS = 256  # pixel intensities 0..255; with tokens and extra_step, symbol 256 marks the end
_CHUNK = 2048  # images per chunk when scanning a whole split


class PixelSequenceTask(SequenceTask):
    """Base class: classify an image shown one pixel (or one pixel vector) per step.

    Subclasses load an :class:`~memenvs.data.ImageSplits` and define :meth:`pixel_sequences`,
    the raw ``uint8 [B, steps, features]`` order in which pixels are shown. This class turns
    them into episodes, the reference scores and a deterministic pass over a split.
    """

    target_kind = "class"

    @property
    def dataset(self) -> DatasetInfo:
        """The images this task reads (name, source, split sizes; ``embedded`` for the default)."""
        return self.data.info()

    def _setup(
        self,
        data: ImageSplits,
        split: Split,
        pixels: PixelMode,
        extra_step: bool,
        steps: int,
        features: int,
        row: int,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        self.data = data
        self.split = check_choice("split", split, SPLITS)
        self.pixels = check_choice("pixels", pixels, ("float", "tokens"))
        self.extra_step = check_bool("extra_step", extra_step)
        if self.pixels == "tokens" and features != 1:
            raise ValueError(f"pixels='tokens' needs one value per step, but this layout shows {features} per step")
        self.steps = steps
        # The per-instance input kind overrides the class attribute read by TaskEnv.
        self.input_kind = "real" if self.pixels == "float" else "symbols"
        self.num_inputs = features if self.pixels == "float" else LEVELS + int(self.extra_step)
        self.input_low, self.input_high = 0.0, 1.0
        self.num_outputs = num_classes
        self.max_length = steps + int(self.extra_step)
        self.render_width = row  # steps per image row: the rendered episode draws the image
        self._reference: tuple[ReferenceScores, dict[int, int], int] | None = None

    # -- to implement ----------------------------------------------------------------------

    def pixel_sequences(self, images: np.ndarray) -> np.ndarray:
        """Raw images ``[B, ...]`` -> ``uint8 [B, steps, features]`` in presentation order."""
        raise NotImplementedError

    def render_inputs(self, inputs: np.ndarray) -> list[tuple[str, str]]:
        """The intensities as grey shades (the mean of the channels shown at a step), one image
        row per line; the end-of-image token of ``extra_step`` as ``>``."""
        if self.pixels == "float":
            return super().render_inputs(inputs)
        ids = np.asarray(inputs, dtype=np.int64).reshape(-1)
        text = shade_text(np.minimum(ids, LEVELS - 1), 0, LEVELS - 1)
        return [("in", "".join(">" if i >= LEVELS else c for i, c in zip(ids, text)))]

    # -- episodes --------------------------------------------------------------------------

    def episodes(self, images: np.ndarray, labels: np.ndarray) -> SequenceBatch:
        """The episodes of given images (``uint8`` as stored in the dataset) and labels."""
        seq = self.pixel_sequences(images).transpose(1, 0, 2)  # [steps, B, F]
        B = seq.shape[1]
        if self.pixels == "float":
            inputs = np.zeros((self.max_length, B, seq.shape[2]), dtype=np.float32)
            inputs[: self.steps] = seq / np.float32(LEVELS - 1)
        else:
            inputs = np.full((self.max_length, B), LEVELS, dtype=np.int64)
            inputs[: self.steps] = seq[:, :, 0]
        targets = np.zeros((self.max_length, B), dtype=np.int64)
        targets[-1] = labels
        mask = np.zeros((self.max_length, B), dtype=bool)
        mask[-1] = True
        return SequenceBatch(inputs, targets, mask)

    def sample(self, batch_size: int, rng: np.random.Generator) -> SequenceBatch:
        """``batch_size`` images of the task's split drawn uniformly with replacement."""
        idx = rng.integers(0, len(self.data.labels[self.split]), size=batch_size)
        return self.episodes(self.data.images[self.split][idx], self.data.labels[self.split][idx])

    def sample_each(self, rngs: Sequence[np.random.Generator]) -> SequenceBatch:
        """One episode per generator (equal to ``sample(1, rng)`` each), laid out in one pass."""
        n = len(self.data.labels[self.split])
        idx = np.array([rng.integers(0, n, size=1)[0] for rng in rngs], dtype=np.int64)
        return self.episodes(self.data.images[self.split][idx], self.data.labels[self.split][idx])

    def iterate(self, split: Split | None = None, batch_size: int = 256) -> Iterator[SequenceBatch]:
        """Every image of ``split`` (default: the task's split) once, in the split's fixed order.

        Deterministic, for evaluation: batches of ``batch_size`` episodes, the last one smaller.
        """
        split = check_choice("split", self.split if split is None else split, SPLITS)
        batch_size = check_int("batch_size", batch_size, low=1)
        images, labels = self.data.images[split], self.data.labels[split]
        for start in range(0, len(labels), batch_size):
            yield self.episodes(images[start : start + batch_size], labels[start : start + batch_size])

    # -- reference policies ----------------------------------------------------------------

    def _last_step_codes(self, images: np.ndarray) -> np.ndarray:
        """One int code per image for the pixel value(s) shown at the last pixel step."""
        codes = []
        for start in range(0, len(images), _CHUNK):
            last = self.pixel_sequences(images[start : start + _CHUNK])[:, -1, :].astype(np.int64)
            codes.append(last @ (LEVELS ** np.arange(last.shape[1], dtype=np.int64)))
        return np.concatenate(codes)

    def _memoryless_table(self) -> tuple[ReferenceScores, dict[int, int], int]:
        """Best guess of the label from the last input alone, over the task's split.

        Without ``extra_step`` a memoryless policy sees the last pixel when it must answer, so its
        best guess is the most frequent label for each last-pixel value; with ``extra_step`` it
        sees a blank and can only guess the split's majority class. Sampling is uniform over the
        split, so the expected accuracy is exact.
        """
        if self._reference is None:
            labels = self.data.labels[self.split]
            majority = int(np.bincount(labels, minlength=self.num_outputs).argmax())
            if self.extra_step:
                table, correct = {}, int(np.sum(labels == majority))
            else:
                values, inverse = np.unique(self._last_step_codes(self.data.images[self.split]), return_inverse=True)
                joint = np.zeros((len(values), self.num_outputs), dtype=np.int64)
                np.add.at(joint, (inverse, labels), 1)
                table = {int(v): int(c) for v, c in zip(values, joint.argmax(axis=1))}
                correct = int(joint.max(axis=1).sum())
            scores = ReferenceScores(random=1.0 / self.num_outputs, memoryless=correct / len(labels))
            self._reference = (scores, table, majority)
        return self._reference

    def reference_scores(self) -> ReferenceScores:
        """Random: 1 / the number of classes (1/10 for MNIST and CIFAR-10). Memoryless: the best
        guess from the last input (see :meth:`_memoryless_table`; about the majority-class
        frequency). Optimal: 1."""
        return self._memoryless_table()[0]

    def memoryless_prediction(self, inputs_t: np.ndarray, t: int) -> np.ndarray:
        _, table, majority = self._memoryless_table()
        B = inputs_t.shape[0]
        if self.extra_step or t != self.max_length - 1:
            return np.full(B, majority, dtype=np.int64)
        if self.pixels == "float":
            values = np.rint(np.asarray(inputs_t, dtype=np.float64).reshape(B, -1) * (LEVELS - 1)).astype(np.int64)
        else:
            values = np.asarray(inputs_t, dtype=np.int64).reshape(B, 1)
        codes = values @ (LEVELS ** np.arange(values.shape[1], dtype=np.int64))
        return np.array([table.get(int(c), majority) for c in codes], dtype=np.int64)


#: Image sides an MNIST task can be shrunk to (the divisors of 28).
MNIST_SIDES = (28, 14, 7, 4, 2, 1)


def shrink(images: np.ndarray, side: int) -> np.ndarray:
    """``uint8 [N, 28, 28]`` images averaged over ``28/side``-pixel blocks: ``[N, side, side]``."""
    images = images.reshape(len(images), 28, 28)
    if side == 28:
        return images
    f = 28 // side
    blocks = images.reshape(len(images), side, f, side, f).astype(np.float32).mean(axis=(2, 4))
    return np.rint(blocks).astype(np.uint8)


class SequentialMNISTTask(PixelSequenceTask):
    """Sequential MNIST (sMNIST): read a handwritten digit one pixel per step, then name it.

    ## Description
    The 28x28 image is shown row by row, one pixel per step (784 steps); the digit's class is
    scored at the last step (docs/tasks.md#pixel-mnist). With ``extra_step=True`` a blank 785th step is
    appended and the class is scored there instead, as in the NRU code. Data: local MNIST files
    or the embedded 5,000 real digits (see :mod:`memenvs.data.mnist`, which documents the fixed
    train / validation / test splits).

    ## Observation Space
    ``pixels="float"`` (default): ``Box(0, 1, (1,))``, the intensity / 255 (NRU code).
    ``pixels="tokens"``: 256 intensity symbols (the auxiliary-loss paper embeds them), one-hot
    ``Box(0, 1, (256,))`` or ``Discrete(256)`` with ``obs_mode="index"``; with ``extra_step`` a
    257th symbol marks the blank last step.

    ## Action Space
    ``Discrete(10)``: the predicted digit (only the action at the last step is scored).

    ## Rewards
    1 for the right digit at the last step, else 0. Reference returns: random 0.1; memoryless
    (the best guess from the last input, about the majority-class frequency) and optimal 1.

    ## Episode End
    Terminates after 784 steps (785 with ``extra_step``).

    ## Arguments
    - ``split`` ("train" | "validation" | "test", default "train"): which images episodes use.
    - ``pixels`` ("float" | "tokens", default "float").
    - ``extra_step`` (bool, default False): append a blank step and score the class there.
      False keeps the standard 784-step definition (docs/tasks.md#pixel-mnist); True matches the NRU code.
    - ``side`` (int dividing 28, default 28): show the image shrunk to ``side x side`` by
      averaging ``28/side``-pixel blocks (14 gives 196 steps): the same task at a cost a small
      CPU can afford, for the small-scale experiments; 28 is the papers' task.
    - ``data_dir`` (str | None, default None): MNIST location; None looks at ``$MEMENVS_DATA``,
      then the embedded default.

    Use :meth:`iterate` to evaluate on a whole split in order.

    ## Version History
    - v0: initial version.
    """

    def __init__(
        self,
        split: Split = "train",
        pixels: PixelMode = "float",
        extra_step: bool = False,
        data_dir: str | Path | None = None,
        side: int = 28,
    ) -> None:
        self.side = check_choice("side", side, MNIST_SIDES)
        data = load_mnist(data_dir)
        self._setup(data, split, pixels, extra_step, steps=self.side**2, features=1, row=self.side)
        self.data_dir = None if data_dir is None else str(data_dir)
        self._store_kwargs(split=self.split, pixels=self.pixels, extra_step=self.extra_step, data_dir=self.data_dir,
                           side=self.side)

    def pixel_sequences(self, images: np.ndarray) -> np.ndarray:
        return shrink(images, self.side).reshape(len(images), self.side**2, 1)


class PermutedMNISTTask(SequentialMNISTTask):
    """Permuted sequential MNIST (pMNIST / psMNIST): sMNIST with the pixels in a fixed random order.

    ## Description
    As :class:`SequentialMNISTTask`, but the 784 pixel positions are shown in one fixed random
    order, the same for every image, split, process and machine (docs/tasks.md#pixel-mnist). The permutation
    spreads the informative centre pixels over the whole sequence, so dependencies are long
    everywhere. It is ``np.random.RandomState(permutation_seed).permutation(784)`` (RandomState's
    stream is frozen across numpy versions), exposed as ``task.permutation``: step ``t`` shows
    pixel ``permutation[t]`` of the row-major image.

    ## Observation Space / Action Space / Rewards / Episode End
    As :class:`SequentialMNISTTask`. The memoryless reference is higher than for sMNIST when the
    last permuted pixel is informative.

    ## Arguments
    - ``permutation_seed`` (int ≥ 0, default 50): seed of the permutation; 50 is the seed of the
      NRU code's MNIST RNG (docs/tasks.md#pixel-mnist), whose exact draw order we do not reproduce.
    - ``split``, ``pixels``, ``extra_step``, ``data_dir``, ``side``: as :class:`SequentialMNISTTask`
      (with ``side`` the permutation is of the ``side**2`` shrunk pixels).

    ## Version History
    - v0: initial version.
    """

    def __init__(
        self,
        split: Split = "train",
        pixels: PixelMode = "float",
        extra_step: bool = False,
        permutation_seed: int = 50,
        data_dir: str | Path | None = None,
        side: int = 28,
    ) -> None:
        self.permutation_seed = check_int("permutation_seed", permutation_seed, low=0, high=2**32 - 1)
        side = check_choice("side", side, MNIST_SIDES)
        self.permutation = np.random.RandomState(self.permutation_seed).permutation(side**2)
        self.permutation.flags.writeable = False
        super().__init__(split=split, pixels=pixels, extra_step=extra_step, data_dir=data_dir, side=side)
        self._store_kwargs(
            split=self.split,
            pixels=self.pixels,
            extra_step=self.extra_step,
            permutation_seed=self.permutation_seed,
            data_dir=self.data_dir,
            side=self.side,
        )

    def pixel_sequences(self, images: np.ndarray) -> np.ndarray:
        return shrink(images, self.side).reshape(len(images), self.side**2)[:, self.permutation, None]


class SequentialCIFAR10Task(PixelSequenceTask):
    """Sequential CIFAR-10: read a 32x32 colour image pixel by pixel, then name its class.

    ## Description
    The image is shown in row-major pixel order and its class (airplane, automobile, bird, cat,
    deer, dog, frog, horse, ship, truck) is scored at the last step. How the aux-loss paper
    tokenised RGB is not known (docs/aux.md#experiments-and-settings (unverified)), so the layout is a parameter:

    - ``"rgb"`` (default): 1,024 steps, each the pixel's (R, G, B); the most direct analogue of
      sMNIST, keeping one step per pixel.
    - ``"grey"``: 1,024 steps of luminance ``round(0.299 R + 0.587 G + 0.114 B)``.
    - ``"channels"``: 3,072 steps, one channel value per step (R, G, B of pixel 1, then pixel 2, ...).

    Data: the CIFAR-10 binary files in ``data_dir`` or ``$MEMENVS_DATA`` (see
    :mod:`memenvs.data.cifar`; 45,000 / 5,000 / 10,000 images). There is no embedded default:
    without data, making the env raises ``FileNotFoundError`` saying where to put the files.

    ## Observation Space
    ``pixels="float"`` (default): ``Box(0, 1, (3,))`` for "rgb", ``Box(0, 1, (1,))`` otherwise.
    ``pixels="tokens"`` ("grey" and "channels" only): 256 intensity symbols (+1 end symbol with
    ``extra_step``), one-hot or ``Discrete`` with ``obs_mode="index"``.

    ## Action Space
    ``Discrete(10)``: the predicted class (scored at the last step only).

    ## Rewards
    1 for the right class at the last step, else 0. Reference returns: random 0.1; memoryless
    the best guess from the last input; optimal 1.

    ## Episode End
    Terminates after 1,024 (or 3,072) steps, one more with ``extra_step``.

    ## Arguments
    - ``split`` ("train" | "validation" | "test", default "train").
    - ``layout`` ("rgb" | "grey" | "channels", default "rgb").
    - ``pixels`` ("float" | "tokens", default "float").
    - ``extra_step`` (bool, default False): append a blank step and score the class there.
    - ``data_dir`` (str | None, default None): folder with the binary batches (or its parent).

    ## Version History
    - v0: initial version.
    """

    def __init__(
        self,
        split: Split = "train",
        layout: Layout = "rgb",
        pixels: PixelMode = "float",
        extra_step: bool = False,
        data_dir: str | Path | None = None,
    ) -> None:
        self.layout = check_choice("layout", layout, ("rgb", "grey", "channels"))
        check_choice("pixels", pixels, ("float", "tokens"))
        check_choice("split", split, SPLITS)
        if self.layout == "rgb" and pixels == "tokens":
            raise ValueError("pixels='tokens' is not allowed with layout='rgb' (3 values per step): use 'grey' or 'channels'")
        data = load_cifar10(data_dir)
        steps, features = {"rgb": (1024, 3), "grey": (1024, 1), "channels": (3072, 1)}[self.layout]
        self._setup(data, split, pixels, extra_step, steps=steps, features=features, row=steps // 32)
        self.data_dir = None if data_dir is None else str(data_dir)
        self._store_kwargs(
            split=self.split, layout=self.layout, pixels=self.pixels, extra_step=self.extra_step, data_dir=self.data_dir
        )

    def pixel_sequences(self, images: np.ndarray) -> np.ndarray:
        rgb = images.reshape(len(images), 3, 1024).transpose(0, 2, 1)  # [B, pixel, channel]
        if self.layout == "rgb":
            return rgb
        if self.layout == "grey":
            grey = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            return np.clip(np.rint(grey), 0, LEVELS - 1).astype(np.uint8)[:, :, None]
        return rgb.reshape(len(images), 3072, 1)


def _register() -> None:
    register_task("SequentialMNIST-v0", "memenvs.tasks.pixels:SequentialMNISTTask")
    register_task("PermutedMNIST-v0", "memenvs.tasks.pixels:PermutedMNISTTask")
    register_task("SequentialCIFAR10-v0", "memenvs.tasks.pixels:SequentialCIFAR10Task")


_register()
