"""The data toolkit: the synthetic generator and the loaders of real formats."""

import csv
import gzip
import io
import json

import numpy as np
import pytest

from keras_din import datasets

KEYS = {
    "user",
    "history",
    "history_category",
    "negative_history",
    "negative_history_category",
    "candidate",
    "candidate_category",
}
SEQUENCES = ("history", "history_category", "negative_history")


def check_layout(x, y, max_history):
    assert set(x) == KEYS
    n = y.shape[0]
    assert x["user"].shape == (n,)
    for key in (*SEQUENCES, "negative_history_category"):
        assert x[key].shape == (n, max_history)
    assert x["candidate"].shape == x["candidate_category"].shape == (n, 1)
    assert all(v.dtype == np.int32 for v in x.values()) and y.dtype == np.float32
    # Every sequence is padding (0) exactly where the history is, and padding
    # only at the end.
    valid = x["history"] > 0
    for key in (*SEQUENCES, "negative_history_category"):
        np.testing.assert_array_equal(x[key] > 0, valid)
    assert not np.any(~valid[:, :-1] & valid[:, 1:])
    assert np.all(x["candidate"] > 0) and np.all(x["candidate_category"] > 0)
    # A negative step is an item outside the user's history (where the
    # catalogue has one: every loader here leaves each user some).
    for user in np.unique(x["user"]):
        rows = x["user"] == user
        seen = set(x["history"][rows].ravel()) - {0}
        negatives = set(x["negative_history"][rows].ravel()) - {0}
        assert not negatives & seen, (user, negatives & seen)


# --- synthetic ---------------------------------------------------------------


def test_synthetic_layout_and_determinism():
    kwargs = dict(num_users=50, num_items=80, num_categories=8, max_history=10)
    (x, y), (xt, yt) = datasets.load_synthetic(seed=3, **kwargs)
    check_layout(x, y, 10)
    check_layout(xt, yt, 10)
    assert y.shape == (50 * 15,) and yt.shape == (50 * 5,)
    # Every user is in both splits; labels are not constant.
    assert set(x["user"]) == set(xt["user"]) == set(range(50))
    assert 0.1 < y.mean() < 0.9
    # A user's history, and so its negative steps, is the same in every sample.
    rows = x["user"] == 0
    assert len(np.unique(x["negative_history"][rows], axis=0)) == 1
    # The negatives' categories are their items' (one category per item).
    items = np.concatenate([x["history"], x["negative_history"]]).ravel()
    categories = np.concatenate(
        [x["history_category"], x["negative_history_category"]]
    ).ravel()
    for item in np.unique(items):
        assert len(np.unique(categories[items == item])) == 1
    (x2, y2), (xt2, yt2) = datasets.load_synthetic(seed=3, **kwargs)
    for key in KEYS:
        np.testing.assert_array_equal(x[key], x2[key])
        np.testing.assert_array_equal(xt[key], xt2[key])
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(yt, yt2)
    (x3, _), _ = datasets.load_synthetic(seed=4, **kwargs)
    assert not np.array_equal(x["history"], x3["history"])


def test_synthetic_clicks_follow_matching_history_items():
    (x, y), _ = datasets.load_synthetic(num_users=400, seed=0)
    matches = np.sum(x["history_category"] == x["candidate_category"], axis=1)
    assert y[matches == 0].mean() + 0.3 < y[matches >= 2].mean()


def test_synthetic_bad_arguments():
    with pytest.raises(ValueError, match="num_categories"):
        datasets.load_synthetic(num_items=5, num_categories=10)
    with pytest.raises(ValueError, match="max_history"):
        datasets.load_synthetic(max_history=0)


# --- MovieLens -----------------------------------------------------------------

# user 1 rates movies 10, 20, 30, 40 (lines out of time order); user 2 rates
# 20 and 50; user 3 only 10 (too short for a sample).
RATINGS = """\
1::30::4::300
1::10::5::100
1::20::3::200
1::40::1::400
2::50::2::20
2::20::4::10
3::10::5::5
"""
MOVIES = """\
10::Toy Story (1995)::Animation|Children's|Comedy
20::Jumanji (1995)::Adventure|Children's|Fantasy
30::Heat (1995)::Action|Crime|Thriller
40::Sabrina (1995)::Comedy|Romance
50::Caf\xe9 (1995)::Comedy
"""


def write_movielens(folder, movies=True):
    (folder / "ratings.dat").write_text(RATINGS)
    if movies:
        (folder / "movies.dat").write_text(MOVIES, encoding="latin-1")
    return folder / "ratings.dat"


def test_movielens_samples(tmp_path):
    path = write_movielens(tmp_path)
    (x, y), (xt, yt) = datasets.load_movielens(path, max_history=2, seed=0)
    check_layout(x, y, 2)
    check_layout(xt, yt, 2)
    # Movies 10..50 -> ids 1..5; genres alphabetically: Action 1, Adventure 2,
    # Animation 3, Comedy 4.
    # User 1, time order 10, 20, 30, 40: train targets 20, 30; test 40.
    # User 2, time order 20, 50: test target 50 only.
    np.testing.assert_array_equal(y, [1, 0, 1, 0])
    np.testing.assert_array_equal(x["user"], [1, 1, 1, 1])
    np.testing.assert_array_equal(x["candidate"][::2, 0], [2, 3])
    np.testing.assert_array_equal(x["history"], [[1, 0], [1, 0], [1, 2], [1, 2]])
    np.testing.assert_array_equal(x["candidate_category"][::2, 0], [2, 1])
    np.testing.assert_array_equal(yt, [1, 0, 1, 0])
    np.testing.assert_array_equal(xt["user"], [1, 1, 2, 2])
    np.testing.assert_array_equal(xt["candidate"][::2, 0], [4, 5])
    # The most recent two movies before 40 (10 is cut), then user 2's one.
    np.testing.assert_array_equal(xt["history"][::2], [[2, 3], [2, 0]])
    np.testing.assert_array_equal(xt["history_category"][::2], [[2, 1], [2, 0]])
    np.testing.assert_array_equal(xt["candidate_category"][::2, 0], [4, 4])
    # Negatives are movies the user never rated: for user 1 only movie 50
    # (id 5, Comedy), at every step as for the candidate.
    assert set(x["candidate"][1::2, 0]) | {xt["candidate"][1, 0]} <= {5}
    assert xt["candidate"][3, 0] in {1, 3, 4}
    np.testing.assert_array_equal(
        x["negative_history"], [[5, 0], [5, 0], [5, 5], [5, 5]]
    )
    np.testing.assert_array_equal(x["negative_history_category"][2], [4, 4])
    np.testing.assert_array_equal(xt["negative_history"][:2], [[5, 5], [5, 5]])
    assert xt["negative_history"][2, 0] in {1, 3, 4}


def test_negative_steps_are_drawn_once_per_user_and_step(tmp_path):
    # Two users rate 30 of 90 movies each: many possible negatives per step.
    rng = np.random.default_rng(0)
    lines = [
        f"{user}::{movie}::4::{time}"
        for user in (1, 2)
        for time, movie in enumerate(rng.choice(90, size=30, replace=False) + 1)
    ]
    path = tmp_path / "ratings.dat"
    path.write_text("\n".join(lines) + "\n")
    (x, y), (xt, yt) = datasets.load_movielens(path, max_history=40, seed=3)
    check_layout(x, y, 40)
    check_layout(xt, yt, 40)
    for user in (1, 2):
        rows = np.concatenate([x["negative_history"], xt["negative_history"]])[
            np.concatenate([x["user"], xt["user"]]) == user
        ]
        # The longest history's negatives start every shorter one.
        longest = rows[np.argmax((rows > 0).sum(axis=1))]
        for row in rows:
            length = int((row > 0).sum())
            np.testing.assert_array_equal(row[:length], longest[:length])
        assert len(set(longest[longest > 0])) > 10  # not one repeated item
    # Another seed, other negatives.
    (x4, _), _ = datasets.load_movielens(path, max_history=40, seed=4)
    assert not np.array_equal(x["negative_history"], x4["negative_history"])


def test_movielens_is_deterministic_and_finds_the_file(tmp_path):
    write_movielens(tmp_path)
    first = datasets.load_movielens(tmp_path, seed=7)  # the folder
    second = datasets.load_movielens(tmp_path / "ratings.dat", seed=7)
    for (x1, y1), (x2, y2) in zip(first, second, strict=True):
        np.testing.assert_array_equal(y1, y2)
        for key in KEYS:
            np.testing.assert_array_equal(x1[key], x2[key])


def test_movielens_without_movies_file_and_capped(tmp_path):
    path = write_movielens(tmp_path, movies=False)
    (x, y), (xt, _) = datasets.load_movielens(path, max_samples_per_user=1)
    assert np.all(x["candidate_category"] == 1) and np.all(
        xt["candidate_category"] == 1
    )
    # User 1 keeps only the latest training target (30).
    np.testing.assert_array_equal(x["candidate"][::2, 0], [3])


def test_movielens_gzip(tmp_path):
    with gzip.open(tmp_path / "ratings.dat.gz", "wt") as handle:
        handle.write(RATINGS)
    (x, _), _ = datasets.load_movielens(tmp_path / "ratings.dat.gz")
    assert x["candidate"].shape == (4, 1)


def test_movielens_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.dat"):
        datasets.load_movielens(tmp_path / "nowhere.dat")
    with pytest.raises(FileNotFoundError, match="none of ratings.dat, u.data"):
        datasets.load_movielens(tmp_path)
    path = tmp_path / "ratings.dat"
    path.write_text("1::10::5::100\n1::20::3::200\n1::x::3::300\n")
    with pytest.raises(ValueError, match=r"ratings\.dat, line 3: expected") as info:
        datasets.load_movielens(path)
    assert "1::x::3::300" in str(info.value)
    path.write_text("1,10,5,100\n")
    with pytest.raises(ValueError, match="line 1"):
        datasets.load_movielens(path)


def test_empty_movielens_ratings_is_an_error(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("")
    with pytest.raises(ValueError, match=r"ratings\.dat: no ratings found"):
        datasets.load_movielens(path)
    # Ratings, but no user with two: no samples at all.
    path.write_text("1::10::5::100\n2::20::3::200\n")
    with pytest.raises(ValueError, match=r"ratings\.dat: no samples"):
        datasets.load_movielens(path)


@pytest.mark.parametrize("user", [2**31, -1])
def test_movielens_user_id_outside_int32_is_an_error(tmp_path, user):
    path = tmp_path / "ratings.dat"
    path.write_text(f"1::10::5::100\n{user}::20::3::200\n")
    with pytest.raises(ValueError, match=r"ratings\.dat, line 2: expected a UserID"):
        datasets.load_movielens(path)
    # The largest int32 id loads, kept as it is.
    path.write_text(f"{2**31 - 1}::10::5::100\n{2**31 - 1}::20::3::200\n")
    _, (xt, _) = datasets.load_movielens(path)
    assert np.all(xt["user"] == 2**31 - 1)


def test_gz_file_that_is_not_gzip_is_an_error(tmp_path):
    path = tmp_path / "ratings.dat.gz"
    path.write_text(RATINGS)  # plain text under a .gz name
    with pytest.raises(ValueError, match=r"ratings\.dat\.gz: expected gzip"):
        datasets.load_movielens(path)
    # A gzip file cut short fails the same way, after the lines it read.
    with gzip.open(path, "wt") as handle:
        handle.write(RATINGS * 50)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(ValueError, match=r"ratings\.dat\.gz: expected gzip"):
        datasets.load_movielens(path)


def test_exact_duplicate_rows_count_once(tmp_path):
    expected = datasets.load_movielens(write_movielens(tmp_path), max_history=2)
    # RATINGS plus a copy of user 1's last rating (the test target) and of
    # 20@200 with another rating value (a corrected, merged export).
    folder = tmp_path / "merged"
    folder.mkdir()
    path = write_movielens(folder)
    path.write_text(RATINGS + "1::40::1::400\n1::20::5::200\n")
    actual = datasets.load_movielens(path, max_history=2)
    # As RATINGS alone: user 1's training targets 20, 30 (ids 2, 3), test
    # targets 40 (user 1) and 50 (user 2); no target in its own history.
    (x, _), (xt, _) = actual
    np.testing.assert_array_equal(x["candidate"][::2, 0], [2, 3])
    np.testing.assert_array_equal(x["history"][::2], [[1, 0], [1, 2]])
    np.testing.assert_array_equal(xt["candidate"][::2, 0], [4, 5])
    np.testing.assert_array_equal(xt["history"][::2], [[2, 3], [2, 0]])
    for (x, y), (xe, ye) in zip(actual, expected, strict=True):
        np.testing.assert_array_equal(y, ye)
        for key in KEYS:
            np.testing.assert_array_equal(x[key], xe[key], err_msg=key)
    # The same movie rated at another time is another interaction: 20 again
    # at 500 is user 1's test target, and 40 a training target.
    path.write_text(RATINGS + "1::20::4::500\n")
    (x, _), (xt, _) = datasets.load_movielens(path, max_history=2)
    np.testing.assert_array_equal(x["candidate"][::2, 0], [2, 3, 4])
    np.testing.assert_array_equal(xt["candidate"][::2, 0], [2, 5])
    np.testing.assert_array_equal(xt["history"][0], [3, 4])


def with_byte_order_mark(folder, compressed):
    """Rewrites every file in `folder` to start with a UTF-8 byte-order
    mark, gzip-compressed as `<name>.gz` where `compressed`."""
    for path in list(folder.iterdir()):
        data = b"\xef\xbb\xbf" + path.read_bytes()
        if compressed:
            path.unlink()
            path = path.with_name(path.name + ".gz")
            data = gzip.compress(data)
        path.write_bytes(data)


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("release", ["1m", "100k", "10m", "latest"])
def test_utf8_byte_order_mark_is_accepted(tmp_path, release, compressed):
    folders = []
    for name in ("plain", "bom"):
        folder = tmp_path / name
        folder.mkdir()
        if release == "1m":
            write_movielens(folder)
        else:
            write_release(folder, release)
        folders.append(folder)
    with_byte_order_mark(folders[1], compressed)
    expected, actual = (datasets.load_movielens(f, max_history=2) for f in folders)
    for (x, y), (xe, ye) in zip(actual, expected, strict=True):
        np.testing.assert_array_equal(y, ye)
        for key in KEYS:
            np.testing.assert_array_equal(x[key], xe[key], err_msg=key)
    # The movies file was read too: not all one category.
    assert len(np.unique(actual[0][0]["candidate_category"])) > 1


def write_release(folder, release):
    """RATINGS and MOVIES in the files of another MovieLens release."""
    ratings = [line.split("::") for line in RATINGS.splitlines()]
    movies = [line.split("::") for line in MOVIES.splitlines()]
    if release == "100k":
        rows = "".join(f"{u}\t{m}\t{r}\t{t}\n" for u, m, r, t in ratings)
        (folder / "u.data").write_text(rows)
        lines = []
        for movie, title, genres in movies:
            flags = ["1" if g in genres.split("|") else "0" for g in GENRES_100K]
            lines.append(f"{movie}|{title}|01-Jan-1995||http://x|" + "|".join(flags))
        (folder / "u.item").write_text("\n".join(lines) + "\n", encoding="latin-1")
    elif release == "10m":  # half stars
        rows = "".join(f"{u}::{m}::{r}.5::{t}\n" for u, m, r, t in ratings)
        (folder / "ratings.dat").write_text(rows)
        (folder / "movies.dat").write_text(MOVIES, encoding="latin-1")
    else:  # "latest": CSV with headers, quoted titles, UTF-8
        for name, header, rows in (
            ("ratings.csv", ["userId", "movieId", "rating", "timestamp"], ratings),
            (
                "movies.csv",
                ["movieId", "title", "genres"],
                [(m, f"{title}, The", genres) for m, title, genres in movies],
            ),
        ):
            text = io.StringIO()
            csv.writer(text, lineterminator="\n").writerows([header, *rows])
            (folder / name).write_text(text.getvalue(), encoding="utf-8")
    return folder


GENRES_100K = (
    "unknown|Action|Adventure|Animation|Children's|Comedy|Crime|Documentary|"
    "Drama|Fantasy|Film-Noir|Horror|Musical|Mystery|Romance|Sci-Fi|Thriller|War|"
    "Western"
).split("|")


@pytest.mark.parametrize("release", ["100k", "10m", "latest"])
def test_every_movielens_release_gives_the_samples_of_1m(tmp_path, release):
    expected = datasets.load_movielens(write_movielens(tmp_path), max_history=2)
    folder = tmp_path / release
    folder.mkdir()
    write_release(folder, release)
    actual = datasets.load_movielens(folder, max_history=2)  # found in the folder
    for (x, y), (xe, ye) in zip(actual, expected, strict=True):
        np.testing.assert_array_equal(y, ye)
        for key in KEYS:
            np.testing.assert_array_equal(x[key], xe[key], err_msg=key)
    # The genres were read: not all one category.
    assert len(np.unique(actual[0][0]["candidate_category"])) > 1


@pytest.mark.parametrize(
    "release, name, line, number, expected",
    [
        ("100k", "u.data", "1\t10\t5", 2, "expected `user id<TAB>item id"),
        ("100k", "u.item", "10|Toy|x||u|1|0", 1, "expected `movie id|title"),
        ("10m", "ratings.dat", "1::10::good::100", 2, "expected `UserID::MovieID"),
        (
            "latest",
            "ratings.csv",
            "userId,movie,rating,timestamp",
            1,
            "expected the header",
        ),
        ("latest", "ratings.csv", "1,x,4.0,100", 2, "expected `userId,movieId"),
        ("latest", "movies.csv", "10,Toy", 2, "expected `movieId,title,genres`"),
    ],
)
def test_malformed_line_of_every_release_names_file_and_line(
    tmp_path, release, name, line, number, expected
):
    folder = write_release(tmp_path, release)
    lines = (folder / name).read_text(encoding="latin-1").splitlines()
    lines[number - 1] = line
    (folder / name).write_text("\n".join(lines) + "\n", encoding="latin-1")
    with pytest.raises(ValueError, match=f"{name}, line {number}: {expected}"):
        datasets.load_movielens(folder)


def test_test_targets_per_user_keeps_the_last_targets_for_testing(tmp_path):
    path = write_movielens(tmp_path)
    (x, _), (xt, _) = datasets.load_movielens(
        path, max_history=2, test_targets_per_user=2
    )
    # User 1's targets 20, 30, 40 (ids 2, 3, 4): 30 and 40 are test targets
    # now; user 2's only target (50) stays one.
    np.testing.assert_array_equal(x["candidate"][::2, 0], [2])
    np.testing.assert_array_equal(xt["user"][::2], [1, 1, 2])
    np.testing.assert_array_equal(xt["candidate"][::2, 0], [3, 4, 5])
    np.testing.assert_array_equal(xt["history"][::2], [[1, 2], [2, 3], [2, 0]])
    # With the cap: the two test targets, then one training target.
    (x, _), _ = datasets.load_movielens(
        path, max_samples_per_user=1, test_targets_per_user=2
    )
    np.testing.assert_array_equal(x["candidate"][::2, 0], [2])
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="`test_targets_per_user` must be"):
            datasets.load_movielens(path, test_targets_per_user=bad)


# --- Amazon --------------------------------------------------------------------


def review(user, asin, time):
    return json.dumps(
        {
            "reviewerID": user,
            "asin": asin,
            "reviewerName": "someone",
            "helpful": [0, 0],
            "reviewText": "works",
            "overall": 5.0,
            "summary": "ok",
            "unixReviewTime": time,
            "reviewTime": "01 1, 2014",
        }
    )


REVIEWS = "\n".join(
    [
        review("U2", "B003", 30),
        review("U2", "B001", 10),
        review("U2", "B002", 20),
        review("U1", "B002", 5),
        review("U1", "B004", 6),
    ]
)
# The original metadata: Python dict literals (single quotes).
META_LITERAL = """\
{'asin': 'B001', 'title': 'Cable', 'categories': [['Electronics', 'Cables']]}
{'asin': 'B002', 'categories': [['Electronics', 'Audio'], ['E', 'Headphones']]}
{'asin': 'B003', 'salesRank': {'Electronics': 5}, 'categories': [['E', 'Audio']]}
{'asin': 'B999', 'categories': [['Electronics', 'Unused']]}
"""
# The newer metadata: JSON with one `category` path; B004 has none.
META_JSON = "\n".join(
    [
        json.dumps({"asin": "B001", "category": ["Electronics", "Cables"]}),
        json.dumps({"asin": "B002", "category": ["Electronics", "Headphones"]}),
        json.dumps({"asin": "B003", "category": ["Electronics", "Audio"]}),
    ]
)


@pytest.mark.parametrize("meta", [META_LITERAL, META_JSON], ids=["literal", "json"])
def test_amazon_samples(tmp_path, meta):
    (tmp_path / "reviews_Electronics_5.json").write_text(REVIEWS)
    (tmp_path / "meta_Electronics.json").write_text(meta)
    (x, y), (xt, yt) = datasets.load_amazon(tmp_path, max_history=3, seed=1)
    check_layout(x, y, 3)
    check_layout(xt, yt, 3)
    # Products B001..B004 -> 1..4; users U1 -> 1, U2 -> 2. Categories:
    # "" (B004, no metadata) 1, Audio 2, Cables 3, Headphones 4.
    # U2 in time order: B001, B002, B003; U1: B002, B004.
    np.testing.assert_array_equal(y, [1, 0])
    np.testing.assert_array_equal(x["user"], [2, 2])
    np.testing.assert_array_equal(x["candidate"][0], [2])
    np.testing.assert_array_equal(x["history"][0], [1, 0, 0])
    np.testing.assert_array_equal(x["history_category"][0], [3, 0, 0])
    np.testing.assert_array_equal(x["candidate_category"][0], [4])
    assert x["candidate"][1, 0] == 4  # the one product U2 never reviewed
    np.testing.assert_array_equal(x["negative_history"][0], [4, 0, 0])
    np.testing.assert_array_equal(x["negative_history_category"][0], [1, 0, 0])
    np.testing.assert_array_equal(xt["user"], [1, 1, 2, 2])
    np.testing.assert_array_equal(xt["candidate"][::2, 0], [4, 3])
    np.testing.assert_array_equal(xt["candidate_category"][::2, 0], [1, 2])
    np.testing.assert_array_equal(xt["history"][::2], [[2, 0, 0], [1, 2, 0]])


def test_amazon_gzip_and_explicit_meta(tmp_path):
    with gzip.open(tmp_path / "reviews.json.gz", "wt") as handle:
        handle.write(REVIEWS)
    (tmp_path / "meta.json").write_text(META_LITERAL)
    (x, _), _ = datasets.load_amazon(
        tmp_path / "reviews.json.gz", meta_path=tmp_path / "meta.json"
    )
    np.testing.assert_array_equal(x["candidate_category"][0], [4])
    # Without metadata every product has the one category 1.
    (x, _), _ = datasets.load_amazon(tmp_path / "reviews.json.gz")
    assert np.all(x["candidate_category"] == 1)


def test_amazon_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="reviews_Electronics_5.json"):
        datasets.load_amazon(tmp_path)
    reviews = tmp_path / "reviews.json"
    reviews.write_text(review("U1", "B1", 1) + '\n{"reviewerID": "U1", "asin": "B2"}\n')
    with pytest.raises(ValueError, match=r"reviews\.json, line 2: expected"):
        datasets.load_amazon(reviews)
    reviews.write_text(review("U1", "B1", 1) + "\n\nnot json at all\n")
    with pytest.raises(ValueError, match="line 3"):
        datasets.load_amazon(reviews)
    reviews.write_text(REVIEWS)
    meta = tmp_path / "meta.json"
    meta.write_text("{'asin': 'B001', 'categories': [['A']]}\n{'asin': 'B002', \n")
    with pytest.raises(ValueError, match=r"meta\.json, line 2: expected"):
        datasets.load_amazon(reviews, meta_path=meta)
    with pytest.raises(FileNotFoundError, match="missing_meta.json"):
        datasets.load_amazon(reviews, meta_path=tmp_path / "missing_meta.json")


@pytest.mark.parametrize("compressed", [False, True])
def test_non_utf8_amazon_line_is_an_error(tmp_path, compressed):
    lines = [review("U1", "B1", 1), review("U1", "B2", 2), review("U2", "B1", 3)]
    data = "\n".join(lines).encode()
    data = data.replace(b"works", b"w\xffrks", 1)  # in the first line
    data = data.replace(b"someone", b"some\xe9one", 3)  # Latin-1, lines 1-3
    path = tmp_path / ("reviews.json.gz" if compressed else "reviews.json")
    path.write_bytes(gzip.compress(data) if compressed else data)
    with pytest.raises(
        ValueError, match=r"reviews\.json(\.gz)?, line 1: expected utf-8"
    ):
        datasets.load_amazon(path)
    # The error names the first bad line, not the chunk a decoder read.
    data = (
        "\n".join(lines).encode() + b"\n" + lines[0].encode().replace(b"U1", b"\xff1")
    )
    path.write_bytes(gzip.compress(data) if compressed else data)
    with pytest.raises(
        ValueError, match="line 4: expected utf-8 text. Received: byte 0xff"
    ):
        datasets.load_amazon(path)


def test_amazon_reviews_with_no_repeat_user_is_an_error(tmp_path):
    path = tmp_path / "reviews.json"
    path.write_text(review("U1", "B1", 1) + "\n" + review("U2", "B1", 2) + "\n")
    with pytest.raises(ValueError, match=r"reviews\.json: no samples"):
        datasets.load_amazon(path)


def test_amazon_test_targets_per_user(tmp_path):
    (tmp_path / "reviews_Electronics_5.json").write_text(REVIEWS)
    (x, _), (xt, _) = datasets.load_amazon(tmp_path, test_targets_per_user=2)
    # U2's targets B002 and B003 are both test targets: nothing to train on.
    assert len(x["user"]) == 0
    np.testing.assert_array_equal(xt["candidate"][::2, 0], [4, 2, 3])


def test_exact_duplicate_reviews_count_once(tmp_path):
    # U2's last review (its test target) twice, and its first review again
    # with another text: the same interactions as REVIEWS.
    copy = json.loads(review("U2", "B001", 10))
    copy["reviewText"] = "edited"
    lines = [REVIEWS, review("U2", "B003", 30), json.dumps(copy)]
    (tmp_path / "reviews_Electronics_5.json").write_text("\n".join(lines))
    (x, _), (xt, _) = datasets.load_amazon(tmp_path, max_history=3)
    # U2 (B001, B002, B003): training target B002 (id 2) after B001, test
    # target B003 after B001, B002; U1 (B002, B004): test target B004.
    np.testing.assert_array_equal(x["user"], [2, 2])
    np.testing.assert_array_equal(x["candidate"][0], [2])
    np.testing.assert_array_equal(x["history"][0], [1, 0, 0])
    np.testing.assert_array_equal(xt["user"], [1, 1, 2, 2])
    np.testing.assert_array_equal(xt["candidate"][::2, 0], [4, 3])
    np.testing.assert_array_equal(xt["history"][::2], [[2, 0, 0], [1, 2, 0]])
    # The same product reviewed at another time is another interaction.
    lines = [REVIEWS, review("U2", "B001", 40)]
    (tmp_path / "reviews_Electronics_5.json").write_text("\n".join(lines))
    (x, _), (xt, _) = datasets.load_amazon(tmp_path, max_history=3)
    np.testing.assert_array_equal(x["candidate"][::2, 0], [2, 3])
    np.testing.assert_array_equal(xt["candidate"][::2, 0], [4, 1])
    np.testing.assert_array_equal(xt["history"][2], [1, 2, 3])


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("meta", [META_LITERAL, META_JSON], ids=["literal", "json"])
def test_utf8_byte_order_mark_is_accepted_in_amazon_files(tmp_path, meta, compressed):
    folders = []
    for name in ("plain", "bom"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "reviews_Electronics_5.json").write_text(REVIEWS)
        (folder / "meta_Electronics.json").write_text(meta)
        folders.append(folder)
    with_byte_order_mark(folders[1], compressed)
    expected, actual = (datasets.load_amazon(f, max_history=3) for f in folders)
    for (x, y), (xe, ye) in zip(actual, expected, strict=True):
        np.testing.assert_array_equal(y, ye)
        for key in KEYS:
            np.testing.assert_array_equal(x[key], xe[key], err_msg=key)
    # The metadata was read too: B002 is Headphones (4), not "" (1).
    np.testing.assert_array_equal(actual[0][0]["candidate_category"][0], [4])
