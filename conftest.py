"""Doctests of modules whose optional extra is absent are not collected (their tests skip)."""

from __future__ import annotations

import importlib.util

_NEEDS = {
    "src/torchvae/lightning.py": "lightning",  # pip install torchvae[lightning]
    "src/torchvae/hub.py": "huggingface_hub",  # pip install torchvae[hub]
}
collect_ignore = [
    path for path, module in _NEEDS.items() if importlib.util.find_spec(module) is None
]
