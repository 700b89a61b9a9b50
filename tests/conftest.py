"""Shared fixtures. Each test file may add its own; keep this file to what several files use."""

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def padded_batch():
    """Two waveforms of 1.0 s and 0.6 s at 16 kHz, zero-padded, with their attention mask."""
    g = torch.Generator().manual_seed(0)
    lengths = [16000, 9600]
    x = torch.zeros(len(lengths), max(lengths))
    mask = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for i, n in enumerate(lengths):
        x[i, :n] = 0.1 * torch.randn(n, generator=g)
        mask[i, :n] = 1
    return x, mask


# --- hub: the loopback Hub server fixture (owner: hub sharing, issue 6) -------------------
# Session fixture `hub_server` (tests/hub_server.py): one server on 127.0.0.1 for all files.
from hub_server import hub_server  # noqa: E402,F401

# --- end hub ------------------------------------------------------------------------------
