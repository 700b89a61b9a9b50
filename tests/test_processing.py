"""Feature extractor, CTC tokenizer and processor (issue 3).

Parity with transformers' Wav2Vec2 classes, every refused input, real WAV/FLAC files
(soundfile) and a datasets ``audiofolder`` decoded by torchcodec.
"""

import json
import subprocess

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from transformers import (
    AutoFeatureExtractor,
    AutoProcessor,
    AutoTokenizer,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2Processor,
)

from w2v2 import W2V2ForCTC
from w2v2.configuration import W2V2Config
from w2v2.processing import (
    LABEL_PAD_ID,
    W2V2CTCTokenizer,
    W2V2FeatureExtractor,
    W2V2Processor,
    offsets_to_seconds,
    receptive_field,
    word_offsets_from_chars,
)

SR = 16_000
TEXTS = ["HELLO WORLD", "IT'S A TEST", "GOOD MORNING"]


def _noise(n, seed=0, scale=0.1):
    return (np.random.default_rng(seed).normal(size=n) * scale).astype(np.float32)


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """espeak-ng "HELLO WORLD" at 16 kHz, float32, shape (samples,)."""
    path = tmp_path_factory.mktemp("tts") / "hello.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "hello world"], check=True)
    audio, rate = sf.read(path, dtype="float32")
    return soxr.resample(audio, rate, SR)


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory, speech):
    """A mono WAV and a stereo FLAC written with soundfile (int16 PCM), plus metadata.csv."""
    folder = tmp_path_factory.mktemp("audiofolder")
    stereo = np.stack([speech, 0.5 * speech], axis=1)  # soundfile layout: (samples, channels)
    sf.write(folder / "mono.wav", speech, SR, subtype="PCM_16")
    sf.write(folder / "stereo.flac", stereo, SR, subtype="PCM_16")
    (folder / "metadata.csv").write_text("file_name,name\nmono.wav,mono\nstereo.flac,stereo\n")
    return folder


@pytest.fixture(scope="module")
def audiofolder(audio_dir, tmp_path_factory):
    datasets = pytest.importorskip("datasets")
    cache = tmp_path_factory.mktemp("hf_cache")
    rows = datasets.load_dataset("audiofolder", data_dir=str(audio_dir), split="train", cache_dir=str(cache))
    return {row["name"]: row for row in rows}


@pytest.fixture
def vocab_file(tmp_path):
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2, "'": 3}
    vocab.update({c: 4 + i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ")})
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(vocab))
    return path


# ---- feature extractor ----------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, call",
    [
        ({"do_normalize": True, "return_attention_mask": True}, {"padding": True}),
        ({"do_normalize": True, "return_attention_mask": False}, {"padding": False}),  # one utterance, see below
        ({"do_normalize": False, "return_attention_mask": True}, {"padding": "max_length", "max_length": 2500}),
        ({"do_normalize": True, "return_attention_mask": True}, {"padding": True, "pad_to_multiple_of": 512}),
        ({"do_normalize": True, "return_attention_mask": True}, {"padding": "max_length", "max_length": 900, "truncation": True}),
        ({"do_normalize": True, "padding_value": -1.0, "return_attention_mask": True}, {"padding": True}),
    ],
)
def test_feature_extractor_matches_transformers(settings, call, speech):
    batch = [speech[:2000], _noise(1200, seed=1) + 0.3, _noise(1777, seed=2).astype(np.float64)]
    batch = batch if call["padding"] else batch[:1]
    ours = W2V2FeatureExtractor(**settings)(batch, sampling_rate=SR, return_tensors="np", **call)
    theirs = Wav2Vec2FeatureExtractor(**settings)(batch, sampling_rate=SR, return_tensors="np", **call)
    assert set(ours) == set(theirs)
    assert ours["input_values"].dtype == np.float32
    np.testing.assert_allclose(ours["input_values"], theirs["input_values"], rtol=0, atol=1e-6)
    if "attention_mask" in theirs:
        np.testing.assert_array_equal(ours["attention_mask"], theirs["attention_mask"])


def test_normalisation_ignores_padding():
    """Zero mean, unit variance over the real samples; a padded item equals the item alone."""
    fe = W2V2FeatureExtractor(return_attention_mask=True)
    short, long = _noise(800, seed=3) + 2.0, _noise(1600, seed=4)
    batch = fe([short, long], sampling_rate=SR, return_tensors="np")
    alone = fe(short, sampling_rate=SR, return_tensors="np")["input_values"][0]
    np.testing.assert_allclose(batch["input_values"][0, :800], alone, atol=1e-6)
    assert np.all(batch["input_values"][0, 800:] == 0.0)
    assert abs(alone.mean()) < 1e-5 and abs(alone.std() - 1.0) < 1e-3
    assert batch["attention_mask"].sum(1).tolist() == [800, 1600]


def test_unmasked_normalisation_skips_padding_unlike_transformers():
    """Without a mask transformers normalises over the padded batch; we never count padding."""
    short, long = _noise(800, seed=3) + 2.0, _noise(1600, seed=4)
    ours = W2V2FeatureExtractor()([short, long], sampling_rate=SR, return_tensors="np")["input_values"]
    theirs = Wav2Vec2FeatureExtractor()([short, long], sampling_rate=SR, padding=True, return_tensors="np")
    alone = W2V2FeatureExtractor()(short, sampling_rate=SR, return_tensors="np")["input_values"][0]
    np.testing.assert_allclose(ours[0, :800], alone, atol=1e-6)
    assert np.abs(theirs["input_values"][0, :800] - alone).max() > 0.1
    np.testing.assert_allclose(ours[1], theirs["input_values"][1], atol=1e-6)  # the longest item has no padding


def test_input_forms_agree():
    """Float64/float32 arrays, tensors, lists, int16/int32 PCM and datasets dicts give the same values."""
    fe = W2V2FeatureExtractor(do_normalize=False)
    pcm16 = (np.random.default_rng(5).integers(-32768, 32767, size=1000)).astype(np.int16)
    as_float = pcm16.astype(np.float32) / 32768
    expected = fe(as_float, sampling_rate=SR, return_tensors="np")["input_values"]
    assert expected.shape == (1, 1000) and expected.min() >= -1.0 and expected.max() < 1.0
    forms = [
        pcm16,
        pcm16.astype(np.int32) << 16,
        as_float.astype(np.float64),
        torch.from_numpy(as_float),
        as_float.tolist(),
        {"array": as_float, "sampling_rate": SR, "path": None},
    ]
    for form in forms:
        got = fe(form, sampling_rate=None if isinstance(form, dict) else SR, return_tensors="np")["input_values"]
        np.testing.assert_allclose(got, expected, atol=1e-7, err_msg=type(form).__name__)


def test_batches_and_return_types():
    fe = W2V2FeatureExtractor(return_attention_mask=True)
    two_d = np.stack([_noise(600, seed=6), _noise(600, seed=7)])  # (batch, samples)
    pt = fe(two_d, sampling_rate=SR, return_tensors="pt")
    assert isinstance(pt["input_values"], torch.Tensor) and pt["input_values"].shape == (2, 600)
    assert pt["attention_mask"].dtype == torch.int32
    from_list = fe(list(two_d), sampling_rate=SR, return_tensors="np")
    np.testing.assert_allclose(from_list["input_values"], pt["input_values"].numpy())
    unpadded = fe([_noise(500), _noise(700)], sampling_rate=SR, padding=False)
    assert [len(x) for x in unpadded["input_values"]] == [500, 700]
    assert "attention_mask" not in W2V2FeatureExtractor()(_noise(500), sampling_rate=SR)


def test_resample_uses_soxr(speech):
    fe = W2V2FeatureExtractor(do_normalize=False)
    at_22k = soxr.resample(speech, SR, 22_050)
    got = fe(at_22k, sampling_rate=22_050, resample=True, return_tensors="np")["input_values"][0]
    np.testing.assert_allclose(got, soxr.resample(at_22k, 22_050, SR, quality="HQ"), atol=1e-7)
    assert abs(len(got) - len(speech)) <= 1
    # a dict carries its own rate: with resample=True it wins over sampling_rate (the rate of raw arrays)
    mixed = fe([speech, {"array": at_22k, "sampling_rate": 22_050}], sampling_rate=SR, resample=True, return_tensors="np")
    np.testing.assert_allclose(mixed["input_values"][1][: len(got)], got, atol=1e-7)


BAD_INPUTS = [
    # (audio, call kwargs, error, message fragment)
    (np.zeros((500, 2), np.float32), {}, ValueError, r"shape \(500, 2\) is read as \(batch, samples\).*\[audio\]"),
    ([np.zeros((2, 500), np.float32)], {}, ValueError, r"2 channels \(shape \(2, 500\)\).*mono='mean'"),
    ([np.zeros(0, np.float32)], {}, ValueError, "item 0 is empty"),
    ([], {}, ValueError, "empty list"),
    (np.zeros(399, np.float32), {}, ValueError, "399 samples, fewer than the encoder's receptive field of 400"),
    (np.full(500, np.nan, np.float32), {}, ValueError, "500 NaN/inf samples"),
    (np.r_[np.zeros(450), np.inf].astype(np.float32), {}, ValueError, "1 NaN/inf samples .*first at sample 450"),
    (np.zeros(500, np.int64), {}, ValueError, "dtype int64; pass float samples .* or int16/int32 PCM"),
    (np.zeros(500, np.uint8), {}, ValueError, "dtype uint8"),
    (np.zeros(500, np.complex64), {}, ValueError, "dtype complex64"),
    ("speech.wav", {}, TypeError, "is a str; pass a numpy array"),
    (np.zeros((2, 2, 500), np.float32), {}, ValueError, r"shape \(2, 2, 500\); expected \(samples,\)"),
    (np.zeros(500, np.float32), {"sampling_rate": 8000}, ValueError, "8000 Hz but the model expects 16000 Hz; pass resample=True"),
    ({"array": np.zeros(500)}, {}, ValueError, "needs 'array' and 'sampling_rate'"),
    ({"array": np.zeros(500), "sampling_rate": SR}, {"sampling_rate": 8000}, ValueError, "says it is sampled at 16000 Hz but sampling_rate=8000"),
    (np.zeros(500, np.float32), {"mono": "left"}, ValueError, "mono='left' is not supported"),
    (np.zeros(500, np.float32), {"paddding": True}, TypeError, r"unexpected arguments \['paddding'\]"),
]


@pytest.mark.parametrize("audio, kwargs, error, message", BAD_INPUTS)
def test_feature_extractor_refuses_bad_input(audio, kwargs, error, message):
    kwargs = {"sampling_rate": SR, **kwargs} if not isinstance(audio, dict) else kwargs
    with pytest.raises(error, match=message):
        W2V2FeatureExtractor()(audio, **kwargs)


def test_missing_sampling_rate_is_an_error_when_the_model_rate_is_unusual():
    with pytest.raises(ValueError, match="no sampling rate and this feature extractor expects 8000 Hz"):
        W2V2FeatureExtractor(sampling_rate=8000)(np.zeros(500, np.float32))
    assert W2V2FeatureExtractor()(np.zeros(500, np.float32))["input_values"][0].shape == (500,)


def test_mono_mean_downmixes():
    left, right = _noise(600, seed=8), _noise(600, seed=9)
    fe = W2V2FeatureExtractor(do_normalize=False)
    for layout in (np.stack([left, right]), np.stack([left, right], axis=1)):
        got = fe([layout], sampling_rate=SR, mono="mean", return_tensors="np")["input_values"][0]
        np.testing.assert_allclose(got, (left + right) / 2, atol=1e-7)


def test_receptive_field_and_model_config():
    assert receptive_field((10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2)) == 400
    assert receptive_field((4,), (2,)) == 4
    with pytest.raises(ValueError, match="must be non-empty and of the same length"):
        receptive_field((10, 3), (5,))
    with pytest.raises(ValueError, match="min_samples=0 must be >= 1"):
        W2V2FeatureExtractor(min_samples=0)
    with pytest.raises(ValueError, match="feature_size=2: .* use feature_size=1"):
        W2V2FeatureExtractor(feature_size=2)
    group = W2V2FeatureExtractor.from_model_config(W2V2Config.tiny(feat_extract_norm="group"))
    layer = W2V2FeatureExtractor.from_model_config(
        W2V2Config.tiny(feat_extract_norm="layer", conv_kernel=(4, 2), conv_stride=(2, 2), conv_dim=(8, 8))
    )
    assert (group.min_samples, group.return_attention_mask) == (400, False)
    assert (layer.min_samples, layer.return_attention_mask) == (6, True)


def test_real_files_soundfile_and_audiofolder(audio_dir, audiofolder, speech):
    """WAV and FLAC through soundfile and through datasets' torchcodec decoder agree."""
    fe = W2V2FeatureExtractor(return_attention_mask=True)
    wav, rate = sf.read(audio_dir / "mono.wav", dtype="int16")
    from_soundfile = fe(wav, sampling_rate=rate, return_tensors="np")["input_values"]
    decoder = audiofolder["mono"]["audio"]
    assert type(decoder).__name__ == "AudioDecoder"
    from_decoder = fe(decoder, return_tensors="np")["input_values"]
    np.testing.assert_allclose(from_decoder, from_soundfile, atol=1e-5)
    assert np.abs(wav / 32768 - speech).max() < 1e-4  # int16 quantisation only

    stereo = audiofolder["stereo"]["audio"]
    with pytest.raises(ValueError, match="item 0 has 2 channels"):
        fe(stereo)
    mixed = fe(stereo, mono="mean", return_tensors="np")["input_values"]
    flac, _ = sf.read(audio_dir / "stereo.flac", dtype="float32")
    expected = fe([flac], sampling_rate=SR, mono="mean", return_tensors="np")["input_values"]
    np.testing.assert_allclose(mixed, expected, atol=1e-5)

    both = fe([decoder, {"array": flac[:, 0], "sampling_rate": SR}], return_tensors="np")
    assert both["input_values"].shape == (2, len(speech))


def test_audiofolder_at_another_rate_needs_resample(audiofolder):
    decoder = audiofolder["mono"]["audio"]
    samples = decoder.get_all_samples()
    at_8k = {"array": soxr.resample(samples.data[0].numpy(), SR, 8000), "sampling_rate": 8000}
    fe = W2V2FeatureExtractor()
    with pytest.raises(ValueError, match="sampled at 8000 Hz .* pass resample=True"):
        fe(at_8k)
    assert fe(at_8k, resample=True)["input_values"][0].shape == samples.data.shape[1:]


def test_feature_extractor_save_load(tmp_path):
    fe = W2V2FeatureExtractor(do_normalize=False, return_attention_mask=True, min_samples=320)
    fe.save_pretrained(tmp_path)
    loaded = AutoFeatureExtractor.from_pretrained(tmp_path)
    assert type(loaded) is W2V2FeatureExtractor and loaded.to_dict() == fe.to_dict()
    Wav2Vec2FeatureExtractor(do_normalize=False, sampling_rate=8000).save_pretrained(tmp_path / "hf")
    from_hf = W2V2FeatureExtractor.from_pretrained(tmp_path / "hf")
    assert (from_hf.sampling_rate, from_hf.do_normalize, from_hf.min_samples) == (8000, False, 400)


# ---- tokenizer ----------------------------------------------------------------------


def test_from_texts_builds_a_ctc_vocabulary():
    tok = W2V2CTCTokenizer.from_texts(["Hello world", "it's a test|x\t!"], case_folding="upper", allowed_chars=set("ABCDEFGHIJKLMNOPQRSTUVWXYZ'"))
    vocab = tok.get_vocab()
    assert [vocab["<pad>"], vocab["<unk>"], vocab["|"]] == [0, 1, 2]
    assert set(vocab) == {"<pad>", "<unk>", "|", "'", "A", "D", "E", "H", "I", "L", "O", "R", "S", "T", "W", "X"}
    assert len(tok) == tok.vocab_size == len(vocab) == 16  # no <s>/</s>: len(tokenizer) sizes the CTC head
    assert tok.bos_token is None and tok.eos_token is None
    assert tok.dropped_characters == {"|": 1, "\t": 1, "!": 1}
    assert tok.pad_token_id == 0


def test_literal_delimiter_does_not_split_words():
    tok = W2V2CTCTokenizer.from_texts(TEXTS)
    ids = tok("A|B C").input_ids
    delimiter, unk = tok.word_delimiter_token_id, tok.unk_token_id
    assert ids == [tok.convert_tokens_to_ids("A"), unk, tok.convert_tokens_to_ids("B"), delimiter, unk]
    assert tok.find_oov(["A|B C", "hello?"]) == {"|": 1, "B": 1, "C": 1, "h": 1, "e": 1, "l": 2, "o": 1, "?": 1}


def test_case_folding_applies_when_encoding():
    upper = W2V2CTCTokenizer.from_texts(TEXTS)
    folded = W2V2CTCTokenizer.from_texts(TEXTS, case_folding="upper")
    assert folded("hello").input_ids == upper("HELLO").input_ids
    assert upper.unk_token_id in upper("hello").input_ids
    assert upper.find_oov("hello") == {"h": 1, "e": 1, "l": 2, "o": 1}
    assert folded.find_oov("hello") == {}


@pytest.mark.parametrize("text", ["HELLO WORLD", "IT'S  A TEST", " LEADING AND TRAILING ", "QUIZ?", ""])
def test_encoding_matches_transformers(vocab_file, text):
    ours, theirs = W2V2CTCTokenizer(str(vocab_file)), Wav2Vec2CTCTokenizer(str(vocab_file), bos_token=None, eos_token=None)
    assert ours(text).input_ids == theirs(text).input_ids
    assert len(ours) == len(theirs) == ours.vocab_size


def test_decoding_matches_transformers(vocab_file):
    ours, theirs = W2V2CTCTokenizer(str(vocab_file)), Wav2Vec2CTCTokenizer(str(vocab_file))
    rng = np.random.default_rng(0)
    for _ in range(20):
        # argmax-like paths: long blank runs, repeats, delimiters
        ids = rng.choice([0, 0, 0, 2, 4, 5, 15, 15], size=40).tolist()
        for kwargs in ({}, {"output_char_offsets": True, "output_word_offsets": True}):
            a, b = ours.decode(ids, **kwargs), theirs.decode(ids, **kwargs)
            if not kwargs:
                assert a == b
                continue
            assert a.text == b.text
            assert [{k: (int(v) if k.endswith("offset") else v) for k, v in d.items()} for d in b.char_offsets] == a.char_offsets
            assert [{k: (int(v) if k.endswith("offset") else v) for k, v in d.items()} for d in b.word_offsets] == a.word_offsets
    batch = rng.choice([0, 2, 4, 5, 15], size=(3, 30))
    assert ours.batch_decode(batch) == theirs.batch_decode(batch)


def test_ctc_decoding_rules():
    tok = W2V2CTCTokenizer.from_texts(TEXTS)
    h, e, l, o, w, r, d = tok.convert_tokens_to_ids(list("HELOWRD"))
    blank, space = tok.pad_token_id, tok.word_delimiter_token_id
    ids = [blank, h, h, e, l, l, blank, l, o, o, space, space, w, o, r, l, d, blank]
    assert tok.decode(ids) == "HELLO WORLD"  # a blank between two L keeps both
    assert tok.decode([h, e, l, l, o]) == "HELO"  # without one they merge
    assert tok.decode(np.array(ids)) == tok.decode(torch.tensor(ids)) == "HELLO WORLD"
    assert tok.batch_decode(torch.tensor([ids, ids[::-1]])) == ["HELLO WORLD", "DLROW OLLEH"]
    assert tok.decode([h, LABEL_PAD_ID, e, l, l, o, LABEL_PAD_ID], group_tokens=False) == "HELLO"
    assert tok.decode([h, tok.unk_token_id, e], skip_special_tokens=True) == "HE"
    assert tok.decode([h, tok.unk_token_id, e]) == "H<unk>E"


def test_offsets_in_frames_and_seconds():
    tok = W2V2CTCTokenizer.from_texts(TEXTS)
    h, i = tok.convert_tokens_to_ids("H"), tok.convert_tokens_to_ids("I")
    blank, space = tok.pad_token_id, tok.word_delimiter_token_id
    out = tok.decode([blank, h, h, i, blank, space, i, i], output_char_offsets=True, output_word_offsets=True)
    assert out.text == "HI I"
    assert out.char_offsets == [
        {"char": "H", "start_offset": 1, "end_offset": 3},
        {"char": "I", "start_offset": 3, "end_offset": 4},
        {"char": " ", "start_offset": 5, "end_offset": 6},
        {"char": "I", "start_offset": 6, "end_offset": 8},
    ]
    assert out.word_offsets == [
        {"word": "HI", "start_offset": 1, "end_offset": 4},
        {"word": "I", "start_offset": 6, "end_offset": 8},
    ]
    assert word_offsets_from_chars(out.char_offsets) == out.word_offsets
    timed = offsets_to_seconds(out.word_offsets, inputs_to_logits_ratio=320, sampling_rate=SR)
    assert [(w["start_time"], w["end_time"]) for w in timed] == [(0.02, 0.08), (0.12, 0.16)]
    batch = tok.batch_decode([[h], [i, i]], output_word_offsets=True)
    assert batch.text == ["H", "I"] and batch.char_offsets is None
    assert batch.word_offsets == [[{"word": "H", "start_offset": 0, "end_offset": 1}], [{"word": "I", "start_offset": 0, "end_offset": 2}]]


def test_tokenizer_refuses_bad_input(vocab_file, tmp_path):
    tok = W2V2CTCTokenizer(str(vocab_file))
    with pytest.raises(ValueError, match=r"decode got torch.float32 values of shape \(7, 30\); .*argmax"):
        tok.decode(torch.randn(7, 30))
    with pytest.raises(ValueError, match="batch_decode got float64 values"):
        tok.batch_decode(np.zeros((2, 7, 30)))
    with pytest.raises(ValueError, match="decode takes one sequence of ids but got a batch of 2; use batch_decode"):
        tok.decode([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="pad_token='<blank>' is not in the vocabulary"):
        W2V2CTCTokenizer(str(vocab_file), pad_token="<blank>")
    with pytest.raises(ValueError, match="do_lower_case=True turns text upper-case but the vocabulary has no upper-case"):
        W2V2CTCTokenizer(vocab={"<pad>": 0, "<unk>": 1, "|": 2, "a": 3}, do_lower_case=True)
    with pytest.raises(ValueError, match="case_folding='title' is not supported"):
        W2V2CTCTokenizer(str(vocab_file), case_folding="title")
    with pytest.raises(ValueError, match="exactly one of vocab_file"):
        W2V2CTCTokenizer()
    with pytest.raises(ValueError, match="ids must be 0..3 without gaps"):
        W2V2CTCTokenizer(vocab={"<pad>": 0, "<unk>": 1, "|": 2, "A": 7})
    nested = tmp_path / "mms.json"
    nested.write_text(json.dumps({"eng": {"<pad>": 0}}))
    with pytest.raises(ValueError, match="nested multi-lingual vocabulary"):
        W2V2CTCTokenizer(str(nested))
    with pytest.raises(TypeError, match="texts is a single string"):
        W2V2CTCTokenizer.from_texts("HELLO")
    with pytest.raises(TypeError, match="text must be a str, got int"):
        tok.find_oov([3])


def test_tokenizer_files_round_trip_with_transformers(tmp_path, vocab_file):
    """Our files load in transformers and theirs load here, with the same ids."""
    theirs = Wav2Vec2CTCTokenizer(str(vocab_file))  # adds <s> and </s> as ids 30, 31
    theirs.save_pretrained(tmp_path / "hf")
    loaded = W2V2CTCTokenizer.from_pretrained(tmp_path / "hf")
    assert loaded.get_vocab() == theirs.get_vocab() and len(loaded) == len(theirs) == 32
    for text in TEXTS:
        assert loaded(text).input_ids == theirs(text).input_ids
    assert loaded.decode([4, 4, 0, 4, 2, 5]) == theirs.decode([4, 4, 0, 4, 2, 5])

    ours = W2V2CTCTokenizer.from_texts(TEXTS, case_folding="upper", word_delimiter_token="#")
    ours.save_pretrained(tmp_path / "ours")
    again = AutoTokenizer.from_pretrained(tmp_path / "ours")
    assert type(again) is W2V2CTCTokenizer
    assert (again.word_delimiter_token, again.case_folding, len(again)) == ("#", "upper", len(ours))
    assert again("good morning").input_ids == ours("GOOD MORNING").input_ids
    plain = W2V2CTCTokenizer.from_texts(TEXTS)  # transformers reloads only the default "|" delimiter
    plain.save_pretrained(tmp_path / "plain")
    in_transformers = Wav2Vec2CTCTokenizer.from_pretrained(tmp_path / "plain")
    assert in_transformers("GOOD MORNING").input_ids == plain("GOOD MORNING").input_ids
    assert len(in_transformers) == len(plain)


# ---- processor ----------------------------------------------------------------------


@pytest.fixture
def processor():
    return W2V2Processor(W2V2FeatureExtractor(return_attention_mask=True), W2V2CTCTokenizer.from_texts(TEXTS))


def test_processor_call_and_pad(processor):
    """transformers' outputs by default; ``label_pad_id`` gives CTC labels in one call
    (the full comparison with transformers is tests/test_processor_contract.py)."""
    audio = [_noise(1000, seed=10), _noise(600, seed=11)]
    out = processor(audio=audio, sampling_rate=SR, text=["HELLO", "A TEST"], return_tensors="pt", label_pad_id=LABEL_PAD_ID)
    assert out["input_values"].shape == out["attention_mask"].shape == (2, 1000)
    labels = out["labels"]
    assert labels.shape == (2, 6) and labels[0, 5] == LABEL_PAD_ID and (labels[1] != LABEL_PAD_ID).all()
    assert processor.batch_decode(labels, group_tokens=False) == ["HELLO", "A TEST"]
    as_transformers = processor(audio=audio, sampling_rate=SR, text=["HELLO", "A TEST"], padding=True, return_tensors="pt")
    assert as_transformers["labels"][0, 5] == processor.tokenizer.pad_token_id

    features = [{"input_values": processor.feature_extractor(a, sampling_rate=SR)["input_values"][0]} for a in audio]
    label_ids = [processor.tokenizer(t).input_ids for t in ["HELLO", "A TEST"]]
    collated = processor.pad(features, labels=label_ids, label_pad_id=LABEL_PAD_ID, return_tensors="pt")
    torch.testing.assert_close(collated["input_values"], out["input_values"])
    torch.testing.assert_close(collated["labels"], labels)
    only_labels = processor.pad(labels=[{"input_ids": [3, 4]}, {"input_ids": [5]}], return_tensors="np")
    assert only_labels["input_ids"].tolist() == [[3, 4], [5, processor.tokenizer.pad_token_id]]
    assert only_labels["attention_mask"].tolist() == [[1, 1], [1, 0]]
    for_ctc = processor.pad(labels=[[3, 4], [5]], label_pad_id=LABEL_PAD_ID, return_tensors="np")
    assert for_ctc["labels"].tolist() == [[3, 4], [5, LABEL_PAD_ID]]
    assert processor(text="HELLO").input_ids == processor.tokenizer("HELLO").input_ids
    assert processor.model_input_names == ["input_values", "attention_mask", "labels"]


def test_processor_refuses_bad_input(processor):
    with pytest.raises(ValueError, match="needs audio=..., text=... or both"):
        processor()
    with pytest.raises(ValueError, match="got 2 utterances but 1 transcripts"):
        processor(audio=[_noise(500), _noise(500)], sampling_rate=SR, text="HELLO")
    with pytest.raises(ValueError, match="pad needs input_features=..., labels=... or both"):
        processor.pad()
    with pytest.raises(ValueError, match="8000 Hz but the model expects 16000 Hz"):
        processor(audio=_noise(500), sampling_rate=8000)


def test_processor_round_trips_through_auto_processor(processor, tmp_path):
    processor.save_pretrained(tmp_path)
    for with_model_config in (False, True):
        if with_model_config:
            W2V2Config.tiny().save_pretrained(tmp_path)  # model_type "w2v2" -> registered classes
        loaded = AutoProcessor.from_pretrained(tmp_path)
        assert type(loaded) is W2V2Processor
        assert type(loaded.feature_extractor) is W2V2FeatureExtractor and type(loaded.tokenizer) is W2V2CTCTokenizer
        assert loaded.feature_extractor.to_dict() == processor.feature_extractor.to_dict()
        assert loaded.tokenizer.get_vocab() == processor.tokenizer.get_vocab()
    assert type(AutoFeatureExtractor.from_pretrained(tmp_path)) is W2V2FeatureExtractor
    assert type(AutoTokenizer.from_pretrained(tmp_path)) is W2V2CTCTokenizer


def test_processor_loads_a_transformers_directory(vocab_file, tmp_path):
    theirs = Wav2Vec2Processor(
        Wav2Vec2FeatureExtractor(return_attention_mask=True, do_normalize=False), Wav2Vec2CTCTokenizer(str(vocab_file))
    )
    theirs.save_pretrained(tmp_path)
    ours = W2V2Processor.from_pretrained(tmp_path)
    assert type(ours.feature_extractor) is W2V2FeatureExtractor and type(ours.tokenizer) is W2V2CTCTokenizer
    audio = _noise(900, seed=12)
    np.testing.assert_allclose(
        ours(audio=audio, sampling_rate=SR, return_tensors="np")["input_values"],
        theirs(audio=audio, sampling_rate=SR, return_tensors="np")["input_values"],
    )
    assert ours.tokenizer("HELLO WORLD").input_ids == theirs.tokenizer("HELLO WORLD").input_ids


@pytest.mark.parametrize("stable_layer_norm", [True, False])
def test_padded_batch_matches_items_alone(speech, stable_layer_norm):
    """Layer-norm model + attention mask: padding does not change any real frame's logits."""
    torch.manual_seed(0)
    config = W2V2Config.tiny(feat_extract_norm="layer", do_stable_layer_norm=stable_layer_norm, mask_time_prob=0.0)
    model = W2V2ForCTC(config).eval()
    fe = W2V2FeatureExtractor.from_model_config(config)
    assert fe.return_attention_mask
    items = [speech, speech[3000:9000] * 0.5, _noise(4321, seed=13)]
    batch = fe(items, sampling_rate=SR, return_tensors="pt")
    assert batch["input_values"].shape == (3, len(speech))
    with torch.no_grad():
        batched = model(**batch).logits  # (3, T_max, V)
        for i, item in enumerate(items):
            alone = model(**fe(item, sampling_rate=SR, return_tensors="pt")).logits[0]  # (T_i, V)
            torch.testing.assert_close(batched[i, : alone.shape[0]], alone, atol=1e-4, rtol=0)
