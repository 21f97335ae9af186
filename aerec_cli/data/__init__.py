"""Reading ratings: MovieLens layouts and generic CSV, splits, the built-in sample, downloads."""
