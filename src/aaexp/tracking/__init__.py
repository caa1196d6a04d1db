"""MLflow tracking: the store (runs, metrics, artifacts) and the sweep callback that gives a sweep its parent run."""
