"""Each autoencoder kind is measurably itself, and each works end to end from the CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from typer.testing import CliRunner

from aerec_cli.cli import app
from aerec_cli.evaluation import diagnostics
from aerec_cli.models import kinds
from aerec_cli.models.autoencoders import MODEL_KINDS, ObservedOutput
from aerec_cli.models.batches import SparseRows, oriented
from aerec_cli.storage import dataset_store
from aerec_cli.training import session

# Small but real: the built-in sample (400 users x 300 items), a larger step size so that
# a few dozen epochs suffice, and no early stop so kinds compare at equal epochs.
QUICK = {"hidden": [64], "epochs": 60, "patience": 60, "lr": 0.01, "lr_patience": 0}
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def sample_data(tmp_path_factory):
    home = tmp_path_factory.mktemp("kinds-home")
    dataset_store.ingest("sample", home)
    dataset = dataset_store.load(home)
    return home, dataset


def _fit(dataset, **overrides):
    # Kind options given flat, e.g. sparsity_weight=0.0, as a benchmark grid gives them.
    config = session.TrainConfig.from_dict({**QUICK, **overrides})
    return session.fit(dataset.train, config, CPU, dataset.rating_scale)


def test_sparse_activation_near_target_and_below_unpenalised(sample_data):
    _, dataset = sample_data
    rows = oriented(dataset.train, "item")
    penalised = _fit(dataset, kind="sparse", hidden=[])  # default: overcomplete
    free = _fit(dataset, kind="sparse", hidden=[], sparsity_weight=0.0)
    assert penalised.model.hidden[0] > rows.shape[1]  # overcomplete
    target = penalised.model.sparsity_target
    active = diagnostics.mean_activation(penalised.model, rows)
    assert target / 2 <= active <= target * 2
    assert active < diagnostics.mean_activation(free.model, rows) / 3


def test_denoising_degrades_less_than_basic_when_ratings_are_withheld(sample_data):
    _, dataset = sample_data
    inputs, targets = oriented(dataset.train, "item"), oriented(dataset.test, "item")
    degradation = {}
    for kind in ("basic", "denoising"):
        model = _fit(dataset, kind=kind).model
        full = diagnostics.withheld_rmse(model, inputs, targets, withhold=0.0)
        withheld = diagnostics.withheld_rmse(model, inputs, targets, withhold=0.2)
        degradation[kind] = withheld - full
    assert degradation["denoising"] < degradation["basic"]


def test_contractive_has_smaller_jacobian_than_basic(sample_data):
    _, dataset = sample_data
    rows = oriented(dataset.train, "item")
    basic = _fit(dataset, kind="basic").model
    contractive = _fit(dataset, kind="contractive").model
    assert diagnostics.mean_jacobian_norm(contractive, rows) < diagnostics.mean_jacobian_norm(
        basic, rows
    )


@pytest.mark.parametrize("kind", ["stacked", "deep"])
def test_fine_tuning_starts_from_pretrained_weights(sample_data, kind):
    _, dataset = sample_data

    def first_fine_tuning_loss(pretrain_epochs):
        result = _fit(
            dataset, kind=kind, hidden=[64, 32], epochs=1, pretrain_epochs=pretrain_epochs
        )
        phases = [row["phase"] for row in result.history]
        assert phases.count("pretrain") == 2 * pretrain_epochs
        return next(row["train_loss"] for row in result.history if row["phase"] == "train")

    assert first_fine_tuning_loss(10) < first_fine_tuning_loss(0)


def test_jacobian_closed_form_matches_autograd():
    torch.manual_seed(0)
    model = MODEL_KINDS["contractive"](n_inputs=7, hidden=[3], contraction_weight=1.0)
    x = torch.rand(1, 7) * 5
    jacobian = torch.autograd.functional.jacobian(lambda v: model.encode(v), x)[0, :, 0, :]
    closed = model.jacobian_norm2(model.encode(x))
    assert torch.allclose(closed, (jacobian**2).sum(), rtol=1e-5)


def test_denoising_masks_only_observed_ratings():
    model = MODEL_KINDS["denoising"](
        n_inputs=1000, hidden=[4], corruption=0.5, noise="mask", noise_std=0.0
    )
    dense = np.zeros((4, 1000), dtype=np.float32)
    dense[:, ::2] = 4.0
    batch = SparseRows(sp.csr_matrix(dense), CPU).batch(torch.arange(4))
    corrupted = model.corrupt(batch, torch.Generator().manual_seed(1))
    assert (corrupted.col % 2 == 0).all()  # unrated stays unrated
    hidden_share = 1 - len(corrupted.value) / len(batch.value)
    assert 0.4 < hidden_share < 0.6
    assert torch.equal(corrupted.to_dense()[corrupted.to_dense() != 0], corrupted.value)


def test_sparse_and_dense_batches_give_the_same_reconstruction():
    torch.manual_seed(0)
    model = MODEL_KINDS["stacked"](n_inputs=50, hidden=[8, 4])
    dense = np.where(np.random.default_rng(0).random((6, 50)) < 0.2, 3.0, 0.0).astype(np.float32)
    batch = SparseRows(sp.csr_matrix(dense), CPU).batch(torch.arange(6))
    full = model(torch.from_numpy(dense))
    assert torch.allclose(model(batch), full, atol=1e-5)
    hidden = model.penultimate(model.encode(batch))
    assert torch.allclose(model.output_at(hidden, batch.row, batch.col), full[batch.row, batch.col])


# --- every kind through the CLI, both orientations ----------------------------------------


@pytest.mark.parametrize("orientation", ["item", "user"])
@pytest.mark.parametrize("kind", list(MODEL_KINDS))
def test_every_kind_trains_evaluates_and_recommends(sample_data, kind, orientation):
    home, _ = sample_data
    runner = CliRunner()
    run = f"{kind}-{orientation}"
    args = [
        "--home",
        str(home),
        "train",
        "--kind",
        kind,
        "--orientation",
        orientation,
        "--epochs",
        "2",
        "--run",
        run,
    ]
    if kind in ("stacked", "deep"):
        args += ["--hidden", "32,16", "--pretrain-epochs", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    config = json.loads((home / "runs" / run / "config.json").read_text())
    assert config["kind"] == kind and config["model"]["kind"] == kind
    for option in kinds.KINDS[kind].options:
        assert option.name in config["train"]["options"]
        assert (option.name in config["model"]) == option.model
    with open(home / "runs" / run / "history.csv", newline="") as handle:
        history = list(csv.DictReader(handle))
    pretrain_rows = [row for row in history if row["phase"] == "pretrain"]
    if kind in ("stacked", "deep"):
        assert {row["layer"] for row in pretrain_rows} == {"1", "2"}
    else:
        assert not pretrain_rows
    evaluated = runner.invoke(
        app, ["--home", str(home), "evaluate", "--run", run, "--format", "json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["kind"] == kind
    recommended = runner.invoke(
        app, ["--home", str(home), "recommend", "--run", run, "--user", "7", "--format", "json"]
    )
    assert recommended.exit_code == 0, recommended.output
    assert len(json.loads(recommended.stdout)["items"]) == 10


@pytest.mark.parametrize(
    "args, message",
    [
        (["--kind", "basic", "--hidden", "500"], "undercomplete"),
        (["--kind", "stacked", "--hidden", "20"], "two or more"),
        (["--kind", "denoising", "--corruption", "1.5"], "--corruption"),
        (["--kind", "denoising", "--noise", "salt"], "--noise"),
        (["--kind", "sparse", "--sparsity-target", "0"], "--sparsity-target"),
        (["--kind", "deep", "--cd-steps", "0"], "--cd-steps"),
        (["--kind", "contractive", "--contraction-weight", "-1"], "--contraction-weight"),
    ],
)
def test_kind_options_out_of_range(sample_data, args, message):
    home, _ = sample_data
    result = CliRunner().invoke(app, ["--home", str(home), "train", "--epochs", "1", *args])
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output


def test_the_sampled_output_layer_has_the_dense_layers_gradients():
    """ObservedOutput (the CPU's path for sparse batches) against autograd of the dense
    product, values and gradients, with repeated columns and unsorted columns in a row."""
    torch.manual_seed(0)
    hidden = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    layer = torch.nn.Linear(3, 6).double()
    row, col = torch.tensor([0, 0, 1, 3, 3, 3]), torch.tensor([5, 1, 2, 4, 0, 4])
    upstream = torch.randn(6, dtype=torch.float64)
    sampled = ObservedOutput.apply(hidden, layer.weight, layer.bias, row, col)
    grads = torch.autograd.grad((sampled * upstream).sum(), [hidden, layer.weight, layer.bias])
    dense = layer(hidden)[row, col]
    expected = torch.autograd.grad((dense * upstream).sum(), [hidden, layer.weight, layer.bias])
    assert torch.allclose(sampled, dense)
    for got, want in zip(grads, expected):
        assert torch.allclose(got, want)


def test_the_output_layer_refuses_entries_out_of_row_order():
    """The sampled product groups entries by row in order; unsorted ones would land on the
    wrong rows, so they are refused rather than mis-scored."""
    model = MODEL_KINDS["basic"](n_inputs=200, hidden=[4])
    hidden = torch.rand(3, 4)
    with pytest.raises(ValueError, match="sorted by row"):
        model.output_at(hidden, torch.tensor([2, 0]), torch.tensor([1, 5]))
