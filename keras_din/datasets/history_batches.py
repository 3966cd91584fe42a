"""Batches whose histories are built from once-stored user sequences."""

import keras
import numpy as np


class HistoryBatches(keras.utils.PyDataset):
    """A `keras.utils.PyDataset` that expands stored histories per batch.

    Samples in the loaders' `layout="users"` refer to their user's sequence
    in a `keras_din.datasets.UserHistories`; this dataset gives `fit`,
    `evaluate` and `predict` batches of the arrays a model takes, the
    histories built for each batch only, on every backend. Only one batch's
    histories exist at a time, however long the histories and however many
    the samples.

    Args:
        x: dict of arrays, one row per sample, with `"user"` and
            `"history_end"` (see `UserHistories.expand`).
        y: Optional array of labels, one per sample. `None` for `predict`.
        histories: `keras_din.datasets.UserHistories`. The store that `x`
            refers to.
        batch_size: int. Samples per batch; the last batch may be smaller.
            Defaults to `256`.
        max_length: int or `None`. The most recent behaviours a history
            keeps; `None` takes `histories.max_length`. Defaults to `None`.
        keys: Optional sequence of str. The arrays each batch holds (for a
            `keras_din.models` model, `list(model.input)`); `None` gives all
            of them. Defaults to `None`.
        shuffle: bool. Whether to deal the samples into new batches, in a
            new random order, every epoch. (`fit`'s own `shuffle`, `True` by
            default, only reorders the batches.) Needs `y`. Defaults to
            `False`.
        seed: int or `None`. Seed of the shuffling. Defaults to `None`.
        **kwargs: `keras.utils.PyDataset` arguments (`workers`,
            `use_multiprocessing`, `max_queue_size`).

    Examples:

        >>> from keras_din.datasets import load_synthetic
        >>> train, test, histories = load_synthetic(num_users=10, layout="users")
        >>> batches = HistoryBatches(*train, histories, batch_size=64)
        >>> x, y = batches[0]
        >>> x["history"].shape, y.shape
        ((64, 20), (64,))
    """

    def __init__(
        self,
        x,
        y,
        histories,
        batch_size=256,
        max_length=None,
        keys=None,
        shuffle=False,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(
                "`batch_size` must be a positive int. "
                f"Received: batch_size={batch_size!r}"
            )
        self.x = {key: np.asarray(value) for key, value in x.items()}
        self.y = None if y is None else np.asarray(y)
        self.histories = histories
        self.batch_size = batch_size
        self.max_length = max_length
        self.keys = None if keys is None else list(keys)
        if shuffle and y is None:
            raise ValueError(
                "`shuffle=True` needs labels (`y`): shuffled predictions could "
                "not be matched to their samples. Received: y=None"
            )
        self.shuffle = shuffle
        self._rng = np.random.default_rng(seed)
        self._size = len(self.x["user"])
        if self.y is not None and len(self.y) != self._size:
            raise ValueError(
                "`x` and `y` must hold the same number of samples. Received: "
                f"{self._size} and {len(self.y)}"
            )
        self._order = np.arange(self._size)
        # Expanding the first batch checks `keys`, `max_length` and the
        # users before training starts.
        if self._size:
            self[0]
        self.on_epoch_end()

    def __len__(self):
        return -(-self._size // self.batch_size)

    def __getitem__(self, index):
        if not -len(self) <= index < len(self):
            raise IndexError(
                f"Batch index {index} is out of range: there are {len(self)} batches"
            )
        index %= len(self)
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        batch = {key: value[rows] for key, value in self.x.items()}
        batch = self.histories.expand(batch, self.max_length)
        if self.keys is not None:
            missing = [key for key in self.keys if key not in batch]
            if missing:
                raise ValueError(
                    f"`keys` must name arrays of the batches: {sorted(batch)}. "
                    f"Received: {missing}"
                )
            batch = {key: batch[key] for key in self.keys}
        return batch if self.y is None else (batch, self.y[rows])

    def on_epoch_end(self):
        if self.shuffle:
            self._order = self._rng.permutation(self._size)
