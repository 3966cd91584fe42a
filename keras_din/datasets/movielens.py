"""MovieLens-1M as DIN samples."""

import glob
import os

import numpy as np

from keras_din.datasets._samples import fetch
from keras_din.datasets._samples import malformed
from keras_din.datasets._samples import open_lines
from keras_din.datasets._samples import sequences_to_samples

ML_1M_URL = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
RATINGS_FORMAT = "`UserID::MovieID::Rating::Timestamp` with integer fields"
MOVIES_FORMAT = "`MovieID::Title::Genres` with an integer MovieID"
# Users keep their ids, which the samples hold as int32.
MAX_USER_ID = 2**31 - 1
USER_ID_RANGE = f"a UserID in [0, {MAX_USER_ID}] (users keep their ids, as int32)"


def load_movielens(path=None, max_history=20, max_samples_per_user=None, seed=0):
    """Loads MovieLens-1M ratings as leave-one-out DIN samples.

    Every rating counts as an interaction. The movies each user rated, in
    time order, form the behaviour sequence: the last one is the user's test
    target, every earlier one from the second on a training target, and the
    history of a target is the movies rated before it. Each target gives a
    positive sample and a negative one whose candidate is a random movie the
    user never rated. A movie's category is its first genre, read from
    `movies.dat` beside `ratings.dat`; without that file every movie gets the
    same category.

    Args:
        path: str or `None`. `ratings.dat` of MovieLens-1M, or a directory
            that holds it (searched recursively). `None` downloads
            `ml-1m.zip` with `keras.utils.get_file` (cached in
            `~/.keras/datasets/keras_din`). Files ending in `.gz` are read
            compressed. Defaults to `None`.
        max_history: int. Histories keep the most recent `max_history`
            movies. Defaults to `20`.
        max_samples_per_user: int or `None`. Keep only the latest
            `max_samples_per_user` training targets of each user. Defaults to
            `None` (all of them).
        seed: int. Seed of the negative sampling. Defaults to `0`.

    Returns:
        `(x_train, y_train), (x_test, y_test)` as `load_synthetic` returns
        them. Movie ids are renumbered `1..num_movies` in order of their
        original ids, genres `1..num_genres` alphabetically, users keep their
        ids.

    Raises:
        FileNotFoundError: if `ratings.dat` is not found.
        ValueError: naming the file (and the line): on a malformed line, a
            user id outside the int32 range, a `.gz` file that is not gzip
            data, an empty file, or one where no user has two ratings.
    """
    ratings_path = _ratings_path(path)
    user_items = {}
    for number, line in open_lines(ratings_path, encoding="latin-1"):
        fields = line.split("::")
        try:
            if len(fields) != 4:
                raise ValueError
            user, movie, _, timestamp = (int(field) for field in fields)
        except ValueError:
            raise malformed(ratings_path, number, RATINGS_FORMAT, line) from None
        if not 0 <= user <= MAX_USER_ID:
            raise malformed(ratings_path, number, USER_ID_RANGE, line)
        user_items.setdefault(user, []).append((timestamp, movie))
    if not user_items:
        raise ValueError(f"{ratings_path}: no ratings found (the file is empty)")

    movies = sorted({movie for items in user_items.values() for _, movie in items})
    movie_index = {movie: index for index, movie in enumerate(movies, start=1)}
    genres = _first_genres(os.path.join(os.path.dirname(ratings_path), "movies.dat"))
    names = sorted({genres.get(movie, "") for movie in movies})
    genre_index = {name: index for index, name in enumerate(names, start=1)}
    item_categories = np.zeros(len(movies) + 1, dtype="int32")
    for movie, index in movie_index.items():
        item_categories[index] = genre_index[genres.get(movie, "")]

    sequences = [
        (user, [movie_index[movie] for _, movie in sorted(items, key=lambda x: x[0])])
        for user, items in sorted(user_items.items())
    ]
    return sequences_to_samples(
        sequences,
        item_categories,
        max_history,
        max_samples_per_user,
        seed,
        source=ratings_path,
    )


def _ratings_path(path):
    if path is None:
        path = fetch("ml-1m.zip", ML_1M_URL, extract=True)
    path = os.fspath(path)
    if os.path.isdir(path):
        found = sorted(
            glob.glob(os.path.join(path, "**", "ratings.dat*"), recursive=True)
        )
        if not found:
            raise FileNotFoundError(f"Data file not found: no ratings.dat in {path}")
        return found[0]
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Data file not found: {path}")
    return path


def _first_genres(path):
    """`{movie_id: first genre}` from `movies.dat`, empty if it is absent."""
    for candidate in (path, path + ".gz"):
        if os.path.isfile(candidate):
            path = candidate
            break
    else:
        return {}
    genres = {}
    for number, line in open_lines(path, encoding="latin-1"):
        fields = line.split("::")
        try:
            if len(fields) != 3:
                raise ValueError
            genres[int(fields[0])] = fields[2].split("|")[0]
        except ValueError:
            raise malformed(path, number, MOVIES_FORMAT, line) from None
    return genres
