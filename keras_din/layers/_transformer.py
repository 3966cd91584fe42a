"""The parts of a Transformer block, written with `keras.ops`."""

import keras
from keras import ops


def multi_head_attention(sequence, valid, query, key, value, output, heads):
    """Multi-head self-attention over `sequence` `(N, S, E)`.

    Each position attends to the positions that `valid` `(N, S)` marks;
    every row must have one. `query`, `key`, `value` and `output` are the
    projections' `[kernel, bias]` (`[kernel]` without a bias), the heads
    side by side in the kernels: `(E, H * K)`, and `(H * K, E)` for
    `output`. The scores are `q k / sqrt(K)`, softmax-normalised in float32.
    """
    length = sequence.shape[1]
    key_dim = query[0].shape[1] // heads

    def project(x, weights):
        projected = ops.matmul(x, weights[0])
        return projected + weights[1] if len(weights) > 1 else projected

    def split(x):  # (N, S, H * K) -> (N, H, S, K)
        return ops.transpose(ops.reshape(x, (-1, length, heads, key_dim)), (0, 2, 1, 3))

    q, k, v = (split(project(sequence, w)) for w in (query, key, value))
    scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))
    scores = ops.cast(scores, "float32") / float(key_dim) ** 0.5
    scores = ops.where(valid[:, None, None, :], scores, -3.0e38)
    weights = ops.cast(ops.softmax(scores, axis=-1), sequence.dtype)
    attended = ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3))
    attended = ops.reshape(attended, (-1, length, heads * key_dim))
    return project(attended, output)


def layer_norm(x, gamma, beta, epsilon=1e-5):
    """LayerNorm over the last axis, in at least float32, back in `x`'s
    dtype. Written out: torch's ONNX exporter cannot take the traced size
    that `keras.ops.layer_normalization` passes on to torch."""
    dtype = x.dtype
    x = ops.cast(x, keras.backend.result_type(x.dtype, "float32"))
    centered = x - ops.mean(x, axis=-1, keepdims=True)
    variance = ops.mean(ops.square(centered), axis=-1, keepdims=True)
    normalized = centered * ops.rsqrt(variance + epsilon)
    return ops.cast(
        normalized * ops.cast(gamma, x.dtype) + ops.cast(beta, x.dtype), dtype
    )


def target_attention(
    query, keys, valid, query_kernel, key_kernel, value_kernel, output_kernel, heads
):
    """Multi-head attention of each candidate over its own behaviours.

    `query` `(B, C, E)` attends to `keys` `(B, C, k, E)` where `valid`
    `(B, C, k)` is true. The kernels are `(E, H * K)`, the heads side by side,
    and `(H * K, E)` for `output_kernel`; there are no biases, so a candidate
    without a valid behaviour gets 0. The scores are `q k / sqrt(K)`,
    softmax-normalised in float32. Returns `(B, C, E)`.
    """
    key_dim = query_kernel.shape[1] // heads

    def split(x):  # (..., H * K) -> (..., H, K)
        return ops.reshape(x, (*ops.shape(x)[:-1], heads, key_dim))

    q = split(ops.matmul(query, query_kernel))[:, :, None]  # (B, C, 1, H, K)
    k = split(ops.matmul(keys, key_kernel))  # (B, C, k, H, K)
    v = split(ops.matmul(keys, value_kernel))
    scores = ops.cast(ops.sum(q * k, axis=-1), "float32") / float(key_dim) ** 0.5
    valid = valid[..., None]  # (B, C, k, 1): every head
    weights = ops.softmax(ops.where(valid, scores, -3.0e38), axis=2)
    weights = ops.cast(weights * ops.cast(valid, "float32"), keys.dtype)
    attended = ops.sum(weights[..., None] * v, axis=2)  # (B, C, H, K)
    attended = ops.reshape(attended, (*ops.shape(attended)[:2], heads * key_dim))
    return ops.matmul(attended, output_kernel)
