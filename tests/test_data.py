"""Tests of torchvae.data: IDX reading, dataset discovery, checksums and TensorLoader.

Every test works on small fake IDX files written into ``tmp_path``; the network, the real
``./MNIST_DATA`` and Debian's folder are patched away (except the one real-data test).
"""

from __future__ import annotations

import gzip
import hashlib
import tracemalloc
from pathlib import Path

import pytest
import torch

from torchvae.data import (
    MNIST,
    ChecksumError,
    DatasetNotFoundError,
    FashionMNIST,
    IDXFormatError,
    TensorLoader,
    _idx,
    load_dataset,
    mnist_loaders,
    read_idx,
)

FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
REAL_FASHION = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(t: torch.Tensor) -> bytes:
    """Serialise a uint8 tensor as an IDX file, independently of the reader under test."""
    header = bytes([0, 0, 8, t.dim()]) + b"".join(s.to_bytes(4, "big") for s in t.shape)
    return header + t.contiguous().numpy().tobytes()


def write(path: Path, t: torch.Tensor, compress: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(t)
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def fake_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,), generator=g, dtype=torch.uint8)
    return images, labels


def write_dataset(folder: Path, compress: bool) -> dict[bool, tuple[torch.Tensor, torch.Tensor]]:
    splits = {True: fake_split(12, 0), False: fake_split(7, 1)}
    for train, (images, labels) in splits.items():
        prefix = "train" if train else "t10k"
        write(folder / f"{prefix}-images-idx3-ubyte", images, compress)
        write(folder / f"{prefix}-labels-idx1-ubyte", labels, compress)
    return splits


@pytest.fixture(autouse=True)
def isolated(offline: Path) -> Path:
    """Every test here runs offline (see ``conftest.offline``)."""
    return offline


# --- IDX reading ---------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("shape", [(5,), (3, 4, 2), (0, 28, 28)])
def test_read_idx_round_trip(tmp_path: Path, compress: bool, shape: tuple[int, ...]) -> None:
    t = torch.randint(0, 256, shape, dtype=torch.uint8)
    path = write(tmp_path / "x-ubyte", t, compress)
    out = read_idx(path)
    assert out.dtype == torch.uint8
    assert torch.equal(out, t)


def test_read_idx_compression_from_content_not_name(tmp_path: Path) -> None:
    t = torch.arange(6, dtype=torch.uint8)
    path = tmp_path / "misnamed.gz"
    path.write_bytes(idx_bytes(t))
    assert torch.equal(read_idx(path), t)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "not an IDX file"),
        (b"\x01\x02\x08\x01\x00\x00\x00\x01\x05", "not an IDX file"),
        (bytes([0, 0, 0x0D, 1, 0, 0, 0, 1]) + b"abcd", "type 0x0d"),
        (bytes([0, 0, 8, 3, 0, 0, 0, 2]), "truncated.*header"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]), "truncated.*expected 5 bytes.*got 2"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 2, 1, 2, 3]), "size mismatch"),
    ],
)
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_malformed(tmp_path: Path, data: bytes, match: str, compress: bool) -> None:
    path = tmp_path / "bad-ubyte"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(IDXFormatError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_truncated_gzip(tmp_path: Path) -> None:
    t = torch.randint(0, 256, (50, 28, 28), dtype=torch.uint8)
    data = gzip.compress(idx_bytes(t))
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IDXFormatError, match="corrupt or truncated gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((20_000, 100, 100), r"expected 200000000 bytes|at most"),  # 200 MB claimed
        ((2**32 - 1,) * 3, r"expected \d+ bytes|at most"),  # more than any memory
    ],
)
def test_a_header_claiming_more_than_the_file_holds_allocates_nothing(
    tmp_path: Path, compress: bool, shape: tuple[int, ...], match: str
) -> None:
    header = bytes([0, 0, 8, len(shape)]) + b"".join(s.to_bytes(4, "big") for s in shape)
    path = tmp_path / "liar-ubyte"
    path.write_bytes(gzip.compress(header) if compress else header)
    tracemalloc.start()
    try:
        with pytest.raises(IDXFormatError, match=match) as info:
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value)
    assert peak < 4 * 2**20, f"{peak} bytes allocated for a {len(header)}-byte header"


def test_gzip_whose_trailer_does_not_give_the_length_still_reads(tmp_path: Path) -> None:
    t = torch.randint(0, 256, (40, 5, 5), dtype=torch.uint8)
    data = idx_bytes(t)
    path = tmp_path / "two-members-ubyte"
    path.write_bytes(gzip.compress(data[:300]) + gzip.compress(data[300:]))  # as `cat a.gz b.gz`
    assert torch.equal(read_idx(path), t)


# --- finding the files -----------------------------------------------------------------------


def layouts(tmp: Path) -> dict[str, tuple[Path, dict[str, object]]]:
    """Layout name -> (folder to write into, how to point load_dataset at it)."""
    return {
        "torchvision": (tmp / "root" / "MNIST" / "raw", {"root": tmp / "root"}),
        "flat": (tmp / "flat", {"root": str(tmp / "flat")}),
        "env-var": (tmp / "env" / "MNIST" / "raw", {"env": tmp / "env"}),
        "env-var-flat": (tmp / "envflat", {"env": tmp / "envflat"}),
        "MNIST_DATA": (Path("MNIST_DATA"), {}),
        "MNIST_DATA-torchvision": (Path("MNIST_DATA") / "MNIST" / "raw", {}),
    }


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    "layout",
    ["torchvision", "flat", "env-var", "env-var-flat", "MNIST_DATA", "MNIST_DATA-torchvision"],
)
def test_mnist_found_in_each_layout(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, layout: str, compress: bool
) -> None:
    folder, how = layouts(isolated)[layout]
    splits = write_dataset(folder, compress)
    if "env" in how:
        monkeypatch.setenv("TORCHVAE_DATA_DIR", str(how.pop("env")))
    root = how.get("root")
    for train in (True, False):
        ds = MNIST(root=root, train=train)  # type: ignore[arg-type]
        images, labels = splits[train]
        assert ds.data.dtype == torch.uint8
        assert ds.targets.dtype == torch.int64
        assert torch.equal(ds.data, images)
        assert torch.equal(ds.targets, labels.long())
        assert len(ds) == len(images)
        x, y = ds[3]
        assert x.shape == (1, 28, 28)
        assert x.dtype == torch.float32
        assert torch.equal(x, images[3].float().unsqueeze(0) / 255)
        assert y == int(labels[3])
        assert isinstance(y, int)


def test_fashion_mnist_layouts_and_debian_folder(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    splits = write_dataset(isolated / "debian-fashion-mnist", compress=True)
    assert torch.equal(FashionMNIST(train=False).data, splits[False][0])
    other = write_dataset(isolated / "r" / "FashionMNIST" / "raw", compress=False)
    assert torch.equal(FashionMNIST(root=isolated / "r").data, other[True][0])


def test_flat_mnist_data_is_not_taken_for_fashion(isolated: Path) -> None:
    write_dataset(Path("MNIST_DATA"), compress=False)
    with pytest.raises(DatasetNotFoundError):
        FashionMNIST()
    write_dataset(Path("MNIST_DATA") / "FashionMNIST" / "raw", compress=False)
    assert len(FashionMNIST()) == 12


def test_root_searched_before_env_and_mnist_data(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write_dataset(isolated / "first", compress=False)
    write_dataset(isolated / "env", compress=False)
    write_dataset(Path("MNIST_DATA"), compress=False)
    four = fake_split(4, 9)
    write(isolated / "env" / FILES[0], four[0], compress=False)
    write(isolated / "env" / FILES[1], four[1], compress=False)
    monkeypatch.setenv("TORCHVAE_DATA_DIR", str(isolated / "env"))
    assert torch.equal(load_dataset("mnist", isolated / "first")[0], first[True][0])
    assert torch.equal(load_dataset("mnist")[0], four[0])


def test_missing_files_error_lists_places_and_remedies(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCHVAE_DATA_DIR", str(isolated / "env"))
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion-mnist", train=False)
    assert isinstance(info.value, FileNotFoundError)
    msg = str(info.value)
    for place in (
        isolated / "env" / "FashionMNIST" / "raw",
        isolated / "env",
        Path("MNIST_DATA").absolute() / "FashionMNIST" / "raw",
        isolated / "debian-fashion-mnist",
    ):
        assert f"- {place} (does not exist)" in msg, place
    for name in FILES:
        assert name in msg
    for remedy in ("download=True", "TORCHVAE_DATA_DIR", "apt-get install dataset-fashion-mnist"):
        assert remedy in msg
    assert "root=" in msg


@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_an_explicit_folder_is_the_only_place_looked_in(isolated: Path, layout: str) -> None:
    write_dataset(isolated / "debian-fashion-mnist", compress=True)  # complete elsewhere
    write_dataset(Path("MNIST_DATA") / "FashionMNIST" / "raw", compress=False)
    root = isolated / "mine"
    folder = root if layout == "flat" else root / "FashionMNIST" / "raw"
    mine = fake_split(5, 3)
    write(folder / FILES[0], mine[0], compress=True)
    write(folder / FILES[1], mine[1], compress=False)
    assert torch.equal(load_dataset("fashion-mnist", root)[0], mine[0])
    for call in (
        lambda: load_dataset("fashion-mnist", root, train=False),
        lambda: mnist_loaders(root, dataset="fashion-mnist"),
    ):
        with pytest.raises(DatasetNotFoundError) as info:
            call()
        msg = str(info.value)
        assert str(folder.absolute()) in msg and "not the test split" in msg
        assert "missing t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte" in msg
        assert "debian" not in msg and "MNIST_DATA" not in msg


def test_a_missing_explicit_folder_is_an_error_even_with_data_elsewhere(isolated: Path) -> None:
    write_dataset(isolated / "debian-fashion-mnist", compress=True)
    write_dataset(Path("MNIST_DATA"), compress=False)
    for name in ("mnist", "fashion-mnist"):
        for train in (True, False):
            with pytest.raises(DatasetNotFoundError, match=r"nonexistent \(does not exist\)"):
                load_dataset(name, isolated / "nonexistent", train=train)


def test_the_default_search_never_mixes_folders(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_dataset(Path("MNIST_DATA"), compress=False)  # complete, but searched after the env
    partial = isolated / "env"
    write(partial / FILES[2], fake_split(3, 0)[0], compress=True)
    write(partial / FILES[3], fake_split(3, 0)[1], compress=True)
    monkeypatch.setenv("TORCHVAE_DATA_DIR", str(partial))
    assert len(load_dataset("mnist", train=False)[0]) == 3
    with pytest.raises(DatasetNotFoundError, match=r"missing train-images-idx3-ubyte"):
        load_dataset("mnist", train=True)


def test_unknown_dataset_name_lists_known_ones() -> None:
    with pytest.raises(ValueError, match=r"\['fashion-mnist', 'mnist'\].*'cifar10'"):
        load_dataset("cifar10")
    with pytest.raises(ValueError, match="dataset must be one of"):
        mnist_loaders(dataset="kmnist")


def test_image_label_count_mismatch(isolated: Path) -> None:
    write_dataset(isolated / "d", compress=False)
    write(isolated / "d" / FILES[1], torch.zeros(11, dtype=torch.uint8), compress=False)
    with pytest.raises(ValueError, match=r"12 images but .* 11 labels"):
        load_dataset("mnist", isolated / "d")


# --- checksums -------------------------------------------------------------------------------


SMALL_IMAGES = torch.zeros(10000, 2, 2, dtype=torch.uint8)  # not of the official length


def official_length_labels(seed: int) -> torch.Tensor:
    return torch.randint(0, 10, (10000,), generator=torch.Generator().manual_seed(seed)).byte()


@pytest.mark.parametrize("compress", [False, True])
def test_official_length_file_with_wrong_checksum(isolated: Path, compress: bool) -> None:
    folder = isolated / "d"
    write(folder / FILES[2], SMALL_IMAGES, compress)
    path = write(folder / FILES[3], official_length_labels(0), compress)
    got = hashlib.md5(idx_bytes(official_length_labels(0))).hexdigest()
    with pytest.raises(ChecksumError) as info:
        load_dataset("mnist", folder, train=False)
    msg = str(info.value)
    assert str(path) in msg
    assert "27ae3e4e09519cfbb04c329615203637" in msg  # the official MD5 of t10k-labels
    assert got in msg
    assert "verify=False" in msg
    _, labels = load_dataset("mnist", folder, train=False, verify=False)
    assert torch.equal(labels, official_length_labels(0).long())


def test_official_file_of_the_other_dataset_is_named(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = isolated / "d"
    write(folder / FILES[2], SMALL_IMAGES, compress=False)
    write(folder / FILES[3], official_length_labels(1), compress=False)
    content = hashlib.md5(idx_bytes(official_length_labels(1))).hexdigest()
    monkeypatch.setitem(_idx.CONTENT_MD5["MNIST"], FILES[3], content)
    assert load_dataset("mnist", folder, train=False)[1].shape == (10000,)
    with pytest.raises(ChecksumError, match="it holds MNIST, not Fashion-MNIST"):
        load_dataset("fashion-mnist", folder, train=False)


# --- download --------------------------------------------------------------------------------


def test_download_only_when_asked_and_checked(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = {
        name: gzip.compress(idx_bytes(t))
        for name, t in zip(FILES, fake_split(5, 2) * 2, strict=True)
    }
    urls: list[str] = []

    def fake_fetch(url: str) -> bytes:
        urls.append(url)
        return served[url.rsplit("/", 1)[1].removesuffix(".gz")]

    monkeypatch.setattr(_idx, "_fetch", fake_fetch)
    with pytest.raises(DatasetNotFoundError):
        MNIST(root=isolated / "dl")
    assert urls == []
    with pytest.raises(DatasetNotFoundError, match="checksum mismatch: expected md5 f68b3c2d"):
        MNIST(root=isolated / "dl", download=True)
    raw = isolated / "dl" / "MNIST" / "raw"
    assert not list(raw.glob("*.gz")), "files with a wrong checksum must not be kept"
    assert urls[0] == "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz"
    for name, data in served.items():
        monkeypatch.setitem(_idx.GZIP_MD5["MNIST"], name, hashlib.md5(data).hexdigest())
    ds = MNIST(root=isolated / "dl", download=True)
    assert torch.equal(ds.data, fake_split(5, 2)[0])
    assert sorted(p.name for p in raw.iterdir()) == sorted(f"{n}.gz" for n in FILES)
    urls.clear()
    MNIST(root=isolated / "dl", train=False, download=True)
    assert urls == [], "present files are not downloaded again"


def test_download_failure_is_reported(isolated: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"(?s)Download failed.*network disabled"):
        FashionMNIST(download=True)
    assert (Path("MNIST_DATA") / "FashionMNIST" / "raw").is_dir()


# --- TensorLoader ----------------------------------------------------------------------------


def images_and_labels(n: int = 23) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.randint(0, 256, (n, 28, 28), generator=torch.Generator().manual_seed(0))
    return images.byte(), torch.arange(n)


def test_loader_shapes_dtypes_and_values() -> None:
    images, labels = images_and_labels()
    loader = TensorLoader(images, labels, batch_size=10, device="cpu")
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    assert [x.shape for x, _ in batches] == [(10, 1, 28, 28)] * 2 + [(3, 1, 28, 28)]
    x = torch.cat([b[0] for b in batches])
    assert x.dtype == torch.float32
    assert torch.equal(x, images.float().unsqueeze(1) / 255)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert torch.equal(torch.cat([b[1] for b in batches]), labels)
    assert loader.dataset_size == 23 and loader.batch_size == 10


def test_loader_flatten_drop_last_and_no_targets() -> None:
    images, _ = images_and_labels()
    loader = TensorLoader(images, batch_size=10, flatten=True, drop_last=True)
    batches = list(loader)
    assert len(loader) == len(batches) == 2
    assert all(isinstance(x, torch.Tensor) and x.shape == (10, 784) for x in batches)


def test_loader_accepts_float_and_channel_images() -> None:
    x = torch.rand(6, 3, 4, 4)
    out = torch.cat(list(TensorLoader(x, batch_size=4)))  # type: ignore[arg-type]
    assert torch.equal(out, x)


def test_shuffle_is_a_function_of_seed_and_epoch() -> None:
    images, labels = images_and_labels()

    def order(seed: int, epoch: int) -> torch.Tensor:
        loader = TensorLoader(images, labels, batch_size=5, shuffle=True, seed=seed)
        loader.set_epoch(epoch)
        return torch.cat([y for _, y in loader])

    assert torch.equal(order(0, 3), order(0, 3))
    assert not torch.equal(order(0, 3), order(0, 4))
    assert not torch.equal(order(0, 3), order(1, 3))
    assert torch.equal(order(0, 3).sort().values, labels)
    loader = TensorLoader(images, labels, batch_size=5, shuffle=True)
    first, second = (torch.cat([y for _, y in loader]) for _ in range(2))
    assert torch.equal(first, order(0, 0)) and torch.equal(second, order(0, 1))
    assert loader.epoch == 2
    it = iter(loader)
    loader.set_epoch(0)
    assert torch.equal(torch.cat([y for _, y in it]), order(0, 2)), "epoch fixed at iter()"


def test_unshuffled_order_is_the_data_order() -> None:
    images, labels = images_and_labels()
    loader = TensorLoader(images, labels, batch_size=4)
    loader.set_epoch(7)
    assert torch.equal(torch.cat([y for _, y in loader]), labels)


def test_dynamic_binarization_resamples_each_epoch() -> None:
    images, _ = images_and_labels(200)
    loader = TensorLoader(images, batch_size=50, binarize="dynamic", seed=3)
    epochs = []
    for epoch in (0, 1, 0):
        loader.set_epoch(epoch)
        epochs.append(torch.cat(list(loader)))  # type: ignore[arg-type]
    assert set(torch.unique(epochs[0]).tolist()) <= {0.0, 1.0}
    assert not torch.equal(epochs[0], epochs[1])
    assert torch.equal(epochs[0], epochs[2])
    mean_p = images.float().mean() / 255
    assert abs(float(epochs[1].mean()) - float(mean_p)) < 0.01


def test_static_binarization_is_fixed() -> None:
    images, labels = images_and_labels(200)
    loader = TensorLoader(images, labels, batch_size=50, binarize="static", seed=3, shuffle=True)

    def by_label() -> torch.Tensor:
        xs, ys = zip(*loader, strict=True)
        return torch.cat(xs)[torch.cat(ys).argsort()]

    a, b = by_label(), by_label()
    assert set(torch.unique(a).tolist()) <= {0.0, 1.0}
    assert torch.equal(a, b)
    again = TensorLoader(images, labels, batch_size=50, binarize="static", seed=3)
    assert torch.equal(torch.cat([x for x, _ in again]), a)
    other = TensorLoader(images, labels, batch_size=50, binarize="static", seed=4)
    assert not torch.equal(torch.cat([x for x, _ in other]), a)


@pytest.mark.parametrize(("n", "world_size"), [(23, 4), (24, 4), (5, 3), (2, 3)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_sharding_covers_the_data_with_equal_batch_counts(
    n: int, world_size: int, shuffle: bool
) -> None:
    images, labels = images_and_labels(n)
    per_rank = []
    for rank in range(world_size):
        loader = TensorLoader(
            images, labels, batch_size=2, shuffle=shuffle, seed=1, rank=rank, world_size=world_size
        )
        loader.set_epoch(5)
        per_rank.append([y for _, y in loader])
        assert len(per_rank[-1]) == len(loader)
    assert len({len(batches) for batches in per_rank}) == 1
    seen = torch.cat([torch.cat(b) for b in per_rank])
    padded = -(-n // world_size) * world_size
    assert len(seen) == padded
    assert set(seen.tolist()) == set(range(n))
    if padded == n:
        assert sorted(seen.tolist()) == list(range(n)), "disjoint when n divides evenly"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"binarize": "yes"}, ValueError, "binarize"),
        ({"rank": 2, "world_size": 2}, ValueError, "rank"),
        ({"world_size": 0}, ValueError, "world_size"),
        ({"targets": torch.zeros(3)}, ValueError, "targets"),
        ({"images": torch.zeros(4, 2, dtype=torch.int64)}, TypeError, "images"),
        ({"images": [1, 2]}, TypeError, "images"),
        ({"seed": 1.5}, TypeError, "seed"),
    ],
)
def test_loader_rejects_bad_arguments(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    args: dict[str, object] = {"images": torch.zeros(4, 28, 28, dtype=torch.uint8), **kwargs}
    with pytest.raises(error, match=match):
        TensorLoader(**args)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="epoch"):
        TensorLoader(torch.zeros(4, 2)).set_epoch(-1)


def test_mnist_loaders_textbook_defaults(isolated: Path) -> None:
    splits = write_dataset(isolated / "d", compress=True)
    train, test = mnist_loaders(isolated / "d", batch_size=5, flatten=True, binarize="dynamic")
    assert train.shuffle and not test.shuffle
    assert (train.batch_size, test.batch_size) == (5, 5)
    assert train.binarize == "dynamic" and test.binarize == "static"
    x, y = next(iter(train))
    assert x.shape == (5, 784) and y.dtype == torch.int64
    assert torch.equal(torch.cat([y for _, y in test]), splits[False][1].long())
    default_train, _ = mnist_loaders(isolated / "d")
    assert default_train.batch_size == 100 and default_train.binarize == "none"
    with pytest.raises(ValueError, match="test_batch_size"):
        mnist_loaders(isolated / "d", test_batch_size=0)


# --- real data -------------------------------------------------------------------------------


@pytest.mark.skipif(
    not (REAL_FASHION / "t10k-images-idx3-ubyte.gz").is_file(),
    reason="Debian's Fashion-MNIST is absent (apt-get install dataset-fashion-mnist)",
)
def test_real_fashion_mnist_from_debian(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_idx, "_DEBIAN_FASHION_MNIST", REAL_FASHION)
    train, test = FashionMNIST(train=True), FashionMNIST(train=False)
    assert train.data.shape == (60000, 28, 28) and test.data.shape == (10000, 28, 28)
    assert train.data.dtype == torch.uint8 and train.targets.dtype == torch.int64
    assert sorted(torch.unique(train.targets).tolist()) == list(range(10))
    assert torch.bincount(test.targets).tolist() == [1000] * 10


@pytest.mark.parametrize("binarize", ["dynamic", "static"])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float64])
def test_binarization_keeps_black_and_white_and_the_mean(binarize: str, dtype: torch.dtype) -> None:
    images = torch.zeros(100, 28, 28, dtype=torch.uint8)
    images[:, :10] = 255
    images[:, 10:20] = 51  # p = 0.2
    data = images if dtype == torch.uint8 else images.to(dtype) / 255
    loader = TensorLoader(data, batch_size=30, binarize=binarize, seed=5)  # type: ignore[arg-type]
    x = torch.cat(list(loader))  # type: ignore[arg-type]
    assert x.dtype == torch.float32
    assert torch.all(x[:, :, :10] == 1) and torch.all(x[:, :, 20:] == 0)
    assert abs(float(x[:, :, 10:20].mean()) - 0.2) < 0.01


def test_max_batches_limits_each_epoch_to_its_first_batches() -> None:
    images = torch.randint(0, 256, (50, 28, 28), dtype=torch.uint8)
    full = TensorLoader(images, batch_size=8, shuffle=True, seed=3)
    head = TensorLoader(images, batch_size=8, shuffle=True, seed=3, max_batches=2)
    assert (len(full), len(head)) == (7, 2)
    for epoch in (0, 1):
        full.set_epoch(epoch)
        head.set_epoch(epoch)
        got, want = list(head), list(full)[:2]
        assert len(got) == 2 and all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    with pytest.raises(ValueError, match="max_batches"):
        TensorLoader(images, max_batches=0)
