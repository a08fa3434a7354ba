"""Folders of PNG/JPEG images the tests write: scanning, decoding, resizing, cropping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from torchvae.data.imagefolder import ImageFiles, ImageFolderDataset, read_image, scan_image_folder


def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(path)
    return path


def chw(array: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(array.copy())
    return t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1)


def test_labels_from_sub_folders(tmp_path: Path) -> None:
    for cls, n in (("dog", 2), ("cat", 3), ("bird/nested", 1)):
        for i in range(n):
            write_png(tmp_path / cls / f"{i}.png", rgb(4, 4, i))
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    write_png(tmp_path / "cat" / ".hidden.png", rgb(4, 4))
    write_png(tmp_path / ".cache" / "x.png", rgb(4, 4))
    (tmp_path / "empty").mkdir()
    files = scan_image_folder(tmp_path)
    assert files.classes == ("bird", "cat", "dog")
    assert files.labels == (0, 1, 1, 1, 2, 2)
    assert [f.relative_to(tmp_path).as_posix() for f in files.files] == [
        "bird/nested/0.png",
        "cat/0.png",
        "cat/1.png",
        "cat/2.png",
        "dog/0.png",
        "dog/1.png",
    ]


def test_unlabelled_folder_and_case_insensitive_endings(tmp_path: Path) -> None:
    write_png(tmp_path / "b.PNG", rgb(4, 4))
    write_png(tmp_path / "a.jpg", rgb(4, 4))
    files = scan_image_folder(tmp_path)
    assert files.labels is None and files.classes is None
    assert [f.name for f in files.files] == ["a.jpg", "b.PNG"]


def test_given_classes_map_labels_and_reject_unknown_ones(tmp_path: Path) -> None:
    write_png(tmp_path / "dog" / "0.png", rgb(4, 4))
    assert scan_image_folder(tmp_path, ["cat", "dog"]).labels == (1,)
    with pytest.raises(ValueError, match=r"class folders \['dog'\] that are not among"):
        scan_image_folder(tmp_path, ["cat"])


def test_bad_folders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no image folder"):
        scan_image_folder(tmp_path / "absent")
    with pytest.raises(ValueError, match="holds no images"):
        scan_image_folder(tmp_path)
    write_png(tmp_path / "top.png", rgb(4, 4))
    write_png(tmp_path / "cls" / "a.png", rgb(4, 4))
    with pytest.raises(ValueError, match="both at its top"):
        scan_image_folder(tmp_path)


@pytest.mark.parametrize(
    ("mode", "channels"),
    [("RGB", 3), ("L", 1), ("RGBA", 3), ("LA", 1), ("P", 3), ("1", 1)],
)
def test_read_image_modes(tmp_path: Path, mode: str, channels: int) -> None:
    path = write_png(tmp_path / "x.png", rgb(6, 5), mode)
    image = read_image(path)
    assert image.dtype == torch.uint8 and image.shape == (channels, 6, 5)
    reference = Image.open(path).convert("L" if channels == 1 else "RGB")
    assert torch.equal(image, chw(np.asarray(reference)))


def test_read_image_converts_channels(tmp_path: Path) -> None:
    colour = write_png(tmp_path / "c.png", rgb(6, 5))
    gray = write_png(tmp_path / "g.png", rgb(6, 5)[..., 0])
    as_gray = read_image(colour, channels=1)
    assert as_gray.shape == (1, 6, 5)
    assert torch.equal(as_gray, chw(np.asarray(Image.open(colour).convert("L"))))
    as_rgb = read_image(gray, channels=3)
    assert as_rgb.shape == (3, 6, 5) and torch.equal(as_rgb[0], as_rgb[2])
    assert torch.equal(as_rgb[1], chw(rgb(6, 5)[..., 0])[0])
    with pytest.raises(ValueError, match="channels must be 1, 3 or None"):
        read_image(colour, channels=2)


def test_16_bit_gray_keeps_the_high_byte(tmp_path: Path) -> None:
    values = (np.arange(30, dtype=np.uint16).reshape(6, 5) * 2000).astype(np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(values).save(path)
    assert torch.equal(read_image(path), chw((values >> 8).astype(np.uint8)))


def test_jpeg_decodes_like_pil(tmp_path: Path) -> None:
    path = tmp_path / "x.jpg"
    Image.fromarray(rgb(16, 12)).save(path, quality=90)
    assert torch.equal(read_image(path), chw(np.asarray(Image.open(path).convert("RGB"))))


def test_undecodable_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match=r"broken\.png: cannot be decoded"):
        read_image(tmp_path / "broken.png")


def folder(tmp_path: Path, sizes: list[tuple[int, int]]) -> Path:
    for i, (h, w) in enumerate(sizes):
        write_png(tmp_path / "imgs" / f"{i:02d}.png", rgb(h, w, i))
    return tmp_path / "imgs"


def test_same_size_images_come_as_they_are(tmp_path: Path) -> None:
    ds = ImageFolderDataset(folder(tmp_path, [(8, 6)] * 3))
    assert ds.shape == (3, 8, 6) and len(ds) == 3 and ds.labels is None
    image, label = ds[2]
    assert label == -1 and torch.equal(image, chw(rgb(8, 6, 2)))


def test_images_of_other_sizes_need_a_resize(tmp_path: Path) -> None:
    ds = ImageFolderDataset(folder(tmp_path, [(8, 6), (9, 6)]))
    with pytest.raises(ValueError, match=r"01\.png: comes out of shape \(3, 9, 6\).*resize"):
        ds[1]


@pytest.mark.parametrize(
    ("size", "resize", "shape"),
    [((20, 40), 10, (10, 20)), ((40, 20), 10, (20, 10)), ((20, 40), (7, 9), (7, 9))],
)
def test_resize_like_torchvision(
    tmp_path: Path, size: tuple[int, int], resize: int | tuple[int, int], shape: tuple[int, int]
) -> None:
    ds = ImageFolderDataset(folder(tmp_path, [size]), resize=resize)
    assert ds.shape == (3, *shape)
    image = ds[0][0]
    reference = torch.nn.functional.interpolate(
        chw(rgb(*size)).unsqueeze(0).float(), size=shape, mode="bilinear", antialias=True
    )
    assert (image.float() - reference[0]).abs().max() <= 0.5 + 1e-4


def test_resize_keeps_a_constant_image_constant(tmp_path: Path) -> None:
    write_png(tmp_path / "c" / "x.png", np.full((30, 50, 3), 77, dtype=np.uint8))
    image = ImageFolderDataset(tmp_path / "c", resize=(13, 17))[0][0]
    assert bool((image == 77).all())


def test_center_crop_after_resize(tmp_path: Path) -> None:
    ds = ImageFolderDataset(folder(tmp_path, [(10, 13)]), crop=(4, 6))
    assert ds.shape == (3, 4, 6)
    assert torch.equal(ds[0][0], chw(rgb(10, 13))[:, 3:7, 4:10])
    combined = ImageFolderDataset(tmp_path / "imgs", resize=8, crop=8)
    assert combined.shape == (3, 8, 8)


def test_random_crop_is_a_function_of_seed_epoch_and_index(tmp_path: Path) -> None:
    root = folder(tmp_path, [(16, 16)] * 2)
    full = chw(rgb(16, 16))
    ds = ImageFolderDataset(root, crop=5, random_crop=True, seed=1)

    def crops(epochs: range) -> list[torch.Tensor]:
        out = []
        for epoch in epochs:
            ds.set_epoch(epoch)
            out.append(ds[0][0])
        return out

    first = crops(range(6))
    assert all(c.shape == (3, 5, 5) for c in first)
    windows = [full.unfold(1, 5, 1).unfold(2, 5, 1).permute(1, 2, 0, 3, 4)]
    assert all(any(torch.equal(c, w) for w in windows[0].reshape(-1, 3, 5, 5)) for c in first)
    assert len({tuple(c.flatten().tolist()) for c in first}) > 1, "the crop never moves"
    assert all(torch.equal(a, b) for a, b in zip(first, crops(range(6)), strict=True))
    other = ImageFolderDataset(root, crop=5, random_crop=True, seed=2)
    assert any(not torch.equal(other[0][0], c) for c in first[:1])


def test_crop_larger_than_image_and_bad_arguments(tmp_path: Path) -> None:
    root = folder(tmp_path, [(6, 6)])
    with pytest.raises(ValueError, match="smaller than the crop 8x8"):
        ImageFolderDataset(root, crop=8)
    with pytest.raises(ValueError, match="random_crop=True needs crop"):
        ImageFolderDataset(root, random_crop=True)
    with pytest.raises(ValueError, match="resize must be an int or a pair"):
        ImageFolderDataset(root, resize=(1, 2, 3))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="crop must be an int"):
        ImageFolderDataset(root, crop=True)
    with pytest.raises(ValueError, match="needs at least one image"):
        ImageFolderDataset(ImageFiles((), None, None))


def test_channels_from_the_first_image_or_given(tmp_path: Path) -> None:
    write_png(tmp_path / "m" / "0.png", rgb(4, 4)[..., 0])
    write_png(tmp_path / "m" / "1.png", rgb(4, 4, 1))
    assert ImageFolderDataset(tmp_path / "m").shape == (1, 4, 4)
    assert ImageFolderDataset(tmp_path / "m")[1][0].shape == (1, 4, 4)
    assert ImageFolderDataset(tmp_path / "m", channels=3)[0][0].shape == (3, 4, 4)


def test_labelled_dataset(tmp_path: Path) -> None:
    for cls in ("a", "b"):
        write_png(tmp_path / cls / "x.jpeg", rgb(5, 5))
    ds = ImageFolderDataset(tmp_path)
    assert ds.classes == ("a", "b") and ds.labels is not None
    assert ds.labels.tolist() == [0, 1] and ds[1][1] == 1
