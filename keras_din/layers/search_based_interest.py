import keras
from keras import ops

from keras_din.layers import _retrieval
from keras_din.layers._checks import check_ids_shape
from keras_din.layers._checks import check_keys_mask
from keras_din.layers._checks import check_optional_units
from keras_din.layers._checks import check_positive_units
from keras_din.layers._checks import check_query_and_keys
from keras_din.layers._checks import heads_key_dim
from keras_din.layers._checks import split_inputs
from keras_din.layers._checks import static_shape
from keras_din.layers._masking import count_at_or_after
from keras_din.layers._masking import zero_padding
from keras_din.layers._transformer import target_attention

SEARCHES = ("soft", "hard", "simhash")
RECENCY_BUCKETS = 16


@keras.saving.register_keras_serializable(package="keras_din")
class SearchBasedInterest(keras.layers.Layer):
    """SIM's and ETA's two stages: a search of a long history, then attention.

    For each candidate, the general search unit keeps at most `top_k`
    behaviours of the history:

    - `search="soft"`: the `top_k` highest relevances
      `r_t = (W_a e_a) . (W_b e_t)` between the candidate `e_a` and each
      behaviour `e_t` (projections of width `H * K`);
    - `search="hard"`: the `top_k` most recent behaviours whose id (their
      category, say) equals the candidate's;
    - `search="simhash"` (ETA): the `top_k` behaviours whose SimHash
      signature is nearest the candidate's in Hamming distance: bit `i` of
      `e` is `(e P)_i > 0`, `P` a fixed random `(E, hash_bits)` projection
      (a weight that does not train).

    The padding is never kept, a history with fewer eligible behaviours
    keeps them all, and among equal relevances the most recent behaviour is
    kept first. The exact search unit is multi-head target attention of the
    candidate over the kept behaviours, each plus a learned embedding of its
    recency: bucket `floor(log2(r))` (at most 15) of its rank `r` (1 for the
    latest valid behaviour). Its output is `W_o` times the heads' weighted
    sums of `W_v (e_t + recency)`, with `softmax(W_q e_a . W_k (e_t +
    recency) / sqrt(K))` weights, and 0 for a candidate that keeps nothing.

    The top-k gets no gradient: the soft search's projections train through
    the paper's auxiliary task. With `search="soft"` the layer also returns
    `u = sum_t r_t e_t` over the valid behaviours, for an auxiliary click
    model (the `SIM` builder adds one).

    Args:
        top_k: int. Behaviours kept per candidate. Defaults to `50`.
        search: `"soft"`, `"hard"` or `"simhash"`. Defaults to `"soft"`.
        hash_bits: int. With `search="simhash"`, the signatures' bits.
            Defaults to `32` (FuxiCTR's ETA).
        num_heads: int. Attention heads. Defaults to `2`.
        key_dim: int or `None`. Width of each head; `None` takes
            `E // num_heads` (`E` must then be a multiple). Defaults to
            `None`.
        seed: int or `None`. Seed of the initialisers. Defaults to `None`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: a list `[query, keys]` (soft and SimHash search) or
            `[query, keys, query_ids, key_ids]` (hard search): the
            candidates `(B, C, E)`,
            the history `(B, T, E)`, and the integer ids that the hard
            search matches, `(B, C)` and `(B, T)`.
        mask: Optional boolean `(B, T)` mask of the valid positions of
            `keys` (or a list of one mask per input, as Keras passes them);
            `None`: every position is valid.

    Output:
        `(B, C, E)`; with `search="soft"`, a list `[interest, u]` of two.

    Examples:

        >>> import numpy as np
        >>> layer = SearchBasedInterest(top_k=2, search="hard")
        >>> query = np.random.rand(1, 1, 4).astype("float32")
        >>> keys = np.random.rand(1, 5, 4).astype("float32")
        >>> categories = np.array([[3, 1, 3, 3, 2]])  # keeps positions 3 and 2
        >>> tuple(layer([query, keys, np.array([[3]]), categories]).shape)
        (1, 1, 4)

    References:
        - [Pi et al., 2020](https://arxiv.org/abs/2006.05639), Search-based
          User Interest Modeling with Lifelong Sequential Behavior Data for
          Click-Through Rate Prediction.
        - [Chen et al., 2021](https://arxiv.org/abs/2108.04468), End-to-End
          User Behavior Retrieval in Click-Through Rate Prediction Model.
    """

    def __init__(
        self,
        top_k=50,
        search="soft",
        hash_bits=32,
        num_heads=2,
        key_dim=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.top_k = check_positive_units("top_k", top_k)[0]
        if search not in SEARCHES:
            raise ValueError(
                f"`search` must be one of {SEARCHES}. Received: search={search!r}"
            )
        self.search = search
        self.hash_bits = check_positive_units("hash_bits", hash_bits)[0]
        self.num_heads = check_positive_units("num_heads", num_heads)[0]
        self.key_dim = check_optional_units("key_dim", key_dim)
        self.seed = seed
        self.supports_masking = True

    def _split(self, inputs, mask=None):
        count = 4 if self.search == "hard" else 2
        inputs = split_inputs(inputs, type(self).__name__, (count,))
        query, keys = inputs[:2]
        check_query_and_keys(query, keys)
        if count == 4:
            for name, ids, x in (
                ("query_ids", inputs[2], query),
                ("key_ids", inputs[3], keys),
            ):
                check_ids_shape(name, ids, static_shape(x)[:2])
        if isinstance(mask, (list, tuple)):
            mask = mask[1]
        return inputs, mask

    def build(self, input_shape):
        (query_shape, keys_shape, *_), _ = self._split(input_shape)
        dim = static_shape(keys_shape)[2]
        key_dim = heads_key_dim(self.num_heads, self.key_dim, keys_shape)
        width = self.num_heads * key_dim
        self.recency = self.add_weight(
            shape=(RECENCY_BUCKETS, dim),
            initializer=keras.initializers.RandomUniform(-0.05, 0.05, self._seed(0)),
            name="recency_embeddings",
        )
        shapes = {"query": (dim, width), "key": (dim, width), "value": (dim, width)}
        shapes["output"] = (width, dim)
        if self.search == "soft":
            shapes.update(search_query=(dim, width), search_key=(dim, width))
        for index, (name, shape) in enumerate(shapes.items(), 1):
            kernel = self.add_weight(
                shape=shape,
                initializer=keras.initializers.GlorotUniform(self._seed(index)),
                name=f"{name}_kernel",
            )
            setattr(self, f"{name}_kernel", kernel)
        if self.search == "simhash":
            self.hash_projection = self.add_weight(
                shape=(dim, self.hash_bits),
                initializer=keras.initializers.RandomNormal(seed=self._seed(7)),
                trainable=False,
                name="hash_projection",
            )

    def _seed(self, index):
        return None if self.seed is None else self.seed + index

    def call(self, inputs, mask=None):
        (query, keys, *ids), mask = self._split(inputs, mask)
        if mask is None:
            mask = ops.ones(ops.shape(keys)[:2], "bool")
        else:
            check_keys_mask(mask, keys)
        valid = ops.cast(mask, "bool")
        # 0 at the padding: whatever it holds (NaN too) must not reach a sum.
        keys = zero_padding(keys, valid)
        if static_shape(keys)[1] == 0:  # no behaviour to search
            interest = ops.zeros_like(query)
            return [interest, interest] if self.search == "soft" else interest
        if self.search == "hard":
            same = ops.expand_dims(ids[0], -1) == ops.expand_dims(ids[1], 1)
            eligible = ops.logical_and(same, valid[:, None])
            positions, kept = _retrieval.latest(eligible, self.top_k)
        else:
            relevance = self._relevance(query, keys)
            positions, kept = _retrieval.highest(relevance, valid[:, None], self.top_k)
        # Rank 1 for the latest valid behaviour, 2 for the one before...
        rank = _retrieval.gather(count_at_or_after(valid, 1), positions)
        bucket = sum(ops.cast(rank >= 2**j, "int32") for j in range(1, RECENCY_BUCKETS))
        behaviors = _retrieval.gather(keys, positions)
        behaviors = behaviors + ops.take(self.recency, bucket, axis=0)
        interest = target_attention(
            query,
            behaviors,
            kept,
            self.query_kernel,
            self.key_kernel,
            self.value_kernel,
            self.output_kernel,
            self.num_heads,
        )
        if self.search != "soft":
            return interest
        # The relevance of the padding is 0: its keys are 0.
        return [interest, ops.matmul(relevance, keys)]

    def _relevance(self, query, keys):
        """`(B, C, T)`: the soft search's relevances, or, for SimHash, the
        signatures' agreements (`hash_bits` minus twice the Hamming
        distance: the product of their +-1 signs)."""
        if self.search == "soft":
            query = ops.matmul(query, self.search_query_kernel)
            keys = ops.matmul(keys, self.search_key_kernel)
        else:
            query, keys = (
                ops.where(ops.matmul(x, self.hash_projection) > 0, 1.0, -1.0)
                for x in (query, keys)
            )
        return ops.matmul(query, ops.transpose(keys, (0, 2, 1)))

    def compute_output_shape(self, input_shape):
        query_shape, keys_shape = input_shape[:2]
        shape = (*query_shape[:2], keys_shape[2])
        return [shape, shape] if self.search == "soft" else shape

    def compute_mask(self, inputs, mask=None):
        return [None, None] if self.search == "soft" else None

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "top_k": self.top_k,
                "search": self.search,
                "hash_bits": self.hash_bits,
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "seed": self.seed,
            }
        )
        return config
