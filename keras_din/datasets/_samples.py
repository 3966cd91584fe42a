"""Shared pieces of the loaders: reading data files and building samples."""

import codecs
import gzip
import os
import zlib

import numpy as np

from keras_din.datasets.user_histories import UserHistories

SAMPLE_KEYS = (
    "user",
    "history",
    "history_category",
    "negative_history",
    "negative_history_category",
    "candidate",
    "candidate_category",
)


def open_lines(path, encoding="utf-8"):
    """Yields `(line_number, line)` of a text file, gzip-compressed or not.

    A UTF-8 byte-order mark at the start of the file (as Excel and other
    Windows tools write) is skipped. Raises a `ValueError` naming the file
    (and the line) for a `.gz` file that is not gzip data and for a line
    that is not `encoding` text.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Data file not found: {path}")
    opener = gzip.open if path.endswith(".gz") else open
    # Read as bytes and decoded line by line, so that a decoding error
    # names its line (a text stream decodes ahead, in chunks).
    with opener(path, "rb") as handle:
        number = 0
        try:
            for number, raw in enumerate(handle, start=1):
                if number == 1:
                    raw = raw.removeprefix(codecs.BOM_UTF8)
                try:
                    line = raw.decode(encoding).strip()
                except UnicodeDecodeError as error:
                    raise ValueError(
                        f"{path}, line {number}: expected {encoding} text. "
                        f"Received: byte {raw[error.start]:#04x} at column "
                        f"{error.start + 1}"
                    ) from None
                if line:
                    yield number, line
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            where = f" after line {number}" if number else ""
            raise ValueError(
                f"{path}: expected gzip-compressed data (the name ends in "
                f"`.gz`). Received: data that cannot be decompressed{where} "
                f"({error})"
            ) from None


def time_ordered(events):
    """The items of `(time, item)` events in time order (ties in the order
    given), each event once: an exact duplicate (a re-exported or merged
    file) is the same interaction, not a second one."""
    events = dict.fromkeys(events)  # the first of each, in order
    return [item for _, item in sorted(events, key=lambda event: event[0])]


def malformed(path, number, expected, line):
    """The one error for a bad line: the file, the line, expected, received."""
    shown = line if len(line) <= 120 else line[:117] + "..."
    return ValueError(
        f"{os.fspath(path)}, line {number}: expected {expected}. Received: {shown!r}"
    )


def pad_histories(histories, max_history):
    """Right-pads (and left-truncates to the most recent) id lists with 0."""
    padded = np.zeros((len(histories), max_history), dtype="int32")
    for row, items in enumerate(histories):
        items = items[-max_history:] if max_history else items[:0]
        padded[row, : len(items)] = items
    return padded


def check_max_history(max_history):
    if not isinstance(max_history, int) or max_history < 1:
        raise ValueError(
            "`max_history` must be a positive int. "
            f"Received: max_history={max_history!r}"
        )


def negative_stream(seed):
    """The generator of the negative histories: its own stream, so that adding
    them left every other array of a seed as it was."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])


def sample_negatives(rng, count, num_items, seen):
    """`count` item ids in `[1, num_items]`, avoiding `seen` where possible."""
    negatives = rng.integers(1, num_items + 1, size=count)
    if len(seen) >= num_items:
        return negatives
    seen = np.fromiter(seen, dtype=np.int64)
    for _ in range(100):
        clash = np.isin(negatives, seen)
        if not clash.any():
            break
        negatives[clash] = rng.integers(1, num_items + 1, size=int(clash.sum()))
    return negatives


def sequences_to_samples(
    sequences,
    item_categories,
    max_history,
    max_samples_per_user,
    seed,
    source,
    test_targets=1,
    layout="samples",
):
    """Leave-last-out samples with one sampled negative per positive.

    `sequences` holds `(user, items)` with the item ids of each user in time
    order (ids from 1). The last `test_targets` items of each user are test
    targets, every earlier item from the second on a training target; the
    history of a target is the items before it (the most recent
    `max_history`). Each
    target gives a positive sample and a negative one whose candidate is a
    random item the user never interacted with. The negative history pairs
    each step of a user's sequence with one more such item (drawn once per
    user and step, so that a step has the same negative in every sample),
    for DIEN's auxiliary loss. A `ValueError` naming
    `source` (the data file) says when no user has two items. With
    `layout="users"` the samples refer to their user's sequence, stored once
    in a `UserHistories` returned third (see `check_layout`).
    """
    check_max_history(max_history)
    check_layout(layout)
    if (
        not isinstance(test_targets, int)
        or isinstance(test_targets, bool)
        or (test_targets < 1)
    ):
        raise ValueError(
            "`test_targets_per_user` must be a positive int. "
            f"Received: test_targets_per_user={test_targets!r}"
        )
    rng = np.random.default_rng(seed)
    history_rng = negative_stream(seed)
    item_categories = np.asarray(item_categories, dtype="int32")
    num_items = item_categories.shape[0] - 1
    splits = {"train": [], "test": []}
    stored = []  # (user, items, step negatives) of the users with samples
    for user, items in sequences:
        items = np.asarray(items, dtype=np.int64)
        if items.size < 2:
            continue
        targets = np.arange(1, items.size)
        if max_samples_per_user is not None:
            # The test targets plus the latest training targets.
            targets = targets[-(max_samples_per_user + test_targets) :]
        seen = set(items.tolist())
        negatives = sample_negatives(rng, targets.size, num_items, seen)
        step_negatives = sample_negatives(history_rng, items.size, num_items, seen)
        stored.append((user, items, step_negatives))
        for index, (target, negative) in enumerate(
            zip(targets, negatives, strict=True)
        ):
            split = "test" if index >= targets.size - test_targets else "train"
            if layout == "users":
                history = target  # the number of behaviours before it
            else:
                steps = slice(max(0, target - max_history), target)
                history = (items[steps], step_negatives[steps])
            splits[split].append((user, history, items[target], 1.0))
            splits[split].append((user, history, negative, 0.0))
    if not splits["test"]:
        raise ValueError(
            f"{source}: no samples, since no user has two or more interactions "
            "(a user's last one is the test target, the earlier ones the "
            "training targets and histories)"
        )
    if layout == "users":
        return (
            *(_to_user_arrays(splits[s], item_categories) for s in ("train", "test")),
            user_histories(stored, item_categories, max_history),
        )
    return tuple(
        _to_arrays(rows, item_categories, max_history)
        for rows in (splits["train"], splits["test"])
    )


def _to_arrays(rows, item_categories, max_history):
    history = pad_histories([row[1][0] for row in rows], max_history)
    negative_history = pad_histories([row[1][1] for row in rows], max_history)
    candidate = np.array([row[2] for row in rows], dtype="int32").reshape(-1, 1)
    x = samples_dict(
        np.array([row[0] for row in rows], dtype="int32"),
        history,
        negative_history,
        candidate,
        item_categories,
    )
    return x, np.array([row[3] for row in rows], dtype="float32")


def _to_user_arrays(rows, item_categories):
    x = user_samples_dict(
        np.array([row[0] for row in rows], dtype="int32"),
        np.array([row[1] for row in rows], dtype="int32"),
        np.array([row[2] for row in rows], dtype="int32").reshape(-1, 1),
        item_categories,
    )
    return x, np.array([row[3] for row in rows], dtype="float32")


def user_samples_dict(user, history_end, candidate, item_categories):
    """The samples of `layout="users"`: no histories, but where they end."""
    return {
        "user": user,
        "history_end": history_end,
        "candidate": candidate,
        "candidate_category": item_categories[candidate],
    }


def user_histories(stored, item_categories, max_length):
    """A `UserHistories` of `(user, items, step negatives)` triples."""
    stored = sorted(stored, key=lambda entry: entry[0])
    lengths = [len(items) for _, items, _ in stored]
    empty = np.zeros((0,), "int32")
    return UserHistories(
        users=np.array([user for user, _, _ in stored], dtype=np.int64),
        offsets=np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]),
        items=np.concatenate([items for _, items, _ in stored] or [empty]),
        negative_items=np.concatenate([neg for _, _, neg in stored] or [empty]),
        item_categories=item_categories,
        max_length=max_length,
    )


def check_layout(layout):
    """`layout="samples"` (a history per sample) or `"users"` (a sequence per
    user, in a `UserHistories`, the samples referring to it)."""
    if layout not in ("samples", "users"):
        raise ValueError(
            f"`layout` must be 'samples' or 'users'. Received: layout={layout!r}"
        )


def samples_dict(user, history, negative_history, candidate, item_categories):
    """The loaders' dict (`SAMPLE_KEYS`), categories looked up per item."""
    return {
        "user": user,
        "history": history,
        "history_category": item_categories[history],
        "negative_history": negative_history,
        "negative_history_category": item_categories[negative_history],
        "candidate": candidate,
        "candidate_category": item_categories[candidate],
    }


def fetch(fname, origin, **kwargs):
    """Downloads `origin` into the Keras cache (`~/.keras/datasets/keras_din`)."""
    import keras

    return keras.utils.get_file(
        fname, origin=origin, cache_subdir="keras_din", **kwargs
    )
