"""Word LMs as part of the model (issue 17): w2v2-build-lm, W2V2ProcessorWithLM, the ASR
pipeline, w2v2-transcribe and w2v2-finetune --lm, saved in the model folder and on the Hub.

One tiny model is fine-tuned with ``--lm`` (module fixture, ~15 s on one thread); its folder,
which then holds ``language_model/``, serves the other tests but the pipeline's, which uses
test_pipeline.py's model trained for chunked audio (~11 s).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from finetune_helpers import UTTERANCES, train_tiny_ctc, write_audiofolder
from test_language_model import _log_probs  # frames spelling a text, with chosen confusions
from test_pipeline import CHUNK_S, SR, STEP_S, STRIDE_S, TEXT, asr_dir  # noqa: F401  (asr_dir: a fixture)

from w2v2 import W2V2CTCTokenizer, W2V2FeatureExtractor, W2V2Processor, W2V2ProcessorWithLM
from w2v2.training import build_lm
from w2v2.training.language_model import LM_FILES, build_lm_folder

pytest.importorskip("pyctcdecode")
pytest.importorskip("kenlm")

REPO_ROOT = Path(__file__).resolve().parents[1]
# The LM's text: the spoken utterances among other sentences, lower case with punctuation (as
# a raw text file would be), one character (7) outside the vocabulary.
LM_TEXT = ["Hello world!", "good morning, world.", "Open the door.", "the blue sky", "open the blue door",
           "good morning sky", "hello blue sky", "the door is open", "world 7 door"]  # fmt: skip


# "OPEN THE DOOR" with the first O of DOOR (character 10 of OPEN|THE|DOOR) looking like U
CONFUSED = ("OPEN THE DOOR", {10: ("U", 0.5)})


@pytest.fixture(scope="module")
def lm_model(tmp_path_factory):
    """``(model folder, LM folder, FinetuneResult)``: a tiny model fine-tuned with ``--lm``."""
    root = tmp_path_factory.mktemp("lm_model")
    (root / "lm_text.txt").write_text("\n".join(LM_TEXT) + "\n")
    build_lm_folder([root / "lm_text.txt"], root / "lm", order=3, tokenizer=W2V2CTCTokenizer.from_texts(UTTERANCES))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train_tiny_ctc(root, lm=str(root / "lm"))
    finally:
        torch.set_num_threads(threads)
    return Path(result.output_dir), root / "lm", result


def test_build_lm_command_writes_arpa_binary_unigrams_from_normalised_text(tmp_path, capsys):
    tokenizer = W2V2CTCTokenizer.from_texts(UTTERANCES)
    tokenizer.save_pretrained(tmp_path / "model")
    (tmp_path / "text.txt").write_text("\n".join(LM_TEXT) + "\n")
    report = build_lm.main(["--text", str(tmp_path / "text.txt"), "--order", "3", "--out", str(tmp_path / "lm"),
                            "--model", str(tmp_path / "model")])  # fmt: skip
    assert sorted(os.listdir(tmp_path / "lm")) == sorted(LM_FILES)
    assert report["characters_outside_vocabulary"] == {"7": 1} and "outside the vocabulary (7)" in capsys.readouterr().err
    assert report["sentences"] == len(LM_TEXT) and report["binary"] is True
    # upper case as the vocabulary, punctuation gone: the words the decoder can spell
    unigrams = (tmp_path / "lm" / "unigrams.txt").read_text().split()
    assert unigrams == sorted({w for line in LM_TEXT for w in line.upper().replace("!", "").replace(",", "").replace(".", "").split()})
    arpa = (tmp_path / "lm" / "lm.arpa").read_text()
    assert "ngram 3=" in arpa and "\tWORLD" in arpa and "world" not in arpa
    import kenlm

    binary = kenlm.Model(str(tmp_path / "lm" / "lm.bin"))
    assert binary.order == 3 and binary.score("OPEN THE DOOR") > binary.score("DOOR THE OPEN")
    # an earlier LM folder may be rebuilt in place
    assert build_lm.main(["--text", str(tmp_path / "text.txt"), "--order", "2", "--out", str(tmp_path / "lm")])["order"] == 2


@pytest.mark.parametrize("change, message", [
    ({"text": ["missing.txt"]}, "missing.txt do not exist"),
    ({"text": ["empty.txt"]}, "every line is empty"),
    ({"order": 1}, "order=1"),
    ({"out": "occupied"}, r"holds files w2v2-build-lm did not write \(notes.md\)"),
])  # fmt: skip
def test_build_lm_refuses_bad_input_with_the_value_and_the_fix(tmp_path, change, message):
    (tmp_path / "text.txt").write_text("hello world\n")
    (tmp_path / "empty.txt").write_text("\n  \n.,!\n")
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "notes.md").write_text("mine")
    args = {"text": ["text.txt"], "order": 3, "out": "lm", **change}
    with pytest.raises(ValueError, match=message):
        build_lm_folder([tmp_path / t for t in args["text"]], tmp_path / args["out"], order=args["order"])
    assert not (tmp_path / "lm").exists() and (tmp_path / "occupied" / "notes.md").read_text() == "mine"


def test_processor_beam_search_finds_what_greedy_misses_and_survives_save_and_reload(lm_model, tmp_path):
    _, lm, _ = lm_model
    tokenizer = W2V2CTCTokenizer.from_texts(UTTERANCES)
    base = W2V2Processor(W2V2FeatureExtractor(), tokenizer)
    processor = W2V2ProcessorWithLM.from_processor(base, lm, alpha=1.0, beta=1.0, beam_width=16)
    log_probs = _log_probs(tokenizer, *CONFUSED)
    greedy = base.batch_decode(log_probs.argmax(-1)[None])
    assert greedy == ["OPEN THE DUOR"]
    assert processor.batch_decode(log_probs.argmax(-1)[None]) == greedy  # ids: greedy, as W2V2Processor
    assert processor.batch_decode(log_probs[None]) == ["OPEN THE DOOR"]
    assert processor.batch_decode(torch.from_numpy(log_probs)[None]) == ["OPEN THE DOOR"]
    out = processor.decode(log_probs, output_word_offsets=True)
    assert out.text == "OPEN THE DOOR" and [w["word"] for w in out.word_offsets] == ["OPEN", "THE", "DOOR"]
    assert all(0 <= w["start_offset"] < w["end_offset"] <= len(log_probs) for w in out.word_offsets)

    processor.save_pretrained(tmp_path / "saved")
    assert sorted(os.listdir(tmp_path / "saved" / "language_model")) == ["attrs.json", "lm.bin", "unigrams.txt"]
    assert (tmp_path / "saved" / "alphabet.json").is_file()
    assert json.loads((tmp_path / "saved" / "language_model" / "attrs.json").read_text())["alpha"] == 1.0
    from transformers import AutoProcessor

    for loader in (W2V2ProcessorWithLM.from_pretrained, AutoProcessor.from_pretrained):
        loaded = loader(tmp_path / "saved")
        assert type(loaded) is W2V2ProcessorWithLM
        assert (loaded.decoder.alpha, loaded.decoder.beta, loaded.decoder.beam_width) == (1.0, 1.0, 16)
        assert loaded.batch_decode(log_probs[None]) == ["OPEN THE DOOR"]
    assert type(W2V2Processor.from_pretrained(tmp_path / "saved")) is W2V2Processor  # unchanged
    base.save_pretrained(tmp_path / "plain")
    with pytest.raises(ValueError, match="has no language_model/"):
        W2V2ProcessorWithLM.from_pretrained(tmp_path / "plain")


def test_finetune_with_lm_reports_greedy_and_lm_scores_and_ships_the_lm(lm_model):
    model_dir, _, result = lm_model
    results = json.loads((model_dir / "all_results.json").read_text())
    assert {"train_wer", "train_cer", "train_wer_lm", "train_cer_lm"} <= set(results)
    assert results["train_wer"] == 0.0 and results["train_wer_lm"] == 0.0 and results["train_cer_lm"] == 0.0
    assert "train_wer_lm" in (model_dir / "README.md").read_text()
    assert sorted(os.listdir(model_dir / "language_model")) == ["attrs.json", "lm.bin", "unigrams.txt"]
    processor = W2V2ProcessorWithLM.from_pretrained(model_dir)
    assert processor.batch_decode(_log_probs(processor.tokenizer, *CONFUSED)[None]) == ["OPEN THE DOOR"]


def test_finetune_refuses_a_missing_lm_before_training(tmp_path):
    from w2v2.training.finetune import main

    write_audiofolder(tmp_path / "data", UTTERANCES[:1])
    with pytest.raises(ValueError, match="nothing.arpa"):
        main(["--from_scratch", "--dataset_name_or_path", str(tmp_path / "data"), "--train_split", "train",
              "--eval_split", "", "--test_splits", "train", "--output_dir", str(tmp_path / "out"), "--max_steps", "1",
              "--use_cpu", "--lm", str(tmp_path / "nothing.arpa")])  # fmt: skip
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_pipeline_decodes_with_the_folders_lm_in_chunks_with_word_timestamps(asr_dir, tmp_path):
    """On test_pipeline.py's model, trained so that every window of its long audio holds the utterance."""
    from transformers import pipeline

    from w2v2 import asr_pipeline_with_lm

    folder, clip, _ = asr_dir
    model_dir = shutil.copytree(folder, tmp_path / "asr")
    (tmp_path / "text.txt").write_text("hello world\nhello hello world\nworld hello\n")
    build_lm_folder([tmp_path / "text.txt"], tmp_path / "lm", order=2, tokenizer=W2V2CTCTokenizer.from_pretrained(model_dir))
    W2V2ProcessorWithLM.from_processor(W2V2Processor.from_pretrained(model_dir), tmp_path / "lm", alpha=0.7).save_pretrained(model_dir)
    step = int(STEP_S * SR)
    long_audio = np.concatenate([clip[:step], clip[:step], clip])  # the utterance three times, 4.0 s
    greedy = pipeline("automatic-speech-recognition", model=str(folder))
    want = greedy(long_audio, chunk_length_s=CHUNK_S, stride_length_s=STRIDE_S, return_timestamps="word")["chunks"]
    assert [c["text"] for c in want] == TEXT.split() * 3
    for asr in (pipeline("automatic-speech-recognition", model=str(model_dir)), asr_pipeline_with_lm(str(model_dir))):
        assert asr.type == "ctc_with_lm" and asr.decoder._language_model.alpha == 0.7  # the folder's LM and weights
        assert asr(clip)["text"] == TEXT
        out = asr(long_audio, chunk_length_s=CHUNK_S, stride_length_s=STRIDE_S, return_timestamps="word")
        assert out["text"] == " ".join(TEXT.split() * 3)
        assert [c["text"] for c in out["chunks"]] == TEXT.split() * 3
        # the LM's word spans are the greedy ones within 3 frames (pyctcdecode ends a word later, at the
        # frame before the delimiter); each in the right window, k * 1.2 s later than the first
        for got, ref in zip(out["chunks"], want):
            assert got["timestamp"] == pytest.approx(ref["timestamp"], abs=0.061)


def _misspelling_copy(model_dir: Path, dest: Path) -> Path:
    """The model with its CTC head's bias for U raised just past the one frame (of the training
    files) where the best token leads U the least: greedy decoding then reads one U too many, and
    the LM, whose words hold no such U, can mend it (the displaced token stays close, above the
    log-prob floor under which pyctcdecode prunes tokens)."""
    import soundfile as sf

    from w2v2 import W2V2ForCTC

    shutil.copytree(model_dir, dest, ignore=shutil.ignore_patterns("checkpoint-*", "model.safetensors"))
    model, processor = W2V2ForCTC.from_pretrained(model_dir).eval(), W2V2Processor.from_pretrained(model_dir)
    u = processor.tokenizer.convert_tokens_to_ids("U")
    margins = []
    for path in sorted((model_dir.parent / "data" / "train").glob("*.flac")):
        audio, rate = sf.read(path, dtype="float32")
        with torch.no_grad():
            logits = model(**processor.feature_extractor(audio, sampling_rate=rate, return_tensors="pt")).logits[0]  # (T, V)
        margins += (logits.max(-1).values - logits[:, u])[logits.argmax(-1) != u].tolist()
    first, second = sorted(margins)[:2]
    with torch.no_grad():
        model.lm_head.bias[u] += first + min(0.5, (second - first) / 2)
    model.save_pretrained(dest)
    return dest


def test_transcribe_command_uses_the_folders_lm_unless_told_not_to(lm_model, tmp_path):
    from w2v2.inference.transcribe import main

    model_dir, _, _ = lm_model
    misspelling = _misspelling_copy(model_dir, tmp_path / "misspelling")
    files = [str(p) for p in sorted((model_dir.parent / "data" / "train").glob("*.flac"))]
    greedy = [r["text"] for r in main(["--model_name_or_path", str(misspelling), "--inputs", *files, "--no_lm", "--progress", "false"])]
    wrong = [g for g, ref in zip(greedy, UTTERANCES) if g != ref]
    assert len(wrong) == 1 and wrong[0].count("U") > next(r for r in UTTERANCES if r not in greedy).count("U")
    run = subprocess.run([sys.executable, "-m", "w2v2.inference.transcribe", "--model_name_or_path", str(misspelling),
                          "--inputs", *files, "--output_format", "json", "--word_timestamps", "--progress", "false"],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout)
    assert [r["text"] for r in results] == list(UTTERANCES)  # the folder's language_model/ mended it
    assert [[w["word"] for w in r["words"]] for r in results] == [t.split() for t in UTTERANCES]
    with pytest.raises(ValueError, match="contradict"):
        main(["--model_name_or_path", str(misspelling), "--inputs", files[0], "--no_lm", "--lm", str(misspelling)])


def test_one_command_tunes_alpha_beta_on_a_split_and_attaches_the_lm(lm_model, tmp_path):
    model_dir, _, _ = lm_model
    misspelling = _misspelling_copy(model_dir, tmp_path / "misspelling")
    shutil.rmtree(misspelling / "language_model")
    grid = {"alphas": (0.0, 1.0), "betas": (-20.0, 0.0)}
    report = build_lm.main(["--text", str(model_dir.parent / "lm_text.txt"), "--order", "3", "--out", str(tmp_path / "lm"),
                            "--model", str(misspelling), "--tune_dataset", str(model_dir.parent / "data"), "--tune_split", "train",
                            "--alphas", *map(str, grid["alphas"]), "--betas", *map(str, grid["betas"]), "--attach"])  # fmt: skip
    # The same grid scored here, pair by pair: the command keeps the first pair of lowest WER.
    # (pyctcdecode's penalty on words outside the LM's unigrams applies at any alpha, so alpha 0
    # mends a one-letter misspelling too; which pairs tie depends on the trained model.)
    from datasets import load_dataset

    from w2v2 import W2V2ForCTC
    from w2v2.processing.lm_decoder import NgramCTCDecoder
    from w2v2.training.language_model import split_log_probs
    from w2v2.training.metrics import load_wer_cer

    model, processor = W2V2ForCTC.from_pretrained(misspelling).eval(), W2V2Processor.from_pretrained(misspelling)
    split = load_dataset("audiofolder", data_dir=str(model_dir.parent / "data"), split="train")
    log_probs, references = split_log_probs(model, processor, split)
    metric, decoder = load_wer_cer(), NgramCTCDecoder(processor.tokenizer, tmp_path / "lm")
    greedy = metric.compute(predictions=processor.tokenizer.batch_decode([lp.argmax(-1) for lp in log_probs]), references=references)
    assert greedy["wer"] > 0  # the misspelling is there without the LM
    scores = {}
    for alpha in grid["alphas"]:
        for beta in grid["betas"]:
            decoder.set_weights(alpha, beta)
            scores[alpha, beta] = metric.compute(predictions=[decoder(lp)[0] for lp in log_probs], references=references)
    best = min(scores, key=lambda pair: scores[pair]["wer"])  # the first of the lowest, in grid order
    assert report["tuned"] == {"split": "train", "utterances": 4, "alpha": best[0], "beta": best[1], **scores[best]}
    assert scores[best]["wer"] == 0.0  # the LM mends the misspelling
    assert json.loads((tmp_path / "lm" / "attrs.json").read_text())["alpha"] == best[0]
    attached = W2V2ProcessorWithLM.from_pretrained(misspelling)
    assert (attached.decoder.alpha, attached.decoder.beta) == best


def test_corpus_lm_text_is_the_sentence_pool_less_held_out_sentences(tmp_path):
    from w2v2.data import synth
    from w2v2.data.text import load_sentences

    pool = load_sentences()
    read_in_validation = pool["train"][0].transcription  # as if a held-out split had read a pool sentence
    (tmp_path / "validation").mkdir()
    (tmp_path / "validation" / "metadata.csv").write_text(f"file_name,transcription\nutt_000000.flac,{read_in_validation}\n")
    lines = synth.write_lm_text(tmp_path).read_text().splitlines()
    held_out = {s.transcription for part in ("validation", "test") for s in pool[part]}
    assert len(lines) == len(pool["train"]) - 1 and read_in_validation not in lines
    assert not held_out & set(lines)


# In a fresh process with an empty cache: push the model folder, then load it back from the Hub.
PUSH_AND_LOAD = """
import numpy as np
from transformers import AutoProcessor
from w2v2 import W2V2ProcessorWithLM
from w2v2.hub import push_to_hub

push_to_hub(MODEL_DIR, "alice/tiny-with-lm")
processor = W2V2ProcessorWithLM.from_pretrained("alice/tiny-with-lm")
log_probs = np.load("confused.npy")
seen = {"type": type(processor).__name__, "auto": type(AutoProcessor.from_pretrained("alice/tiny-with-lm")).__name__,
        "lm": processor.batch_decode(log_probs[None]), "greedy": processor.batch_decode(log_probs.argmax(-1)[None]),
        "weights": [processor.decoder.alpha, processor.decoder.beta], "from_hub": "tiny-with-lm" in str(processor.decoder.lm_file)}
print(json.dumps(seen))
"""


@pytest.mark.hub
def test_pushed_with_the_model_and_reloaded_from_the_hub_in_a_fresh_process(lm_model, hub_server, tmp_path):
    from test_hub import run_client

    model_dir, _, _ = lm_model
    tokenizer = W2V2CTCTokenizer.from_pretrained(model_dir)
    np.save(tmp_path / "confused.npy", _log_probs(tokenizer, *CONFUSED))
    alice = hub_server.token_of("alice")
    seen = run_client(hub_server, PUSH_AND_LOAD, tmp_path, token=alice, MODEL_DIR=str(model_dir))
    repo = hub_server.store.repos["model:alice/tiny-with-lm"]
    tree = repo["commits"][repo["heads"]["main"]]["tree"]
    assert {"alphabet.json", "language_model/attrs.json", "language_model/unigrams.txt", "language_model/lm.bin"} <= set(tree)
    # w2v2-finetune saves transformers' format: AutoProcessor follows its names (tests/test_interop.py, hub._name_a_processor_that_loads)
    assert seen == {"type": "W2V2ProcessorWithLM", "auto": "Wav2Vec2Processor", "lm": ["OPEN THE DOOR"],
                    "greedy": ["OPEN THE DUOR"], "weights": [0.5, 1.0], "from_hub": True}  # fmt: skip
