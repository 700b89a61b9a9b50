"""Transcripts against a given vocabulary, before any training step (issue 22).

A vocabulary brought with ``--processor_name_or_path`` can miss the transcripts' characters
(the commonest case: a lower-case vocabulary, as transformers' CTC example builds, and
upper-case transcripts). Every missing character trains as ``<unk>``: the loss still falls and
the run ends with exit 0, so the mismatch is checked up front.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping

__all__ = ["MAX_OOV_RATE", "check_vocabulary_coverage"]

logger = logging.getLogger(__name__)

MAX_OOV_RATE = 0.01  # more than 1 % of the characters as <unk>: the vocabulary does not fit the data
_SHOWN = 8  # missing characters named in the message


def check_vocabulary_coverage(
    tokenizer, transcripts: Mapping[str, Iterable[str]], source: str, max_oov_rate: float = MAX_OOV_RATE
) -> Counter[str]:
    """Count the characters of ``transcripts`` that ``tokenizer`` encodes as ``<unk>``.

    Args:
        tokenizer: A ``W2V2CTCTokenizer``; its ``case_folding`` is applied first.
        transcripts: Split name -> its transcripts, as the collator sees them (punctuation of
            ``--chars_to_ignore`` already dropped).
        source: Where the vocabulary came from, for the messages.
        max_oov_rate: Largest tolerated share of missing characters (spaces not counted).

    Returns:
        The missing characters with their counts; a warning names them when there are any.

    Raises:
        ValueError: Above ``max_oov_rate``, one line naming the rate, the commonest missing
            characters and the fix.
    """
    missing: Counter[str] = Counter()
    total = 0
    for texts in transcripts.values():
        for text in texts:
            total += len(text.split()) if getattr(tokenizer, "symbols", False) else len(text) - text.count(" ")
            missing.update(tokenizer.find_oov(text))
    count = sum(missing.values())
    if not count:
        return missing
    rate = count / max(total, 1)
    shown = ", ".join(f"{char!r} x{n}" for char, n in missing.most_common(_SHOWN))
    where = f"the {'/'.join(transcripts)} transcripts"
    if rate > max_oov_rate:
        raise ValueError(
            f"{rate:.1%} of the characters of {where} ({count} of {total}) are not in the vocabulary of {source} and "
            f"would train as {tokenizer.unk_token} (commonest: {shown}); {_fix(tokenizer, missing)}."
        )
    logger.warning("%d characters of %s (%.2f%%) are not in the vocabulary of %s and encode as %s: %s", count, where,
                   100 * rate, source, tokenizer.unk_token, shown)  # fmt: skip
    return missing


def _fix(tokenizer, missing: Counter[str]) -> str:
    """The case folding that brings most missing characters into the vocabulary, else the other ways out."""
    vocab = tokenizer.get_vocab()
    by_folding = {
        folding: sum(n for char, n in missing.items() if getattr(char, folding)() != char and getattr(char, folding)() in vocab)
        for folding in ("lower", "upper")
    }  # fmt: skip
    folding = max(by_folding, key=by_folding.get)
    if 2 * by_folding[folding] > sum(missing.values()):
        return f"pass --case_folding {folding} to match the vocabulary's case"
    return ("pass a processor whose vocabulary covers these characters, add them to --chars_to_ignore, or drop "
            "--processor_name_or_path to build the vocabulary from the training transcripts")  # fmt: skip
