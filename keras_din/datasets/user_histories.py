"""Behaviour sequences stored once per user, expanded into histories per batch."""

import numpy as np


class UserHistories:
    """Every user's behaviour sequence, stored once.

    The loaders' default layout gives every sample its own copy of its
    history, `(N, max_history)` ids for each of the four history inputs: at
    1,000 behaviours that is 16 KB a sample. With `layout="users"` they return
    this store instead, and each sample refers to its user's sequence by
    `"user"` and `"history_end"` (how many of the user's behaviours precede
    the target); `expand` or `keras_din.datasets.HistoryBatches` builds the
    history arrays of a batch when it is needed. Memory then grows with the
    number of behaviours, not with samples times `max_length`.

    Args:
        users: int array `(U,)`. The users' ids, sorted, each once.
        offsets: int array `(U + 1,)`. User `users[i]`'s behaviours are
            `items[offsets[i]:offsets[i + 1]]`, oldest first.
        items: int array `(L,)`. The item ids of every user's sequence, one
            after the other (ids from 1).
        negative_items: int array `(L,)`. For each behaviour, an item the
            user never touched (DIEN's negative sequence).
        item_categories: int array. The category of each item id (index 0,
            the padding, has category 0).
        max_length: int. How many of the most recent behaviours a history
            keeps, unless `expand` is told otherwise.

    Examples:

        >>> import numpy as np
        >>> histories = UserHistories(
        ...     users=np.array([7, 9]), offsets=np.array([0, 3, 5]),
        ...     items=np.array([1, 2, 3, 4, 1]),
        ...     negative_items=np.array([4, 4, 4, 2, 2]),
        ...     item_categories=np.array([0, 1, 1, 2, 2]), max_length=2)
        >>> x = {"user": np.array([7, 9]), "history_end": np.array([3, 1])}
        >>> histories.expand(x)["history"]
        array([[2, 3],
               [4, 0]], dtype=int32)
    """

    def __init__(
        self, users, offsets, items, negative_items, item_categories, max_length
    ):
        self.users = _integers("users", users, np.int64)
        self.offsets = _integers("offsets", offsets, np.int64)
        self.items = _integers("items", items, "int32")
        self.negative_items = _integers("negative_items", negative_items, "int32")
        self.item_categories = _integers("item_categories", item_categories, "int32")
        self.max_length = _positive_length(max_length)
        if self.offsets.shape != (self.users.size + 1,) or self.offsets[0] != 0:
            raise ValueError(
                "`offsets` must start at 0 and have one entry more than "
                f"`users`. Received: offsets={_shown(self.offsets)} for "
                f"{self.users.size} users"
            )
        if np.any(np.diff(self.offsets) < 0) or self.offsets[-1] != self.items.size:
            raise ValueError(
                "`offsets` must not decrease and must end at the number of "
                f"`items`. Received: offsets={_shown(self.offsets)}, "
                f"{self.items.size} items"
            )
        if self.negative_items.shape != self.items.shape:
            raise ValueError(
                "`negative_items` must hold one item per behaviour. Received: "
                f"{self.negative_items.size} for {self.items.size} behaviours"
            )
        if np.any(np.diff(self.users) <= 0):
            raise ValueError(
                "`users` must be sorted, each user once. Received: "
                f"users={_shown(self.users)}"
            )
        ids = np.concatenate([self.items, self.negative_items])
        if ids.size and (ids.min() < 1 or ids.max() >= self.item_categories.size):
            raise ValueError(
                "Every item id must lie in [1, len(item_categories)): "
                f"[1, {self.item_categories.size}). Received: ids from "
                f"{ids.min()} to {ids.max()}"
            )

    @property
    def nbytes(self):
        """The memory the store holds, in bytes."""
        arrays = (self.users, self.offsets, self.items, self.negative_items)
        return sum(array.nbytes for array in arrays) + self.item_categories.nbytes

    def lengths(self, users):
        """The number of behaviours of each user.

        Args:
            users: int array. User ids of the store.

        Returns:
            An int64 array of the shape of `users`.
        """
        rows = self._rows(users)
        return self.offsets[rows + 1] - self.offsets[rows]

    def expand(self, x, max_length=None):
        """`x` with the histories of its samples, as the default layout has them.

        Args:
            x: dict of arrays with at least `"user"` `(N,)` and
                `"history_end"` `(N,)`: sample `i` has the behaviours of
                user `x["user"][i]` before position `x["history_end"][i]`.
            max_length: int or `None`. The most recent behaviours kept;
                `None` takes `self.max_length`.

        Returns:
            A new dict: `x`'s arrays and `"history"`, `"history_category"`,
            `"negative_history"` and `"negative_history_category"`
            `(N, max_length)` int32, most recent last, right-padded with 0.

        Raises:
            ValueError: for a user that is not in the store, a
                `history_end` outside `[0, the user's number of behaviours]`,
                a missing key, arrays of different lengths or a `max_length`
                that is not a positive int.
            TypeError: for a `user` or `history_end` that is not integer.
        """
        max_length = self.max_length if max_length is None else max_length
        max_length = _positive_length(max_length)
        missing = [key for key in ("user", "history_end") if key not in x]
        if missing:
            raise ValueError(
                f"`x` must hold 'user' and 'history_end'. Received: {sorted(x)}"
            )
        users = _integers("x['user']", x["user"], np.int64).reshape(-1)
        ends = _integers("x['history_end']", x["history_end"], np.int64).reshape(-1)
        if users.shape != ends.shape:
            raise ValueError(
                "`x['user']` and `x['history_end']` must hold one value per "
                f"sample. Received: {users.size} and {ends.size}"
            )
        rows = self._rows(users)
        starts, stops = self.offsets[rows], self.offsets[rows + 1]
        outside = (ends < 0) | (ends > stops - starts)
        if np.any(outside):
            bad = int(np.argmax(outside))
            raise ValueError(
                "`history_end` must lie in [0, the user's number of "
                f"behaviours]. Received: history_end={ends[bad]} for user "
                f"{users[bad]}, who has {stops[bad] - starts[bad]}"
            )
        length = np.minimum(ends, max_length)
        first = starts + ends - length
        steps = np.arange(max_length)
        valid = steps < length[:, None]
        if self.items.size:
            # Past a sequence's end the index is clipped, and the value masked.
            positions = np.minimum(first[:, None] + steps, self.items.size - 1)
            history = np.where(valid, self.items[positions], 0).astype("int32")
            negative = np.where(valid, self.negative_items[positions], 0)
            negative = negative.astype("int32")
        else:  # no user has a behaviour
            history = negative = np.zeros(valid.shape, "int32")
        return {
            **x,
            "history": history,
            "history_category": self.item_categories[history],
            "negative_history": negative,
            "negative_history_category": self.item_categories[negative],
        }

    def _rows(self, users):
        users = np.asarray(users, dtype=np.int64).reshape(-1)
        rows = np.searchsorted(self.users, users)
        if self.users.size:
            unknown = self.users[np.minimum(rows, self.users.size - 1)] != users
        else:
            unknown = np.ones(users.shape, bool)
        if np.any(unknown):
            raise ValueError(
                "Every sample's `user` must be a user of the store. Received: "
                f"user {users[np.argmax(unknown)] if users.size else None}, "
                "which has no sequence"
            )
        return rows


def _integers(name, values, dtype):
    """`values` as a flat array of `dtype`; a `TypeError` for floats."""
    array = np.asarray(values)
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(
            f"`{name}` must hold integers. Received: an array of dtype {array.dtype}"
        )
    if array.ndim > 1:
        raise ValueError(
            f"`{name}` must be one-dimensional. Received: shape {array.shape}"
        )
    return array.astype(dtype).reshape(-1)


def _positive_length(max_length):
    if (
        isinstance(max_length, bool)
        or not isinstance(max_length, (int, np.integer))
        or max_length < 1
    ):
        raise ValueError(
            f"`max_length` must be a positive int. Received: max_length={max_length!r}"
        )
    return int(max_length)


def _shown(array):
    """A short text of an array for an error message."""
    return str(array.tolist()) if array.size <= 8 else f"{array[:8].tolist()} ..."
