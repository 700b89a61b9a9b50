"""The fast paths: torch.compile computes what eager does; mixed precision is chosen by measurement."""

import pytest
import torch

from w2v2 import W2V2Config, W2V2ForPreTraining
from w2v2.training import speed
from w2v2.training.speed import bf16_matmul_speedup, choose_mixed_precision, compile_model, default_transcription_batch_size


def _loss_and_grads(model, x, mask, negatives):
    model.zero_grad(set_to_none=True)
    out = model(x, mask_time_indices=mask, sampled_negative_indices=negatives, quantize_masked_only=True)
    out.loss.backward()
    return out.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.slow
def test_compiled_and_eager_losses_and_gradients_agree():
    torch.manual_seed(0)
    eager = W2V2ForPreTraining(W2V2Config.tiny()).eval()  # eval: no noise, the same function each call
    compiled = W2V2ForPreTraining(W2V2Config.tiny()).eval()
    compiled.load_state_dict(eager.state_dict())
    compile_model(compiled)
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # saving is unchanged
    for seed, samples in ((0, 16_000), (1, 12_800)):  # two lengths: one dynamic-shape graph serves both
        x = 0.1 * torch.randn(2, samples, generator=torch.Generator().manual_seed(seed))
        mask, negatives = eager.sample_masks(x, generator=torch.Generator().manual_seed(seed))
        loss_e, grads_e = _loss_and_grads(eager, x, mask, negatives)
        loss_c, grads_c = _loss_and_grads(compiled, x, mask, negatives)
        torch.testing.assert_close(loss_c, loss_e, rtol=1e-4, atol=1e-5)
        assert grads_c.keys() == grads_e.keys()
        for name, grad in grads_e.items():
            torch.testing.assert_close(grads_c[name], grad, rtol=1e-3, atol=1e-5, msg=name)


def test_explicit_precisions_pass_through_and_unknown_ones_are_refused():
    for choice in ("no", "bf16", "fp16"):
        assert choose_mixed_precision(choice, "cpu") == choice
    with pytest.raises(ValueError, match=r"mixed_precision='fp8' is not supported; use one of auto, no, bf16, fp16"):
        choose_mixed_precision("fp8", "cpu")


def test_auto_picks_bf16_only_where_this_cpu_measured_it_faster():
    torch.manual_seed(0)
    model = W2V2ForPreTraining(W2V2Config.tiny()).train()
    chosen = choose_mixed_precision("auto", "cpu", model, samples=8_000, min_speedup=1.2)
    assert chosen in ("no", "bf16")
    if bf16_matmul_speedup("cpu") < 1.2:  # a CPU without bf16 matrix units: bf16 stays off
        assert chosen == "no"
    assert model.training  # the probe ran in eval mode and put the model back
    # A threshold no device reaches keeps fp32; one every device reaches picks bf16 (from the matmul alone).
    assert choose_mixed_precision("auto", "cpu", model, samples=8_000, min_speedup=1e9) == "no"
    assert choose_mixed_precision("auto", "cpu", None, min_speedup=1e-9) == "bf16"


def test_auto_leaves_the_global_random_stream_alone():
    # A seeded run draws its masks and negatives from the global stream after this probe, so the
    # probe must not draw from it: otherwise "auto" and "no" train differently where fp32 wins.
    speed._matmul_speedups.clear()  # measure again in this process, not from the cache
    model = W2V2ForPreTraining(W2V2Config.tiny()).train()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    choose_mixed_precision("auto", "cpu", model, samples=8_000, min_speedup=1e-9)  # matmul and forward probes both run
    assert "cpu:512" in speed._matmul_speedups
    assert torch.equal(torch.get_rng_state(), before)


def test_transcription_batch_suits_the_device():
    assert default_transcription_batch_size("cpu") == 1
    assert default_transcription_batch_size("cuda") == 8
