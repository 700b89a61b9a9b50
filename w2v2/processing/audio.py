"""Audio in one place: the rate wav2vec 2.0 takes, decoding files, resampling, channels, normalisation.

Every part of w2v2 that reads or prepares audio (the feature extractor, pretraining batches,
the fine-tuning collator, transcription, unit extraction, the demo corpus) uses these, so a
recording gives the same samples whichever path it takes:

- ``SAMPLE_RATE``: 16 kHz, what every wav2vec 2.0 recipe and checkpoint expects;
- ``load_audio``: a file (path, or a datasets cell ``{"path", "bytes"}``) -> float32 samples,
  soundfile first, torchcodec for what soundfile cannot read (mp3 in some builds, m4a, ...);
  ``read_clip`` (a crop read alone, the same samples) and ``stream_audio`` (block by block, in
  bounded memory) are the partial reads of the same decoder;
- ``resample``: soxr, high quality, float32;
- ``to_mono``: one policy for several channels (refuse, or average with ``"mean"``);
- ``normalize``: zero mean, unit variance with the variance floor ``NORM_EPS`` of transformers'
  ``Wav2Vec2FeatureExtractor`` (1e-7), so the feature extractor saved with a model reproduces
  what its pretraining batches were;
- ``audio_seconds``: a file's duration from its header; ``list_audio_files``: the files of
  a command line (files as given, audio files under folders).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["AUDIO_SUFFIXES", "MONO_POLICIES", "NORM_EPS", "SAMPLE_RATE", "audio_seconds", "load_audio", "norm_stats", "normalize",
           "refuse_non_finite",
           "list_audio_files", "read_clip", "resample", "speed_perturb", "stream_audio", "to_mono"]  # fmt: skip

SAMPLE_RATE = 16_000  # Hz
NORM_EPS = 1e-7  # variance floor of transformers' Wav2Vec2FeatureExtractor (fairseq's layer_norm uses 1e-5)
# Formats in which a seek lands on the exact sample (PCM, FLAC): a clip read alone equals the
# clip of a whole decode. Lossy formats (MP3, Ogg) are decoded whole.
EXACT_SEEK_FORMATS = frozenset({"WAV", "WAVEX", "FLAC", "AIFF", "W64", "RF64", "CAF"})
MONO_POLICIES = (None, "mean")  # None: refuse several channels; "mean": average them
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".webm", ".mp4")  # what list_audio_files collects from folders


def _source(source: str | os.PathLike | dict) -> tuple[Any, Any, str]:
    """(what soundfile opens, what torchcodec opens, a name for messages) of a path or a datasets
    ``{"path", "bytes"}`` cell."""
    if isinstance(source, dict):
        data, path = source.get("bytes"), source.get("path")
        return (io.BytesIO(data) if data else path), (data or path), str(path or "<bytes>")
    return os.fspath(source), os.fspath(source), os.fspath(source)


def load_audio(source: str | os.PathLike | dict, sampling_rate: int | None = SAMPLE_RATE, *, mono: str | None = "mean") -> np.ndarray:
    """Decode one audio file to float32 at ``sampling_rate`` (None: the file's own rate).

    Args:
        source: a path, or an undecoded datasets audio cell ``{"path": ..., "bytes": ...}``.
        sampling_rate: resample to this rate (:func:`resample`); None keeps the file's.
        mono: ``"mean"`` averages the channels, (samples,); None keeps them, (samples,) for a
            mono file and (channels, samples) otherwise, for a caller with its own policy.

    Raises ``RuntimeError`` when no decoder can read the file or it holds NaN or infinite
    samples: readers of many files count and skip those, naming them.
    """
    import soundfile as sf

    opened, coded, name = _source(source)
    try:
        audio, rate = sf.read(opened, dtype="float32", always_2d=True)  # (samples, channels)
        audio = audio.T  # (channels, samples)
    except Exception as sf_error:  # noqa: BLE001  (any decoder failure means "corrupt")
        try:
            from torchcodec.decoders import AudioDecoder

            samples = AudioDecoder(coded).get_all_samples()
            audio, rate = samples.data.numpy().astype(np.float32), int(samples.sample_rate)  # (channels, samples)
        except Exception as tc_error:  # noqa: BLE001
            raise RuntimeError(f"cannot decode {name}: {sf_error}; {tc_error}") from tc_error
    refuse_non_finite(audio, name)
    audio = audio[0] if audio.shape[0] == 1 else (to_mono(audio, mono, name, channel_axis=0) if mono else audio)
    if sampling_rate is not None and rate != sampling_rate:
        audio = resample(audio, rate, sampling_rate)
    return audio


def read_clip(source: str | os.PathLike | dict, sampling_rate: int, place: Callable[[int], tuple[int, int]]) -> np.ndarray | None:
    """The samples ``[start, start + length)`` of a file, read alone, mono, float32, where that gives
    exactly what :func:`load_audio` gives for them: the file is at ``sampling_rate`` in a format
    that seeks to the sample (``EXACT_SEEK_FORMATS``); None otherwise (decode it whole).

    ``place(frames) -> (start, length)`` chooses the window once the file's length is known
    (length 0: an empty array). Raises ``RuntimeError`` (readers count and skip it) on a read
    that fails, non-finite samples, or fewer samples than the header promises.
    """
    import soundfile as sf

    opened, _, name = _source(source)
    try:
        f = sf.SoundFile(opened)
    except Exception:  # noqa: BLE001  (load_audio tries the other decoders and names the error)
        return None
    with f:
        if f.samplerate != sampling_rate or f.format not in EXACT_SEEK_FORMATS or not f.seekable():
            return None
        start, length = place(f.frames)
        if length <= 0:
            return np.zeros(0, dtype=np.float32)
        f.seek(start)
        try:
            clip = to_mono(f.read(length, dtype="float32", always_2d=True), "mean", name, channel_axis=1)  # (samples,)
        except Exception as error:  # noqa: BLE001
            raise RuntimeError(f"cannot decode {name}: {error}") from error
    refuse_non_finite(clip, name)
    if len(clip) < length:  # the header overstates the length: a damaged file
        raise RuntimeError(f"cannot decode {name}: {len(clip)} samples read of the {length} its header promises")
    return clip


def stream_audio(path: str | os.PathLike, sampling_rate: int = SAMPLE_RATE, *, block_seconds: float = 1.0) -> Iterator[np.ndarray]:
    """A file as consecutive blocks of float32 mono samples at ``sampling_rate``, read and
    resampled (``soxr.ResampleStream``) a block at a time, so memory stays bounded on hours of
    audio; a format soundfile cannot read is decoded whole (:func:`load_audio`), one block."""
    import soundfile as sf

    name = os.fspath(path)
    try:
        handle = sf.SoundFile(name)
    except (sf.LibsndfileError, RuntimeError):
        yield load_audio(path, sampling_rate)
        return
    with handle:
        import soxr

        stream = soxr.ResampleStream(handle.samplerate, sampling_rate, 1, dtype="float32") if handle.samplerate != sampling_rate else None
        for block in handle.blocks(blocksize=int(block_seconds * handle.samplerate), dtype="float32", always_2d=True):
            mono = to_mono(block, "mean", name, channel_axis=1)  # (samples,), as load_audio
            refuse_non_finite(mono, name)
            yield stream.resample_chunk(mono) if stream else mono
        if stream:
            yield stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


def resample(audio: np.ndarray, orig_rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``audio`` (samples,) or (channels, samples) from ``orig_rate`` to ``target_rate`` Hz (soxr, HQ), float32."""
    if orig_rate == target_rate:
        return audio.astype(np.float32, copy=False)
    import soxr

    if audio.ndim == 2:  # soxr takes (samples, channels)
        return soxr.resample(audio.T, orig_rate, target_rate, quality="HQ").T.astype(np.float32, copy=False)
    return soxr.resample(audio, orig_rate, target_rate, quality="HQ").astype(np.float32, copy=False)


def speed_perturb(audio: np.ndarray, factor: float, sampling_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``audio`` played ``factor`` times faster (Kaldi's speed perturbation): read as if recorded at
    ``factor * sampling_rate`` and resampled back, so tempo, pitch and formants all move by ``factor``;
    (samples,) -> (about samples / factor,), float32."""
    return resample(audio.astype(np.float32, copy=False), round(sampling_rate * factor), sampling_rate)


def to_mono(audio: np.ndarray, policy: str | None, name: str = "audio", *, channel_axis: int | None = None) -> np.ndarray:
    """(samples,) from (samples,), (channels, samples) or (samples, channels); ``channel_axis``
    None takes the shorter axis of a 2-D array. ``policy`` None refuses several channels
    (ValueError), ``"mean"`` averages them."""
    if policy not in MONO_POLICIES:
        raise ValueError(f"mono={policy!r} is not a channel policy; use None (refuse several channels) or 'mean'.")
    if audio.ndim == 1:
        return audio
    if audio.ndim != 2:
        raise ValueError(f"{name} has shape {audio.shape}; expected (samples,) or (channels, samples).")
    channel_axis = int(np.argmin(audio.shape)) if channel_axis is None else channel_axis
    channels = audio.shape[channel_axis]
    if channels == 1:
        return audio.reshape(-1)
    if policy is None:
        raise ValueError(f"{name} has {channels} channels (shape {audio.shape}); wav2vec 2.0 takes mono audio. "
                         "Pass mono='mean' to average the channels, or select one channel yourself.")  # fmt: skip
    return audio.mean(axis=channel_axis, dtype=np.float64).astype(np.float32)


def norm_stats(audio: np.ndarray) -> tuple[Any, Any]:
    """``(mean, sqrt(var + NORM_EPS))`` of ``audio``: what :func:`normalize` divides by, for a
    reader that normalises crops by their whole utterance's statistics."""
    return audio.mean(), np.sqrt(audio.var() + NORM_EPS)


def normalize(audio: np.ndarray, length: int | None = None, *, padding_value: float = 0.0) -> np.ndarray:
    """``(x - mean) / sqrt(var + NORM_EPS)`` with the statistics of the first ``length`` samples
    (default: all); samples after them are set to ``padding_value``. float32."""
    length = len(audio) if length is None else length
    mean, std = norm_stats(audio[:length])
    normed = (audio - mean) / std
    normed[length:] = padding_value
    return normed.astype(np.float32, copy=False)


def refuse_non_finite(audio: np.ndarray, name: str) -> None:
    """``RuntimeError`` (what readers skip and count) when ``audio`` holds NaN or infinite samples:
    a float WAV can, and one such clip would turn every loss it enters NaN."""
    if not np.isfinite(audio).all():
        raise RuntimeError(f"cannot use {name}: {int((~np.isfinite(audio)).sum())} of its samples are NaN or infinite")


def audio_seconds(source: str | os.PathLike | dict) -> float:
    """Duration from the file's header (soundfile, else torchcodec's metadata); 0.0 when neither
    can read it (a reader then skips the file when it decodes it, and names it)."""
    import soundfile as sf

    opened, coded, _ = _source(source)
    try:
        return float(sf.info(opened).duration)
    except Exception:  # noqa: BLE001
        pass
    try:
        from torchcodec.decoders import AudioDecoder

        return float(AudioDecoder(coded).metadata.duration_seconds)
    except Exception:  # noqa: BLE001
        return 0.0


def list_audio_files(inputs: list[str]) -> list[Path]:
    """Files as given, and audio files under folders (sorted); an error when there are none."""
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
        elif item.is_file():
            files.append(item)
        else:
            raise ValueError(f"input {str(item)!r} does not exist; pass audio files or folders holding them.")
    if not files:
        raise ValueError(f"no audio files in {inputs}; pass files or folders with {', '.join(AUDIO_SUFFIXES)} files.")
    return files
