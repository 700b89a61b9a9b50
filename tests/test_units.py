"""Discrete speech units: W2V2ForPreTraining.quantize and the w2v2-units command."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from pretrain_utils import make_audiofolder

from w2v2 import W2V2Config, W2V2FeatureExtractor, W2V2ForPreTraining, to_transformers
from w2v2.training.units import combine_groups, deduplicate, extract_units
from w2v2.training.units import main as units_main


def _model(norm: str = "layer", seed: int = 0) -> W2V2ForPreTraining:
    torch.manual_seed(seed)
    # 4 codebook entries per group so that a short clip repeats units (deduplication has work)
    return W2V2ForPreTraining(W2V2Config.tiny(feat_extract_norm=norm, do_stable_layer_norm=norm == "layer",
                                              num_codevectors_per_group=4))  # fmt: skip


def test_quantize_is_deterministic_and_matches_transformers_quantizer_choice():
    model = _model()
    x = 0.1 * torch.randn(2, 8000, generator=torch.Generator().manual_seed(1))
    codes = model.train().quantize(x)
    assert codes.shape == (2, int(model._get_feat_extract_output_lengths(8000)), model.config.num_codevector_groups)
    assert codes.dtype == torch.long and 0 <= codes.min() and codes.max() < model.config.num_codevectors_per_group
    torch.testing.assert_close(model.eval().quantize(x), codes, rtol=0, atol=0)  # train mode draws no noise here
    assert len(codes.unique()) > 1
    # transformers' model, same weights: its quantizer's argmax over its own normalised features
    theirs = to_transformers(model).eval()
    with torch.no_grad():
        features = theirs.wav2vec2(x).extract_features
        logits = theirs.quantizer.weight_proj(features).view(2, -1, theirs.config.num_codevector_groups, theirs.config.num_codevectors_per_group)
    torch.testing.assert_close(logits.argmax(-1), codes, rtol=0, atol=0)


def test_quantize_marks_padding_and_keeps_real_frames(tmp_path):
    model = _model().eval()
    short = 0.1 * torch.randn(5000, generator=torch.Generator().manual_seed(2))
    batch = torch.zeros(2, 8000)
    batch[0, :5000], batch[1] = short, 0.1 * torch.randn(8000, generator=torch.Generator().manual_seed(3))
    mask = torch.ones(2, 8000, dtype=torch.long)
    mask[0, 5000:] = 0
    codes = model.quantize(batch, attention_mask=mask)
    real = int(model._get_feat_extract_output_lengths(5000))
    assert (codes[0, real:] == -1).all() and (codes[0, :real] >= 0).all() and (codes[1] >= 0).all()
    torch.testing.assert_close(codes[0, :real], model.quantize(short[None])[0], rtol=0, atol=0)
    # a converted transformers checkpoint gives the same units
    folder = tmp_path / "hf"
    to_transformers(model).save_pretrained(folder)
    reloaded = W2V2ForPreTraining.from_pretrained(folder).eval()
    torch.testing.assert_close(reloaded.quantize(batch, attention_mask=mask), codes, rtol=0, atol=0)


def test_windowed_units_equal_one_whole_pass_for_a_layer_norm_encoder():
    model = _model().eval()
    x = (0.1 * torch.randn(40_000, generator=torch.Generator().manual_seed(4))).numpy()
    whole = model.quantize(torch.from_numpy(x)[None])[0].numpy()
    for chunk in (0.05, 0.3, 1.0, 10.0):  # 0.05 s: 800 samples, about two frames per window
        np.testing.assert_array_equal(extract_units(model, x, chunk_seconds=chunk), whole)
    with pytest.raises(ValueError, match="chunk_seconds=0.01 is shorter than the model's receptive field"):
        extract_units(model, x, chunk_seconds=0.01)


def test_combine_groups_and_deduplicate():
    codes = np.array([[1, 2], [1, 2], [3, 0], [1, 2], [1, 2], [1, 2]])
    np.testing.assert_array_equal(combine_groups(codes, 4), [6, 6, 12, 6, 6, 6])  # 1*4 + 2, 3*4 + 0
    runs, lengths = deduplicate(codes)
    np.testing.assert_array_equal(runs, [[1, 2], [3, 0], [1, 2]])
    np.testing.assert_array_equal(lengths, [2, 1, 3])
    runs, lengths = deduplicate(combine_groups(codes, 4))
    np.testing.assert_array_equal(runs, [6, 12, 6])
    assert lengths.sum() == len(codes)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pretrained")
    _model().save_pretrained(folder)
    W2V2FeatureExtractor(do_normalize=True).save_pretrained(folder)
    return folder


def test_units_command_writes_every_good_file_and_names_the_bad_one(tmp_path, model_dir):
    audio = make_audiofolder(tmp_path / "audio", clips=3, corrupt=1)
    out = tmp_path / "units.jsonl"
    result = units_main(["--model_name_or_path", str(model_dir), "--inputs", str(audio), "--out", str(out), "--deduplicate", "--combine_groups",
                         "--progress", "false"])  # fmt: skip
    assert result["files"] == 3 and [p.rsplit("/", 1)[-1] for p in result["failed"]] == ["broken0.flac"]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["file"].rsplit("/", 1)[-1] for r in rows] == ["clip000.flac", "clip001.flac", "clip002.flac"]
    model = W2V2ForPreTraining.from_pretrained(model_dir).eval()
    extractor = W2V2FeatureExtractor.from_pretrained(model_dir)
    import soundfile as sf

    for row in rows:
        samples, _ = sf.read(row["file"], dtype="float32")
        values = extractor(samples, sampling_rate=16_000, return_tensors="pt").input_values
        want = combine_groups(model.quantize(values)[0].numpy(), 4)
        assert row["frames"] == len(want) and sum(row["run_lengths"]) == len(want)
        np.testing.assert_array_equal(np.repeat(row["units"], row["run_lengths"]), want)
        assert len(row["units"]) < len(want)  # runs were collapsed
    with pytest.raises(ValueError, match="exists; w2v2-units never overwrites"):
        units_main(["--model_name_or_path", str(model_dir), "--inputs", str(audio), "--out", str(out)])


def test_units_command_adds_a_column_to_an_audiofolder_dataset(tmp_path, model_dir):
    from datasets import load_from_disk

    audio = make_audiofolder(tmp_path / "audio", clips=2)
    out = tmp_path / "units_ds"
    units_main(["--model_name_or_path", str(model_dir), "--dataset", str(audio), "--out", str(out), "--output_format", "dataset", "--progress", "false"])
    ds = load_from_disk(str(out))
    assert set(ds.column_names) == {"duration", "file", "frames", "units"} and len(ds) == 2
    assert np.asarray(ds[0]["units"]).shape == (ds[0]["frames"], 2)  # G = 2 codes per frame
    # one line naming the fix, exit status 2, from the console script
    done = subprocess.run([sys.executable, "-m", "w2v2.training.units", "--model_name_or_path", str(model_dir), "--out", str(tmp_path / "x.jsonl")],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and done.stderr.startswith("error: pass either --inputs") and "Traceback" not in done.stderr
