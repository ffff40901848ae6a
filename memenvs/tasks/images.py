"""Pixel-by-pixel classification of images from a local folder tree: StanfordDogs in the
auxiliary-loss paper, sequences of up to about 16,000 steps (docs/aux.md#experiments-and-settings).

The episodes, splits pass and reference scores are those of every pixel task
(:class:`~memenvs.tasks.pixels.PixelSequenceTask`); this module only says how a folder of images
becomes pixel sequences. The folder layouts, splits, resizing and decoding cost are documented in
:mod:`memenvs.data.images`.
"""

from __future__ import annotations

import math
import os
from typing import Literal

import numpy as np

from memenvs.core import MAX_EPISODE_LENGTH, check_bool, check_choice, check_int, register_task
from memenvs.data import SPLITS, Split
from memenvs.data.images import load_image_folder
from memenvs.tasks.pixels import PixelMode, PixelSequenceTask

ImageColour = Literal["grey", "rgb", "channels"]
COLOURS = ("grey", "rgb", "channels")


class SequentialImagesTask(PixelSequenceTask):
    """Sequential images: read a photo pixel by pixel, then name its class (e.g. a dog breed).

    ## Description
    Every image of a local folder tree (one sub-folder per class, PNG or JPEG; StanfordDogs'
    ``Images/`` works as unpacked) is centre-cropped to a square, resized to ``side x side``
    (bicubic) and shown in row-major pixel order; its class is scored at the last step. This
    replays the auxiliary-loss paper's StanfordDogs experiment (120 breeds, images resized to
    several resolutions, up to about 16,000 steps: ``side=128`` gives 16,384). ``colour`` sets
    what one step shows, as sequential CIFAR-10's ``layout``:

    - ``"grey"`` (default): ``side**2`` steps of luminance ``round(0.299 R + 0.587 G + 0.114 B)``;
      the paper embeds 256 intensity tokens, so it shows one value per step, and 128x128 grey
      pixels give its ~16,000 steps (how it treated colour is not known);
    - ``"rgb"``: ``side**2`` steps, each the pixel's (R, G, B);
    - ``"channels"``: ``3 * side**2`` steps, one channel value each (R, G, B of pixel 1, then pixel 2, ...).

    Data: ``data_dir`` or ``$MEMENVS_DATA`` (see :mod:`memenvs.data.images` for the layouts, the
    fixed 70 / 10 / 20% splits and the memory cost: StanfordDogs at ``side=128`` holds about
    0.34 GB in grey and 1 GB in RGB once decoded). There is no embedded default: without data, making the env raises
    ``FileNotFoundError`` saying what to put where and how to get StanfordDogs. Each split is
    decoded once per process, when its images are first used (building the task decodes nothing).

    ## Observation Space
    ``pixels="float"`` (default): ``Box(0, 1, (1,))``, or ``Box(0, 1, (3,))`` for "rgb".
    ``pixels="tokens"`` ("grey" and "channels" only): 256 intensity symbols (+1 end symbol with
    ``extra_step``), one-hot or ``Discrete`` with ``obs_mode="index"``.

    ## Action Space
    ``Discrete(number of classes)``: the predicted class, ids in sorted class-folder order
    (``task.classes[id]`` is the folder name); only the action at the last step is scored.

    ## Rewards
    1 for the right class at the last step, else 0. Reference returns: random 1 / number of
    classes; memoryless the best guess from the last input (a table of the most frequent class per
    last-step value over the task's split, as every pixel task); optimal 1. With ``colour="rgb"``
    the last step takes 256**3 values, most of them unique in a photo set, so the table nearly
    memorises the split and this reference is close to 1 (exactly 1 on a small set, where the
    normalised score is undefined); "grey" and "channels" end on one of 256 values.

    ## Episode End
    Terminates after ``side**2`` steps (``3 * side**2`` for "channels"), one more with ``extra_step``.

    ## Arguments
    - ``split`` ("train" | "validation" | "test", default "train").
    - ``side`` (int ≥ 1, default 32): the images' side after resizing (32 gives CIFAR-sized 1,024-step
      episodes; 128 gives the paper's longest, 16,384). It is the task's length knob.
    - ``colour`` ("grey" | "rgb" | "channels", default "grey").
    - ``pixels`` ("float" | "tokens", default "float").
    - ``extra_step`` (bool, default False): append a blank step and score the class there.
    - ``data_dir`` (str | os.PathLike | None, default None): the image folder (or a folder holding it as
      ``images/`` or ``stanford-dogs/``); None looks in ``$MEMENVS_DATA``.

    Use :meth:`iterate` to evaluate on a whole split in order.

    ## Version History
    - v0: initial version.
    """

    length_knob = "side"

    def __init__(
        self,
        split: Split = "train",
        side: int = 32,
        colour: ImageColour = "grey",
        pixels: PixelMode = "float",
        extra_step: bool = False,
        data_dir: str | os.PathLike | None = None,
    ) -> None:
        self.colour = check_choice("colour", colour, COLOURS)
        per_pixel = 3 if self.colour == "channels" else 1
        # The episode (plus the extra step) must fit MAX_EPISODE_LENGTH: side**2 * per_pixel + 1 steps.
        largest = math.isqrt((MAX_EPISODE_LENGTH - 1) // per_pixel)
        steps = "side**2" if per_pixel == 1 else f"{per_pixel}*side**2"
        why = f"an episode has {steps} steps, at most MAX_EPISODE_LENGTH={MAX_EPISODE_LENGTH}"
        self.side = check_int("side", side, low=1, high=largest, why=why)
        check_choice("pixels", pixels, ("float", "tokens"))
        check_choice("split", split, SPLITS)
        check_bool("extra_step", extra_step)
        if self.colour == "rgb" and pixels == "tokens":
            raise ValueError(
                "pixels='tokens' is not allowed with colour='rgb' (3 values per step): use 'grey' or 'channels'"
            )
        if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
            raise ValueError(f"data_dir={data_dir!r} must be a folder path (str or os.PathLike) or None")
        data = load_image_folder(data_dir, self.side, "grey" if self.colour == "grey" else "rgb")
        self.classes: tuple[str, ...] = data.classes
        features = 3 if self.colour == "rgb" else 1
        self._setup(
            data, split, pixels, extra_step, steps=self.side**2 * per_pixel, features=features,
            row=self.side * per_pixel, num_classes=len(data.classes),
        )
        self.data_dir = None if data_dir is None else str(data_dir)
        self._store_kwargs(
            split=self.split, side=self.side, colour=self.colour, pixels=self.pixels, extra_step=self.extra_step,
            data_dir=self.data_dir,
        )

    def pixel_sequences(self, images: np.ndarray) -> np.ndarray:
        """Decoded images ``uint8 [B, side, side, C]`` -> ``[B, steps, features]``, row-major."""
        if self.colour == "channels":
            return images.reshape(len(images), 3 * self.side**2, 1)
        return images.reshape(len(images), self.side**2, images.shape[-1])


def _register() -> None:
    register_task("SequentialImages-v0", "memenvs.tasks.images:SequentialImagesTask")


_register()
