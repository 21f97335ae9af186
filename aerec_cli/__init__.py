"""aerec: a recommender that learns from star ratings with autoencoders.

The CLI (`aerec ...`) is a thin layer over these modules; each command has a
Python counterpart:

    from aerec_cli.storage import dataset_store
    from aerec_cli.training import session
    from aerec_cli.evaluation import evaluator
    from aerec_cli.scoring import recommendations
    ds = dataset_store.ingest("ml-100k.zip", home="~/aerec")
    run = session.train_run(home="~/aerec")
    report = evaluator.evaluate_run(home="~/aerec")
    recs = recommendations.recommend_for_user("42", home="~/aerec", top=10)
"""

__version__ = "0.1.0"
