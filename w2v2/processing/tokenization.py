"""Characters <-> CTC label ids, and greedy CTC decoding.

The vocabulary is one id per character plus three special entries:

- ``<pad>`` (id 0) is the CTC blank and the label padding of the tokenizer;
- ``<unk>`` stands for any character outside the vocabulary;
- ``|`` is the word delimiter: a space in the text is encoded as ``|``.

No ``<s>``/``</s>`` are added, so ``len(tokenizer) == tokenizer.vocab_size`` is the size of
the CTC head (``config.vocab_size``); a vocabulary written by transformers'
``Wav2Vec2CTCTokenizer`` keeps the extra ids it was saved with.

A literal ``|`` in a transcript is not the word delimiter: it is encoded as ``<unk>`` and
reported by :meth:`W2V2CTCTokenizer.find_oov` (pick another ``word_delimiter_token`` to keep it).

**Symbol mode** (``phone_delimiter_token=" "``): a text is a sequence of symbols separated by
spaces (phones, ``"h ə l oʊ"``, or any unit inventory), one id per symbol however many
characters it has. The word delimiter, when there is one, is a symbol like the others
(``"h ə | w ɜː"``), as in transformers' ``Wav2Vec2PhonemeCTCTokenizer``, whose ``vocab.json`` and
``tokenizer_config.json`` (``phone_delimiter_token``, ``word_delimiter_token``, ``do_phonemize``)
this mode reads and writes. Decoding is the same CTC collapse, and joins symbols with spaces.
w2v2 never phonemizes: texts must already be symbols (the demo corpus's ``phonemes`` column).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizer
from transformers.tokenization_utils_base import AddedToken
from transformers.utils import ModelOutput, logging, to_py_obj

__all__ = ["W2V2CTCTokenizer", "W2V2CTCTokenizerOutput", "offsets_to_seconds", "word_offsets_from_chars"]

logger = logging.get_logger(__name__)

VOCAB_FILE = "vocab.json"
_CASE_FOLDING = (None, "lower", "upper")

Offsets = list[dict[str, Any]]


@dataclass
class W2V2CTCTokenizerOutput(ModelOutput):
    """What ``decode``/``batch_decode`` return when offsets are asked for.

    Offsets are in logit frames: ``{"char": "A", "start_offset": 3, "end_offset": 5}``
    covers frames 3 and 4. :func:`offsets_to_seconds` turns them into seconds.
    """

    text: str | list[str] | None = None
    char_offsets: Offsets | list[Offsets] | None = None
    word_offsets: Offsets | list[Offsets] | None = None


def word_offsets_from_chars(char_offsets: Offsets, delimiter: str = " ", joiner: str = "") -> Offsets:
    """Group character offsets into words, split at ``delimiter`` characters.

    ``[{"char": "H", "start_offset": 0, "end_offset": 1}, ...]`` ->
    ``[{"word": "HI", "start_offset": 0, "end_offset": 4}, ...]``; ``joiner=" "`` keeps the
    symbols of a word apart (symbol mode: ``"h ə"``).
    """
    words: Offsets = []
    in_word = False
    for offset in char_offsets:
        if offset["char"] == delimiter:
            in_word = False
        elif in_word:
            words[-1]["word"] += joiner + offset["char"]
            words[-1]["end_offset"] = offset["end_offset"]
        else:
            words.append(
                {"word": offset["char"], "start_offset": offset["start_offset"], "end_offset": offset["end_offset"]}
            )
            in_word = True
    return words


def offsets_to_seconds(offsets: Offsets, inputs_to_logits_ratio: int, sampling_rate: int) -> Offsets:
    """Add ``start_time``/``end_time`` in seconds to frame offsets.

    One logit frame covers ``inputs_to_logits_ratio`` input samples (the product of
    ``config.conv_stride``, 320 for the paper's encoder: 20 ms at 16 kHz), so
    ``time = offset * inputs_to_logits_ratio / sampling_rate``.
    """
    seconds_per_frame = inputs_to_logits_ratio / sampling_rate
    return [
        {
            **offset,
            "start_time": offset["start_offset"] * seconds_per_frame,
            "end_time": offset["end_offset"] * seconds_per_frame,
        }
        for offset in offsets
    ]


class W2V2CTCTokenizer(PreTrainedTokenizer):
    """Character tokenizer for CTC with ``<pad>`` as the blank (or, with ``phone_delimiter_token=" "``,
    a tokenizer of space-separated symbols: phones, units).

    Args:
        vocab_file: Path to a ``vocab.json`` mapping characters to ids (the format of
            transformers' ``Wav2Vec2CTCTokenizer``). Give this or ``vocab``.
        vocab: The mapping itself, instead of a file.
        unk_token, pad_token: Unknown character and CTC blank; both must be in the vocab, or
            added tokens of a folder saved by transformers (as phoneme vocabularies are).
        word_delimiter_token: Stands for a space between words; must be in the vocab. In symbol
            mode it may be None (no word boundaries).
        replace_word_delimiter_char: What the delimiter decodes to: a space for characters, the
            delimiter itself in symbol mode (the defaults).
        phone_delimiter_token: None (default): one token per character. ``" "``: symbol mode,
            one token per space-separated symbol (see the module docstring).
        case_folding: None, ``"lower"`` or ``"upper"``: applied to text before encoding.
        do_lower_case: transformers' flag, kept so their files load with the same ids:
            it *upper*-cases text before encoding and lower-cases decoded text.
        bos_token, eos_token: Off by default (see the module docstring).
    """

    vocab_files_names = {"vocab_file": VOCAB_FILE}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        vocab_file: str | None = None,
        *,
        vocab: dict[str, int] | None = None,
        unk_token: str = "<unk>",
        pad_token: str = "<pad>",
        word_delimiter_token: str | None = "|",
        replace_word_delimiter_char: str | None = None,
        case_folding: str | None = None,
        do_lower_case: bool = False,
        bos_token: str | None = None,
        eos_token: str | None = None,
        phone_delimiter_token: str | None = None,
        **kwargs: Any,
    ):
        # transformers' loader moves custom "*_token" entries of tokenizer_config.json here.
        specific = dict(kwargs.pop("model_specific_special_tokens", None) or {})
        word_delimiter_token = specific.pop("word_delimiter_token", word_delimiter_token)
        phone_delimiter_token = specific.pop("phone_delimiter_token", phone_delimiter_token)
        if specific:
            kwargs["model_specific_special_tokens"] = specific
        self.symbols = phone_delimiter_token is not None
        if word_delimiter_token is None and not self.symbols:
            raise ValueError("word_delimiter_token=None needs symbol mode; pass phone_delimiter_token=' ' for texts of "
                             "space-separated symbols, or a word_delimiter_token such as '|'.")  # fmt: skip
        word_delimiter_token = None if word_delimiter_token is None else str(word_delimiter_token)
        if self.symbols and kwargs.pop("do_phonemize", False):
            logger.warning("do_phonemize=True ignored: W2V2CTCTokenizer never phonemizes; pass texts of phonemes.")
        self.encoder = _load_vocab(vocab_file, vocab)
        # transformers saves specials missing from vocab.json (a phoneme vocabulary's <pad>, <unk>)
        # as added tokens, in tokenizer_config.json's added_tokens_decoder: they count as entries.
        added_decoder = dict(kwargs.pop("added_tokens_decoder", None) or {})
        added_ids = {str(t): int(i) for i, t in added_decoder.items()}
        named = (("pad_token", pad_token), ("unk_token", unk_token), ("word_delimiter_token", word_delimiter_token))
        for name, token in named:
            if token is not None and str(token) not in self.encoder and str(token) not in added_ids:
                raise ValueError(
                    f"{name}={str(token)!r} is not in the vocabulary ({len(self.encoder)} entries); add it to "
                    "vocab.json or build the vocabulary with W2V2CTCTokenizer.from_texts."
                )
        if word_delimiter_token is not None and word_delimiter_token not in self.encoder:  # a plain entry (see below)
            self.encoder[word_delimiter_token] = added_ids[word_delimiter_token]
        self.decoder = {i: token for token, i in self.encoder.items()}
        if case_folding not in _CASE_FOLDING:
            raise ValueError(f"case_folding={case_folding!r} is not supported; use None, 'lower' or 'upper'.")
        _check_case(self.encoder, case_folding, do_lower_case)
        self._word_delimiter_token = word_delimiter_token
        self._phone_delimiter_token = phone_delimiter_token
        if replace_word_delimiter_char is None:
            replace_word_delimiter_char = (word_delimiter_token or "") if self.symbols else " "
        self.replace_word_delimiter_char = replace_word_delimiter_char
        self.case_folding = case_folding
        self.do_lower_case = do_lower_case
        # The delimiter is a plain vocabulary entry, not an added token: added tokens are
        # matched in raw text, which would read a literal "|" as a word boundary.
        added = {i: t for i, t in added_decoder.items() if str(t) != word_delimiter_token}
        super().__init__(
            unk_token=unk_token,
            pad_token=pad_token,
            bos_token=bos_token,
            eos_token=eos_token,
            added_tokens_decoder=added,
            replace_word_delimiter_char=replace_word_delimiter_char,
            case_folding=case_folding,
            do_lower_case=do_lower_case,
            special_tokens_pattern="none",
            **kwargs,
        )
        # Every __init__ argument is kept (and saved), None included, as transformers' tokenizers do.
        self.init_kwargs.update(word_delimiter_token=word_delimiter_token, phone_delimiter_token=phone_delimiter_token)
        if self.symbols:  # as transformers' Wav2Vec2PhonemeCTCTokenizer writes them
            self.init_kwargs["do_phonemize"] = False
        # Entries longer than one character ("<unk>", digraphs) must not be split into letters; a
        # symbol is looked up whole, so in symbol mode none is an added token ("oʊ" in "oʊt").
        multi_char = [] if self.symbols else [t for t in self.encoder if len(t) > 1 and t not in self._added_tokens_encoder]
        self.add_tokens([AddedToken(t, lstrip=False, rstrip=False, normalized=False) for t in multi_char])
        self.dropped_characters: Counter[str] = Counter()

    @classmethod
    def from_texts(
        cls,
        texts: Iterable[str],
        *,
        case_folding: str | None = None,
        allowed_chars: str | Iterable[str] | Callable[[str], bool] | None = None,
        unk_token: str = "<unk>",
        pad_token: str = "<pad>",
        word_delimiter_token: str | None = "|",
        phone_delimiter_token: str | None = None,
        **kwargs: Any,
    ) -> W2V2CTCTokenizer:
        """Build the character (or symbol) vocabulary of a corpus of transcripts.

        Ids: ``<pad>`` 0 (CTC blank), ``<unk>`` 1, delimiter 2, then the kept characters
        in sorted order. Characters refused by ``allowed_chars`` (a string or set of
        characters, or a predicate), whitespace other than space, control characters
        and the delimiter character itself are left out and will encode as ``<unk>``;
        their counts are in ``tokenizer.dropped_characters`` and logged.

        Args:
            texts: Transcripts, e.g. ``dataset["text"]``.
            case_folding: None, ``"lower"`` or ``"upper"``, applied before counting and
                to every text encoded later.
            phone_delimiter_token: ``" "``: the texts are space-separated symbols (phones,
                units), e.g. ``dataset["phonemes"]``; the vocabulary is then one id per
                symbol, in the same order (``allowed_chars`` filters symbols).
        """
        if isinstance(texts, str):
            raise TypeError("texts is a single string; pass a list of transcripts, e.g. [text].")
        if case_folding not in _CASE_FOLDING:
            raise ValueError(f"case_folding={case_folding!r} is not supported; use None, 'lower' or 'upper'.")
        keep = _char_filter(allowed_chars)
        counts: Counter[str] = Counter()
        for text in texts:
            folded = _fold(text, case_folding)
            counts.update(_split_symbols(folded, phone_delimiter_token) if phone_delimiter_token is not None else folded)
        kept, dropped = [], Counter()
        for char, count in counts.items():
            usable = char == " " or (char.isprintable() and not char.isspace() and char != word_delimiter_token)
            if phone_delimiter_token is not None and char == word_delimiter_token:
                continue  # a symbol of the vocabulary's specials
            if char != " " and usable and keep(char):
                kept.append(char)
            elif char != " ":
                dropped[char] = count
        specials = [t for t in (pad_token, unk_token, word_delimiter_token) if t is not None]
        vocab = {token: i for i, token in enumerate(specials + sorted(set(kept) - set(specials)))}
        tokenizer = cls(
            vocab=vocab,
            unk_token=unk_token,
            pad_token=pad_token,
            word_delimiter_token=word_delimiter_token,
            case_folding=case_folding,
            phone_delimiter_token=phone_delimiter_token,
            **kwargs,
        )
        tokenizer.dropped_characters = dropped
        if dropped:
            logger.warning(
                f"W2V2CTCTokenizer.from_texts left {len(dropped)} characters out of the vocabulary (they encode as "
                f"{unk_token}): {dict(dropped.most_common(20))}"
            )
        return tokenizer

    # ---- vocabulary -------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Entries of vocab.json; equals ``len(self)`` unless tokens were added."""
        return len(self.encoder)

    @property
    def word_delimiter_token(self) -> str:
        return self._word_delimiter_token

    @property
    def word_delimiter_token_id(self) -> int | None:
        return None if self._word_delimiter_token is None else self.encoder[self._word_delimiter_token]

    @property
    def phone_delimiter_token(self) -> str | None:
        """``" "`` in symbol mode (texts of space-separated symbols), None for characters."""
        return self._phone_delimiter_token

    def get_vocab(self) -> dict[str, int]:
        return {**self.encoder, **self._added_tokens_encoder}

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        if not os.path.isdir(save_directory):
            raise ValueError(f"save_directory={save_directory!r} is not a directory; create it first.")
        path = os.path.join(save_directory, (f"{filename_prefix}-" if filename_prefix else "") + VOCAB_FILE)
        with open(path, "w", encoding="utf-8") as f:
            f.write(json.dumps(self.encoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        return (path,)

    # ---- encoding ----------------------------------------------------------------------

    def normalize_text(self, text: str) -> str:
        """The text as it is encoded: case-folded, with a literal delimiter turned into ``<unk>``."""
        text = _fold(text, "upper" if self.do_lower_case else self.case_folding)
        if self.symbols:  # the delimiter is a symbol of its own there
            return " ".join(_split_symbols(text, self._phone_delimiter_token))
        return text.replace(self._word_delimiter_token, str(self.unk_token))

    def prepare_for_tokenization(self, text: str, is_split_into_words: bool = False, **kwargs: Any):
        text = self.normalize_text(text)
        return (" " + text if is_split_into_words else text), kwargs

    def _tokenize(self, text: str, **kwargs: Any) -> list[str]:
        if self.symbols:
            return _split_symbols(text, self._phone_delimiter_token)
        return list(text.replace(" ", self._word_delimiter_token))

    def _convert_token_to_id(self, token: str) -> int:
        return self.encoder[token] if token in self.encoder else self.unk_token_id

    def _convert_id_to_token(self, index: int) -> str:
        return self.decoder.get(index, str(self.unk_token))

    def find_oov(self, texts: str | Iterable[str]) -> Counter[str]:
        """Characters of ``texts`` that encode as ``<unk>``, with their counts.

        A literal word-delimiter character counts as out of vocabulary.
        """
        texts = [texts] if isinstance(texts, str) else texts
        vocab = self.get_vocab()
        oov: Counter[str] = Counter()
        for text in texts:
            folded = _fold(text, "upper" if self.do_lower_case else self.case_folding)
            if self.symbols:
                oov.update(s for s in _split_symbols(folded, self._phone_delimiter_token) if s not in vocab)
            else:
                oov.update(c for c in folded if c != " " and (c not in vocab or c == self._word_delimiter_token))
        return oov

    # ---- decoding ----------------------------------------------------------------------

    def decode(
        self,
        token_ids: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        output_char_offsets: bool = False,
        output_word_offsets: bool = False,
        group_tokens: bool = True,
        **kwargs: Any,
    ) -> str | W2V2CTCTokenizerOutput:
        """Greedy CTC decoding of one sequence of ids.

        Runs of the same id collapse to one character, then blanks (``<pad>``) vanish, so
        ``A A <pad> A`` is ``"AA"``; the delimiter becomes a space. Negative ids (label
        padding, -100) count as blanks.

        Args:
            token_ids: ids of shape (frames,): a list, numpy array or tensor, e.g.
                ``logits[0].argmax(-1)``.
            skip_special_tokens: Also drop ``<unk>`` and other special tokens (after
                collapsing; the delimiter is kept).
            output_char_offsets, output_word_offsets: Also return frame offsets; see
                :func:`offsets_to_seconds`.
            group_tokens: False keeps repeats, for decoding labels rather than logits.

        Returns:
            The text, or a :class:`W2V2CTCTokenizerOutput` when offsets are asked for.
        """
        ids = _as_id_list(token_ids, "decode")
        if ids and isinstance(ids[0], list):
            raise ValueError(
                f"decode takes one sequence of ids but got a batch of {len(ids)}; use batch_decode."
            )
        return self._decode(ids, skip_special_tokens, clean_up_tokenization_spaces, output_char_offsets, output_word_offsets,
                            group_tokens)  # fmt: skip

    def batch_decode(self, sequences: Any, **kwargs: Any) -> list[str] | W2V2CTCTokenizerOutput:
        """:meth:`decode` for each row of ``sequences`` (batch, frames), with the same keyword
        arguments (``skip_special_tokens``, ``output_char_offsets``, ``output_word_offsets``, ...).

        With offsets, returns one :class:`W2V2CTCTokenizerOutput` whose fields are lists.
        """
        decoded = [self.decode(row, **kwargs) for row in _as_id_list(sequences, "batch_decode")]
        output_char_offsets, output_word_offsets = kwargs.get("output_char_offsets", False), kwargs.get("output_word_offsets", False)
        if not (output_char_offsets or output_word_offsets):
            return decoded
        return W2V2CTCTokenizerOutput(
            text=[d.text for d in decoded],
            char_offsets=[d.char_offsets for d in decoded] if output_char_offsets else None,
            word_offsets=[d.word_offsets for d in decoded] if output_word_offsets else None,
        )

    def _decode(
        self,
        token_ids: list[int],
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        output_char_offsets: bool = False,
        output_word_offsets: bool = False,
        group_tokens: bool = True,
        **kwargs: Any,
    ) -> str | W2V2CTCTokenizerOutput:
        blank = self.pad_token_id
        ids = [blank if i < 0 else i for i in token_ids]
        # 1. runs of equal ids -> one emission [id, first frame, frame after the last]
        runs: list[list[int]] = []
        for frame, token_id in enumerate(ids):
            if group_tokens and runs and runs[-1][0] == token_id:
                runs[-1][2] = frame + 1
            else:
                runs.append([token_id, frame, frame + 1])
        # 2. blanks separate emissions and carry no character
        runs = [run for run in runs if run[0] != blank]
        if skip_special_tokens:
            skip = set(self.all_special_ids) - {self.word_delimiter_token_id}
            runs = [run for run in runs if run[0] not in skip]
        char_offsets = [
            {"char": self._id_to_char(token_id), "start_offset": start, "end_offset": end}
            for token_id, start, end in runs
        ]
        text = (" " if self.symbols else "").join(offset["char"] for offset in char_offsets).strip()
        if self.do_lower_case:
            text = text.lower()
        if clean_up_tokenization_spaces or (clean_up_tokenization_spaces is None and self.clean_up_tokenization_spaces):
            text = self.clean_up_tokenization(text)
        if not (output_char_offsets or output_word_offsets):
            return text
        words = self._get_word_offsets(char_offsets, self.replace_word_delimiter_char)
        return W2V2CTCTokenizerOutput(
            text=text,
            char_offsets=char_offsets if output_char_offsets else None,
            word_offsets=words if output_word_offsets else None,
        )

    def _id_to_char(self, token_id: int) -> str:
        token = self.convert_ids_to_tokens(token_id)
        return self.replace_word_delimiter_char if token == self._word_delimiter_token else token

    def _get_word_offsets(self, char_offsets: Offsets, word_delimiter_char: str = " ") -> Offsets:
        # transformers' ASR pipeline calls this private name for return_timestamps="word".
        return word_offsets_from_chars(char_offsets, word_delimiter_char, joiner=" " if self.symbols else "")


def _load_vocab(vocab_file: str | None, vocab: dict[str, int] | None) -> dict[str, int]:
    if (vocab_file is None) == (vocab is None):
        raise ValueError("Pass exactly one of vocab_file (path to vocab.json) and vocab (a dict char -> id).")
    if vocab is None:
        with open(vocab_file, encoding="utf-8") as f:
            vocab = json.load(f)
    if any(isinstance(v, dict) for v in vocab.values()):
        raise ValueError(
            f"{vocab_file} is a nested multi-lingual vocabulary (one dict per language); load one language's "
            "dict and pass it as vocab=..."
        )
    ids = sorted(vocab.values())
    if ids != list(range(len(ids))):
        raise ValueError(f"vocabulary ids must be 0..{len(ids) - 1} without gaps or repeats; got {ids[:10]}...")
    return dict(vocab)


def _check_case(encoder: dict[str, int], case_folding: str | None, do_lower_case: bool) -> None:
    """Refuse a case setting that would map every letter to <unk>."""
    letters = [t for t in encoder if len(t) == 1 and t.isalpha() and t.lower() != t.upper()]
    folded_to = "upper" if do_lower_case else case_folding
    if not letters or folded_to is None:
        return
    if not any(getattr(t, f"is{folded_to}")() for t in letters):
        flag = "do_lower_case=True" if do_lower_case else f"case_folding={case_folding!r}"
        raise ValueError(
            f"{flag} turns text {folded_to}-case but the vocabulary has no {folded_to}-case letters, so every "
            f"letter would encode as <unk>; use case_folding={'lower' if folded_to == 'upper' else 'upper'!r}."
        )


def _fold(text: str, case_folding: str | None) -> str:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}: {text!r:.60}")
    if case_folding == "lower":
        return text.lower()
    if case_folding == "upper":
        return text.upper()
    return text


def _split_symbols(text: str, phone_delimiter_token: str) -> list[str]:
    """The symbols of a text: split at whitespace and at ``phone_delimiter_token``."""
    if not phone_delimiter_token.isspace():
        text = text.replace(phone_delimiter_token, " ")
    return text.split()


def _char_filter(allowed_chars: str | Iterable[str] | Callable[[str], bool] | None) -> Callable[[str], bool]:
    if allowed_chars is None:
        return lambda char: True
    if callable(allowed_chars):
        return allowed_chars
    allowed = set(allowed_chars)
    return allowed.__contains__


def _as_id_list(token_ids: Any, caller: str) -> Any:
    """Python ints from a list, numpy array or tensor of ids; float input is refused."""
    is_float = (
        token_ids.is_floating_point()
        if isinstance(token_ids, torch.Tensor)
        else isinstance(token_ids, np.ndarray) and not np.issubdtype(token_ids.dtype, np.integer)
    )
    if is_float:
        raise ValueError(
            f"{caller} got {token_ids.dtype} values of shape {tuple(token_ids.shape)}; pass token ids, e.g. "
            "logits.argmax(-1) for logits of shape (batch, frames, vocab)."
        )
    ids = to_py_obj(token_ids)
    return [ids] if isinstance(ids, int) else ids

