"""A synthetic click data set whose labels depend on a local part of the history."""

import numpy as np

from keras_din.datasets._samples import check_layout
from keras_din.datasets._samples import check_max_history
from keras_din.datasets._samples import negative_stream
from keras_din.datasets._samples import pad_histories
from keras_din.datasets._samples import sample_negatives
from keras_din.datasets._samples import samples_dict
from keras_din.datasets._samples import user_histories
from keras_din.datasets._samples import user_samples_dict


def load_synthetic(
    num_users=2000,
    num_items=1000,
    num_categories=50,
    max_history=20,
    impressions_per_user=20,
    test_fraction=0.25,
    seed=0,
    layout="samples",
):
    """Generates user histories and clicks that DIN's attention can exploit.

    Every item belongs to one category. Each user has two to four interest
    categories, and a history of 4 to `max_history` items, most of them from
    those interests. Each impression shows the user a candidate item (half
    of the time from one of the user's interests, otherwise from any
    category), and the click probability is

        sigmoid(-2.5 + 1.5 * min(c, 3) + quality[candidate])

    with `c` the number of history items of the candidate's category and
    `quality` a fixed per-item effect. The click depends on the few history
    items that match the candidate, not on the history as a whole: the
    local interest that DIN's attention finds and that sum pooling blurs.

    Impressions are split per user, so every user has training and test
    samples (what the user-weighted GAUC needs). Same arguments, same data.

    Args:
        num_users: int. Number of users. Defaults to `2000`.
        num_items: int. Number of items, ids `1..num_items` (0 pads).
            Defaults to `1000`.
        num_categories: int. Number of categories, ids `1..num_categories`.
            Defaults to `50`.
        max_history: int. Length the histories are padded to. Defaults to
            `20`.
        impressions_per_user: int. Samples per user. Defaults to `20`.
        test_fraction: float. Share of each user's impressions held out for
            testing. Defaults to `0.25`.
        seed: int. Seed of the generator. Defaults to `0`.
        layout: `"samples"` or `"users"`. Where the histories are: in every
            sample (`"samples"`), or stored once per user in a
            `keras_din.datasets.UserHistories` returned third (`"users"`),
            the samples holding `"history_end"` instead of the four history
            arrays; `UserHistories.expand` gives the same arrays. Defaults to
            `"samples"`.

    Returns:
        `(x_train, y_train), (x_test, y_test)`, where `x_*` is a dict of
        int32 arrays: `"user"` `(N,)`, `"history"` and `"history_category"`
        `(N, max_history)` (most recent last, right-padded with 0),
        `"negative_history"` and `"negative_history_category"` (same shape:
        at each step of the history an item the user never touched, for
        DIEN's auxiliary loss), `"candidate"` and `"candidate_category"`
        `(N, 1)`; and `y_*` holds the float32 click labels `(N,)`. With
        `layout="users"`, `(x_train, y_train), (x_test, y_test), histories`:
        `x_*` holds `"user"`, `"history_end"` `(N,)`, `"candidate"` and
        `"candidate_category"`, and `histories` the sequences.

    Examples:

        >>> (x_train, y_train), (x_test, y_test) = load_synthetic(num_users=10)
        >>> x_train["history"].shape, y_train.shape
        ((150, 20), (150,))
    """
    check_max_history(max_history)
    check_layout(layout)
    if max_history < 4:
        raise ValueError(f"`max_history` must be at least 4. Received: {max_history}")
    if not 2 <= num_categories <= num_items:
        raise ValueError(
            "`num_categories` must be between 2 and `num_items`. Received: "
            f"num_categories={num_categories}, num_items={num_items}"
        )
    if not 0 < test_fraction < 1:
        raise ValueError(
            f"`test_fraction` must be in (0, 1). Received: {test_fraction}"
        )
    rng = np.random.default_rng(seed)
    # Item categories (every category has items) and qualities; index 0 pads.
    categories = np.concatenate(
        [
            np.arange(1, num_categories + 1),
            rng.integers(1, num_categories + 1, num_items - num_categories),
        ]
    )
    item_category = np.concatenate([[0], rng.permutation(categories)]).astype("int32")
    quality = np.concatenate([[0.0], rng.normal(0.0, 0.75, num_items)])
    # Items sorted by category, to draw a uniform item of given categories.
    by_category = np.argsort(item_category, kind="stable").astype("int32")
    counts = np.bincount(item_category, minlength=num_categories + 1)
    starts = np.cumsum(counts) - counts

    def items_of(category_ids):
        offsets = (rng.random(len(category_ids)) * counts[category_ids]).astype(int)
        return by_category[starts[category_ids] + offsets]

    history_rng = negative_stream(seed)
    users, histories, negative_histories, candidates = [], [], [], []
    stored, matches = [], []
    for user in range(num_users):
        interests = rng.choice(
            np.arange(1, num_categories + 1), size=rng.integers(2, 5), replace=False
        )
        length = int(rng.integers(4, max_history + 1))
        from_interest = rng.random(length) < 0.8
        history_categories = np.where(
            from_interest,
            rng.choice(interests, size=length),
            rng.integers(1, num_categories + 1, size=length),
        )
        history = items_of(history_categories)
        negatives = sample_negatives(history_rng, length, num_items, set(history))
        candidate_categories = np.where(
            rng.random(impressions_per_user) < 0.5,
            rng.choice(interests, size=impressions_per_user),
            rng.integers(1, num_categories + 1, size=impressions_per_user),
        )
        users.extend([user] * impressions_per_user)
        candidate = items_of(candidate_categories)
        candidates.append(candidate)
        shared = item_category[history][None, :] == item_category[candidate][:, None]
        matches.append(shared.sum(axis=1))
        if layout == "users":
            stored.append((user, history, negatives))
        else:
            histories.extend([history] * impressions_per_user)
            negative_histories.extend([negatives] * impressions_per_user)

    users = np.array(users, dtype="int32")
    candidate = np.concatenate(candidates).reshape(-1, 1).astype("int32")
    if layout == "users":
        lengths = np.array([len(history) for _, history, _ in stored], "int32")
        ends = np.repeat(lengths, impressions_per_user)
        x = user_samples_dict(users, ends, candidate, item_category)
    else:
        x = samples_dict(
            users,
            pad_histories(histories, max_history),
            pad_histories(negative_histories, max_history),
            candidate,
            item_category,
        )
    matches = np.concatenate(matches)
    logits = -2.5 + 1.5 * np.minimum(matches, 3) + quality[candidate[:, 0]]
    labels = (rng.random(users.size) < 1 / (1 + np.exp(-logits))).astype("float32")

    num_test = max(1, round(test_fraction * impressions_per_user))
    test = np.arange(users.size) % impressions_per_user >= (
        impressions_per_user - num_test
    )
    splits = (
        ({k: v[~test] for k, v in x.items()}, labels[~test]),
        ({k: v[test] for k, v in x.items()}, labels[test]),
    )
    if layout == "users":
        return (*splits, user_histories(stored, item_category, max_history))
    return splits
