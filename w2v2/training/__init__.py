"""Training entry points: self-supervised pretraining (Accelerate) and CTC fine-tuning (Trainer).

Import the submodules directly (``w2v2.training.pretrain``, ``w2v2.training.finetune``);
they are not imported here so that ``import w2v2`` stays light.
"""
