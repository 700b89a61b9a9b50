"""The names of the files and folders w2v2 writes, in one place.

Every module that writes or reads a run folder, a checkpoint, an LM or an upload takes these
names from here (this module imports nothing of w2v2), so a name changed here changes for all.
"""

from __future__ import annotations

__all__ = ["ALPHABET_FILE", "COMPLETE_MARKER", "FINETUNE_MARKER", "IGNORE_PATTERNS", "LOCK_FILE", "MODEL_LM_DIR",
           "PICTURES", "PROCESSOR_FILES", "STATE_FILE"]  # fmt: skip

# checkpoints (w2v2.training.checkpointing)
COMPLETE_MARKER = "checkpoint_complete.json"  # written last: a w2v2-pretrain checkpoint is whole
FINETUNE_MARKER = "finetune_checkpoint_complete.json"  # w2v2-finetune's (CTCTrainer)
STATE_FILE = "trainer_state.json"  # a pretraining checkpoint's counters, config and feature extractor
LOCK_FILE = ".w2v2-run.lock"  # who is writing into a run folder (never uploaded)

# a model folder
MODEL_LM_DIR, ALPHABET_FILE = "language_model", "alphabet.json"  # an LM beside the model (pyctcdecode's layout)
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json", "vocab.json",
                   "special_tokens_map.json", "added_tokens.json", ALPHABET_FILE)  # the processor's parts' files
PICTURES = ("*.png", "*.jpg", "*.svg")  # curves copied beside a model card and embedded in it

# Trainer by-products that never belong in a published model repo.
IGNORE_PATTERNS = [
    "checkpoint-*", "checkpoint-*/**", "runs/**", "*.pt", "*.pth", "training_args.bin",
    "trainer_state.json", ".cache/**", LOCK_FILE,
]  # fmt: skip
