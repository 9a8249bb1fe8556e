"""The power-law tail of a landslide area-frequency distribution, fitted the standard way.

Landslide inventories follow ``p(A) ~ A^-beta`` above a cutoff ``A_min`` (Malamud et al. 2004,
Earth Surf. Process. Landforms 29:687; beta typically 2.3-2.5) and roll over below it. The fit is
the method of Clauset, Shalizi & Newman (2009, SIAM Review 51:661, doi:10.1137/070710111) for
continuous data:

* for a given cutoff, the maximum-likelihood exponent of the ``n`` areas ``A_i >= A_min`` is::

      beta = 1 + n / sum(ln(A_i / A_min))         standard error (beta - 1) / sqrt(n)

* the cutoff is the candidate (an observed area) that minimises the Kolmogorov-Smirnov distance
  ``D = max |S(A) - P(A)|`` between the tail's empirical CDF ``S`` and the fitted
  ``P(A) = 1 - (A / A_min)^(1 - beta)``.

The ``powerlaw`` package (Alstott et al. 2014) implements the same; it would bring scipy and mpmath
into QGIS's Python for these few lines, so the fit lives here, tested on samples of known exponent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: Fewer areas than this are not fitted (the exponent would be noise).
MIN_AREAS = 30
#: The smallest tail a cutoff may leave (small tails give spuriously small KS distances).
MIN_TAIL = 20
#: At most this many cutoff candidates are tried (evenly spread over the distinct areas).
MAX_CANDIDATES = 400


@dataclass(frozen=True)
class PowerLawFit:
    """``p(A) ~ A^-beta`` for ``A >= cutoff``: the exponent of the probability density (PDF)."""

    beta: float
    beta_error: float
    cutoff: float
    n_tail: int
    n: int
    ks_distance: float

    def density(self, areas: np.ndarray) -> np.ndarray:
        """The fitted PDF at ``areas`` (>= cutoff), as a share of all ``n`` areas (so it lies on
        the density of the whole inventory, whose tail holds ``n_tail / n`` of it)."""
        a = np.asarray(areas, dtype=float)
        share = self.n_tail / self.n
        return share * (self.beta - 1.0) / self.cutoff * (a / self.cutoff) ** (-self.beta)


def mle_exponent(values: Sequence[float], cutoff: float) -> tuple[float, int]:
    """The maximum-likelihood exponent of the values >= ``cutoff``, and how many there are."""
    x = np.asarray(values, dtype=float)
    tail = x[np.isfinite(x) & (x >= cutoff)]
    total = float(np.log(tail / cutoff).sum())
    if tail.size == 0 or total <= 0:
        return float("nan"), int(tail.size)
    return 1.0 + tail.size / total, int(tail.size)


def fit_power_law(values: Sequence[float], *, min_tail: int = MIN_TAIL,
                  max_candidates: int = MAX_CANDIDATES) -> PowerLawFit | None:
    """The power-law tail of ``values`` (cutoff by the KS method); None when there are fewer
    than :data:`MIN_AREAS` positive values or no cutoff leaves ``min_tail`` of them."""
    x = np.asarray(values, dtype=float)
    x = np.sort(x[np.isfinite(x) & (x > 0)])
    n = int(x.size)
    if n < max(MIN_AREAS, min_tail):
        return None
    logs = np.log(x)
    tail_log_sums = np.cumsum(logs[::-1])[::-1]  # sum of logs[i:]
    _, first = np.unique(x, return_index=True)
    candidates = first[n - first >= min_tail]
    if candidates.size == 0:
        return None
    if candidates.size > max_candidates:
        pick = np.unique(np.linspace(0, candidates.size - 1, max_candidates).round().astype(int))
        candidates = candidates[pick]
    best: PowerLawFit | None = None
    for i in candidates:
        m = n - int(i)
        spread = tail_log_sums[i] - m * logs[i]
        if spread <= 0:
            continue
        beta = 1.0 + m / spread
        d = _ks_distance(x[i:], x[i], beta)
        if best is None or d < best.ks_distance:
            best = PowerLawFit(beta=beta, beta_error=(beta - 1.0) / np.sqrt(m), cutoff=float(x[i]),
                               n_tail=m, n=n, ks_distance=d)
    return best


def _ks_distance(tail: np.ndarray, cutoff: float, beta: float) -> float:
    """KS distance between the sorted ``tail`` and the power law; ties (areas that are whole
    numbers of pixels repeat) are compared on both sides of the step."""
    levels = np.unique(tail)
    model = 1.0 - (levels / cutoff) ** (1.0 - beta)
    m = tail.size
    above = np.searchsorted(tail, levels, side="right") / m
    below = np.searchsorted(tail, levels, side="left") / m
    return float(max(np.abs(above - model).max(), np.abs(below - model).max()))


def log_binned_density(values: Sequence[float], bins_per_decade: int = 5
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The probability density of ``values`` in logarithmic bins: ``(centres, density, counts)``
    of the bins holding at least one value; centres are geometric means of the bin edges and
    ``density = count / (n * bin width)``."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x) & (x > 0)]
    if x.size == 0:
        empty = np.zeros(0)
        return empty, empty, empty.astype(int)
    lo = np.floor(np.log10(x.min()) * bins_per_decade) / bins_per_decade
    hi = np.ceil(np.log10(x.max()) * bins_per_decade) / bins_per_decade
    if hi <= lo:
        hi = lo + 1.0 / bins_per_decade
    edges = 10.0 ** np.arange(lo, hi + 0.5 / bins_per_decade, 1.0 / bins_per_decade)
    counts, edges = np.histogram(x, bins=edges)
    keep = counts > 0
    centres = np.sqrt(edges[:-1] * edges[1:])
    density = counts / (x.size * np.diff(edges))
    return centres[keep], density[keep], counts[keep]
