"""Training a run: its config, the loop, pretraining, processes and devices."""
