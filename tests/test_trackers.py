"""MLflow and W&B callbacks, offline: MLflow's file store and W&B's offline mode."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch

from torchvae.callbacks import MLflowLogger, WandbLogger
from torchvae.models.decoders import Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.vae import VAE
from torchvae.training.trainer import Trainer

HAS_MLFLOW = importlib.util.find_spec("mlflow") is not None
HAS_WANDB = importlib.util.find_spec("wandb") is not None
pytestmark = pytest.mark.filterwarnings(
    "ignore::torchvae.diagnostics.PosteriorCollapseWarning", "ignore::DeprecationWarning"
)


def _fit(logger: Any, epochs: int = 2, fail: bool = False) -> Trainer:
    torch.manual_seed(0)
    x = torch.rand(32, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    model = VAE(Encoder(16, 8, 2), Decoder(2, 8, 16))
    trainer = Trainer(model, callbacks=[logger], device="cpu", batch_size=8, log_every_n_steps=2)
    if fail:

        class BoomError(Exception):
            pass

        def boom(*args: Any) -> None:
            raise BoomError

        trainer.forward = boom  # type: ignore[method-assign]
        with pytest.raises(BoomError):
            trainer.fit(x.reshape(32, 16), epochs=epochs)
    else:
        trainer.fit(x.reshape(32, 16), x[:8].reshape(8, 16), epochs=epochs)
    return trainer


@pytest.mark.skipif(not HAS_MLFLOW, reason="needs mlflow (pip install torchvae[trackers])")
def test_mlflow_logs_scalars_images_and_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a folder store, for a test
    uri = (tmp_path / "mlruns").as_uri()
    logger = MLflowLogger(uri, experiment="tests", hparams={"dataset": "fake"}, n_images=4)
    trainer = _fit(logger)
    client = MlflowClient(uri)
    assert logger.run_id is not None
    run = client.get_run(logger.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["dataset"] == "fake" and run.data.params["latent_dim"] == "2"
    history = client.get_metric_history(logger.run_id, "epoch/loss")
    assert [(m.step, m.value) for m in history] == [
        (i + 1, pytest.approx(h["loss"])) for i, h in enumerate(trainer.history)
    ]
    steps = [m.step for m in client.get_metric_history(logger.run_id, "train/loss")]
    assert steps == list(range(0, 8, 2))  # every log_every_n_steps of 8 steps
    assert client.get_metric_history(logger.run_id, "latent/active_units")
    for grid in ("reconstructions", "samples"):
        files = [a.path for a in client.list_artifacts(logger.run_id, grid)]
        assert files == [f"{grid}/step-000001.png", f"{grid}/step-000002.png"]


@pytest.mark.skipif(not HAS_MLFLOW, reason="needs mlflow (pip install torchvae[trackers])")
def test_mlflow_marks_a_failed_run_and_continues_a_run_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    failed = MLflowLogger(uri, n_images=4, diagnostics=0)
    _fit(failed, fail=True)
    client = MlflowClient(uri)
    assert failed.run_id is not None
    assert client.get_run(failed.run_id).info.status == "FAILED"
    _fit(MLflowLogger(uri, run_id=failed.run_id, n_images=4, diagnostics=0), epochs=1)
    assert client.get_run(failed.run_id).info.status == "FINISHED"
    assert len(client.get_metric_history(failed.run_id, "epoch/loss")) == 1


@pytest.mark.skipif(not HAS_WANDB, reason="needs wandb (pip install torchvae[trackers])")
def test_wandb_offline_logs_scalars_images_and_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    seen: dict[str, Any] = {}

    class Snapshot(WandbLogger):
        def on_fit_end(self, trainer: Any) -> None:
            super().on_fit_end(trainer)
            seen["config"] = dict(self.run.config)

        def _open(self, trainer: Any) -> Any:
            writer = super()._open(trainer)
            logged = writer.run.log

            def log(values: dict[str, Any], *args: Any, **kwargs: Any) -> None:
                seen.setdefault("logged", []).append(dict(values))
                logged(values, *args, **kwargs)

            writer.run.log = log
            return writer

    logger = Snapshot(project="tests", mode="offline", hparams={"dataset": "fake"}, n_images=4)
    trainer = _fit(logger)
    assert seen["config"]["dataset"] == "fake" and seen["config"]["latent_dim"] == 2
    logged = seen["logged"]
    epoch_losses = [d["epoch/loss"] for d in logged if "epoch/loss" in d]
    assert epoch_losses == [pytest.approx(h["loss"]) for h in trainer.history]
    assert [d["train_step"] for d in logged if "train/loss" in d] == [0, 2, 4, 6]
    assert sum("reconstructions" in d for d in logged) == 2
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and (runs[0] / f"run-{logger.run_id}.wandb").stat().st_size > 0
    images = sorted(p.name.split("_")[0] for p in (runs[0] / "files" / "media").rglob("*.png"))
    assert images == ["reconstructions"] * 2 + ["samples"] * 2


def test_a_missing_tracker_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from torchvae.callbacks import _trackers

    real = importlib.import_module

    def absent(name: str, package: str | None = None) -> Any:
        if name in ("mlflow", "wandb"):
            raise ImportError(f"No module named {name!r}")
        return real(name, package)

    monkeypatch.setattr(_trackers.importlib, "import_module", absent)
    for logger in (MLflowLogger(), WandbLogger(mode="offline")):
        with pytest.raises(
            ImportError,
            match=r"needs the '(mlflow|wandb)' package: pip install "
            r"torchvae\[trackers\]",
        ):
            _fit(logger, epochs=1)
    with pytest.raises(ValueError, match="mode must be"):
        WandbLogger(mode="cloud")
