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
        self.users = np.asarray(users, dtype=np.int64)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.items = np.asarray(items, dtype="int32")
        self.negative_items = np.asarray(negative_items, dtype="int32")
        self.item_categories = np.asarray(item_categories, dtype="int32")
        self.max_length = max_length
        if self.offsets.shape != (self.users.size + 1,) or (
            self.items.shape != self.negative_items.shape
            or self.offsets[-1] != self.items.size
        ):
            raise ValueError(
                "`offsets` must have one entry more than `users`, end at the "
                "length of `items`, and `negative_items` must match `items`. "
                f"Received: {self.users.size} users, offsets of shape "
                f"{self.offsets.shape} ending at {self.offsets[-1]}, "
                f"{self.items.size} items, {self.negative_items.size} negatives"
            )

    @property
    def nbytes(self):
        """The memory the store holds, in bytes."""
        arrays = (self.users, self.offsets, self.items, self.negative_items)
        return sum(array.nbytes for array in arrays) + self.item_categories.nbytes

    def lengths(self, users):
        """The number of behaviours of each user in `users`."""
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
        """
        max_length = self.max_length if max_length is None else max_length
        if not isinstance(max_length, int) or max_length < 1:
            raise ValueError(
                "`max_length` must be a positive int. "
                f"Received: max_length={max_length!r}"
            )
        users = np.asarray(x["user"]).reshape(-1)
        ends = np.asarray(x["history_end"], dtype=np.int64).reshape(-1)
        rows = self._rows(users)
        starts, stops = self.offsets[rows], self.offsets[rows + 1]
        if np.any((ends < 0) | (ends > stops - starts)):
            bad = int(np.argmax((ends < 0) | (ends > stops - starts)))
            raise ValueError(
                "`history_end` must lie in [0, the user's number of "
                f"behaviours]. Received: history_end={ends[bad]} for user "
                f"{users[bad]}, who has {stops[bad] - starts[bad]}"
            )
        length = np.minimum(ends, max_length)
        first = starts + ends - length
        steps = np.arange(max_length)
        valid = steps < length[:, None]
        positions = np.where(valid, first[:, None] + steps, 0)
        history = np.where(valid, self.items[positions], 0).astype("int32")
        negative = np.where(valid, self.negative_items[positions], 0).astype("int32")
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
