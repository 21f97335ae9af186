"""The kind registry (models/kinds.py): each kind and option is declared once, and the config,
the CLI, the models and saved runs all follow the declarations, old runs included."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math

import pytest
import torch

from aerec_cli.errors import AerecError
from aerec_cli.models import kinds
from aerec_cli.models.autoencoders import RatingAutoencoder, build_model
from aerec_cli.storage import run_store
from aerec_cli.training import session
from aerec_cli.training.config import TrainConfig
from tests.helpers import TINIEST, assert_clean_error, ok, run_cli

CPU = torch.device("cpu")


# --- the declarations agree with the code ----------------------------------------------------


@pytest.mark.parametrize("kind", list(kinds.KINDS.values()), ids=lambda kind: kind.name)
def test_each_declared_kind_matches_its_model_class(kind):
    cls = kind.model_class()
    assert issubclass(cls, RatingAutoencoder) and kinds.kind_of(cls) is kind
    # The class takes exactly the declared model options, as keywords.
    taken = [
        name
        for name, param in inspect.signature(cls.__init__).parameters.items()
        if param.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    assert sorted(taken) == sorted(option.name for option in kind.model_options())
    for option in kind.options:
        option.check(option.default)  # every default obeys its own rule
    kind.check_hidden(kind.hidden.sizes(1000), 1000)  # and so does the default layer rule


def test_options_are_declared_once_and_clash_with_no_setting():
    settings = {field.name for field in dataclasses.fields(TrainConfig)}
    names = [option.name for option, _ in kinds.options()]
    assert len(names) == len(set(names)) and not settings & set(names)
    takers = {option.name: [kind.name for kind in by] for option, by in kinds.options()}
    assert takers["pretrain_epochs"] == ["stacked", "deep"]


# --- TrainConfig reads the declarations ----------------------------------------------------


def test_config_fills_the_kinds_defaults_and_keeps_what_is_given():
    config = TrainConfig(kind="denoising", options={"corruption": 0.4})
    assert config.options == {"corruption": 0.4, "noise": "mask", "noise_std": 0.3}
    assert TrainConfig(kind="basic").options == {}
    assert TrainConfig(kind="deep").pretrain_epochs == 10
    assert TrainConfig(kind="basic").pretrain_epochs == 0
    assert TrainConfig(kind="stacked").l2(1000) == 30.0 and TrainConfig().l2(90_000) == 100.0
    config.check()


def test_the_default_l2_grows_with_the_ratings_and_a_given_one_does_not():
    """The kinds' defaults suit ML-100K's size; on ML-1M's (855,000 ratings fitted) the
    default kind's grows to about the 250 its validation search chose."""
    assert TrainConfig().l2(855_000) == pytest.approx(246, abs=1)
    assert TrainConfig(kind="stacked").l2(855_000) == pytest.approx(30 * 2.46, abs=0.5)
    assert TrainConfig().l2(85_500) == 100.0  # ML-100K's random split, as before
    assert TrainConfig().l2(10) == 100.0  # never below the declared default
    assert TrainConfig(weight_decay=7.0).l2(855_000) == 7.0


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("denoising", {"corruption": 1.5}, "--corruption must be in [0, 1), not 1.5"),
        (
            "denoising",
            {"corruption": math.nan},
            "--corruption must be a finite number in [0, 1), not nan",
        ),
        ("denoising", {"noise": "salt"}, "--noise must be one of mask, gaussian, mask+gaussian"),
        ("denoising", {"noise_std": -1}, "--noise-std must be 0 or more, not -1"),
        ("sparse", {"sparsity_target": 0}, "--sparsity-target must be in (0, 1), not 0"),
        ("sparse", {"sparsity_weight": "high"}, "--sparsity-weight takes a number"),
        ("contractive", {"contraction_weight": -1}, "--contraction-weight must be 0 or more"),
        ("deep", {"cd_steps": 0}, "--cd-steps must be at least 1, not 0"),
        ("deep", {"cd_steps": 1.5}, "--cd-steps takes a whole number, not 1.5"),
        ("stacked", {"pretrain_epochs": -1}, "--pretrain-epochs must be at least 0, not -1"),
        ("basic", {"corruption": 0.1}, "--corruption is an option of denoising; --kind basic"),
        ("stacked", {"cd_steps": 2}, "--cd-steps is an option of deep; --kind stacked"),
        ("deep", {"bogus": 1}, "unknown option 'bogus' of --kind deep"),
    ],
)
def test_config_checks_every_option_by_its_declaration(kind, options, message):
    with pytest.raises(AerecError) as raised:
        TrainConfig(kind=kind, options=options).check()
    assert message in raised.value.message


def test_hidden_sizes_are_checked_by_the_kind_before_any_data_is_read():
    for kind, hidden, message in [
        ("denoising", [4, 2], "denoising takes one hidden size"),
        ("stacked", [20], "stacked needs two or more hidden sizes"),
        ("deep", [8, 0], "--hidden sizes must be at least 1"),
    ]:
        with pytest.raises(AerecError, match=message):
            TrainConfig(kind=kind, hidden=hidden).check()
    with pytest.raises(AerecError, match="basic is undercomplete"):
        build_model({"kind": "basic", "n_inputs": 30, "hidden": [30]})


def test_flat_settings_put_kind_options_in_their_place():
    config = TrainConfig.from_dict({"kind": "sparse", "sparsity_weight": 5, "epochs": 3})
    assert config.epochs == 3 and config.options == {"sparsity_target": 0.05, "sparsity_weight": 5}
    with pytest.raises(AerecError, match="unknown training setting 'colour'"):
        TrainConfig.from_dict({"colour": "blue"})
    # A grid row is strict (a foreign option is a mistake) ...
    with pytest.raises(AerecError, match="--kind basic does not take it"):
        TrainConfig.from_dict({"kind": "basic", "corruption": 0.1}).check()
    # ... but a run saved before the registry stored every kind's options, so those go.
    saved = TrainConfig.from_dict({"kind": "basic", "corruption": 0.1}, saved=True)
    assert saved.options == {}


def test_build_model_checks_the_spec_and_fills_options_added_since():
    model = build_model({"kind": "denoising", "n_inputs": 10, "hidden": [4], "corruption": 0.5})
    assert (model.corruption, model.noise, model.noise_std) == (0.5, "mask", 0.3)
    assert model.spec() == {
        "kind": "denoising",
        "n_inputs": 10,
        "hidden": [4],
        "corruption": 0.5,
        "noise": "mask",
        "noise_std": 0.3,
    }
    with pytest.raises(AerecError, match="--corruption must be in"):
        build_model({"kind": "denoising", "n_inputs": 10, "hidden": [4], "corruption": 2})
    with pytest.raises(ValueError, match="pretrain_epochs"):
        build_model({"kind": "deep", "n_inputs": 10, "hidden": [4, 2], "pretrain_epochs": 1})


# --- the CLI follows the declarations --------------------------------------------------------


def test_train_help_lists_every_kind_and_option():
    text = ok(run_cli(None, "train", "--help", env={"COLUMNS": "200"})).stdout
    for kind in kinds.KINDS.values():
        assert f"{kind.name}: {kind.help}" in text
    for option, takers in kinds.options():
        assert option.flag in text
        assert f"{'/'.join(kind.name for kind in takers)}: {option.help}" in text
    assert "[0<=x<1]" in text and "<mask|gaussian|mask+gaussian>" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--corruption", "1.5"], "error: --corruption must be in [0, 1), not 1.5"),
        (["--corruption", "lots"], "error: --corruption takes a number, not 'lots'"),
        (["--noise", "salt"], "error: --noise must be one of mask, gaussian, mask+gaussian"),
        (["--kind", "deep", "--cd-steps", "2.5"], "error: --cd-steps takes a whole number"),
        (["--kind", "basic", "--pretrain-epochs", "3"], "error: --pretrain-epochs is an option"),
    ],
)
def test_cli_reports_the_same_messages_as_the_config(ingested_home, args, message):
    line = assert_clean_error(run_cli(ingested_home, "train", *TINIEST, *args))
    assert line.startswith(message), line


def test_options_given_reach_the_run(ingested_home):
    args = ["--kind", "denoising", "--corruption", "0.4", "--noise", "gaussian", "--run", "n"]
    ok(run_cli(ingested_home, "-q", "train", *TINIEST, *args))
    config = run_store.load_run(ingested_home, "n").config
    assert config["train"]["options"] == {"corruption": 0.4, "noise": "gaussian", "noise_std": 0.3}
    assert config["model"]["corruption"] == 0.4 and config["model"]["noise"] == "gaussian"


# --- a kind or an option added in one place ----------------------------------------------------


class ToyAutoencoder(RatingAutoencoder):
    """A throwaway kind for these tests: a basic autoencoder with one option of its own."""

    def __init__(self, n_inputs: int, hidden: list[int], *, wobble: float):
        super().__init__(n_inputs, hidden)
        self.wobble = wobble


WOBBLE = kinds.Option(
    name="wobble", type=float, default=0.5, help="how much the toy wobbles.", low=0, high=1
)
TOY = kinds.Kind(
    name="toy",
    help="a throwaway kind declared by a test.",
    model=f"{__name__}:ToyAutoencoder",
    hidden=kinds.ONE_LAYER,
    options=(WOBBLE,),
    weight_decay=7.0,
)


@pytest.fixture
def toy_registered(monkeypatch):
    monkeypatch.setitem(kinds.KINDS, "toy", TOY)


def test_a_kind_declared_once_gets_flags_help_checks_and_runs(toy_registered, ingested_home):
    text = ok(run_cli(None, "train", "--help", env={"COLUMNS": "200"})).stdout
    assert "toy: a throwaway kind declared by a test." in text
    assert "--wobble" in text and "toy: how much the toy wobbles." in text
    assert "| toy (see Kinds below)" in text and "toy 7" in text  # --kind, --weight-decay

    assert TrainConfig(kind="toy").options == {"wobble": 0.5}
    with pytest.raises(AerecError, match=r"--wobble must be in \[0, 1\], not 2"):
        TrainConfig(kind="toy", options={"wobble": 2}).check()
    assert_clean_error(
        run_cli(ingested_home, "train", *TINIEST, "--kind", "toy", "--wobble", "2"),
        "--wobble must be in [0, 1], not 2.0",
    )
    assert_clean_error(
        run_cli(ingested_home, "train", *TINIEST, "--wobble", "0.1"), "--wobble is an option of toy"
    )

    ok(
        run_cli(
            ingested_home, "-q", "train", *TINIEST, "--kind", "toy", "--wobble", "0.2", "--run", "t"
        )
    )
    run = run_store.load_run(ingested_home, "t")
    assert run.config["model"] == {"kind": "toy", "n_inputs": 30, "hidden": [4], "wobble": 0.2}
    assert run.load_model(CPU).wobble == 0.2
    assert ok(run_cli(ingested_home, "evaluate", "--run", "t", "--format", "json")).json()["kind"]


def test_an_option_added_to_a_kind_gets_its_flag_and_check(monkeypatch):
    patience = kinds.Option(
        name="layer_patience", type=int, default=3, help="a new option.", low=1, model=False
    )
    stacked = kinds.KINDS["stacked"]
    extended = dataclasses.replace(stacked, options=(*stacked.options, patience))
    monkeypatch.setitem(kinds.KINDS, "stacked", extended)
    text = ok(run_cli(None, "train", "--help", env={"COLUMNS": "200"})).stdout
    assert "--layer-patience" in text and "stacked: a new option." in text
    assert TrainConfig(kind="stacked").options["layer_patience"] == 3
    with pytest.raises(AerecError, match="--layer-patience must be at least 1, not 0"):
        TrainConfig(kind="stacked", options={"layer_patience": 0}).check()


# --- runs saved before the registry ----------------------------------------------------------

# What config.json's "train" held before the registry: every kind's options as flat fields,
# whatever the kind (written out here, not derived from the registry, since it is history).
OLD_FLAT_OPTIONS = {
    "sparsity_target": 0.05,
    "sparsity_weight": 20.0,
    "corruption": 0.25,
    "noise": "mask",
    "noise_std": 0.3,
    "contraction_weight": 0.01,
    "pretrain_epochs": 10,
    "cd_steps": 1,
}


def _rewrite_as_old_layout(run_path, **flat):
    """Turn a run's config.json into the layout runs had before the registry."""
    path = run_path / run_store.CONFIG
    config = json.loads(path.read_text())
    train = {key: value for key, value in config["train"].items() if key != "options"}
    config["train"] = {**train, **OLD_FLAT_OPTIONS, **config["train"]["options"], **flat}
    path.write_text(json.dumps(config))


@pytest.mark.parametrize("kind", ["denoising", "deep"])
def test_a_run_saved_before_the_registry_loads_evaluates_and_resumes(ingested_home, kind):
    hidden = [8, 4] if kind == "deep" else [8]
    config = TrainConfig(kind=kind, hidden=hidden, epochs=6, patience=6)
    if kind == "deep":
        config.options["pretrain_epochs"] = 2
    seen = []

    def on_epoch(row):
        seen.append(row["phase"])

    with pytest.raises(AerecError, match="--resume old"):
        session.train_run(
            ingested_home,
            config,
            CPU,
            run="old",
            on_epoch=on_epoch,
            stop=lambda: seen.count("train") >= 2,
        )
    run_path = ingested_home / "runs" / "old"
    _rewrite_as_old_layout(run_path, **({"pretrain_epochs": 2} if kind == "deep" else {}))
    assert "options" not in json.loads((run_path / run_store.CONFIG).read_text())["train"]

    report = ok(run_cli(ingested_home, "evaluate", "--run", "old", "--format", "json")).json()
    assert report["kind"] == kind
    ok(run_cli(ingested_home, "recommend", "--run", "old", "--user", "1"))
    resumed = ok(run_cli(ingested_home, "train", "--resume", "old"))
    assert "run old" in resumed.stdout
    finished = run_store.load_run(ingested_home, "old")
    assert finished.metrics["status"] == "finished" and finished.metrics["epochs_run"] == 6
    # Resuming rewrote the run in today's layout, with only the kind's own options.
    expected = {name: OLD_FLAT_OPTIONS[name] for name in kinds.KINDS[kind].defaults()}
    expected.update({"pretrain_epochs": 2} if kind == "deep" else {})
    assert finished.config["train"]["options"] == expected
