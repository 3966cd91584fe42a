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
