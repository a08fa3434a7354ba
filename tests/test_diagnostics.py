"""Tests for the latent diagnostics on models whose answer is known."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import Tensor, nn
from torch.distributions import Normal, kl_divergence
from torch.utils.data import DataLoader, TensorDataset

from torchvae.diagnostics import (
    ActiveUnits,
    LatentReport,
    PosteriorCollapseWarning,
    active_units,
    kl_per_dimension,
    latent_report,
    mutual_information,
    warn_if_collapsed,
)
from torchvae.gaussian import GaussianParams, gaussian_kl
from torchvae.models.conditional import ConditionalVAE
from torchvae.models.decoders import Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.vae import VAE


class IgnoringEncoder(nn.Module):
    """q(z|x) = N(0, I) whatever x is: the fully collapsed posterior."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> GaussianParams:
        zeros = torch.zeros(x.shape[0], self.latent_dim) + 0 * self.unused
        return GaussianParams(zeros, zeros.clone())


class CopyEncoder(nn.Module):
    """q(z|x) = N(x, exp(log_var) I): z copies x."""

    def __init__(self, dim: int, log_var: float) -> None:
        super().__init__()
        self.latent_dim = dim
        self.log_var = nn.Parameter(torch.tensor(log_var))

    def forward(self, x: Tensor) -> GaussianParams:
        mean = x.flatten(1)
        return GaussianParams(mean, self.log_var.expand_as(mean))


def ignoring_model(latent: int = 4, features: int = 6) -> VAE:
    return VAE(IgnoringEncoder(latent), Decoder(latent, 8, features))


def copying_model(features: int = 6, log_var: float = math.log(1e-4)) -> VAE:
    return VAE(CopyEncoder(features, log_var), Decoder(features, 8, features))


def test_encoder_ignoring_x_has_no_active_units_and_no_information() -> None:
    data = torch.rand(300, 6)
    model = ignoring_model()
    au = active_units(model, data)
    assert isinstance(au, ActiveUnits)
    assert au.n_active == 0 and torch.equal(au.variances, torch.zeros(4, dtype=torch.float64))
    assert not au.active.any()
    assert abs(mutual_information(model, data)) < 1e-6
    torch.testing.assert_close(kl_per_dimension(model, data), torch.zeros(4, dtype=torch.float64))
    report = latent_report(model, data)
    assert report.collapsed == (0, 1, 2, 3) and report.collapsed_fraction == 1.0
    assert abs(report.marginal_kl) < 1e-6


def test_encoder_copying_x_has_every_unit_active_and_mi_near_log_n() -> None:
    n = 300
    data = torch.rand(n, 6)  # variance 1/12 per feature, well above 0.01
    model = copying_model()
    au = active_units(model, data)
    assert au.n_active == 6 and au.active.all()
    torch.testing.assert_close(au.variances, data.double().var(0))
    mi = mutual_information(model, data, generator=torch.Generator().manual_seed(0))
    # Posteriors of width 0.01 around points spread over [0, 1]^6 do not overlap:
    # I is at its cap log N.
    assert 0.99 * math.log(n) < mi <= math.log(n) + 1e-9
    assert latent_report(model, data).collapsed == ()


def test_mutual_information_of_linear_gaussian_matches_closed_form() -> None:
    # x ~ N(0, I_3), q(z|x) = N(x, I): q(z) = N(0, 2 I), I(x; z) = 3/2 log 2 and
    # KL(q(z) || p(z)) = 3/2 (2 - 1 - log 2).
    torch.manual_seed(0)
    data = torch.randn(3000, 3)
    model = copying_model(features=3, log_var=0.0)
    report = latent_report(
        model, data, n_samples=4, max_examples=3000, generator=torch.Generator().manual_seed(1)
    )
    assert report.mutual_information == pytest.approx(1.5 * math.log(2), abs=0.06)
    assert report.marginal_kl == pytest.approx(1.5 * (1 - math.log(2)), abs=0.06)
    # Hoffman & Johnson: E_x KL(q(z|x) || p) = I + KL(q(z) || p), exactly by construction.
    assert report.kl == pytest.approx(report.mutual_information + report.marginal_kl, abs=1e-9)


def test_mutual_information_is_capped_by_max_examples() -> None:
    data = torch.rand(200, 6)
    mi = mutual_information(copying_model(), data, max_examples=20)
    assert mi <= math.log(20) + 1e-9 and mi > 0.99 * math.log(20)


def test_kl_per_dimension_matches_closed_form_by_hand() -> None:
    torch.manual_seed(0)
    model = VAE(Encoder(6, 8, 3), Decoder(3, 8, 6))
    data = torch.rand(53, 6)
    with torch.no_grad():
        q = model.encode(data)
    by_hand = gaussian_kl(q.mean, q.log_var).mean(0).double()
    reference = kl_divergence(Normal(q.mean, q.std), Normal(0.0, 1.0)).mean(0).double()
    result = kl_per_dimension(model, data, batch_size=7)
    assert result.shape == (3,) and result.dtype == torch.float64
    torch.testing.assert_close(result, by_hand)
    torch.testing.assert_close(result, reference, rtol=1e-5, atol=1e-6)
    au = active_units(model, data, batch_size=7)
    torch.testing.assert_close(au.variances, q.mean.double().var(0))


def test_every_data_form_gives_the_same_answer() -> None:
    torch.manual_seed(0)
    model = VAE(Encoder(6, 8, 3), Decoder(3, 8, 6))
    x, y = torch.rand(40, 6), torch.randint(0, 3, (40,))
    expected = kl_per_dimension(model, x)
    forms: list[object] = [
        list(torch.split(x, 9)),
        [(xb, yb) for xb, yb in zip(torch.split(x, 9), torch.split(y, 9), strict=True)],
        [[xb] for xb in torch.split(x, 9)],
        TensorDataset(x, y),
        TensorDataset(x),
        DataLoader(TensorDataset(x, y), batch_size=16),
        (xb for xb in torch.split(x, 5)),
        x.reshape(40, 1, 2, 3),
    ]
    for form in forms:
        torch.testing.assert_close(kl_per_dimension(model, form, batch_size=11), expected)  # type: ignore[arg-type]


def test_conditional_models_take_labels() -> None:
    torch.manual_seed(0)
    model = ConditionalVAE.mlp(6, 8, 3, num_classes=3)
    x, y = torch.rand(40, 6), torch.randint(0, 3, (40,))
    report = latent_report(model, x, y, generator=torch.Generator().manual_seed(0))
    same = latent_report(
        model,
        DataLoader(TensorDataset(x, y), batch_size=7),
        generator=torch.Generator().manual_seed(0),
    )
    torch.testing.assert_close(report.kl_per_dim, same.kl_per_dim)
    assert report.mutual_information == pytest.approx(same.mutual_information, abs=1e-5)
    with torch.no_grad():
        q = model.encode(x, y)
    torch.testing.assert_close(report.kl_per_dim, gaussian_kl(q.mean, q.log_var).mean(0).double())
    with pytest.raises(ValueError, match="conditional"):
        kl_per_dimension(model, x)
    with pytest.raises(ValueError, match="conditional"):
        kl_per_dimension(model, [x])


def test_modes_are_restored_and_nothing_tracks_gradients() -> None:
    encoder = Encoder(6, 8, 3)
    encoder.hidden.append(nn.Dropout(0.5))
    model = VAE(encoder, Decoder(3, 8, 6))
    model.train()
    model.decoder.eval()
    modes = {name: m.training for name, m in model.named_modules()}
    x = torch.rand(20, 6)
    report = latent_report(model, x)
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert not report.kl_per_dim.requires_grad and not report.au_variances.requires_grad
    # Dropout is off while measuring, so two measurements agree.
    torch.testing.assert_close(kl_per_dimension(model, x), kl_per_dimension(model, x))
    assert model.training and model.encoder.training and not model.decoder.training


def _report(latent: int, active: int, mi: float) -> LatentReport:
    collapsed = tuple(range(active, latent))
    au = torch.tensor([1.0] * active + [0.0] * (latent - active))
    return LatentReport(torch.zeros(latent), 0.0, active, au, mi, 0.0, collapsed, 1000)


def test_collapse_warning() -> None:
    data = torch.rand(50, 6)
    collapsed = latent_report(ignoring_model(), data)
    with pytest.warns(PosteriorCollapseWarning, match="no latent dimension is active"):
        assert warn_if_collapsed(collapsed) is True
    assert issubclass(PosteriorCollapseWarning, UserWarning)
    healthy = latent_report(copying_model(), data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_collapsed(healthy) is False
    with pytest.raises(ValueError, match="fraction"):
        warn_if_collapsed(healthy, fraction=1.0)
    with pytest.raises(ValueError, match="min_information"):
        warn_if_collapsed(healthy, min_information=-1.0)
    with pytest.raises(TypeError, match="LatentReport"):
        warn_if_collapsed({"collapsed": ()})  # type: ignore[arg-type]


def test_a_latent_used_in_part_is_not_collapse() -> None:
    textbook = _report(200, 61, 5.2)  # the textbook's 784-400-200 VAE on MNIST: ~60 active
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_collapsed(textbook) is False
        assert warn_if_collapsed(_report(4, 2, 1.0)) is False
    with pytest.warns(PosteriorCollapseWarning, match=r"139 of 200 .*fraction=0\.5"):
        assert warn_if_collapsed(textbook, fraction=0.5) is True  # the stricter rule, asked for


def test_a_code_without_information_is_collapse_even_with_active_units() -> None:
    with pytest.warns(PosteriorCollapseWarning, match=r"I\(x;z\) ~ 0\.01 nats.*3 of 8"):
        assert warn_if_collapsed(_report(8, 3, 0.01)) is True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_collapsed(_report(8, 3, 0.01), min_information=0.001) is False


def test_report_scalars_and_text() -> None:
    report = latent_report(copying_model(), torch.rand(30, 6))
    assert report.latent_dim == 6 and report.n_examples == 30
    scalars = report.scalars()
    assert set(scalars) == {
        "kl",
        "active_units",
        "mutual_information",
        "marginal_kl",
        "collapsed_fraction",
    }
    assert scalars["active_units"] == 6.0 and all(isinstance(v, float) for v in scalars.values())
    assert "active units 6/6" in str(report)


def test_bad_arguments() -> None:
    model = copying_model()
    data = torch.rand(10, 6)
    with pytest.raises(ValueError, match="no examples"):
        kl_per_dimension(model, [])
    with pytest.raises(ValueError, match="at least 2 examples"):
        active_units(model, data[:1])
    with pytest.raises(ValueError, match="threshold"):
        active_units(model, data, threshold=-1.0)
    with pytest.raises(ValueError, match="only for tensor data"):
        kl_per_dimension(model, [data], y=torch.zeros(10, dtype=torch.long))
    with pytest.raises(ValueError, match=r"one label per example.*\(10,\)"):
        kl_per_dimension(model, data, y=torch.zeros(9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"shape \(N, \.\.\.\)"):
        kl_per_dimension(model, torch.rand(6))
    with pytest.raises(TypeError, match="batch 0 is str"):
        kl_per_dimension(model, ["x"])
    with pytest.raises(TypeError, match="iterable of batches"):
        kl_per_dimension(model, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="encode method"):
        kl_per_dimension(nn.Linear(6, 2), data)
    with pytest.raises(ValueError, match="n_samples"):
        mutual_information(model, data, n_samples=0)
    with pytest.raises(TypeError, match="batch_size"):
        kl_per_dimension(model, data, batch_size=2.5)  # type: ignore[arg-type]
