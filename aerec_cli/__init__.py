"""aerec: a recommender that learns from star ratings with autoencoders.

The CLI (`aerec ...`) is a thin layer over these modules; each command has a
Python counterpart:

    from aerec_cli import store, training, evaluation, recommendation
    ds = store.ingest("ml-100k.zip", home="~/aerec")
    run = training.train_run(home="~/aerec")
    report = evaluation.evaluate_run(home="~/aerec")
    recs = recommendation.recommend_for_user("42", home="~/aerec", top=10)
"""

__version__ = "0.1.0"
