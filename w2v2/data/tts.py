"""Text-to-speech engines and audio post-processing for the synthetic demo corpus.

Three Debian engines, each called as a subprocess that writes a WAV file:

- ``espeak-ng``: 8 English accents x 37 voice variants (``en-us+m3``); rate ``-s`` in
  words per minute (175 x rate) and pitch ``-p`` (50 x pitch**2, of 0-99) natively.
- ``flite``: the voices ``kal16``, ``awb``, ``rms``, ``slt``; rate through
  ``duration_stretch`` and pitch through ``int_f0_target_mean`` (``rms`` ignores it).
- ``festival`` (``text2wave``): ``kal_diphone``, ``ked_diphone``,
  ``cmu_us_slt_arctic_hts``; rate and pitch with sox ``tempo`` and ``pitch``.

Audio is then resampled to 16 kHz (soxr), set to a random level, optionally mixed with
coloured noise at a random SNR, and quantised to int16. Noise comes from a numpy
``Generator`` that the caller seeds, so the output is a pure function of the arguments.

Phonemes (:func:`synthesize_with_phonemes`, :func:`phonemes_of`): espeak-ng prints the IPA
phonemes of what it reads (``--ipa --sep=" "``), in the same call that speaks for its own voices
(same voice, same text); flite and festival read with the CMU US English lexicon, so their
phonemes are espeak-ng's ``en-us``. Stress marks and language-switch flags are left out, so a
text's phonemes are space-separated symbols such as ``ð ə  h ɛ v ə n`` -> ``ð ə h ɛ v ə n``
(diphthongs and long vowels, ``eɪ``, ``iː``, are one symbol each; no word boundaries).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..processing.audio import SAMPLE_RATE, load_audio

__all__ = ["ENGINES", "SAMPLE_RATE", "Voice", "add_noise", "check_engines", "phonemes_of", "set_level",
           "synthesize", "synthesize_with_phonemes", "to_int16", "voices"]

ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
                  "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
                   "klatt", "klatt2", "klatt3", "klatt4", "croak", "whisper", "whisperf",
                   "adam", "Andy", "Annie", "aunty", "belinda", "benjamin", "david", "ed",
                   "linda", "max", "norbert", "paul", "quincy", "rob", "robert", "steph",
                   "travis", "victor")
# Variants (in every accent) and flite voices kept for test_clean: never heard in training.
HELD_OUT_ESPEAK_VARIANTS = ("m7", "f5", "klatt4", "aunty", "travis")
FLITE_VOICES = ("kal16", "awb", "rms", "slt")
HELD_OUT_FLITE_VOICES = ("rms",)
# Typical mean F0 (Hz) of each flite voice: the pitch factor scales it.
FLITE_F0 = {"kal16": 105.0, "awb": 110.0, "rms": 105.0, "slt": 170.0}
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
ENGINES = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "text2wave"}  # name -> binary
PHONEME_FLAGS = ["--ipa", "--sep= "]  # espeak-ng: IPA, phonemes separated by spaces (words by two)
LEXICON_VOICE = "en-us"  # espeak-ng voice whose phonemes stand for flite's and festival's (CMU US lexicon)
_NOT_PHONEMES = re.compile(r"\([a-z-]+\)|[ˈˌ]")  # language-switch flags "(fr)", primary/secondary stress


@dataclass(frozen=True)
class Voice:
    engine: str  # "espeak-ng", "flite" or "festival"
    name: str  # "en-us+m3", "slt", "kal_diphone"

    @property
    def speaker(self) -> str:
        return f"{self.engine}:{self.name}"


def voices(engine: str, held_out: bool) -> tuple[Voice, ...]:
    """The training voices of ``engine`` (``held_out=False``) or its test_clean voices."""
    if engine == "espeak-ng":
        keep = [v for v in ESPEAK_VARIANTS if (v in HELD_OUT_ESPEAK_VARIANTS) == held_out]
        return tuple(Voice(engine, f"{a}+{v}") for a in ESPEAK_ACCENTS for v in keep)
    if engine == "flite":
        return tuple(Voice(engine, v) for v in FLITE_VOICES if (v in HELD_OUT_FLITE_VOICES) == held_out)
    if engine == "festival":
        return () if held_out else tuple(Voice(engine, v) for v in FESTIVAL_VOICES)
    raise ValueError(f"engine={engine!r} is unknown; use one of {sorted(ENGINES)}")


def check_engines(engines: set[str]) -> None:
    """Raise ValueError naming the missing binaries and how to install them."""
    missing = [ENGINES[e] for e in sorted(engines) if shutil.which(ENGINES[e]) is None]
    if missing:
        raise ValueError(f"speech engines not installed: {', '.join(missing)}; run "
                         "scripts/setup.sh (apt-get install espeak-ng flite festival ...)")


def synthesize(voice: Voice, text: str, rate: float, pitch: float) -> np.ndarray:
    """Speak ``text``; float32 mono at 16 kHz, shape ``[samples]``.

    ``rate`` and ``pitch`` are factors around 1.0 (1.2 = 20 % faster / higher).
    """
    return _synthesize(voice, text, rate, pitch, with_phonemes=False)[0]


def synthesize_with_phonemes(voice: Voice, text: str, rate: float, pitch: float) -> tuple[np.ndarray, str]:
    """:func:`synthesize`, and the phonemes of what is spoken (module docstring): for espeak-ng
    voices printed by the very call that speaks, for the others by :func:`phonemes_of`."""
    audio, phonemes = _synthesize(voice, text, rate, pitch, with_phonemes=True)
    return audio, phonemes if phonemes is not None else phonemes_of(voice, text)


def phonemes_of(voice: Voice, text: str) -> str:
    """The space-separated IPA phonemes espeak-ng reads ``text`` with, in ``voice``'s accent
    (``en-us`` for flite and festival voices); no audio is made."""
    name = voice.name if voice.engine == "espeak-ng" else LEXICON_VOICE
    with tempfile.TemporaryDirectory(prefix="w2v2-tts-") as tmp:
        txt = Path(tmp) / "in.txt"
        txt.write_text(text + "\n")
        return _clean_phonemes(_run(["espeak-ng", "-q", "-v", name, *PHONEME_FLAGS, "-f", str(txt)]))


def _clean_phonemes(printed: str) -> str:
    return " ".join(_NOT_PHONEMES.sub("", printed).split())


def _synthesize(voice: Voice, text: str, rate: float, pitch: float, with_phonemes: bool) -> tuple[np.ndarray, str | None]:
    phonemes = None
    with tempfile.TemporaryDirectory(prefix="w2v2-tts-") as tmp:
        wav, txt = Path(tmp) / "out.wav", Path(tmp) / "in.txt"
        txt.write_text(text + "\n")
        if voice.engine == "espeak-ng":
            cmd = ["espeak-ng", "-v", voice.name, "-s", str(round(175 * rate)),
                   "-p", str(round(min(50 * pitch**2, 99))), "-f", str(txt), "-w", str(wav)]
            if with_phonemes:  # printed while it speaks: the same audio, byte for byte
                phonemes = _clean_phonemes(_run(cmd + PHONEME_FLAGS))
                cmd = None
        elif voice.engine == "flite":
            cmd = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={1 / rate:.3f}",
                   "--setf", f"int_f0_target_mean={FLITE_F0[voice.name] * pitch:.1f}",
                   "-f", str(txt), "-o", str(wav)]
        elif voice.engine == "festival":
            raw = Path(tmp) / "raw.wav"
            cmd = ["text2wave", "-eval", f"(voice_{voice.name})", "-o", str(raw), str(txt)]
            _run(cmd)
            # -R: repeatable, -D: no dither, so the output is deterministic.
            cmd = ["sox", "-R", "-D", str(raw), "-e", "floating-point", "-b", "32", str(wav),
                   "tempo", "-s", f"{rate:.3f}", "pitch", f"{1200 * np.log2(pitch):.0f}"]
        else:
            raise ValueError(f"voice.engine={voice.engine!r} is unknown; use one of {sorted(ENGINES)}")
        if cmd is not None:
            _run(cmd)
        audio = load_audio(wav, SAMPLE_RATE)  # mono, resampled to 16 kHz
    return audio, phonemes


def _run(cmd: list[str]) -> str:
    """Run ``cmd``; its standard output."""
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def set_level(audio: np.ndarray, rms_dbfs: float) -> np.ndarray:
    """Scale to an RMS of ``rms_dbfs`` dB full scale, lowered if the peak would clip."""
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) or 1.0
    gain = 10 ** (rms_dbfs / 20) / rms
    peak = float(np.abs(audio).max()) * gain
    if peak > 0.99:
        gain *= 0.99 / peak
    return (audio * gain).astype(np.float32)


def add_noise(audio: np.ndarray, snr_db: float, colour: float, rng: np.random.Generator) -> np.ndarray:
    """Mix in Gaussian noise with a ``1/f**colour`` power spectrum (0 white, 1 pink, 2
    brown) at ``snr_db`` dB below the speech power; the mix is peak-limited to 0.99."""
    n = len(audio)
    spectrum = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    freqs = np.fft.rfftfreq(n, d=1 / SAMPLE_RATE)
    freqs[0] = freqs[1] if n > 1 else 1.0
    noise = np.fft.irfft(spectrum / freqs ** (colour / 2), n=n)
    speech_power = np.mean(audio.astype(np.float64) ** 2)
    noise *= np.sqrt(speech_power / 10 ** (snr_db / 10) / (np.mean(noise**2) or 1.0))
    mixed = audio + noise
    peak = float(np.abs(mixed).max())
    return (mixed * (0.99 / peak if peak > 0.99 else 1.0)).astype(np.float32)


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Round float audio in [-1, 1] to int16 (what is written to FLAC)."""
    return np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
