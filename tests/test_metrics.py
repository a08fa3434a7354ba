"""Disentanglement metrics: known answers, determinism, the solvers' optimality, bad input."""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor, nn

from torchvae import VAE, Decoder, Encoder, Sprites, TensorFactorDataset
from torchvae.metrics import (
    beta_vae_score,
    dci,
    dci_from_importance,
    discrete_mutual_information,
    discretize,
    factor_vae_score,
    mig,
    model_representation,
    sap_score,
)
from torchvae.metrics._sap import svm_accuracy
from torchvae.metrics._solvers import lasso, linear_svm_1d, logistic_regression

SIZES = (3, 4, 5, 6)
K = len(SIZES)
GRID = torch.cartesian_prod(*(torch.arange(s) for s in SIZES))
# Each "image" is its own factor tuple (as bytes), so that a representation can read them.
TOY = TensorFactorDataset(GRID.to(torch.uint8), GRID, ("a", "b", "c", "d"))
SMALL = {"n_train": 1500, "n_eval": 600}


def factors_of(x: Tensor) -> Tensor:
    return x * 255


def permuted_scaled(x: Tensor) -> Tensor:
    return factors_of(x)[:, [2, 0, 3, 1]] * torch.tensor([0.5, 3.0, 1.0, 20.0]) + 7


def copies(x: Tensor) -> Tensor:
    return factors_of(x)[:, 1:2].repeat(1, K)


def make_noise() -> Callable[[Tensor], Tensor]:
    gen = torch.Generator().manual_seed(123)
    return lambda x: torch.randn(x.shape[0], K, generator=gen)


def all_scores(rep: Callable[[Tensor], Tensor], seed: int = 0) -> dict[str, float]:
    d = dci(rep, TOY, seed=seed, n_train=3000, n_test=1000)
    return {
        "beta_vae": beta_vae_score(rep, TOY, seed=seed, batch_size=32, **SMALL).eval_accuracy,
        "factor_vae": factor_vae_score(
            rep, TOY, seed=seed, batch_size=32, n_variance=2000, **SMALL
        ).eval_accuracy,
        "mig": mig(rep, TOY, seed=seed, n_train=3000).score,
        "sap": sap_score(rep, TOY, seed=seed, n_train=2000, n_test=1000).score,
        "sap_continuous": sap_score(
            rep, TOY, seed=seed, n_train=3000, continuous_factors=True
        ).score,
        "dci_d": d.disentanglement,
        "dci_c": d.completeness,
        "dci_i": d.informativeness_test,
    }


@pytest.mark.parametrize("rep", [factors_of, permuted_scaled], ids=["factors", "permuted"])
def test_codes_that_are_the_factors_score_at_the_top(rep: Callable[[Tensor], Tensor]) -> None:
    s = all_scores(rep)
    assert s["beta_vae"] > 0.99 and s["factor_vae"] > 0.99
    assert s["mig"] > 0.97 and s["sap_continuous"] > 0.99
    assert s["dci_d"] > 0.99 and s["dci_c"] > 0.99 and s["dci_i"] > 0.99
    # Discrete SAP: a linear classifier on one code cannot pick out a middle class, so
    # even perfect codes stay well below 1 here; they still beat every other code.
    assert s["sap"] > 0.15


def test_noise_scores_at_the_bottom() -> None:
    s = all_scores(make_noise())
    assert s["beta_vae"] < 1 / K + 0.08 and s["factor_vae"] < 1 / K + 0.12
    assert s["mig"] < 0.03 and s["sap"] < 0.03 and s["sap_continuous"] < 0.01
    assert s["dci_d"] < 0.1 and s["dci_c"] < 0.1 and s["dci_i"] < 0.01


def test_one_factor_copied_into_all_codes_scores_at_the_bottom() -> None:
    s = all_scores(copies)
    # Its pairs' differences say only whether factor b was the fixed one: 2/K.
    assert s["beta_vae"] < 2 / K + 0.05
    assert s["factor_vae"] < 1 / K + 0.1
    assert s["mig"] < 0.01 and s["sap"] < 0.01 and s["sap_continuous"] < 0.01
    # D is 1 by definition (each code is about factor b alone); C and I see the copies.
    assert s["dci_c"] < 0.01 and s["dci_i"] < 1 / K + 0.01
    assert s["dci_d"] > 0.99


def test_sap_discrete_on_binary_factors_reaches_its_ceiling() -> None:
    grid = torch.cartesian_prod(*(torch.arange(2) for _ in range(4)))
    binary = TensorFactorDataset(grid.to(torch.uint8), grid)
    good = sap_score(factors_of, binary, n_train=2000, n_test=1000)
    assert torch.allclose(good.matrix.diagonal(), torch.ones(4, dtype=torch.float64))
    assert good.score == pytest.approx(0.5, abs=0.05)  # the second code is at chance
    assert sap_score(make_noise(), binary, n_train=2000, n_test=1000).score < 0.05


def test_mixed_codes_score_in_between() -> None:
    mix = torch.eye(K) + 0.6 * torch.roll(torch.eye(K), 1, dims=1)

    def mixed(x: Tensor) -> Tensor:
        return factors_of(x) @ mix

    s = all_scores(mixed)
    top = all_scores(factors_of)
    for key in ("mig", "sap_continuous", "dci_d", "dci_c"):
        assert 0.05 < s[key] < top[key] - 0.1, key


def test_deterministic_given_a_seed_and_independent_of_eval_batches() -> None:
    def mixed(x: Tensor) -> Tensor:
        return factors_of(x) @ (torch.eye(K) + 0.3)

    runs = [
        mig(mixed, TOY, seed=5, n_train=1000, eval_batch_size=b).mutual_information
        for b in (7, 1000)
    ]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], mig(mixed, TOY, seed=6, n_train=1000).mutual_information)
    gen_a, gen_b = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    for fn in (beta_vae_score, factor_vae_score):
        kwargs: dict[str, Any] = {"n_train": 200, "n_eval": 100, "batch_size": 16}
        a = fn(mixed, TOY, seed=gen_a, eval_batch_size=50, **kwargs)
        b = fn(mixed, TOY, seed=gen_b, eval_batch_size=999, **kwargs)
        assert a == b
    for fn2 in (sap_score, dci):
        a2 = fn2(mixed, TOY, seed=3, n_train=500, n_test=200)
        b2 = fn2(mixed, TOY, seed=3, n_train=500, n_test=200, eval_batch_size=33)
        assert a2[0] == b2[0] and torch.equal(a2[-1], b2[-1])


# ----------------------------------------------------------------------------- estimators


@given(st.integers(20, 200), st.integers(1, 4), st.integers(2, 6), st.integers(0, 10_000))
def test_mutual_information_matches_a_direct_count(n: int, p: int, size: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 3, (n, p), generator=gen)
    b = torch.randint(0, size, (n, 2), generator=gen)
    b[:, 1] = a[:, 0] % size
    got = discrete_mutual_information(a, b, 3, size)
    for i in range(p):
        for k in range(2):
            joint = np.zeros((3, size))
            np.add.at(joint, (a[:, i].numpy(), b[:, k].numpy()), 1)
            pj = joint / n
            outer = pj.sum(1, keepdims=True) * pj.sum(0, keepdims=True)
            ref = float(np.sum(pj[pj > 0] * np.log(pj[pj > 0] / outer[pj > 0])))
            assert float(got[i, k]) == pytest.approx(max(ref, 0.0), abs=1e-12)


@given(st.integers(2, 300), st.integers(1, 30), st.integers(0, 10_000))
def test_discretize_matches_numpy_histogram_bins(n: int, bins: int, seed: int) -> None:
    codes = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    codes[:, 2] = 1.5  # a constant code
    got = discretize(codes, bins)
    for j in range(2):
        x = codes[:, j].numpy()
        ref = np.digitize(x, np.histogram(x, bins)[1][:-1]) - 1
        assert (got[:, j].numpy() == ref).mean() > 0.99  # edges may differ by rounding
    assert (got[:, 2] == got[0, 2]).all()
    assert got.min() >= 0 and got.max() < bins


def test_logistic_regression_reaches_the_optimum() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, 4, generator=gen, dtype=torch.float64)
    y = (x[:, 0] + 0.5 * torch.randn(300, generator=gen, dtype=torch.float64) > 0).long()
    y = y + (x[:, 1] > 1).long()
    W, b = logistic_regression(x, y, 3)
    W.requires_grad_(True)
    b.requires_grad_(True)
    loss = nn.functional.cross_entropy(x @ W + b, y, reduction="sum") + 0.5 * (W * W).sum()
    gW, gb = torch.autograd.grad(loss, (W, b))
    assert gW.abs().max() < 1e-4 and gb.abs().max() < 1e-4


@pytest.mark.parametrize("scale", [3.0, -0.01, 0.0])
def test_linear_svm_reaches_the_optimum(scale: float) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(400, generator=gen, dtype=torch.float64) * scale
    x[:50] = x[50]  # ties
    y = torch.randint(0, 3, (400,), generator=gen)
    own = y.unsqueeze(0) == torch.arange(3).unsqueeze(1)
    s = own.double() * 2 - 1
    cost = torch.where(own, 0.02, 0.01).double()
    w, b = linear_svm_1d(x, s, cost)
    assert w.shape == (3,)
    w.requires_grad_(True)
    b.requires_grad_(True)
    hinge = (1 - s * (w.unsqueeze(-1) * x + b.unsqueeze(-1))).clamp(min=0)
    f = (0.5 * (w * w + b * b) + (cost * hinge**2).sum(-1)).sum()
    gw, gb = torch.autograd.grad(f, (w, b))
    assert gw.abs().max() < 1e-8 and gb.abs().max() < 1e-8


def test_svm_accuracy_separates_thresholds() -> None:
    x = torch.linspace(-1, 1, 200, dtype=torch.float64).unsqueeze(1) * 5
    y = (x[:, 0] > 0.3).long()
    acc = svm_accuracy(x, y, x, y)
    assert float(acc[0]) > 0.97


def test_lasso_meets_its_optimality_conditions() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(500, 6, generator=gen, dtype=torch.float64)
    x[:, 5] = x[:, 4]  # a duplicated column
    y = x[:, :2] @ torch.tensor([[1.0, 0.0], [0.5, -2.0]], dtype=torch.float64)
    y = y + x[:, 4:5] * 0.8 + 0.1 * torch.randn(500, 2, generator=gen, dtype=torch.float64)
    x, y = x - x.mean(0), y - y.mean(0)
    W = lasso(x, y, alpha=0.05)
    grad = x.T @ (y - x @ W) / 500
    zero = W == 0
    assert (grad[zero].abs() <= 0.05 + 1e-6).all()
    assert torch.allclose(grad[~zero], 0.05 * W[~zero].sign(), atol=1e-6)
    assert torch.allclose(W[4], W[5]), "identical columns share the weight"


def test_dci_from_importance_extremes() -> None:
    assert dci_from_importance(torch.eye(3, dtype=torch.float64)) == pytest.approx((1.0, 1.0))
    assert dci_from_importance(torch.ones(3, 3, dtype=torch.float64)) == pytest.approx(
        (0.0, 0.0), abs=1e-9
    )
    assert dci_from_importance(torch.zeros(3, 2, dtype=torch.float64)) == pytest.approx(
        (0.0, 0.0), abs=1e-9
    )
    one_factor_many_codes = torch.tensor([[1.0, 0], [1.0, 0], [1.0, 0]], dtype=torch.float64)
    d, c = dci_from_importance(one_factor_many_codes)
    assert d == pytest.approx(1.0) and c == pytest.approx(0.0, abs=1e-9)


# ----------------------------------------------------------------------------- models


class _Posterior(NamedTuple):
    mean: Tensor
    scale: Tensor


class _Encoder(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.lin = nn.Linear(K, 3)
        self.kind = kind

    def encode(self, x: Tensor) -> Any:
        m = self.lin(x)
        if self.kind == "tuple":
            return m, m.exp()
        if self.kind == "namedtuple":
            return _Posterior(m, m.exp())
        if self.kind == "distribution":
            return torch.distributions.Normal(m, 1.0)
        return m


@pytest.mark.parametrize("kind", ["tuple", "namedtuple", "distribution", "tensor"])
def test_model_representation_takes_the_posterior_mean(kind: str) -> None:
    model = _Encoder(kind).double()
    model.train()
    rep = model_representation(model)
    x = torch.rand(5, K)
    codes = rep(x)
    assert codes.shape == (5, 3) and codes.dtype == torch.float64 and not codes.requires_grad
    assert torch.allclose(codes, model.lin(x.double()))
    assert model.training, "the model's mode is restored"


def test_model_representation_prefers_posterior_mean_and_rejects_others() -> None:
    class WithMean(_Encoder):
        def posterior_mean(self, x: Tensor) -> Tensor:
            return torch.zeros(x.shape[0], 2)

    assert model_representation(WithMean("tuple"))(torch.rand(4, K)).shape == (4, 2)
    with pytest.raises(TypeError, match="neither posterior_mean"):
        model_representation(nn.Linear(2, 2))

    class Odd(_Encoder):
        def encode(self, x: Tensor) -> Any:
            return "what"

    with pytest.raises(TypeError, match="returned str"):
        model_representation(Odd("tensor"))(torch.rand(2, K))


def test_a_torchvae_model_on_sprites() -> None:
    torch.manual_seed(0)
    model = VAE(Encoder(4096, 16, 4), Decoder(4, 16, 4096))
    rep = model_representation(model)
    sprites = Sprites()
    score = mig(rep, sprites, n_train=300)
    assert 0 <= score.score <= 1 and score.mutual_information.shape == (4, 5)
    fv = factor_vae_score(rep, sprites, n_train=20, n_eval=10, n_variance=100, batch_size=8)
    assert 0 <= fv.eval_accuracy <= 1 and fv.num_active_dims <= 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_on_a_gpu_the_values_match_the_cpu() -> None:
    def mixed(x: Tensor) -> Tensor:
        return factors_of(x) @ (torch.eye(K, device=x.device) + 0.3)

    for fn in (mig, sap_score, dci):
        cpu = fn(mixed, TOY, n_train=1000)
        gpu = fn(mixed, TOY, n_train=1000, device="cuda")
        assert gpu[0] == pytest.approx(cpu[0], abs=1e-6)
    cpu_b = factor_vae_score(mixed, TOY, n_train=300, n_eval=100, n_variance=500)
    gpu_b = factor_vae_score(mixed, TOY, n_train=300, n_eval=100, n_variance=500, device="cuda")
    assert cpu_b == gpu_b


# ----------------------------------------------------------------------------- bad input


def test_bad_input_is_named() -> None:
    with pytest.raises(TypeError, match="representation must be a callable"):
        mig("model", TOY)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="FactorDataset"):
        mig(factors_of, torch.zeros(3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"shape \(n, d\)"):
        mig(lambda x: factors_of(x)[:1], TOY, n_train=10)
    with pytest.raises(ValueError, match=r"shape \(n, d\)"):
        mig(lambda x: factors_of(x).flatten(), TOY, n_train=10)
    with pytest.raises(TypeError, match="floating-point"):
        mig(lambda x: factors_of(x).long(), TOY, n_train=10)
    with pytest.raises(ValueError, match="NaN or inf"):
        mig(lambda x: factors_of(x) / 0, TOY, n_train=10)
    with pytest.raises(ValueError, match="at least 2 codes"):
        mig(lambda x: factors_of(x)[:, :1], TOY, n_train=10)
    with pytest.raises(ValueError, match="n_train"):
        mig(factors_of, TOY, n_train=0)
    with pytest.raises(TypeError, match="seed"):
        beta_vae_score(factors_of, TOY, seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size and n_variance"):
        factor_vae_score(factors_of, TOY, batch_size=1)
    with pytest.raises(ValueError, match="estimator"):
        dci(factors_of, TOY, estimator="forest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="C must be > 0"):
        sap_score(factors_of, TOY, C=0.0)
    with pytest.raises(ValueError, match="single value"):
        grid = torch.cartesian_prod(torch.arange(2), torch.arange(2))
        tiny = TensorFactorDataset(grid.to(torch.uint8), grid)
        mig(factors_of, tiny, n_train=1)


def test_gbt_without_scikit_learn_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_sklearn(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ImportError, match=r"torchvae\[metrics\]"):
        dci(factors_of, TOY, estimator="gbt", n_train=50, n_test=20)


def test_gbt_estimator_when_scikit_learn_is_there() -> None:
    pytest.importorskip("sklearn", reason="scikit-learn is not installed (torchvae[metrics])")
    d = dci(factors_of, TOY, estimator="gbt", n_train=400, n_test=200)
    assert d.disentanglement > 0.9 and d.completeness > 0.9 and d.informativeness_test > 0.9
    assert math.isclose(float(d.importance.sum()), K, rel_tol=1e-6)


def test_svm_accuracy_matches_scikit_learn_linear_svc() -> None:
    svm = pytest.importorskip("sklearn.svm", reason="scikit-learn is not installed")
    gen = torch.Generator().manual_seed(0)
    for classes in (2, 3, 7):
        y = torch.randint(0, classes, (600,), generator=gen)
        yt = torch.randint(0, classes, (300,), generator=gen)
        x = (y.double() + 0.4 * torch.randn(600, generator=gen, dtype=torch.float64)).unsqueeze(1)
        xt = (yt.double() + 0.4 * torch.randn(300, generator=gen, dtype=torch.float64)).unsqueeze(1)
        ours = float(svm_accuracy(x, y, xt, yt)[0])
        model = svm.LinearSVC(C=0.01, class_weight="balanced", tol=1e-8, max_iter=100_000)
        ref = (model.fit(x.numpy(), y.numpy()).predict(xt.numpy()) == yt.numpy()).mean()
        assert ours == pytest.approx(float(ref), abs=1 / 300 + 1e-9)


def test_logistic_regression_matches_scikit_learn() -> None:
    linear_model = pytest.importorskip("sklearn.linear_model", reason="no scikit-learn")
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(400, 3, generator=gen, dtype=torch.float64)
    y = (x @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) > 0).long() + (x[:, 0] > 1)
    W, b = logistic_regression(x, y, 3)
    ref = linear_model.LogisticRegression(tol=1e-10, max_iter=10_000).fit(x.numpy(), y.numpy())
    ours = torch.softmax(x @ W + b, dim=1)
    theirs = torch.as_tensor(ref.predict_proba(x.numpy()))
    assert torch.allclose(ours, theirs, atol=1e-5)
