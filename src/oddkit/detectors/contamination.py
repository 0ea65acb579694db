"""Estimating the share of anomalies in unlabelled training data from the training scores.

``contamination="auto"`` on a detector calls :func:`estimate_contamination` on its training
scores after fitting; the threshold then flags that share of the training rows. Every method here
looks for the rows whose score stands apart from the bulk of the scores; none can see anomalies
that score like normal rows, so the estimate is a lower bound in spirit, and on data whose
anomalies do not stand apart it can be far from the truth (``benchmarks/CONTAMINATION_AUTO.md``
measures it against the true share on the shared datasets).
"""

from __future__ import annotations

import numpy as np

from oddkit.exceptions import DataError

METHODS = ("mad", "iqr", "otsu", "gmm")
AUTO_METHOD = "iqr"
"""The method ``contamination="auto"`` uses: the lowest mean absolute error for the default detector
on the selection half of the shared datasets (``benchmarks/contamination_auto.py``), where no
method came closer to the true shares than the fixed 0.1."""
MIN_SHARE = 0.001
"""The smallest share an estimate returns: the threshold must flag at least one row in a thousand."""
MAX_SHARE = 0.5
"""The largest share an estimate returns (the detectors' ``contamination`` upper bound)."""
MAD_CUTOFF = 3.5
"""Modified z-score above which a score is an outlier (Iglewicz and Hoaglin's recommendation)."""
IQR_FENCE = 1.5
"""Tukey's fence: a score above Q3 + 1.5 x IQR is an outlier."""


def _otsu_cut(scores: np.ndarray, bins: int = 256) -> float:
    """The cut between histogram bins that maximises the between-class variance (Otsu, 1979)."""
    counts, edges = np.histogram(scores, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(counts)[:-1].astype(np.float64)
    above = below[-1] + counts[-1] - below if len(below) else below
    weighted = np.cumsum(counts * centres)[:-1]
    total = float(np.sum(counts * centres))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = below * above * (weighted / below - (total - weighted) / above) ** 2
    between = np.where(np.isfinite(between), between, -1.0)
    return float(edges[1:-1][int(np.argmax(between))])


def _gmm_share(scores: np.ndarray, random_state: int = 0) -> float:
    """Weight of the upper component of a two-component Gaussian mixture of the scores, counted as
    the rows it claims with posterior above one half."""
    from sklearn.mixture import GaussianMixture

    column = scores.reshape(-1, 1)
    mixture = GaussianMixture(n_components=2, random_state=random_state).fit(column)
    upper = int(np.argmax(mixture.means_.ravel()))
    return float(np.mean(mixture.predict_proba(column)[:, upper] > 0.5))


def estimate_contamination(scores, method: str = "iqr") -> float:
    """The share of training rows whose anomaly score stands apart from the rest.

    Parameters
    ----------
    scores : array-like of shape (n,)
        Anomaly scores of the training rows (higher = more anomalous), finite.
    method : {"mad", "iqr", "otsu", "gmm"}, default="iqr"
        - ``"mad"``: rows whose modified z-score ``0.6745 (s - median) / MAD`` exceeds 3.5
          (Iglewicz and Hoaglin, 1993): a robust z-score, so the anomalies do not widen the scale
          they are judged by;
        - ``"iqr"``: rows above Tukey's upper fence, Q3 + 1.5 IQR (Tukey, 1977);
        - ``"otsu"``: rows above the histogram cut that best separates two groups of scores
          (Otsu, 1979);
        - ``"gmm"``: rows claimed by the upper component of a two-component Gaussian mixture.

    Returns
    -------
    float
        The estimated share, clipped to [0.001, 0.5].

    Raises
    ------
    DataError
        Fewer than 2 scores, or a NaN or infinite one.

    References
    ----------
    Iglewicz, B. and Hoaglin, D. C. "How to detect and handle outliers." ASQC Quality Press, 1993.
    Tukey, J. W. "Exploratory data analysis." Addison-Wesley, 1977.
    Otsu, N. "A threshold selection method from gray-level histograms." IEEE Transactions on
    Systems, Man, and Cybernetics 9(1), 1979.

    Examples
    --------
    >>> import numpy as np
    >>> scores = np.r_[np.random.default_rng(0).normal(size=950), np.full(50, 20.0)]
    >>> round(estimate_contamination(scores), 3)
    0.051
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.size < 2 or not np.all(np.isfinite(scores)):
        raise DataError(f"estimating the contamination needs at least 2 finite training scores, got {scores.size} "
                        f"({np.count_nonzero(~np.isfinite(scores))} not finite); pass a number as contamination")
    if method not in METHODS:
        raise DataError(f"unknown contamination estimate {method!r}; use one of {', '.join(METHODS)}")
    if np.ptp(scores) == 0:
        return MIN_SHARE
    if method == "mad":
        median = np.median(scores)
        mad = np.median(np.abs(scores - median))
        if mad == 0:  # over half the scores tie: the ones above the tie stand apart
            share = float(np.mean(scores > median))
        else:
            share = float(np.mean(0.6745 * (scores - median) / mad > MAD_CUTOFF))
    elif method == "iqr":
        q1, q3 = np.percentile(scores, [25, 75])
        share = float(np.mean(scores > q3 + IQR_FENCE * (q3 - q1)))
    elif method == "otsu":
        share = float(np.mean(scores > _otsu_cut(scores)))
    else:
        share = _gmm_share(scores)
    return float(np.clip(share, MIN_SHARE, MAX_SHARE))
