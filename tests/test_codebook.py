"""The VQ codebook: nearest codes, straight-through gradients, the two losses' gradients,
EMA updates by their formula, dead-code restarts."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from torchvae.models.codebook import Codebook


def test_indices_are_the_nearest_codes() -> None:
    book = Codebook(16, 3)
    z = torch.randn(5, 3, 4, 2)
    q = book(z)
    flat = z.movedim(1, -1).reshape(-1, 3)
    brute = torch.cdist(flat, book.embedding.detach()).argmin(1).reshape(5, 4, 2)
    assert torch.equal(q.indices, brute)
    assert torch.equal(q.codes, book.embedding.detach()[q.indices].movedim(-1, 1))
    assert torch.allclose(q.z_q, q.codes, atol=1e-6)


@given(st.integers(1, 4), st.integers(1, 6), st.booleans())
def test_straight_through_gradient_is_the_identity_on_the_encoder_output(
    batch: int, dim: int, ema: bool
) -> None:
    book = Codebook(8, dim, ema=ema)
    z_e = torch.randn(batch, dim, 3, 3, requires_grad=True)
    upstream = torch.randn(batch, dim, 3, 3)
    (book(z_e).z_q * upstream).sum().backward()
    assert z_e.grad is not None
    assert torch.equal(z_e.grad, upstream)  # exactly: d z_q / d z_e = I


def test_codebook_loss_moves_only_the_codes_and_commitment_only_the_encoder() -> None:
    book = Codebook(8, 4)
    z_e = torch.randn(3, 4, 2, 2, requires_grad=True)
    q = book(z_e)
    q.codebook_loss.sum().backward(retain_graph=True)
    assert z_e.grad is None or not z_e.grad.any()
    grad = book.embedding.grad
    assert grad is not None
    # d/de_k sum ||sg(z) - e_k||^2 = 2 sum_{i: k(i)=k} (e_k - z_i); unused codes get 0
    flat, idx = z_e.detach().movedim(1, -1).reshape(-1, 4), q.indices.reshape(-1)
    want = torch.zeros(8, 4).index_add_(0, idx, 2 * (book.embedding.detach()[idx] - flat))
    assert torch.allclose(grad, want, atol=1e-6)
    book.embedding.grad = None
    q.commitment.sum().backward()
    assert book.embedding.grad is None
    assert z_e.grad is not None
    assert torch.allclose(z_e.grad, 2 * (z_e.detach() - q.codes.detach()), atol=1e-6)


def test_losses_are_the_squared_distances_summed_per_example() -> None:
    book = Codebook(8, 2)
    z_e = torch.randn(3, 2, 5)
    q = book(z_e)
    distance = (z_e - q.codes.detach()).square().flatten(1).sum(1)
    assert torch.allclose(q.commitment, distance)
    assert torch.allclose(q.codebook_loss, distance)
    assert torch.equal(Codebook(8, 2, ema=True)(z_e).codebook_loss, torch.zeros(3))


def test_ema_update_follows_its_formula() -> None:
    decay, eps, k, d = 0.9, 1e-3, 4, 2
    book = Codebook(k, d, ema=True, decay=decay, epsilon=eps)
    with torch.no_grad():
        book.embedding.copy_(torch.tensor([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0], [9.0, -9.0]]))
        book.ema_sum.copy_(book.embedding * 2)
        book.ema_count.copy_(torch.tensor([2.0, 1.0, 3.0, 0.5]))
    count0, sum0 = book.ema_count.clone(), book.ema_sum.clone()
    z = torch.tensor([[0.1, -0.2], [0.3, 0.1], [4.0, 6.0], [-4.5, 5.5], [-6.0, 4.0]])
    idx = book(z.T.unsqueeze(0)).indices.reshape(-1)
    assert idx.tolist() == [0, 0, 1, 2, 2]
    n = torch.tensor([2.0, 1.0, 2.0, 0.0])
    s = torch.stack([z[idx == j].sum(0) if (idx == j).any() else torch.zeros(d) for j in range(k)])
    count = decay * count0 + (1 - decay) * n
    total = decay * sum0 + (1 - decay) * s
    smoothed = (count + eps) / (count.sum() + k * eps) * count.sum()
    assert torch.allclose(book.ema_count, count)
    assert torch.allclose(book.ema_sum, total)
    assert torch.allclose(book.embedding, total / smoothed.unsqueeze(1))
    assert book.unused_steps.tolist() == [0, 0, 0, 1]


def test_eval_mode_changes_nothing() -> None:
    book = Codebook(8, 3, ema=True, restart_after=1)
    book(torch.randn(4, 3))
    before = {k: v.clone() for k, v in book.state_dict().items()}
    book.eval()
    for _ in range(3):
        book(torch.randn(4, 3))
    assert all(torch.equal(before[k], v) for k, v in book.state_dict().items())


def _restarting_run(seed: int, ema: bool) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    book = Codebook(6, 2, ema=ema, restart_after=2)
    with torch.no_grad():
        book.embedding.copy_(torch.arange(12.0).reshape(6, 2) * 10)
    data = torch.randn(3, 40, 2) * 0.1  # every vector nearest code 0
    for batch in data:
        book(batch)
    return book.embedding.detach().clone(), data


@pytest.mark.parametrize("ema", [False, True], ids=["gradient", "ema"])
def test_dead_codes_restart_on_batch_vectors_deterministically(ema: bool) -> None:
    codes, data = _restarting_run(0, ema)
    last = data[-1]
    # codes 1..5 were unused for 2 steps and restarted at the start of step 3
    if ema:  # ... and then moved by that step's moving averages, which stay in the data
        assert codes[1:].abs().max() < 1, "the dead codes (at 20..110) were not restarted"
    else:
        for row in codes[1:]:
            assert (last == row).all(1).any(), "a restarted code is not a vector of the batch"
    again, _ = _restarting_run(0, ema)
    assert torch.equal(codes, again)
    other, _ = _restarting_run(1, ema)
    assert not torch.equal(codes, other)


@pytest.mark.parametrize("ema", [False, True], ids=["gradient", "ema"])
def test_restart_happens_before_quantizing_and_resets_the_statistics(ema: bool) -> None:
    torch.manual_seed(0)
    decay = 0.9
    book = Codebook(3, 1, ema=ema, decay=decay, restart_after=1)
    with torch.no_grad():
        book.embedding.copy_(torch.tensor([[0.0], [100.0], [200.0]]))
        if ema:
            book.ema_sum.copy_(book.embedding)
    book(torch.zeros(2, 1))  # codes 1, 2 unused once
    assert book.unused_steps.tolist() == [0, 1, 1]
    batch = torch.tensor([[7.0], [8.0], [9.0]])
    q = book(batch)
    # codes 1 and 2 now sit on two of the batch's vectors, which chose them at once
    assert set(q.codes[:, 0].tolist()) <= {0.0, 7.0, 8.0, 9.0}
    assert set(q.indices.tolist()) >= {1, 2}
    assert book.unused_steps.tolist() == [1, 0, 0]
    if not ema:
        assert set(book.embedding.detach()[1:, 0].tolist()) <= {7.0, 8.0, 9.0}
    else:  # statistics reset to N_k = 1, m_k = e_k, then this step's average
        n = torch.bincount(q.indices, minlength=3).float()[1:]
        assert torch.allclose(book.ema_count[1:], decay + (1 - decay) * n)


def test_perplexity_and_usage() -> None:
    book = Codebook(4, 1)
    with torch.no_grad():
        book.embedding.copy_(torch.tensor([[0.0], [1.0], [2.0], [3.0]]))
    q = book(torch.tensor([[0.0], [1.0], [2.0], [3.0]]))
    assert torch.isclose(q.perplexity, torch.tensor(4.0)) and float(q.usage) == 1.0
    q = book(torch.zeros(5, 1))
    assert torch.isclose(q.perplexity, torch.tensor(1.0)) and float(q.usage) == 0.25


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="decay"):
        Codebook(4, 2, ema=True, decay=1.0)
    with pytest.raises(ValueError, match="restart_after"):
        Codebook(4, 2, restart_after=0)
    with pytest.raises(ValueError, match="dim = 2"):
        Codebook(4, 2)(torch.randn(3, 5, 2))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        Codebook(4, 2).lookup(torch.tensor([[4]]))
    with pytest.raises(TypeError, match="integer"):
        Codebook(4, 2).lookup(torch.tensor([[1.0]]))
