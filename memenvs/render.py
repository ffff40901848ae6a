"""Rendering shared by every memenvs env: a text picture, and the same picture as an RGB image.

An env draws its state as a :class:`Picture`: a grid of one-character cells (the maze, the
episode's symbols step by step, the cart and pole), each row with an optional text label, plus
header and footer lines of text. ``render_mode="ansi"`` returns the whole picture as a string;
``"rgb_array"`` paints each grid cell as a ``CELL x CELL`` block of the cell character's colour
(:func:`cell_colour`: the shade characters are grey levels, a few characters have fixed meanings,
every other character a hue of its own) and leaves the labels and text lines out. Numpy only.

Sequence episodes are drawn with :func:`sequence_rows`: rows of one character per step (inputs,
targets, predictions), wrapped into blocks of a fixed number of steps, each block's first label
giving its first step.
"""

from __future__ import annotations

import colorsys
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The render modes every memenvs env supports (Gymnasium's text and image conventions).
RENDER_MODES = ("ansi", "rgb_array")
#: Frames per second recorded videos of sequence tasks play at (``metadata["render_fps"]``).
RENDER_FPS = 10
#: Side of one grid cell in ``rgb_array`` images, in pixels.
CELL = 6
#: Grey ramp from blank (white) to full (black), for real values.
SHADES = " .:-=+*#%@"
#: Characters of symbol ids 0, 1, 2, ...; larger ids are drawn as ``"?"``.
SYMBOLS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: At most this many steps of an episode are drawn (the most recent ones).
MAX_SHOWN_STEPS = 4096

#: Colours of characters with a fixed meaning: agent, goal, wrong arm (T-maze), pole, cart wheels.
FIXED_COLOURS: dict[str, tuple[int, int, int]] = {
    "A": (40, 90, 220),
    "G": (30, 170, 60),
    "X": (210, 40, 40),
    "|": (170, 120, 70),
    "?": (230, 150, 0),
}


def check_render_mode(render_mode: Any) -> str | None:
    """Return ``render_mode`` if it is None or one of :data:`RENDER_MODES`, else raise ValueError
    naming the parameter, the value and the allowed values."""
    if render_mode is None or (isinstance(render_mode, str) and render_mode in RENDER_MODES):
        return render_mode
    allowed = ", ".join(map(repr, (None,) + RENDER_MODES))
    raise ValueError(f"render_mode={render_mode!r} is not allowed: choose one of {allowed}")


@functools.lru_cache(maxsize=512)
def cell_colour(char: str) -> tuple[int, int, int]:
    """The RGB colour of one grid character in ``rgb_array`` images."""
    if char in FIXED_COLOURS:
        return FIXED_COLOURS[char]
    if char in SHADES:
        level = 255 - round(255 * SHADES.index(char) / (len(SHADES) - 1))
        return (level, level, level)
    hue = (ord(char) * 0.6180339887) % 1.0  # golden-ratio steps keep neighbouring symbols apart
    r, g, b = colorsys.hsv_to_rgb(hue, 0.65, 0.9)
    return (round(255 * r), round(255 * g), round(255 * b))


@dataclass
class Picture:
    """A text picture: ``rows`` of ``(label, cells)`` between ``header`` and ``footer`` lines.

    ``cells`` holds one character per grid cell; ``label`` is text shown left of the row in the
    ``ansi`` picture only.
    """

    rows: list[tuple[str, str]] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    footer: list[str] = field(default_factory=list)

    def text(self) -> str:
        """The ``ansi`` picture: header, labelled rows, footer, one per line."""
        width = max((len(label) for label, _ in self.rows), default=0)
        body = [(f"{label:<{width}} " if width else "") + cells for label, cells in self.rows]
        return "\n".join(self.header + [line.rstrip() for line in body] + self.footer)

    def rgb(self) -> np.ndarray:
        """The ``rgb_array`` image: ``uint8 [rows·CELL, columns·CELL, 3]``, one block per cell
        (at least one blank cell)."""
        height = max(len(self.rows), 1)
        width = max((len(cells) for _, cells in self.rows), default=1) or 1
        codes = np.full((height, width), ord(" "), dtype=np.int64)
        for i, (_, cells) in enumerate(self.rows):
            if cells:
                codes[i, : len(cells)] = np.frombuffer(cells.encode("utf-32-le"), dtype=np.uint32)
        chars, inverse = np.unique(codes, return_inverse=True)
        palette = np.array([cell_colour(chr(c)) for c in chars], dtype=np.uint8)
        image = palette[inverse.reshape(height, width)]
        return np.repeat(np.repeat(image, CELL, axis=0), CELL, axis=1)

    def render(self, mode: str) -> str | np.ndarray:
        """The picture in a render mode of :data:`RENDER_MODES`."""
        return self.text() if mode == "ansi" else self.rgb()


def symbol_text(ids: np.ndarray, blank: int | None = None, special: dict[int, str] | None = None) -> str:
    """One character per symbol id: ``SYMBOLS[id]``, ``"."`` for the ``blank`` id, ``special``
    characters for chosen ids, ``"?"`` beyond :data:`SYMBOLS`."""
    chars = np.array(list(SYMBOLS) + ["?"])
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    out = chars[np.clip(ids, 0, len(SYMBOLS))]
    if blank is not None:
        out[ids == blank] = "."
    for symbol, char in (special or {}).items():
        out[ids == symbol] = char
    return "".join(out)


def shade_text(values: np.ndarray, low: float, high: float) -> str:
    """One grey-ramp character per value of ``values`` scaled from ``[low, high]`` (the range of
    the values themselves where a bound is infinite)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        return ""
    if not np.isfinite(low):
        low = float(np.min(values))
    if not np.isfinite(high):
        high = float(np.max(values))
    span = high - low if high > low else 1.0
    levels = np.rint(np.clip((values - low) / span, 0.0, 1.0) * (len(SHADES) - 1)).astype(np.int64)
    return "".join(np.array(list(SHADES))[levels])


def sequence_rows(rows: Sequence[tuple[str, str]], width: int) -> tuple[list[tuple[str, str]], list[str]]:
    """Wrap per-step rows into blocks of ``width`` steps.

    ``rows`` are ``(name, cells)`` with one character per step, all of the same length (the
    first row is the input and is always drawn; a later row is left out of a block where it is
    blank). Each block's first label shows its first step; blocks of several rows are separated
    by an empty row. Only the last :data:`MAX_SHOWN_STEPS` steps (rounded to whole blocks) are
    drawn; the returned notes say so when steps were left out.
    """
    steps = max((len(cells) for _, cells in rows), default=0)
    first = 0
    notes = []
    if steps > MAX_SHOWN_STEPS:
        first = (steps - MAX_SHOWN_STEPS + width - 1) // width * width
        notes.append(f"(steps 0-{first - 1} not shown)")
    digits = len(str(max(steps - 1, 0)))
    out: list[tuple[str, str]] = []
    previous_size = 0
    for start in range(first, max(steps, 1), width):
        block = [(name, cells[start : start + width]) for name, cells in rows]
        block = block[:1] + [(name, cells) for name, cells in block[1:] if cells.strip()]
        if out and max(previous_size, len(block)) > 1:
            out.append(("", ""))
        for i, (name, cells) in enumerate(block):
            out.append((f"{start if i == 0 else '':>{digits}} {name}", cells))
        previous_size = len(block)
    return out, notes
