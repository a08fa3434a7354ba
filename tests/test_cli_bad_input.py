"""Bad command-line arguments: a usage error (exit 2) or one clean line, never a traceback.

Hypothesis builds ``torchvae train|sample|eval`` command lines with odd values (negative,
zero, non-numbers, NaN, inf, huge, unknown choices, missing or corrupted files) and calls
:func:`torchvae.cli.main`. Each run must either succeed (status 0), or exit through
``argparse`` with status 2 and a message naming the option, or return status 1 with a
single ``torchvae: error: ...`` line on stderr; stderr never holds a traceback.
"""

from __future__ import annotations

import gzip
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torchvae.cli import main
from torchvae.data import _idx

ODD = ["0", "-1", "1.5", "abc", "nan", "inf", "-inf", "1e400", "99999999999999999999", ""]

TRAIN_OPTIONS = {
    "--epochs": [*ODD, "1"],
    "--batch-size": [*ODD, "4"],
    "--lr": [*ODD, "1e-3"],
    "--beta": [*ODD, "0.5"],
    "--warmup-epochs": [*ODD, "1"],
    "--free-bits": [*ODD, "0.1"],
    "--latent-dim": [*ODD, "2"],
    "--hidden-dim": [*ODD, "8,0", "8,", ",", "8,8"],
    "--channels": [*ODD, "4,0", "4"],
    "--likelihood": ["poisson", "gaussian", ""],
    "--binarize": ["maybe", "dynamic"],
    "--model": ["rnn", "conv"],
    "--dataset": ["cifar", "mnist"],
    "--device": ["gpu7", "cuda:99", "meta", "cpu", ""],
    "--seed": [*ODD, "3"],
    "--max-batches": [*ODD, "1"],
    "--resume": ["nowhere.pt", "last"],
    "--num-threads": ODD,
}
EVAL_OPTIONS = {
    "--k": [*ODD, "2"],
    "--chunk-size": [*ODD, "8"],
    "--batch-size": [*ODD, "4"],
    "--max-examples": [*ODD, "3"],
    "--seed": ODD,
    "--dataset": ["cifar", "mnist"],
    "--device": ["gpu7", "meta", "cpu"],
}
SAMPLE_OPTIONS = {
    "--n": [*ODD, "2"],
    "--temperature": [*ODD, "0.5"],
    "--label": [*ODD, "3"],
    "--nrow": [*ODD, "1"],
    "--seed": ODD,
    "--device": ["gpu7", "meta", "cpu"],
}
# capsys is read (and so reset) around every call, so sharing it between examples is safe.
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
pytestmark = pytest.mark.filterwarnings("ignore::torchvae.diagnostics.PosteriorCollapseWarning")

TINY = ["--hidden-dim", "8", "--latent-dim", "2", "--batch-size", "4", "--device", "cpu"]


def idx_bytes(t: torch.Tensor) -> bytes:
    header = bytes([0, 0, 8, t.dim()]) + b"".join(s.to_bytes(4, "big") for s in t.shape)
    return header + t.contiguous().numpy().tobytes()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Tiny fake MNIST, a trained model, and broken model files; no network, no real data."""
    root = tmp_path_factory.mktemp("cli-bad-input")
    g = torch.Generator().manual_seed(0)
    for prefix, n in (("train", 12), ("t10k", 7)):
        images = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
        labels = torch.randint(0, 10, (n,), generator=g, dtype=torch.uint8)
        (root / "data").mkdir(exist_ok=True)
        (root / "data" / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(idx_bytes(images))
        )
        (root / "data" / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(idx_bytes(labels))
        )
    (root / "empty.pt").write_bytes(b"")
    (root / "garbage.pt").write_bytes(b"not a model file at all")
    (root / "folder").mkdir()
    (root / "cwd").mkdir()

    def no_network(url: str) -> bytes:
        raise OSError(f"network disabled in tests ({url})")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_idx, "_fetch", no_network)
        mp.delenv("TORCHVAE_DATA_DIR", raising=False)
        mp.setattr(_idx, "_DEBIAN_FASHION_MNIST", root / "no-debian")
        mp.chdir(root / "cwd")
        argv = ["train", "--data-dir", str(root / "data"), "--out-dir", str(root / "run")]
        assert main([*argv, *TINY, "--epochs", "1"]) == 0
        truncated = (root / "run" / "model.pt").read_bytes()
        (root / "truncated.pt").write_bytes(truncated[: len(truncated) // 2])
        yield {
            "root": root,
            "data": root / "data",
            "model": root / "run" / "model.pt",
            "empty": root / "empty.pt",
            "garbage": root / "garbage.pt",
            "truncated": root / "truncated.pt",
            "folder": root / "folder",
            "missing": root / "missing.pt",
        }


def check_outcome(status: int | None, code: object, err: str, options: list[str]) -> None:
    assert "Traceback" not in err, err
    if code is not None:  # argparse's usage error
        assert code == 2, (code, err)
        assert any(opt in err for opt in options) or "required" in err, err
        return
    assert status in (0, 1), (status, err)
    if status == 1:
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines and lines[0].startswith("torchvae: error: "), err
        assert len(lines) <= 2, err  # one line, plus at most a "how to fix" hint


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int | None, object, str]:
    capsys.readouterr()
    status: int | None = None
    code: object = None
    try:
        status = main(argv)
    except SystemExit as e:
        code = e.code
    return status, code, capsys.readouterr().err


def picks(options: dict[str, list[str]]) -> st.SearchStrategy[list[tuple[str, str]]]:
    return st.lists(
        st.sampled_from(sorted(options)).flatmap(
            lambda opt: st.sampled_from(options[opt]).map(lambda v: (opt, v))
        ),
        min_size=1,
        max_size=3,
        unique_by=lambda p: p[0],
    )


@fixture_ok
@given(chosen=picks(TRAIN_OPTIONS))
def test_train_arguments(
    chosen: list[tuple[str, str]],
    files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    with tempfile.TemporaryDirectory() as out:
        argv = ["train", "--data-dir", str(files["data"]), "--out-dir", out, *TINY]
        argv += ["--epochs", "1", "--max-batches", "1"]
        for opt, value in chosen:
            argv += [opt, value]
        status, code, err = run(argv, capsys)
        check_outcome(status, code, err, [opt for opt, _ in chosen])
    torch.set_num_threads(1)


@fixture_ok
@given(
    chosen=picks(EVAL_OPTIONS),
    checkpoint=st.sampled_from(["model", "empty", "garbage", "truncated", "folder", "missing"]),
)
def test_eval_arguments(
    chosen: list[tuple[str, str]],
    checkpoint: str,
    files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["eval", "--checkpoint", str(files[checkpoint]), "--data-dir", str(files["data"])]
    argv += ["--k", "2", "--max-examples", "3"]
    for opt, value in chosen:
        if opt == "--k" and value not in ("0", "-1", "1.5", "abc", "nan", "inf", "", "-inf"):
            value = "2"  # huge k is a valid request that takes forever; not a bad-input case
        argv += [opt, value]
    status, code, err = run(argv, capsys)
    check_outcome(status, code, err, [opt for opt, _ in chosen])
    if status == 1 and checkpoint != "model":
        assert files[checkpoint].name in err, err
    torch.set_num_threads(1)


@fixture_ok
@given(
    chosen=picks(SAMPLE_OPTIONS),
    checkpoint=st.sampled_from(["model", "empty", "garbage", "truncated", "missing"]),
)
def test_sample_arguments(
    chosen: list[tuple[str, str]],
    checkpoint: str,
    files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    with tempfile.TemporaryDirectory() as out:
        argv = ["sample", "--checkpoint", str(files[checkpoint]), "--out", f"{out}/s.png"]
        argv += ["--n", "2"]
        for opt, value in chosen:
            if opt == "--n" and len(value) > 10:
                value = "3"  # a valid, if absurd, request
            argv += [opt, value]
        status, code, err = run(argv, capsys)
        check_outcome(status, code, err, [opt for opt, _ in chosen])
        if status == 1 and checkpoint != "model":
            assert files[checkpoint].name in err, err
    torch.set_num_threads(1)
