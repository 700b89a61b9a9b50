"""W2V2ForCTC trains with transformers' stock Trainer through a collator written the
transformers way (issue 22): the collator of transformers' ``run_speech_recognition_ctc.py``,
which pads labels with the tokenizer and masks the padding to -100 itself."""

from dataclasses import dataclass

import numpy as np
import pytest
import soundfile as sf
import torch
from finetune_helpers import UTTERANCES, write_audiofolder
from transformers import Trainer, TrainingArguments

from w2v2 import W2V2Config, W2V2CTCTokenizer, W2V2FeatureExtractor, W2V2ForCTC, W2V2Processor


@dataclass
class TransformersStyleCollator:
    """What transformers' CTC fine-tuning example and blog post write: audio and labels padded
    separately, label padding turned into -100 with ``masked_fill``."""

    processor: W2V2Processor
    padding: bool | str = "longest"

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        input_features = [{"input_values": f["input_values"]} for f in features]
        label_features = [{"input_ids": f["labels"]} for f in features]
        batch = self.processor.pad(input_features, padding=self.padding, return_tensors="pt")
        labels_batch = self.processor.pad(labels=label_features, padding=self.padding, return_tensors="pt")
        batch["labels"] = labels_batch["input_ids"].masked_fill(labels_batch.attention_mask.ne(1), -100)
        return batch


def test_stock_trainer_with_a_transformers_style_collator(tmp_path):
    datasets = pytest.importorskip("datasets")
    folder = write_audiofolder(tmp_path / "data")  # espeak-ng FLACs + metadata.csv
    rows = [line.split(",")[:2] for line in (folder / "metadata.csv").read_text().splitlines()[1:]]
    tokenizer = W2V2CTCTokenizer.from_texts(UTTERANCES)
    config = W2V2Config.tiny(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, feat_extract_norm="layer",
        do_stable_layer_norm=True, mask_time_prob=0.0, layerdrop=0.0, ctc_loss_reduction="mean",
    )  # fmt: skip
    processor = W2V2Processor(W2V2FeatureExtractor.from_model_config(config), tokenizer)

    def prepare(row):  # the example's prepare_dataset: one utterance at a time
        audio, rate = sf.read(folder / row["file_name"], dtype="float32")
        row["input_values"] = processor(audio=audio, sampling_rate=rate).input_values[0]
        row["labels"] = processor(text=row["transcription"]).input_ids
        return row

    train = datasets.Dataset.from_dict({"file_name": [r[0] for r in rows], "transcription": [r[1] for r in rows]})
    train = train.map(prepare, remove_columns=["file_name", "transcription"])
    assert len({len(x) for x in train["input_values"]}) == len(UTTERANCES)  # lengths differ: padding is exercised

    torch.manual_seed(0)
    model = W2V2ForCTC(config)
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=40, per_device_train_batch_size=2, learning_rate=3e-3,
        warmup_steps=0, logging_steps=1, activation_checkpointing=True, train_sampling_strategy="group_by_length",
        save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True, seed=0,
    )  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=TransformersStyleCollator(processor),
                      processing_class=processor)  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: one thread beats several on a busy CPU
    try:
        trainer.train()
    finally:
        torch.set_num_threads(threads)

    assert model.is_activation_checkpointing  # transformers 5's name for gradient_checkpointing=True
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 40 and all(np.isfinite(losses))
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.7 * first, f"loss {first:.3f} -> {last:.3f}"
