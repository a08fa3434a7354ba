"""load_image_data: every kind of spec, splits, memory or streaming, one result shape."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

from torchvae.data import TensorLoader
from torchvae.data import images as imagedata
from torchvae.data.images import ImageSplit, load_image_data, split_indices
from torchvae.data.streaming import StreamLoader


def write_folder(root: Path, classes: dict[str, int], size: tuple[int, int] = (8, 8)) -> Path:
    rng = np.random.default_rng(0)
    for cls, n in classes.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            array = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(array).save(root / cls / f"{i:03d}.png")
    return root


def batches(loader: TensorLoader | StreamLoader) -> list:
    return list(loader)


def test_folder_in_memory_and_streaming_give_the_same_images(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "f", {"a": 7, "b": 6})
    memory = load_image_data(f"folder:{root}", storage="memory", test_fraction=0.2)
    stream = load_image_data(f"folder:{root}", storage="stream", test_fraction=0.2)
    assert memory.in_memory and not stream.in_memory
    assert (
        repr(stream) == f"ImageSplit('folder:{root} (train)', 10 x (3, 8, 8), streaming, 2 classes)"
    )
    assert memory.shape == stream.shape == (3, 8, 8)
    assert memory.classes == stream.classes == ("a", "b")
    assert len(memory) == len(stream) == 10
    assert memory.images is not None and memory.images.dtype == torch.uint8
    assert memory.labels is not None and memory.labels.dtype == torch.int64
    assert stream.dataset is not None
    for i in range(len(stream)):
        image, label = stream.dataset[i]
        assert torch.equal(image, memory.images[i]) and label == int(memory.labels[i])
    options = {"batch_size": 3, "shuffle": True, "dequantize": True, "seed": 4}
    a, b = memory.loader(**options), stream.loader(**options, num_workers=2)
    assert isinstance(a, TensorLoader) and isinstance(b, StreamLoader)
    for _ in range(2):
        got_a, got_b = batches(a), batches(b)
        assert len(got_a) == len(got_b) == 4
        for (xa, ya), (xb, yb) in zip(got_a, got_b, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_folder_split_is_deterministic_disjoint_and_complete(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "f", {"a": 10, "b": 10})
    train = load_image_data(root, split="train", test_fraction=0.25, split_seed=3)
    test = load_image_data(root, split="test", test_fraction=0.25, split_seed=3)
    again = load_image_data(root, split="test", test_fraction=0.25, split_seed=3)
    other = load_image_data(root, split="test", test_fraction=0.25, split_seed=4)
    assert len(train) == 15 and len(test) == 5
    assert train.images is not None and test.images is not None
    assert torch.equal(test.images, again.images)  # type: ignore[arg-type]
    assert not torch.equal(test.images, other.images)  # type: ignore[arg-type]
    every = {bytes(im.flatten().tolist()) for im in torch.cat([train.images, test.images])}
    assert len(every) == 20


def test_folder_with_train_and_test_sub_folders(tmp_path: Path) -> None:
    write_folder(tmp_path / "d" / "train", {"cat": 3, "dog": 2})
    write_folder(tmp_path / "d" / "test", {"dog": 2})
    train = load_image_data(f"folder:{tmp_path / 'd'}", split="train")
    test = load_image_data(f"folder:{tmp_path / 'd'}", split="test")
    assert len(train) == 5 and len(test) == 2
    assert test.classes == ("cat", "dog") and test.labels is not None
    assert test.labels.tolist() == [1, 1]


def test_unlabelled_folder_yields_x_alone(tmp_path: Path) -> None:
    root = tmp_path / "u"
    root.mkdir()
    for i in range(5):
        Image.new("L", (6, 6), color=i * 40).save(root / f"{i}.png")
    for storage in ("memory", "stream"):
        data = load_image_data(root, storage=storage, test_fraction=0.2)  # type: ignore[arg-type]
        assert data.labels is None and data.classes is None and data.shape == (1, 6, 6)
        x = next(iter(data.loader(batch_size=2)))
        assert isinstance(x, torch.Tensor) and x.shape == (2, 1, 6, 6)


def test_folder_resize_crop_and_channels_pass_through(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "f", {"a": 4}, size=(12, 20))
    data = load_image_data(root, resize=10, crop=(8, 8), channels=1, test_fraction=0.25)
    assert data.shape == (1, 8, 8) and data.images is not None
    assert data.images.shape == (3, 1, 8, 8)


def test_random_crop_streams(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "f", {"a": 4}, size=(12, 12))
    data = load_image_data(root, crop=8, random_crop=True, test_fraction=0.25)
    assert not data.in_memory and data.shape == (3, 8, 8)
    with pytest.raises(ValueError, match="needs storage='stream'"):
        load_image_data(root, crop=8, random_crop=True, storage="memory")


def test_memory_estimate_decides_and_explains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_folder(tmp_path / "f", {"a": 10})
    need = 9 * 3 * 8 * 8
    assert load_image_data(root, max_memory=need).in_memory
    assert not load_image_data(root, max_memory=need - 1).in_memory
    with pytest.raises(MemoryError, match=r"9 images of shape \(3, 8, 8\) need .* GiB"):
        load_image_data(root, storage="memory", max_memory=need - 1)
    monkeypatch.setattr(imagedata, "_available_memory", lambda: 2 * need - 2)
    assert not load_image_data(root).in_memory
    with pytest.raises(MemoryError, match="half the memory available now"):
        load_image_data(root, storage="memory")
    monkeypatch.setattr(imagedata, "_available_memory", lambda: None)
    assert load_image_data(root).in_memory


def test_available_memory_is_a_positive_number_here() -> None:
    free = imagedata._available_memory()
    assert free is None or free > 0


def test_tensor_file_with_and_without_splits(tmp_path: Path) -> None:
    images = torch.randint(0, 256, (20, 4, 4, 3), dtype=torch.uint8)
    np.savez(tmp_path / "all.npz", images=images.numpy(), labels=np.arange(20))
    train = load_image_data(f"file:{tmp_path / 'all.npz'}", split="train", test_fraction=0.1)
    test = load_image_data(f"file:{tmp_path / 'all.npz'}", split="test", test_fraction=0.1)
    assert (len(train), len(test), train.shape) == (18, 2, (3, 4, 4))
    assert train.labels is not None and test.labels is not None
    labels = sorted(train.labels.tolist() + test.labels.tolist())
    assert labels == list(range(20))
    assert test.images is not None
    assert torch.equal(test.images[0], images[test.labels[0]].permute(2, 0, 1))
    torch.save({"x_train": images[:15], "x_test": images[15:]}, tmp_path / "s.pt")
    assert len(load_image_data(tmp_path / "s.pt", split="test", layout="NHWC")) == 5


def test_any_dataset(tmp_path: Path) -> None:
    images = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    dataset = TensorDataset(images.float() / 255, torch.arange(10))
    memory = load_image_data(dataset, test_fraction=0.2)
    stream = load_image_data(dataset, test_fraction=0.2, storage="stream")
    assert memory.images is not None and memory.images.dtype == torch.uint8
    assert len(memory) == len(stream) == 8 and memory.shape == stream.shape == (3, 4, 4)
    (xa, ya), (xb, yb) = next(iter(memory.loader(8))), next(iter(stream.loader(8)))
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert torch.equal(xa, images[ya].float() / 255)


def write_idx(path: Path, data: torch.Tensor) -> None:
    header = bytes([0, 0, 0x08, data.dim()]) + struct.pack(f">{data.dim()}I", *data.shape)
    path.write_bytes(header + data.contiguous().numpy().tobytes())


def test_mnist_and_cifar_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCHVAE_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    for prefix, n in (("train", 6), ("t10k", 4)):
        write_idx(mnist / f"{prefix}-images-idx3-ubyte", torch.zeros(n, 28, 28, dtype=torch.uint8))
        write_idx(mnist / f"{prefix}-labels-idx1-ubyte", torch.arange(n, dtype=torch.uint8))
    data = load_image_data("mnist", root=mnist, split="test")
    assert data.shape == (1, 28, 28) and len(data) == 4 and data.labels is not None
    x, _ = next(iter(data.loader(batch_size=4, binarize="static")))
    assert x.shape == (4, 1, 28, 28)
    cifar = tmp_path / "cifar" / "cifar-10-batches-bin"
    cifar.mkdir(parents=True)
    record = bytes([3]) + bytes(range(256)) * 12
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (cifar / name).write_bytes(record * 2)
    data = load_image_data("cifar10", root=tmp_path / "cifar", split="train")
    assert data.shape == (3, 32, 32) and len(data) == 10 and data.classes is not None
    assert data.classes[3] == "cat" and data.labels is not None
    assert bool((data.labels == 3).all())


def test_bad_specs_and_options(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((5, 4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"unknown image data 'imagenet': give 'mnist'"):
        load_image_data("imagenet")
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_image_data("mnist", split="val")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="resize=64: not for cifar10"):
        load_image_data("cifar10", resize=64)
    with pytest.raises(ValueError, match="storage='stream': not for a tensor file"):
        load_image_data(tmp_path / "x.npy", storage="stream")
    with pytest.raises(ValueError, match="random_crop=True, layout='NHWC': not for a Dataset"):
        load_image_data(TensorDataset(torch.zeros(4, 1, 2, 2)), random_crop=True, layout="NHWC")
    with pytest.raises(FileNotFoundError, match="no image folder"):
        load_image_data(f"folder:{tmp_path / 'absent'}")
    with pytest.raises(FileNotFoundError, match="no tensor file"):
        load_image_data(f"file:{tmp_path / 'absent.npy'}")
    with pytest.raises(ValueError, match="leaves no test split"):
        load_image_data(tmp_path / "x.npy", split="test", test_fraction=0)
    with pytest.raises(ValueError, match="storage must be"):
        load_image_data(TensorDataset(torch.zeros(4, 1, 2, 2)), storage="disk")  # type: ignore[arg-type]
    root = write_folder(tmp_path / "f", {"a": 3})
    stream = load_image_data(root, storage="stream")
    with pytest.raises(ValueError, match="binarize='dynamic' needs the images in memory"):
        stream.loader(binarize="dynamic")


@pytest.mark.parametrize(("n", "fraction", "n_test"), [(10, 0.1, 1), (3, 0.01, 1), (2, 0.9, 1)])
def test_split_indices(n: int, fraction: float, n_test: int) -> None:
    train, test = split_indices(n, fraction, seed=0)
    assert len(test) == n_test and len(train) == n - n_test
    assert sorted(train.tolist() + test.tolist()) == list(range(n))
    assert train.tolist() == sorted(train.tolist())
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="test_fraction"):
            split_indices(n, bad)


def test_from_tensors_checks_like_a_file() -> None:
    split = ImageSplit.from_tensors(torch.zeros(4, 6, 6, 3, dtype=torch.uint8), torch.arange(4))
    assert split.shape == (3, 6, 6) and split.in_memory and len(split) == 4
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        ImageSplit.from_tensors(torch.zeros(4, 6, 6, dtype=torch.uint8), torch.arange(3))
