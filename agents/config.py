"""What the run configurations of both harnesses share (:class:`agents.supervised.TrainConfig`,
:class:`agents.rl.RLConfig`): a JSON round trip that refuses unknown fields, common checks, and the
names of the model builder's choices. Imports nothing heavy (no torch)."""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

Config = TypeVar("Config", bound="RunConfig")

#: Input encoders of :func:`agents.models.make_encoder` (named here, without torch, so that a run
#: config's flags list them).
EncoderName = Literal["auto", "onehot", "embedding", "linear"]
ENCODERS: tuple[str, ...] = typing.get_args(EncoderName)
#: Readout initialisations of :class:`agents.models.SequenceModel`.
ReadoutInit = Literal["default", "xavier"]
READOUT_INITS: tuple[str, ...] = typing.get_args(ReadoutInit)


class RunConfig:
    """Mixin for a run's config dataclass: saved as the run's ``config.json``."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[Config], data: Mapping[str, Any]) -> Config:
        """Build from a dict (e.g. a run's config.json); unknown keys raise ValueError."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} field(s) {', '.join(unknown)}: allowed are {', '.join(sorted(names))}")
        return cls(**data)

    def check_names_and_kwargs(self) -> None:
        """ValueError unless ``task``, ``cell`` and ``device`` are non-empty strings and every
        ``*_kwargs`` field is a mapping with string keys (stored as a plain dict)."""
        for name in ("task", "cell", "device"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name}={getattr(self, name)!r} must be a non-empty string")
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name.endswith("_kwargs"):
                value = getattr(self, f.name)
                if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
                    raise ValueError(f"{f.name}={value!r} must be a dict with string keys")
                setattr(self, f.name, dict(value))

    def check_json(self) -> None:
        """ValueError unless the config can be written as JSON (called by ``__post_init__``)."""
        try:
            json.dumps(self.to_dict())
        except (TypeError, ValueError) as err:
            raise ValueError(f"the config must be JSON-serialisable (check the *_kwargs values): {err}") from None
