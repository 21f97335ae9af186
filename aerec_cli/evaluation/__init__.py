"""Test-split accuracy and ranking metrics, learning-curve plots and diagnostics."""
