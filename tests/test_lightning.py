"""The Lightning adapter: a few CPU steps, a checkpoint resume, conditional and auxiliary."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from torchvae.models.conditional import ConditionalVAE
from torchvae.models.decoders import Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.vae import VAE

if importlib.util.find_spec("lightning") is None:
    pytest.skip("needs Lightning (pip install torchvae[lightning])", allow_module_level=True)

import lightning as L

from torchvae.lightning import VAEModule

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def _data(labels: bool = False) -> DataLoader[Any]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(32, 12, generator=g)
    tensors = (x, torch.arange(32) % 4) if labels else (x,)
    return DataLoader(TensorDataset(*tensors), batch_size=8, shuffle=False)


def _trainer(root: Path, epochs: int, **kw: Any) -> Any:
    return L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        **kw,
    )


def _module(seed: int = 0) -> VAEModule:
    torch.manual_seed(seed)
    return VAEModule(VAE(Encoder(12, 8, 3), Decoder(3, 8, 12)), lr=1e-2)


def test_a_few_steps_lower_the_loss_and_log_the_metrics(tmp_path: Path) -> None:
    module = _module()
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    trainer = _trainer(tmp_path, epochs=3, enable_checkpointing=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, _data(), _data())
    assert trainer.global_step == 3 * 4
    metrics = trainer.callback_metrics
    for name in ("loss", "reconstruction", "kl", "val_loss", "val_kl", "val_bits_per_dim"):
        assert name in metrics and torch.isfinite(metrics[name]), name
    changed = any(not torch.equal(v, module.model.state_dict()[k]) for k, v in before.items())
    assert changed


def test_a_checkpoint_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    straight = _module()
    _trainer(tmp_path / "a", epochs=2, enable_checkpointing=False).fit(straight, _data())
    first = _module()
    trainer = _trainer(tmp_path / "b", epochs=1)
    trainer.fit(first, _data())
    checkpoint = trainer.checkpoint_callback.best_model_path  # type: ignore[union-attr]
    assert Path(checkpoint).is_file()
    resumed = _module(seed=1)  # other initial weights: all must come from the checkpoint
    again = _trainer(tmp_path / "b", epochs=2)
    again.fit(resumed, _data(), ckpt_path=checkpoint)
    assert again.global_step == 2 * 4
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value)


def test_a_conditional_model_gets_its_labels(tmp_path: Path) -> None:
    module = VAEModule(ConditionalVAE.mlp(12, 8, 3, num_classes=4))
    _trainer(tmp_path, epochs=1, enable_checkpointing=False).fit(module, _data(labels=True))
    with pytest.raises(ValueError, match=r"conditional: batches must be \(x, y\)"):
        _trainer(tmp_path, epochs=1, enable_checkpointing=False).fit(module, _data())


def test_auxiliary_parameter_groups_get_their_own_optimizer(tmp_path: Path) -> None:
    from torchvae.objectives.losses import ELBOLoss, LossOutput

    class WithCritic(ELBOLoss):
        def __init__(self) -> None:
            super().__init__()
            self.critic = torch.nn.Linear(3, 1)

        def aux_parameters(self) -> dict[str, list[torch.nn.Parameter]]:
            return {"critic": list(self.critic.parameters())}

        def forward(self, out: Any, x: torch.Tensor) -> LossOutput:
            base = super().forward(out, x)
            critic = self.critic(out.z.detach()).pow(2).mean()
            return base._replace(aux={"critic": critic})

    torch.manual_seed(0)
    loss = WithCritic()
    module = VAEModule(VAE(Encoder(12, 8, 3), Decoder(3, 8, 12)), loss=loss)
    assert not module.automatic_optimization
    critic = loss.critic.weight.detach().clone()
    _trainer(tmp_path, epochs=1, enable_checkpointing=False).fit(module, _data())
    assert not torch.equal(critic, loss.critic.weight)
    groups = [len(o.param_groups[0]["params"]) for o in module.trainer.optimizers]
    assert groups == [len(list(module.model.parameters())), 2]


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="model must be"):
        VAEModule("vae")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lr must be"):
        VAEModule(VAE(Encoder(4, 4, 2), Decoder(2, 4, 4)), lr=0)
