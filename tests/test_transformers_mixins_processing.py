"""transformers' own test mixins for feature extraction, tokenization and processing, run on
``W2V2FeatureExtractor``, ``W2V2CTCTokenizer`` and ``W2V2Processor``.

The mixins (``SequenceFeatureExtractionTestMixin``, ``TokenizerTesterMixin``,
``ProcessorTesterMixin``, from the installed transformers' ``tests/``; see
``transformers_harness``) are what every transformers model's processing classes pass. The
set-up here is ours: a small feature-extractor tester and a character vocabulary written once
per class (once more as a folder saved by transformers' tokenizer, whose ``<pad>``/``<unk>`` are
added tokens). Each class lists the mixin tests it skips, with a one-line reason, in ``SKIPPED``.

Baseline: with ``W2V2_MIXIN_BASELINE=1`` the same classes also run over transformers'
``Wav2Vec2FeatureExtractor``/``Wav2Vec2CTCTokenizer``/``Wav2Vec2Processor`` with nothing
skipped, so a failure there is the harness's (or transformers'), not w2v2's.
"""

import json
import os
import random
import string
import tempfile
import unittest
from pathlib import Path

import numpy as np
from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor
from transformers_harness import mixin

from w2v2.processing import W2V2CTCTokenizer, W2V2FeatureExtractor, W2V2Processor

SequenceFeatureExtractionTestMixin = mixin(
    "test_sequence_feature_extraction_common", "SequenceFeatureExtractionTestMixin"
)
TokenizerTesterMixin = mixin("test_tokenization_common", "TokenizerTesterMixin")
ProcessorTesterMixin = mixin("test_processing_common", "ProcessorTesterMixin")

BASELINE = os.environ.get("W2V2_MIXIN_BASELINE") == "1"
baseline = unittest.skipUnless(BASELINE, "baseline over transformers' Wav2Vec2 classes: set W2V2_MIXIN_BASELINE=1")

# <pad> is the CTC blank (id 0); the letters of both cases and a little punctuation cover the
# mixins' English sample texts, so most characters encode as themselves.
VOCAB = {token: i for i, token in enumerate(["<pad>", "<unk>", "|", "'", ".", ","] + list(string.ascii_letters))}


def write_vocab(folder: str, vocab: dict[str, int] = VOCAB) -> str:
    path = Path(folder) / "vocab.json"
    path.write_text(json.dumps(vocab), encoding="utf-8")
    return str(path)


class ListedSkips:
    """Skips the tests named in the class's ``SKIPPED`` (name -> one-line reason); an entry
    that names no test of the class is an error, so the list cannot go stale."""

    SKIPPED: dict[str, str] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        stale = sorted(name for name in cls.SKIPPED if not callable(getattr(cls, name, None)))
        if stale:
            raise AttributeError(f"{cls.__name__}.SKIPPED names tests it does not have: {stale}")

    def setUp(self):
        super().setUp()
        if self._testMethodName in self.SKIPPED:
            self.skipTest(self.SKIPPED[self._testMethodName])


# ---- feature extraction ------------------------------------------------------------------


class FeatureExtractionTester:
    """What ``SequenceFeatureExtractionTestMixin`` reads: sizes, the init dict and a batch of
    ``batch_size`` utterances whose lengths grow by ``seq_length_diff`` from ``min_seq_length``."""

    def __init__(self, batch_size=4, min_seq_length=400, max_seq_length=1000, seed=0):
        self.batch_size = batch_size
        self.min_seq_length = min_seq_length
        self.max_seq_length = max_seq_length
        self.seq_length_diff = (max_seq_length - min_seq_length) // (batch_size - 1)  # 200
        self.feature_size = 1
        self.padding_value = 0.0
        self.sampling_rate = 16_000
        self.rng = random.Random(seed)

    def prepare_feat_extract_dict(self):
        return {
            "feature_size": self.feature_size,
            "padding_value": self.padding_value,
            "sampling_rate": self.sampling_rate,
            "return_attention_mask": True,
            "do_normalize": True,
        }

    def prepare_inputs_for_common(self, equal_length=False, numpify=False):
        lengths = [self.max_seq_length] * self.batch_size if equal_length else [
            self.min_seq_length + i * self.seq_length_diff for i in range(self.batch_size)
        ]  # fmt: skip
        inputs = [[self.rng.uniform(-1, 1) for _ in range(n)] for n in lengths]
        return [np.asarray(x) for x in inputs] if numpify else inputs


class W2V2FeatureExtractionTest(ListedSkips, SequenceFeatureExtractionTestMixin, unittest.TestCase):
    feature_extraction_class = W2V2FeatureExtractor
    SKIPPED = {}

    def setUp(self):
        self.feat_extract_tester = FeatureExtractionTester()
        super().setUp()


@baseline
class Wav2Vec2FeatureExtractionBaseline(W2V2FeatureExtractionTest):
    feature_extraction_class = Wav2Vec2FeatureExtractor
    SKIPPED = {}


# ---- tokenization ------------------------------------------------------------------------


class W2V2CTCTokenizerTest(ListedSkips, TokenizerTesterMixin, unittest.TestCase):
    tokenizer_class = W2V2CTCTokenizer
    test_seq2seq = False  # a CTC tokenizer has no target side
    test_tokenizer_from_extractor = False  # no tokenizer.json: a character vocabulary is vocab.json
    SKIPPED = {
        "test_pad_token_initialization": "design: a pad_token (CTC blank) not in vocab.json is refused, not added as a new id",
        "test_pretokenized_inputs": "fails on transformers' Wav2Vec2CTCTokenizer too: 5.x drops the '|' between pre-split words",
    }

    saved_by = None  # the class that writes the folder get_tokenizer() loads; None: tokenizer_class
    vocab = VOCAB

    @classmethod
    def setUpClass(cls):
        super().setUpClass()  # makes cls.tmpdirname, which get_tokenizer() loads from
        writer = cls.saved_by or cls.tokenizer_class
        writer(write_vocab(cls.tmpdirname, cls.vocab)).save_pretrained(cls.tmpdirname)


class W2V2CTCTokenizerFromTransformersFolderTest(W2V2CTCTokenizerTest):
    """Our tokenizer loading a folder saved by transformers' Wav2Vec2CTCTokenizer from a vocab.json
    without <pad>/<unk> (as phoneme vocabularies are): there they are added tokens, after <s> and
    </s>: <unk> 58, <pad> 59."""

    saved_by = Wav2Vec2CTCTokenizer
    vocab = {token: i for i, token in enumerate(t for t in VOCAB if t not in ("<pad>", "<unk>"))}


@baseline
class Wav2Vec2CTCTokenizerBaseline(W2V2CTCTokenizerTest):
    tokenizer_class = Wav2Vec2CTCTokenizer
    SKIPPED = {}


# ---- processing --------------------------------------------------------------------------


class W2V2ProcessorTest(ListedSkips, ProcessorTesterMixin, unittest.TestCase):
    processor_class = W2V2Processor
    feature_extractor_class = W2V2FeatureExtractor
    tokenizer_class = W2V2CTCTokenizer
    text_input_name = "labels"  # with audio, the transcripts' ids come back as labels (CTC targets)
    SKIPPED = {}

    @classmethod
    def _setup_feature_extractor(cls):
        return cls.feature_extractor_class(return_attention_mask=True)

    @classmethod
    def _setup_tokenizer(cls):
        with tempfile.TemporaryDirectory() as folder:
            return cls.tokenizer_class(write_vocab(folder))  # reads vocab.json now


@baseline
class Wav2Vec2ProcessorBaseline(W2V2ProcessorTest):
    processor_class = Wav2Vec2Processor
    feature_extractor_class = Wav2Vec2FeatureExtractor
    tokenizer_class = Wav2Vec2CTCTokenizer
    SKIPPED = {}
