"""``torchvae`` and ``python -m torchvae``: dispatch to a command, report errors in one line."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import torch

from ..data.mnist import DatasetNotFoundError
from ._config import apply_config
from ._eval import eval_command
from ._parser import CLIError, build_parser
from ._sample import sample_command
from ._sweep import sweep_command
from ._train import train_command

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``torchvae`` command line.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 on an error (reported in one line on stderr),
        130 when interrupted. Bad arguments exit with status 2 through ``argparse``.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    run = {
        "train": train_command,
        "sample": sample_command,
        "eval": eval_command,
        "sweep": sweep_command,
    }[args.command]
    try:
        if getattr(args, "config", None) is not None:
            args = apply_config(parser, argv, args)
        if args.num_threads:
            torch.set_num_threads(args.num_threads)
        run(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        hint = ""
        if args.command == "train" and args.out_dir is not None:
            hint = f"; continue with: torchvae train --resume last --out-dir {args.out_dir}"
        if args.command == "sweep":
            hint = f"; continue with: torchvae sweep --resume --out-dir {args.out_dir}"
        print(f"torchvae: interrupted{hint}", file=sys.stderr)
        return 130
    except Exception as e:
        if args.debug:
            raise
        known = isinstance(e, (CLIError, OSError, ValueError, TypeError, RuntimeError))
        message = str(e) if known and str(e) else f"{type(e).__name__}: {e} (--debug shows where)"
        if not isinstance(e, DatasetNotFoundError):  # whose message lists where it looked
            message = message.strip().splitlines()[0] if message.strip() else type(e).__name__
        else:
            message += (
                "\nOn the command line: --download fetches them, --data-dir FOLDER finds them."
            )
        print(f"torchvae: error: {message}", file=sys.stderr)
        return 1
    return 0
