"""Self-supervised wav2vec 2.0 pretraining with Accelerate: ``w2v2-pretrain``.

    w2v2-pretrain --dataset runs/corpus/pretrain --output_dir runs/pt --recipe small
    accelerate launch --num_processes 8 -m w2v2.training.pretrain --dataset ... --recipe base
    accelerate launch --multi_gpu --num_processes 2 -m w2v2.training.pretrain ...   # CPU only: gloo
    w2v2-pretrain examples/pretrain_small.yaml          # the same flags in a yaml/json file

One update: anneal the Gumbel temperature, then for each of ``gradient_accumulation_steps``
micro-batches sample span masks and K distractors per clip (seeded by the clip's place in the
data, so any number of processes draws the same ones), run the model and backpropagate its
loss normalised by the masked frames of the whole global batch; clip, skip the step if the
gradient is not finite, step AdamW and the schedule. Every ``logging_steps`` the metrics go to
TensorBoard, ``runs/metrics.jsonl`` and the health monitor; every ``save_steps`` an atomic
checkpoint is written. At the end: ``save_pretrained`` (safetensors), the feature extractor,
the curves PNG and a model card, and with ``--push_to_hub`` an upload.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from .recipes import RECIPES, recipe_help
from .speed import MIXED_PRECISION_CHOICES

__all__ = ["PretrainArguments", "main", "parse_args", "train"]

logger = logging.getLogger("w2v2.pretrain")


# (flag, bound, strict): every numeric flag is checked before anything runs.
_NUMERIC_BOUNDS = (
    ("learning_rate", 0, True), ("warmup_updates", 0, False), ("max_updates", 1, False), ("batch_seconds", 0, True),
    ("max_batch_size", 1, False), ("max_sample_size", 1, False), ("min_sample_size", 1, False),
    ("gradient_accumulation_steps", 1, False), ("max_grad_norm", 0, False), ("max_minutes", 0, True),
    ("stop_after_updates", 1, False), ("logging_steps", 1, False), ("save_steps", 1, False),
    ("save_total_limit", 0, False), ("health_patience", 1, False),
)  # fmt: skip


@dataclass
class PretrainArguments:
    """Arguments of ``w2v2-pretrain``; a field left at None takes the value of ``--recipe``
    (``w2v2.training.recipes.RECIPES``; ``--help`` lists each recipe's value)."""

    dataset: str = field(metadata={"help": "audiofolder dir, save_to_disk dir or Hub dataset name"})
    output_dir: str = field(metadata={"help": "run directory: checkpoints, runs/ (logs), final model"})
    recipe: str = field(default="small", metadata={"help": "base | large (fairseq's) | small (CPU) | tiny (tests): the model "
                                                              "preset (W2V2Config.<recipe>) and the defaults of the flags below"})
    dataset_config: str | None = None
    split: str = "train"
    audio_column: str = "audio"
    duration_column: str = field(default="duration", metadata={"help": "seconds per clip, read instead of decoding"})
    streaming: bool = field(default=False, metadata={"help": "read the dataset as a stream (IterableDataset)"})
    config_overrides: str | None = field(default=None, metadata={"help": 'W2V2Config fields as JSON, e.g. {"num_negatives": 10}'})
    model_name_or_path: str | None = field(default=None, metadata={"help": "start from a saved W2V2ForPreTraining"})
    learning_rate: float | None = field(default=None, metadata={"help": recipe_help("learning_rate", "peak learning rate")})
    warmup_updates: int | None = field(default=None, metadata={"help": recipe_help("warmup_updates")})
    max_updates: int | None = field(default=None, metadata={"help": recipe_help("max_updates", "length of the schedule")})
    lr_scheduler: str | None = field(default=None, metadata={"help": recipe_help("lr_scheduler", "polynomial (power 1, fairseq) | linear")})
    batch_seconds: float | None = field(default=None, metadata={"help": recipe_help("batch_seconds", "audio per batch and process, after cropping")})
    max_batch_size: int | None = None
    max_sample_size: int | None = field(default=None, metadata={"help": recipe_help("max_sample_size", "crop clips to this many samples")})
    min_sample_size: int | None = field(default=None, metadata={"help": recipe_help("min_sample_size", "skip clips shorter than this")})
    normalize: bool | None = field(default=None, metadata={"help": recipe_help("normalize", "zero mean, unit variance per clip")})
    pad: bool | None = field(default=None, metadata={"help": recipe_help("pad", "pad batches (attention mask) instead of cutting to the shortest")})
    speed_perturbation: list[float] | None = field(default=None, metadata={
        "help": "two factors LOW HIGH (e.g. 0.9 1.1): resample each crop by a factor drawn between them (tempo, pitch and "
                "formants; Wav2Vec-Aug); default: off"})  # fmt: skip
    gradient_accumulation_steps: int | None = field(default=None, metadata={"help": recipe_help("gradient_accumulation_steps")})
    max_grad_norm: float | None = field(default=None, metadata={"help": recipe_help("max_grad_norm", "clip the gradient norm; 0 = no clipping")})
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.98
    adam_epsilon: float = 1e-6
    mixed_precision: str | None = field(
        default=None, metadata={"help": recipe_help("mixed_precision", "auto (bf16 where this device runs it faster, measured at start) | no | bf16 | fp16 (GPU)")})
    prefetch_batches: int | None = field(
        default=None, metadata={"help": "batches decoded ahead in a thread; default: 2 where a core is free for it, else 0"})
    torch_compile: bool = field(default=False, metadata={"help": "torch.compile the encoder (a minute or more to compile)"})
    gradient_checkpointing: bool = False
    seed: int = 0
    max_minutes: float | None = field(default=None, metadata={"help": "stop (and save) after this much wall time"})
    stop_after_updates: int | None = field(
        default=None, metadata={"help": "end this invocation (saving) after so many updates; --resume continues"}
    )
    logging_steps: int | None = field(default=None, metadata={"help": recipe_help("logging_steps")})
    save_steps: int | None = field(default=None, metadata={"help": recipe_help("save_steps")})
    save_total_limit: int = field(default=2, metadata={"help": "complete checkpoints kept; 0 keeps all"})
    resume: bool = field(default=False, metadata={"help": "continue from the latest complete checkpoint"})
    health_patience: int | None = field(default=None, metadata={"help": recipe_help("health_patience", "updates before a loss at chance is 'stuck'")})
    stop_on_collapse: bool = field(default=False, metadata={"help": "stop when the health monitor warns"})
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_private_repo: bool = False
    hub_token: str | None = None

    def __post_init__(self):
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe={self.recipe!r} is unknown; use one of {sorted(RECIPES)}.")
        defaults = RECIPES[self.recipe].flags()
        for f in fields(self):
            if getattr(self, f.name) is None and f.name in defaults:
                setattr(self, f.name, defaults[f.name])
        if self.lr_scheduler not in ("polynomial", "linear"):
            raise ValueError(f"lr_scheduler={self.lr_scheduler!r} is not supported; use 'polynomial' or 'linear'.")
        if self.mixed_precision not in MIXED_PRECISION_CHOICES:
            raise ValueError(f"mixed_precision={self.mixed_precision!r} is not supported; use one of {', '.join(MIXED_PRECISION_CHOICES)}.")
        if self.prefetch_batches is not None and self.prefetch_batches < 0:
            raise ValueError(f"prefetch_batches={self.prefetch_batches} must be >= 0 (0 reads each batch when it is needed).")
        for name, low, strict in _NUMERIC_BOUNDS:
            value = getattr(self, name)
            if value is not None and (value <= low if strict else value < low):
                raise ValueError(f"{name}={value} is out of range: it must be {'>' if strict else '>='} {low}.")
        if self.min_sample_size > self.max_sample_size:
            raise ValueError(f"min_sample_size={self.min_sample_size} exceeds max_sample_size={self.max_sample_size}; "
                             "lower the first or raise the second.")  # fmt: skip
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("push_to_hub needs hub_model_id (e.g. --hub_model_id user/w2v2-small) to be specified.")


def parse_args(argv: list[str] | None = None) -> PretrainArguments:
    """Flags, or a single .json/.yaml file holding them."""
    from w2v2.cli_errors import parse_cli_args

    return parse_cli_args([PretrainArguments], argv)[0]


def _clip_seed(seed: int, key: tuple[int, ...]) -> int:
    return int(np.random.SeedSequence([seed, *key]).generate_state(1, np.uint64)[0] >> 1)


def sample_batch_masks(model, batch, seed: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Span masks (B, T) and distractors (B, T, K) by ``model.sample_masks``, one clip at a time,
    each from its own generator seeded by the clip's place in the data (``batch.keys``): any
    number of processes draws the same masks. A padded clip is drawn on its real frames only."""
    frames = int(model._get_feat_extract_output_lengths(batch.input_values.shape[-1]))
    samples = [batch.input_values.shape[-1]] * len(batch.keys) if batch.attention_mask is None else batch.attention_mask.sum(-1).tolist()
    masks, negatives = [], []
    for i, (key, n) in enumerate(zip(batch.keys, samples)):
        g = torch.Generator(device).manual_seed(_clip_seed(seed, key))
        clip = torch.empty(1, int(n), device=device)  # sample_masks reads only its length and device
        m, neg = model.sample_masks(clip, generator=g)  # (1, T_i), (1, T_i, K)
        pad = frames - m.shape[1]
        masks.append(torch.nn.functional.pad(m, (0, pad)))  # (1, T)
        negatives.append(torch.nn.functional.pad(neg, (0, 0, 0, pad)) + i * frames)  # (1, T, K): padded frames are never masked
    return torch.cat(masks), torch.cat(negatives)


class _Prefetched:
    """Endless micro-batches from ``position`` ({"epoch", "batch"}); with ``depth`` > 0 decoded
    that many batches ahead in a thread, so that reading audio overlaps the model's compute.

    ``position`` and ``corrupt`` (files skipped so far) are those of the batches handed out,
    not of the ones read ahead, so a checkpoint taken at any update resumes exactly. An error
    in the reader is raised by ``next``; ``close`` stops the thread.
    """

    def __init__(self, data, position: dict, depth: int):
        self.position, self.corrupt = position, data.corrupt
        self._data, self._stop = data, threading.Event()
        self._reader = self._read(position["epoch"], position["batch"])
        self._queue, self._thread = queue.Queue(maxsize=max(depth, 1)), None
        if depth > 0:
            self._thread = threading.Thread(target=self._fill, daemon=True, name="w2v2-prefetch")
            self._thread.start()

    def _read(self, epoch: int, skip: int):
        """(batch, epoch, batches of the epoch read, corrupt files so far), forever."""
        while True:
            index = skip
            for batch in self._data.epoch(epoch, skip=skip):
                index += 1
                yield batch, epoch, index, self._data.corrupt
            epoch, skip = epoch + 1, 0

    def _fill(self) -> None:
        try:
            for item in self._reader:
                if not self._put(item):
                    return
        except BaseException as error:  # noqa: BLE001  (handed to the training loop, which raises it)
            self._put(error)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __next__(self):
        item = self._queue.get() if self._thread else next(self._reader)
        if isinstance(item, BaseException):
            raise item
        batch, self.position["epoch"], self.position["batch"], self.corrupt = item
        return batch

    def close(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)


def _prefetch_depth(args: PretrainArguments, device: torch.device) -> int:
    """Batches to read ahead: ``--prefetch_batches``, or 2 where a core is free for the reader
    (a GPU run, or more cores than torch threads) and 0 otherwise: on 2 cores with 2 torch
    threads a reader thread made the small recipe 20% slower (benchmarks/RESULTS.md)."""
    if args.prefetch_batches is not None:
        return args.prefetch_batches
    return 2 if device.type == "cuda" or (os.cpu_count() or 1) > torch.get_num_threads() else 0


class _IntervalMeter:
    """What one logging interval adds up: per-micro-batch sums (loss terms weighted by the masked
    frames N, perplexities per micro-batch, audio seconds) and the gradient norm of each update.

    ``metrics`` turns the totals over all processes into the logged figures (per masked frame of
    the global batch); its ``loss`` is the model's own ``pretraining_loss`` of those means.
    """

    SUMS = ("contrastive_loss", "correct", "num_masked", "diversity", "penalty", "code_perplexity",
            "prob_perplexity", "micro_batches", "audio_seconds", "kmeans")  # fmt: skip

    def __init__(self, sums: dict | None = None, grad_norms: list | None = None):
        self.sums = {**dict.fromkeys(self.SUMS, 0.0), **(sums or {})}
        self.grad_norms = list(grad_norms or [])

    @torch.no_grad()
    def add(self, output, seconds: float) -> None:
        """One micro-batch's ``W2V2ForPreTrainingOutput`` (losses are means over its N masked frames)."""
        n = float(output.num_masked)
        for key, value in (("contrastive_loss", output.contrastive_loss), ("correct", output.contrastive_accuracy * n),
                           ("num_masked", n), ("diversity", output.diversity_loss), ("penalty", output.feature_penalty * n),
                           ("code_perplexity", output.code_perplexity), ("prob_perplexity", output.prob_perplexity),
                           ("micro_batches", 1.0), ("audio_seconds", seconds),
                           ("kmeans", 0.0 if output.kmeans_loss is None else output.kmeans_loss * n)):  # fmt: skip
            self.sums[key] += float(value)

    def totals(self, accelerator, corrupt: int) -> dict[str, float]:
        """The sums and the corrupt-file count added over processes (every process must call it)."""
        local = torch.tensor([self.sums[k] for k in self.SUMS] + [float(corrupt)], dtype=torch.float64, device=accelerator.device)
        return dict(zip((*self.SUMS, "corrupt"), accelerator.reduce(local, "sum").tolist()))

    def metrics(self, totals: dict[str, float], cfg) -> dict[str, float]:
        """The interval's model figures from ``totals`` (the run's counters are added by the caller)."""
        from w2v2.modeling.losses import pretraining_loss

        frames, micro = max(totals["num_masked"], 1.0), max(totals["micro_batches"], 1.0)
        metrics = {
            "contrastive_loss": totals["contrastive_loss"] / frames,  # L_m, nats per masked frame
            "diversity_loss": totals["diversity"] / frames,  # L_d
            "feature_penalty": totals["penalty"] / frames,
            "contrastive_accuracy": totals["correct"] / frames,
            "code_perplexity": totals["code_perplexity"] / micro,
            "prob_perplexity": totals["prob_perplexity"] / micro,
            "grad_norm": float(np.mean(self.grad_norms)) if self.grad_norms else float("nan"),
            "masked_frames": totals["num_masked"],  # N of the interval, all processes
        }
        if cfg.quantizer == "kmeans":  # vq-wav2vec's codebook + commitment loss L_k, in place of L_d
            metrics["kmeans_loss"] = totals["kmeans"] / frames
        metrics["loss"] = pretraining_loss(metrics["contrastive_loss"], metrics["diversity_loss"], metrics["feature_penalty"],
                                           metrics.get("kmeans_loss"), config=cfg)  # fmt: skip
        return metrics


def train(args: PretrainArguments) -> Path:
    """Run pretraining as ``args`` say; returns the directory of the saved model.

    The main process holds ``output_dir``'s run lock for the whole run (a second run into the
    same folder is refused, naming the holder).
    """
    from .checkpointing import run_lock

    main_process = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0  # before Accelerate starts
    with run_lock(args.output_dir, "w2v2-pretrain", enabled=main_process):
        return _train(args)


def _train(args: PretrainArguments) -> Path:
    from tqdm.auto import tqdm

    from .checkpointing import save_checkpoint
    from .health import HealthMonitor

    out = Path(args.output_dir)
    accelerator = _accelerator(args, out)
    # 1. model, and the feature extractor saved with it and in every checkpoint
    model, feature_extractor = _build_model(args)
    cfg = model.config
    # 2. data: budgeted, bucketed, deterministic in (seed, epoch)
    data = _batches(args, accelerator)
    # 3. AdamW with warmup then polynomial (power 1) or linear decay to 0
    optimizer, scheduler = _optimizer(args, model)
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)  # stepped once per update, not per process
    unwrapped = accelerator.unwrap_model(model)
    # 4. resume (weights, optimiser, schedule, RNGs, data position, counters), then speed settings
    state, meter, history = _resume(args, out, accelerator, unwrapped, data)
    if args.torch_compile:
        from .speed import compile_model

        compile_model(unwrapped)
    accelerator.init_trackers("pretrain", config={k: v for k, v in asdict(args).items() if isinstance(v, (int, float, str, bool))})
    health = HealthMonitor(cfg.num_negatives, cfg.num_codevector_groups, patience=args.health_patience, window=3)

    batches = _Prefetched(data, state, depth=_prefetch_depth(args, accelerator.device))
    step = first_step = state.pop("step")
    stop_reason = None
    started = time.time() - state["elapsed"]  # elapsed counts the time before a resume
    last_log = time.time()
    progress = tqdm(total=args.max_updates, initial=step, disable=not accelerator.is_main_process, desc="pretrain",
                    mininterval=2.0)
    pace_from = None  # (time, update) after this process's first update: the pace leaves start-up out
    model.train()
    while step < args.max_updates:
        # 5. one update at this update's Gumbel temperature tau: micro-batches, clip, step
        unwrapped.set_gumbel_temperature(unwrapped.gumbel_temperature_at(step))
        _update(args, accelerator, model, unwrapped, optimizer, scheduler, batches, meter, state, step)
        step += 1
        progress.update(1)
        if pace_from is None:
            pace_from = (time.time(), step)
        elif args.max_minutes is not None and step - pace_from[1] == _forecast_after(args) and accelerator.is_main_process:
            if warning := _time_cap_warning(args, step, pace_from, time.time(), started):
                logger.warning(warning)
        # 6. log: every process adds its sums, so the figures are those of the global batch
        if step % args.logging_steps == 0 or step == args.max_updates:
            totals = meter.totals(accelerator, batches.corrupt)
            state["audio_seconds"] += totals["audio_seconds"]
            now = time.time()
            metrics = {**meter.metrics(totals, cfg),
                       "temperature": unwrapped.config.gumbel_temperature, "learning_rate": scheduler.get_last_lr()[0],
                       "audio_hours": state["audio_seconds"] / 3600,
                       "throughput": totals["audio_seconds"] / max(now - last_log, 1e-9),  # audio s per s
                       "skipped_updates": state["skipped_updates"],
                       "corrupt_files": int(totals["corrupt"]),  # all processes, since the start
                       "elapsed_minutes": (now - started) / 60}  # fmt: skip
            last_log, meter = now, _IntervalMeter()
            _log(accelerator, out, history, step, metrics, progress)
            for warning in health.update(step, metrics):
                logger.warning(warning)
                stop_reason = warning if args.stop_on_collapse else stop_reason
        out_of_time = (args.max_minutes is not None and time.time() - started > args.max_minutes * 60) or (
            args.stop_after_updates is not None and step - first_step >= args.stop_after_updates)
        if args.max_minutes is not None and accelerator.num_processes > 1:  # clocks differ: stop together
            out_of_time = accelerator.reduce(torch.tensor(float(out_of_time), device=accelerator.device), "sum").item() > 0
        # 7. checkpoint: atomic, last k kept; the interval not logged yet is restored on resume
        if step % args.save_steps == 0 or step == args.max_updates or stop_reason or out_of_time:
            state["elapsed"] = time.time() - started
            pending = meter.totals(accelerator, batches.corrupt)
            save_checkpoint(accelerator, out, step, {**state, "sums": {k: pending[k] for k in _IntervalMeter.SUMS},
                                                     "corrupt_files": int(pending["corrupt"]), "grad_norms": meter.grad_norms,
                                                     # what w2v2.transformers_export.export_transformers needs to export the checkpoint alone
                                                     "model_config": unwrapped.config.to_dict(),
                                                     "feature_extractor": feature_extractor.to_dict()}, keep_last=args.save_total_limit)  # fmt: skip
        if stop_reason or out_of_time:
            logger.warning("stopping at update %d: %s", step, stop_reason or "max_minutes or stop_after_updates reached")
            break
    progress.close()
    batches.close()
    _check_replicas(accelerator, unwrapped, out)
    # 8. the final model: safetensors, feature extractor, curves, model card, push
    if accelerator.is_main_process:
        _save_final(args, out, unwrapped, feature_extractor, history, data.hours, step, state["mixed_precision"])
    accelerator.wait_for_everyone()
    accelerator.end_training()  # closes the trackers and the process group
    return out


def _forecast_after(args: PretrainArguments) -> int:
    """Updates timed before the time cap is forecast: 2% of the schedule, at least 20."""
    return max(20, round(0.02 * args.max_updates))


def _time_cap_warning(args: PretrainArguments, step: int, pace_from: tuple[float, int], now: float, started: float) -> str | None:
    """Why ``--max_minutes`` will stop the run before its schedule ends, or None if it will not.

    ``pace_from``: (time, update) the pace is measured from; ``started``: when the run began,
    the time before a resume included (what ``--max_minutes`` counts)."""
    seconds_per_update = (now - pace_from[0]) / (step - pace_from[1])
    left_s = args.max_minutes * 60 - (now - started)
    stop = step + max(0, int(left_s / seconds_per_update))
    if stop >= args.max_updates:
        return None
    need_min = (args.max_updates - step) * seconds_per_update / 60
    return (f"at {1 / seconds_per_update:.1f} updates/s the {args.max_updates - step:,} updates left need ~{need_min:.1f} min, "
            f"but --max_minutes {args.max_minutes:g} leaves {max(left_s, 0) / 60:.1f}: the run will stop near update {stop:,} "
            f"of {args.max_updates:,}, before the learning rate has decayed to 0. Raise --max_minutes or lower "
            "--max_updates to finish the schedule.")


def _accelerator(args: PretrainArguments, out: Path):
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed

    # Several processes without a GPU (torchrun, or accelerate launch --multi_gpu on a CPU
    # machine): tell Accelerate, which then uses gloo.
    multi_cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    # bf16 runs under our own autocast (_micro_step), so that "auto" can measure the model
    # first; Accelerate handles fp16, which needs its gradient scaler.
    accelerator = Accelerator(cpu=multi_cpu, gradient_accumulation_steps=args.gradient_accumulation_steps,
                              mixed_precision="fp16" if args.mixed_precision == "fp16" else "no", log_with="tensorboard",
                              project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "runs")))
    set_seed(args.seed)
    return accelerator


def _batches(args: PretrainArguments, accelerator):
    from .audio_data import AudioBatches, load_audio_dataset

    dataset = load_audio_dataset(args.dataset, split=args.split, config_name=args.dataset_config, streaming=args.streaming,
                                 audio_column=args.audio_column)  # fmt: skip
    return AudioBatches(dataset, batch_seconds=args.batch_seconds, max_sample_size=args.max_sample_size,
                        min_sample_size=args.min_sample_size, max_batch_size=args.max_batch_size, seed=args.seed,
                        normalize=args.normalize, pad=args.pad, audio_column=args.audio_column,
                        duration_column=args.duration_column, num_processes=accelerator.num_processes,
                        process_index=accelerator.process_index, speed_perturbation=args.speed_perturbation)  # fmt: skip


def _optimizer(args: PretrainArguments, model):
    from transformers import get_scheduler

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                  eps=args.adam_epsilon, weight_decay=args.weight_decay,
                                  fused=True)  # one kernel for all parameters: 1.9 ms against 7.5 ms (small, CPU)
    scheduler = get_scheduler("polynomial" if args.lr_scheduler == "polynomial" else "linear", optimizer,
                              num_warmup_steps=args.warmup_updates, num_training_steps=args.max_updates)
    return optimizer, scheduler


def _update(args, accelerator, model, unwrapped, optimizer, scheduler, batches, meter, state, step: int) -> None:
    """``gradient_accumulation_steps`` micro-batches, then clip, skip a non-finite step, step."""
    bf16 = state["mixed_precision"] == "bf16"
    for _ in range(args.gradient_accumulation_steps):
        batch = next(batches)
        if accelerator.num_processes > 1:  # every process needs a batch, or all skip it
            missing = accelerator.reduce(torch.tensor(float(batch is None), device=accelerator.device), "sum")
            batch = batch if missing.item() == 0 else None
        if batch is not None:
            meter.add(_micro_step(accelerator, model, unwrapped, batch, args.seed, bf16), batch.seconds)
    norm = float(accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm if args.max_grad_norm > 0 else float("inf")))
    if math.isfinite(norm) or args.mixed_precision == "fp16":
        optimizer.step()  # under fp16 the grad scaler skips a non-finite step itself and lowers its scale
    if not math.isfinite(norm) or accelerator.optimizer_step_was_skipped:
        state["skipped_updates"] += 1
        logger.warning("update %d: gradient norm %s is not finite; step skipped (%d so far)", step + 1, norm, state["skipped_updates"])
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    meter.grad_norms.append(norm)


def _log(accelerator, out: Path, history: list[dict], step: int, metrics: dict, progress) -> None:
    """TensorBoard (every process calls it), then the history file and the progress bar (main)."""
    accelerator.log(metrics, step=step)
    if accelerator.is_main_process:
        history.append({"step": step, **metrics})
        with open(out / HISTORY_FILE, "a") as f:
            f.write(json.dumps(history[-1]) + "\n")
        progress.set_postfix(loss=f"{metrics['loss']:.3f}", acc=f"{metrics['contrastive_accuracy']:.3f}",
                             ppl=f"{metrics['code_perplexity']:.1f}")


HISTORY_FILE = Path("runs") / "metrics.jsonl"  # one JSON record per logged update, under output_dir


def _build_model(args: PretrainArguments):
    """``W2V2ForPreTraining`` from ``--model_name_or_path`` or the recipe (with ``--config_overrides``),
    and the ``W2V2FeatureExtractor`` that gives its inputs as this run's batches are made."""
    from w2v2 import W2V2Config, W2V2FeatureExtractor, W2V2ForPreTraining

    from .recipes import recipe_config

    overrides = W2V2Config.overrides_from_json(args.config_overrides)
    if args.model_name_or_path:
        model = W2V2ForPreTraining.from_pretrained(args.model_name_or_path, **overrides)
    else:
        model = W2V2ForPreTraining(recipe_config(args.recipe, **overrides))
    if args.gradient_checkpointing:  # renamed activation_checkpointing_enable in transformers 5.x
        getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
    cfg = model.config
    if args.max_sample_size < cfg.receptive_field:
        raise ValueError(f"max_sample_size={args.max_sample_size} is shorter than one frame of this model's feature "
                         f"encoder ({cfg.receptive_field} samples); raise it (crops of a few seconds are usual).")  # fmt: skip
    feature_extractor = W2V2FeatureExtractor(do_normalize=args.normalize, return_attention_mask=args.pad,
                                             min_samples=cfg.receptive_field)
    return model, feature_extractor


def _resume(args: PretrainArguments, out: Path, accelerator, model, data) -> tuple[dict, _IntervalMeter, list[dict]]:
    """Check ``output_dir``, then restore the latest verified checkpoint when ``--resume`` asks.

    Returns the run's state (``step``, data position ``epoch``/``batch``, ``audio_seconds``,
    ``skipped_updates``, ``elapsed``, ``mixed_precision``), the meter of the interval the
    checkpoint had not logged yet, and the metric history up to the checkpoint (rewritten so).
    """
    from .checkpointing import (LOCK_FILE, foreign_checkpoints, latest_checkpoint, latest_verified_checkpoint,
                                load_checkpoint, remove_incomplete)  # fmt: skip

    if not args.resume and latest_checkpoint(out) is not None:
        raise ValueError(f"output_dir={str(out)!r} holds checkpoints of an earlier run; pass --resume to continue "
                         "it, or choose another output_dir.")
    foreign = foreign_checkpoints(out)
    if foreign:  # a trainer deletes or overwrites only what it wrote itself
        raise ValueError(f"output_dir={str(out)!r} holds {foreign[0].name}, which w2v2-pretrain did not write "
                         "(a fine-tuning run's?); choose another output_dir.")  # fmt: skip
    others = sorted(p.name for p in out.iterdir() if p.name != LOCK_FILE) if out.is_dir() else []
    if not args.resume and others:
        raise ValueError(f"output_dir={str(out)!r} is not empty (it holds {others[:3]}); "
                         "choose a new or empty folder, or pass --resume to continue a pretraining run there.")  # fmt: skip
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        remove_incomplete(out)
    accelerator.wait_for_everyone()
    checkpoint = latest_verified_checkpoint(out) if args.resume else None
    if args.resume and checkpoint is None and latest_checkpoint(out) is not None:
        raise ValueError(f"every checkpoint in output_dir={str(out)!r} fails its checksums (the warnings say which file); "
                         "restore the files, or choose another output_dir to start afresh.")  # fmt: skip

    state = {"step": 0, "epoch": 0, "batch": 0, "audio_seconds": 0.0, "skipped_updates": 0, "elapsed": 0.0}
    if checkpoint is not None:
        state.update(load_checkpoint(accelerator, checkpoint))
        state.pop("temperature", None)  # written by earlier versions; tau follows from the step
        # tau of the last update done: a run resumed at max_updates runs no update that would set it
        model.set_gumbel_temperature(model.gumbel_temperature_at(max(state["step"] - 1, 0)))
        logger.info("resumed from %s (update %d)", checkpoint, state["step"])
    elif args.resume:
        logger.info("no complete checkpoint in %s: starting from scratch", out)
    if "mixed_precision" not in state:  # a resumed run keeps the choice it began with
        state["mixed_precision"] = _agreed_precision(accelerator, model, args)
    restored = {k: state.pop(k, None) for k in ("corrupt_files", "sums", "grad_norms")}
    if accelerator.is_main_process:  # they are totals over processes: restore them once
        data.corrupt = restored["corrupt_files"] or 0
        meter = _IntervalMeter(restored["sums"], restored["grad_norms"])
    else:
        meter = _IntervalMeter()
    history_file = out / HISTORY_FILE
    history = [json.loads(line) for line in history_file.read_text().splitlines()] if history_file.exists() else []
    history = [r for r in history if r["step"] <= state["step"]]
    if accelerator.is_main_process:
        history_file.parent.mkdir(parents=True, exist_ok=True)
        history_file.write_text("".join(json.dumps(r) + "\n" for r in history))
    return state, meter, history


def _micro_step(accelerator, model, unwrapped, batch, seed: int, bf16: bool):
    """Forward and backward of one micro-batch with its seeded masks; returns the model's output."""
    x = batch.input_values.to(accelerator.device)
    attention_mask = None if batch.attention_mask is None else batch.attention_mask.to(accelerator.device)
    mask, negatives = sample_batch_masks(unwrapped, batch, seed, accelerator.device)
    with accelerator.accumulate(model):
        with torch.autocast(accelerator.device.type, dtype=torch.bfloat16, enabled=bf16):
            output = model(x, attention_mask=attention_mask, mask_time_indices=mask, sampled_negative_indices=negatives,
                           quantize_masked_only=True)
        # loss * N sums over this process's masked frames; divide by the global N so that
        # DDP's mean over processes is the loss per masked frame of the global batch.
        num_masked = output.num_masked.detach().float()
        global_masked = accelerator.reduce(num_masked, "sum") if accelerator.num_processes > 1 else num_masked
        accelerator.backward(output.loss * num_masked * accelerator.num_processes / global_masked.clamp(min=1))
    return output


def _save_final(args, out: Path, model, feature_extractor, history: list[dict], hours, step: int, precision: str) -> None:
    """safetensors weights, the feature extractor, the curves PNG, the model card; the upload."""
    from .plotting import PRETRAINING_PANELS, plot_curves, pretraining_reference_lines

    model.save_pretrained(out, safe_serialization=True)
    feature_extractor.save_pretrained(out)
    images = []
    if history:
        images.append(plot_curves(history, out / "pretraining_curves.png", panels=PRETRAINING_PANELS,
                                  references=pretraining_reference_lines(model.config), log_scale=("grad_norm",),
                                  title=f"w2v2 pretraining, recipe {args.recipe}"))  # fmt: skip
    _write_card(args, out, history, hours, step, images, precision)
    if args.push_to_hub:
        from w2v2.hub import push_to_hub

        push_to_hub(out, args.hub_model_id, private=args.hub_private_repo, token=args.hub_token)


def _agreed_precision(accelerator, model, args: PretrainArguments) -> str:
    """The mixed precision to run: ``args.mixed_precision``, with "auto" measured on this
    device for this model (a clip of ``max_sample_size`` samples, at most 10 s); bf16 only if every process
    measured it faster."""
    from .speed import choose_mixed_precision

    samples = min(args.max_sample_size or 160_000, 160_000)  # at most 10 s: the probe stays a few seconds
    chosen = choose_mixed_precision(args.mixed_precision, accelerator.device, model, samples=samples)
    if args.mixed_precision == "auto" and accelerator.num_processes > 1:
        votes = accelerator.reduce(torch.tensor(float(chosen == "bf16"), device=accelerator.device), "sum").item()
        chosen = "bf16" if votes == accelerator.num_processes else "no"
    logger.info("mixed precision: %s (asked: %s)", chosen, args.mixed_precision)
    return chosen


def _check_replicas(accelerator, model, out: Path) -> None:
    """Gather one sum per parameter tensor from every process; they must agree exactly under DDP."""
    sums = torch.stack([p.detach().double().sum() for p in model.parameters()]).to(accelerator.device)
    gathered = accelerator.gather(sums[None]).cpu()  # (processes, parameters)
    identical = bool((gathered == gathered[:1]).all())
    if accelerator.is_main_process:
        (out / "runs").mkdir(parents=True, exist_ok=True)
        (out / "runs" / "replicas.json").write_text(json.dumps({"processes": gathered.shape[0], "identical": identical}))
    if not identical:
        logger.warning("the %d processes ended with different weights", gathered.shape[0])


def _write_card(args, out: Path, history: list[dict], hours: float | None, step: int, images: list, precision: str) -> None:
    from w2v2.model_card import write_model_card

    final = history[-1] if history else {}
    metrics = {k: round(final[k], 4) for k in ("contrastive_loss", "contrastive_accuracy", "code_perplexity",
                                                "prob_perplexity") if k in final}
    hyper = {k: getattr(args, k) for k in ("recipe", "learning_rate", "warmup_updates", "max_updates", "lr_scheduler",
                                           "batch_seconds", "gradient_accumulation_steps", "max_sample_size",
                                           "min_sample_size", "normalize", "speed_perturbation", "max_grad_norm", "mixed_precision",
                                           "seed")}
    hyper.update(mixed_precision_used=precision, updates_done=step, data_hours=None if hours is None else round(hours, 3),
                 audio_hours_seen=round(final.get("audio_hours", 0.0), 3))
    cut = "" if step >= args.max_updates else (f" of the {args.max_updates} its schedule plans (stopped early, so the "
                                               "learning rate had not decayed to 0)")
    summary = (f"wav2vec 2.0 pretrained with `w2v2-pretrain --recipe {args.recipe}` for {step} updates{cut} "
               f"on {args.dataset}. Final health: contrastive accuracy {metrics.get('contrastive_accuracy')}, "
               f"code perplexity {metrics.get('code_perplexity')}.")
    write_model_card(out, task="pretraining", datasets=[args.dataset], metrics=metrics, hyperparameters=hyper,
                     summary=summary, images=[str(p) for p in images],
                     model_id=args.hub_model_id if args.push_to_hub else None)  # the card's snippets load the repo


def main(argv: list[str] | None = None) -> None:
    train(parse_args(argv))


def cli() -> None:
    """``w2v2-pretrain``: an error in the input is one line and exit status 2 (cli_errors)."""
    from w2v2.cli_errors import run_cli

    run_cli(main, log_progress=True)


if __name__ == "__main__":
    cli()
