"""Sample-quality metrics: Fréchet distance on features, mode coverage of 2-D mixtures, class coverage."""

from gan.metrics.classes import class_coverage
from gan.metrics.frechet import frechet_distance, gaussian_stats
from gan.metrics.modes import mode_metrics

__all__ = ["class_coverage", "frechet_distance", "gaussian_stats", "mode_metrics"]
