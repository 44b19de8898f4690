"""Sample-quality metrics. `registry` names them and says what each needs; the other modules
compute them (Fréchet distance, KID, precision/recall, density/coverage, Inception Score,
mode and class coverage) and `inception` provides the FID Inception network.

Nothing is imported here, so that validating params (which reads the registry's names)
does not load the metric code, and editing a metric reruns only the stages that compute it.
"""
