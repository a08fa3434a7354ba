r"""The ``torchvae`` command: ``train``, ``sample`` and ``eval`` from the shell.

``torchvae train`` fits a VAE on MNIST or Fashion-MNIST with the
:class:`~torchvae.Trainer` and writes, under ``--out-dir``: ``config.json`` (the
run's settings and model config), ``checkpoints/`` (resumable), ``tensorboard/`` (logs),
``model.pt`` (:func:`~torchvae.io.serialization.save_model`'s safe format) and
``samples.png``; a run holds its ``--out-dir`` (an advisory lock) from start to end, so a
second run into the same folder fails at once, naming the first one's process id.
``torchvae sample`` and ``torchvae eval`` read either ``model.pt`` or a training
checkpoint; what they need to know of the run (data set, image shape, binarization,
settings) travels inside that file (``model.pt``'s metadata, the checkpoint's run info),
never read from another file beside it. Errors print one line to stderr and exit with
status 1 (2 for bad arguments); ``--debug`` shows the traceback instead.

Example:
    >>> build_parser().parse_args(["train", "--epochs", "2"]).epochs
    2
"""

from __future__ import annotations

from ._main import main
from ._parser import build_parser

__all__ = ["build_parser", "main"]
