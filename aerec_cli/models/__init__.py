"""The networks and what they read: autoencoder kinds, sparse batches, baselines."""
