"""What stays on disk: datasets, runs, atomic writes, locks and exported tables."""
