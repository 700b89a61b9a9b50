"""Inference: transcription (``w2v2-transcribe``: chunked, greedy or LM beam search, timestamps),
export (``w2v2-export``: ONNX for deployment, transformers' format) and the torch-free ONNX runner.

Import the submodules directly (``w2v2.inference.transcribe``, ``w2v2.inference.export``,
``w2v2.inference.onnx_runner``); they are not imported here so that ``import w2v2`` stays light.
"""
