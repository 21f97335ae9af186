"""aerec: a recommender that learns from star ratings with autoencoders.

The CLI (`aerec ...`) is a thin layer over the library; each command is a method of
:class:`Home` or :class:`Run` (see aerec_cli/api.py). The README's example:

    from aerec_cli import Home

    home = Home("~/aerec")
    home.ingest("ml-100k.zip", force=True)  # your own split: ingest("u1.base", test="u1.test")
    run = home.train(kind="denoising", epochs=30, progress=lambda row: None)  # row: one epoch
    report = run.evaluate()
    print(f"test RMSE {report.rmse:.4f} (bias baseline {report.baselines['bias']['rmse']:.4f})")
    print(report.ranking_frame()[["ndcg@10"]])
    print(run.recommend("7", top=5).to_frame()[["rank", "item", "title", "score"]])
    print(run.recommend(ratings=[("1", 5), ("7", 4), ("12", 5)], top=3).to_frame())
    print(run.predict([("7", "1"), ("7", "12", 4.0)]).to_frame())
    print(run.similar("1", top=3).to_frame())
    print(run.outliers(by="user", top=3).to_frame())
    print(run.embed().shape, [r.name for r in home.runs()])
"""

__version__ = "0.1.0"

__all__ = ["Home", "Run", "__version__"]


def __getattr__(name: str):
    # Loaded on first use, so that every `aerec` command (which imports this package) does not
    # pay for the Python API's imports: `recommend` must answer in well under a second.
    if name in ("Home", "Run"):
        from aerec_cli import api

        return getattr(api, name)
    raise AttributeError(f"module 'aerec_cli' has no attribute {name!r}")
