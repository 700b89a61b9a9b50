"""Data utilities, including the synthetic demo speech corpus (``w2v2.data.synth``)."""
