"""Model files: round trips, safe loading, clear errors, atomic writes."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from torchvae.io import _format
from torchvae.io import registry as registry_module
from torchvae.io.serialization import (
    FORMAT_VERSION,
    SerializationError,
    load_model,
    load_weights,
    model_config,
    model_from_config,
    read_metadata,
    register_serializable,
    save_model,
    save_weights,
)
from torchvae.likelihoods import ContinuousBernoulli, Gaussian
from torchvae.models.conditional import ConditionalVAE
from torchvae.models.decoders import ConvDecoder, Decoder
from torchvae.models.encoders import ConvEncoder, Encoder
from torchvae.models.vae import VAE
from torchvae.posteriors import FlowPosterior
from torchvae.priors import FlowPrior, MixturePrior, VampPrior

ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    "mlp": lambda: VAE(Encoder(12, 8, 3), Decoder(3, 8, 12)),
    "mlp-uneven": lambda: VAE(Encoder(12, [10, 6, 4], 3), Decoder(3, [5], 12)),
    "linear": lambda: VAE(Encoder(12, [], 3), Decoder(3, [], 12)),
    "conv": lambda: VAE(ConvEncoder(4, (1, 8, 8), (3, 5)), ConvDecoder(4, (1, 8, 8), (5, 3))),
    "conv-rgb-no-conv": lambda: VAE(ConvEncoder(4, (3, 4, 4), ()), ConvDecoder(4, (3, 4, 4), (2,))),
    "conv-enc-mlp-dec": lambda: VAE(ConvEncoder(4, (1, 8, 8), (2,)), Decoder(4, 6, 64)),
    "cvae-one-hot": lambda: ConditionalVAE.mlp(12, 8, 3, num_classes=4),
    "cvae-learned-conv": lambda: ConditionalVAE.conv(
        3,
        num_classes=5,
        input_shape=(1, 8, 8),
        channels=(2, 3),
        embedding="learned",
        embedding_dim=2,
    ),
}
# Every prior, posterior and likelihood, alone and with a label.
ARCHITECTURES.update(
    {
        "gaussian-learned-scale": lambda: VAE(
            Encoder(12, 8, 3), Decoder(3, 8, 12), likelihood=Gaussian(0.2, learn_scale=True)
        ),
        "continuous-bernoulli": lambda: VAE(
            Encoder(12, 8, 3), Decoder(3, 8, 12), likelihood=ContinuousBernoulli()
        ),
        "mixture-prior": lambda: VAE(Encoder(12, 8, 3), Decoder(3, 8, 12), prior=MixturePrior(4)),
        "vamp-prior": lambda: VAE(Encoder(12, 8, 3), Decoder(3, 8, 12), prior=VampPrior(5)),
        "cvae-mixture": lambda: ConditionalVAE.mlp(12, 8, 3, num_classes=4, prior=MixturePrior(2)),
        "cvae-vamp-conv": lambda: ConditionalVAE.conv(
            3, 4, (1, 8, 8), (2,), prior=VampPrior(8), likelihood=Gaussian(link="identity")
        ),
    }
)
if importlib.util.find_spec("zuko") is not None:
    ARCHITECTURES.update(
        {
            "flow-prior": lambda: VAE(
                Encoder(12, 8, 3), Decoder(3, 8, 12), prior=FlowPrior(2, (6,))
            ),
            "flow-posterior": lambda: VAE(
                Encoder(12, 8, 3), Decoder(3, 8, 12), posterior=FlowPosterior(2, (6,))
            ),
            "vamp-realnvp-posterior": lambda: VAE(
                Encoder(12, 8, 3),
                Decoder(3, 8, 12),
                prior=VampPrior(3),
                posterior=FlowPosterior(1, (6,), flow="realnvp"),
            ),
            "cvae-flow-prior-and-posterior": lambda: ConditionalVAE.mlp(
                12,
                8,
                3,
                num_classes=4,
                prior=FlowPrior(1, (6,)),
                posterior=FlowPosterior(1, (6,)),
            ),
        }
    )


def _inputs(model: nn.Module) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    if isinstance(model, ConditionalVAE):
        shape = model.data_shape
        assert shape is not None
        x = torch.rand(4, *shape, generator=g)
        return x, torch.tensor([0, 1, 2, 3]) % model.num_classes
    encoder: Any = model.encoder
    shape = getattr(encoder, "input_shape", None) or (encoder.input_dim,)
    return (torch.rand(4, *shape, generator=g),)


def _outputs(model: nn.Module) -> list[torch.Tensor]:
    """Forward pass and samples, each with a fixed generator, in eval mode."""
    model.eval()
    inputs = _inputs(model)
    out = model(*inputs, generator=torch.Generator().manual_seed(1))
    samples = (
        model.sample(3, 1, generator=torch.Generator().manual_seed(2))
        if isinstance(model, ConditionalVAE)
        else model.sample(3, generator=torch.Generator().manual_seed(2))
    )
    return [out.logits, out.mean, out.log_var, out.z, out.log_px_z, out.kl, samples]


def _assert_same_model(a: nn.Module, b: nn.Module) -> None:
    assert type(a) is type(b)
    assert repr(a) == repr(b)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].dtype == sb[key].dtype, key
        assert sa[key].device == sb[key].device, key
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_round_trip_every_architecture(arch: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ARCHITECTURES[arch]()
    path = tmp_path / "model.pt"
    save_model(model, path)
    loaded = load_model(path)
    _assert_same_model(model, loaded)
    assert model_config(loaded) == model_config(model)
    for want, got in zip(_outputs(model), _outputs(loaded), strict=True):
        assert torch.equal(want, got)
    assert all(p.requires_grad for p in loaded.parameters())


def test_vae_save_and_load_methods(tmp_path: Path) -> None:
    model = ARCHITECTURES["mlp"]()
    model.save(tmp_path / "m.pt")
    loaded = VAE.load(str(tmp_path / "m.pt"))
    assert isinstance(loaded, VAE)
    _assert_same_model(model, loaded)


def test_load_of_another_model_class_names_both(tmp_path: Path) -> None:
    save_model(ARCHITECTURES["mlp"](), tmp_path / "v.pt")
    with pytest.raises(SerializationError, match=r"v\.pt holds a VAE, not a ConditionalVAE"):
        ConditionalVAE.load(tmp_path / "v.pt")
    save_model(ARCHITECTURES["cvae-one-hot"](), tmp_path / "c.pt")
    assert isinstance(VAE.load(tmp_path / "c.pt"), ConditionalVAE)  # a conditional VAE is a VAE
    assert isinstance(load_model(tmp_path / "c.pt", expected_type=ConditionalVAE), nn.Module)
    with pytest.raises(SerializationError, match=r"c\.pt holds a ConditionalVAE, not a Encoder"):
        load_model(tmp_path / "c.pt", expected_type=Encoder)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_dtype_is_preserved(dtype: torch.dtype, tmp_path: Path) -> None:
    model = ARCHITECTURES["conv"]().to(dtype)
    save_model(model, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert {p.dtype for p in loaded.parameters()} == {dtype}
    _assert_same_model(model, loaded)


def test_map_location_moves_tensors(tmp_path: Path) -> None:
    model = ARCHITECTURES["mlp"]()
    save_model(model, tmp_path / "m.pt")
    on_meta = load_model(tmp_path / "m.pt", map_location="meta")
    assert {p.device.type for p in on_meta.parameters()} == {"meta"}
    on_cpu = load_model(tmp_path / "m.pt", map_location=torch.device("cpu"))
    _assert_same_model(model, on_cpu)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_device_kept_or_mapped(tmp_path: Path) -> None:
    model = ARCHITECTURES["conv"]().cuda()
    save_model(model, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    _assert_same_model(model, loaded)
    on_cpu = load_model(tmp_path / "m.pt", map_location="cpu")
    assert {p.device.type for p in on_cpu.parameters()} == {"cpu"}
    # the same weights run on the CPU (inputs and generators of _outputs are CPU ones)
    for want, got in zip(_outputs(copy.deepcopy(model).cpu()), _outputs(on_cpu), strict=True):
        torch.testing.assert_close(want, got)
    cpu_model = ARCHITECTURES["conv"]().cuda()
    load_weights(cpu_model, tmp_path / "m.pt")
    _assert_same_model(model, cpu_model)


# ---- architectures that cannot be rebuilt from a config -------------------------------


class _UserEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.latent_dim = 3
        self.net = nn.Linear(12, 6)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(x).chunk(2, dim=-1)  # type: ignore[return-value]


def test_user_module_is_refused_with_advice(tmp_path: Path) -> None:
    model = VAE(_UserEncoder(), Decoder(3, 8, 12))
    with pytest.raises(TypeError, match=r"model\.encoder is a .*_UserEncoder.*save_weights"):
        save_model(model, tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()
    save_weights(model, tmp_path / "w.pt")
    other = VAE(_UserEncoder(), Decoder(3, 8, 12))
    load_weights(other, tmp_path / "w.pt")
    _assert_same_model(model, other)


def test_subclass_is_not_taken_for_its_base(tmp_path: Path) -> None:
    class MyEncoder(Encoder):
        pass

    with pytest.raises(TypeError, match="MyEncoder"):
        save_model(VAE(MyEncoder(12, 8, 3), Decoder(3, 8, 12)), tmp_path / "m.pt")


def test_custom_activation_is_refused(tmp_path: Path) -> None:
    model = VAE(Encoder(12, 8, 3, activation=nn.Tanh), Decoder(3, 8, 12))
    with pytest.raises(TypeError, match=r"model\.encoder\.hidden\.1 is Tanh.*activation"):
        save_model(model, tmp_path / "m.pt")
    # The same activation spelled differently is fine.
    same = VAE(Encoder(12, 8, 3, activation=lambda: nn.LeakyReLU(0.2)), Decoder(3, 8, 12))
    save_model(same, tmp_path / "m.pt")
    leaky = VAE(Encoder(12, 8, 3), Decoder(3, 8, 12, activation=lambda: nn.LeakyReLU(0.1)))
    with pytest.raises(TypeError, match=r"negative_slope=0\.1.*activation"):
        save_model(leaky, tmp_path / "m.pt")


def test_layer_replaced_after_construction_is_refused(tmp_path: Path) -> None:
    model = ARCHITECTURES["mlp"]()
    model.decoder.output = nn.Linear(8, 12, bias=False)  # type: ignore[union-attr]
    with pytest.raises(TypeError, match=r"model\.decoder\.output is Linear.*bias=False"):
        save_model(model, tmp_path / "m.pt")
    model = ARCHITECTURES["mlp"]()
    model.encoder.register_parameter("extra", nn.Parameter(torch.zeros(2)))  # type: ignore[union-attr]
    with pytest.raises(TypeError, match=r"encoder\.extra"):
        save_model(model, tmp_path / "m.pt")


def test_bad_arguments(tmp_path: Path) -> None:
    model = ARCHITECTURES["mlp"]()
    with pytest.raises(TypeError, match=r"path must be a str or os\.PathLike, got int"):
        save_model(model, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module, got str"):
        save_model("model", tmp_path / "m.pt")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module, got dict"):
        load_weights({}, tmp_path / "m.pt")  # type: ignore[type-var]
    with pytest.raises(FileNotFoundError, match="no-such-folder"):
        save_model(model, tmp_path / "no-such-folder" / "m.pt")
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        load_model(tmp_path / "missing.pt")


# ---- loading into a model of another architecture ------------------------------------


def test_load_weights_names_shape_mismatches_and_architectures(tmp_path: Path) -> None:
    save_model(VAE(Encoder(12, 8, 3), Decoder(3, 8, 12)), tmp_path / "m.pt")
    other = VAE(Encoder(12, 8, 5), Decoder(5, 8, 12))
    with pytest.raises(SerializationError) as info:
        load_weights(other, tmp_path / "m.pt")
    message = str(info.value)
    assert "m.pt does not fit the model" in message
    assert "encoder.mean.weight model (5, 8) vs file (3, 8)" in message
    assert "latent_dim=3" in message and "latent_dim=5" in message


def test_load_weights_names_missing_and_unexpected_keys(tmp_path: Path) -> None:
    save_model(VAE(Encoder(12, [8, 8, 8], 3), Decoder(3, 8, 12)), tmp_path / "m.pt")
    other = VAE(Encoder(12, [8], 3), Decoder(3, [8, 8, 8], 12))
    with pytest.raises(SerializationError) as info:
        load_weights(other, tmp_path / "m.pt")
    message = str(info.value)
    assert "missing from the file: decoder.hidden.4.bias, decoder.hidden.4.weight" in message
    assert "not in the model: encoder.hidden.2.bias, encoder.hidden.2.weight" in message
    # Non-strict loading skips keys on one side only, and fills the shared ones.
    partial = VAE(Encoder(12, [8, 8, 8, 8], 3), Decoder(3, 8, 12))
    load_weights(partial, tmp_path / "m.pt", strict=False)
    saved = load_model(tmp_path / "m.pt")
    assert torch.equal(partial.encoder.hidden[4].weight, saved.encoder.hidden[4].weight)


def test_load_weights_copies_into_the_model_dtype(tmp_path: Path) -> None:
    model = ARCHITECTURES["mlp"]()
    save_model(model, tmp_path / "m.pt")
    target = ARCHITECTURES["mlp"]().double()
    assert load_weights(target, tmp_path / "m.pt") is target
    assert {p.dtype for p in target.parameters()} == {torch.float64}
    torch.testing.assert_close(target.float().state_dict(), model.state_dict())


def test_bare_state_dict_and_weights_only_files(tmp_path: Path) -> None:
    model = ARCHITECTURES["conv"]()
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    target = ARCHITECTURES["conv"]()
    load_weights(target, tmp_path / "bare.pt")
    _assert_same_model(model, target)
    with pytest.raises(SerializationError, match=r"bare\.pt .*bare state dict.*load_weights"):
        load_model(tmp_path / "bare.pt")
    save_weights(model, tmp_path / "w.pt")
    with pytest.raises(SerializationError, match=r"w\.pt holds weights only.*load_weights"):
        load_model(tmp_path / "w.pt")


# ---- damaged, foreign and future files ------------------------------------------------


def _legacy_save(model: nn.Module, path: Path, metadata: dict[str, Any] | None = None) -> None:
    """A file as torchvae wrote them before safetensors (format versions 1 and 2)."""
    config = json.dumps(model_config(model))
    extra = None if metadata is None else json.dumps(metadata)
    state = {k: v.detach() for k, v in model.state_dict().items()}
    payload: dict[str, Any] = {
        "format": "torchvae",
        "format_version": 1 if extra is None else 2,
        "torchvae_version": "0.1.0",
        "config": config,
        "state_dict": state,
        "sha256": _format._checksum(config, state, extra),
    }
    if extra is not None:
        payload["metadata"] = extra
    torch.save(payload, path)


def _container(path: Path) -> str:
    return "safetensors" if path.read_bytes()[8:9] == b"{" else "torch"


def _payload(path: Path) -> dict[str, Any]:
    """A model file's fields as one dict, whichever its container."""
    if _container(path) == "torch":
        payload: dict[str, Any] = torch.load(path, weights_only=True)
        return payload
    with safe_open(str(path), framework="pt") as f:  # type: ignore[no-untyped-call]
        fields: dict[str, Any] = dict(f.metadata() or {})
        fields["state_dict"] = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    version = fields.get("format_version", "")
    fields["format_version"] = int(version) if version.isdigit() else version
    fields.setdefault("config", None)
    return fields


def _store(path: Path, payload: dict[str, Any], container: str) -> None:
    if container == "torch":
        torch.save(payload, path)
        return
    fields = {k: str(v) for k, v in payload.items() if k != "state_dict" and v is not None}
    save_file(payload["state_dict"], str(path), metadata=fields)


@pytest.fixture(params=["safetensors", "torch"])
def saved(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A model file in today's format and in the earlier torch.save format (still read)."""
    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    if request.param == "torch":
        _legacy_save(ARCHITECTURES["conv"](), path)
    else:
        save_model(ARCHITECTURES["conv"](), path)
    assert _container(path) == request.param
    return path


@pytest.mark.parametrize("keep", [0.0, 0.001, 0.3, 0.5, 0.9, 0.999])
def test_truncated_file_is_named(saved: Path, keep: float) -> None:
    data = saved.read_bytes()
    saved.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(SerializationError, match=r"cannot load .*model\.pt: .*(truncated|corrupt)"):
        load_model(saved)
    with pytest.raises(SerializationError, match=r"model\.pt"):
        load_weights(ARCHITECTURES["conv"](), saved)


def _tensor_offset(data: bytes) -> int:
    """Where a tensor's bytes lie in a model file."""
    if data[8:9] == b"{":  # safetensors: the tensors' bytes follow the header
        return 8 + int.from_bytes(data[:8], "little") + 100
    start = data.index(b"/data/0")  # a torch zip file: its first 'data/0' record
    return start + 200  # past the record's header, inside the tensor bytes


def test_flipped_bit_in_a_tensor_is_detected(saved: Path) -> None:
    data = bytearray(saved.read_bytes())
    data[_tensor_offset(bytes(data))] ^= 0x10
    saved.write_bytes(bytes(data))
    with pytest.raises(SerializationError, match=r"model\.pt is corrupted: .*SHA-256"):
        load_model(saved)


@pytest.mark.parametrize(
    "content", [b"", b"hello, not a model", bytes(range(256)) * 8], ids=["empty", "text", "bytes"]
)
def test_foreign_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "foreign.bin"
    path.write_bytes(content)
    with pytest.raises(SerializationError, match=r"foreign\.bin"):
        load_model(path)


def _rewrite(path: Path, change: Callable[[dict[str, Any]], None], rehash: bool = True) -> None:
    container, payload = _container(path), _payload(path)
    change(payload)
    if rehash:
        payload["sha256"] = _format._checksum(
            payload["config"], payload["state_dict"], payload.get("metadata")
        )
    _store(path, payload, container)


def test_newer_format_version_is_refused(saved: Path) -> None:
    _rewrite(saved, lambda p: p.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(
        SerializationError, match=rf"model\.pt has format version {FORMAT_VERSION + 1}.*upgrade"
    ):
        load_model(saved)


@pytest.mark.parametrize("version", ["1", 0, None, True])
def test_malformed_format_version_is_refused(saved: Path, version: object) -> None:
    if _container(saved) == "safetensors" and version == "1":
        version = "1.0"  # its fields are all strings: "1" is a version there, "1.0" is not
    _rewrite(saved, lambda p: p.update(format_version=version))
    with pytest.raises(SerializationError, match=r"model\.pt is corrupted: format_version"):
        load_model(saved)


def test_other_format_is_refused(saved: Path) -> None:
    _rewrite(saved, lambda p: p.update(format="something-else"))
    with pytest.raises(SerializationError, match=r"model\.pt is not a torchvae model file"):
        load_model(saved)


def test_config_of_unknown_type_is_refused(saved: Path) -> None:
    _rewrite(saved, lambda p: p.update(config='{"type": "os.system", "command": "ls"}'))
    with pytest.raises(SerializationError, match=r"model\.pt .*unknown type 'os.system'"):
        load_model(saved)


def test_config_that_does_not_fit_the_tensors_is_refused(saved: Path) -> None:
    config = model_config(ARCHITECTURES["conv"]())
    config["encoder"]["latent_dim"] = config["decoder"]["latent_dim"] = 6
    _rewrite(saved, lambda p: p.update(config=json.dumps(config)))
    with pytest.raises(SerializationError, match=r"model\.pt is inconsistent: .*latent_dim=6"):
        load_model(saved)


def test_config_with_bad_values_is_refused(saved: Path) -> None:
    config = model_config(ARCHITECTURES["conv"]())
    config["encoder"]["channels"] = [3, -5]
    _rewrite(saved, lambda p: p.update(config=json.dumps(config)))
    with pytest.raises(SerializationError, match=r"config\.encoder \(ConvEncoder\).*channels"):
        load_model(saved)


def test_changed_config_without_rehash_fails_the_checksum(saved: Path) -> None:
    _rewrite(saved, lambda p: p.update(config=p["config"].replace("8", "16")), rehash=False)
    with pytest.raises(SerializationError, match="SHA-256"):
        load_model(saved)


# ---- metadata ------------------------------------------------------------------------


def test_metadata_round_trips_and_is_checksummed(tmp_path: Path) -> None:
    model = ARCHITECTURES["mlp"]()
    meta = {"dataset": "fashion-mnist", "image_shape": [1, 28, 28], "binarize": "none"}
    path = tmp_path / "m.pt"
    save_model(model, path, metadata=meta)
    assert read_metadata(path) == meta
    _assert_same_model(load_model(path), model)
    assert _payload(path)["format_version"] == FORMAT_VERSION == 3
    save_weights(model, tmp_path / "w.pt", metadata={"note": "weights"})
    assert read_metadata(tmp_path / "w.pt") == {"note": "weights"}
    _rewrite(path, lambda p: p.update(metadata=p["metadata"].replace("fashion-", "")), False)
    with pytest.raises(SerializationError, match="SHA-256"):
        read_metadata(path)
    with pytest.raises(SerializationError, match="SHA-256"):
        load_model(path)


def test_files_without_metadata_read_as_empty(tmp_path: Path) -> None:
    save_model(ARCHITECTURES["mlp"](), tmp_path / "m.pt")
    assert "metadata" not in _payload(tmp_path / "m.pt")
    assert read_metadata(tmp_path / "m.pt") == {}
    torch.save(ARCHITECTURES["mlp"]().state_dict(), tmp_path / "bare.pt")
    assert read_metadata(tmp_path / "bare.pt") == {}
    _legacy_save(ARCHITECTURES["mlp"](), tmp_path / "v1.pt")
    assert _payload(tmp_path / "v1.pt")["format_version"] == 1
    assert read_metadata(tmp_path / "v1.pt") == {}


@pytest.mark.parametrize(
    ("metadata", "error", "match"),
    [
        ({"x": object()}, TypeError, "JSON values"),
        ({"x": float("nan")}, TypeError, "JSON values"),
        ({1: "a"}, TypeError, "str keys"),
        (["dataset"], TypeError, "dict"),
        ({"deep": json.loads("[" * 40 + "]" * 40)}, ValueError, "deep"),
    ],
)
def test_bad_metadata_is_refused_before_writing(
    tmp_path: Path, metadata: Any, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        save_model(ARCHITECTURES["mlp"](), tmp_path / "m.pt", metadata=metadata)
    assert not (tmp_path / "m.pt").exists()


# ---- forged files with a valid checksum -------------------------------------------------


def _forge(path: Path, config: str | None = None, metadata: str | None = None) -> None:
    container, payload = _container(path), _payload(path)
    if config is not None:
        payload["config"] = config
    if metadata is not None:
        payload["metadata"] = metadata
        payload["format_version"] = max(2, payload["format_version"])
    payload["sha256"] = _format._checksum(
        payload["config"], payload["state_dict"], payload.get("metadata")
    )
    _store(path, payload, container)


@pytest.mark.parametrize("where", ["config", "metadata"])
def test_deeply_nested_json_is_refused(saved: Path, where: str) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    _forge(saved, **{where: deep})
    with pytest.raises(SerializationError, match=rf"model\.pt .*its {where} nests 100000 levels"):
        load_model(saved) if where == "config" else read_metadata(saved)


def test_huge_json_is_refused(saved: Path) -> None:
    _forge(saved, metadata='{"x": "' + "a" * (2 << 20) + '"}')
    with pytest.raises(SerializationError, match=r"characters long"):
        read_metadata(saved)


@pytest.mark.parametrize("size", [2**40, 2**20, 10**30])
def test_a_forged_hidden_size_fails_before_any_allocation(tmp_path: Path, size: int) -> None:
    path = tmp_path / "m.pt"
    save_model(ARCHITECTURES["mlp"](), path)
    config = model_config(ARCHITECTURES["mlp"]())
    config["encoder"]["hidden_dims"] = [size, size]
    _forge(path, config=json.dumps(config))
    with pytest.raises(SerializationError, match=rf"hidden_dims\[\d\] = {size} is larger than"):
        load_model(path)


def test_a_forged_image_shape_is_checked_on_the_meta_device_first(
    saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    largest = max(t.numel() for t in _payload(saved)["state_dict"].values())
    built: list[int] = []
    reset = nn.Linear.reset_parameters

    def record(self: nn.Linear) -> None:
        if not self.weight.is_meta:
            built.append(self.weight.numel())
        reset(self)

    monkeypatch.setattr(nn.Linear, "reset_parameters", record)
    config = model_config(ARCHITECTURES["conv"]())
    # each size small, their product not; encoder and decoder forged alike, so that the
    # model's own size check passes and only the tensors can tell
    config["encoder"]["input_shape"] = config["decoder"]["output_shape"] = [1, 128, 128]
    _forge(saved, config=json.dumps(config))
    with pytest.raises(SerializationError, match=r"model\.pt is inconsistent"):
        load_model(saved)
    assert max(built, default=0) <= largest, "a layer larger than the file's tensors was built"
    config["decoder"]["output_shape"] = [1, 8, 8]  # now the sizes disagree: refused when built
    _forge(saved, config=json.dumps(config))
    with pytest.raises(SerializationError, match=r"decoder gives 64 features per example"):
        load_model(saved)
    assert max(built, default=0) <= largest, "a layer larger than the file's tensors was built"


# ---- hostile files --------------------------------------------------------------------


class _Evil:
    """Unpickling this calls ``os.mkdir(marker)``: stands for any code an attacker runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def _evil_files(folder: Path, marker: Path) -> list[Path]:
    model = ARCHITECTURES["mlp"]()
    in_zip = folder / "evil-zip.pt"
    torch.save(
        {
            "format": "torchvae",
            "format_version": 1,
            "config": None,
            "state_dict": model.state_dict(),
            "payload": _Evil(marker),
        },
        in_zip,
    )
    raw = folder / "evil-raw.pkl"
    with raw.open("wb") as f:
        pickle.dump({"encoder.mean.weight": _Evil(marker)}, f, protocol=2)
    return [in_zip, raw]


def test_evil_files_really_run_code_when_unpickled_unsafely(tmp_path: Path) -> None:
    # The control: without the restricted unpickler these files do run their payload.
    marker = tmp_path / "control"
    in_zip, raw = _evil_files(tmp_path, marker)
    torch.load(in_zip, weights_only=False)
    assert marker.exists()
    marker.rmdir()
    with raw.open("rb") as f:
        pickle.load(f)
    assert marker.exists()


@pytest.mark.parametrize("loader", ["load_model", "load_weights", "VAE.load"])
def test_malicious_pickle_does_not_run(tmp_path: Path, loader: str) -> None:
    marker = tmp_path / "pwned"
    for path in _evil_files(tmp_path, marker):
        with pytest.raises(SerializationError, match=rf"{path.name}.*(could run|not a torchvae)"):
            if loader == "load_model":
                load_model(path)
            elif loader == "VAE.load":
                VAE.load(path)
            else:
                load_weights(ARCHITECTURES["mlp"](), path)
        assert not marker.exists()


def test_malicious_zip_message_says_why(tmp_path: Path) -> None:
    path = _evil_files(tmp_path, tmp_path / "pwned")[0]
    with pytest.raises(SerializationError, match=r"refusing to load .*evil-zip\.pt.*mkdir"):
        load_model(path)


# ---- atomic writes --------------------------------------------------------------------


def test_failed_write_leaves_previous_file_intact(
    saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = saved.read_bytes()

    def half_then_fail(f: Any, data: bytes) -> None:
        f.write(data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_format, "_write", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        save_model(ARCHITECTURES["conv"](), saved)
    assert saved.read_bytes() == before
    assert sorted(p.name for p in saved.parent.iterdir()) == [saved.name]
    monkeypatch.undo()
    load_model(saved)


_SLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    from torchvae.io import _format
    from torchvae.models.decoders import Decoder
    from torchvae.models.encoders import Encoder
    from torchvae.models.vae import VAE
    from torchvae.io.serialization import save_model

    def slow_write(f, data):
        f.write(data[: len(data) // 2])
        f.flush()
        print("half written", flush=True)
        time.sleep(120)
        f.write(data[len(data) // 2 :])

    _format._write = slow_write
    save_model(VAE(Encoder(12, 64, 3), Decoder(3, 64, 12)), sys.argv[1])
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_process_killed_mid_write_leaves_previous_file_intact(saved: Path) -> None:
    before = load_model(saved)
    child = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, str(saved)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "half written", child.stderr.read() if child.stderr else ""
        strays = [p for p in saved.parent.iterdir() if p != saved]
        assert len(strays) == 1 and strays[0].name.startswith(".model.pt.")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    _assert_same_model(before, load_model(saved))
    # The half-written temporary file is what was cut short: it does not load.
    with pytest.raises(SerializationError):
        load_model(strays[0])


# ---- the extension point --------------------------------------------------------------


class _Scale(nn.Module):
    def __init__(self, n: int, inner: nn.Module) -> None:
        super().__init__()
        self.n = n
        self.inner = inner
        self.weight = nn.Parameter(torch.randn(n))


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "_BY_NAME", dict(registry_module._BY_NAME))
    monkeypatch.setattr(registry_module, "_BY_TYPE", dict(registry_module._BY_TYPE))


@pytest.mark.usefixtures("registry")
def test_registered_class_round_trips_with_nested_modules(tmp_path: Path) -> None:
    register_serializable(
        _Scale,
        lambda m: {"n": m.n, "inner": m.inner},
        lambda c: _Scale(c["n"], c["inner"]),
        name="tests.Scale",
    )
    model = _Scale(3, Encoder(4, 2, 1))
    assert model_config(model) == {
        "type": "tests.Scale",
        "n": 3,
        "inner": {"type": "Encoder", "input_dim": 4, "hidden_dims": [2, 2], "latent_dim": 1},
    }
    save_model(model, tmp_path / "s.pt")
    _assert_same_model(model, load_model(tmp_path / "s.pt"))
    assert isinstance(model_from_config(model_config(model)), _Scale)


@pytest.mark.usefixtures("registry")
def test_register_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="'Encoder' is already registered"):
        register_serializable(_Scale, lambda m: {}, lambda c: _Scale(1, nn.Identity()), "Encoder")
    with pytest.raises(TypeError, match=r"cls must be a subclass of torch\.nn\.Module"):
        register_serializable(int, lambda m: {}, lambda c: 1)  # type: ignore[type-var]
    with pytest.raises(TypeError, match="from_config must be callable"):
        register_serializable(_Scale, lambda m: {}, None)  # type: ignore[arg-type]


def test_model_from_config_names_the_problem() -> None:
    with pytest.raises(ValueError, match=r"config\.encoder \(Encoder\) lacks the key 'input_dim'"):
        model_from_config(
            {"type": "VAE", "encoder": {"type": "Encoder"}, "decoder": {"type": "Decoder"}}
        )
    with pytest.raises(ValueError, match="must be a dict with a str 'type' key"):
        model_from_config({"encoder": 1})


def test_folders_and_odd_links_are_named_for_what_they_are(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match="is a folder, not a file"):
        load_model(tmp_path)
    loop = tmp_path / "loop.pt"
    loop.symlink_to(loop)
    for load in (load_model, lambda p: load_weights(Encoder(4, 4, 2), p)):
        with pytest.raises(OSError, match=r"loop\.pt' is a loop of symbolic links") as info:
            load(loop)
        assert not isinstance(info.value, FileNotFoundError)
    with pytest.raises(FileNotFoundError, match=r"'.*missing\.pt' does not exist"):
        load_model(tmp_path / "missing.pt")
