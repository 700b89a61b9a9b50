"""Fast pieces of CTC fine-tuning: tri-stage schedule, WER/CER metric, collator, encoder freezing, arguments."""

import math

import numpy as np
import pytest
import torch
from transformers import HfArgumentParser, TrainerCallback

from w2v2 import W2V2Config, W2V2CTCTokenizer, W2V2FeatureExtractor, W2V2ForCTC, W2V2Processor
from w2v2.training.callbacks import FreezeEncoderCallback
from w2v2.training.collators import DataCollatorCTCWithPadding, normalize_transcript
from w2v2.training.ctc_trainer import CTCTrainer, CTCTrainingArguments
from w2v2.training.finetune import DataArguments, ModelArguments, build_model
from w2v2.training.metrics import load_wer_cer
from w2v2.training.schedulers import get_tri_stage_schedule, tri_stage_phase_steps

# ---- tri-stage schedule ------------------------------------------------------------------

LR = 2e-3
# 1000 updates, ratios 0.1/0.4/0.5: warmup [0, 100), hold [100, 500), decay [500, 1000), then final
BOUNDARIES = [
    (0, 0.01 * LR),  # warmup starts at init_lr_scale * lr
    (50, (0.01 + 0.99 * 0.5) * LR),  # linear half-way
    (100, LR),  # hold
    (499, LR),
    (500, LR),  # decay starts at lr
    (750, LR * 0.05**0.5),  # exponential: geometric mean half-way
    (999, LR * 0.05 ** (499 / 500)),
    (1000, 0.05 * LR),  # final_lr_scale * lr, and it stays there
    (1200, 0.05 * LR),
]


@pytest.mark.parametrize("step,expected", BOUNDARIES)
def test_tri_stage_learning_rate_at_phase_boundaries(step, expected):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    schedule = get_tri_stage_schedule(optimizer, 1000)
    for _ in range(step):
        optimizer.step()
        schedule.step()
    assert schedule.get_last_lr()[0] == pytest.approx(expected, rel=1e-9)


def test_tri_stage_phases_of_fairseq_base_10m():
    assert tri_stage_phase_steps(13_000) == (1300, 5200, 6500)


@pytest.mark.parametrize("kwargs", [dict(phase_ratios=(0.5, 0.5)), dict(phase_ratios=(0.2, 0.2, 0.2)), dict(init_lr_scale=0.0)])
def test_tri_stage_rejects_bad_settings(kwargs):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    with pytest.raises(ValueError, match="phase_ratios|init_lr_scale"):
        get_tri_stage_schedule(optimizer, 100, **kwargs)


# ---- metric, text, collator ---------------------------------------------------------------


def test_wer_cer_metric_loads_offline_with_evaluate():
    metric = load_wer_cer()
    scores = metric.compute(predictions=["A CAT SAT", "HI"], references=["A HAT SAT", "HI"])
    assert scores["wer"] == pytest.approx(1 / 4)
    assert scores["cer"] == pytest.approx(1 / 11)
    with pytest.raises(ValueError, match="empty"):
        metric.compute(predictions=["A"], references=[" "])


def test_normalize_transcript_drops_punctuation_keeps_apostrophes():
    assert normalize_transcript('  "Hello,  world!"  ') == "Hello world"
    assert normalize_transcript("I CAN'T HELP IT.") == "I CAN'T HELP IT"


@pytest.fixture
def processor():
    tokenizer = W2V2CTCTokenizer.from_texts(["HELLO WORLD", "GOOD MORNING"])
    return W2V2Processor(W2V2FeatureExtractor(do_normalize=False), tokenizer)


def test_collator_pads_audio_and_labels(processor):
    rng = np.random.default_rng(0)
    examples = [
        {"audio": {"array": rng.standard_normal(1600).astype(np.float32), "sampling_rate": 16_000}, "transcription": "HELLO, WORLD!"},
        {"audio": {"array": rng.standard_normal(800).astype(np.float32), "sampling_rate": 16_000}, "transcription": "GOOD"},
    ]  # fmt: skip
    batch = DataCollatorCTCWithPadding(processor)(examples)
    assert batch["input_values"].shape == (2, 1600)
    assert torch.all(batch["input_values"][1, 800:] == 0)
    assert batch["labels"].shape == (2, len("HELLO WORLD"))
    assert torch.all(batch["labels"][1, 4:] == -100)
    assert processor.batch_decode(batch["labels"], group_tokens=False) == ["HELLO WORLD", "GOOD"]


def test_collator_resamples_decoded_audio_of_another_rate(processor, tmp_path):
    import soundfile as sf
    from datasets import load_dataset

    t = np.arange(8_000) / 8_000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)  # 1 s at 8 kHz
    sf.write(tmp_path / "a.wav", tone, 8_000)
    (tmp_path / "metadata.csv").write_text("file_name,transcription\na.wav,HELLO\n")
    row = load_dataset("audiofolder", data_dir=str(tmp_path), split="train")[0]  # datasets' decoder at 8 kHz
    for audio in (row["audio"], {"array": tone, "sampling_rate": 8_000}):
        batch = DataCollatorCTCWithPadding(processor)([{"audio": audio, "transcription": "HELLO"}])
        assert batch["input_values"].shape == (1, 16_000)  # resampled to the model's 16 kHz
        reference = 0.5 * np.sin(2 * np.pi * 440 * np.arange(16_000) / 16_000)
        assert np.abs(batch["input_values"][0, 1000:-1000].numpy() - reference[1000:-1000]).max() < 0.01


def test_collator_names_missing_column(processor):
    with pytest.raises(ValueError, match="'transcription'.*remove_unused_columns"):
        DataCollatorCTCWithPadding(processor)([{"audio": np.zeros(800, np.float32), "text": "HI"}])


# ---- freeze_finetune_updates ----------------------------------------------------------------


class _Snapshots(TrainerCallback):
    """Parameters after every update."""

    def __init__(self, model):
        self.model, self.by_step = model, {0: self.copy(model)}

    @staticmethod
    def copy(model):
        return {n: p.detach().clone() for n, p in model.named_parameters()}

    def on_step_end(self, args, state, control, **kwargs):
        self.by_step[state.global_step] = self.copy(self.model)


class _Batches(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return {"input_values": torch.randn(3200, generator=g), "labels": torch.randint(1, 8, (4,), generator=g)}


def _changed(before, after, prefix):
    return {n for n in before if n.startswith(prefix) and not torch.equal(before[n], after[n])}


def _tiny_trainer(tmp_path, callbacks=(), freeze_feature_encoder=True, **overrides) -> tuple[W2V2ForCTC, CTCTrainer]:
    """A tiny CTC model (feature encoder frozen unless told) and a CTCTrainer on random batches, lr 1e-2."""
    model = W2V2ForCTC(W2V2Config.tiny(vocab_size=8, mask_time_prob=0.0))
    if freeze_feature_encoder:
        model.freeze_feature_encoder()
    args = CTCTrainingArguments(**{
        "output_dir": str(tmp_path), "learning_rate": 1e-2, "per_device_train_batch_size": 2, "eval_strategy": "no",
        "save_strategy": "no", "load_best_model_at_end": False, "train_sampling_strategy": "random", "report_to": "none",
        "use_cpu": True, "disable_tqdm": True, "logging_steps": 1, **overrides})  # fmt: skip
    trainer = CTCTrainer(model=model, args=args, train_dataset=_Batches(), callbacks=[c(model) for c in callbacks],
                         data_collator=lambda rows: {k: torch.stack([r[k] for r in rows]) for k in rows[0]})  # fmt: skip
    return model, trainer


def test_freeze_finetune_updates_trains_only_the_head_first(tmp_path):
    model, trainer = _tiny_trainer(tmp_path, callbacks=[_Snapshots], max_steps=6, freeze_finetune_updates=3)
    snapshots = next(c for c in trainer.callback_handler.callbacks if isinstance(c, _Snapshots))
    trainer.train()
    s = snapshots.by_step
    encoder = {n for n in s[0] if n.startswith("wav2vec2.") and not n.startswith("wav2vec2.feature_extractor")}
    # frozen phase: updates 1-3 move the head only
    assert _changed(s[0], s[3], "lm_head") == {"lm_head.weight", "lm_head.bias"}
    assert not _changed(s[0], s[3], "wav2vec2.")
    # afterwards the encoder trains too (the feature encoder f: X -> Z stays frozen throughout)
    assert _changed(s[3], s[6], "lm_head")
    assert encoder & _changed(s[3], s[6], "wav2vec2.encoder")
    assert not _changed(s[0], s[6], "wav2vec2.feature_extractor")
    assert all(p.requires_grad for n, p in model.named_parameters() if n in encoder)
    # the tri-stage schedule drove the learning rate: warmup over 10 % of 6 updates is 0 updates
    lrs = [entry["learning_rate"] for entry in trainer.state.log_history if "learning_rate" in entry]
    assert lrs[0] == pytest.approx(1e-2)


def test_encoder_lr_scale_gives_the_pretrained_layers_a_smaller_learning_rate(tmp_path):
    model, trainer = _tiny_trainer(tmp_path, max_steps=4, encoder_lr_scale=0.1, freeze_finetune_updates=0)
    trainer.train()
    names = {id(p): n for n, p in model.named_parameters()}
    peak = {}  # the tri-stage schedule ends at final_lr_scale of each group's own peak
    for group in trainer.optimizer.param_groups:
        heads = {names[id(p)].startswith("lm_head") for p in group["params"]}
        assert len(heads) == 1  # no group mixes the head and the rest
        peak.setdefault(heads.pop(), set()).add(round(group["initial_lr"], 12))
    assert peak == {True: {1e-2}, False: {1e-3}}
    # every trainable parameter is in exactly one group, weight decay groups kept
    grouped = [id(p) for g in trainer.optimizer.param_groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="encoder_lr_scale=0"):
        CTCTrainingArguments(output_dir=str(tmp_path), encoder_lr_scale=0.0)


def test_feature_encoder_lr_scale_gives_f_its_own_learning_rate(tmp_path):
    model, trainer = _tiny_trainer(tmp_path, freeze_feature_encoder=False, max_steps=4, encoder_lr_scale=0.5,
                                   feature_encoder_lr_scale=0.1, freeze_finetune_updates=0)  # fmt: skip
    before = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith("wav2vec2.feature_extractor.")}
    trainer.train()
    names = {id(p): n for n, p in model.named_parameters()}

    def part(name: str) -> str:
        return "head" if name.startswith("lm_head") else "f" if name.startswith("wav2vec2.feature_extractor.") else "rest"

    peak = {}
    for group in trainer.optimizer.param_groups:
        parts = {part(names[id(p)]) for p in group["params"]}
        assert len(parts) == 1  # no group mixes the head, f and the rest
        peak.setdefault(parts.pop(), set()).add(round(group["initial_lr"], 12))
    assert peak == {"head": {1e-2}, "rest": {5e-3}, "f": {1e-3}}
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters() if n in before)  # f trained
    # unset, f follows encoder_lr_scale; with everything at 1, Trainer's own groups stay as they are
    _, trainer = _tiny_trainer(tmp_path, freeze_feature_encoder=False, max_steps=1, encoder_lr_scale=0.5, freeze_finetune_updates=0)
    trainer.create_optimizer()
    f_ids = {id(p) for n, p in trainer.model.named_parameters() if n.startswith("wav2vec2.feature_extractor.")}
    assert {g["lr"] for g in trainer.optimizer.param_groups if {id(p) for p in g["params"]} & f_ids} == {5e-3}
    with pytest.raises(ValueError, match="feature_encoder_lr_scale=0"):
        CTCTrainingArguments(output_dir=str(tmp_path), feature_encoder_lr_scale=0.0)


def test_freeze_callback_rejects_negative_updates():
    with pytest.raises(ValueError, match="freeze_updates"):
        FreezeEncoderCallback(-1)


# ---- arguments ---------------------------------------------------------------------------


def test_command_line_accepts_recipe_and_standard_trainer_flags():
    parser = HfArgumentParser((ModelArguments, DataArguments, CTCTrainingArguments))
    model_args, data_args, args = parser.parse_args_into_dataclasses(args=[
        "--model_name_or_path", "ckpt", "--dataset_name_or_path", "corpus", "--output_dir", "out",
        "--tri_stage_phase_ratios", "0.2", "0.3", "0.5", "--freeze_finetune_updates", "7",
        "--learning_rate", "1e-4", "--per_device_train_batch_size", "2", "--test_splits", "a", "b",
    ])  # fmt: skip
    assert args.tri_stage_phase_ratios == [0.2, 0.3, 0.5] and args.freeze_finetune_updates == 7
    assert args.learning_rate == 1e-4 and args.adam_beta2 == 0.98 and args.max_steps == 13_000
    assert args.metric_for_best_model == "wer" and args.greater_is_better is False
    assert data_args.test_splits == ["a", "b"] and model_args.mask_time_prob == 0.65


def test_config_overrides_must_be_a_json_object():
    assert W2V2Config.overrides_from_json('{"hidden_size": 64}') == {"hidden_size": 64}
    for bad in ("hidden_size=64", "[1, 2]"):
        with pytest.raises(ValueError, match="config_overrides"):
            W2V2Config.overrides_from_json(bad)
    # issue 15, item 10: a typo was stored in config.json and ignored
    with pytest.raises(ValueError, match="'num_negativs', which is not a W2V2Config field; did you mean 'num_negatives'"):
        W2V2Config.overrides_from_json('{"num_negativs": 10}')


def test_tri_stage_decay_is_exponential_not_linear():
    # the midpoint of the decay phase is the geometric mean of lr and final lr
    assert math.isclose(BOUNDARIES[5][1], math.sqrt(LR * 0.05 * LR))


def test_head_of_a_checkpoint_with_another_vocabulary_starts_afresh(tmp_path):
    # continuing from a CTC checkpoint without --processor_name_or_path builds a vocabulary from the
    # new transcripts: with the same size but other characters, the saved rows would be wrong letters
    saved = W2V2CTCTokenizer.from_texts(["AB"])
    W2V2ForCTC(W2V2Config.tiny(vocab_size=len(saved))).save_pretrained(tmp_path)
    saved.save_pretrained(tmp_path)
    head = W2V2ForCTC.from_pretrained(tmp_path).lm_head.weight
    for texts, kept in ((["BA"], True), (["AC"], False)):
        tokenizer = W2V2CTCTokenizer.from_texts(texts)
        assert len(tokenizer) == len(saved)
        model, _ = build_model(ModelArguments(model_name_or_path=str(tmp_path)), W2V2Processor(W2V2FeatureExtractor(), tokenizer))
        assert torch.equal(model.lm_head.weight, head) == kept
        assert 0 < model.lm_head.weight.std() < 0.1  # a fresh draw (std initializer_range 0.02), not zeros
