"""Inception Score of classifier logits; with the domain classifier's logits it is the "classifier score".

Salimans et al. 2016, "Improved Techniques for Training GANs" (section 4):
IS = exp(E_x KL(p(y|x) || p(y))), where p(y|x) = softmax(logits of x) and p(y) is the mean of
p(y|x) over the samples. As in the paper's code and torch-fidelity's `isc`, the samples are cut
into `splits` consecutive parts, IS is computed on each, and the mean and population std
(ddof = 0) over the parts are reported. It runs from 1 (every prediction alike) to K, the
number of classes (confident predictions spread evenly over all K).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import log_softmax, logsumexp


def inception_score(logits: np.ndarray, *, splits: int = 10) -> dict[str, float]:
    """IS of (N, K) logits, in float64: mean and std over `splits` consecutive parts, no shuffling.

    Part i holds rows [i N // splits, (i + 1) N // splits). Shuffle beforehand if the rows are
    ordered (e.g. by class).
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] == 0:
        raise ValueError(f"inception_score needs logits of shape (N, K), got {logits.shape}")
    if not 1 <= splits <= len(logits):
        raise ValueError(f"inception_score needs 1 <= splits <= N, got splits={splits} with N={len(logits)}")
    if not np.isfinite(logits).all():
        raise ValueError("inception_score: the logits contain NaN or infinite values")
    log_conditional = log_softmax(logits, axis=1)  # (N, K) log p(y|x)
    num_samples = len(logits)
    scores = []
    for i in range(splits):
        part = log_conditional[i * num_samples // splits:(i + 1) * num_samples // splits]  # (n, K)
        # log p(y) through logsumexp stays finite where every p(y|x) of a class underflows to 0.
        log_marginal = logsumexp(part, axis=0) - math.log(len(part))  # (K,)
        kl = np.sum(np.exp(part) * (part - log_marginal), axis=1)  # (n,)
        scores.append(math.exp(kl.mean()))
    return {"is_mean": float(np.mean(scores)), "is_std": float(np.std(scores))}
