"""The synthetic demo speech corpus: many TTS voices reading public-domain text.

No speech corpus can be downloaded on our machines, so the project makes its own from
Debian's free engines (espeak-ng, flite, festival; see ``w2v2.data.tts``) and sentences
from the King James Bible and WordNet (``w2v2.data.text``). Figures measured on it are
not LibriSpeech figures. Layout (Hugging Face ``audiofolder``, 16 kHz mono FLAC)::

    OUT/corpus.json                  arguments and per-split totals ("complete": true)
    OUT/lm_text.txt                  LM text: the sentence pool less held-out sentences
    OUT/SPLIT/metadata.csv           file_name,transcription,speaker,engine,duration,phonemes
    OUT/SPLIT/utt_000000.flac ...

``phonemes``: the space-separated IPA phonemes of what was spoken, as espeak-ng prints them
(``w2v2.data.tts.synthesize_with_phonemes``), for phoneme recognition. Corpora made before the
column existed load as they are; generating again with the same arguments (or
``ensure_corpus(..., phonemes=True)``) adds it without touching the audio.

Splits, after Libri-light / LibriSpeech:

- ``pretrain``: 2-4 sentences per utterance (5-15 s), random rate and pitch, noise on
  a fraction (``pretrain_noise_fraction``); transcriptions are kept but meant to be unused;
- ``train_1h``, ``train_10min``: one sentence per utterance, utterances added until the
  total reaches the target; ``train_10min`` is the head of ``train_1h`` (same files);
- ``validation``: training voices, held-out sentences;
- ``test_clean``: held-out sentences read by voices never used in any training split
  (espeak-ng variants m7, f5, klatt4, aunty, travis and flite ``rms``);
- ``test_other``: held-out sentences read by festival, an engine never used in
  training, with added noise (5-20 dB SNR).

Train, validation and test sentences are disjoint (stable hash of the text). Each
utterance is planned by its own RNG seeded from ``(seed, stream, index)``, so the files
are byte-identical for the same arguments whatever ``jobs`` is. Generation resumes: an
utterance whose ``OUT/.records/SPLIT/utt_NNNNNN.json`` exists is not made again (its FLAC is
written first, under a temporary name renamed into place).

Python API (stable; keyword arguments only)::

    from w2v2.data.synth import generate_corpus, ensure_corpus, load_corpus

    summary = generate_corpus(
        out_dir, *, seed=0, pretrain_minutes=600.0, train_10min_minutes=10.0,
        train_1h_minutes=60.0, validation_minutes=15.0, test_clean_minutes=15.0,
        test_other_minutes=15.0, pretrain_noise_fraction=0.3, scale=1.0, jobs=1,
        progress=False)
    # -> {"out_dir": str, "seconds": float, "generated_in_s": float,
    #     "splits": {split: {"utterances": int, "seconds": float}}}
    # A split of 0 minutes is not written. Tiny corpora are quick, e.g. (2 s of CPU)
    # generate_corpus(tmp, pretrain_minutes=0.3, train_10min_minutes=0.1,
    #     train_1h_minutes=0.2, validation_minutes=0.1, test_clean_minutes=0.1,
    #     test_other_minutes=0.1)

    path = ensure_corpus(out_dir=None, **same_keywords)  # generates only when missing;
    # out_dir defaults to default_corpus_dir(): $W2V2_CORPUS_DIR or ~/.cache/w2v2/synth-corpus
    dsets = load_corpus(path)  # datasets.DatasetDict, one entry per split

Command line: ``w2v2-synth-corpus --out DIR [--scale 0.01] [--jobs 2] ...`` (``--help``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from .text import Sentence, load_sentences
from .tts import (SAMPLE_RATE, Voice, add_noise, check_engines, phonemes_of, set_level,
                  synthesize_with_phonemes, to_int16, voices)

__all__ = ["CorpusConfig", "SPLITS", "LM_TEXT_FILE", "default_corpus_dir", "ensure_corpus", "generate_corpus",
           "has_phonemes", "load_corpus", "main", "write_lm_text"]

FORMAT_VERSION = 1
# Text for a word LM (w2v2-build-lm): the sentence pool less every held-out sentence. Written
# when missing, not checked by completeness, so corpora made before it existed stay valid.
LM_TEXT_FILE = "lm_text.txt"
HELD_OUT_SPLITS = ("validation", "test_clean", "test_other")
METADATA_COLUMNS = ("file_name", "transcription", "speaker", "engine", "duration", "phonemes")
PRETRAIN_SECONDS = (5.0, 15.0)
PRETRAIN_SENTENCES = (2, 4)
SECONDS_PER_WORD = 0.29  # espeak-ng and flite at their default rate, measured
RATE_RANGE = (0.8, 1.25)  # speaking-rate factor
PITCH_RANGE = (0.8, 1.25)  # pitch factor
LEVEL_DBFS = (-30.0, -18.0)  # RMS level
NOISE_COLOURS = (0.0, 1.0, 2.0)  # white, pink, brown
PRETRAIN_SNR_DB = (10.0, 30.0)
TEST_OTHER_SNR_DB = (5.0, 20.0)
ESPEAK_SHARE = 0.7  # of utterances from espeak-ng; flite reads the rest


@dataclass(frozen=True)
class SplitSpec:
    stream: str  # RNG stream: splits with one stream share utterances (train_10min in train_1h)
    sentences: str  # "train", "validation" or "test" part of the text
    voices: str  # "train", "held_out" or "festival"
    noise: str  # "none", "fraction" (pretrain_noise_fraction) or "always"
    pretrain: bool = False  # 2-4 sentences per utterance instead of one


# In generation order: train_1h comes before train_10min, which copies its head.
SPLITS = {
    "pretrain": SplitSpec("pretrain", "train", "train", "fraction", pretrain=True),
    "train_1h": SplitSpec("train", "train", "train", "none"),
    "train_10min": SplitSpec("train", "train", "train", "none"),
    "validation": SplitSpec("validation", "validation", "train", "none"),
    "test_clean": SplitSpec("test_clean", "test", "held_out", "none"),
    "test_other": SplitSpec("test_other", "test", "festival", "always"),
}


@dataclass(frozen=True)
class CorpusConfig:
    """What the corpus holds; equal configs give byte-identical corpora."""

    seed: int = field(default=0, metadata={"help": "same seed and sizes: same bytes"})
    pretrain_minutes: float = field(default=600.0, metadata={"help": "unlabeled audio"})
    train_10min_minutes: float = field(default=10.0, metadata={"help": "head of train_1h"})
    train_1h_minutes: float = field(default=60.0, metadata={"help": "labeled audio"})
    validation_minutes: float = field(default=15.0, metadata={"help": "training voices"})
    test_clean_minutes: float = field(default=15.0, metadata={"help": "unseen voices"})
    test_other_minutes: float = field(default=15.0, metadata={"help": "unseen engine + noise"})
    pretrain_noise_fraction: float = field(default=0.3, metadata={"help": "share of noisy pretrain"})
    scale: float = field(default=1.0, metadata={"help": "multiplies every *-minutes (0.01: tiny)"})

    def __post_init__(self):
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed={self.seed!r} must be a non-negative integer")
        for split in SPLITS:
            minutes = getattr(self, f"{split}_minutes")
            if not minutes >= 0:
                raise ValueError(f"{split}_minutes={minutes!r} must be >= 0 (0 skips the split)")
        if not 0 <= self.pretrain_noise_fraction <= 1:
            raise ValueError(f"pretrain_noise_fraction={self.pretrain_noise_fraction!r} "
                             "must be in [0, 1]")
        if not self.scale > 0:
            raise ValueError(f"scale={self.scale!r} must be > 0, e.g. 0.01 for a small corpus")

    def seconds(self, split: str) -> float:
        return getattr(self, f"{split}_minutes") * self.scale * 60


@dataclass(frozen=True)
class Utterance:
    """Everything needed to render one file; a pure function of (config, split, index)."""

    split: str
    index: int
    voice: Voice
    sentences: tuple[Sentence, ...]
    rate: float
    pitch: float
    level_dbfs: float
    snr_db: float | None  # None: no noise
    noise_colour: float
    noise_seed: int


def _paths(out: Path, split: str, index: int) -> tuple[Path, Path]:
    """(FLAC, record) of one utterance. File names hold no split keyword ("test", "train"):
    ``datasets`` would otherwise infer splits from them."""
    name = f"utt_{index:06d}"
    return out / split / f"{name}.flac", out / ".records" / split / f"{name}.json"


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big")


def _voice_pool(kind: str) -> tuple[tuple[Voice, ...], ...]:
    """Voice lists to draw from, first chosen with ESPEAK_SHARE, the second otherwise."""
    if kind == "festival":
        return (voices("festival", held_out=False),)
    held_out = kind == "held_out"
    return voices("espeak-ng", held_out), voices("flite", held_out)


def plan_utterance(config: CorpusConfig, split: str, index: int) -> Utterance:
    """Draw voice, text, rate, pitch, level and noise of one utterance from its own RNG."""
    spec = SPLITS[split]
    rng = np.random.default_rng([config.seed, _stable_int(spec.stream), index])
    pools = _voice_pool(spec.voices)
    pool = pools[0] if len(pools) == 1 or rng.random() < ESPEAK_SHARE else pools[1]
    voice = pool[rng.integers(len(pool))]
    rate, pitch = rng.uniform(*RATE_RANGE), rng.uniform(*PITCH_RANGE)
    sentences = load_sentences()[spec.sentences]
    if spec.pretrain:
        count = int(rng.integers(PRETRAIN_SENTENCES[0], PRETRAIN_SENTENCES[1] + 1))
        # Aim inside 5-15 s: words per sentence from a target length and the rate.
        target_s = rng.uniform(PRETRAIN_SECONDS[0] + 1, PRETRAIN_SECONDS[1] - 1)
        words = target_s * rate / SECONDS_PER_WORD / count
        chosen = tuple(_sentence_of_length(words + rng.uniform(-2, 2), rng) for _ in range(count))
    else:
        chosen = (sentences[rng.integers(len(sentences))],)
    noisy = spec.noise == "always" or (spec.noise == "fraction"
                                       and rng.random() < config.pretrain_noise_fraction)
    snr_range = TEST_OTHER_SNR_DB if spec.noise == "always" else PRETRAIN_SNR_DB
    return Utterance(split=split, index=index, voice=voice, sentences=chosen,
                     rate=round(float(rate), 3), pitch=round(float(pitch), 3),
                     level_dbfs=float(rng.uniform(*LEVEL_DBFS)),
                     snr_db=float(rng.uniform(*snr_range)) if noisy else None,
                     noise_colour=float(rng.choice(NOISE_COLOURS)),
                     noise_seed=int(rng.integers(2**63)))


def _sentence_of_length(words: float, rng: np.random.Generator) -> Sentence:
    by_length = _train_sentences_by_length()
    length = min(by_length, key=lambda n: (abs(n - words), n))
    group = by_length[length]
    return group[rng.integers(len(group))]


@functools.lru_cache(maxsize=1)
def _train_sentences_by_length() -> dict[int, list[Sentence]]:
    by_length: dict[int, list[Sentence]] = {}
    for sentence in load_sentences()["train"]:
        by_length.setdefault(sentence.num_words, []).append(sentence)
    return by_length


def _spoken_text(sentences: list[Sentence]) -> str:
    return " ".join(s.spoken if s.spoken[-1] in ".?!" else s.spoken + "." for s in sentences)


def render(utt: Utterance) -> tuple[np.ndarray, str, str]:
    """Synthesize one utterance: (int16 samples at 16 kHz, transcription, phonemes)."""
    sentences = list(utt.sentences)
    lo, hi = PRETRAIN_SECONDS
    while True:
        audio, phonemes = synthesize_with_phonemes(utt.voice, _spoken_text(sentences), utt.rate, utt.pitch)
        too_long = len(audio) > hi * SAMPLE_RATE
        if not (SPLITS[utt.split].pretrain and too_long and len(sentences) > PRETRAIN_SENTENCES[0]):
            break
        sentences.pop()  # over 15 s: drop the last sentence and speak again
    transcription = " ".join(s.transcription for s in sentences)
    if SPLITS[utt.split].pretrain:
        if too_long:  # still over 15 s with two sentences: cut, and the label no longer fits
            audio, transcription, phonemes = audio[: int(hi * SAMPLE_RATE)], "", ""
        audio = np.pad(audio, (0, max(0, int(lo * SAMPLE_RATE) - len(audio))))
    audio = set_level(audio, utt.level_dbfs)
    if utt.snr_db is not None:
        noise_rng = np.random.default_rng(utt.noise_seed)
        audio = add_noise(audio, utt.snr_db, utt.noise_colour, noise_rng)
    return to_int16(audio), transcription, phonemes


def _with_phonemes(out_dir: str, utt: Utterance, record: dict) -> dict:
    """A record of an earlier run, without ``phonemes``, with them: the sentences of ``utt`` that its
    transcription holds, read by espeak-ng (no audio is made); the record is rewritten."""
    spoken = []
    for sentence in utt.sentences:
        if " ".join(s.transcription for s in spoken) == record["transcription"]:
            break
        spoken.append(sentence)
    phonemes = phonemes_of(utt.voice, _spoken_text(spoken)) if record["transcription"] else ""
    record = {**record, "phonemes": phonemes}
    _write_atomic(_paths(Path(out_dir), utt.split, utt.index)[1], json.dumps(record))
    return record


def _make(out_dir: str, utt: Utterance, reuse_split: str | None) -> dict:
    """Render ``utt`` (or copy it from ``reuse_split``) to disk; return its metadata row."""
    flac, record_path = _paths(Path(out_dir), utt.split, utt.index)
    partial = flac.with_name(f".{flac.name}.partial")
    source_flac, source = _paths(Path(out_dir), reuse_split or "-", utt.index)
    if reuse_split and source.exists():  # same stream and index: the same utterance
        record = json.loads(source.read_text())
        shutil.copyfile(source_flac, partial)
    else:
        samples, transcription, phonemes = render(utt)
        sf.write(partial, samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        record = {"transcription": transcription, "speaker": utt.voice.speaker,
                  "engine": utt.voice.engine, "duration": round(len(samples) / SAMPLE_RATE, 5),
                  "phonemes": phonemes}
    os.replace(partial, flac)
    record = {**record, "file_name": flac.name}
    _write_atomic(record_path, json.dumps(record))
    return record


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


class _InlineExecutor(Executor):
    """jobs=1: run each task at submission, in this process."""

    def submit(self, fn, /, *args, **kwargs):
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # re-raised by future.result()
            future.set_exception(exc)
        return future


def _generate_split(out: Path, config: CorpusConfig, split: str, pool: Executor, jobs: int,
                    bar: tqdm) -> dict:
    """Make utterances 0, 1, ... until their durations reach the split's target."""
    target = config.seconds(split)
    (out / split).mkdir(parents=True, exist_ok=True)
    record_dir = out / ".records" / split
    record_dir.mkdir(parents=True, exist_ok=True)
    reuse = "train_1h" if split == "train_10min" and config.seconds("train_1h") > 0 else None
    records: dict[int, dict] = {}
    start = bar.n
    pending: dict[Future, int] = {}
    next_index = 0
    max_pending = 2 * jobs if jobs > 1 else 1
    prior_s = 10.0 if SPLITS[split].pretrain else 2.5

    def head() -> tuple[int, float]:  # utterances in the contiguous head and their seconds
        count, total = 0, 0.0
        while count in records and total < target:
            total += records[count]["duration"]
            count += 1
        return count, total

    while True:
        count, total = head()
        if total >= target and not pending:
            break
        done_s = sum(r["duration"] for r in records.values())
        mean_s = done_s / len(records) if records else prior_s
        while (total < target and done_s + len(pending) * mean_s < target
               and len(pending) < max_pending):
            index, next_index = next_index, next_index + 1
            flac, record_path = _paths(out, split, index)
            if record_path.exists() and flac.exists():
                record = json.loads(record_path.read_text())  # made by an earlier run
                if "phonemes" not in record:  # ... before the column existed
                    pending[pool.submit(_with_phonemes, str(out), plan_utterance(config, split, index), record)] = index
                    continue
                records[index] = record
                done_s += record["duration"]
                continue
            utt = plan_utterance(config, split, index)
            pending[pool.submit(_make, str(out), utt, reuse)] = index
        if not pending:
            continue
        finished, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in finished:
            records[pending.pop(future)] = future.result()
        bar.update(start + min(head()[1], target) - bar.n)  # seconds kept, not made
    # Drop what was made past the target (here or by an earlier, interrupted run).
    for path in [*record_dir.iterdir(), *(out / split).iterdir()]:
        match = re.search(r"utt_(\d{6})\.", path.name)
        if path.name.endswith(".partial") or (match and int(match.group(1)) >= count):
            path.unlink()
    bar.update(start + target - bar.n)
    rows = [records[i] for i in range(count)]
    _write_metadata(out / split / "metadata.csv", rows)
    return {"utterances": count, "seconds": round(total, 3)}


def _write_metadata(path: Path, rows: list[dict]) -> None:
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METADATA_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, path)


def _mp_context():
    # fork: workers inherit the loaded sentences and skip re-importing w2v2 (torch).
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else None)


def generate_corpus(out_dir: str | os.PathLike, *, seed: int = 0, pretrain_minutes: float = 600.0,
                    train_10min_minutes: float = 10.0, train_1h_minutes: float = 60.0,
                    validation_minutes: float = 15.0, test_clean_minutes: float = 15.0,
                    test_other_minutes: float = 15.0, pretrain_noise_fraction: float = 0.3,
                    scale: float = 1.0, jobs: int = 1, progress: bool = False) -> dict:
    """Write (or finish writing) the corpus under ``out_dir``; see the module docstring."""
    config = CorpusConfig(seed=seed, pretrain_minutes=pretrain_minutes,
                          train_10min_minutes=train_10min_minutes,
                          train_1h_minutes=train_1h_minutes, validation_minutes=validation_minutes,
                          test_clean_minutes=test_clean_minutes,
                          test_other_minutes=test_other_minutes,
                          pretrain_noise_fraction=pretrain_noise_fraction, scale=scale)
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs={jobs!r} must be an integer >= 1, e.g. jobs={os.cpu_count()}")
    splits = [s for s in SPLITS if config.seconds(s) > 0]
    engines = {"festival"} if "test_other" in splits else set()
    if set(splits) - {"test_other"}:
        engines |= {"espeak-ng", "flite"}
    check_engines(engines)
    out = Path(out_dir)
    _is_complete(out, config)  # refuses a directory made with other arguments
    out.mkdir(parents=True, exist_ok=True)
    wanted = {"format_version": FORMAT_VERSION, "config": dataclasses.asdict(config)}
    manifest = out / "corpus.json"
    _write_atomic(manifest, json.dumps({**wanted, "complete": False}, indent=1))
    load_sentences()  # once, before forking workers
    start = time.perf_counter()
    summary = {}
    total_s = sum(config.seconds(s) for s in splits)
    pool = (ProcessPoolExecutor(jobs, mp_context=_mp_context()) if jobs > 1 else _InlineExecutor())
    bar_format = "{desc}{percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of audio [{elapsed}<{remaining}]"
    with pool, tqdm(total=total_s, disable=not progress, bar_format=bar_format) as bar:
        for split in splits:
            bar.set_description(split)
            summary[split] = _generate_split(out, config, split, pool, jobs, bar)
    _write_atomic(manifest, json.dumps({**wanted, "complete": True, "splits": summary}, indent=1))
    write_lm_text(out)
    seconds = sum(s["seconds"] for s in summary.values())
    return {"out_dir": str(out), "seconds": round(seconds, 3),
            "generated_in_s": round(time.perf_counter() - start, 2), "splits": summary}


def _is_complete(out: Path, config: CorpusConfig) -> bool:
    """Whether ``out`` holds this corpus, complete; ValueError if it holds another."""
    manifest = out / "corpus.json"
    if not manifest.exists():
        return False
    existing = json.loads(manifest.read_text())
    wanted = {"format_version": FORMAT_VERSION, "config": dataclasses.asdict(config)}
    if {k: existing.get(k) for k in wanted} != wanted:
        raise ValueError(f"{out} holds a corpus made with {existing.get('config')}, not "
                         f"{wanted['config']}; pass the same arguments to resume it, or "
                         "choose another out_dir (or delete it)")
    return bool(existing.get("complete"))


def default_corpus_dir() -> Path:
    """``$W2V2_CORPUS_DIR``, else ``~/.cache/w2v2/synth-corpus``."""
    env = os.environ.get("W2V2_CORPUS_DIR")
    return Path(env) if env else Path.home() / ".cache" / "w2v2" / "synth-corpus"


def ensure_corpus(out_dir: str | os.PathLike | None = None, *, phonemes: bool = False, **kwargs) -> Path:
    """The corpus directory, generated (or finished) only when not already complete.

    ``kwargs`` are those of :func:`generate_corpus`; a complete corpus made with other
    arguments raises ValueError. ``phonemes=True``: a corpus made before the ``phonemes`` column
    existed gets it (espeak-ng reads the texts again; the audio is kept).
    """
    out = Path(out_dir) if out_dir is not None else default_corpus_dir()
    config = CorpusConfig(**{k: v for k, v in kwargs.items() if k not in ("jobs", "progress")})
    if not _is_complete(out, config) or (phonemes and not has_phonemes(out)):
        generate_corpus(out, **kwargs)
    if not (out / LM_TEXT_FILE).exists():
        write_lm_text(out)
    return out


def has_phonemes(out_dir: str | os.PathLike) -> bool:
    """Whether every split's metadata.csv has the ``phonemes`` column (older corpora lack it)."""
    files = [Path(out_dir) / s / "metadata.csv" for s in SPLITS]
    return all("phonemes" in f.open().readline().strip().split(",") for f in files if f.exists())


def write_lm_text(out_dir: str | os.PathLike) -> Path:
    """``OUT/lm_text.txt``: the transcriptions of the sentence pool's ``train`` part, one a line,
    less every sentence read in the corpus's validation and test splits (disjoint by the hash of
    ``w2v2.data.text`` already; checked against their ``metadata.csv`` all the same)."""
    out = Path(out_dir)
    held_out = set()
    for split in HELD_OUT_SPLITS:
        if (out / split / "metadata.csv").exists():
            with open(out / split / "metadata.csv", newline="") as f:
                held_out.update(row["transcription"] for row in csv.DictReader(f))
    lines = [s.transcription for s in load_sentences()["train"] if s.transcription not in held_out]
    path = out / LM_TEXT_FILE
    _write_atomic(path, "\n".join(lines) + "\n")
    return path


def load_corpus(out_dir: str | os.PathLike, splits: list[str] | None = None, **load_kwargs):
    """The corpus as a ``datasets.DatasetDict`` (one ``audiofolder`` per split).

    ``load_kwargs`` go to ``datasets.load_dataset`` (e.g. ``cache_dir``).
    """
    import datasets  # heavy: only when asked

    out = Path(out_dir)
    splits = splits or [s for s in SPLITS if (out / s / "metadata.csv").exists()]
    missing = [s for s in splits if not (out / s / "metadata.csv").exists()]
    if missing:
        raise ValueError(f"splits {missing} not found under {out}; generate them with "
                         f"w2v2-synth-corpus --out {out}")
    # One audiofolder per split directory: with data_dir=OUT, datasets would merge
    # train_10min with train_1h (and test_clean with test_other) by their names.
    return datasets.DatasetDict({
        s: datasets.load_dataset("audiofolder", data_dir=str(out / s), split="train", **load_kwargs)
        for s in splits})


def _parse_args(argv: list[str] | None) -> tuple[Path, CorpusConfig, int]:
    parser = argparse.ArgumentParser(
        prog="w2v2-synth-corpus", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=default_corpus_dir(), help="output directory")
    for option in dataclasses.fields(CorpusConfig):
        parser.add_argument(f"--{option.name.replace('_', '-')}", default=option.default,
                            type={"int": int, "float": float}[option.type], **option.metadata)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    args = parser.parse_args(argv)
    config = CorpusConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(CorpusConfig)})
    return args.out, config, args.jobs


def main(argv: list[str] | None = None) -> None:
    out, config, jobs = _parse_args(argv)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file, not a folder; choose a new folder (or the corpus folder to finish).")
    try:
        summary = generate_corpus(out, **dataclasses.asdict(config), jobs=jobs, progress=True)
    except KeyboardInterrupt:
        raise SystemExit(f"\ninterrupted: run the same command again to resume ({out})")
    for split, info in summary["splits"].items():
        print(f"{split:12s} {info['utterances']:6d} utterances {info['seconds'] / 60:8.2f} min")
    print(f"wrote {summary['seconds'] / 3600:.2f} h of audio to {out} "
          f"in {summary['generated_in_s']:.0f} s")


def cli() -> None:
    """``w2v2-synth-corpus``: an error in the input is one line and exit status 2 (w2v2.cli_errors)."""
    from w2v2.cli_errors import run_cli

    run_cli(main)


if __name__ == "__main__":
    cli()
