"""A reproducible GAN experiment pipeline: prepare, train, generate and evaluate, tracked in MLflow."""

__version__ = "0.1.0"
