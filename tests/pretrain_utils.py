"""Helpers shared by the pretraining tests: a small audiofolder of synthetic clips."""

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16_000


def make_audiofolder(directory: Path, *, clips: int = 12, seconds: tuple[float, float] = (1.0, 2.5), corrupt: int = 0,
                     seed: int = 0) -> Path:
    """Write ``clips`` FLAC files of chirps in noise, ``corrupt`` undecodable ones and a
    metadata.csv with a ``duration`` column (the corrupt files claim 2 s)."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(clips):
        n = int(rng.uniform(*seconds) * SR)
        t = np.arange(n) / SR
        f0 = rng.uniform(120, 400)
        audio = 0.3 * np.sin(2 * np.pi * f0 * t * (1 + 0.3 * np.sin(3 * t))) + 0.05 * rng.standard_normal(n)
        sf.write(directory / f"clip{i:03d}.flac", audio.astype(np.float32), SR)
        rows.append((f"clip{i:03d}.flac", round(n / SR, 4)))
    for i in range(corrupt):
        (directory / f"broken{i}.flac").write_bytes(b"fLaC" + rng.bytes(3000))
        rows.append((f"broken{i}.flac", 2.0))
    with open(directory / "metadata.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file_name", "duration"])
        writer.writerows(rows)
    return directory
