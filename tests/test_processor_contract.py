"""W2V2Processor keeps the contract of transformers' Wav2Vec2Processor (issue 22).

Every call a transformers user makes on ``Wav2Vec2Processor`` (and on its feature extractor
and CTC tokenizer) is made on ours and on theirs, both built from the same vocabulary, and
the outputs must agree: type, keys, and for each value its kind (tensor/array/list), dtype,
shape and contents (padding values included). What w2v2 adds has names of its own
(``label_pad_id``) and is tested against transformers' own recipe for it.
"""

import json
from collections.abc import Mapping

import numpy as np
import pytest
import torch
from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor
from transformers.utils import ModelOutput

from w2v2.processing import LABEL_PAD_ID, W2V2CTCTokenizer, W2V2FeatureExtractor, W2V2Processor

SR = 16_000
TEXTS = ["HELLO WORLD", "A TEST", "IT'S"]


def _noise(n, seed):
    return (np.random.default_rng(seed).normal(size=n) * 0.1).astype(np.float32)


AUDIO = [_noise(1000, 0), _noise(600, 1), _noise(810, 2)]
# greedy ids (batch, frames): repeats, blanks (0), delimiters (2) and an <unk> (1)
IDS = np.array([[11, 11, 0, 8, 15, 15, 0, 15, 18, 2, 0, 26], [4, 2, 1, 23, 8, 22, 23, 0, 0, 0, 0, 0]])


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2, "'": 3}
    vocab.update({c: 4 + i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ")})
    path = tmp_path_factory.mktemp("vocab") / "vocab.json"
    path.write_text(json.dumps(vocab))
    return path


@pytest.fixture(scope="module")
def pair(vocab_file):
    """(ours, theirs): the same vocabulary and feature extractor settings."""
    ours = W2V2Processor(W2V2FeatureExtractor(return_attention_mask=True), W2V2CTCTokenizer(str(vocab_file)))
    theirs = Wav2Vec2Processor(Wav2Vec2FeatureExtractor(return_attention_mask=True), Wav2Vec2CTCTokenizer(str(vocab_file)))
    return ours, theirs


def _features(p):
    return [{"input_values": p.feature_extractor(a, sampling_rate=SR)["input_values"][0]} for a in AUDIO]


def _labels(p):
    return [{"input_ids": p.tokenizer(t).input_ids} for t in TEXTS]


# name -> one call, made on ours and on theirs
CALLS = {
    # __call__ with audio
    "audio": lambda p: p(audio=AUDIO, sampling_rate=SR),
    "audio padded pt": lambda p: p(audio=AUDIO, sampling_rate=SR, padding=True, return_tensors="pt"),
    "audio one utterance": lambda p: p(audio=AUDIO[0], sampling_rate=SR, return_tensors="pt"),
    "audio max_length np": lambda p: p(audio=AUDIO, sampling_rate=SR, padding="max_length", max_length=1200, return_tensors="np"),
    "audio pad_to_multiple_of": lambda p: p(audio=AUDIO, sampling_rate=SR, padding=True, pad_to_multiple_of=256, return_tensors="pt"),
    "audio truncation": lambda p: p(audio=AUDIO, sampling_rate=SR, padding="max_length", max_length=700, truncation=True, return_tensors="pt"),
    "audio no mask": lambda p: p(audio=AUDIO[:1], sampling_rate=SR, return_attention_mask=False, return_tensors="pt"),
    "audio_kwargs": lambda p: p(audio=AUDIO, audio_kwargs={"sampling_rate": SR, "padding": True}, return_tensors="pt"),
    # __call__ with text
    "text": lambda p: p(text=TEXTS),
    "text one string": lambda p: p(text=TEXTS[0]),
    "text padded pt": lambda p: p(text=TEXTS, padding=True, return_tensors="pt"),
    "text max_length": lambda p: p(text=TEXTS, padding="max_length", max_length=14, return_tensors="pt"),
    "text truncation": lambda p: p(text=TEXTS, padding=True, truncation=True, max_length=5, return_tensors="np"),
    "text_kwargs": lambda p: p(text=TEXTS, text_kwargs={"padding": "max_length", "max_length": 12}, return_tensors="np"),
    "text no mask": lambda p: p(text=TEXTS, return_attention_mask=False),
    # __call__ with both
    "both": lambda p: p(audio=AUDIO, text=TEXTS, sampling_rate=SR),
    "both padded pt": lambda p: p(audio=AUDIO, text=TEXTS, sampling_rate=SR, padding=True, return_tensors="pt"),
    "both per modality": lambda p: p(
        audio=AUDIO, text=TEXTS, audio_kwargs={"sampling_rate": SR, "padding": "longest"},
        text_kwargs={"padding": "max_length", "max_length": 13}, return_tensors="pt",
    ),  # fmt: skip
    # pad
    "pad features": lambda p: p.pad(_features(p)),
    "pad features pt": lambda p: p.pad(_features(p), return_tensors="pt"),
    "pad input_features=": lambda p: p.pad(input_features=_features(p), padding="max_length", max_length=1100, return_tensors="pt"),
    "pad features no mask": lambda p: p.pad(_features(p), return_attention_mask=False, return_tensors="np"),
    "pad labels": lambda p: p.pad(labels=_labels(p)),
    "pad labels pt": lambda p: p.pad(labels=_labels(p), return_tensors="pt"),
    "pad labels as a dict": lambda p: p.pad(labels={"input_ids": [x["input_ids"] for x in _labels(p)]}, return_tensors="pt"),
    "pad labels max_length": lambda p: p.pad(labels=_labels(p), padding="max_length", max_length=16, return_tensors="np"),
    "pad both": lambda p: p.pad(_features(p), labels=_labels(p), return_tensors="pt"),
    "pad both pad_to_multiple_of": lambda p: p.pad(input_features=_features(p), labels=_labels(p), pad_to_multiple_of=8, return_tensors="pt"),
    # decoding
    "batch_decode": lambda p: p.batch_decode(IDS),
    "batch_decode tensor": lambda p: p.batch_decode(torch.from_numpy(IDS)),
    "batch_decode skip_special_tokens": lambda p: p.batch_decode(IDS[1:], skip_special_tokens=True),
    "batch_decode group_tokens=False": lambda p: p.batch_decode(IDS, group_tokens=False),
    "batch_decode char offsets": lambda p: p.batch_decode(IDS, output_char_offsets=True),
    "batch_decode word offsets": lambda p: p.batch_decode(IDS, output_word_offsets=True),
    "decode": lambda p: p.decode(IDS[0]),
    "decode list": lambda p: p.decode(IDS[1].tolist(), skip_special_tokens=True),
    "decode both offsets": lambda p: p.decode(IDS[0], output_char_offsets=True, output_word_offsets=True),
    # the parts, called directly
    "feature extractor unpadded": lambda p: p.feature_extractor(AUDIO, sampling_rate=SR),
    "feature extractor pt": lambda p: p.feature_extractor(AUDIO, sampling_rate=SR, padding=True, return_tensors="pt"),
    "tokenizer": lambda p: p.tokenizer(TEXTS, padding=True, return_tensors="pt"),
    "tokenizer pad": lambda p: p.tokenizer.pad(_labels(p), return_tensors="pt"),
    "model_input_names": lambda p: p.model_input_names,
}


def _assert_same(ours, theirs, where="output"):
    """Same structure, kinds, dtypes, shapes and values (floats to 1e-6)."""
    if isinstance(theirs, ModelOutput):  # decoding outputs: classes of their own, same fields
        assert isinstance(ours, ModelOutput), f"{where}: {type(ours).__name__}"
        assert list(ours.keys()) == list(theirs.keys()), where
        for key in theirs:
            _assert_same(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, Mapping):
        assert type(ours) is type(theirs) or isinstance(ours, dict) and isinstance(theirs, dict), f"{where}: {type(ours)}"
        assert list(ours.keys()) == list(theirs.keys()), f"{where}: keys {list(ours)} != {list(theirs)}"
        for key in theirs:
            _assert_same(ours[key], theirs[key], f"{where}[{key!r}]")
    elif isinstance(theirs, torch.Tensor):
        assert isinstance(ours, torch.Tensor), f"{where}: {type(ours).__name__}, not a tensor"
        assert (ours.dtype, ours.shape) == (theirs.dtype, theirs.shape), f"{where}: {ours.dtype} {tuple(ours.shape)}"
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0, msg=where)
    elif isinstance(theirs, np.ndarray):
        assert isinstance(ours, np.ndarray), f"{where}: {type(ours).__name__}, not an array"
        assert (ours.dtype, ours.shape) == (theirs.dtype, theirs.shape), f"{where}: {ours.dtype} {ours.shape}"
        np.testing.assert_allclose(ours, theirs, atol=1e-6, rtol=0, err_msg=where)
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs), f"{where}: {type(ours).__name__} of {len(ours)}"
        for i, (a, b) in enumerate(zip(ours, theirs)):
            _assert_same(a, b, f"{where}[{i}]")
    else:
        assert ours == theirs, f"{where}: {ours!r} != {theirs!r}"


@pytest.mark.parametrize("name", list(CALLS))
def test_call_returns_what_transformers_returns(pair, name):
    ours, theirs = pair
    _assert_same(CALLS[name](ours), CALLS[name](theirs), name)


def test_refused_where_transformers_refuses(pair):
    """Unequal lengths cannot become one tensor without padding: both refuse the same way."""
    for processor in pair:
        with pytest.raises(ValueError, match="Unable to create tensor"):
            processor(text=TEXTS, return_tensors="pt")


def test_transformers_collator_recipe_equals_label_pad_id(pair):
    """run_speech_recognition_ctc.py's collator, and w2v2's one-call spelling of it."""
    ours, _ = pair
    features, labels = _features(ours), _labels(ours)
    batch = ours.pad(features, return_tensors="pt")
    labels_batch = ours.pad(labels=labels, return_tensors="pt")
    recipe = labels_batch["input_ids"].masked_fill(labels_batch.attention_mask.ne(1), -100)
    one_call = ours.pad(features, labels=labels, label_pad_id=LABEL_PAD_ID, return_tensors="pt")
    assert list(one_call) == ["input_values", "attention_mask", "labels"]
    torch.testing.assert_close(one_call["input_values"], batch["input_values"])
    torch.testing.assert_close(one_call["labels"], recipe)
    from_text = ours(audio=AUDIO, text=TEXTS, sampling_rate=SR, label_pad_id=LABEL_PAD_ID, return_tensors="pt")
    torch.testing.assert_close(from_text["labels"], recipe)
    only_labels = ours.pad(labels=[x["input_ids"] for x in labels], label_pad_id=LABEL_PAD_ID, return_tensors="pt")
    assert list(only_labels) == ["labels"]
    torch.testing.assert_close(only_labels["labels"], recipe)
    text_only = ours(text=TEXTS, label_pad_id=LABEL_PAD_ID)
    assert text_only["labels"] == recipe.tolist()


def test_documented_differences_in_decoding(pair):
    """Two decodings where transformers' CTC tokenizer loses characters and ours does not
    (README, "Decoding"): with ``skip_special_tokens`` it drops the blanks before collapsing
    repeats, so the blank between the two Ls of HELLO is lost; and it reads the label
    padding -100 as ``<unk>``."""
    ours, theirs = pair
    assert ours.decode(IDS[0], skip_special_tokens=True) == "HELLO W"
    assert theirs.decode(IDS[0], skip_special_tokens=True) == "HELO W"
    assert ours.decode([11, LABEL_PAD_ID, 8]) == "HE"
    assert theirs.decode([11, LABEL_PAD_ID, 8]) == "H<unk>E"


def test_w2v2_audio_options_reach_the_feature_extractor(pair):
    """resample/mono are routed to W2V2FeatureExtractor, flat or in audio_kwargs."""
    ours, _ = pair
    at_8k = _noise(800, 3)
    flat = ours(audio=at_8k, sampling_rate=8000, resample=True, return_tensors="np")["input_values"]
    nested = ours(audio=at_8k, audio_kwargs={"sampling_rate": 8000, "resample": True}, return_tensors="np")["input_values"]
    assert flat.shape == nested.shape == (1, 1600)
    np.testing.assert_array_equal(flat, nested)
    stereo = np.stack([AUDIO[0], AUDIO[0]])  # (channels, samples)
    mixed = ours(audio=[stereo], sampling_rate=SR, mono="mean", return_tensors="np")["input_values"]
    np.testing.assert_allclose(mixed, ours(audio=AUDIO[0], sampling_rate=SR, return_tensors="np")["input_values"], atol=1e-6)


def test_loads_a_transformers_folder_whose_specials_are_added_tokens(tmp_path):
    """A phoneme-style vocab.json without <pad>/<unk>: transformers saves them as added tokens."""
    (tmp_path / "vocab.json").write_text(json.dumps({"|": 0, "a": 1, "b": 2, "ʃ": 3, "tʃ": 4}, ensure_ascii=False))
    theirs = Wav2Vec2CTCTokenizer(str(tmp_path / "vocab.json"))
    theirs.save_pretrained(tmp_path / "hf")
    Wav2Vec2Processor(Wav2Vec2FeatureExtractor(), theirs).save_pretrained(tmp_path / "hf_processor")
    ours = W2V2CTCTokenizer.from_pretrained(tmp_path / "hf")
    assert ours.get_vocab() == theirs.get_vocab() and len(ours) == len(theirs)
    assert (ours.pad_token_id, ours.unk_token_id) == (theirs.pad_token_id, theirs.unk_token_id)
    for text in ["ab ʃ", "tʃa", "a ʃb"]:
        assert ours(text).input_ids == theirs(text).input_ids
    assert ours("a x").input_ids == [1, 0, ours.unk_token_id]  # transformers' own gives None for "x" here
    ids = [1, 1, theirs.pad_token_id, 1, 0, 4, 3, theirs.unk_token_id]
    assert ours.decode(ids) == theirs.decode(ids)
    processor = W2V2Processor.from_pretrained(tmp_path / "hf_processor")
    assert processor.tokenizer.get_vocab() == theirs.get_vocab()
    processor.save_pretrained(tmp_path / "ours")
    assert W2V2Processor.from_pretrained(tmp_path / "ours").tokenizer("tʃa b").input_ids == theirs("tʃa b").input_ids
