"""Histories stored once per user (`layout="users"`): the same samples, the
same batches and the same trained model as the materialised layout."""

import json

import keras
import numpy as np
import pytest

from keras_din import datasets
from keras_din.models import DIN
from keras_din.models import BehaviorSequence
from keras_din.models import Feature

HISTORY_KEYS = (
    "history",
    "history_category",
    "negative_history",
    "negative_history_category",
)


def long_ratings(folder, num_users=6, num_movies=40, seed=0):
    """A MovieLens-1M ratings file with histories of 5 to 30 movies."""
    rng = np.random.default_rng(seed)
    lines = []
    for user in range(1, num_users + 1):
        movies = rng.choice(np.arange(1, num_movies + 1), rng.integers(5, 31), False)
        for time, movie in enumerate(movies):
            lines.append(f"{user * 7}::{movie}::4::{1000 + time}")
    (folder / "ratings.dat").write_text("\n".join(lines) + "\n")
    genres = "|".join(["Drama", "Comedy", "Action"])
    movies = [f"{m}::Film {m}::{genres.split('|')[m % 3]}" for m in range(1, 41)]
    (folder / "movies.dat").write_text("\n".join(movies) + "\n")
    return folder


def long_reviews(folder, num_users=5, seed=0):
    rng = np.random.default_rng(seed)
    path = folder / "reviews.json"
    with path.open("w") as handle:
        for user in range(num_users):
            for time in range(int(rng.integers(3, 25))):
                review = {
                    "reviewerID": f"U{user}",
                    "asin": f"P{int(rng.integers(0, 30))}",
                    "unixReviewTime": time,
                }
                print(json.dumps(review), file=handle)
    return path


def reference_histories(histories, x, max_length):
    """The four history arrays, one sample at a time, from the store's
    arrays (NumPy loops, independent of `UserHistories.expand`)."""
    out = {key: np.zeros((len(x["user"]), max_length), "int32") for key in HISTORY_KEYS}
    for i, (user, end) in enumerate(zip(x["user"], x["history_end"], strict=True)):
        row = list(histories.users).index(user)
        start = histories.offsets[row]
        kept = range(max(0, end - max_length), end)
        for step, position in enumerate(kept):
            item = histories.items[start + position]
            negative = histories.negative_items[start + position]
            out["history"][i, step] = item
            out["history_category"][i, step] = histories.item_categories[item]
            out["negative_history"][i, step] = negative
            out["negative_history_category"][i, step] = histories.item_categories[
                negative
            ]
    return out


LOADERS = {
    "synthetic": lambda tmp, **kw: datasets.load_synthetic(
        num_users=30, max_history=12, seed=4, **kw
    ),
    "movielens": lambda tmp, **kw: datasets.load_movielens(
        long_ratings(tmp), max_history=8, test_targets_per_user=2, seed=2, **kw
    ),
    "movielens capped": lambda tmp, **kw: datasets.load_movielens(
        long_ratings(tmp), max_history=50, max_samples_per_user=3, **kw
    ),
    "amazon": lambda tmp, **kw: datasets.load_amazon(
        long_reviews(tmp), max_history=6, seed=1, **kw
    ),
}


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_users_layout_gives_the_samples_of_the_samples_layout(tmp_path, loader):
    splits = LOADERS[loader](tmp_path)
    *user_splits, histories = LOADERS[loader](tmp_path, layout="users")
    assert isinstance(histories, datasets.UserHistories)
    for (x, y), (x_users, y_users) in zip(splits, user_splits, strict=True):
        assert set(x_users) == {
            "user",
            "history_end",
            "candidate",
            "candidate_category",
        }
        assert all(value.dtype == np.int32 for value in x_users.values())
        np.testing.assert_array_equal(y_users, y)
        expanded = histories.expand(x_users)
        assert set(expanded) == set(x) | {"history_end"}
        for key in x:
            np.testing.assert_array_equal(expanded[key], x[key], err_msg=key)
        reference = reference_histories(histories, x_users, histories.max_length)
        for key in HISTORY_KEYS:
            np.testing.assert_array_equal(expanded[key], reference[key])
    # Each user's sequence once: far less than a history per sample.
    assert histories.items.size < (splits[0][0]["history"] > 0).sum()


def test_expand_keeps_the_most_recent_behaviours_at_any_length():
    histories = datasets.UserHistories(
        users=[3, 5],
        offsets=[0, 4, 4],  # user 5 has no behaviour
        items=[1, 2, 3, 4],
        negative_items=[5, 5, 6, 6],
        item_categories=[0, 1, 1, 2, 2, 3, 4],
        max_length=3,
    )
    x = {"user": np.array([3, 3, 3, 5]), "history_end": np.array([4, 2, 0, 0])}
    for max_length in (1, 3, 6):
        expanded = histories.expand(x, max_length)
        reference = reference_histories(histories, x, max_length)
        for key in HISTORY_KEYS:
            np.testing.assert_array_equal(expanded[key], reference[key])
    np.testing.assert_array_equal(
        histories.expand(x)["history"], [[2, 3, 4], [1, 2, 0], [0, 0, 0], [0, 0, 0]]
    )
    np.testing.assert_array_equal(
        histories.expand(x)["negative_history_category"][0], [3, 4, 4]
    )
    empty = histories.expand({"user": np.array([], int), "history_end": np.array([])})
    assert empty["history"].shape == (0, 3)


def test_bad_layouts_and_references_are_errors():
    with pytest.raises(ValueError, match="`layout` must be 'samples' or 'users'"):
        datasets.load_synthetic(num_users=5, layout="user")
    histories = datasets.UserHistories([3], [0, 2], [1, 2], [3, 3], [0, 1, 1, 1], 4)
    bad = [
        ({"user": np.array([4]), "history_end": np.array([1])}, "user 4"),
        ({"user": np.array([3]), "history_end": np.array([3])}, "history_end=3"),
        ({"user": np.array([3]), "history_end": np.array([-1])}, "history_end=-1"),
    ]
    for x, message in bad:
        with pytest.raises(ValueError, match=message):
            histories.expand(x)
    with pytest.raises(ValueError, match="`max_length` must be a positive int"):
        histories.expand({"user": np.array([3]), "history_end": np.array([1])}, 0)
    store = dict(
        users=[3, 8], offsets=[0, 2, 3], items=[1, 2, 3], negative_items=[3, 3, 1]
    )
    bad_stores = [
        (dict(offsets=[0, 3]), "one entry more than `users`"),
        (dict(offsets=[1, 2, 3]), "must start at 0"),
        (dict(offsets=[0, 3, 2]), "must not decrease"),
        (dict(offsets=[0, 1, 2]), "must end at the number of `items`"),
        (dict(users=[8, 3]), "`users` must be sorted, each user once"),
        (dict(users=[3, 3]), "`users` must be sorted, each user once"),
        (dict(negative_items=[3, 3]), "one item per behaviour"),
        (dict(items=[1, 2, 4]), "must lie in \\[1, len\\(item_categories\\)\\)"),
        (dict(items=[0, 2, 3]), "must lie in \\[1, len"),
    ]
    for change, message in bad_stores:
        with pytest.raises(ValueError, match=message):
            datasets.UserHistories(
                **{**store, **change}, item_categories=[0, 1, 1, 1], max_length=4
            )
    with pytest.raises(TypeError, match="`items` must hold integers"):
        datasets.UserHistories(
            **{**store, "items": [1.0, 2.0, 3.0]},
            item_categories=[0, 1, 1, 1],
            max_length=4,
        )
    with pytest.raises(ValueError, match="`max_length` must be a positive int"):
        datasets.UserHistories(**store, item_categories=[0, 1, 1, 1], max_length=None)
    with pytest.raises(TypeError, match="`x\\['history_end'\\]` must hold integers"):
        histories.expand({"user": np.array([3]), "history_end": np.array([1.0])})
    with pytest.raises(ValueError, match="one value per sample"):
        histories.expand({"user": np.array([3, 3]), "history_end": np.array([1])})
    with pytest.raises(ValueError, match="must hold 'user' and 'history_end'"):
        histories.expand({"user": np.array([3])})
    for loader in (datasets.load_movielens, datasets.load_amazon):
        with pytest.raises(ValueError, match="`layout` must be"):
            loader("no/such/file", layout="rows")  # before the file is read


def test_stores_with_no_user_or_no_behaviour_give_empty_histories():
    nobody = datasets.UserHistories([], [0], [], [], [0, 1], max_length=3)
    assert nobody.expand({"user": np.array([], int), "history_end": np.array([], int)})[
        "history"
    ].shape == (0, 3)
    with pytest.raises(ValueError, match="user 1, which has no sequence"):
        nobody.expand({"user": np.array([1]), "history_end": np.array([0])})
    idle = datasets.UserHistories([1, 2], [0, 0, 0], [], [], [0, 1], max_length=3)
    expanded = idle.expand({"user": np.array([2, 1]), "history_end": np.array([0, 0])})
    for key in HISTORY_KEYS:
        np.testing.assert_array_equal(expanded[key], np.zeros((2, 3), "int32"))


def test_batches_cover_the_samples_in_order_and_shuffled():
    (x, y), _ = datasets.load_synthetic(num_users=12, seed=1)
    (x_users, y_users), _, histories = datasets.load_synthetic(
        num_users=12, seed=1, layout="users"
    )
    batches = datasets.HistoryBatches(x_users, y_users, histories, batch_size=50)
    assert len(batches) == -(-len(y) // 50)
    parts = [batches[i] for i in range(len(batches))]
    for key in x:
        np.testing.assert_array_equal(
            np.concatenate([p[0][key] for p in parts]), x[key]
        )
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), y)

    keys = ["candidate", "history"]
    shuffled = datasets.HistoryBatches(
        x_users, y_users, histories, batch_size=50, keys=keys, shuffle=True, seed=0
    )
    first_epoch = [shuffled[i] for i in range(len(shuffled))]
    assert all(sorted(batch) == sorted(keys) for batch, _ in first_epoch)
    rows = np.concatenate([batch["candidate"] for batch, _ in first_epoch])
    assert not np.array_equal(rows, x["candidate"])  # a new order
    # Every sample once, its history and label with it.
    combined = np.concatenate(
        [
            np.concatenate([b["candidate"], b["history"], y_[:, None]], axis=1)
            for b, y_ in first_epoch
        ]
    )
    expected = np.concatenate([x["candidate"], x["history"], y[:, None]], axis=1)
    assert sorted(map(tuple, combined.tolist())) == sorted(
        map(tuple, expected.tolist())
    )
    shuffled.on_epoch_end()
    assert not np.array_equal(
        shuffled[0][0]["candidate"], first_epoch[0][0]["candidate"]
    )

    predict_batches = datasets.HistoryBatches(x_users, None, histories, keys=keys)
    assert sorted(predict_batches[0]) == sorted(keys)


def test_batches_take_their_own_max_length_and_refuse_bad_indices():
    (x, y), _, histories = datasets.load_synthetic(num_users=4, layout="users")
    batches = datasets.HistoryBatches(x, y, histories, batch_size=32, max_length=5)
    np.testing.assert_array_equal(
        np.concatenate([batches[i][0]["history"] for i in range(len(batches))]),
        histories.expand(x, 5)["history"],
    )
    np.testing.assert_array_equal(batches[-1][1], batches[len(batches) - 1][1])
    for index in (len(batches), -len(batches) - 1):
        with pytest.raises(
            IndexError, match=f"index {index} .* {len(batches)} batches"
        ):
            batches[index]


def test_bad_batches_are_errors():
    (x, y), _, histories = datasets.load_synthetic(num_users=4, layout="users")
    with pytest.raises(ValueError, match="`shuffle=True` needs labels"):
        datasets.HistoryBatches(x, None, histories, shuffle=True)
    with pytest.raises(ValueError, match="`keys` must name arrays.*'clicks'"):
        datasets.HistoryBatches(x, y, histories, keys=["history", "clicks"])
    with pytest.raises(ValueError, match="same number of samples"):
        datasets.HistoryBatches(x, y[:-1], histories)
    with pytest.raises(ValueError, match="`batch_size` must be a positive int"):
        datasets.HistoryBatches(x, y, histories, batch_size=0)


def din(max_length):
    features = [Feature("candidate", 1001), Feature("candidate_category", 51)]
    shares = {"history": "candidate", "history_category": "candidate_category"}
    history = BehaviorSequence("history", shares, max_length=max_length)
    return DIN(
        features,
        [history],
        att_hidden_units=(8,),
        dnn_hidden_units=(8,),
        att_activation="sigmoid",
        dnn_activation="relu",
    )


def test_model_trains_and_predicts_alike_on_both_layouts():
    (x, y), (x_test, _) = datasets.load_synthetic(num_users=20, seed=2)
    (x_users, y_users), (x_test_users, _), histories = datasets.load_synthetic(
        num_users=20, seed=2, layout="users"
    )
    models = []
    for stored_once in (False, True):
        keras.utils.set_random_seed(0)
        model = din(20)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy")
        keys = list(model.input)
        if stored_once:
            data = datasets.HistoryBatches(
                x_users, y_users, histories, batch_size=64, keys=keys
            )
            # shuffle=False: Keras draws a PyDataset's batches in a new
            # order every epoch by default.
            model.fit(data, epochs=2, shuffle=False, verbose=0)
            test = datasets.HistoryBatches(
                x_test_users, None, histories, batch_size=64, keys=keys
            )
        else:
            model.fit(
                {k: x[k] for k in keys},
                y,
                batch_size=64,
                epochs=2,
                shuffle=False,
                verbose=0,
            )
            test = {k: x_test[k] for k in keys}
        models.append((model, model.predict(test, verbose=0)))
    (first, first_scores), (second, second_scores) = models
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(first_scores, second_scores, rtol=1e-5, atol=1e-6)


def test_builders_count_frequencies_over_batches_as_over_arrays():
    (x, y), _ = datasets.load_synthetic(num_users=15, seed=5)
    (x_users, y_users), _, histories = datasets.load_synthetic(
        num_users=15, seed=5, layout="users"
    )
    batches = datasets.HistoryBatches(x_users, y_users, histories, batch_size=40)
    features = [Feature("candidate", 1001), Feature("candidate_category", 51)]
    shares = {"history": "candidate", "history_category": "candidate_category"}
    history = BehaviorSequence("history", shares, max_length=20)
    for frequencies in (x, batches):
        model = DIN(features, [history], embedding_l2=0.01, frequencies=frequencies)
        counts = [
            keras.ops.convert_to_numpy(
                model.get_layer("embedding").tables[name].frequencies
            )
            for name in ("candidate", "candidate_category")
        ]
        if frequencies is x:
            expected = counts
        else:
            for got, want in zip(counts, expected, strict=True):
                np.testing.assert_array_equal(got, want)
    # The arrays' own count, independently: every candidate and every
    # history id (0 is padding).
    items = np.concatenate([x["candidate"].ravel(), x["history"].ravel()])
    np.testing.assert_array_equal(
        expected[0][1:], np.bincount(items, minlength=1001)[1:]
    )
    with pytest.raises(TypeError, match="or a keras.utils.PyDataset"):
        DIN(features, [history], frequencies=[x])
