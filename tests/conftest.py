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


# --- ctc: a tiny recognizer fine-tuned on four spoken utterances (owner: fine-tuning, issue 5) ---
@pytest.fixture(scope="session")
def tiny_ctc(tmp_path_factory):
    """``FinetuneResult`` of ``finetune_helpers.train_tiny_ctc``: trained once per session (~15 s)."""
    from finetune_helpers import train_tiny_ctc

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 40k-parameter model: threads only add overhead
    try:
        yield train_tiny_ctc(tmp_path_factory.mktemp("tiny_ctc"))
    finally:
        torch.set_num_threads(threads)

# --- end ctc ----------------------------------------------------------------------------------
