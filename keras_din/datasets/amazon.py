"""The Amazon reviews data of the DIN paper as DIN samples."""

import ast
import json
import os

import numpy as np

from keras_din.datasets._samples import check_layout
from keras_din.datasets._samples import fetch
from keras_din.datasets._samples import malformed
from keras_din.datasets._samples import open_lines
from keras_din.datasets._samples import sequences_to_samples
from keras_din.datasets._samples import time_ordered

SNAP_URL = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"
REVIEWS_FILE = "reviews_Electronics_5.json"
META_FILE = "meta_Electronics.json"
REVIEW_FORMAT = (
    "one JSON object with string `reviewerID` and `asin` and integer `unixReviewTime`"
)
META_FORMAT = "one JSON object or Python dict literal with a string `asin`"


def load_amazon(
    path=None,
    meta_path=None,
    max_history=20,
    max_samples_per_user=None,
    test_targets_per_user=1,
    seed=0,
    layout="samples",
):
    """Loads Amazon reviews (the DIN paper's Electronics set) as DIN samples.

    The reviews of each user, in time order (ties in file order), form the
    behaviour sequence: the last reviewed products are the user's test
    targets (the last one by default, see `test_targets_per_user`), every
    earlier one from the second on a training target, and the history of a
    target is the products reviewed before it. Each target gives a positive sample and a
    negative one whose candidate is a random product the user never
    reviewed. A product's category is the last entry of its most specific
    category path in the metadata (as in the DIN paper's preprocessing).

    The reviews file has one JSON object per line with at least
    `reviewerID`, `asin` and `unixReviewTime`. The metadata file has one
    object per line with `asin` and `categories` (a list of category paths)
    or `category` (one path); both the original Python-dict-literal lines
    and JSON lines are read. Either file may start with a UTF-8 byte-order
    mark (as Excel and other Windows tools write).

    Reviews with the same `reviewerID`, `asin` and `unixReviewTime` (a
    re-exported or merged file) are one interaction, whatever their other
    fields; the same product reviewed at another time is another one.

    Args:
        path: str or `None`. The reviews file (`reviews_Electronics_5.json`
            or any other category's), or a directory holding
            `reviews_Electronics_5.json[.gz]`. `None` downloads the 5-core
            Electronics reviews and metadata with `keras.utils.get_file`
            (cached in `~/.keras/datasets/keras_din`). Files ending in `.gz`
            are read compressed. Defaults to `None`.
        meta_path: str or `None`. The metadata file. `None` uses
            `meta_Electronics.json[.gz]` beside the reviews file if present;
            without metadata every product gets the same category. Defaults
            to `None`.
        max_history: int. Histories keep the most recent `max_history`
            products. Defaults to `20`.
        max_samples_per_user: int or `None`. Keep only the latest
            `max_samples_per_user` training targets of each user. Defaults to
            `None` (all of them).
        test_targets_per_user: int. How many of each user's last targets are
            test targets (a user with fewer targets has only test ones).
            Defaults to `1`.
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
        Products, categories and users are numbered from 1 in the
        sorted order of their names; category 0 is padding only.

    Examples:

        >>> import json, os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "reviews.json")
        >>> with open(path, "w") as reviews:
        ...     for user, product, time in [("A", "p1", 1), ("A", "p2", 2),
        ...                                 ("A", "p3", 3), ("B", "p4", 1)]:
        ...         review = {"reviewerID": user, "asin": product,
        ...                   "unixReviewTime": time}
        ...         print(json.dumps(review), file=reviews)
        >>> (x_train, y_train), (x_test, y_test) = load_amazon(path)
        >>> x_train["candidate"][:, 0], y_train
        (array([2, 4], dtype=int32), array([1., 0.], dtype=float32))
        >>> x_test["history"][0, :3]
        array([1, 2, 0], dtype=int32)

    Raises:
        FileNotFoundError: if the reviews file or a given metadata file is
            not found.
        ValueError: naming the file (and the line): on a malformed line or
            one that is not UTF-8, a `.gz` file that is not gzip data, an
            empty file, or one where no user has two reviews.
    """
    check_layout(layout)
    if path is None:
        path = fetch(REVIEWS_FILE + ".gz", SNAP_URL + REVIEWS_FILE + ".gz")
        if meta_path is None:
            meta_path = fetch(META_FILE + ".gz", SNAP_URL + META_FILE + ".gz")
    path = os.fspath(path)
    if os.path.isdir(path):
        path = _existing(os.path.join(path, REVIEWS_FILE)) or os.path.join(
            path, REVIEWS_FILE
        )
    if meta_path is None:
        meta_path = _existing(os.path.join(os.path.dirname(path), META_FILE))

    reviews = {}
    for number, line in open_lines(path):
        record = _parse(line, json_only=True)
        try:
            user, asin = record["reviewerID"], record["asin"]
            time = int(record["unixReviewTime"])
            if not isinstance(user, str) or not isinstance(asin, str):
                raise TypeError
        except (KeyError, TypeError, ValueError):
            raise malformed(path, number, REVIEW_FORMAT, line) from None
        reviews.setdefault(user, []).append((time, asin))
    if not reviews:
        raise ValueError(f"{path}: no reviews found (the file is empty)")

    asins = sorted({asin for items in reviews.values() for _, asin in items})
    categories = _categories(meta_path, set(asins)) if meta_path else {}
    asin_index = {asin: index for index, asin in enumerate(asins, start=1)}
    names = sorted({categories.get(asin, "") for asin in asins})
    category_index = {name: index for index, name in enumerate(names, start=1)}
    item_categories = np.zeros(len(asins) + 1, dtype="int32")
    for asin, index in asin_index.items():
        item_categories[index] = category_index[categories.get(asin, "")]

    sequences = [
        (user, [asin_index[asin] for asin in time_ordered(items)])
        for user, (_, items) in enumerate(sorted(reviews.items()), start=1)
    ]
    return sequences_to_samples(
        sequences,
        item_categories,
        max_history,
        max_samples_per_user,
        seed,
        source=path,
        test_targets=test_targets_per_user,
        layout=layout,
    )


def _existing(path):
    for candidate in (path, path + ".gz"):
        if os.path.isfile(candidate):
            return candidate
    return None


def _parse(line, json_only=False):
    """A dict from a JSON line or (unless `json_only`) a Python dict literal."""
    try:
        record = json.loads(line)
    except ValueError:
        if json_only:
            return None
        try:
            record = ast.literal_eval(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    return record if isinstance(record, dict) else None


def _categories(path, wanted):
    """`{asin: category}` for the products in `wanted`."""
    categories = {}
    for number, line in open_lines(path):
        record = _parse(line)
        asin = record.get("asin") if record is not None else None
        if not isinstance(asin, str):
            raise malformed(path, number, META_FORMAT, line)
        if asin not in wanted:
            continue
        paths = record.get("categories")
        if paths is None and record.get("category") is not None:
            paths = [record["category"]]
        try:
            category = paths[-1][-1] if paths and paths[-1] else ""
            if not isinstance(category, str):
                raise TypeError
        except (TypeError, KeyError, IndexError):
            expected = "`categories` as a list of lists of strings"
            raise malformed(path, number, expected, line) from None
        categories[asin] = category
    return categories
