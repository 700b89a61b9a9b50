"""transformers' ASR pipeline on a saved W2V2ForCTC + W2V2Processor directory (issue 3).

A tiny model is overfitted on one espeak-ng utterance so that the transcript, the word
timestamps and the chunked long-audio path are checked for real.

How chunking is made checkable: the pipeline cuts long audio into windows of
``CHUNK_S`` seconds that overlap by ``STRIDE_S`` on each side and keeps each window's
logits outside the strides. The long audio is built so that every window holds exactly
the training clip (one utterance with silence around it), and training adds a CTC loss on
the kept frames, so the overfitted model emits the utterance where the pipeline keeps it.
Lost, doubled or shifted frames would then show in the text and in the timestamps.
"""

import subprocess

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
import torch.nn.functional as F
from transformers import pipeline

from w2v2 import W2V2Config, W2V2CTCTokenizer, W2V2FeatureExtractor, W2V2ForCTC, W2V2Processor

SR = 16_000
TEXT = "HELLO WORLD"
CHUNK_S, STRIDE_S, ONSET_S = 1.6, 0.2, 0.44  # window, stride per side, speech onset in the clip
STEP_S = CHUNK_S - 2 * STRIDE_S  # 1.2 s between windows
MAX_STEPS = 1500


def _clip(folder) -> tuple[np.ndarray, float]:
    """espeak-ng "hello world" at 16 kHz with silence around it: ((CHUNK_S * SR,) float32, speech seconds)."""
    path = folder / "hello.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "hello world"], check=True)
    audio, rate = sf.read(path, dtype="float32")
    audio = soxr.resample(audio, rate, SR)
    voiced = np.flatnonzero(np.abs(audio) > 1e-3)
    speech = audio[voiced[0] : voiced[-1] + 1]
    onset, total = int(ONSET_S * SR), int(CHUNK_S * SR)
    # The layout needs the whole utterance between the two strides of its window.
    assert onset + len(speech) <= total - 2 * int(STRIDE_S * SR), "espeak-ng utterance too long for the layout"
    silence_after = np.zeros(total - onset - len(speech), np.float32)
    return np.concatenate([np.zeros(onset, np.float32), speech, silence_after]), len(speech) / SR


def _eval_mode_text(model, batch, tokenizer) -> str:
    model.eval()
    with torch.no_grad():
        text = tokenizer.decode(model(batch["input_values"], attention_mask=batch["attention_mask"]).logits[0].argmax(-1))
    model.train()
    return text


@pytest.fixture(scope="module")
def asr_dir(tmp_path_factory):
    """A trained tiny W2V2ForCTC + W2V2Processor saved in one directory, and its clip."""
    path = tmp_path_factory.mktemp("asr")
    clip, speech_s = _clip(path)
    tokenizer = W2V2CTCTokenizer.from_texts([TEXT])
    processor = W2V2Processor(W2V2FeatureExtractor(return_attention_mask=True), tokenizer)
    torch.manual_seed(0)
    config = W2V2Config.tiny(
        conv_dim=(16,) * 7,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        mask_time_prob=0.0,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        ctc_loss_reduction="mean",
    )
    model = W2V2ForCTC(config)
    # Silence is a word boundary: the spaces around the text make each window end in "|".
    batch = processor(audio=clip, sampling_rate=SR, text=f" {TEXT} ", return_tensors="pt")
    labels = batch["labels"]
    stride = int(STRIDE_S * SR) // config.inputs_to_logits_ratio  # frames the pipeline drops per side
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: one thread is ~10x faster than several spinning on a busy CPU
    try:
        for _ in range(MAX_STEPS):
            out = model(**batch)  # batch holds input_values, attention_mask and labels
            kept = out.logits[:, stride:-stride].log_softmax(-1).transpose(0, 1)  # (T', 1, V)
            kept_loss = F.ctc_loss(kept, labels, [kept.shape[0]], [labels.shape[1]], blank=tokenizer.pad_token_id)
            loss = out.loss + kept_loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if loss.item() < 0.2 and _eval_mode_text(model, batch, tokenizer) == TEXT:
                break  # checked without dropout: the saved model is run in eval mode
    finally:
        torch.set_num_threads(threads)
    model.eval()
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path, clip, speech_s


@pytest.fixture(scope="module")
def asr(asr_dir):
    # `import w2v2` (above) registered the Auto classes the pipeline resolves through.
    return pipeline("automatic-speech-recognition", model=str(asr_dir[0]))


def test_pipeline_loads_w2v2_classes(asr):
    assert type(asr.model) is W2V2ForCTC
    assert type(asr.feature_extractor) is W2V2FeatureExtractor
    assert type(asr.tokenizer) is W2V2CTCTokenizer
    assert asr.type == "ctc" and asr.model.config.inputs_to_logits_ratio == 320


def test_pipeline_transcribes_and_times_words(asr, asr_dir):
    _, clip, speech_s = asr_dir
    assert asr(clip)["text"] == TEXT
    assert asr({"raw": clip, "sampling_rate": SR})["text"] == TEXT
    out = asr(clip, return_timestamps="word")
    assert [c["text"] for c in out["chunks"]] == TEXT.split()
    (start0, end0), (start1, end1) = (c["timestamp"] for c in out["chunks"])
    speech_end = ONSET_S + speech_s
    assert ONSET_S - 0.2 <= start0 < end0 <= start1 < end1 <= speech_end + 0.2
    # The pipeline's seconds are the tokenizer's frame offsets times 320 / 16000.
    features = asr.feature_extractor(clip, sampling_rate=SR, return_tensors="pt")
    with torch.no_grad():
        ids = asr.model(**features).logits[0].argmax(-1)
    words = asr.tokenizer.decode(ids, output_word_offsets=True).word_offsets
    seconds = W2V2Processor(asr.feature_extractor, asr.tokenizer).offsets_to_seconds(words, 320)
    assert [(w["start_time"], w["end_time"]) for w in seconds] == [c["timestamp"] for c in out["chunks"]]


def test_pipeline_chunks_long_audio(asr, asr_dir):
    _, clip, _ = asr_dir
    step = int(STEP_S * SR)
    long_audio = np.concatenate([clip[:step], clip[:step], clip])  # 3 utterances, 4.0 s
    single = asr(clip, return_timestamps="word")["chunks"]
    out = asr(long_audio, chunk_length_s=CHUNK_S, stride_length_s=STRIDE_S, return_timestamps="word")
    # Windows meet in silence, where the model emits a delimiter on both sides: the
    # word sequence is exact; the gap between utterances may hold two spaces.
    assert out["text"].split() == TEXT.split() * 3
    assert [c["text"] for c in out["chunks"]] == TEXT.split() * 3
    for k in range(3):
        for got, want in zip(out["chunks"][2 * k : 2 * k + 2], single):
            assert got["timestamp"] == pytest.approx((want["timestamp"][0] + k * STEP_S, want["timestamp"][1] + k * STEP_S))
