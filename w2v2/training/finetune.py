"""CTC fine-tuning with transformers' Trainer: ``finetune_ctc`` and the ``w2v2-finetune`` script.

From a pretrained checkpoint (w2v2 or transformers format, local or on the Hub), or from a
random initialisation (``--from_scratch``), to a character recognizer (or, with ``--symbols``, a
phone recognizer scored by PER too), with the paper's recipe
(fairseq base_10m) as defaults:

1. the vocabulary is built from the training transcripts (or a given processor is reused, once the
   transcripts are checked against its vocabulary: w2v2.training.vocab_check);
2. the model gets SpecAugment (time spans p=0.65, L=10; channel spans p=0.25, L=64), layerdrop
   0.1, activation dropout 0.1, a frozen feature encoder ``f: X -> Z`` and a new CTC head;
3. ``CTCTrainer`` trains with Adam (0.9, 0.98), the tri-stage LR schedule and only the head for
   the first ``freeze_finetune_updates`` updates; batches group utterances of similar duration
   (read from the ``duration`` column, no decoding pass);
4. validation WER picks the best checkpoint; the model, processor, WER/CER on every test split
   and a model card are saved to ``output_dir`` in transformers' format (``--save_format``; the
   checkpoints stay in w2v2's) and pushed with ``--push_to_hub``; with
   ``--lm`` every split is also scored with LM beam search (``*_wer_lm``, ``*_cer_lm``) and the LM
   is saved with the model as ``language_model/``.

    w2v2-finetune --model_name_or_path facebook/wav2vec2-base --dataset_name_or_path corpus/ \\
        --train_split train_10min --eval_split validation --output_dir runs/base-10min
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import set_seed

from ..configuration import PRESETS, W2V2Config
from ..conversion import without_transformers_twin
from ..modeling import W2V2ForCTC
from ..processing import W2V2CTCTokenizer, W2V2FeatureExtractor, W2V2Processor
from ..processing.audio import SAMPLE_RATE, audio_seconds
from .audio_data import load_audio_dataset
from .checkpointing import FINETUNE_MARKER, complete_checkpoints, latest_verified_checkpoint, run_lock
from .collators import DEFAULT_CHARS_TO_IGNORE, DataCollatorCTCWithPadding, normalize_transcript
from .speed import choose_mixed_precision
from .vocab_check import check_vocabulary_coverage
from .ctc_trainer import RECIPE_FREEZE_FRACTION, CTCTrainer, CTCTrainingArguments, greedy_ids, make_compute_metrics, read_run_state

__all__ = ["ModelArguments", "DataArguments", "FinetuneResult", "finetune_ctc", "load_ctc_split", "main", "test_splits_of"]

logger = logging.getLogger(__name__)

# fairseq base_10m channel masking: mask_channel_length 64 of 768 channels (BASE)
RECIPE_CHANNEL_FRACTION = 64 / 768


@dataclass
class ModelArguments:
    """Where the model comes from, and the recipe's model-side settings (fairseq base_10m)."""

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Checkpoint to fine-tune: w2v2 or transformers format, folder or Hub id."}
    )
    from_scratch: bool = field(default=False, metadata={"help": "Random initialisation from --config_name (baselines)."})
    config_name: str = field(default="tiny", metadata={"help": "With --from_scratch: a preset (base, large, small, tiny: W2V2Config.<name>) or a config path/id."})
    config_overrides: str | None = field(
        default=None, metadata={"help": 'JSON of config fields to change, e.g. \'{"hidden_size": 128, "num_hidden_layers": 4}\'.'}
    )
    processor_name_or_path: str | None = field(
        default=None, metadata={"help": "Reuse this processor instead of building the vocabulary from the transcripts; "
                                        "the run stops if over 1 percent of the transcripts' characters are not in it."}
    )
    symbols: bool = field(default=False, metadata={
        "help": "The transcripts are space-separated symbols (phones, e.g. --text_column phonemes, or units): one token "
                "per symbol, and the phone error rate (PER) is scored too."})
    case_folding: str | None = field(default=None, metadata={
        "help": "'upper' or 'lower' before building the vocabulary, or before encoding with --processor_name_or_path's."})
    freeze_feature_encoder: bool = field(default=True, metadata={
        "help": "Keep f: X -> Z frozen for the whole run (requires_grad off, as fairseq's feature_grad_mult 0); false: f trains "
                "with the rest of the encoder, after the head-only updates."})
    mask_time_prob: float = field(default=0.65, metadata={
        "help": "SpecAugment time masks: p*M, the share of frames covered before overlap (paper: p=0.065 starts x M=10)."})
    mask_time_length: int = field(default=10, metadata={"help": "SpecAugment time-span length, frames."})
    mask_feature_prob: float = field(default=0.25, metadata={
        "help": "SpecAugment channel masks: the share of channels covered before overlap, as --mask_time_prob."})
    mask_feature_length: int | None = field(
        default=None, metadata={"help": "Channel-span length; default 64 per 768 hidden channels (64 for BASE)."}
    )
    layerdrop: float = field(default=0.1, metadata={"help": "Probability of skipping a Transformer layer."})
    activation_dropout: float = field(default=0.1, metadata={"help": "Dropout inside the feed-forward blocks."})
    hidden_dropout: float = field(default=0.0, metadata={"help": "Dropout on the Transformer's residual branches."})
    attention_dropout: float = field(default=0.0, metadata={"help": "Dropout on attention probabilities."})
    feat_proj_dropout: float = field(default=0.0, metadata={"help": "Dropout on projected features (dropout_input)."})
    final_dropout: float = field(default=0.0, metadata={"help": "Dropout before the CTC head."})
    ctc_loss_reduction: str = field(default="mean", metadata={"help": "'mean' (per target length) or 'sum'."})
    ctc_zero_infinity: bool = field(default=True, metadata={"help": "Zero infinite losses of impossible alignments."})
    lm: str | None = field(
        default=None, metadata={"help": "n-gram LM (w2v2-build-lm folder, ARPA or kenlm binary): every evaluation split is also "
                                        "scored with LM beam search (SPLIT_wer_lm, SPLIT_cer_lm), and the LM is saved in "
                                        "output_dir as language_model/ (W2V2ProcessorWithLM)."}
    )  # fmt: skip
    save_format: str = field(
        default="transformers", metadata={"help": "Format of the saved model (and of --push_to_hub's upload): 'transformers' "
                                                  "(loads in pipeline() without w2v2; w2v2's settings kept in config.json) "
                                                  "or 'w2v2' (model_type w2v2, W2V2 class names)."}
    )  # fmt: skip


@dataclass
class DataArguments:
    """Which audio dataset and columns; local audiofolder, saved dataset, or Hub dataset."""

    dataset_name_or_path: str | None = field(
        default=None, metadata={"help": "audiofolder folder (split sub-folders allowed), save_to_disk folder, or Hub id."}
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    train_split: str = field(default="train_10min", metadata={"help": "Split to train on."})
    eval_split: str | None = field(default="validation", metadata={"help": "Split for validation WER ('' for none)."})
    test_splits: list[str] | None = field(
        default=None, metadata={"help": "Splits scored after training; default: every split of the dataset whose name "
                                        "starts with 'test' (none if it has none); '' scores none."}
    )  # fmt: skip
    audio_column: str = field(default="audio", metadata={"help": "Column of audio."})
    text_column: str = field(default="transcription", metadata={"help": "Column of transcriptions."})
    duration_column: str = field(default="duration", metadata={"help": "Column of durations in seconds."})
    chars_to_ignore: str = field(default=DEFAULT_CHARS_TO_IGNORE, metadata={"help": "Punctuation removed from text."})
    max_duration_in_seconds: float = field(default=20.0, metadata={"help": "Longer training utterances are dropped."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only this many training utterances."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep only this many utterances per eval split."})
    streaming: bool = field(default=False, metadata={"help": "Stream the dataset (needs --max_steps)."})


@dataclass
class FinetuneResult:
    """What :func:`finetune_ctc` produced: the saved folder, WER/CER per split and the trainer."""

    output_dir: str
    metrics: dict[str, float]
    trainer: CTCTrainer


def load_ctc_split(
    data_args: DataArguments, split: str, *, max_samples: int | None = None, max_seconds: float | None = None,
    split_flag: str = "train_split",
):  # fmt: skip
    """One split with undecoded audio, non-empty transcripts and a duration column.

    A folder holding ``<split>/`` (the demo corpus) loads that sub-folder as an audiofolder.
    Without a duration column, durations are read from the file headers (no decoding).
    ``split_flag`` names the flag that chose ``split`` in the error when there is no such split.
    """
    ds = load_audio_dataset(data_args.dataset_name_or_path, split=split, config_name=data_args.dataset_config_name,
                            streaming=data_args.streaming, audio_column=data_args.audio_column, split_flag=split_flag)  # fmt: skip
    columns = ds.column_names or []
    if data_args.text_column not in columns:
        raise ValueError(
            f"text_column={data_args.text_column!r} is not a column of split {split!r} (columns: {columns}); "
            "pass --text_column with the name of its transcription column."
        )
    if data_args.duration_column not in columns:
        if data_args.streaming:
            raise ValueError(
                f"split {split!r} has no {data_args.duration_column!r} column; a streamed dataset needs one "
                "(pass --duration_column) or drop --streaming."
            )
        ds = ds.map(
            lambda audio: {data_args.duration_column: audio_seconds(audio)},
            input_columns=[data_args.audio_column], desc=f"durations of {split}",
        )  # fmt: skip
    ds = ds.filter(
        # a missing cell (an empty field of metadata.csv) reads as None: dropped like an empty transcript
        lambda text, seconds: text is not None
        and bool(normalize_transcript(text, data_args.chars_to_ignore).strip())
        and 0 < seconds <= (max_seconds or math.inf),
        input_columns=[data_args.text_column, data_args.duration_column],
    )
    if max_samples is not None:
        ds = ds.take(max_samples) if data_args.streaming else ds.select(range(min(max_samples, len(ds))))
    return ds


def build_processor(model_args: ModelArguments, data_args: DataArguments, train, eval_splits=None) -> W2V2Processor:
    """The given processor (with ``--case_folding`` applied, its vocabulary checked against the train and
    ``eval_splits`` transcripts), or a character vocabulary from the training transcripts."""
    if model_args.processor_name_or_path:
        source = model_args.processor_name_or_path
        processor = W2V2Processor.from_pretrained(source)
        if model_args.case_folding is not None:
            processor.tokenizer = W2V2CTCTokenizer.from_pretrained(source, case_folding=model_args.case_folding)
        splits = {data_args.train_split: train, **(eval_splits or {})}
        if model_args.symbols and not processor.tokenizer.symbols:
            raise ValueError(f"--symbols but the tokenizer of {source} reads characters; drop --symbols, or drop "
                             "--processor_name_or_path to build a symbol vocabulary from the transcripts.")  # fmt: skip
        check_vocabulary_coverage(processor.tokenizer, {name: _transcripts(ds, data_args) for name, ds in splits.items()},
                                  source=source)  # fmt: skip
        return processor
    tokenizer = W2V2CTCTokenizer.from_texts(_transcripts(train, data_args), case_folding=model_args.case_folding,
                                            phone_delimiter_token=" " if model_args.symbols else None)  # fmt: skip
    return W2V2Processor(feature_extractor=W2V2FeatureExtractor(), tokenizer=tokenizer)  # replaced in build_model


def _transcripts(ds, data_args: DataArguments):
    """The transcripts as the collator tokenizes them; the first 10,000 of a streamed split."""
    rows = ds.select_columns([data_args.text_column])
    if data_args.streaming:
        rows = rows.take(10_000)
    return (normalize_transcript(row[data_args.text_column], data_args.chars_to_ignore) for row in rows)


def build_model(model_args: ModelArguments, processor: W2V2Processor) -> tuple[W2V2ForCTC, W2V2Processor]:
    """The CTC model with the recipe's settings, and the processor with a feature extractor matched to it."""
    tokenizer = processor.tokenizer
    overrides: dict[str, Any] = {name: getattr(model_args, name) for name in (
        "mask_time_prob", "mask_time_length", "mask_feature_prob", "layerdrop", "activation_dropout", "hidden_dropout",
        "attention_dropout", "feat_proj_dropout", "final_dropout", "ctc_loss_reduction", "ctc_zero_infinity")}  # fmt: skip
    overrides.update(W2V2Config.overrides_from_json(model_args.config_overrides))
    overrides.update(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    if model_args.from_scratch:
        if model_args.config_name in PRESETS:
            config = W2V2Config.preset(model_args.config_name, **overrides)
        else:
            config = W2V2Config.from_pretrained(model_args.config_name, **overrides)
        config.mask_feature_length = _channel_span(model_args, config.hidden_size)
        model = W2V2ForCTC(config)
    else:
        model = W2V2ForCTC.from_pretrained(model_args.model_name_or_path, ignore_mismatched_sizes=True, **overrides)
        model.config.mask_feature_length = _channel_span(model_args, model.config.hidden_size)
        if not model_args.processor_name_or_path:
            _restart_head_of_another_vocabulary(model, model_args.model_name_or_path, tokenizer)
    if model.config.vocab_size != len(tokenizer):
        raise ValueError(f"vocab_size={model.config.vocab_size} but the tokenizer has {len(tokenizer)} tokens; they must match.")
    if model_args.freeze_feature_encoder:
        model.freeze_feature_encoder()
    if not model_args.processor_name_or_path:
        processor.feature_extractor = _feature_extractor_for(model_args, model.config)
    return model, processor


def _restart_head_of_another_vocabulary(model: W2V2ForCTC, source: str, tokenizer: W2V2CTCTokenizer) -> None:
    """Re-initialise the CTC head loaded from a checkpoint whose vocabulary differs from ``tokenizer``'s.

    Rows of the head are characters by id: kept under a vocabulary of the same size but other
    characters, they would silently emit the wrong letters. (Another size is re-initialised by
    ``ignore_mismatched_sizes``; a pretraining checkpoint has no vocabulary and no head.)
    """
    try:
        saved = W2V2CTCTokenizer.from_pretrained(source).get_vocab()
    except (OSError, ValueError):  # no vocabulary saved with the checkpoint
        return
    if saved == tokenizer.get_vocab():
        return
    logger.warning(
        "%s has a vocabulary of %d tokens that differs from the %d built from the training transcripts: its CTC head "
        "starts afresh. Pass --processor_name_or_path %s to keep its vocabulary and head.",
        source, len(saved), len(tokenizer), source,
    )  # fmt: skip
    # as the model initialises a Linear (``_init_weights`` skips weights marked as loaded)
    torch.nn.init.normal_(model.lm_head.weight, mean=0.0, std=model.config.initializer_range)
    torch.nn.init.zeros_(model.lm_head.bias)


def _channel_span(model_args: ModelArguments, hidden_size: int) -> int:
    if model_args.mask_feature_length is not None:
        if model_args.mask_feature_prob > 0 and model_args.mask_feature_length > hidden_size:
            raise ValueError(
                f"mask_feature_length={model_args.mask_feature_length} exceeds hidden_size={hidden_size}; lower it "
                "or leave it unset (64 per 768 channels)."
            )
        return model_args.mask_feature_length
    return max(1, round(hidden_size * RECIPE_CHANNEL_FRACTION))


def _feature_extractor_for(model_args: ModelArguments, config) -> W2V2FeatureExtractor:
    """The checkpoint's own feature extractor when it has one, else normalisation as its recipe."""
    source = model_args.model_name_or_path
    if source and not model_args.from_scratch:
        try:
            return W2V2FeatureExtractor.from_pretrained(source)
        except (OSError, ValueError):
            logger.info("%s has no preprocessor_config.json; building a feature extractor from its config", source)
    # BASE (group norm) trains on raw audio, LARGE (layer norm) on normalised audio
    return W2V2FeatureExtractor.from_model_config(config, do_normalize=config.feat_extract_norm == "layer")


def finetune_ctc(
    model_args: ModelArguments, data_args: DataArguments, training_args: CTCTrainingArguments
) -> FinetuneResult:
    """Fine-tune a CTC recognizer; returns the output folder, metrics and the trainer (module docstring)."""
    if not (model_args.from_scratch or model_args.model_name_or_path):
        raise ValueError("no model given: pass --model_name_or_path (a checkpoint) or --from_scratch with --config_name.")
    if not data_args.dataset_name_or_path:
        raise ValueError("no dataset given: pass --dataset_name_or_path (an audiofolder folder, saved dataset or Hub id).")
    if model_args.save_format not in ("transformers", "w2v2"):
        raise ValueError(f"save_format={model_args.save_format!r} is not a format; use 'transformers' (the default) or 'w2v2'.")
    if data_args.streaming and training_args.max_steps <= 0:
        raise ValueError("--streaming needs --max_steps > 0: a streamed dataset has no length to count epochs by.")
    set_seed(training_args.seed)
    output_dir = Path(training_args.output_dir)
    resume = _checkpoint_to_resume(output_dir, training_args.resume_from_checkpoint)
    with run_lock(output_dir, "w2v2-finetune", enabled=training_args.process_index == 0):
        return _finetune_ctc(model_args, data_args, training_args, output_dir, resume)


def _finetune_ctc(model_args: ModelArguments, data_args: DataArguments, training_args: CTCTrainingArguments,
                  output_dir: Path, resume: str | None) -> FinetuneResult:  # fmt: skip
    """:func:`finetune_ctc` once the arguments are checked and the folder is locked."""
    # 1. data and vocabulary
    train = load_ctc_split(data_args, data_args.train_split, max_samples=data_args.max_train_samples,
                           max_seconds=data_args.max_duration_in_seconds)  # fmt: skip
    eval_splits = {
        name: load_ctc_split(data_args, name, max_samples=data_args.max_eval_samples,
                             split_flag="eval_split" if name == data_args.eval_split else "test_splits")
        for name in dict.fromkeys(filter(None, [data_args.eval_split, *test_splits_of(data_args)]))
    }  # fmt: skip
    processor = build_processor(model_args, data_args, train, eval_splits)
    if processor.tokenizer.symbols and model_args.lm:
        raise ValueError(f"--lm {model_args.lm} is a word LM, which decodes characters, but the tokenizer reads symbols "
                         "(phones); drop --lm.")  # fmt: skip

    # 2. model
    model, processor = build_model(model_args, processor)
    if model_args.save_format == "transformers" and (reason := without_transformers_twin(model.config)):  # now, not after training
        raise ValueError(f"{reason}, so the model cannot be saved in its format; pass --save_format w2v2.")
    processor.save_pretrained(output_dir)
    lm_decoder = None
    if model_args.lm:  # built now, so that a bad --lm fails before training
        from ..processing.lm_decoder import NgramCTCDecoder

        lm_decoder = NgramCTCDecoder(processor.tokenizer, model_args.lm)

    # 3. trainer
    if training_args.freeze_finetune_updates is None:
        updates = training_args.max_steps
        if updates <= 0:  # counted in epochs
            per_epoch = math.ceil(len(train) / (training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps))
            updates = math.ceil(per_epoch * training_args.num_train_epochs)
        training_args.freeze_finetune_updates = 0 if model_args.from_scratch else round(updates * RECIPE_FREEZE_FRACTION)
    eval_dataset = eval_splits.get(data_args.eval_split) if data_args.eval_split else None
    if eval_dataset is None and training_args.eval_strategy != "no":
        logger.warning("no --eval_split: validation and best-checkpoint selection are off")
        training_args.eval_strategy, training_args.load_best_model_at_end = "no", False
    push, training_args.push_to_hub = training_args.push_to_hub, False  # pushed once, at the end, by w2v2.hub
    saved = read_run_state(resume)
    if training_args.auto_bf16 and not (training_args.bf16 or training_args.fp16):
        device = "cuda" if torch.cuda.is_available() and not training_args.use_cpu else "cpu"
        # a resumed run keeps the precision it began with: measured again, it could differ
        bf16 = saved["bf16"] if "bf16" in saved else choose_mixed_precision("auto", device, model, samples=5 * SAMPLE_RATE) == "bf16"
        if bf16:
            training_args.bf16, training_args.mixed_precision = True, "bf16"  # the latter is what Trainer reads
    trainer = CTCTrainer(
        model=model,
        args=training_args,
        data_collator=DataCollatorCTCWithPadding(processor, data_args.audio_column, data_args.text_column,
                                                 data_args.chars_to_ignore, frames_of=model._get_feat_extract_output_lengths),  # fmt: skip
        train_dataset=train,
        eval_dataset=eval_dataset,
        processing_class=processor,
        compute_metrics=make_compute_metrics(processor.tokenizer),
        preprocess_logits_for_metrics=greedy_ids,
    )
    train_result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(str(output_dir))
    metrics = {f"train_{k}" if not k.startswith("train") else k: v for k, v in train_result.metrics.items()}

    # 4. WER/CER on every evaluation split, model card, Hub
    for name, dataset in eval_splits.items():
        scores = trainer.evaluate(dataset, metric_key_prefix=name)
        # a split named "train" must not overwrite train_loss, the training loss of the run
        metrics.update({k: v for k, v in scores.items() if k.endswith(("_wer", "_cer", "_per", "_loss")) and k not in metrics})
        if lm_decoder is not None:
            metrics.update(_lm_scores(trainer.model, processor, dataset, data_args, lm_decoder, name))
    if lm_decoder is not None:  # the LM ships with the model
        from ..processing import W2V2ProcessorWithLM

        W2V2ProcessorWithLM(processor.feature_extractor, processor.tokenizer, lm_decoder).save_pretrained(output_dir)
    trainer.save_metrics("all", metrics)
    if model_args.save_format == "transformers":  # checkpoints stay in w2v2's format, which resuming reads
        from ..transformers_export import export_transformers

        export_transformers(output_dir, output_dir)
    repo_id = (training_args.hub_model_id or output_dir.name) if push else None
    _write_card(output_dir, model_args, data_args, training_args, metrics, model_id=repo_id)
    if push:
        from ..hub import push_to_hub

        push_to_hub(output_dir, repo_id, private=bool(training_args.hub_private_repo), token=training_args.hub_token,
                    revision=training_args.hub_revision)  # fmt: skip
    return FinetuneResult(output_dir=str(output_dir), metrics=metrics, trainer=trainer)


def _lm_scores(model, processor, dataset, data_args: DataArguments, decoder, name: str) -> dict[str, float]:
    """``{name}_wer_lm`` and ``{name}_cer_lm``: WER/CER of LM beam search on the split, against the
    references the greedy figures use."""
    from .language_model import split_log_probs
    from .metrics import load_wer_cer

    log_probs, references = split_log_probs(model, processor, dataset, audio_column=data_args.audio_column,
                                            text_column=data_args.text_column, chars_to_ignore=data_args.chars_to_ignore)  # fmt: skip
    scores = load_wer_cer().compute(predictions=[decoder(lp)[0] for lp in log_probs], references=references)
    return {f"{name}_wer_lm": scores["wer"], f"{name}_cer_lm": scores["cer"]}


def _checkpoint_to_resume(output_dir: Path, resume: str | None) -> str | None:
    """The checkpoint folder to resume from, or None for a fresh run; refuses to train over an earlier run.

    ``resume`` is ``--resume_from_checkpoint``: a checkpoint folder, or ``last`` (also ``true``)
    for the newest complete ``checkpoint-*`` in ``output_dir`` whose files match their checksums;
    a newer one that a kill left half-written (no marker) or whose files changed is passed over
    with a warning.
    """
    if resume and resume.lower() in ("last", "true"):
        found = sorted(output_dir.glob("checkpoint-*")) if output_dir.is_dir() else []
        complete = complete_checkpoints(output_dir, FINETUNE_MARKER)
        for unmarked in (p for p in found if p not in complete):
            logger.warning("not resuming from %s: it has no %s (its save was interrupted, or another program wrote it)",
                           unmarked, FINETUNE_MARKER)  # fmt: skip
        last = latest_verified_checkpoint(output_dir, FINETUNE_MARKER)
        if last is None:
            fix = (f" (of {[p.name for p in found]}: the warnings say why); pass one of them to resume from it as it is, "
                   "or delete them to start afresh" if found else "; drop the flag to start afresh")  # fmt: skip
            raise ValueError(f"resume_from_checkpoint={resume!r} but output_dir={str(output_dir)!r} holds no checkpoint-* "
                             f"folder that is complete and intact{fix}.")  # fmt: skip
        return str(last)
    if resume:
        if not Path(resume).is_dir():
            raise ValueError(f"resume_from_checkpoint={resume!r} is not a folder; pass a checkpoint-* folder or 'last'.")
        return resume
    earlier = sorted(output_dir.glob("checkpoint-*")) + [p for p in (output_dir / "all_results.json",) if p.exists()]
    if earlier:
        raise ValueError(f"output_dir={str(output_dir)!r} holds an earlier fine-tuning run ({earlier[-1].name}); pass "
                         "--resume_from_checkpoint last to continue it, or choose another output_dir.")  # fmt: skip
    return None


def test_splits_of(data_args: DataArguments) -> list[str]:
    """``--test_splits``, or when not given the dataset's splits whose names start with ``test``
    (sub-folders of a local folder, the splits of a saved or Hub dataset), less the train and
    eval splits."""
    if data_args.test_splits is not None:
        return list(data_args.test_splits)
    source = Path(data_args.dataset_name_or_path)
    if (source / "dataset_dict.json").is_file():
        names = json.loads((source / "dataset_dict.json").read_text()).get("splits", [])
    elif source.is_dir():
        names = sorted(p.name for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
    else:
        from datasets import get_dataset_split_names

        try:
            names = get_dataset_split_names(data_args.dataset_name_or_path, data_args.dataset_config_name)
        except Exception as error:  # offline, gated, ...: the run goes on without test scores
            logger.warning("could not list the splits of %s (%s): no test split is scored; pass --test_splits to choose",
                           data_args.dataset_name_or_path, error)  # fmt: skip
            return []
    found = [n for n in names if n.startswith("test") and n not in (data_args.train_split, data_args.eval_split)]
    logger.info("test splits scored after training: %s", found or "none (the dataset has no test* split)")
    return found


def _write_card(output_dir: Path, model_args, data_args, training_args, metrics: dict[str, float],
                model_id: str | None = None) -> None:  # fmt: skip
    from ..model_card import write_model_card

    source = model_args.model_name_or_path
    base_model = source if source and not Path(source).exists() and not model_args.from_scratch else None
    dataset = data_args.dataset_name_or_path
    write_model_card(
        output_dir,
        task="automatic-speech-recognition",
        base_model=base_model,
        datasets=[dataset] if not Path(dataset).exists() else [],
        metrics={k: round(v, 4) for k, v in metrics.items() if k.endswith(("_wer", "_cer", "_per", "_wer_lm", "_cer_lm"))},
        hyperparameters={
            "from": source or f"random init ({model_args.config_name})",
            "train_split": data_args.train_split,
            "max_steps": training_args.max_steps,
            "learning_rate": training_args.learning_rate,
            "batch_size": training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps,
            "lr_schedule": "tri-stage " + "/".join(map(str, training_args.tri_stage_phase_ratios))
            if training_args.tri_stage_schedule else training_args.lr_scheduler_type,
            "freeze_finetune_updates": training_args.freeze_finetune_updates,
            "freeze_feature_encoder": model_args.freeze_feature_encoder,
            **({"feature_encoder_lr_scale": training_args.feature_encoder_lr_scale}
               if not model_args.freeze_feature_encoder and training_args.feature_encoder_lr_scale is not None else {}),
            "mask_time_prob": model_args.mask_time_prob,
            "mask_feature_prob": model_args.mask_feature_prob,
        },
        summary=f"A CTC speech recognizer fine-tuned with w2v2 on `{Path(dataset).name}` ({data_args.train_split}).",
        model_id=model_id,
    )


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Every dataclass field above plus the standard TrainingArguments flags (or one .json/.yaml
    file holding them); returns the metrics."""
    from w2v2.cli_errors import parse_cli_args

    model_args, data_args, training_args = parse_cli_args([ModelArguments, DataArguments, CTCTrainingArguments], argv)
    result = finetune_ctc(model_args, data_args, training_args)
    print(json.dumps({"output_dir": result.output_dir, **result.metrics}, indent=1))
    return result.metrics


def cli() -> None:
    """``w2v2-finetune`` (a console script must return None: ``sys.exit`` prints anything else and
    exits 1); an error in the input is one line and exit status 2 (cli_errors)."""
    from w2v2.cli_errors import run_cli

    run_cli(main, log_progress=True)


if __name__ == "__main__":
    cli()
