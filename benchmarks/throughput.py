"""w2v2 against transformers, in one run on this machine: pretraining, fine-tuning, inference.

    .venv/bin/python benchmarks/throughput.py --corpus outputs/low_resource_short/corpus \
        --ctc_model outputs/low_resource_short/pretrained_train_10min [--parts steps e2e accuracy long]

Parts (each prints a markdown table; ratios are transformers' time / w2v2's, > 1: w2v2 faster):

* ``steps``: same weights (``to_transformers``), same inputs, interleaved call by call with the
  order alternating, medians of the paired ratios: the ``small`` recipe's pretraining step
  (8 x 3 s), BASE's (2 x 5 s), both forward + backward + AdamW; one BASE CTC fine-tuning update
  (2 x 5 s, SpecAugment, frozen feature encoder, Adam); BASE inference on 10 s. w2v2 runs as its
  trainers and ``w2v2-transcribe`` run it (contrastive loss on the frames it needs, mixed
  precision as ``auto`` chooses on this machine); transformers runs as its users run it (fp32;
  its bf16 figure is printed too). Also: FLOP per call and achieved FLOP/s against the measured
  fp32 and bf16 matmul peaks.
* ``e2e``: pretraining throughput with the data pipeline, in audio seconds per second between
  updates ``--warmup`` and ``--warmup + --updates``: ``w2v2-pretrain --recipe small`` against a
  loop over transformers' ``Wav2Vec2ForPreTraining`` fed by the numpy mask / negative sampling
  of its pretraining example (``_compute_mask_indices``, ``_sample_negative_indices``), on the
  same corpus and the same crops (w2v2's batcher), each in its own process, alternating; peak RSS.
* ``accuracy``: greedy CER of ``--ctc_model`` on the corpus's test_clean in fp32, under bf16
  autocast and with int8 Linear layers, and how many transcripts differ from fp32.
* ``compile`` (not run by default): the small step eager and under ``torch.compile``, fp32 and
  bf16, with compile time and the loss after a few updates (the drift).
* ``onnx`` (not run by default): one 10 s utterance through ``--ctc_model`` and a random BASE
  CTC model, each exported on the fly (``w2v2-export``, fp32 and int8): onnxruntime against torch
  eager fp32 (and torch's int8 Linear layers), interleaved; same thread count for both.
* ``long``: one 10-minute file (test clips joined): ``w2v2-transcribe``'s Transcriber with its
  defaults against transformers' ``pipeline("automatic-speech-recognition", chunk_length_s=20,
  stride_length_s=2.5)`` on the same folder, each in its own process: seconds and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

SAMPLE_RATE = 16_000


# ----------------------------------------------------------------------------- machine
def cpu_description() -> str:
    model = platform.processor() or "unknown CPU"
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("unknown CPU", "x86_64", ""):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = line
                break
    except OSError:
        pass
    units = [f for f in ("amx_bf16", "avx512_bf16") if f in flags.split()]
    return f"{model}, {os.cpu_count()} cores, bf16 units: {', '.join(units) or 'none'}"


def matmul_peak(dtype: torch.dtype, device: torch.device, size: int = 2048) -> float:
    """GFLOP/s of a (size x size) @ (size x size) matmul in ``dtype``, best of 5."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------- steps
def count_flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def paired(calls: dict, repeats: int, device) -> dict[str, list[float]]:
    """Seconds per call of each callable, interleaved, order alternating each round."""
    names = list(calls)
    for fn in calls.values():
        fn()  # warm-up
    times = {n: [] for n in names}
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            calls[name]()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return times


def part_steps(args, device) -> None:
    from w2v2 import W2V2Config, W2V2ForCTC, W2V2ForPreTraining, to_transformers
    from w2v2.training.recipes import recipe_config
    from w2v2.training.speed import choose_mixed_precision

    peaks = {"fp32": matmul_peak(torch.float32, device), "bf16": matmul_peak(torch.bfloat16, device)}
    print(f"\nmatmul peaks (2048^3): fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s")
    no_dropout = dict(layerdrop=0.0, hidden_dropout=0.0, attention_dropout=0.0, feat_proj_dropout=0.0, feat_quantizer_dropout=0.0)

    def autocast(bf16):
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def pretraining_case(config, batch, seconds):
        torch.manual_seed(0)
        ours = W2V2ForPreTraining(config).to(device).train()
        theirs = to_transformers(ours).to(device).train()
        precision = choose_mixed_precision("auto", device, ours, samples=int(seconds * SAMPLE_RATE))
        x = 0.1 * torch.randn(batch, int(seconds * SAMPLE_RATE), device=device)
        mask, negatives = ours.sample_masks(x, generator=torch.Generator(device).manual_seed(0))

        def step(model, bf16, **kwargs):
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

            def run():
                optimizer.zero_grad(set_to_none=True)
                with autocast(bf16):
                    out = model(x, mask_time_indices=mask, sampled_negative_indices=negatives, **kwargs)
                out.loss.backward()
                optimizer.step()
            return run

        calls = {"w2v2": step(ours, precision == "bf16", quantize_masked_only=True), "w2v2 fp32": step(ours, False, quantize_masked_only=True),
                 "transformers": step(theirs, False), "transformers bf16": step(theirs, True)}
        return calls, precision, count_flops(step(ours, False, quantize_masked_only=True)), batch * seconds

    def ctc_case():
        torch.manual_seed(0)
        config = W2V2Config.base(vocab_size=32, mask_time_prob=0.65, mask_time_length=10, mask_feature_prob=0.25,
                                 mask_feature_length=64, ctc_zero_infinity=True, **no_dropout)
        ours = W2V2ForCTC(config).to(device).train()
        theirs = to_transformers(ours).to(device).train()
        precision = choose_mixed_precision("auto", device, ours, samples=5 * SAMPLE_RATE)
        g = torch.Generator().manual_seed(0)
        batch = {"input_values": (0.1 * torch.randn(2, 5 * SAMPLE_RATE, generator=g)).to(device),
                 "labels": torch.randint(1, 32, (2, 75), generator=g).to(device)}

        def update(model, bf16):
            model.freeze_feature_encoder()
            optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-5)

            def run():
                torch.manual_seed(1)  # same SpecAugment draws for every call
                optimizer.zero_grad(set_to_none=True)
                with autocast(bf16):
                    loss = model(**batch).loss
                loss.backward()
                optimizer.step()
            return run

        calls = {"w2v2": update(ours, precision == "bf16"), "w2v2 fp32": update(ours, False),
                 "transformers": update(theirs, False), "transformers bf16": update(theirs, True)}
        return calls, precision, count_flops(update(ours, False)), 10.0

    def inference_case():
        torch.manual_seed(0)
        ours = W2V2ForCTC(W2V2Config.base(vocab_size=32, **no_dropout)).to(device).eval()
        theirs = to_transformers(ours).to(device).eval()
        precision = choose_mixed_precision("auto", device, ours, samples=5 * SAMPLE_RATE)  # as w2v2-transcribe probes
        x = 0.1 * torch.randn(1, 10 * SAMPLE_RATE, device=device)

        def infer(model, bf16):
            def run():
                with torch.no_grad(), autocast(bf16):
                    return model(x).logits.float()
            return run

        ids = {name: fn().argmax(-1) for name, fn in (("fp32", infer(ours, False)), ("chosen", infer(ours, precision == "bf16")), ("transformers", infer(theirs, False)))}
        agree = float((ids["chosen"] == ids["transformers"]).float().mean())
        print(f"BASE inference, random weights: frame labels of w2v2 ({precision}) equal to transformers' fp32 on {100 * agree:.1f}% "
              "of frames (a trained model's transcripts: part accuracy)")
        calls = {"w2v2": infer(ours, precision == "bf16"), "w2v2 fp32": infer(ours, False),
                 "transformers": infer(theirs, False), "transformers bf16": infer(theirs, True)}
        return calls, precision, count_flops(infer(ours, False)), 10.0

    cases = [
        ("small recipe pretraining step, 8 x 3 s", lambda: pretraining_case(recipe_config("small"), 8, 3.0), args.repeats),
        ("BASE pretraining step, 2 x 5 s", lambda: pretraining_case(W2V2Config.base(**no_dropout), 2, 5.0), max(2, args.repeats // 2)),
        ("BASE CTC fine-tuning update, 2 x 5 s", ctc_case, max(2, args.repeats // 2)),
        ("BASE inference, 10 s", inference_case, args.repeats),
    ]
    print("\n| case | w2v2 runs | w2v2 s | w2v2 fp32 s | transformers s | transformers bf16 s | ratio (paired median) | "
          "GFLOP | w2v2 GFLOP/s (% of its peak) | audio s / s, w2v2 vs transformers |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, build, repeats in cases:
        calls, precision, flops, audio = build()
        times = paired(calls, repeats, device)
        ratio = statistics.median(t / o for t, o in zip(times["transformers"], times["w2v2"]))
        med = {k: statistics.median(v) for k, v in times.items()}
        achieved = flops / med["w2v2"] / 1e9
        peak = peaks["bf16" if precision == "bf16" else "fp32"]
        print(f"| {name} | {precision} | {med['w2v2']:.3f} | {med['w2v2 fp32']:.3f} | {med['transformers']:.3f} | "
              f"{med['transformers bf16']:.3f} | {ratio:.2f}x | {flops / 1e9:.1f} | {achieved:.0f} ({100 * achieved / peak:.0f}%) | "
              f"{audio / med['w2v2']:.1f} vs {audio / med['transformers']:.1f} |", flush=True)
        del calls


# ----------------------------------------------------------------------------- compile
def part_compile(args, device) -> None:
    """The small recipe's step eager / compiled, fp32 / bf16: seconds per step after
    compilation, compile time, and the loss after ``--drift_updates`` AdamW updates from the
    same initialisation on the same batches (the drift of bf16 and of compilation)."""
    from w2v2 import W2V2ForPreTraining
    from w2v2.training.recipes import recipe_config
    from w2v2.training.speed import compile_model

    g = torch.Generator().manual_seed(0)
    batches = [0.1 * torch.randn(8, 48_000, generator=g).to(device) for _ in range(4)]
    print(f"\nsmall recipe step (8 x 3 s), eager vs torch.compile, fp32 vs bf16; loss after {args.drift_updates} updates "
          "from one initialisation on 4 fixed batches in turn")
    print("| run | compile s | s / step | loss at the end |")
    print("|---|---|---|---|")
    for compiled in (False, True):
        for bf16 in (False, True):
            torch.manual_seed(0)
            model = W2V2ForPreTraining(recipe_config("small")).to(device).train()
            masks = [model.sample_masks(x, generator=torch.Generator(device).manual_seed(i)) for i, x in enumerate(batches)]
            optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, fused=True)
            if compiled:
                compile_model(model)

            def step(i):
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    out = model(batches[i % 4], mask_time_indices=masks[i % 4][0], sampled_negative_indices=masks[i % 4][1],
                                quantize_masked_only=True)
                out.loss.backward()
                optimizer.step()
                return out.loss.item()

            torch.manual_seed(1)
            start = time.perf_counter()
            step(0)
            first = time.perf_counter() - start
            times, loss = [], None
            for i in range(1, args.drift_updates):
                start = time.perf_counter()
                loss = step(i)
                times.append(time.perf_counter() - start)
            print(f"| {'compiled' if compiled else 'eager'} {'bf16' if bf16 else 'fp32'} | {first if compiled else 0:.0f} | "
                  f"{statistics.median(times[2:]):.3f} | {loss:.5f} |", flush=True)


# ----------------------------------------------------------------------------- e2e
def child_e2e_w2v2(corpus: str, updates: int, warmup: int, out: str) -> dict:
    from w2v2.training.pretrain import PretrainArguments, train

    total = warmup + updates
    # The recipe as it is (schedule, logging every 10 updates), stopped after ``total`` updates.
    train(PretrainArguments(dataset=str(Path(corpus) / "pretrain"), output_dir=out, recipe="small", stop_after_updates=total,
                            save_steps=10**9))
    history = {r["step"]: r for r in map(json.loads, (Path(out) / "runs" / "metrics.jsonl").read_text().splitlines())}
    first, last = history[warmup], history[total]
    seconds = (last["elapsed_minutes"] - first["elapsed_minutes"]) * 60
    return {"audio_per_s": (last["audio_hours"] - first["audio_hours"]) * 3600 / seconds, "s_per_update": seconds / updates}


def child_e2e_transformers(corpus: str, updates: int, warmup: int) -> dict:
    """transformers' pretraining example, reduced to its loop: numpy masks and negatives per
    batch, forward, loss / masked frames, backward, clip, AdamW, schedule, Gumbel temperature."""
    from transformers import Wav2Vec2ForPreTraining, get_scheduler
    from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices

    from w2v2 import W2V2ForPreTraining, to_transformers
    from w2v2.training.audio_data import AudioBatches, load_audio_dataset
    from w2v2.training.recipes import RECIPES, recipe_config

    recipe = RECIPES["small"]
    torch.manual_seed(0)
    ours = recipe_config("small")  # the masking and temperature settings, which transformers' config does not hold
    model: Wav2Vec2ForPreTraining = to_transformers(W2V2ForPreTraining(ours)).train()
    data = AudioBatches(load_audio_dataset(str(Path(corpus) / "pretrain")), batch_seconds=recipe.batch_seconds,
                        max_sample_size=recipe.max_sample_size, min_sample_size=recipe.min_sample_size,
                        normalize=recipe.normalize, pad=recipe.pad, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
    total = warmup + updates
    scheduler = get_scheduler("polynomial", optimizer, num_warmup_steps=recipe.warmup_updates, num_training_steps=recipe.max_updates)
    step, audio, started = 0, 0.0, None
    epoch = 0
    while step < total:
        for batch in data.epoch(epoch):
            if batch is None:
                continue
            if step == warmup:
                started, audio = time.perf_counter(), 0.0
            x = batch.input_values
            frames = int(model._get_feat_extract_output_lengths(x.shape[-1]))
            mask = _compute_mask_indices((x.shape[0], frames), ours.pretrain_mask_time_prob, ours.pretrain_mask_time_length,
                                         min_masks=ours.pretrain_mask_time_min_masks)
            negatives = _sample_negative_indices((x.shape[0], frames), ours.num_negatives, mask_time_indices=mask)
            mask = torch.tensor(mask, dtype=torch.bool)
            model.set_gumbel_temperature(ours.gumbel_temperature_at(step))
            out = model(x, mask_time_indices=mask, sampled_negative_indices=torch.tensor(negatives, dtype=torch.long))
            (out.loss / mask.sum()).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            audio += batch.seconds
            step += 1
            if step == total:
                break
        epoch += 1
    seconds = time.perf_counter() - started
    return {"audio_per_s": audio / seconds, "s_per_update": seconds / updates}


def run_child(argv: list[str]) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", *argv], capture_output=True, text=True,
                            env={**os.environ, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"})
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"child {argv} failed:\n{result.stderr[-3000:]}")
    return json.loads(lines[-1])


def part_e2e(args) -> None:
    rows = {"w2v2-pretrain": [], "transformers loop": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.e2e_rounds):
            order = ["w2v2", "transformers"] if round_ % 2 == 0 else ["transformers", "w2v2"]
            for who in order:
                if who == "w2v2":
                    rows["w2v2-pretrain"].append(run_child(["e2e-w2v2", args.corpus, str(args.updates), str(args.warmup), f"{tmp}/run{round_}"]))
                else:
                    rows["transformers loop"].append(run_child(["e2e-transformers", args.corpus, str(args.updates), str(args.warmup)]))
    print(f"\nend-to-end pretraining, recipe small, {args.updates} timed updates after {args.warmup}, {args.e2e_rounds} rounds each, alternating")
    print("| pipeline | audio s / s (median) | s / update | peak RSS MB |")
    print("|---|---|---|---|")
    for name, results in rows.items():
        print(f"| {name} | {statistics.median(r['audio_per_s'] for r in results):.1f} | "
              f"{statistics.median(r['s_per_update'] for r in results):.3f} | {max(r['peak_rss_mb'] for r in results):.0f} |")
    ratio = statistics.median(rows["w2v2-pretrain"][i]["audio_per_s"] / rows["transformers loop"][i]["audio_per_s"] for i in range(args.e2e_rounds))
    print(f"throughput ratio w2v2 / transformers (median over rounds): {ratio:.2f}x")


# ----------------------------------------------------------------------------- accuracy
def part_accuracy(args) -> None:
    import jiwer

    from w2v2 import W2V2ForCTC, W2V2Processor
    from w2v2.processing.audio import load_audio
    from w2v2.training.audio_data import load_audio_dataset
    from w2v2.training.collators import normalize_transcript

    processor = W2V2Processor.from_pretrained(args.ctc_model)
    fp32 = W2V2ForCTC.from_pretrained(args.ctc_model).eval()
    int8 = torch.ao.quantization.quantize_dynamic(W2V2ForCTC.from_pretrained(args.ctc_model).eval(), {torch.nn.Linear}, dtype=torch.qint8)
    test = load_audio_dataset(str(Path(args.corpus) / "test_clean"))
    clips = [(load_audio(row["audio"]), normalize_transcript(row[args.text_column])) for row in test]
    variants = {"fp32": (fp32, False), "bf16 autocast": (fp32, True), "int8 Linear": (int8, False)}
    exports = tempfile.TemporaryDirectory()
    try:  # the ONNX exports of the same folder (w2v2-export), run by onnxruntime
        from w2v2.inference.export import export_onnx
        from w2v2.inference.onnx_runner import OnnxCTCModel

        for name, quantized in (("onnxruntime fp32", False), ("onnxruntime int8", True)):
            variants[name] = (OnnxCTCModel(export_onnx(args.ctc_model, Path(exports.name) / name.split()[1], int8=quantized).parent), None)
    except ValueError as error:  # onnx packages missing
        print(f"(ONNX rows skipped: {error})")
    texts, seconds, max_diff, reference = {}, {}, {}, []
    for name, (model, bf16) in variants.items():
        out, diff = [], 0.0
        start = time.perf_counter()
        for i, (audio, _) in enumerate(clips):
            features = processor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt")
            if bf16 is None:  # onnxruntime: numpy in, logits (1, T, V) out
                logits = torch.from_numpy(model(features.input_values.numpy()))
            else:
                with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    logits = model(features.input_values).logits.float()
            if name == "fp32":
                reference.append(logits)
            diff = max(diff, float((logits - reference[i]).abs().max()))
            out.append(processor.decode(logits.argmax(-1)[0]))
        seconds[name] = time.perf_counter() - start
        texts[name], max_diff[name] = out, diff
    exports.cleanup()
    refs = [text for _, text in clips]
    audio_s = sum(len(a) for a, _ in clips) / SAMPLE_RATE
    print(f"\ngreedy transcripts of {args.ctc_model} on test_clean ({len(clips)} clips, {audio_s / 60:.1f} min)")
    print("| run | CER | WER | transcripts unlike fp32 | max abs logit diff vs fp32 | s (one clip at a time) |")
    print("|---|---|---|---|---|---|")
    for name, out in texts.items():
        differ = sum(a != b for a, b in zip(out, texts["fp32"]))
        print(f"| {name} | {100 * jiwer.cer(refs, out):.2f}% | {100 * jiwer.wer(refs, out):.2f}% | {differ} of {len(out)} | "
              f"{max_diff[name]:.2g} | {seconds[name]:.1f} |")


# ----------------------------------------------------------------------------- long
def child_long(who: str, model_dir: str, path: str) -> dict:
    start = time.perf_counter()
    if who == "w2v2":
        from w2v2.inference.transcribe import Transcriber

        transcriber = Transcriber.from_pretrained(model_dir, device="cpu", mixed_precision="auto")
        text = next(transcriber.transcribe([path]))["text"]
        setting = f"batch {transcriber.batch_size}, {transcriber.mixed_precision}"
    else:
        from transformers import pipeline

        asr = pipeline("automatic-speech-recognition", model=model_dir, device="cpu")
        text = asr(path, chunk_length_s=20, stride_length_s=2.5)["text"]
        setting = "chunk 20 s, stride 2.5 s, fp32"
    return {"seconds": time.perf_counter() - start, "words": len(text.split()), "setting": setting, "text": text}


def _transformers_copy(model_dir: str, out: str) -> str:
    """The same recognizer as transformers' own classes (Wav2Vec2ForCTC, its tokenizer and
    feature extractor), so that the pipeline runs without w2v2."""
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor

    from w2v2 import W2V2ForCTC, W2V2Processor, to_transformers

    ours = W2V2Processor.from_pretrained(model_dir)
    to_transformers(W2V2ForCTC.from_pretrained(model_dir)).save_pretrained(out)
    tokenizer = ours.tokenizer
    Wav2Vec2CTCTokenizer(str(Path(model_dir) / "vocab.json"), unk_token=tokenizer.unk_token, pad_token=tokenizer.pad_token,
                         word_delimiter_token=tokenizer.word_delimiter_token, do_lower_case=False).save_pretrained(out)
    fe = ours.feature_extractor
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=fe.sampling_rate, padding_value=fe.padding_value,
                             do_normalize=fe.do_normalize, return_attention_mask=fe.return_attention_mask).save_pretrained(out)
    return out


def part_long(args) -> None:
    import numpy as np
    import soundfile as sf

    from w2v2.processing.audio import load_audio
    from w2v2.training.audio_data import load_audio_dataset

    with tempfile.TemporaryDirectory() as tmp:
        test = load_audio_dataset(str(Path(args.corpus) / "test_clean"))
        pieces, total = [], 0
        while total < 600 * SAMPLE_RATE:
            for row in test:
                pieces.append(load_audio(row["audio"]))
                total += len(pieces[-1])
                if total >= 600 * SAMPLE_RATE:
                    break
        path = f"{tmp}/ten_minutes.flac"
        sf.write(path, np.concatenate(pieces)[: 600 * SAMPLE_RATE], SAMPLE_RATE)
        theirs = _transformers_copy(args.ctc_model, f"{tmp}/transformers_format")
        results = {}
        for who, folder in (("w2v2", args.ctc_model), ("transformers", theirs)) * 2:
            results.setdefault(who, []).append(run_child(["long", who, folder, path]))
    print(f"\none 10-minute file, {args.ctc_model}")
    print("| transcriber | setting | s (median of 2) | peak RSS MB | words |")
    print("|---|---|---|---|---|")
    for who, runs in results.items():
        print(f"| {who} | {runs[0]['setting']} | {statistics.median(r['seconds'] for r in runs):.1f} | "
              f"{max(r['peak_rss_mb'] for r in runs):.0f} | {runs[0]['words']} |")
    same = results["w2v2"][0]["text"] == results["transformers"][0]["text"]
    print(f"same transcript: {same}")


# ----------------------------------------------------------------------------- onnx
def part_onnx(args) -> None:
    """onnxruntime (w2v2-export, fp32 and int8) against torch eager on one 10 s utterance, CPU."""
    import numpy as np

    from w2v2 import W2V2Config, W2V2CTCTokenizer, W2V2FeatureExtractor, W2V2ForCTC, W2V2Processor
    from w2v2.inference.export import export_onnx
    from w2v2.inference.onnx_runner import OnnxCTCModel

    threads = torch.get_num_threads()
    cpu = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        folders = {}
        if Path(args.ctc_model, "config.json").is_file():
            folders[Path(args.ctc_model).name] = Path(args.ctc_model)
        else:
            print(f"\n(no fine-tuned folder at {args.ctc_model}: its row is skipped)")
        torch.manual_seed(0)
        tokenizer = W2V2CTCTokenizer.from_texts(["THE QUICK BROWN FOX JUMPS OVER A LAZY DOG'S BACK"])
        W2V2ForCTC(W2V2Config.base(vocab_size=len(tokenizer))).save_pretrained(f"{tmp}/base")
        W2V2Processor(W2V2FeatureExtractor(), tokenizer).save_pretrained(f"{tmp}/base")
        folders["BASE, random weights"] = Path(f"{tmp}/base")
        rows = []
        for name, folder in folders.items():
            exported = {}
            for int8 in (False, True):
                start = time.perf_counter()
                export_onnx(folder, f"{tmp}/{name}-{int8}", int8=int8)
                exported[int8] = (OnnxCTCModel(f"{tmp}/{name}-{int8}", num_threads=threads), time.perf_counter() - start)
            model = W2V2ForCTC.from_pretrained(folder).eval()
            quantized = torch.ao.quantization.quantize_dynamic(W2V2ForCTC.from_pretrained(folder).eval(), {torch.nn.Linear}, dtype=torch.qint8)
            audio = 0.1 * np.random.default_rng(0).standard_normal(10 * SAMPLE_RATE).astype(np.float32)
            values, mask = exported[False][0].prepare([audio])
            x = torch.from_numpy(values)
            outputs = {}

            def torch_call(m, key):
                def run():
                    with torch.no_grad():
                        outputs[key] = m(x).logits.numpy()
                return run

            def onnx_call(runner, key):
                def run():
                    outputs[key] = runner(values, mask)
                return run

            calls = {"torch eager fp32": torch_call(model, "torch eager fp32"), "torch int8 Linear": torch_call(quantized, "torch int8 Linear"),
                     "onnxruntime fp32": onnx_call(exported[False][0], "onnxruntime fp32"),
                     "onnxruntime int8": onnx_call(exported[True][0], "onnxruntime int8")}
            times = paired(calls, args.repeats, cpu)
            reference = statistics.median(times["torch eager fp32"])
            for run_name, seconds in times.items():
                diff = float(np.abs(outputs[run_name] - outputs["torch eager fp32"]).max())
                same = float((outputs[run_name].argmax(-1) == outputs["torch eager fp32"].argmax(-1)).mean())
                export_s = exported[run_name.endswith("int8")][1] if run_name.startswith("onnx") else None
                rows.append((name, run_name, statistics.median(seconds), reference / statistics.median(seconds), diff, same, export_s))
    print(f"\nCTC inference on one 10 s utterance, CPU, {threads} threads (torch and onnxruntime), median of {args.repeats} interleaved calls")
    print("| model | run | s / call | RTF | speed vs torch fp32 | max abs logit diff vs torch fp32 | frames with the same argmax | export s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, run_name, seconds, speed, diff, same, export_s in rows:
        print(f"| {name} | {run_name} | {seconds:.3f} | {seconds / 10:.3f} | {speed:.2f}x | {diff:.2g} | {100 * same:.1f}% | "
              f"{'' if export_s is None else f'{export_s:.0f}'} |")


# ----------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=["steps", "e2e", "accuracy", "long"],
                        choices=["steps", "e2e", "accuracy", "long", "compile", "onnx"],
                        help="compile: a few minutes of compilation; onnx (not run by default): w2v2-export against torch")
    parser.add_argument("--corpus", default="outputs/low_resource_short/corpus", help="demo corpus (w2v2-synth-corpus)")
    parser.add_argument("--ctc_model", default="outputs/low_resource_short/pretrained_train_10min", help="a fine-tuned CTC folder")
    parser.add_argument("--text_column", default="transcription")
    parser.add_argument("--repeats", type=int, default=8, help="rounds per step case (BASE training cases: half)")
    parser.add_argument("--updates", type=int, default=40, help="timed updates per end-to-end run (a multiple of 10)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed updates first (a multiple of 10: the recipe logs every 10)")
    parser.add_argument("--e2e_rounds", type=int, default=2)
    parser.add_argument("--drift_updates", type=int, default=30, help="updates per run of part compile")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.updates % 10 or args.warmup % 10 or args.warmup < 10:
        parser.error(f"--updates {args.updates} and --warmup {args.warmup} must be multiples of 10 (warmup >= 10): the small recipe logs every 10 updates")
    device = torch.device(args.device)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {cpu_description()}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    if "steps" in args.parts:
        part_steps(args, device)
    if "compile" in args.parts:
        part_compile(args, device)
    if "e2e" in args.parts:
        part_e2e(args)
    if "accuracy" in args.parts:
        part_accuracy(args)
    if "long" in args.parts:
        part_long(args)
    if "onnx" in args.parts:
        part_onnx(args)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind == "e2e-w2v2":
            result = child_e2e_w2v2(rest[0], int(rest[1]), int(rest[2]), rest[3])
        elif kind == "e2e-transformers":
            result = child_e2e_transformers(rest[0], int(rest[1]), int(rest[2]))
        else:
            result = child_long(*rest)
        print(json.dumps({**result, "peak_rss_mb": peak_rss_mb()}))
    else:
        main()
