"""Unlabeled audio for pretraining: loading, decoding, random crops and budgeted batches.

* :func:`load_audio_dataset` opens any datasets audio source: an ``audiofolder`` directory,
  a directory written by ``save_to_disk``, or a Hub dataset; map-style or streaming. The audio
  column is read undecoded so that one bad file costs one example, not the run.
* :class:`AudioBatches` turns it into batches by an audio budget (seconds per batch) with
  length bucketing. Durations come from a metadata column when there is one (for map-style
  data without it, from the file headers: no decoding pass). The order is a pure function of
  ``(seed, epoch)``, so a resumed run skips the batches it has seen and continues exactly.

Batches follow fairseq's ``audio_pretraining`` task: each clip is randomly cropped to at most
``max_sample_size`` samples, clips under ``min_sample_size`` are skipped, and a batch is cut to
its shortest clip (no padding, which would change group-norm encoders, transformers#21534),
unless ``pad=True`` (layer-norm encoders), which pads to the longest and returns an attention mask.

``speed_perturbation=(low, high)`` augments the unlabeled audio (Wav2Vec-Aug, arXiv 2206.13654;
none of fairseq's recipes does): each clip is read ``s`` times longer and resampled to its
length, ``s ~ U(low, high)`` per clip, so tempo, pitch and formants all move by ``s``, as a
shorter or longer vocal tract would (Kaldi's speed perturbation). A file shorter than ``s`` times
the crop gives a shorter clip, and the batch is cut to it like any other.

Under several processes a map-style batch plan is global (``batch_seconds * num_processes``)
and each process takes every ``num_processes``-th clip of it, so N processes see the same
global batches as one; a streaming source is sharded with ``split_dataset_by_node`` instead
and ``batch_seconds`` is per process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..processing.audio import SAMPLE_RATE, audio_seconds, load_audio, norm_stats, read_clip, speed_perturb

__all__ = ["AudioBatch", "AudioBatches", "load_audio_dataset", "plan_batches"]

logger = logging.getLogger(__name__)


def load_audio_dataset(
    source: str | os.PathLike,
    *,
    split: str = "train",
    config_name: str | None = None,
    streaming: bool = False,
    audio_column: str = "audio",
    split_flag: str = "split",
):
    """Open ``source`` with its audio column undecoded (``{"path", "bytes"}`` dicts).

    ``source`` is an audiofolder directory (with or without split sub-folders), a directory
    written by ``Dataset.save_to_disk``/``DatasetDict.save_to_disk``, or a Hub dataset name. A
    folder holding a ``<split>/`` sub-folder (the demo corpus: ``train_10min/``, ``test_clean/``)
    loads that sub-folder as an audiofolder, whatever its name (datasets itself knows only
    train/validation/test among sub-folder names).
    ``split_flag`` is the command-line flag that named ``split``, for the error when it is not
    a split of ``source``. Returns a ``datasets.Dataset``, or an ``IterableDataset`` when
    ``streaming``.
    """
    from datasets import Audio, load_dataset, load_from_disk

    path = Path(source)
    saved = path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists())
    if path.is_dir() and not saved and (path / split).is_dir():
        return load_audio_dataset(path / split, split="train", streaming=streaming, audio_column=audio_column, split_flag=split_flag)
    if saved:
        ds = load_from_disk(str(path))
        if (path / "dataset_dict.json").exists():
            if split not in ds:
                raise ValueError(f"--{split_flag} {split!r} is not a split of the saved dataset {path} (it has "
                                 f"{list(ds)}); pass one of those.")  # fmt: skip
            ds = ds[split]
        if streaming:
            ds = ds.to_iterable_dataset(num_shards=max(1, min(64, len(ds))))
    else:
        try:
            if path.is_dir():
                ds = load_dataset("audiofolder", data_dir=str(path), split=split, streaming=streaming)
            else:
                ds = load_dataset(str(source), config_name, split=split, streaming=streaming)
        except ValueError as error:
            folders = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")) if path.is_dir() else []
            if folders:
                raise ValueError(f"--{split_flag} {split!r} is neither a sub-folder of {source} (it has {folders}) nor a split "
                                 f"datasets finds there ({error}); pass one of the sub-folders.") from error  # fmt: skip
            if not str(error).startswith("Unknown split"):
                raise
            # an audiofolder without split sub-folders has one split, "train"
            raise ValueError(f"--{split_flag} {split!r} is not a split of {source}: {error} Pass --{split_flag} with one "
                             "of those.") from error  # fmt: skip
    if audio_column not in (ds.column_names or []):
        raise ValueError(
            f"audio_column={audio_column!r} is not a column of {source} (columns: {ds.column_names}); "
            "pass the name of its audio column."
        )
    return ds.cast_column(audio_column, Audio(decode=False))


def _crop_window(samples: int, wanted: int, offset: float) -> tuple[int, int]:
    """(start, length) of a crop of ``min(samples, wanted)`` samples, placed by ``offset`` in [0, 1)."""
    length = min(samples, wanted)
    return int(offset * (samples - length + 1)), length


def plan_batches(
    durations: Sequence[float],
    *,
    batch_seconds: float,
    max_seconds: float,
    max_batch_size: int | None,
    rng: np.random.Generator,
) -> list[list[int]]:
    """Group positions ``0..len(durations)-1`` into batches of at most ``batch_seconds`` of audio.

    Sorts by duration (length bucketing), so a batch holds clips of similar length and little
    is lost to cropping or padding; a batch costs ``size * min(max_seconds, longest)`` seconds.
    Returns the batches in an order shuffled by ``rng``.
    """
    order = sorted(range(len(durations)), key=lambda i: -durations[i])
    batches, current = [], []
    for i in order:
        longest = min(max_seconds, durations[current[0]] if current else durations[i])
        full = max_batch_size is not None and len(current) >= max_batch_size
        if current and (full or (len(current) + 1) * longest > batch_seconds):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return [batches[j] for j in rng.permutation(len(batches))]


@dataclass
class AudioBatch:
    """One process's share of a batch.

    input_values: ``(batch, samples)`` float32; attention_mask: ``(batch, samples)`` long or None
    (None when the batch is cut to its shortest clip); seconds: audio in this share;
    keys: ``(epoch, batch, slot)`` of each clip, stable across process counts (seed masks with it).
    """

    input_values: torch.Tensor
    attention_mask: torch.Tensor | None
    seconds: float
    keys: list[tuple[int, int, int]]


class AudioBatches:
    """Deterministic, budgeted, length-bucketed batches of randomly cropped clips.

    Iterate one epoch with ``batches.epoch(e, skip=k)``; the k batches skipped are those a
    checkpoint has already consumed. ``corrupt`` and ``too_short`` count the clips dropped.
    """

    def __init__(
        self,
        dataset,
        *,
        batch_seconds: float,
        max_sample_size: int,
        min_sample_size: int = 0,
        max_batch_size: int | None = None,
        bucket_size: int = 2000,
        seed: int = 0,
        normalize: bool = False,
        pad: bool = False,
        sampling_rate: int = SAMPLE_RATE,
        audio_column: str = "audio",
        duration_column: str | None = "duration",
        num_processes: int = 1,
        process_index: int = 0,
        speed_perturbation: tuple[float, float] | None = None,
    ):
        if batch_seconds * sampling_rate < min_sample_size:
            raise ValueError(
                f"batch_seconds={batch_seconds} holds less than one clip of min_sample_size={min_sample_size} "
                "samples; raise batch_seconds."
            )
        if max_sample_size < max(min_sample_size, 1):
            raise ValueError(f"max_sample_size={max_sample_size} is below min_sample_size={min_sample_size}; raise it.")
        if speed_perturbation is not None and not (len(speed_perturbation) == 2 and 0 < speed_perturbation[0] <= speed_perturbation[1]):
            raise ValueError(f"speed_perturbation={speed_perturbation} must be two factors 0 < low <= high, e.g. (0.9, 1.1).")
        self.speed_perturbation = None if speed_perturbation is None else tuple(float(f) for f in speed_perturbation)
        self.streaming = not hasattr(dataset, "__len__")
        self.num_processes, self.process_index = num_processes, process_index
        if self.streaming and num_processes > 1:
            from datasets.distributed import split_dataset_by_node

            dataset = split_dataset_by_node(dataset, rank=process_index, world_size=num_processes)
        self.dataset = dataset
        # Map-style plans are global and split across processes; streaming plans are per process.
        self.budget = batch_seconds * (1 if self.streaming else num_processes)
        self.max_sample_size, self.min_sample_size = max_sample_size, min_sample_size
        self.max_batch_size = None if max_batch_size is None else max_batch_size * (1 if self.streaming else num_processes)
        self.bucket_size, self.seed = bucket_size, seed
        self.normalize, self.pad, self.sampling_rate = normalize, pad, sampling_rate
        self.audio_column, self.duration_column = audio_column, duration_column
        self.corrupt = 0
        self.too_short = 0
        self._stats: dict[int, tuple] = {}  # item -> (mean, std) of the whole utterance, for normalize
        self._partial_reads = True  # False: decode every file whole (the reference the tests compare with)
        self._durations = None if self.streaming else self._map_durations()

    # ---- durations -------------------------------------------------------------------
    def _map_durations(self) -> list[float]:
        if self.duration_column and self.duration_column in self.dataset.column_names:
            return [float(d) for d in self.dataset[self.duration_column]]
        logger.info("no %r column: reading %d file headers for durations", self.duration_column, len(self.dataset))
        return [audio_seconds(v) for v in self.dataset[self.audio_column]]

    @property
    def hours(self) -> float | None:
        """Hours of audio in the (map-style) dataset, None when streaming."""
        return None if self._durations is None else sum(self._durations) / 3600.0

    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *key])

    # ---- batches ---------------------------------------------------------------------
    def _planned(self, epoch: int) -> Iterator[list[tuple[dict, float]]]:
        """Yield the global batches of ``epoch`` as lists of (example, duration), undecoded."""
        min_seconds = self.min_sample_size / self.sampling_rate
        max_seconds = self.max_sample_size / self.sampling_rate
        if self.streaming:
            stream = self.dataset.shuffle(seed=self.seed, buffer_size=self.bucket_size)
            stream.set_epoch(epoch)
            buffer, chunk = [], 0
            for example in stream:
                duration = self._stream_duration(example)
                if duration < min_seconds:
                    self.too_short += 1
                    continue
                buffer.append((example, duration))
                if len(buffer) == self.bucket_size:
                    yield from self._plan_chunk(buffer, epoch, chunk, max_seconds)
                    buffer, chunk = [], chunk + 1
            if buffer:
                yield from self._plan_chunk(buffer, epoch, chunk, max_seconds)
            return
        keep = [i for i, d in enumerate(self._durations) if d >= min_seconds]
        self.too_short = len(self._durations) - len(keep)
        order = self._rng(epoch).permutation(len(keep))
        for chunk, start in enumerate(range(0, len(order), self.bucket_size)):
            members = [keep[j] for j in order[start : start + self.bucket_size]]
            rng = self._rng(epoch, chunk)
            plan = plan_batches([self._durations[i] for i in members], batch_seconds=self.budget,
                                max_seconds=max_seconds, max_batch_size=self.max_batch_size, rng=rng)
            for batch in plan:
                yield [(members[j], self._durations[members[j]]) for j in batch]

    def _plan_chunk(self, buffer, epoch, chunk, max_seconds):
        plan = plan_batches([d for _, d in buffer], batch_seconds=self.budget, max_seconds=max_seconds,
                            max_batch_size=self.max_batch_size, rng=self._rng(epoch, chunk))
        for batch in plan:
            yield [buffer[j] for j in batch]

    def _stream_duration(self, example: dict) -> float:
        if self.duration_column and example.get(self.duration_column) is not None:
            return float(example[self.duration_column])
        try:  # no metadata: decode now and keep the samples for later
            example["_audio"] = load_audio(example[self.audio_column], self.sampling_rate)
        except RuntimeError as error:
            self._count_corrupt(error)
            return -1.0
        return len(example["_audio"]) / self.sampling_rate

    def _count_corrupt(self, error: Exception) -> None:
        self.corrupt += 1
        logger.warning("skipping corrupt audio (%d so far): %s", self.corrupt, error)

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[AudioBatch | None]:
        """Batches of ``epoch`` after the first ``skip``; None for a batch whose clips all failed.

        A whole epoch without one usable clip is an error that says what was skipped (a
        trainer reading epoch after epoch would otherwise wait for ever).
        """
        usable = False
        for b, members in enumerate(self._planned(epoch)):
            if b < skip:
                continue
            batch = self._materialize(members, epoch, b)
            usable = usable or batch is not None
            yield batch
        if not usable and skip == 0:
            raise ValueError(
                f"no usable clip in a whole epoch of the dataset: {self.too_short} shorter than min_sample_size="
                f"{self.min_sample_size} samples ({self.min_sample_size / self.sampling_rate:.2f} s), {self.corrupt} "
                "undecodable; lower --min_sample_size or check the dataset's audio files."
            )

    def _crop(self, example: dict, item: int | None, wanted: int, offset: float) -> np.ndarray | None:
        """The clip of ``example``: ``min(wanted, length)`` samples from ``int(offset * (length -
        clip + 1))`` on, normalised by the whole utterance's statistics; None when too short.

        A clip is decoded alone (a seek, then a read of the clip: a third of the work on 10 s
        files cropped to 3 s) when the file is at the model's rate and, with ``normalize``, its
        statistics are known from an earlier read; otherwise the whole file is decoded. Both
        give the same samples. Raises RuntimeError (counted and skipped) on undecodable audio.
        """
        audio = example.get("_audio")
        stats = self._stats.get(item) if item is not None else None
        clip = None
        if audio is None and item is not None and self._partial_reads and (stats is not None or not self.normalize):
            clip = self._read_clip(example[self.audio_column], wanted, offset)
        if clip is None:  # the whole file
            if audio is None:
                audio = load_audio(example[self.audio_column], self.sampling_rate)
            if len(audio) < max(self.min_sample_size, 1):
                return None
            if self.normalize:  # per utterance, before cropping (fairseq's task.normalize)
                # The variance floor is the feature extractor's (transformers' 1e-7), not fairseq's
                # layer_norm 1e-5: the feature extractor saved with the model must give at
                # fine-tuning and inference exactly what pretraining saw (near-silent clips differ).
                stats = norm_stats(audio)
                if item is not None:
                    self._stats[item] = stats
            start, length = _crop_window(len(audio), wanted, offset)
            clip = audio[start : start + length]
        elif not len(clip):
            return None
        return (clip - stats[0]) / stats[1] if self.normalize else clip

    def _read_clip(self, value: dict, wanted: int, offset: float) -> np.ndarray | None:
        """The clip read alone, unnormalised (empty when the file is too short); None when the
        file needs a full decode (another rate, a lossy format, or one soundfile cannot open)."""

        def place(frames: int) -> tuple[int, int]:
            return (0, 0) if frames < max(self.min_sample_size, 1) else _crop_window(frames, wanted, offset)

        return read_clip(value, self.sampling_rate, place)

    def _materialize(self, members, epoch: int, b: int) -> AudioBatch | None:
        # Crop targets and offsets are drawn for the whole global batch, so they do not
        # depend on how many processes share it.
        rng = self._rng(epoch, b, 1)
        lengths = [min(self.max_sample_size, int(d * self.sampling_rate)) for _, d in members]
        target = min(lengths)
        offsets = rng.random(len(members))
        speeds = rng.uniform(*self.speed_perturbation, len(members)) if self.speed_perturbation else np.ones(len(members))
        clips, keys = [], []
        for slot in range(self.process_index if not self.streaming else 0, len(members),
                          1 if self.streaming else self.num_processes):
            item, _ = members[slot]
            example = self.dataset[item] if not self.streaming else item
            wanted = lengths[slot] if self.pad else target
            try:
                clip = self._crop(example, None if self.streaming else item, int(np.ceil(wanted * speeds[slot])), offsets[slot])
            except RuntimeError as error:
                self._count_corrupt(error)
                continue
            if clip is None:
                self.too_short += 1
                continue
            if speeds[slot] != 1.0:  # s x the samples played at s x the rate: `wanted` again, fewer from a shorter file
                clip = speed_perturb(clip, speeds[slot], self.sampling_rate)[:wanted]
            clips.append(clip)
            keys.append((epoch, b, slot))
        if not clips:
            return None
        if not self.pad:
            shortest = min(len(c) for c in clips)  # metadata may overstate a duration
            clips = [c[:shortest] for c in clips]
        longest = max(len(c) for c in clips)
        values = torch.zeros(len(clips), longest)
        mask = torch.zeros(len(clips), longest, dtype=torch.long)
        for i, clip in enumerate(clips):
            values[i, : len(clip)] = torch.from_numpy(np.ascontiguousarray(clip))
            mask[i, : len(clip)] = 1
        seconds = float(mask.sum()) / self.sampling_rate
        return AudioBatch(values, mask if self.pad else None, seconds, keys)
