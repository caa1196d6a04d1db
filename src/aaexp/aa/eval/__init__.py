"""The measuring instrument: tone grid, model responses, per-tone scores, per-band tables, verdicts, plots, oversampling baseline."""
