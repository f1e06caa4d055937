"""Trend maths for early-warning alerts: a least-squares line through (t, value) points and when
it reaches a threshold. Pure functions; forecasts.py feeds them the metrics history.

Times are minutes relative to the moment judged (now is t = 0, the past is negative), so a
line's slope is per minute and its value at 0 is the level now, read through the noise.
"""
import math
from collections import defaultdict
from dataclasses import dataclass

# A slope within this many standard errors of zero is noise, not a trend: a flat but noisy
# series never projects a crossing, however close to the threshold it wanders.
CONFIDENCE = 3.0


@dataclass(frozen=True)
class Line:
    slope: float  # value units a minute
    intercept: float  # the value at t = 0
    slope_error: float  # the slope's standard error
    span: float  # minutes between the first and the last point

    def at(self, t):
        return self.intercept + self.slope * t

    @property
    def significant(self):
        return abs(self.slope) > CONFIDENCE * self.slope_error


def fit_line(points):
    """The least-squares line through (t, value) points; None for fewer than three points
    (no error estimate) or when they all share one t."""
    n = len(points)
    if n < 3:
        return None
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return None
    slope = sum((t - mean_t) * (v - mean_v) for t, v in points) / spread
    intercept = mean_v - slope * mean_t
    residual = sum((v - intercept - slope * t) ** 2 for t, v in points)
    span = max(t for t, _ in points) - min(t for t, _ in points)
    return Line(slope, intercept, math.sqrt(residual / (n - 2) / spread), span)


def time_to_cross(line, threshold, after=0.0):
    """Minutes from `after` until the line reaches `threshold`; None when it never will after
    that moment (flat, moving away, or already past it)."""
    if line.slope == 0:
        return None
    crossing = (threshold - line.intercept) / line.slope
    return crossing - after if crossing > after else None


@dataclass(frozen=True)
class Forecast:
    line: Line
    eta: float  # minutes until the threshold is reached

    @property
    def now(self):
        return self.line.at(0.0)


def forecast(points, threshold, horizon, *, rising, min_points=3, min_span=0.0):
    """The trend in `points` when it is real (a significant slope over at least `min_points`
    points spanning `min_span` minutes), heads the way asked (`rising` or falling) and reaches
    `threshold` within `horizon` minutes of now."""
    if len(points) < min_points:
        return None
    line = fit_line(points)
    if line is None or line.span < min_span or not line.significant or (line.slope > 0) != rising:
        return None
    eta = time_to_cross(line, threshold)
    return Forecast(line, eta) if eta is not None and eta <= horizon else None


def bucket_totals(samples, width):
    """[(t, total)] of (t, source, value) samples, oldest first: each source's mean within each
    `width`-minute bucket, summed over the sources (a host's load from its streams' samples,
    whatever their phase), at the bucket's mean sample time. Buckets are aligned on t = 0."""
    buckets = defaultdict(lambda: defaultdict(list))
    for t, source, value in samples:
        buckets[math.floor(t / width)][source].append((t, value))
    return [(_mean(_mean(t for t, _ in points) for points in by_source.values()),
             sum(_mean(v for _, v in points) for points in by_source.values()))
            for _, by_source in sorted(buckets.items())]


def _mean(values):
    values = list(values)
    return sum(values) / len(values)
