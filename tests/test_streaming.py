"""The streaming loader matches the in-memory TensorLoader batch for batch; the adapter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset, TensorDataset

from torchvae import VAE, Decoder, Encoder, Trainer
from torchvae.data import TensorLoader
from torchvae.data.streaming import DatasetImages, StreamLoader, materialize
from torchvae.training._batches import shard_loader


def images_and_labels(n: int = 23, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 5, 4), generator=gen, dtype=torch.uint8)
    return images, torch.randint(0, 10, (n,), generator=gen)


def epoch_batches(loader: TensorLoader | StreamLoader, epoch: int) -> list:
    loader.set_epoch(epoch)
    return list(loader)


def same(a: list, b: list) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        x, y = (x, y) if isinstance(x, tuple) else ((x,), (y,))
        if not all(torch.equal(p, q) for p, q in zip(x, y, strict=True)):
            return False
    return True


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"shuffle": True},
        {"shuffle": True, "dequantize": True},
        {"shuffle": True, "flatten": True, "drop_last": True},
        {"shuffle": True, "rank": 1, "world_size": 3},
        {"max_batches": 2, "shuffle": True, "dequantize": True},
        {"batch_size": 50},
    ],
)
def test_stream_loader_yields_the_tensor_loaders_batches(options: dict) -> None:
    images, labels = images_and_labels()
    options = {"batch_size": 4, "seed": 7, **options}
    memory = TensorLoader(images, labels, **options)
    stream = StreamLoader(DatasetImages(TensorDataset(images, labels)), **options)
    assert len(stream) == len(memory) and stream.num_samples == memory.num_samples
    for epoch in (0, 1, 5):
        assert same(epoch_batches(stream, epoch), epoch_batches(memory, epoch)), epoch
    assert stream.in_unit_interval


def test_stream_loader_with_workers_and_without_labels() -> None:
    images, _ = images_and_labels()
    memory = TensorLoader(images, batch_size=5, shuffle=True, dequantize=True)
    stream = StreamLoader(
        DatasetImages(TensorDataset(images)),
        batch_size=5,
        shuffle=True,
        dequantize=True,
        labels=False,
        num_workers=2,
    )
    batches = list(stream)
    assert all(isinstance(x, torch.Tensor) for x in batches)
    assert same(batches, list(memory))
    assert not same(list(stream), batches), "the second epoch must have a new order"


def test_stream_loader_advances_epochs_and_rejects_bad_arguments() -> None:
    images, labels = images_and_labels()
    data = DatasetImages(TensorDataset(images, labels))
    stream = StreamLoader(data, batch_size=4, shuffle=True)
    first, second = list(stream), list(stream)
    assert stream.epoch == 2 and not same(first, second)
    stream.set_epoch(0)
    assert same(list(stream), first)
    for kwargs, match in (
        ({"batch_size": 0}, "batch_size"),
        ({"rank": 2, "world_size": 2}, "rank"),
        ({"num_workers": -1}, "num_workers"),
        ({"max_batches": 0}, "max_batches"),
    ):
        with pytest.raises(ValueError, match=match):
            StreamLoader(data, **kwargs)
    with pytest.raises(ValueError, match="epoch"):
        stream.set_epoch(-1)


class Items(Dataset):
    def __init__(self, items: list) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> object:
        return self.items[i]


def test_adapter_accepts_tensors_arrays_and_pil_images() -> None:
    images, labels = images_and_labels(3)
    hwc = [im.permute(1, 2, 0).numpy() for im in images]
    for items in (
        [(im, int(y)) for im, y in zip(images, labels, strict=True)],
        [(im.float() / 255, y) for im, y in zip(images, labels, strict=True)],
        [(a, np.int64(y)) for a, y in zip(hwc, labels, strict=True)],
        [(Image.fromarray(a), int(y)) for a, y in zip(hwc, labels, strict=True)],
    ):
        data = DatasetImages(Items(items))
        assert data.shape == (3, 5, 4) and data.has_labels
        got, got_labels = materialize(data, data.shape, data.dtype)
        want = images if data.dtype == torch.uint8 else images.float() / 255
        assert torch.equal(got, want) and torch.equal(got_labels, labels)


def test_adapter_without_labels_and_grayscale() -> None:
    data = DatasetImages(Items([torch.zeros(6, 7, dtype=torch.uint8)] * 2))
    assert data.shape == (1, 6, 7) and not data.has_labels and data[1][1] == -1


@pytest.mark.parametrize(
    ("items", "error", "match"),
    [
        (["not an image"], TypeError, "must be a torch.Tensor, a numpy array or a PIL"),
        ([(torch.zeros(1, 2, 2), 1.5)], TypeError, "label must be an integer"),
        ([(torch.zeros(1, 2, 2), -3)], ValueError, "labels must be >= 0"),
        ([torch.full((1, 2, 2), 2.0)], ValueError, r"finite and in \[0, 1\]"),
        ([torch.zeros(2, 2, 2, 2)], ValueError, r"shape \(H, W\) or \(C, H, W\)"),
        ([], ValueError, "empty"),
    ],
)
def test_adapter_bad_items(items: list, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        DatasetImages(Items(items))


def test_adapter_items_of_another_shape_or_labelling() -> None:
    data = DatasetImages(Items([torch.zeros(1, 2, 2), torch.zeros(1, 3, 3)]))
    with pytest.raises(ValueError, match=r"item 1 of the dataset .* shape \(1, 3, 3\)"):
        data[1]
    mixed = DatasetImages(Items([(torch.zeros(1, 2, 2), 0), torch.zeros(1, 2, 2)]))
    with pytest.raises(ValueError, match="some items have labels"):
        mixed[1]
    with pytest.raises(TypeError, match="map-style Dataset"):
        DatasetImages(iter([]))


def test_trainer_trains_on_a_stream_loader() -> None:
    images, labels = images_and_labels(32)
    stream = StreamLoader(
        DatasetImages(TensorDataset(images, labels)), batch_size=8, shuffle=True, flatten=True
    )
    model = VAE(Encoder(60, 16, 2), Decoder(2, 16, 60))
    trainer = Trainer(model, device="cpu", seed=0)
    trainer.fit(stream, epochs=2)
    assert trainer.epoch == 2 and stream.epoch == 2
    assert trainer.global_step == 8


def test_the_trainer_shards_a_stream_loader_like_a_tensor_loader() -> None:
    images, labels = images_and_labels()
    data = DatasetImages(TensorDataset(images, labels))
    for rank in range(3):
        stream = shard_loader(StreamLoader(data, 4, shuffle=True), 4, True, rank, 3, 0)
        memory = shard_loader(TensorLoader(images, labels, 4, shuffle=True), 4, True, rank, 3, 0)
        assert isinstance(stream, StreamLoader) and (stream.rank, stream.world_size) == (rank, 3)
        assert len(stream) == len(memory) == 2
        assert same(list(stream), list(memory))
    built_for_one = StreamLoader(data, 4, rank=1, world_size=2)
    with pytest.raises(ValueError, match="StreamLoader was built for rank 1 of 2"):
        shard_loader(built_for_one, 4, True, 0, 2, 0)
