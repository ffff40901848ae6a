"""POPGym-style card-recall tasks (Morad et al., ICLR 2023) as sequence tasks.

Each episode deals every card of ``num_decks`` shuffled 52-card decks, one per step, without
replacement (as POPGym does). The agent must recall something about cards seen earlier. Rewards
follow POPGym: ``+1/S`` for a correct answer and ``-1/S`` for a wrong one on each of the ``S``
scored steps, so returns lie in [-1, 1] and a uniformly random answer over four suits scores -0.5.

Because the cards do not depend on the agent's actions, these are :class:`SequenceTask` s: the
supervised harness calls ``sample()``, and the RL harness gets ``TaskEnv`` / ``TaskVectorEnv``.

Card ``j`` of the ``52·num_decks`` cards has suit ``j % 4``, rank ``(j // 4) % 13`` and colour
``suit % 2``, so every suit appears ``13·num_decks`` times, every rank ``4·num_decks`` times and
every colour ``26·num_decks`` times.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from memenvs.core import (
    ReferenceScores,
    SequenceBatch,
    SequenceTask,
    check_choice,
    check_int,
    register_task,
)
from memenvs.render import symbol_text

CARDS_PER_DECK = 52
SUITS = 4
MAX_DECKS = 64
CardFeature = Literal["colors", "suits", "ranks"]
#: Number of distinct values of each card feature.
FEATURE_VALUES: dict[str, int] = {"colors": 2, "suits": 4, "ranks": 13}
#: How ``render()`` draws each feature's values: black / red, spades hearts clubs diamonds (even
#: suits black, as colour = suit % 2), ace to king; ``?`` is Autoencode's play cue.
FEATURE_CHARS: dict[str, str] = {"colors": "BR", "suits": "SHCD", "ranks": "A23456789TJQK"}


def _feature_text(values: np.ndarray, feature: CardFeature) -> str:
    chars = np.array(list(FEATURE_CHARS[feature]) + ["?"])
    return "".join(chars[np.clip(np.asarray(values, dtype=np.int64).reshape(-1), 0, len(chars) - 1)])


def deal(num_decks: int, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """Card ids ``[52·num_decks, batch_size]``: each column is an independently shuffled shoe.

    A uniform random permutation as the ranks of i.i.d. uniforms: one generator call however
    many shoes, which keeps the vector env's per-env restarts (one call per env) cheap.
    """
    return rng.random((batch_size, CARDS_PER_DECK * num_decks)).argsort(axis=1).T


def card_feature(cards: np.ndarray, feature: CardFeature) -> np.ndarray:
    """The colour, suit or rank index of card ids."""
    if feature == "suits":
        return cards % SUITS
    if feature == "colors":
        return cards % SUITS % 2
    return (cards // SUITS) % 13


class _CardTask(SequenceTask):
    """Shared parts: the deck size, dealing, POPGym's ±1/S rewards.

    Subclasses implement :meth:`_episodes`, which lays out episodes from dealt cards; dealing is
    separate so that :meth:`sample_each` (the vector env's restarts) deals from each env's own
    generator and lays out all restarting episodes in one vectorised pass.
    """

    def _deal(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """Card ids ``[..., 52·num_decks, batch_size]`` for ``batch_size`` episodes."""
        return deal(self.num_decks, batch_size, rng)

    def _episodes(self, cards: np.ndarray) -> SequenceBatch:
        raise NotImplementedError

    def sample(self, batch_size: int, rng: np.random.Generator) -> SequenceBatch:
        return self._episodes(self._deal(batch_size, rng))

    def sample_each(self, rngs: Sequence[np.random.Generator]) -> SequenceBatch:
        return self._episodes(np.concatenate([self._deal(1, rng) for rng in rngs], axis=-1))

    def _check_decks(self, num_decks: int) -> int:
        self.num_decks = check_int("num_decks", num_decks, low=1, high=MAX_DECKS)
        self.num_cards = CARDS_PER_DECK * self.num_decks
        return self.num_decks

    def render_inputs(self, inputs: np.ndarray) -> list[tuple[str, str]]:
        """Suits as ``S H C D`` (and Autoencode's play cue as ``?``)."""
        return [("in", _feature_text(inputs, "suits"))]

    def render_targets(self, values: np.ndarray) -> str:
        return _feature_text(values, "suits")

    def step_reward(self, prediction: np.ndarray, target: np.ndarray, scored_count: np.ndarray) -> np.ndarray:
        """``+1/S`` for a correct answer, ``-1/S`` for a wrong one (POPGym's scaling)."""
        return np.where(prediction == target, 1.0, -1.0) / scored_count

    def _other_suit_return(self) -> float:
        """Expected return of guessing a suit other than the one on the table.

        Cards are dealt without replacement, so given the suit ``s`` now showing, an earlier card
        is another given suit with probability ``13n/(52n - 1)`` (``n`` decks), slightly more
        than 1/4. Each step then earns ``2p - 1``.
        """
        p = 13 * self.num_decks / (self.num_cards - 1)
        return 2.0 * p - 1.0


class RepeatPreviousTask(_CardTask):
    """Repeat Previous: output the suit of the card dealt ``k`` steps ago.

    ## Description
    One card of a shuffled shoe of ``num_decks`` decks is shown per step; from step ``k`` on the
    agent must name the suit of the card shown ``k`` steps earlier (POPGym's RepeatPrevious). The
    memory needed is a sliding window of ``k`` suits.

    ## Observation Space
    The suit of the current card: ``Box(0, 1, (4,))`` one-hot (default) or ``Discrete(4)`` with
    ``obs_mode="index"``.

    ## Action Space
    ``Discrete(4)``: the suit dealt ``k`` steps ago (ignored during the first ``k`` steps).

    ## Rewards
    ``±1/(52·num_decks - k)`` for a right / wrong suit on each scored step; return in [-1, 1].
    Random: -0.5. Best memoryless (name a suit other than the current one, since cards are drawn
    without replacement): ``(1 - 26n)/(52n - 1)``, -25/51 for one deck. Optimal: 1.

    ## Episode End
    Terminates after all ``52·num_decks`` cards are dealt.

    ## Arguments
    - ``num_decks`` (int in [1, 64], default 1): decks in the shoe; sets the episode length.
    - ``k`` (int in [1, 52·num_decks - 1], default 4): how many steps back to recall.
      POPGym presets: Easy (1, 4), Medium (2, 32), Hard (3, 64).

    ## Version History
    - v0: initial version. Differs from POPGym only in the first step: POPGym's first action is
      taken after the first card; here step ``t`` shows card ``t``, so the episode has
      ``52·num_decks`` steps and the same ``52·num_decks - k`` scored answers.
    """

    length_knob = "k"

    def __init__(self, num_decks: int = 1, k: int = 4) -> None:
        self._check_decks(num_decks)
        self.k = check_int("k", k, low=1, high=self.num_cards - 1)
        self._store_kwargs(num_decks=self.num_decks, k=self.k)
        self.num_inputs = SUITS
        self.num_outputs = SUITS
        self.max_length = self.num_cards

    def _episodes(self, cards: np.ndarray) -> SequenceBatch:
        suits = card_feature(cards, "suits")
        targets = np.zeros_like(suits)
        targets[self.k :] = suits[: -self.k]
        mask = np.zeros(suits.shape, dtype=bool)
        mask[self.k :] = True
        return SequenceBatch(suits, targets, mask)

    def reference_scores(self) -> ReferenceScores:
        return ReferenceScores(random=-0.5, memoryless=self._other_suit_return())

    def memoryless_prediction(self, inputs_t: np.ndarray, t: int) -> np.ndarray:
        """Any suit except the one showing (it is one card less likely to be the answer)."""
        return (_symbols(inputs_t) + 1) % SUITS


class RepeatFirstTask(_CardTask):
    """Repeat First: keep naming the suit of the very first card.

    ## Description
    One card of a shuffled shoe is shown per step; from step 1 on the agent must name the suit
    of the first card (POPGym's RepeatFirst). The memory needed is one suit, held for the whole
    episode while new cards keep arriving.

    ## Observation Space
    The suit of the current card: ``Box(0, 1, (4,))`` one-hot (default) or ``Discrete(4)``.

    ## Action Space
    ``Discrete(4)``: the suit of the first card (ignored at step 0).

    ## Rewards
    ``±1/(52·num_decks - 1)`` per step from step 1; return in [-1, 1]. Random: -0.5; best
    memoryless (a suit other than the one showing): ``(1 - 26n)/(52n - 1)``; optimal: 1.

    ## Episode End
    Terminates after all ``52·num_decks`` cards are dealt.

    ## Arguments
    - ``num_decks`` (int in [1, 64], default 1): decks in the shoe = episode length / 52.
      POPGym presets: Easy 1, Medium 8, Hard 16.

    ## Version History
    - v0: initial version.
    """

    length_knob = "num_decks"

    def __init__(self, num_decks: int = 1) -> None:
        self._check_decks(num_decks)
        self._store_kwargs(num_decks=self.num_decks)
        self.num_inputs = SUITS
        self.num_outputs = SUITS
        self.max_length = self.num_cards

    def _episodes(self, cards: np.ndarray) -> SequenceBatch:
        suits = card_feature(cards, "suits")
        targets = np.broadcast_to(suits[:1], suits.shape).copy()
        mask = np.ones(suits.shape, dtype=bool)
        mask[0] = False
        return SequenceBatch(suits, targets, mask)

    def reference_scores(self) -> ReferenceScores:
        return ReferenceScores(random=-0.5, memoryless=self._other_suit_return())

    def memoryless_prediction(self, inputs_t: np.ndarray, t: int) -> np.ndarray:
        """Any suit except the one showing."""
        return (_symbols(inputs_t) + 1) % SUITS


class AutoencodeTask(_CardTask):
    """Autoencode: watch a whole shoe, then recite its suits in reverse order.

    ## Description
    Watch phase: ``52·num_decks`` steps each show one card's suit. Play phase: the next
    ``52·num_decks`` steps show a "play" cue, and at play step ``j`` the agent must name the
    suit of the ``j``-th card from the end (POPGym's Autoencode, a backwards Simon). The memory
    needed is the whole sequence, read out as a stack.

    ## Observation Space
    ``Box(0, 1, (5,))`` one-hot (default) or ``Discrete(5)``: symbols 0-3 are suits, 4 is the
    play cue.

    ## Action Space
    ``Discrete(4)``: the suit to recite (ignored during the watch phase).

    ## Rewards
    ``±1/(52·num_decks)`` per play step; return in [-1, 1]. Random and best memoryless: -0.5
    (the cue carries no information, every suit is equally likely); optimal: 1.

    ## Episode End
    Terminates after ``2·52·num_decks`` steps.

    ## Arguments
    - ``num_decks`` (int in [1, 64], default 1): decks to memorise. POPGym presets: Easy 1,
      Medium 2, Hard 3.

    ## Version History
    - v0: initial version. POPGym shows the last watched card together with the play flag (a
      Tuple observation, ``2·52n - 1`` steps); here the play phase has its own cue symbol so the
      observation is a single Discrete / one-hot symbol.
    """

    length_knob = "num_decks"

    def __init__(self, num_decks: int = 1) -> None:
        self._check_decks(num_decks)
        self._store_kwargs(num_decks=self.num_decks)
        self.num_inputs = SUITS + 1
        self.num_outputs = SUITS
        self.max_length = 2 * self.num_cards

    @property
    def play_cue(self) -> int:
        return SUITS

    def _episodes(self, cards: np.ndarray) -> SequenceBatch:
        n, batch_size = cards.shape
        suits = card_feature(cards, "suits")
        inputs = np.full((2 * n, batch_size), self.play_cue, dtype=np.int64)
        inputs[:n] = suits
        targets = np.zeros_like(inputs)
        targets[n:] = suits[::-1]
        mask = np.zeros(inputs.shape, dtype=bool)
        mask[n:] = True
        return SequenceBatch(inputs, targets, mask)

    def reference_scores(self) -> ReferenceScores:
        return ReferenceScores(random=-0.5, memoryless=-0.5)

    def memoryless_prediction(self, inputs_t: np.ndarray, t: int) -> np.ndarray:
        """A fixed suit: every suit is equally likely at every play step."""
        return np.zeros(inputs_t.shape[0], dtype=np.int64)


class CountRecallTask(_CardTask):
    """Count Recall: how many cards of the queried value have been dealt so far?

    ## Description
    Two shoes of ``num_decks`` decks are shuffled independently. At step ``t`` the agent sees a
    dealt card ``v_t`` from the first and a query card ``q_t`` from the second (both reduced to
    ``feature``: colour, suit or rank) and must answer how many of the dealt cards
    ``v_0 .. v_t`` had the value ``q_t`` (POPGym's CountRecall). The memory needed is a count
    per value, an order-free set memory.

    ## Observation Space
    ``Box(0, 1, (2·D,))``: one-hot of the dealt value followed by one-hot of the query value,
    ``D`` = 2 colours, 4 suits or 13 ranks.

    ## Action Space
    ``Discrete(M + 1)``, ``M = 52·num_decks / D`` the number of cards of each value: the count.

    ## Rewards
    ``±1/(52·num_decks)`` per step; return in [-1, 1]. Random: ``2/(M + 1) - 1``.
    Best memoryless: given ``t`` and whether ``v_t == q_t`` (probability ``1/D``, the shoes are
    independent), the earlier count is hypergeometric (``t`` draws from the other
    ``52n - 1`` cards holding ``M - 1`` or ``M`` of the value); the policy answers its mode, see
    :meth:`_memoryless_table`. Optimal: 1.

    ## Episode End
    Terminates after all ``52·num_decks`` cards are dealt.

    ## Arguments
    - ``num_decks`` (int in [1, 64], default 1): decks per shoe.
    - ``feature`` ("colors" | "suits" | "ranks", default "colors"): what is counted.
      POPGym presets: Easy (1, colors), Medium (2, suits), Hard (4, ranks).

    ## Version History
    - v0: initial version. Every step is scored (POPGym leaves the last query unanswered) and
      the observation is a Box of two one-hots instead of a MultiDiscrete.
    """

    input_kind = "real"
    length_knob = "num_decks"
    input_low = 0.0
    input_high = 1.0

    def __init__(self, num_decks: int = 1, feature: CardFeature = "colors") -> None:
        self._check_decks(num_decks)
        self.feature = check_choice("feature", feature, tuple(FEATURE_VALUES))
        self._store_kwargs(num_decks=self.num_decks, feature=self.feature)
        self.num_values = FEATURE_VALUES[self.feature]
        self.copies = self.num_cards // self.num_values
        self.num_inputs = 2 * self.num_values
        self.num_outputs = self.copies + 1
        self.max_length = self.num_cards
        self._guess, self._memoryless = self._memoryless_table()

    def _deal(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """Two independent shoes ``[2, 52·num_decks, batch_size]``: dealt cards, query cards."""
        return np.stack([deal(self.num_decks, batch_size, rng), deal(self.num_decks, batch_size, rng)])

    def _episodes(self, cards: np.ndarray) -> SequenceBatch:
        values, queries = card_feature(cards, self.feature)
        eye = np.eye(self.num_values, dtype=np.float32)
        inputs = np.concatenate([eye[values], eye[queries]], axis=-1)
        counts = np.cumsum(eye[values], axis=0, dtype=np.int64)
        targets = np.take_along_axis(counts, queries[..., None], axis=-1)[..., 0]
        mask = np.ones(values.shape, dtype=bool)
        return SequenceBatch(inputs, targets, mask)

    def render_inputs(self, inputs: np.ndarray) -> list[tuple[str, str]]:
        """The dealt card's value and the query's (colours ``B R``, suits ``S H C D``, ranks
        ``A 2 .. K``)."""
        D = self.num_values
        cards, queries = inputs[:, :D].argmax(axis=1), inputs[:, D:].argmax(axis=1)
        return [("card", _feature_text(cards, self.feature)), ("query", _feature_text(queries, self.feature))]

    def render_targets(self, values: np.ndarray) -> str:
        """Counts as ``0..9 a..z A..Z`` (``?`` above 61)."""
        return symbol_text(values)

    def _memoryless_table(self) -> tuple[np.ndarray, float]:
        """Best memoryless answers ``guess[same, t]`` and their expected return.

        At step ``t`` the count is ``[v_t == q_t]`` plus the number of the value among the
        ``t`` earlier cards, a hypergeometric draw of ``t`` from the ``N - 1`` other cards that
        hold ``K = M - 1`` (same) or ``M`` (different) of it. Its mode is
        ``floor((t + 1)(K + 1)/(N + 1))`` and its probability the chance the guess is right.
        """
        N, M = self.num_cards, self.copies
        t = np.arange(N)
        guess = np.zeros((2, N), dtype=np.int64)
        right = np.zeros((2, N))
        for same, K in ((1, M - 1), (0, M)):
            mode = (t + 1) * (K + 1) // (N + 1)
            guess[same] = mode + same
            right[same] = [_hypergeom_pmf(int(m), N - 1, K, int(n)) for m, n in zip(mode, t)]
        p_same = 1.0 / self.num_values
        correct = p_same * right[1] + (1.0 - p_same) * right[0]
        return guess, float(np.sum(2.0 * correct - 1.0) / N)

    def reference_scores(self) -> ReferenceScores:
        return ReferenceScores(random=2.0 / (self.copies + 1) - 1.0, memoryless=self._memoryless)

    def memoryless_prediction(self, inputs_t: np.ndarray, t: int) -> np.ndarray:
        """The most likely count given the step and whether the dealt card matches the query."""
        D = self.num_values
        same = inputs_t[:, :D].argmax(axis=1) == inputs_t[:, D:].argmax(axis=1)
        return self._guess[same.astype(np.int64), t]


def _hypergeom_pmf(k: int, population: int, successes: int, draws: int) -> float:
    """P(k successes in ``draws`` draws without replacement), via log-gamma (no scipy)."""
    if k < max(0, draws + successes - population) or k > min(draws, successes):
        return 0.0

    def log_comb(n: int, r: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(r + 1) - math.lgamma(n - r + 1)

    log_p = log_comb(successes, k) + log_comb(population - successes, draws - k) - log_comb(population, draws)
    return math.exp(log_p)


def _symbols(inputs_t: np.ndarray) -> np.ndarray:
    """Symbol ids ``[B]`` from a batch of symbol inputs (``sample()`` gives ids, not one-hots)."""
    return inputs_t if inputs_t.ndim == 1 else inputs_t.argmax(axis=-1)


def _register() -> None:
    module = "memenvs.tasks.cards"
    previous = f"{module}:RepeatPreviousTask"
    register_task("RepeatPrevious-v0", previous)
    register_task("RepeatPreviousEasy-v0", previous, num_decks=1, k=4)
    register_task("RepeatPreviousMedium-v0", previous, num_decks=2, k=32)
    register_task("RepeatPreviousHard-v0", previous, num_decks=3, k=64)
    first = f"{module}:RepeatFirstTask"
    register_task("RepeatFirst-v0", first)
    register_task("RepeatFirstEasy-v0", first, num_decks=1)
    register_task("RepeatFirstMedium-v0", first, num_decks=8)
    register_task("RepeatFirstHard-v0", first, num_decks=16)
    count = f"{module}:CountRecallTask"
    register_task("CountRecall-v0", count)
    register_task("CountRecallEasy-v0", count, num_decks=1, feature="colors")
    register_task("CountRecallMedium-v0", count, num_decks=2, feature="suits")
    register_task("CountRecallHard-v0", count, num_decks=4, feature="ranks")
    autoencode = f"{module}:AutoencodeTask"
    register_task("Autoencode-v0", autoencode)
    register_task("AutoencodeEasy-v0", autoencode, num_decks=1)
    register_task("AutoencodeMedium-v0", autoencode, num_decks=2)
    register_task("AutoencodeHard-v0", autoencode, num_decks=3)


_register()
