"""Model files in safetensors: old files still read, forged headers refused, devices kept."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tests.test_serialization import ARCHITECTURES, _assert_same_model, _legacy_save
from torch import nn

from torchvae.io import _format
from torchvae.io.serialization import (
    SerializationError,
    load_model,
    load_weights,
    model_config,
    read_metadata,
    save_model,
    save_weights,
)
from torchvae.models.decoders import Decoder
from torchvae.models.encoders import Encoder
from torchvae.models.vae import VAE


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_files_of_earlier_versions_still_load(arch: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ARCHITECTURES[arch]()
    _legacy_save(model, tmp_path / "v1.pt")
    _legacy_save(model, tmp_path / "v2.pt", metadata={"dataset": "fashion-mnist"})
    _assert_same_model(model, load_model(tmp_path / "v1.pt"))
    _assert_same_model(model, load_model(tmp_path / "v2.pt"))
    assert read_metadata(tmp_path / "v2.pt") == {"dataset": "fashion-mnist"}


def test_the_file_is_plain_safetensors_with_config_and_digest(tmp_path: Path) -> None:
    model = ARCHITECTURES["conv"]()
    save_model(model, tmp_path / "m.safetensors", metadata={"epochs": 2})
    with safe_open(str(tmp_path / "m.safetensors"), framework="pt") as f:  # type: ignore[no-untyped-call]
        fields = f.metadata()
        keys = set(f.keys())
    assert keys == set(model.state_dict())
    assert fields["format"] == "torchvae" and fields["format_version"] == "3"
    assert json.loads(fields["config"]) == model_config(model)
    assert json.loads(fields["metadata"]) == {"epochs": 2}
    assert len(fields["sha256"]) == 64
    assert "devices" not in fields  # all on the CPU


def test_shared_and_strided_tensors_are_stored_whole(tmp_path: Path) -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(3, 3)
            self.b = nn.Linear(3, 3)
            self.b.weight = self.a.weight  # tied
            self.register_buffer("t", torch.arange(12.0).reshape(3, 4).t())  # not contiguous

    model = Tied()
    save_weights(model, tmp_path / "w.pt")
    other = Tied()
    load_weights(other, tmp_path / "w.pt")
    assert torch.equal(other.a.weight, model.a.weight)
    assert torch.equal(other.t, model.t)


def test_bare_safetensors_state_dicts_load_into_a_built_model(tmp_path: Path) -> None:
    model = VAE(Encoder(12, 8, 3), Decoder(3, 8, 12))
    save_file(model.state_dict(), str(tmp_path / "bare.safetensors"))
    target = VAE(Encoder(12, 8, 3), Decoder(3, 8, 12))
    load_weights(target, tmp_path / "bare.safetensors")
    _assert_same_model(model, target)
    assert read_metadata(tmp_path / "bare.safetensors") == {}
    with pytest.raises(SerializationError, match=r"bare\.safetensors is not a torchvae.*load_wei"):
        load_model(tmp_path / "bare.safetensors")


def test_map_location_as_dict_or_function(tmp_path: Path) -> None:
    model = ARCHITECTURES["mlp"]()
    save_model(model, tmp_path / "m.pt")
    _assert_same_model(model, load_model(tmp_path / "m.pt", map_location={"cuda:0": "cpu"}))
    seen: list[str] = []

    def keep(storage: Any, location: str) -> Any:
        seen.append(location)
        return storage

    _assert_same_model(model, load_model(tmp_path / "m.pt", map_location=keep))
    assert set(seen) == {"cpu"}


def test_a_file_saved_on_an_absent_device_says_to_map_it(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_model(ARCHITECTURES["mlp"](), path)
    with safe_open(str(path), framework="pt") as f:  # type: ignore[no-untyped-call]
        fields = dict(f.metadata())
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    fields["devices"] = json.dumps({k: "cuda:7" for k in state})
    save_file(state, str(path), metadata=fields)
    if torch.cuda.device_count() < 8:
        with pytest.raises(SerializationError, match=r"m\.pt onto its saved device.*map_location"):
            load_model(path)
    assert load_model(path, map_location="cpu").encoder.mean.weight.device.type == "cpu"


# ---- forged safetensors headers -------------------------------------------------------


def _raw(header: object, data: bytes, length: int | None = None) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def _fields(model: nn.Module) -> dict[str, str]:
    config = json.dumps(model_config(model))
    return {
        "format": "torchvae",
        "format_version": "3",
        "config": config,
        "sha256": _format._checksum(config, model.state_dict()),
    }


_W = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}
FORGED: dict[str, bytes] = {
    "length-past-the-end": _raw({"w": _W}, bytes(16), length=10_000),
    "length-huge": _raw({"w": _W}, bytes(16), length=2**63),
    "header-not-json": _raw(b"{not json at all", bytes(16)),
    "offsets-past-the-end": _raw({"w": {**_W, "data_offsets": [0, 1 << 40]}}, bytes(16)),
    "offsets-overlap": _raw({"w": _W, "v": {**_W, "data_offsets": [8, 24]}}, bytes(24)),
    "shape-disagrees-with-bytes": _raw({"w": {**_W, "shape": [2**31, 2**31]}}, bytes(16)),
    "unknown-dtype": _raw({"w": {**_W, "dtype": "PICKLE"}}, bytes(16)),
    "metadata-not-strings": _raw({"__metadata__": {"format": ["torchvae"]}, "w": _W}, bytes(16)),
    "tensor-not-a-dict": _raw({"w": "os.system('ls')"}, bytes(16)),
    "deep-header": _raw(b"{" + b'"a":[' * 5000 + b"]" * 5000 + b"}", b""),
}


@pytest.mark.parametrize("name", sorted(FORGED))
def test_forged_headers_are_refused_by_name(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.pt"
    path.write_bytes(FORGED[name])
    for load in (load_model, read_metadata, lambda p: load_weights(Encoder(2, 2, 1), p)):
        with pytest.raises(SerializationError, match=rf"{name}\.pt"):
            load(path)


def test_forged_devices_entry_is_refused(tmp_path: Path) -> None:
    model = ARCHITECTURES["mlp"]()
    for devices in ("not json", json.dumps(["cpu"]), json.dumps({"x": "cuda; rm -rf"})):
        fields = {**_fields(model), "devices": devices}
        save_file(model.state_dict(), str(tmp_path / "m.pt"), metadata=fields)
        with pytest.raises(SerializationError, match=r"m\.pt is corrupted: its devices"):
            load_model(tmp_path / "m.pt")


def test_a_valid_forged_header_still_meets_the_checksum_and_bounds(tmp_path: Path) -> None:
    model = ARCHITECTURES["mlp"]()
    save_file(model.state_dict(), str(tmp_path / "ok.pt"), metadata=_fields(model))
    _assert_same_model(model, load_model(tmp_path / "ok.pt"))
    fields = {**_fields(model), "sha256": "0" * 64}
    save_file(model.state_dict(), str(tmp_path / "bad.pt"), metadata=fields)
    with pytest.raises(SerializationError, match=r"bad\.pt is corrupted: .*SHA-256"):
        load_model(tmp_path / "bad.pt")
    config = model_config(model)
    config["encoder"]["hidden_dims"] = [2**40, 2**40]
    text = json.dumps(config)
    fields = {**_fields(model), "config": text}
    fields["sha256"] = _format._checksum(text, model.state_dict())
    save_file(model.state_dict(), str(tmp_path / "big.pt"), metadata=fields)
    with pytest.raises(SerializationError, match=r"hidden_dims\[\d\] = 1099511627776 is larger"):
        load_model(tmp_path / "big.pt")
