"""Public-domain sentences for the synthetic demo corpus, normalised for CTC labels.

Sources (Debian packages, see ``scripts/setup.sh``):

- ``bible-kjv``: the King James Version (public domain), read with
  ``bible -l10000 gen1:1-rev22:21``, whose output is a ``Book N`` header per chapter and
  one ``  V text`` line per verse;
- ``wordnet-base``: the quoted example sentences in the glosses of WordNet 3.0's
  ``data.{noun,verb,adj,adv}`` files (``... | gloss; "an example"; "another"``).

Every sentence has two forms: ``spoken`` (lower case, with the punctuation that shapes
prosody, fed to the TTS engine) and ``transcription`` (upper-case letters, apostrophe
and space: the CTC alphabet). Both come from one token list, so they always hold the
same words. Sentences go to the ``train``, ``validation`` or ``test`` part by a stable
hash of the transcription, so no test sentence is ever spoken in a training split.
"""

from __future__ import annotations

import functools
import hashlib
import re
import subprocess
import unicodedata
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Sentence", "load_sentences", "sentence_part", "spoken_and_label", "split_sentences"]

MIN_WORDS, MAX_WORDS = 4, 30
WORDNET_DIR = Path("/usr/share/wordnet")
KJV_COMMAND = ["bible", "-l10000", "gen1:1-rev22:21"]
# Share of sentences (out of 100 hash buckets) in the held-out parts.
VALIDATION_PERCENT, TEST_PERCENT = 5, 5

# Words a TTS engine reads differently from their letters: abbreviations and acronyms.
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "etc", "eg", "ie", "co", "inc"}
_ALLOWED_CAPS = {"LORD", "GOD", "I", "O", "A"}
_DROP_QUIETLY = re.compile(r"[\"`()\[\]]")  # quotes and brackets: not spoken, not labelled
_DASHES = re.compile(r"[-_]+")
_REFUSED_CHAR = re.compile(r"[^A-Za-z' ,.;:?!\s]")  # digits, symbols
_EDGE_APOSTROPHE = re.compile(r"(?:(?<=\s)|^)'+|'+(?=[,.;:?!]*(?:\s|$))")
_NO_PUNCTUATION = str.maketrans("", "", ",.;:?!")
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")
_CLAUSE_END = re.compile(r"(?<=[;:])\s+")


@dataclass(frozen=True)
class Sentence:
    spoken: str  # what the engine reads, e.g. "and god said, let there be light"
    transcription: str  # the label, e.g. "AND GOD SAID LET THERE BE LIGHT"
    source: str  # "kjv" or "wordnet"

    @property
    def num_words(self) -> int:
        return self.transcription.count(" ") + 1


def spoken_and_label(text: str) -> tuple[str, str] | None:
    """``(spoken, transcription)`` of one sentence, or None when it cannot be labelled.

    Refused: digits, symbols (``$ % & / + =``), abbreviations, acronyms, single letters
    other than A, I and O, and fewer than 4 or more than 30 words.
    """
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = _DASHES.sub(" ", _DROP_QUIETLY.sub("", text))
    if _REFUSED_CHAR.search(text):
        return None
    # "`bets'" and "'tis" use the apostrophe as a quote mark: keep it only inside words.
    text = _EDGE_APOSTROPHE.sub("", text)
    spoken_words, label_words = [], []
    for word in text.split():
        letters = word.translate(_NO_PUNCTUATION)
        if not letters:
            continue
        lower = letters.lower()
        if lower.replace("'", "") in _ABBREVIATIONS or (len(letters) == 1 and lower not in "aio"):
            return None
        if len(letters) > 1 and letters.isupper() and letters not in _ALLOWED_CAPS:
            return None
        spoken_words.append(word.lower())
        label_words.append(letters.upper())
    if not MIN_WORDS <= len(label_words) <= MAX_WORDS:
        return None
    return " ".join(spoken_words), " ".join(label_words)


def split_sentences(passage: str) -> list[str]:
    """Sentences of a verse or gloss example; overlong ones are cut at ``;`` and ``:``."""
    pieces = []
    for sentence in _SENTENCE_END.split(passage.strip()):
        if len(sentence.split()) > MAX_WORDS:
            pieces.extend(_CLAUSE_END.split(sentence))
        else:
            pieces.append(sentence)
    return [p for p in pieces if p]


def _kjv_passages() -> list[str]:
    out = subprocess.run(KJV_COMMAND, capture_output=True, text=True, check=True).stdout
    # Verse lines are "  12 text"; chapter headers ("Genesis 1") and blank lines are not.
    return [m.group(1) for m in re.finditer(r"^\s+\d+ (.+)$", out, flags=re.MULTILINE)]


def _wordnet_passages(wordnet_dir: Path) -> list[str]:
    passages = []
    for pos in ("noun", "verb", "adj", "adv"):
        for line in (wordnet_dir / f"data.{pos}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or "|" not in line:  # the licence header
                continue
            passages.extend(re.findall(r'"([^"]+)"', line.split("|", 1)[1]))
    return passages


def sentence_part(transcription: str) -> str:
    """``"train"``, ``"validation"`` or ``"test"``, from a stable hash (never ``hash()``)."""
    bucket = int.from_bytes(hashlib.sha1(transcription.encode()).digest()[:8], "big") % 100
    if bucket < TEST_PERCENT:
        return "test"
    if bucket < TEST_PERCENT + VALIDATION_PERCENT:
        return "validation"
    return "train"


@functools.lru_cache(maxsize=1)
def load_sentences() -> dict[str, tuple[Sentence, ...]]:
    """Every usable sentence, deduplicated and sorted, by part (train/validation/test).

    Takes about a second; cached for the life of the process.
    """
    missing = [cmd for cmd, ok in (("bible (bible-kjv)", _has_bible()),
                                   (f"{WORDNET_DIR}/data.noun (wordnet-base)",
                                    (WORDNET_DIR / "data.noun").exists())) if not ok]
    if missing:
        raise ValueError(f"text sources not installed: {', '.join(missing)}; "
                         "run scripts/setup.sh (apt-get install bible-kjv wordnet-base)")
    seen: dict[str, Sentence] = {}
    for source, passages in (("kjv", _kjv_passages()), ("wordnet", _wordnet_passages(WORDNET_DIR))):
        for passage in passages:
            for piece in split_sentences(passage):
                pair = spoken_and_label(piece)
                if pair is not None and pair[1] not in seen:
                    seen[pair[1]] = Sentence(pair[0], pair[1], source)
    parts: dict[str, list[Sentence]] = {"train": [], "validation": [], "test": []}
    for transcription in sorted(seen):
        parts[sentence_part(transcription)].append(seen[transcription])
    return {part: tuple(sentences) for part, sentences in parts.items()}


def _has_bible() -> bool:
    try:
        subprocess.run(["bible", "-l1", "gen1:1"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return False
    return True
