"""Tensor files (.npy, .npz, .pt): every layout and dtype, split names, and bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from torchvae.data.tensorfile import read_tensor_file


def nchw(n: int = 6, c: int = 3, h: int = 5, w: int = 4, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, h, w), generator=gen, dtype=torch.uint8)


def in_layout(images: torch.Tensor, layout: str) -> torch.Tensor:
    if layout == "NHW":
        return images[:, 0]
    return images.permute(0, 2, 3, 1) if layout == "NHWC" else images


def save(path: Path, arrays: dict[str, torch.Tensor] | torch.Tensor) -> Path:
    """Write ``arrays`` in the format ``path``'s ending names."""
    if path.suffix == ".pt":
        torch.save(arrays, path)
    elif path.suffix == ".npy":
        assert isinstance(arrays, torch.Tensor)
        np.save(path, arrays.numpy())
    else:
        assert isinstance(arrays, dict)
        np.savez(path, **{k: v.numpy() for k, v in arrays.items()})
    return path


@pytest.mark.parametrize("layout", ["NHW", "NHWC", "NCHW"])
@pytest.mark.parametrize("suffix", [".npy", ".npz", ".pt"])
def test_each_layout_and_format_reads_back_as_nchw_uint8(
    tmp_path: Path, layout: str, suffix: str
) -> None:
    images = nchw(c=1) if layout == "NHW" else nchw()
    stored = in_layout(images, layout)
    labels = torch.arange(6) % 3
    content: dict[str, torch.Tensor] | torch.Tensor = (
        stored if suffix == ".npy" else {"images": stored, "labels": labels}
    )
    out = read_tensor_file(save(tmp_path / f"d{suffix}", content))
    got, got_labels = out["all"]
    assert got.dtype == torch.uint8 and got.is_contiguous()
    assert torch.equal(got, images)
    if suffix == ".npy":
        assert got_labels is None
    else:
        assert got_labels is not None and got_labels.dtype == torch.int64
        assert torch.equal(got_labels, labels)


@given(
    n=st.integers(1, 5),
    c=st.sampled_from([1, 3]),
    h=st.integers(5, 9),
    w=st.integers(5, 9),
    seed=st.integers(0, 2**16),
)
def test_round_trip_property(tmp_path_factory: pytest.TempPathFactory, **kw: int) -> None:
    images = nchw(**kw)
    path = save(tmp_path_factory.mktemp("rt") / "x.npy", images.permute(0, 2, 3, 1))
    assert torch.equal(read_tensor_file(path)["all"][0], images)


def test_float_8bit_data_becomes_uint8_exactly(tmp_path: Path) -> None:
    images = nchw()
    as_float = images.float() / 255  # what ToTensor makes
    got, _ = read_tensor_file(save(tmp_path / "f.pt", as_float))["all"]
    assert got.dtype == torch.uint8 and torch.equal(got, images)
    got64, _ = read_tensor_file(save(tmp_path / "f.npy", as_float.double()))["all"]
    assert torch.equal(got64, images)


def test_continuous_float_data_stays_float(tmp_path: Path) -> None:
    x = torch.rand(4, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    got, _ = read_tensor_file(save(tmp_path / "c.pt", x))["all"]
    assert got.dtype == torch.float32 and torch.equal(got, x)


def test_integer_arrays_in_range_become_uint8(tmp_path: Path) -> None:
    images = nchw()
    got, _ = read_tensor_file(save(tmp_path / "i.npy", images.long()))["all"]
    assert got.dtype == torch.uint8 and torch.equal(got, images)


def test_pt_tuple_and_dict_with_other_names(tmp_path: Path) -> None:
    images, labels = nchw(), torch.arange(6)
    got = read_tensor_file(save(tmp_path / "t.pt", (images, labels)))["all"]
    assert torch.equal(got[0], images) and got[1] is not None and torch.equal(got[1], labels)
    path = save(tmp_path / "named.npz", {"pixels": images, "classes_idx": labels})
    got = read_tensor_file(path, images_key="pixels", labels_key="classes_idx")["all"]
    assert torch.equal(got[0], images) and torch.equal(got[1], labels)
    single = read_tensor_file(save(tmp_path / "one.npz", {"whatever": images}))["all"]
    assert torch.equal(single[0], images) and single[1] is None


@pytest.mark.parametrize(
    ("names", "kwargs"),
    [
        (("x_train", "y_train", "x_test", "y_test"), {}),
        (("train_images", "train_labels", "test_images", "test_labels"), {}),
        (("im_train", "lab_train", "im_test", "lab_test"), {"images_key": "im_{split}"}),
    ],
)
def test_files_with_both_splits(tmp_path: Path, names: tuple[str, ...], kwargs: dict) -> None:
    train, test = nchw(6), nchw(3, seed=1)
    arrays = dict(zip(names, (train, torch.arange(6), test, torch.arange(3)), strict=True))
    if kwargs:
        kwargs["labels_key"] = "lab_{split}"
    out = read_tensor_file(save(tmp_path / "s.npz", arrays), **kwargs)
    assert set(out) == {"train", "test"}
    assert torch.equal(out["train"][0], train) and torch.equal(out["test"][0], test)
    assert torch.equal(out["test"][1], torch.arange(3))


def test_string_arrays_are_left_out(tmp_path: Path) -> None:
    path = tmp_path / "s.npz"
    np.savez(path, images=nchw().numpy(), names=np.array(["a", "b"]))
    assert read_tensor_file(path)["all"][0].shape == (6, 3, 5, 4)


def test_layout_given_for_an_ambiguous_shape(tmp_path: Path) -> None:
    images = nchw(c=3, h=3, w=3)
    path = save(tmp_path / "a.npy", images)
    with pytest.raises(ValueError, match="layout='NCHW' or 'NHWC'"):
        read_tensor_file(path)
    assert torch.equal(read_tensor_file(path, layout="NCHW")["all"][0], images)
    as_nhwc = read_tensor_file(path, layout="NHWC")["all"][0]
    assert torch.equal(as_nhwc, images.permute(0, 3, 1, 2))


@pytest.mark.parametrize(
    ("array", "error", "match"),
    [
        # a fixed tensor: one built from the global generator at collection would depend
        # on which test modules were imported first
        (
            torch.linspace(0.25, 2.0, 96).reshape(2, 3, 4, 4),
            ValueError,
            r"\[0, 1\], got values in \[0\.25, 2\]",
        ),
        (torch.full((2, 3, 4, 4), float("nan")), ValueError, "NaN"),
        (torch.full((2, 3, 4, 4), 300), ValueError, "0..255"),
        (torch.full((2, 3, 4, 4), -1), ValueError, "0..255"),
        (torch.zeros(2, 3, 4, 4, dtype=torch.bool), TypeError, "dtype torch.bool"),
        (torch.zeros(2, 16), ValueError, r"shape \(N, H, W\)"),
        (torch.zeros(2, 5, 4, 7), ValueError, "neither"),
        (torch.zeros(0, 3, 4, 4, dtype=torch.uint8), ValueError, "empty"),
    ],
)
def test_bad_images_are_named(
    tmp_path: Path, array: torch.Tensor, error: type[Exception], match: str
) -> None:
    path = save(tmp_path / "bad.pt", array)
    with pytest.raises(error, match=match) as info:
        read_tensor_file(path)
    assert "bad.pt" in str(info.value)


def test_float_0_255_images_get_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"divide 0\.\.255 values by 255"):
        read_tensor_file(save(tmp_path / "b.pt", torch.full((2, 3, 4, 4), 200.0)))


@pytest.mark.parametrize(
    ("labels", "error", "match"),
    [
        (torch.arange(5), ValueError, r"shape \(6,\)"),
        (torch.arange(6).float(), TypeError, "integers"),
        (torch.arange(6) - 1, ValueError, ">= 0"),
    ],
)
def test_bad_labels(
    tmp_path: Path, labels: torch.Tensor, error: type[Exception], match: str
) -> None:
    path = save(tmp_path / "l.pt", {"images": nchw(), "labels": labels})
    with pytest.raises(error, match=match):
        read_tensor_file(path)


def test_pt_file_is_read_with_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "code.pt"
    torch.save({"images": nchw(), "extra": Path("x")}, path)  # an object, not a tensor
    with pytest.raises(ValueError, match=r"weights_only=True"):
        read_tensor_file(path)


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("x.csv", b"1,2", "must end in one of"),
        ("x.npy", b"not numpy", "cannot be read by numpy"),
        ("x.npz", b"not a zip", "cannot be read by numpy"),
        ("x.pt", b"not torch", "cannot be read by torch.load"),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, content: bytes, match: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=match):
        read_tensor_file(tmp_path / name)


def test_missing_file_and_names(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no tensor file"):
        read_tensor_file(tmp_path / "absent.npy")
    path = save(tmp_path / "two.npz", {"a": nchw(), "b": nchw()})
    with pytest.raises(ValueError, match=r"no images under .*it holds \['a', 'b'\]"):
        read_tensor_file(path)
    with pytest.raises(ValueError, match="no labels under 'c'"):
        read_tensor_file(path, images_key="a", labels_key="c")
    with pytest.raises(ValueError, match="images_key does not apply"):
        read_tensor_file(save(tmp_path / "one.npy", nchw()), images_key="a")
    with pytest.raises(ValueError, match="layout must be one of"):
        read_tensor_file(path, layout="HWC", images_key="a")
