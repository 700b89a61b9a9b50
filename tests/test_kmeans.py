"""vq-wav2vec's k-means quantizer (``W2V2Config.quantizer="kmeans"``): the module, the model and
``w2v2-pretrain`` with it (learning above chance, exact resume)."""

import json

import pytest
import torch
from pretrain_utils import make_audiofolder
from safetensors.torch import load_file

from w2v2 import W2V2Config, W2V2ForPreTraining, to_transformers
from w2v2.modeling.components import KmeansVectorQuantizer
from w2v2.training.pretrain import parse_args, train

KMEANS = json.dumps({"quantizer": "kmeans", "num_codevectors_per_group": 16})


def test_nearest_codeword_straight_through_and_losses():
    torch.manual_seed(0)
    quantizer = KmeansVectorQuantizer(8, 2, 5, 8, gamma=0.25)
    torch.nn.init.normal_(quantizer.weight)
    torch.nn.init.normal_(quantizer.codevectors)
    z = torch.randn(3, 7, 8, requires_grad=True)
    out = quantizer(z)
    ze = quantizer._project(z)  # (B, T, G, d)
    # the nearest entry by brute force, group by group
    distances = (ze[:, :, :, None, :] - quantizer.codevectors.permute(1, 0, 2)[None, None]).pow(2).sum(-1)  # (B, T, G, V)
    assert torch.equal(out["codes"], distances.argmin(-1))
    zq = quantizer.codevectors[out["codes"], torch.arange(2)]
    torch.testing.assert_close(out["q"], zq.reshape(3, 7, 8))  # forward value: the codewords
    want = torch.nn.functional.mse_loss(zq, ze) * 1.25  # latent + 0.25 commitment, equal in value
    torch.testing.assert_close(out["kmeans_loss"], want)
    # straight-through: d q / d z_e is the identity, so q's gradient reaches z like z_e's would
    upstream = torch.randn(3, 7, 8)
    (grad_q,) = torch.autograd.grad(out["q"], z, upstream, retain_graph=True)
    (grad_ze,) = torch.autograd.grad(ze.reshape(3, 7, 8), z, upstream)
    torch.testing.assert_close(grad_q, grad_ze)
    # the codebook learns only through the loss, toward the projections
    (grad_codebook,) = torch.autograd.grad(out["kmeans_loss"], quantizer.codevectors)
    assert grad_codebook.abs().sum() > 0
    assert 2 <= out["code_perplexity"] <= 2 * 5


def test_kmeans_model_quantizes_only_what_the_loss_reads_with_the_same_loss_and_refuses_conversion():
    torch.manual_seed(0)
    model = W2V2ForPreTraining(W2V2Config.tiny(quantizer="kmeans", num_codevectors_per_group=8)).eval()
    x = 0.1 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(1))
    mask, negatives = model.sample_masks(x, generator=torch.Generator().manual_seed(0))
    full = model(x, mask_time_indices=mask, sampled_negative_indices=negatives)
    fast = model(x, mask_time_indices=mask, sampled_negative_indices=negatives, quantize_masked_only=True)
    torch.testing.assert_close(fast.loss, full.loss)
    assert full.kmeans_loss > 0 and full.diversity_loss == 0
    torch.testing.assert_close(full.loss, full.contrastive_loss / full.num_masked + full.kmeans_loss)  # weight 1, no penalty
    assert model.quantize(x).shape == (2, mask.shape[1], 2)
    with pytest.raises(ValueError, match="quantizer='kmeans': transformers' Wav2Vec2ForPreTraining has only the Gumbel"):
        to_transformers(model)
    to_transformers(model.wav2vec2)  # the encoder alone converts
    with pytest.raises(ValueError, match="W2V2Config.quantizer='vq' is not a known quantizer"):
        W2V2Config.tiny(quantizer="vq")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_audiofolder(tmp_path_factory.mktemp("km") / "audio", clips=12)


def _flags(folder, out, *extra):
    return ["--dataset", str(folder), "--output_dir", str(out), "--recipe", "tiny", "--logging_steps", "2",
            "--save_steps", "3", "--config_overrides", KMEANS, *map(str, extra)]


def _history(out):
    return [json.loads(line) for line in (out / "runs" / "metrics.jsonl").read_text().splitlines()]


def test_kmeans_pretraining_learns_and_resumes_exactly(folder, tmp_path):
    # 24 updates learn (contrastive accuracy on the chirps about doubles); stopped at 5 and resumed, the run ends identical.
    steps = ("--max_updates", 24, "--warmup_updates", 4, "--learning_rate", 3e-3)
    full = train(parse_args(_flags(folder, tmp_path / "full", *steps)))
    train(parse_args(_flags(folder, tmp_path / "split", *steps, "--stop_after_updates", 5)))
    split = train(parse_args(_flags(folder, tmp_path / "split", *steps, "--resume")))
    a, b = load_file(full / "model.safetensors"), load_file(split / "model.safetensors")
    assert a.keys() == b.keys() and any("quantizer.codevectors" in k for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)

    history = _history(full)
    for key in ("contrastive_loss", "kmeans_loss", "code_perplexity"):  # the logs agree across the resume
        assert [r[key] for r in history] == pytest.approx([r[key] for r in _history(split)], rel=1e-6), key
    config = json.loads((full / "config.json").read_text())
    assert config["quantizer"] == "kmeans"
    chance = 1 / (config["num_negatives"] + 1)
    accuracy = [r["contrastive_accuracy"] for r in history]
    assert sum(accuracy[-3:]) / 3 > max(2 * chance, sum(accuracy[:3]) / 3 + 0.1), accuracy
    assert history[-1]["kmeans_loss"] < history[0]["kmeans_loss"]  # the codebook moves toward the projections
    # not the collapse of benchmarks/RESULTS.md ("Quantizers"), where one code per group makes every
    # distractor equal to its positive and the accuracy trivially 1
    assert min(r["code_perplexity"] for r in history) > 1.5 * config["num_codevector_groups"]
    assert all("kmeans_loss" in r and r["diversity_loss"] == 0 for r in history)
    for r in history:  # the logged loss holds L_k
        assert r["loss"] == pytest.approx(r["contrastive_loss"] + r["kmeans_loss"], rel=1e-6)
    assert W2V2ForPreTraining.from_pretrained(full).config.quantizer == "kmeans"
