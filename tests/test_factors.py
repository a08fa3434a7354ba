"""Factor data sets: indexing both ways, sampling, the generated sprites, the file readers."""

from __future__ import annotations

import importlib.util
import math
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from torchvae import (
    DatasetNotFoundError,
    DSprites,
    Shapes3D,
    Sprites,
    TensorFactorDataset,
    load_factor_dataset,
    load_sprites,
)

SPRITES = Sprites()


def _grid(sizes: tuple[int, ...]) -> torch.Tensor:
    return torch.cartesian_prod(*(torch.arange(s) for s in sizes)).view(-1, len(sizes))


# ----------------------------------------------------------------------------- interface


@given(st.lists(st.integers(0, len(SPRITES) - 1), min_size=1, max_size=20))
def test_index_and_factors_are_inverse(indices: list[int]) -> None:
    index = torch.tensor(indices)
    factors = SPRITES.factors_of(index)
    assert torch.equal(SPRITES.index_of(factors), index)
    assert (factors >= 0).all() and (factors < torch.tensor(SPRITES.factor_sizes)).all()


def test_index_order_is_row_major_last_factor_fastest() -> None:
    assert SPRITES.factors_of(torch.tensor([0, 1, 32, len(SPRITES) - 1])).tolist() == [
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 1, 0],
        [2, 5, 39, 31, 31],
    ]


def test_sample_factors_is_uniform_and_deterministic() -> None:
    a = SPRITES.sample_factors(20000, torch.Generator().manual_seed(3))
    b = SPRITES.sample_factors(20000, 3)
    assert torch.equal(a, b) and a.dtype == torch.int64 and a.shape == (20000, 5)
    for k, size in enumerate(SPRITES.factor_sizes):
        counts = torch.bincount(a[:, k], minlength=size).double()
        assert counts.numel() == size
        assert (counts / 20000 - 1 / size).abs().max() < 4 * math.sqrt(1 / size / 20000) + 1e-3
    assert not torch.equal(a, SPRITES.sample_factors(20000, 4))


def test_bad_factors_and_indices_are_named() -> None:
    with pytest.raises(ValueError, match=r"factors\[0, 2\] = 40 .* 'rotation'"):
        SPRITES.images_for(torch.tensor([[0, 0, 40, 0, 0]]))
    with pytest.raises(ValueError, match=r"shape \(n, 5\)"):
        SPRITES.images_for(torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="integer tensor"):
        SPRITES.images_for(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="index values"):
        SPRITES.images_at(torch.tensor([len(SPRITES)]))
    with pytest.raises(ValueError, match="n must be"):
        SPRITES.sample_factors(-1)
    with pytest.raises(TypeError, match="seed"):
        SPRITES.sample_factors(2, "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exceeds"):
        TensorFactorDataset(torch.zeros(2, 1, dtype=torch.uint8), torch.tensor([[0], [1]])).tensors(
            n=3
        )


def test_tensor_factor_dataset_any_row_order() -> None:
    factors = _grid((2, 3, 4))
    perm = torch.randperm(24)
    images = (factors * torch.tensor([100, 10, 1])).sum(1).to(torch.uint8).view(24, 1)
    ds = TensorFactorDataset(images[perm], factors[perm], ("a", "b", "c"))
    assert ds.factor_sizes == (2, 3, 4) and len(ds) == 24
    assert torch.equal(ds.images_at(torch.arange(24)), images)
    x, f = ds[23]
    assert f.tolist() == [1, 2, 3] and x.item() == pytest.approx(123 / 255)
    with pytest.raises(ValueError, match="missing"):
        TensorFactorDataset(images[:-1], factors[:-1])
    with pytest.raises(ValueError, match="repeated"):
        TensorFactorDataset(images, torch.cat([factors[:-1], factors[:1]]))
    with pytest.raises(TypeError, match="uint8"):
        TensorFactorDataset(images.float(), factors)


# ----------------------------------------------------------------------------- sprites


def test_sprites_are_binary_deterministic_and_inside_the_image() -> None:
    extremes = torch.tensor(
        [
            [s, 5, r, x, y]
            for s in range(3)
            for r in range(0, 40, 3)
            for x in (0, 31)
            for y in (0, 31)
        ]
    )
    a = SPRITES.images_for(extremes)
    assert a.shape == (len(extremes), 1, 64, 64)
    assert torch.equal(a, Sprites().images_for(extremes))
    assert set(a.unique().tolist()) == {0.0, 1.0}
    assert (a.flatten(1).sum(1) > 20).all()
    border = a[..., 0, :].sum() + a[..., -1, :].sum() + a[..., :, 0].sum() + a[..., :, -1].sum()
    assert border == 0, "a sprite reaches the image border"


def _centroid(image: torch.Tensor) -> tuple[float, float]:
    rows, cols = image[0].nonzero(as_tuple=True)
    return float(rows.float().mean()), float(cols.float().mean())


def test_each_factor_changes_the_pixels_as_documented() -> None:
    base = torch.tensor([[0, 2, 0, 10, 10]])

    def image(**change: int) -> torch.Tensor:
        f = base.clone()
        for name, value in change.items():
            f[0, SPRITES.factor_names.index(name)] = value
        return SPRITES.images_for(f)[0]

    r0, c0 = _centroid(image())
    r1, c1 = _centroid(image(x=20))
    assert c1 - c0 == pytest.approx(10 * 0.52 * 64 / 31, abs=1.0) and abs(r1 - r0) < 0.5
    r2, c2 = _centroid(image(y=20))
    assert r2 - r0 == pytest.approx(10 * 0.52 * 64 / 31, abs=1.0) and abs(c2 - c0) < 0.5
    areas = [float(image(scale=s).sum()) for s in range(6)]
    assert areas == sorted(areas) and areas[-1] > 3 * areas[0]
    # A square's area is (2R)^2 pixels: R = 0.16 * 64 * scale.
    assert areas[5] == pytest.approx((2 * 0.16 * 64) ** 2, rel=0.1)
    assert torch.equal(image(rotation=10), image()), "a square turned by 90 degrees"
    assert not torch.equal(image(rotation=5), image())
    ellipse, heart = image(shape=1), image(shape=2)
    assert float(ellipse.sum()) == pytest.approx(math.pi * (0.16 * 0.7 * 64) ** 2 / 2, rel=0.1)
    assert torch.equal(image(shape=1, rotation=20), ellipse)
    assert not torch.equal(image(shape=2, rotation=20), heart), "a heart has no 2-fold symmetry"
    # The heart's point is at the bottom at rotation 0: more pixels in its upper half.
    rows = heart[0].nonzero()[:, 0].float()
    assert (rows < rows.mean()).sum() > (rows > rows.mean()).sum()


def test_tensors_and_load_sprites() -> None:
    images, factors = load_sprites(n=50, seed=1)
    assert images.dtype == torch.uint8 and images.shape == (50, 1, 64, 64)
    assert set(images.unique().tolist()) == {0, 255}
    assert torch.equal(images.float() / 255, SPRITES.images_for(factors))
    assert len(set(SPRITES.index_of(factors).tolist())) == 50
    again, _ = load_sprites(n=50, seed=1)
    assert torch.equal(images, again)
    sub, f = SPRITES.tensors(indices=[5, 0, 7], batch_size=2)
    assert f.tolist() == SPRITES.factors_of(torch.tensor([5, 0, 7])).tolist()
    assert torch.equal(sub, SPRITES.images_at(torch.tensor([5, 0, 7])))
    x, fac = SPRITES[-1]
    assert x.shape == (1, 64, 64) and fac.tolist() == [2, 5, 39, 31, 31]
    assert "737280 images" in repr(SPRITES)


# ----------------------------------------------------------------------------- dSprites


def _npy(array: torch.Tensor, descr: str) -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": tuple(array.shape)})
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    return (
        b"\x93NUMPY\x01\x00"
        + struct.pack("<H", len(header))
        + header.encode()
        + array.contiguous().numpy().tobytes()
    )


def _fake_dsprites(path: Path, sizes: tuple[int, ...] = (1, 3, 2, 2, 2, 3)) -> torch.Tensor:
    """A small file in dSprites' format; its images are sprites of the same factors."""
    classes = _grid(sizes)
    perm = torch.randperm(classes.shape[0], generator=torch.Generator().manual_seed(0))
    classes = classes[perm]
    images = SPRITES.images_at(SPRITES.index_of(classes[:, 1:])).div(255).to(torch.uint8)[:, 0]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("imgs.npy", _npy(images, "|u1"))
        archive.writestr("latents_classes.npy", _npy(classes, "<i8"))
        archive.writestr("latents_values.npy", _npy(classes.double() / 2, "<f8"))
    return classes


def test_dsprites_reads_a_fake_file(tmp_path: Path) -> None:
    path = tmp_path / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    classes = _fake_dsprites(path)
    ds = DSprites(tmp_path)
    assert ds.factor_names == ("shape", "scale", "rotation", "x", "y")
    assert ds.factor_sizes == (3, 2, 2, 2, 3) and ds.image_shape == (1, 64, 64)
    f = ds.sample_factors(10, 0)
    assert torch.equal(ds.images_for(f), SPRITES.images_for(f))
    assert torch.equal(DSprites(path).images_at(torch.arange(72)), ds.images_at(torch.arange(72)))
    images, factors = load_factor_dataset("dsprites", tmp_path).tensors()
    assert images.shape == (72, 1, 64, 64) and factors.shape == (72, 5)
    assert classes.shape == (72, 6)


def test_dsprites_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCHVAE_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"dSprites not found.*cannot download"):
        DSprites(tmp_path)
    bad = tmp_path / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"not a NumPy \.npz"):
        DSprites(tmp_path)
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("imgs.npy", _npy(torch.zeros(2, 64, 64, dtype=torch.uint8), "|u1"))
    with pytest.raises(ValueError, match="no array 'latents_classes'"):
        DSprites(bad)
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("imgs.npy", _npy(torch.zeros(2, 64, 64, dtype=torch.uint8), "|u1"))
        archive.writestr("latents_classes.npy", _npy(torch.zeros(2, 6, dtype=torch.long), "<i8"))
    with pytest.raises(ValueError, match="no factor varies"):
        DSprites(bad)
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("imgs.npy", _npy(torch.zeros(3, 64, 64, dtype=torch.uint8), "|u1"))
        classes = torch.tensor([[0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0]])
        archive.writestr("latents_classes.npy", _npy(classes, "<i8"))
    with pytest.raises(ValueError, match=r"exactly once.*1 repeated"):
        DSprites(bad)
    bad.unlink()
    monkeypatch.setenv("TORCHVAE_DATA_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(DatasetNotFoundError, match="elsewhere"):
        load_factor_dataset("dsprites")
    with pytest.raises(ValueError, match="unknown factor data set"):
        load_factor_dataset("mnist")


# ----------------------------------------------------------------------------- 3D Shapes

HAS_H5PY = importlib.util.find_spec("h5py") is not None


def _fake_shapes3d(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    import h5py

    sizes = (2, 2, 3, 2, 2, 2)
    classes = _grid(sizes)
    perm = torch.randperm(classes.shape[0], generator=torch.Generator().manual_seed(1))
    classes = classes[perm]
    labels = classes.double() * torch.tensor([0.1, 0.1, 0.1, 0.25, 1.0, 30.0]) + 0.75
    images = torch.randint(0, 256, (classes.shape[0], 64, 64, 3), dtype=torch.uint8)
    with h5py.File(path, "w") as f:
        f["images"] = images.numpy()
        f["labels"] = labels.numpy()
    return classes, images


@pytest.mark.skipif(not HAS_H5PY, reason="h5py is not installed (pip install 'torchvae[factors]')")
@pytest.mark.parametrize("in_memory", [False, True])
def test_shapes3d_reads_a_fake_file(tmp_path: Path, in_memory: bool) -> None:
    classes, images = _fake_shapes3d(tmp_path / "3dshapes.h5")
    ds = Shapes3D(tmp_path, in_memory=in_memory)
    assert ds.factor_sizes == (2, 2, 3, 2, 2, 2) and ds.image_shape == (3, 64, 64)
    assert ds.factor_names[0] == "floor_hue" and ds.factor_names[-1] == "orientation"
    got = ds.images_at(ds.index_of(classes[[5, 2, 5]]))
    assert torch.equal(got, images[[5, 2, 5]].permute(0, 3, 1, 2))
    assert ds.images_for(classes[:2]).dtype == torch.float32


@pytest.mark.skipif(not HAS_H5PY, reason="h5py is not installed (pip install 'torchvae[factors]')")
def test_shapes3d_errors(tmp_path: Path) -> None:
    import h5py

    with h5py.File(tmp_path / "3dshapes.h5", "w") as f:
        f["images"] = torch.zeros(2, 64, 64, 3, dtype=torch.uint8).numpy()
    with pytest.raises(ValueError, match="no dataset 'labels'"):
        Shapes3D(tmp_path)


def test_shapes3d_without_h5py_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    real_import = builtins.__import__

    def no_h5py(name: str, *args: object, **kwargs: object) -> object:
        if name == "h5py":
            raise ImportError("No module named 'h5py'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_h5py)
    with pytest.raises(ImportError, match=r"torchvae\[factors\]"):
        Shapes3D(tmp_path)
