"""MovieLens (100K, 1M, 10M and "latest") as DIN samples."""

import csv
import dataclasses
import glob
import os

import numpy as np

from keras_din.datasets._samples import check_layout
from keras_din.datasets._samples import fetch
from keras_din.datasets._samples import malformed
from keras_din.datasets._samples import open_lines
from keras_din.datasets._samples import sequences_to_samples
from keras_din.datasets._samples import time_ordered

ML_1M_URL = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
# Users keep their ids, which the samples hold as int32.
MAX_USER_ID = 2**31 - 1
USER_ID_RANGE = f"a UserID in [0, {MAX_USER_ID}] (users keep their ids, as int32)"
# The genres of MovieLens-100K, in the order of the flags of `u.item` (as
# `u.genre` lists them).
GENRES_100K = (
    "unknown|Action|Adventure|Animation|Children's|Comedy|Crime|Documentary|"
    "Drama|Fantasy|Film-Noir|Horror|Musical|Mystery|Romance|Sci-Fi|Thriller|War|"
    "Western"
).split("|")


@dataclasses.dataclass(frozen=True)
class _Layout:
    """The files of one MovieLens release and how their lines read."""

    ratings: str  # the ratings file name
    movies: str  # the movies file name, beside it
    encoding: str
    separators: tuple  # of the ratings and the movies files; "," means CSV
    ratings_format: str
    movies_format: str
    header: bool  # whether both files start with a header line

    def fields(self, line, separator):
        if separator == ",":
            return next(csv.reader([line]))
        return line.split(separator)


LAYOUTS = (
    # MovieLens-1M and 10M (10M rates in half stars).
    _Layout(
        "ratings.dat",
        "movies.dat",
        "latin-1",
        ("::", "::"),
        "`UserID::MovieID::Rating::Timestamp` with integer ids and timestamp",
        "`MovieID::Title::Genres` with an integer MovieID",
        header=False,
    ),
    # MovieLens-100K.
    _Layout(
        "u.data",
        "u.item",
        "latin-1",
        ("\t", "|"),
        "`user id<TAB>item id<TAB>rating<TAB>timestamp` with integer fields",
        "`movie id|title|release date|video release date|IMDb URL` and 19 genre "
        "flags of 0 or 1",
        header=False,
    ),
    # MovieLens "latest" (and 20M, 25M, 32M).
    _Layout(
        "ratings.csv",
        "movies.csv",
        "utf-8",
        (",", ","),
        "`userId,movieId,rating,timestamp` with integer ids and timestamp",
        "`movieId,title,genres` with an integer movieId",
        header=True,
    ),
)


def load_movielens(
    path=None,
    max_history=20,
    max_samples_per_user=None,
    test_targets_per_user=1,
    seed=0,
    layout="samples",
):
    """Loads MovieLens ratings as leave-last-out DIN samples.

    Reads MovieLens-100K (`u.data`, with `u.item` for the genres),
    MovieLens-1M and 10M (`ratings.dat`, `movies.dat`) and the CSV releases
    ("latest", 20M, 25M, 32M: `ratings.csv`, `movies.csv`). Every rating
    counts as an interaction. The movies each user rated, in time order
    (ties in file order), form the behaviour sequence: the last
    `test_targets_per_user` are the user's test targets, every earlier one
    from the second on a training target, and the history of a target is
    the movies rated before it. Each target gives a positive sample and a
    negative one whose candidate is a random movie the user never rated. A
    movie's category is its first genre, read from the movies file beside
    the ratings; without that file every movie gets the same category.

    Rows with the same user, movie and timestamp (a re-exported or merged
    file) are one interaction, whatever their rating values (the samples do
    not use them); the same movie rated at another time is another one.

    Args:
        path: str or `None`. The ratings file, or a directory that holds one
            (searched recursively, in the order `ratings.dat`, `u.data`,
            `ratings.csv`). `None` downloads MovieLens-1M (`ml-1m.zip`) with
            `keras.utils.get_file` (cached in `~/.keras/datasets/keras_din`).
            Files ending in `.gz` are read compressed, and a file may start
            with a UTF-8 byte-order mark (as Excel writes). Defaults to
            `None`.
        max_history: int. Histories keep the most recent `max_history`
            movies. Defaults to `20`.
        max_samples_per_user: int or `None`. Keep only the latest
            `max_samples_per_user` training targets of each user. Defaults to
            `None` (all of them).
        test_targets_per_user: int. How many of each user's last targets are
            test targets (a user with fewer targets has only test ones).
            More than one makes GAUC steadier on small data. Defaults to `1`.
        seed: int. Seed of the negative sampling. Defaults to `0`.
        layout: `"samples"` or `"users"`. Where the histories are: in every
            sample (`"samples"`, `(N, max_history)` ids for each of the four
            history arrays), or stored once per user in a
            `keras_din.datasets.UserHistories` returned third (`"users"`),
            the samples holding `"history_end"` instead (the number of the
            user's behaviours before the target); `UserHistories.expand`
            and `keras_din.datasets.HistoryBatches` give the same arrays.
            Defaults to `"samples"`.

    Returns:
        `(x_train, y_train), (x_test, y_test)` as `load_synthetic` returns
        them (with `layout="users"`, and the `UserHistories` third).
        Movie ids are renumbered `1..num_movies` in order of their
        original ids, genres `1..num_genres` alphabetically, users keep their
        ids.

    Examples:

        A user who rated three movies gives one training target (its second
        movie) and one test target (its last), each a positive and a negative
        sample:

        >>> import os, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> with open(os.path.join(folder, "ratings.dat"), "w") as ratings:
        ...     for line in ["1::10::5::100", "1::20::4::200", "1::30::3::300",
        ...                  "2::40::5::100"]:
        ...         print(line, file=ratings)
        >>> (x_train, y_train), (x_test, y_test) = load_movielens(folder)
        >>> x_train["candidate"][:, 0], x_train["history"][:, :2], y_train
        (array([2, 4], dtype=int32), array([[1, 0],
               [1, 0]], dtype=int32), array([1., 0.], dtype=float32))
        >>> x_test["history"][0, :3]
        array([1, 2, 0], dtype=int32)

    Raises:
        FileNotFoundError: if no ratings file is found.
        ValueError: naming the file (and the line): on a malformed line, a
            user id outside the int32 range, a `.gz` file that is not gzip
            data, an empty file, or one where no user has two ratings.
    """
    check_layout(layout)
    ratings_path = _ratings_path(path)
    release = _layout_of(ratings_path)
    user_items = _read_ratings(ratings_path, release)
    movies = sorted({movie for items in user_items.values() for _, movie in items})
    movie_index = {movie: index for index, movie in enumerate(movies, start=1)}
    folder = os.path.dirname(ratings_path)
    genres = _first_genres(os.path.join(folder, release.movies), release)
    names = sorted({genres.get(movie, "") for movie in movies})
    genre_index = {name: index for index, name in enumerate(names, start=1)}
    item_categories = np.zeros(len(movies) + 1, dtype="int32")
    for movie, index in movie_index.items():
        item_categories[index] = genre_index[genres.get(movie, "")]

    sequences = [
        (user, [movie_index[movie] for movie in time_ordered(items)])
        for user, items in sorted(user_items.items())
    ]
    return sequences_to_samples(
        sequences,
        item_categories,
        max_history,
        max_samples_per_user,
        seed,
        source=ratings_path,
        test_targets=test_targets_per_user,
        layout=layout,
    )


def _ratings_path(path):
    if path is None:
        path = fetch("ml-1m.zip", ML_1M_URL, extract=True)
    path = os.fspath(path)
    if os.path.isdir(path):
        for layout in LAYOUTS:
            pattern = os.path.join(path, "**", layout.ratings + "*")
            found = sorted(glob.glob(pattern, recursive=True))
            if found:
                return found[0]
        names = ", ".join(layout.ratings for layout in LAYOUTS)
        raise FileNotFoundError(f"Data file not found: none of {names} in {path}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Data file not found: {path}")
    return path


def _layout_of(ratings_path):
    """The layout of a ratings file, from its name: `.csv`, MovieLens-100K's
    `u.data` (or its splits `u1.base`, ...), else the `::` of MovieLens-1M."""
    name = os.path.basename(ratings_path).removesuffix(".gz")
    if name.endswith(".csv"):
        return LAYOUTS[2]
    if name.endswith((".data", ".base", ".test")):
        return LAYOUTS[1]
    return LAYOUTS[0]


def _lines(path, layout, header, separator):
    """`(number, line, fields)` of the data lines of a file, after checking
    the header line where the layout has one."""
    for number, line in open_lines(path, encoding=layout.encoding):
        fields = layout.fields(line, separator)
        if layout.header and number == 1:
            if [field.strip() for field in fields] != header:
                raise malformed(path, number, f"the header {','.join(header)}", line)
            continue
        yield number, line, fields


def _read_ratings(path, layout):
    """`{user: [(timestamp, movie), ...]}` of a ratings file."""
    user_items = {}
    header = ["userId", "movieId", "rating", "timestamp"]
    for number, line, fields in _lines(path, layout, header, layout.separators[0]):
        try:
            if len(fields) != 4:
                raise ValueError
            user, movie, timestamp = (int(fields[i]) for i in (0, 1, 3))
            float(fields[2])  # a number, whole (1M) or in half stars (10M)
        except ValueError:
            raise malformed(path, number, layout.ratings_format, line) from None
        if not 0 <= user <= MAX_USER_ID:
            raise malformed(path, number, USER_ID_RANGE, line)
        user_items.setdefault(user, []).append((timestamp, movie))
    if not user_items:
        raise ValueError(f"{path}: no ratings found (the file is empty)")
    return user_items


def _first_genres(path, layout):
    """`{movie_id: first genre}` from a movies file, empty if it is absent."""
    for candidate in (path, path + ".gz"):
        if os.path.isfile(candidate):
            path = candidate
            break
    else:
        return {}
    genres = {}
    header = ["movieId", "title", "genres"]
    for number, line, fields in _lines(path, layout, header, layout.separators[1]):
        try:
            genres[int(fields[0])] = _first_genre(fields, layout)
        except (ValueError, IndexError):
            raise malformed(path, number, layout.movies_format, line) from None
    return genres


def _first_genre(fields, layout):
    if layout.movies == "u.item":  # 5 fields, then one 0/1 flag per genre
        flags = fields[5:]
        if len(flags) != len(GENRES_100K) or set(flags) - {"0", "1"}:
            raise ValueError
        return GENRES_100K[flags.index("1")] if "1" in flags else ""
    if len(fields) != 3:
        raise ValueError
    return fields[2].split("|")[0]
