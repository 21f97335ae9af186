"""Scoring a trained run (numpy, no torch): predictions, top-N lists, item codes, outliers."""
