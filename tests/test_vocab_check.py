"""A vocabulary given with --processor_name_or_path is checked against the transcripts (issue 22)."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from finetune_helpers import UTTERANCES, write_audiofolder

from w2v2.processing import W2V2CTCTokenizer, W2V2FeatureExtractor, W2V2Processor
from w2v2.training.finetune import DataArguments, ModelArguments, build_processor
from w2v2.training.vocab_check import check_vocabulary_coverage

LOWER = [t.lower() for t in UTTERANCES]


@pytest.fixture(scope="module")
def lower_vocab():
    return W2V2CTCTokenizer.from_texts(LOWER)


# (case, tokenizer's case_folding, {split: transcripts}, fragments of the error or None, missing count)
CASES = [
    ("covered", None, {"train": LOWER}, None, 0),
    ("upper-case transcripts", None, {"train": list(UTTERANCES)}, ["100.0% of the characters of the train transcripts",
                                                                  "'O' x", "--case_folding lower"], None),
    ("folded by the tokenizer", "lower", {"train": list(UTTERANCES)}, None, 0),
    ("under the limit: warned", None, {"train": LOWER * 10, "validation": ["hello wörld"]}, None, 1),
    ("another script", None, {"train": LOWER, "test": ["αβγ δεζ"] * 20}, ["of the train/test transcripts", "'α' x20",
                                                                      "--chars_to_ignore", "drop --processor_name_or_path"], None),
]  # fmt: skip


@pytest.mark.parametrize("case,folding,transcripts,error,missing", CASES, ids=[c[0] for c in CASES])
def test_check_vocabulary_coverage(lower_vocab, caplog, case, folding, transcripts, error, missing):
    tokenizer = W2V2CTCTokenizer(vocab=lower_vocab.get_vocab(), case_folding=folding)
    if error:
        with pytest.raises(ValueError) as raised:
            check_vocabulary_coverage(tokenizer, transcripts, source="DIR")
        message = str(raised.value)
        assert "\n" not in message and "DIR" in message
        for fragment in error:
            assert fragment in message
        return
    with caplog.at_level(logging.WARNING, logger="w2v2.training.vocab_check"):
        found = check_vocabulary_coverage(tokenizer, transcripts, source="DIR")
    assert sum(found.values()) == missing
    warned = [r.getMessage() for r in caplog.records if r.name == "w2v2.training.vocab_check"]
    assert (warned and f"{missing} characters of the train/validation transcripts" in warned[0]) if missing else not warned


def test_build_processor_applies_case_folding_to_a_given_processor(lower_vocab, tmp_path):
    datasets = pytest.importorskip("datasets")
    W2V2Processor(W2V2FeatureExtractor(), lower_vocab).save_pretrained(tmp_path / "proc")
    train = datasets.Dataset.from_dict({"transcription": list(UTTERANCES)})
    data_args = DataArguments(dataset_name_or_path="unused", train_split="train")
    given = ModelArguments(from_scratch=True, processor_name_or_path=str(tmp_path / "proc"))
    with pytest.raises(ValueError, match="--case_folding lower"):
        build_processor(given, data_args, train)
    given.case_folding = "lower"
    processor = build_processor(given, data_args, train)
    assert processor.tokenizer("HELLO WORLD").input_ids == lower_vocab("hello world").input_ids
    processor.save_pretrained(tmp_path / "saved")  # the folding travels with the saved model
    assert W2V2CTCTokenizer.from_pretrained(tmp_path / "saved").case_folding == "lower"
    bad_eval = {"validation": datasets.Dataset.from_dict({"transcription": ["ΑΒΓ"] * 20})}
    with pytest.raises(ValueError, match="train/validation transcripts"):
        build_processor(given, data_args, train, bad_eval)
    given.case_folding = "upper"  # a vocabulary without upper-case letters
    with pytest.raises(ValueError, match="use case_folding='lower'"):
        build_processor(given, data_args, train)


def test_cli_stops_on_a_vocabulary_of_the_wrong_case(lower_vocab, tmp_path):
    write_audiofolder(tmp_path / "data")  # upper-case transcripts
    W2V2Processor(W2V2FeatureExtractor(), lower_vocab).save_pretrained(tmp_path / "proc")
    argv = [str(Path(sys.executable).parent / "w2v2-finetune"), "--dataset_name_or_path", str(tmp_path / "data"),
            "--train_split", "train", "--eval_split", "train", "--test_splits", "train", "--from_scratch",
            "--processor_name_or_path", str(tmp_path / "proc"), "--output_dir", str(tmp_path / "out"), "--max_steps", "1",
            "--use_cpu"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TQDM_DISABLE": "1"})  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 100.0% of the characters of the train transcripts")
    assert "--case_folding lower" in last and str(tmp_path / "proc") in last
    assert not (tmp_path / "out" / "model.safetensors").exists()
