"""An independent NumPy reference of the DIN formulas of DESIGN.md.

It imports neither keras nor keras_din: everything is float64 NumPy and
follows the formulas literally (the concatenation is built, the softmax
loops over the valid positions), so that it shares no shortcut with the
package.
"""

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


ACTIVATIONS = {
    "sigmoid": sigmoid,
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "linear": lambda x: x,
}


def dice(x, alpha, mean, variance, epsilon=1e-9):
    """Dice with given (batch or moving) statistics, channels last."""
    p = sigmoid((x - mean) / np.sqrt(variance + epsilon))
    return p * x + alpha * (1.0 - p) * x


def dice_batch_moments(x):
    """Per-channel mean and biased variance over every axis but the last."""
    flat = x.reshape(-1, x.shape[-1])
    return flat.mean(axis=0), flat.var(axis=0)


def prelu(x, alpha):
    return np.where(x > 0, x, alpha * x)


def unit_scores(query, keys, kernels, biases, output_kernel, output_bias, act):
    """Scores `(B, T, C)` of the activation unit, one candidate at a time.

    `act` is a function of the hidden layer index and its pre-activation.
    """
    query, keys = np.asarray(query, np.float64), np.asarray(keys, np.float64)
    batch, candidates, _ = query.shape
    history = keys.shape[1]
    scores = np.zeros((batch, history, candidates))
    for c in range(candidates):
        q = np.repeat(query[:, c : c + 1, :], history, axis=1)
        hidden = np.concatenate([q, keys, q - keys, q * keys], axis=-1)
        for i, (kernel, bias) in enumerate(zip(kernels, biases, strict=True)):
            hidden = act(i, hidden @ kernel + bias)
        scores[:, :, c] = (hidden @ output_kernel + output_bias)[..., 0]
    return scores


def unit_scores_joint(query, keys, kernels, biases, output_kernel, output_bias, act):
    """Like `unit_scores`, with every candidate in one `(B, T, C, 4E)` tensor.

    `act(i, x)` sees the pre-activations `(B, T, C, H_i)` of all candidates
    at once, as batch statistics (Dice, batch norm) in training need.
    """
    query, keys = np.asarray(query, np.float64), np.asarray(keys, np.float64)
    q = query[:, None, :, :]  # (B, 1, C, E)
    k = keys[:, :, None, :]  # (B, T, 1, E)
    q, k = np.broadcast_arrays(q, k)
    hidden = np.concatenate([q, k, q - k, q * k], axis=-1)
    for i, (kernel, bias) in enumerate(zip(kernels, biases, strict=True)):
        hidden = act(i, hidden @ kernel + bias)
    return (hidden @ output_kernel + output_bias)[..., 0]


def valid_from_lengths(lengths, history):
    lengths = np.asarray(lengths).reshape(-1)
    return np.array([[t < n for t in range(history)] for n in lengths])


def pool(scores, keys, valid, weight_normalization, return_score):
    """DIN pooling of `(B, T, C)` scores; `valid` is `(B, T)` booleans."""
    keys = np.asarray(keys, np.float64)
    batch, history, candidates = scores.shape
    weights = np.zeros((batch, candidates, history))
    for b in range(batch):
        idx = [t for t in range(history) if valid[b, t]]
        for c in range(candidates):
            s = scores[b, idx, c]
            if weight_normalization and idx:
                e = np.exp(s - s.max())
                s = e / e.sum()
            weights[b, c, idx] = s
    if return_score:
        return weights
    return weights @ keys


# --- DIEN -------------------------------------------------------------------


def gru_states(
    inputs,
    valid,
    kernel,
    recurrent_kernel,
    bias,
    recurrent_bias,
    gru_type="GRU",
    attention=None,
):
    """DIEN's GRU family over `(B, T, E)` inputs, one sequence at a time.

    Gates `[reset, update, candidate]`, the update gate the share of the new
    candidate. `attention` `(B, T)` for AIGRU (scales the input), AGRU
    (replaces the update gate) and AUGRU (scales it). Invalid positions
    carry the state and output 0. Returns states `(B, T, H)`, final `(B, H)`.
    """
    inputs = np.asarray(inputs, np.float64)
    batch, history, _ = inputs.shape
    units = recurrent_kernel.shape[0]
    states = np.zeros((batch, history, units))
    final = np.zeros((batch, units))
    for b in range(batch):
        h = np.zeros(units)
        for t in range(history):
            if not valid[b, t]:
                continue
            x = inputs[b, t]
            if gru_type == "AIGRU":
                x = attention[b, t] * x
            gi = x @ kernel + bias
            gh = h @ recurrent_kernel + recurrent_bias
            r = sigmoid(gi[:units] + gh[:units])
            u = sigmoid(gi[units : 2 * units] + gh[units : 2 * units])
            n = np.tanh(gi[2 * units :] + r * gh[2 * units :])
            if gru_type == "AGRU":
                u = attention[b, t]
            elif gru_type == "AUGRU":
                u = attention[b, t] * u
            h = (1 - u) * h + u * n
            states[b, t] = h
        final[b] = h
    return states, final


def softmax_over_valid(scores, valid):
    """`(B, T)` softmax over the valid positions of each row (0 elsewhere)."""
    weights = np.zeros_like(scores, dtype=np.float64)
    for b in range(scores.shape[0]):
        idx = np.flatnonzero(valid[b])
        if idx.size:
            e = np.exp(scores[b, idx] - scores[b, idx].max())
            weights[b, idx] = e / e.sum()
    return weights


def auxiliary_loss(states, keys, negatives, valid, mlp):
    """DIEN's eq. 3: mean cross-entropy over pairs (t, t + 1) both valid.

    `mlp` maps `[h_t, e]` to a probability. Each pair contributes the
    clicked next item (label 1) and the negative (label 0); the mean is over
    the 2N predictions, 0 without a pair.
    """
    total, count = 0.0, 0
    for b in range(states.shape[0]):
        for t in range(states.shape[1] - 1):
            if valid[b, t] and valid[b, t + 1]:
                p = mlp(np.concatenate([states[b, t], keys[b, t + 1]]))
                n = mlp(np.concatenate([states[b, t], negatives[b, t + 1]]))
                total += -np.log(p) - np.log(1 - n)
                count += 2
    return total / count if count else 0.0


def bst_output(query, keys, valid, weights, num_heads, pooling):
    """`BehaviorSequenceTransformer`'s output, from its weights in their
    order: recency, the attention's projections (no key bias), the
    feed-forward layers, the norms' scales and shifts."""
    (recency, wq, bq, wk, wv, bv, wo, bo, w1, b1, w2, b2, g1, be1, g2, be2) = [
        np.asarray(w, np.float64) for w in weights
    ]
    batch, candidates, dim = query.shape
    history = keys.shape[1]
    key_dim = wq.shape[1] // num_heads
    keys = np.where(valid[..., None], keys, 0.0)
    after = np.cumsum(valid[:, ::-1], axis=1)[:, ::-1]
    positions = np.concatenate([after, np.zeros((batch, 1), int)], 1)
    width = (history + 1) * dim if pooling == "concat" else dim
    out = np.zeros((batch, candidates, width))
    for b in range(batch):
        mask = np.append(valid[b], True)
        for c in range(candidates):
            s = np.concatenate([keys[b], query[b, c][None]], 0) + recency[positions[b]]
            heads = []
            for h in range(num_heads):
                part = slice(h * key_dim, (h + 1) * key_dim)
                q = s @ wq[:, part] + bq[part]
                k = s @ wk[:, part]
                v = s @ wv[:, part] + bv[part]
                scores = q @ k.T / np.sqrt(key_dim)
                scores = np.where(mask[None, :], scores, -np.inf)
                p = np.exp(scores - scores.max(-1, keepdims=True))
                heads.append((p / p.sum(-1, keepdims=True)) @ v)
            attended = np.concatenate(heads, -1) @ wo + bo
            h = layer_norm(s + attended, g1, be1)
            f = h @ w1 + b1
            f = np.where(f > 0, f, 0.2 * f) @ w2 + b2
            o = layer_norm(h + f, g2, be2) * mask[:, None]
            if pooling == "concat":
                out[b, c] = o.ravel()
            elif pooling == "mean":
                out[b, c] = o.sum(0) / mask.sum()
            else:
                out[b, c] = o[-1]
    return out


def layer_norm(x, gamma, beta, epsilon=1e-5):
    mean = x.mean(-1, keepdims=True)
    variance = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def search_based_interest(
    query, keys, valid, weights, num_heads, top_k, query_ids=None, key_ids=None
):
    """`SearchBasedInterest`'s outputs, from its weights in their order:
    recency, the attention's query, key, value and output kernels, then the
    soft search's query and key kernels, or the SimHash projection (one
    weight more: SimHash search). Hard search where ids are given. Returns
    `(interest, u)`, `u` `None` but for the soft search."""
    weights = [np.asarray(w, np.float64) for w in weights]
    recency, wq, wk, wv, wo = weights[:5]
    simhash = len(weights) == 6
    soft = key_ids is None and not simhash
    batch, candidates, dim = query.shape
    history = keys.shape[1]
    key_dim = wq.shape[1] // num_heads
    keys = np.where(valid[..., None], keys, 0.0)
    interest = np.zeros((batch, candidates, dim))
    u = np.zeros((batch, candidates, dim))
    for b in range(batch):
        latest_first = [t for t in reversed(range(history)) if valid[b, t]]
        rank = {t: r for r, t in enumerate(latest_first, 1)}
        for c in range(candidates):
            if simhash:
                bits = lambda e: (e @ weights[5]) > 0  # noqa: E731
                hamming = [
                    np.sum(bits(keys[b, t]) != bits(query[b, c]))
                    for t in range(history)
                ]
                order = sorted(latest_first, key=lambda t: (hamming[t], -t))
            elif soft:
                r = (keys[b] @ weights[6]) @ (query[b, c] @ weights[5])
                u[b, c] = sum((r[t] * keys[b, t] for t in latest_first), np.zeros(dim))
                # Highest first; the later of equal relevances first.
                order = sorted(latest_first, key=lambda t: (-r[t], -t))
            else:
                order = [t for t in latest_first if key_ids[b, t] == query_ids[b, c]]
            kept = order[:top_k]
            if not kept:
                continue
            buckets = [min(rank[t].bit_length() - 1, 15) for t in kept]
            z = keys[b, kept] + recency[buckets]
            heads = []
            for h in range(num_heads):
                part = slice(h * key_dim, (h + 1) * key_dim)
                scores = (z @ wk[:, part]) @ (query[b, c] @ wq[:, part])
                p = np.exp(
                    scores / np.sqrt(key_dim) - np.max(scores / np.sqrt(key_dim))
                )
                heads.append((p / p.sum()) @ (z @ wv[:, part]))
            interest[b, c] = np.concatenate(heads) @ wo
    return interest, (u if soft else None)
