"""Data for training DIN: a synthetic generator and loaders of public data sets.

Every function returns `(x_train, y_train), (x_test, y_test)`, where `x_*` is
a dict of int32 arrays with the keys `"user"` `(N,)`, `"history"` and
`"history_category"` `(N, T)` (most recent last, right-padded with 0),
`"negative_history"` and `"negative_history_category"` `(N, T)` (at each
valid step an item the user never touched, seeded, 0 at the padding: the
negative sequence of DIEN's auxiliary loss), `"candidate"` and
`"candidate_category"` `(N, 1)`, and `y_*` holds the float32 click labels
`(N,)`. With `layout="users"` each user's sequence is stored once, in a
`UserHistories` returned third, and the samples refer to it; `HistoryBatches`
builds the histories of each batch for `fit`, `evaluate` and `predict`.
"""

from keras_din.datasets.amazon import load_amazon
from keras_din.datasets.history_batches import HistoryBatches
from keras_din.datasets.movielens import load_movielens
from keras_din.datasets.synthetic import load_synthetic
from keras_din.datasets.user_histories import UserHistories

__all__ = [
    "HistoryBatches",
    "UserHistories",
    "load_amazon",
    "load_movielens",
    "load_synthetic",
]
