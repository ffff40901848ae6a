"""DocumentClassification-v0 and its DBpedia CSV loader, on small DBpedia-layout files written here.

Every expectation is recomputed from the rows below with plain Python (the texts, the held-out
rows, the vocabulary, the last shown unit of each document), never read back from the loader.
"""

from __future__ import annotations

import pickle
import re
from collections import Counter
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import memenvs
from memenvs.data import DATA_ENV, available
from memenvs.data import documents as docs_data
from memenvs.tasks.documents import DocumentClassificationTask

ENV_ID = "memenvs/DocumentClassification-v0"
CLASS_NAMES = ("Company", "EducationalInstitution", "NaturalPlace")
#: (1-based class, title, content) of train.csv; contents are written with DBpedia's leading space.
TRAIN = [
    (1, "Acme Corp", 'Acme makes, sells "widgets" and\ngadgets.'),
    (2, "Big School", "A school, founded 1900."),
    (1, "Zeta Ltd", "A company in town."),
    (3, "Mount X", "A mountain, tall!"),
    (2, "Small College", "A college"),
    (3, "Hill Y", ""),
    (1, "Beta Inc", "Beta is a firm."),
    (2, "Uni Z", "A university."),
    (3, "Peak Q", "A peak near the sea."),
    (1, "Gamma LLC", 'Gamma sells software, "mostly".'),
    (2, "Academy W", "An academy for the arts"),
    (3, "River R", "A long river\nin the north"),
    (1, "Delta Group", "Delta trades steel."),
    (2, "Institute V", "Research institute!"),
    (3, "Lake L", "A lake, cold"),
    (1, "Omega plc", "Omega makes cars"),
    (2, "School of Music", "Music school #1."),  # held out: "#" is in no other row
    (3, "Glacier G", "Ice, mostly!"),
    (1, "Café Ñ", "A café"),
    (2, "Seminary S", "A seminary"),  # written unquoted
]
TEST = [
    (1, "Zebra Co", "Zebra makes Ω parts."),
    (3, "Ridge", "A ridge, high"),
    (2, "College K", 'The "K" college'),
    (1, "Acme Two", "Acme again."),
]
HOLDOUT = len(TRAIN) // 10


def quoted(field: str) -> str:
    return '"' + field.replace('"', '""') + '"'


def write_dbpedia(folder: Path, classes: bool = True) -> Path:
    """train.csv / test.csv (and classes.txt) in the DBpedia layout, written by hand."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (label, title, content) in enumerate(TRAIN):
        if i == len(TRAIN) - 1:
            lines.append(f"{label},{title}, {content}\n")  # unquoted fields
        else:
            lines.append(f"{label},{quoted(title)},{quoted(' ' + content)}\n")
        if i == 4:
            lines.append("\n")  # a blank line is skipped
    (folder / "train.csv").write_text("".join(lines), encoding="utf-8")
    (folder / "test.csv").write_text(
        "".join(f"{label},{quoted(title)},{quoted(' ' + content)}\n" for label, title, content in TEST), encoding="utf-8"
    )
    if classes:
        (folder / "classes.txt").write_text("\n".join(CLASS_NAMES) + "\n", encoding="utf-8")
    return folder


def text_of(row: tuple[int, str, str], fields: str = "title+content") -> str:
    _, title, content = row
    parts = {"title+content": [title, content], "content": [content], "title": [title]}[fields]
    return "\n".join(p.strip() for p in parts if p.strip())


def split_rows(split: str) -> list[tuple[int, str, str]]:
    """The rows of a split: a RandomState(50) shuffle of train.csv, the last tenth held out."""
    order = np.random.RandomState(50).permutation(len(TRAIN))
    if split == "test":
        return list(TEST)
    chosen = order[: len(TRAIN) - HOLDOUT] if split == "train" else order[len(TRAIN) - HOLDOUT :]
    return [TRAIN[i] for i in chosen]


def words(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text.lower())


def shown_units(text: str, unit: str, max_length: int, truncate: str) -> list[str]:
    units = list(text) if unit == "char" else words(text)
    return units[:max_length] if truncate == "end" else units[max(len(units) - max_length, 0) :]


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    docs_data.clear_cache()


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return write_dbpedia(tmp_path / "data")


def make_env(data_dir: Path, **kwargs) -> gym.Env:
    return gym.make(ENV_ID, data_dir=str(data_dir), **kwargs)


def play(env: gym.Env, policy: str, seed: int) -> tuple[float, list[int], list[float]]:
    """Return, observed symbol ids and rewards of one episode."""

    def symbol(obs) -> int:
        return int(np.argmax(obs)) if np.ndim(obs) else int(obs)  # one-hot or index observation

    obs, _ = env.reset(seed=seed)
    seen, rewards, done = [symbol(obs)], [], False
    while not done:
        obs, reward, done, truncated, _ = env.step(getattr(env.unwrapped, f"{policy}_action")())
        rewards.append(reward)
        if not done:
            seen.append(symbol(obs))
        assert not truncated
    return sum(rewards), seen, rewards


# --------------------------------------------------------------------------------------------
# Loader
# --------------------------------------------------------------------------------------------


def test_loader_parses_quotes_commas_newlines_and_cuts_fixed_splits(data_dir):
    raw = docs_data.load_raw(data_dir)
    assert raw.class_names == CLASS_NAMES
    for split in ("train", "validation", "test"):
        rows = split_rows(split)
        got = [(int(label) + 1, title, content.strip()) for (title, content), label in zip(raw.fields[split], raw.labels[split])]
        assert got == [(label, title, content) for label, title, content in rows], split
    assert len(raw.fields["validation"]) == 2 and len(raw.fields["train"]) == 18
    # the row with a quoted comma, doubled quotes and a newline came through whole
    assert ("Acme Corp", ' Acme makes, sells "widgets" and\ngadgets.') in raw.fields["validation"]


def test_loader_without_classes_file_names_classes_by_their_csv_ids(tmp_path):
    raw = docs_data.load_raw(write_dbpedia(tmp_path / "d", classes=False))
    assert raw.class_names == ("1", "2", "3")


def test_loader_is_cached_per_file_contents(data_dir):
    first = docs_data.load_raw(data_dir)
    assert docs_data.load_raw(str(data_dir)) is first
    assert docs_data.load_documents(data_dir, "word", 50) is docs_data.load_documents(data_dir, "word", 50)
    with open(data_dir / "test.csv", "a", encoding="utf-8") as handle:
        handle.write('2,"New U","A new university."\n')
    again = docs_data.load_raw(data_dir)
    assert again is not first and len(again.fields["test"]) == len(TEST) + 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('1,"only two"\n', r"train\.csv:1: 2 fields; expected 3"),
        ('1,"a","b"\nx,"a","b"\n', r"train\.csv:2: class 'x' is not a positive integer"),
        ('0,"a","b"\n', r"train\.csv:1: class '0'"),
        ('7,"a","b"\n1,"c","d"\n', r"class id 7 in the CSV files, but .*classes\.txt names only 3 classes"),
    ],
)
def test_malformed_files_say_where(data_dir, content, message):
    (data_dir / "train.csv").write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        docs_data.load_raw(data_dir)


# --------------------------------------------------------------------------------------------
# Missing data
# --------------------------------------------------------------------------------------------


def test_missing_data_says_exactly_how_to_get_dbpedia(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError) as err:
        memenvs.make_task("DocumentClassification-v0")
    message = str(err.value)
    assert "\n" not in message
    for needed in ("no data_dir given", "MEMENVS_DATA is not set", "no embedded default", "dbpedia_csv.tar.gz",
                   "train.csv", "test.csv", "classes.txt", "$MEMENVS_DATA/dbpedia/", "data_dir"):
        assert needed in message, needed
    with pytest.raises(FileNotFoundError, match=re.escape(f"looked in data_dir='{tmp_path}'")):
        DocumentClassificationTask(data_dir=tmp_path)
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"looked in \$MEMENVS_DATA="):
        gym.make(ENV_ID)
    assert not available(ENV_ID)
    write_dbpedia(tmp_path / "dbpedia")  # $MEMENVS_DATA/dbpedia/ is found
    assert available(ENV_ID)
    task = memenvs.make_task(ENV_ID)
    assert task.dataset.source == str(tmp_path / "dbpedia") and not task.dataset.embedded


def test_the_archive_folder_name_is_accepted_too(tmp_path):
    write_dbpedia(tmp_path / "dbpedia_csv")
    assert DocumentClassificationTask(data_dir=tmp_path).dataset.splits == {"train": 18, "validation": 2, "test": 4}


# --------------------------------------------------------------------------------------------
# Vocabulary and units
# --------------------------------------------------------------------------------------------


def test_word_vocabulary_comes_from_the_training_split_only(data_dir):
    task = DocumentClassificationTask(unit="word", data_dir=data_dir)
    counts = Counter(w for row in split_rows("train") for w in words(text_of(row)))
    symbols = task.documents.symbols
    assert symbols[:2] == ("<pad>", "<unk>")
    assert symbols[2:] == tuple(sorted(counts, key=lambda w: (-counts[w], w)))
    held_out_only = {w for row in split_rows("validation") for w in words(text_of(row))} - set(counts)
    assert {"widgets", "gadgets"} <= held_out_only and not held_out_only & set(symbols)
    # test-only words ("zebra", "acme") are unknown; known ones keep their ids
    ids = task.documents.document("test", 0)
    expected = [symbols.index(w) if w in symbols else 1 for w in words(text_of(TEST[0]))]
    assert ids.tolist() == expected and expected.count(1) >= 2
    small = DocumentClassificationTask(unit="word", vocab_size=3, data_dir=data_dir)
    assert small.documents.symbols[2:] == symbols[2:5] and small.num_inputs == 5


def test_char_vocabulary_and_unknown_characters(data_dir):
    task = DocumentClassificationTask(data_dir=data_dir)
    train_chars = Counter(c for row in split_rows("train") for c in text_of(row))
    assert set(task.documents.symbols[2:]) == set(train_chars) and "Ω" not in task.documents.symbols
    held_out_only = {c for row in split_rows("validation") for c in text_of(row)} - set(train_chars)
    assert "#" in held_out_only and not held_out_only & set(task.documents.symbols)
    zebra = task.documents.document("test", 0)
    assert task.documents.decode(zebra) == "".join(c if c in train_chars else "<unk>" for c in text_of(TEST[0]))
    assert "<unk>ra makes <unk>" in task.documents.decode(zebra)  # no "b" and no "Ω" in the training split
    assert task.num_inputs == len(train_chars) + 2 and task.num_outputs == 3


@pytest.mark.parametrize("unit", ["char", "word"])
@pytest.mark.parametrize("truncate", ["end", "start"])
@pytest.mark.parametrize("fields", ["title+content", "content"])
def test_truncation_keeps_the_chosen_side(data_dir, unit, truncate, fields):
    L = 6 if unit == "char" else 3
    task = DocumentClassificationTask(unit=unit, max_length=L, truncate=truncate, text=fields, split="test", data_dir=data_dir)
    batch = next(task.iterate(batch_size=len(TEST)))
    symbols = task.documents.symbols
    for b, row in enumerate(TEST):
        units = shown_units(text_of(row, fields), unit, L, truncate)
        n = int(batch.lengths[b])
        assert n == len(units)
        assert batch.inputs[:n, b].tolist() == [symbols.index(u) if u in symbols else 1 for u in units]
    if truncate == "end" and unit == "char" and fields == "title+content":
        assert task.documents.decode(batch.inputs[: batch.lengths[1], 1]) == "Ridge\n"


# --------------------------------------------------------------------------------------------
# Episodes: lengths, mask, iterate
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("unit", ["char", "word"])
def test_label_is_scored_at_each_documents_own_last_step(data_dir, unit):
    L = 12
    task = DocumentClassificationTask(unit=unit, max_length=L, data_dir=data_dir)
    rows = split_rows("train")
    expected_lengths = [max(len(shown_units(text_of(r), unit, L, "end")), 1) for r in rows]
    assert task.max_length == max(expected_lengths)
    batches = list(task.iterate(batch_size=5))
    assert [b.batch_size for b in batches] == [5, 5, 5, 3]
    start = 0
    for batch in batches:
        for b in range(batch.batch_size):
            row, n = rows[start + b], expected_lengths[start + b]
            assert batch.lengths[b] == n
            assert np.flatnonzero(batch.mask[:, b]).tolist() == [n - 1]  # padding is never scored
            assert batch.targets[n - 1, b] == row[0] - 1
            assert (batch.inputs[n:, b] == 0).all()
        assert batch.seq_len == batch.lengths.max()  # each batch padded to its longest document
        start += batch.batch_size
    sampled = task.sample(64, np.random.default_rng(3))
    assert sampled.seq_len == task.max_length and (sampled.mask.sum(axis=0) == 1).all()
    assert (sampled.mask[sampled.lengths - 1, np.arange(64)]).all()
    # the empty-content document "Hill Y" still has its title; an empty document would be one pad step
    empty = DocumentClassificationTask(text="content", split="train", data_dir=data_dir)
    hill = [r[1] for r in rows].index("Hill Y")
    one = empty.episodes(np.array([hill]))
    assert one.lengths.tolist() == [1] and one.inputs[0, 0] == 0 and one.mask[0, 0]


@pytest.mark.parametrize("unit", ["char", "word"])
def test_pad_before_right_aligns_each_document_and_scores_the_last_step(data_dir, unit):
    """pad="before": the same units as pad="after", moved to end at the batch's last step, pad
    units in front, the label scored at that last step only and every episode T steps long."""
    after = DocumentClassificationTask(unit=unit, max_length=12, data_dir=data_dir)
    before = DocumentClassificationTask(unit=unit, max_length=12, data_dir=data_dir, pad="before")
    labels = [r[0] - 1 for r in split_rows("train")]
    for a, b in zip(after.iterate(batch_size=5), before.iterate(batch_size=5)):
        T = a.seq_len
        assert b.seq_len == T and b.lengths.tolist() == [T] * b.batch_size
        for col in range(a.batch_size):
            n = int(a.lengths[col])
            assert b.inputs[T - n :, col].tolist() == a.inputs[:n, col].tolist()
            assert (b.inputs[: T - n, col] == 0).all()
            assert np.flatnonzero(b.mask[:, col]).tolist() == [T - 1]
            assert b.targets[T - 1, col] == a.targets[n - 1, col]
    assert [int(b.targets[-1, c]) for b in before.iterate(batch_size=5) for c in range(b.batch_size)] == labels
    sampled = before.sample(16, np.random.default_rng(0))
    assert sampled.seq_len == before.max_length and sampled.mask[-1].all() and sampled.mask.sum() == 16


def test_iterate_visits_every_document_once_in_order(data_dir):
    task = DocumentClassificationTask(data_dir=data_dir)
    for split in ("train", "validation", "test"):
        texts, labels = [], []
        for batch in task.iterate(split, batch_size=3):
            for b in range(batch.batch_size):
                texts.append(task.documents.decode(batch.inputs[: batch.lengths[b], b]))
                labels.append(int(batch.targets[batch.lengths[b] - 1, b]))
        rows = split_rows(split)
        known = set(task.documents.symbols)
        assert labels == [r[0] - 1 for r in rows], split
        assert texts == ["".join(c if c in known else "<unk>" for c in text_of(r)) for r in rows], split
    with pytest.raises(ValueError, match="batch_size=0"):
        next(task.iterate(batch_size=0))


def test_env_ends_each_episode_at_its_documents_end(data_dir):
    env = make_env(data_dir, obs_mode="index", max_length=9)
    rows = {text_of(r)[:9]: r for r in split_rows("train")}
    decode = env.unwrapped.task.documents.decode
    for seed in range(12):
        total, seen, rewards = play(env, "oracle", seed)
        row = rows[decode(seen)]
        assert len(rewards) == min(len(text_of(row)), 9)
        assert rewards[:-1] == [0.0] * (len(rewards) - 1) and rewards[-1] == 1.0 and total == 1.0


# --------------------------------------------------------------------------------------------
# Reference scores and policies
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"max_length": 4}, {"max_length": 4, "truncate": "start"}, {"unit": "word", "max_length": 3}, {"split": "test"},
     {"max_length": 6, "pad": "before"}],
)
def test_memoryless_reference_is_an_exact_count_and_what_the_policy_earns_in_the_env(data_dir, kwargs):
    split = kwargs.get("split", "train")
    unit, L, side = kwargs.get("unit", "char"), kwargs.get("max_length", 1014), kwargs.get("truncate", "end")
    rows = split_rows(split)
    task = DocumentClassificationTask(data_dir=data_dir, **kwargs)
    symbols = set(task.documents.symbols)
    pairs = Counter()
    for row in rows:
        units = shown_units(text_of(row), unit, L, side)
        last = units[-1] if units else "<pad>"
        pairs[(last if last in symbols else "<unk>", row[0])] += 1
    best = Counter()
    for (last, _), count in pairs.items():
        best[last] = max(best[last], count)
    expected = sum(best.values()) / len(rows)
    ref = task.reference_scores()
    assert ref.memoryless == pytest.approx(expected, abs=1e-12)
    assert ref.random == pytest.approx(1 / 3) and ref.optimal == 1.0
    # played through the env until every document has been drawn: the mean return per document
    env = make_env(data_dir, obs_mode="index", **kwargs)
    decode = task.documents.decode
    returns: dict[str, float] = {}
    for seed in range(3000):
        total, seen, _ = play(env, "memoryless", seed)
        returns.setdefault(decode(seen), total)
        if len(returns) == len(rows):
            break
    assert len(returns) == len(rows) and set(returns.values()) <= {0.0, 1.0}
    assert np.mean(list(returns.values())) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("kwargs", [{}, {"unit": "word"}, {"max_length": 5, "truncate": "start", "split": "validation"},
                                    {"pad": "before"}])
def test_oracle_scores_exactly_one(data_dir, kwargs):
    env = make_env(data_dir, **kwargs)
    for seed in range(10):
        assert play(env, "oracle", seed)[0] == 1.0
    vec = gym.make_vec(ENV_ID, num_envs=4, data_dir=str(data_dir), **kwargs)
    vec.reset(seed=0)
    returns, done = np.zeros(4), np.zeros(4, dtype=bool)
    while not done.all():
        _, rewards, terminated, _, _ = vec.step(vec.unwrapped.oracle_actions())
        returns += np.where(done, 0.0, rewards)
        done |= terminated
    assert returns.tolist() == [1.0] * 4


# --------------------------------------------------------------------------------------------
# Gymnasium / SB3, seeding, pickling, registry
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs", [{}, {"obs_mode": "index"}, {"unit": "word", "max_length": 4}, {"unit": "word", "obs_mode": "index"},
               {"pad": "before"}]
)
def test_gymnasium_and_sb3_env_checkers_pass(data_dir, kwargs):
    env = make_env(data_dir, **kwargs)
    check_env(env.unwrapped)
    sb3_check_env(env.unwrapped)


def test_seeded_reset_replays_the_episode_and_the_env_pickles(data_dir):
    env = make_env(data_dir, obs_mode="index")
    first = [play(env, "oracle", seed)[1] for seed in (4, 5, 6)]
    again = make_env(data_dir, obs_mode="index")
    assert [play(again, "oracle", seed)[1] for seed in (4, 5, 6)] == first
    assert len({tuple(s) for s in first}) > 1  # different seeds, different documents
    clone = pickle.loads(pickle.dumps(env.unwrapped))
    assert play(clone, "oracle", 4)[1] == first[0]
    vec = gym.make_vec(ENV_ID, num_envs=3, data_dir=str(data_dir), obs_mode="index")
    obs, _ = vec.reset(seed=4)
    assert obs.tolist() == [s[0] for s in first]  # env i replays the single env seeded 4 + i


def test_make_task_round_trip(data_dir):
    task = memenvs.make_task("document_classification", data_dir=str(data_dir), unit="word", max_length=3)
    assert isinstance(task, DocumentClassificationTask) and memenvs.resolve_id("DocumentClassification-v0") == ENV_ID
    assert task.kwargs == {"unit": "word", "max_length": 3, "truncate": "end", "text": "title+content",
                           "split": "train", "vocab_size": None, "data_dir": str(data_dir), "pad": "after"}
    rebuilt = DocumentClassificationTask(**task.kwargs)
    a, b = task.sample(5, np.random.default_rng(1)), rebuilt.sample(5, np.random.default_rng(1))
    assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.lengths, b.lengths)
    longer = task.with_kwargs(max_length=6)
    assert longer.max_length == 6 and longer.kwargs["unit"] == "word"
    assert ENV_ID in memenvs.list_ids("tasks") and task.length_knob == "max_length"
    assert task.dataset.to_dict() == {
        "name": "dbpedia", "source": str(data_dir), "embedded": False, "splits": {"train": 18, "validation": 2, "test": 4}
    }


@pytest.mark.parametrize(
    ("kwargs", "shown"),
    [
        ({"unit": "byte"}, "unit='byte'"),
        ({"max_length": 0}, "max_length=0"),
        ({"max_length": 10**12}, f"max_length={10**12}"),
        ({"truncate": "middle"}, "truncate='middle'"),
        ({"text": "body"}, "text='body'"),
        ({"split": "dev"}, "split='dev'"),
        ({"vocab_size": 0}, "vocab_size=0"),
        ({"vocab_size": 10**6}, f"vocab_size={10**6}"),
        ({"vocab_size": 2.5}, "vocab_size=2.5"),
    ],
)
def test_bad_kwargs_name_parameter_value_and_what_is_allowed(data_dir, kwargs, shown):
    with pytest.raises(ValueError) as err:
        DocumentClassificationTask(data_dir=data_dir, **kwargs)
    message = str(err.value)
    assert "\n" not in message and message.startswith(shown)
    assert "allowed" in message or "must be" in message


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def test_rendering_shows_the_text(data_dir):
    env = make_env(data_dir, split="test", render_mode="ansi")
    env.reset(seed=0)
    while not env.step(env.unwrapped.oracle_action())[2]:
        pass
    frame = env.render()
    known = set(env.unwrapped.task.documents.symbols)
    # newline drawn as "|", unknown characters as "?", other non-ASCII ones as "~"
    drawn = [
        "".join("|" if c == "\n" else c if c.isascii() and c in known else "~" if c in known else "?" for c in text_of(r))
        for r in TEST
    ]
    assert sum(d in frame for d in drawn) == 1, frame
    assert "Ze?ra Co|Ze?ra makes ? parts." in drawn  # no "b" in the training split
    words_task = DocumentClassificationTask(unit="word", split="test", data_dir=data_dir)
    rows = words_task.render_inputs(words_task.episodes(np.array([2])).inputs[:, 0])
    columns = ["".join(cells[k] for _, cells in rows).rstrip() for k in range(len(rows[0][1]))]
    assert columns == ["college", "?", "the", '"', "?", '"', "college"]  # "k" is no training word
    assert all(len(cells) == 7 for _, cells in rows)
    long = words_task.render_inputs(np.array([words_task.documents.symbols.index("university")]))
    assert "".join(cells for _, cells in long) == "univers+"


@pytest.mark.parametrize("pad", ["after", "before"])
def test_training_records_the_documents_and_scores_the_test_split(data_dir, tmp_path, pad):
    """A training run end to end: truncated BPTT and the auxiliary loss over padded documents,
    the dataset recorded in the summary, the best checkpoint scored on the whole test split."""
    from agents.supervised import TrainConfig, train

    config = TrainConfig(task="DocumentClassification-v0", task_kwargs={"data_dir": str(data_dir), "max_length": 40, "pad": pad},
                         cell="lstm", hidden_size=8, batch_size=4, updates=4, eval_every=2, eval_split="validation",
                         eval_batches=0, eval_batch_size=8, tbptt=8, aux="reconstruction", aux_kwargs={"segment_length": 5})
    summary = train(config, tmp_path / "run", progress=False)
    assert summary["status"] == "completed"
    rows = {split: len(split_rows(split)) for split in ("train", "validation", "test")}
    assert summary["dataset"] == {"name": "dbpedia", "source": summary["dataset"]["source"], "embedded": False, "splits": rows}
    assert 0.0 <= summary["test"]["metrics"]["accuracy"] <= 1.0
