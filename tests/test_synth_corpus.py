"""The synthetic demo corpus (w2v2.data.synth): a tiny corpus, made once per module."""

import csv
import filecmp
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from w2v2.data import synth
from w2v2.data.synth import SPLITS, CorpusConfig, ensure_corpus, generate_corpus, load_corpus
from w2v2.data.text import load_sentences, sentence_part, spoken_and_label
from w2v2.data.tts import add_noise, voices

# About a minute of audio in all: a couple of seconds to make.
TINY = dict(seed=0, pretrain_minutes=0.3, train_10min_minutes=0.1, train_1h_minutes=0.2,
            validation_minutes=0.1, test_clean_minutes=0.1, test_other_minutes=0.1)
TRAINING_SPLITS = ("pretrain", "train_10min", "train_1h")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "corpus"
    generate_corpus(out, **TINY)
    return out


def read_metadata(corpus: Path, split: str) -> list[dict]:
    with open(corpus / split / "metadata.csv", newline="") as f:
        return list(csv.DictReader(f))


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_every_split_reaches_its_target_and_stops(corpus):
    summary = json.loads((corpus / "corpus.json").read_text())
    assert summary["complete"] is True
    config = CorpusConfig(**TINY)
    for split in SPLITS:
        rows = read_metadata(corpus, split)
        durations = [float(r["duration"]) for r in rows]
        target = config.seconds(split)
        # The total reaches the target, and would not without the last utterance.
        assert sum(durations) >= target > sum(durations[:-1]), split
        assert summary["splits"][split]["utterances"] == len(rows)
        assert sorted(p.name for p in (corpus / split).glob("*.flac")) == [r["file_name"] for r in rows]
    pretrain = [float(r["duration"]) for r in read_metadata(corpus, "pretrain")]
    assert all(5.0 <= d <= 15.0 for d in pretrain)
    # train_10min is the head of train_1h, as in Libri-light.
    head = read_metadata(corpus, "train_10min")
    assert head == read_metadata(corpus, "train_1h")[: len(head)]
    assert filecmp.cmp(corpus / "train_10min" / head[0]["file_name"],
                       corpus / "train_1h" / head[0]["file_name"], shallow=False)


def test_audiofolder_loads_every_split_with_matching_durations(corpus, tmp_path):
    import datasets

    for split in SPLITS:
        dset = datasets.load_dataset("audiofolder", data_dir=str(corpus / split), split="train",
                                     cache_dir=str(tmp_path / "hf"))
        assert dset.column_names == ["audio", "transcription", "speaker", "engine", "duration", "phonemes"]
        assert len(dset) == len(read_metadata(corpus, split))
        for example in dset:
            samples = example["audio"].get_all_samples()  # torchcodec AudioDecoder
            assert samples.sample_rate == 16_000
            assert samples.data.shape[0] == 1  # mono
            assert samples.data.shape[1] / 16_000 == pytest.approx(example["duration"], abs=1e-4)
            assert samples.data.abs().max() > 0.05  # speech, not silence
            if split != "pretrain":
                assert example["transcription"]
    assert list(load_corpus(corpus, cache_dir=str(tmp_path / "hf"))) == list(SPLITS)


def test_train_and_test_sentences_are_disjoint(corpus):
    parts = load_sentences()
    spoken = {part: {s.transcription for s in sentences} for part, sentences in parts.items()}
    assert not spoken["train"] & spoken["test"]
    assert not spoken["train"] & spoken["validation"]
    assert all(sentence_part(t) == "test" for t in list(spoken["test"])[:1000])
    expected = {"train_10min": "train", "train_1h": "train", "validation": "validation",
                "test_clean": "test", "test_other": "test"}
    for split, part in expected.items():
        for row in read_metadata(corpus, split):
            assert row["transcription"] in spoken[part], (split, row["transcription"])
    test_texts = {r["transcription"] for s in ("test_clean", "test_other") for r in read_metadata(corpus, s)}
    for row in read_metadata(corpus, "pretrain"):
        assert not any(t in row["transcription"] for t in test_texts)


def test_held_out_voices_and_engine_never_in_training(corpus):
    training = {r["speaker"] for s in TRAINING_SPLITS + ("validation",)
                for r in read_metadata(corpus, s)}
    training_engines = {r["engine"] for s in TRAINING_SPLITS for r in read_metadata(corpus, s)}
    clean = read_metadata(corpus, "test_clean")
    assert clean and not {r["speaker"] for r in clean} & training
    assert {r["engine"] for r in clean} <= {"espeak-ng", "flite"}
    assert {r["engine"] for r in read_metadata(corpus, "test_other")} == {"festival"}
    assert "festival" not in training_engines
    # The same holds for every utterance a big corpus would plan, not just this tiny one.
    config = CorpusConfig(**TINY)
    train_voices = set(voices("espeak-ng", False) + voices("flite", False))
    planned = {split: {synth.plan_utterance(config, split, i).voice for i in range(200)}
               for split in ("pretrain", "train_1h", "test_clean", "test_other")}
    assert planned["pretrain"] | planned["train_1h"] <= train_voices
    assert not planned["test_clean"] & train_voices
    assert {v.engine for v in planned["test_other"]} == {"festival"}
    assert len(planned["pretrain"]) > 100  # many voices, not a handful


def test_same_seed_gives_identical_bytes_from_the_command_line(corpus, tmp_path):
    # Another run, through the CLI and with two workers: byte-identical files.
    args = ["--out", str(tmp_path / "again"), "--jobs", "2"]
    for key, value in TINY.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    synth.main(args)
    assert tree(tmp_path / "again") == tree(corpus)
    for name in tree(corpus):
        assert filecmp.cmp(corpus / name, tmp_path / "again" / name, shallow=False), name


def test_other_seed_gives_other_audio():
    config, other = CorpusConfig(seed=0), CorpusConfig(seed=1)
    plans = [(synth.plan_utterance(config, "train_1h", i), synth.plan_utterance(other, "train_1h", i))
             for i in range(5)]
    assert all(a.sentences != b.sentences or a.voice != b.voice for a, b in plans)


def test_interrupted_run_resumes(corpus, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(corpus, copy)
    # As if killed mid-way: metadata missing, one utterance lost, a half-written file.
    flac = copy / "validation" / "utt_000001.flac"
    flac.unlink()
    (copy / ".records" / "validation" / "utt_000001.json").unlink()
    (copy / "validation" / "metadata.csv").unlink()
    (copy / "validation" / ".utt_000002.flac.partial").write_bytes(b"junk")
    mtime = (copy / "pretrain" / "utt_000000.flac").stat().st_mtime_ns
    generate_corpus(copy, **TINY)
    assert tree(copy) == tree(corpus)
    assert filecmp.cmp(flac, corpus / "validation" / "utt_000001.flac", shallow=False)
    metadata = Path("validation") / "metadata.csv"
    assert (copy / metadata).read_bytes() == (corpus / metadata).read_bytes()
    assert (copy / "pretrain" / "utt_000000.flac").stat().st_mtime_ns == mtime  # not redone
    with pytest.raises(ValueError, match="pass the same arguments"):
        generate_corpus(copy, **{**TINY, "seed": 1})


def test_ensure_corpus_generates_only_when_missing(corpus, monkeypatch):
    monkeypatch.setattr(synth, "generate_corpus", lambda *a, **k: pytest.fail("regenerated"))
    assert ensure_corpus(corpus, **TINY) == corpus


@pytest.mark.parametrize("kwargs, message", [
    (dict(seed=-1), "seed=-1"),
    (dict(pretrain_minutes=-5), "pretrain_minutes=-5"),
    (dict(pretrain_noise_fraction=2.0), "pretrain_noise_fraction=2.0"),
    (dict(scale=0), "scale=0"),
])
def test_config_refuses_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CorpusConfig(**kwargs)


def test_generate_refuses_bad_jobs(tmp_path):
    with pytest.raises(ValueError, match="jobs=0"):
        generate_corpus(tmp_path, jobs=0)


@pytest.mark.parametrize("text, expected", [
    ("And God said, Let there be light: and there was light.",
     ("and god said, let there be light: and there was light.",
      "AND GOD SAID LET THERE BE LIGHT AND THERE WAS LIGHT")),
    ("the final sounds of `bets' and `beds' differ", ("the final sounds of bets and beds differ",
                                                      "THE FINAL SOUNDS OF BETS AND BEDS DIFFER")),
    ("a well-known fact (they said) to the king's men",
     ("a well known fact they said to the king's men", "A WELL KNOWN FACT THEY SAID TO THE KING'S MEN")),
    ("he paid 50 dollars for it", None),  # digits
    ("Mr. Smith went to Washington", None),  # abbreviation read differently
    ("the NATO summit was held", None),  # acronym spelled out
    ("too short here", None),
    ("word " * 31, None),
])
def test_spoken_and_label(text, expected):
    assert spoken_and_label(text) == expected


def test_noise_has_the_requested_snr():
    t = np.arange(16_000) / 16_000
    speech = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    for colour in (0.0, 1.0, 2.0):
        noisy = add_noise(speech, snr_db=10.0, colour=colour, rng=np.random.default_rng(0))
        noise = noisy - speech
        snr = 10 * np.log10(np.mean(speech**2) / np.mean(noise**2))
        assert snr == pytest.approx(10.0, abs=0.1)
