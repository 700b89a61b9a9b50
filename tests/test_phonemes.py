"""Phoneme recognition: the symbol mode of W2V2CTCTokenizer, PER, the corpus's phonemes column, --symbols."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf
from transformers import AutoTokenizer, Wav2Vec2PhonemeCTCTokenizer

from w2v2 import LABEL_PAD_ID, W2V2CTCTokenizer, W2V2FeatureExtractor, W2V2Processor
from w2v2.training.ctc_trainer import make_compute_metrics, symbol_metric_kwargs
from w2v2.training.metrics import load_wer_cer, phone_error_rate

PHONES = ["h ə l oʊ w ɜː l d", "ɡ ʊ d m ɔː ɹ n ɪ ŋ", "b l uː s k aɪ"]


@pytest.fixture(scope="module")
def phones() -> W2V2CTCTokenizer:
    return W2V2CTCTokenizer.from_texts(PHONES, phone_delimiter_token=" ")


def test_vocabulary_is_one_id_per_symbol_after_the_specials(phones):
    vocab = phones.get_vocab()
    assert [vocab[t] for t in ("<pad>", "<unk>", "|")] == [0, 1, 2]
    assert {"oʊ", "ɜː", "aɪ", "uː"} <= set(vocab) and "ʊ" in vocab and "ː" not in vocab  # multi-character symbols stay whole
    assert len(phones) == phones.vocab_size == 3 + len({s for text in PHONES for s in text.split()})
    assert phones.symbols and phones.phone_delimiter_token == " "
    assert not W2V2CTCTokenizer.from_texts(["AB"]).symbols


@pytest.mark.parametrize("text", PHONES + ["oʊ oʊ l", "h ə | w ɜː l d"])
def test_encode_decode_round_trip(phones, text):
    ids = phones(text).input_ids
    assert len(ids) == len(text.split())
    assert phones.decode(ids, group_tokens=False) == text


def test_a_symbol_is_looked_up_whole(phones):
    vocab = phones.get_vocab()
    assert phones.tokenize("oʊt  h") == ["oʊt", "h"]  # never "oʊ" + "t"
    assert phones("oʊt h").input_ids == [phones.unk_token_id, vocab["h"]]
    assert phones.find_oov(["h oʊt x", "l"]) == {"oʊt": 1, "x": 1}


# (frame labels, characters decoded, symbols decoded): repeats collapse, then blanks vanish
CTC_CASES = [
    ("a a _ a b", "AAB", "h h oʊ"),
    ("a _ _ a a", "AA", "h h"),
    ("_ a b b _ | b", "AB B", "h oʊ | oʊ"),
    ("- a - a", "AA", "h h"),  # -100 (label padding) is a blank
    ("_ _", "", ""),
]


@pytest.mark.parametrize("frames,chars,symbols", CTC_CASES)
def test_ctc_decoding_matches_the_character_tokenizer(phones, frames, chars, symbols):
    letters = W2V2CTCTokenizer.from_texts(["A B"])
    char_ids = {"a": letters.convert_tokens_to_ids("A"), "b": letters.convert_tokens_to_ids("B")}
    symbol_ids = {"a": phones.convert_tokens_to_ids("h"), "b": phones.convert_tokens_to_ids("oʊ")}
    common = {"_": 0, "|": 2, "-": LABEL_PAD_ID}
    assert letters.decode([{**common, **char_ids}[f] for f in frames.split()]) == chars
    assert phones.decode([{**common, **symbol_ids}[f] for f in frames.split()]) == symbols


def test_word_offsets_group_symbols_between_delimiters(phones):
    v = phones.get_vocab()
    out = phones.decode([v["h"], v["h"], v["ə"], 0, v["|"], v["w"]], output_word_offsets=True, output_char_offsets=True)
    assert out.text == "h ə | w"
    assert out.word_offsets == [{"word": "h ə", "start_offset": 0, "end_offset": 3},
                                {"word": "w", "start_offset": 5, "end_offset": 6}]  # fmt: skip


def test_saves_loads_and_transformers_phoneme_tokenizer_reads_it(phones, tmp_path):
    phones.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert (config["phone_delimiter_token"], config["word_delimiter_token"], config["do_phonemize"]) == (" ", "|", False)
    for loaded in (W2V2CTCTokenizer.from_pretrained(tmp_path), AutoTokenizer.from_pretrained(tmp_path)):
        assert type(loaded) is W2V2CTCTokenizer and loaded.symbols
        assert loaded.get_vocab() == phones.get_vocab() and loaded(PHONES[0]).input_ids == phones(PHONES[0]).input_ids
    theirs = Wav2Vec2PhonemeCTCTokenizer.from_pretrained(tmp_path)  # do_phonemize=False: no phonemizer needed
    ids = phones(PHONES[1]).input_ids
    assert theirs(PHONES[1]).input_ids == ids and theirs.decode(ids) == phones.decode(ids) == PHONES[1]


@pytest.mark.parametrize("word_delimiter", [None, "|"])
def test_reads_a_folder_saved_by_transformers_phoneme_tokenizer(tmp_path, word_delimiter):
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "h": 4, "ə": 5, "l": 6, "oʊ": 7, "w": 8, "|": 9}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    theirs = Wav2Vec2PhonemeCTCTokenizer(str(tmp_path / "vocab.json"), do_phonemize=False, word_delimiter_token=word_delimiter)
    theirs.save_pretrained(tmp_path / "hf")
    ours = W2V2CTCTokenizer.from_pretrained(tmp_path / "hf")
    assert ours.symbols and ours.word_delimiter_token == word_delimiter
    assert ours.get_vocab() == theirs.get_vocab() and (ours.pad_token_id, ours.unk_token_id) == (0, 3)
    for text in ["h ə l oʊ", "oʊ l oʊ w", "h x"]:
        assert ours(text).input_ids == theirs(text).input_ids
    ids = [4, 4, 0, 4, 5, 0, 7, 7, 8, 3]
    assert ours.decode(ids) == theirs.decode(ids) == "h h ə oʊ w <unk>"
    ours.save_pretrained(tmp_path / "ours")
    assert W2V2CTCTokenizer.from_pretrained(tmp_path / "ours")("h ə w").input_ids == theirs("h ə w").input_ids


def test_processor_makes_ctc_labels_and_round_trips(phones, tmp_path):
    processor = W2V2Processor(W2V2FeatureExtractor(), phones)
    audio = [np.random.default_rng(0).standard_normal(1600).astype(np.float32)] * 2
    batch = processor(audio=audio, text=["h ə l oʊ", "w"], label_pad_id=LABEL_PAD_ID, return_tensors="pt")
    assert batch["labels"].tolist() == [phones("h ə l oʊ").input_ids, [phones.convert_tokens_to_ids("w")] + [LABEL_PAD_ID] * 3]
    processor.save_pretrained(tmp_path)
    loaded = W2V2Processor.from_pretrained(tmp_path)
    assert loaded.tokenizer.symbols and loaded.batch_decode(batch["labels"], group_tokens=False) == ["h ə l oʊ", "w"]


def test_word_delimiter_none_needs_symbol_mode():
    with pytest.raises(ValueError, match="phone_delimiter_token"):
        W2V2CTCTokenizer(vocab={"<pad>": 0, "<unk>": 1, "a": 2}, word_delimiter_token=None)
    assert W2V2CTCTokenizer(vocab={"<pad>": 0, "<unk>": 1, "a": 2}, word_delimiter_token=None, phone_delimiter_token=" ").decode([2, 2, 0, 2]) == "a a"


# ---- phone error rate ---------------------------------------------------------------------


@pytest.mark.parametrize("prediction,reference,per", [
    ("h ə l oʊ", "h ə l oʊ", 0.0),
    ("h ə l o ʊ", "h ə l oʊ", 2 / 4),  # "oʊ" is one symbol: one substitution and one insertion
    ("h ɛ l oʊ", "h ə l oʊ", 1 / 4),
    ("h l", "h ə l oʊ", 2 / 4),
    ("h ə | l oʊ", "h ə l | oʊ", 0.0),  # word delimiters are not phones
])  # fmt: skip
def test_phone_error_rate_counts_symbols(prediction, reference, per):
    assert phone_error_rate([prediction], [reference], word_delimiter="|") == pytest.approx(per)


def test_per_is_pooled_over_the_corpus_and_reported_by_the_metric():
    assert phone_error_rate(["h", "a b c d"], ["x", "a b c d"]) == pytest.approx(1 / 5)
    scores = load_wer_cer().compute(predictions=["h ə l"], references=["h ə l oʊ"], symbols=True, word_delimiter="|")
    assert scores["per"] == pytest.approx(1 / 4) and {"wer", "cer"} <= set(scores)
    assert "per" not in load_wer_cer().compute(predictions=["A"], references=["A"])


def test_compute_metrics_adds_per_for_symbol_tokenizers(phones):
    from transformers import EvalPrediction

    v = phones.get_vocab()
    labels = np.array([[v["h"], v["oʊ"], v["l"], LABEL_PAD_ID]])
    predicted = np.array([[v["h"], v["h"], 0, v["oʊ"], v["oʊ"], v["ɪ"]]])
    scores = make_compute_metrics(phones)(EvalPrediction(predictions=predicted, label_ids=labels))
    assert scores["per"] == pytest.approx(1 / 3)
    assert symbol_metric_kwargs(W2V2CTCTokenizer.from_texts(["A"])) == {}


# ---- the demo corpus's phonemes column ------------------------------------------------------


def test_espeak_prints_the_phonemes_of_what_it_speaks():
    from w2v2.data.tts import Voice, phonemes_of, synthesize, synthesize_with_phonemes

    voice = Voice("espeak-ng", "en-gb+m3")
    audio, phonemes = synthesize_with_phonemes(voice, "and the earth was void.", 1.1, 1.0)
    np.testing.assert_array_equal(audio, synthesize(voice, "and the earth was void.", 1.1, 1.0))  # the same call speaks
    assert phonemes == phonemes_of(voice, "and the earth was void.")
    assert phonemes.split()[:3] == ["a", "n", "d"] and "ɜː" in phonemes.split() and "ˈ" not in phonemes
    assert phonemes_of(Voice("flite", "slt"), "and") == phonemes_of(Voice("espeak-ng", "en-us"), "and") == "æ n d"


def test_corpus_writes_phonemes_and_fills_them_into_an_older_corpus(tmp_path):
    from w2v2.data.synth import ensure_corpus, has_phonemes, load_corpus

    sizes = dict(pretrain_minutes=0, train_10min_minutes=0, train_1h_minutes=0.03, validation_minutes=0,
                 test_clean_minutes=0, test_other_minutes=0)  # one or two utterances
    out = ensure_corpus(tmp_path / "corpus", **sizes)
    metadata = out / "train_1h" / "metadata.csv"
    rows = list(csv.DictReader(metadata.open()))
    assert has_phonemes(out) and all(r["phonemes"] and len(r["phonemes"].split()) > len(r["transcription"].split()) for r in rows)
    written, flac = metadata.read_text(), (out / "train_1h" / rows[0]["file_name"]).read_bytes()

    # a corpus made before the column: its metadata.csv and records lack it, and it loads as it is
    with metadata.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[c for c in rows[0] if c != "phonemes"], extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    for record in (out / ".records" / "train_1h").glob("*.json"):
        record.write_text(json.dumps({k: v for k, v in json.loads(record.read_text()).items() if k != "phonemes"}))
    assert not has_phonemes(out)
    assert "phonemes" not in load_corpus(out, cache_dir=str(tmp_path / "hf"))["train_1h"].column_names
    ensure_corpus(out, **sizes)  # complete: left alone
    assert not has_phonemes(out)
    ensure_corpus(out, phonemes=True, **sizes)
    assert metadata.read_text() == written and (out / "train_1h" / rows[0]["file_name"]).read_bytes() == flac


# ---- w2v2-finetune --text_column phonemes --symbols ------------------------------------------


def test_finetune_command_trains_a_phone_recognizer_scored_by_per(tmp_path):
    from w2v2.data.tts import SAMPLE_RATE, Voice, synthesize_with_phonemes
    from w2v2.training.finetune import main

    folder = tmp_path / "data" / "train"
    folder.mkdir(parents=True)
    rows = []
    for i, text in enumerate(("hello world", "blue sky")):
        audio, phonemes = synthesize_with_phonemes(Voice("espeak-ng", "en-us"), text, 1.1, 1.0)
        sf.write(folder / f"utt{i}.flac", audio, SAMPLE_RATE)
        rows.append({"file_name": f"utt{i}.flac", "transcription": text.upper(), "phonemes": phonemes, "duration": len(audio) / SAMPLE_RATE})
    with (folder / "metadata.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    common = ["--from_scratch", "--config_name", "tiny", "--dataset_name_or_path", str(tmp_path / "data"), "--train_split", "train",
              "--eval_split", "train", "--test_splits", "", "--text_column", "phonemes", "--symbols", "--max_steps", "4",
              "--eval_steps", "4", "--save_steps", "4", "--per_device_train_batch_size", "2", "--use_cpu", "--report_to", "none",
              "--disable_tqdm", "true", "--metric_for_best_model", "per"]  # fmt: skip
    with pytest.raises(ValueError, match="word LM"):
        main([*common, "--output_dir", str(tmp_path / "refused_lm"), "--lm", "words.arpa"])
    metrics = main([*common, "--output_dir", str(tmp_path / "model")])  # transformers' format, the default
    from transformers import AutoTokenizer, Wav2Vec2PhonemeCTCTokenizer

    theirs = AutoTokenizer.from_pretrained(tmp_path / "model")  # what a user without w2v2 gets
    assert type(theirs) is Wav2Vec2PhonemeCTCTokenizer and json.loads((tmp_path / "model" / "config.json").read_text())["tokenizer_class"] == "Wav2Vec2PhonemeCTCTokenizer"
    assert theirs.get_vocab() == json.loads((tmp_path / "model" / "vocab.json").read_text())
    assert 0 <= metrics["train_per"] and "train_wer" in metrics
    processor = W2V2Processor.from_pretrained(tmp_path / "model")
    assert processor.tokenizer.symbols and set(rows[0]["phonemes"].split()) <= set(processor.tokenizer.get_vocab())
    assert "train_per" in (tmp_path / "model" / "README.md").read_text()
    from transformers import pipeline

    asr = pipeline("automatic-speech-recognition", model=str(tmp_path / "model"))  # after import w2v2
    assert type(asr.tokenizer) is Wav2Vec2PhonemeCTCTokenizer  # the folder's own class, with or without w2v2
    audio, _ = sf.read(folder / "utt0.flac", dtype="float32")
    text = asr(audio)["text"]
    assert isinstance(text, str) and set(text.split()) <= set(processor.tokenizer.get_vocab())
