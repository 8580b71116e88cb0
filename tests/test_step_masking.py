"""The pretraining step draws its MAE masks itself (scripts.masking.StepMasking): the authors' "mixed" guidance map
0.5·m + 0.5·σ(S(I)) from one batched call of S, per-rank seeds, and σ(S(I)) handed on as the L_cons target."""

import numpy as np
import pytest
import torch
from monai.engines.utils import PrepareBatchExtraInput
from monai.inferers import SimpleInferer
from scipy import stats

from transforms.guided_mask import num_masked

from conftest import PRETRAIN_BUNDLE, PRETRAIN_TINY, bundle_scripts

TINY = {**PRETRAIN_TINY, "patch_size": 16}


@pytest.fixture(scope="module")
def scripts():
    with bundle_scripts(PRETRAIN_BUNDLE):
        from scripts import iteration, losses, mae, masking

        yield {"iteration": iteration, "losses": losses, "mae": mae, "masking": masking}


def conv_segmentor() -> torch.nn.Module:
    """S with logit 4·I - 2 (a 1x1 convolution)."""
    s = torch.nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        s.weight.fill_(4.0)
        s.bias.fill_(-2.0)
    return s


def test_mixed_guidance_map_is_half_mask_half_segmentor_probability(scripts):
    """Four 8x8 patches of constant intensity (0, 0.5, 1, 0.25) and a pseudo-mask on patches 1 and 2: with one
    masked patch (ratio 0.25) at beta 1, the patch drawn follows the per-patch mass of 0.5·m + 0.5·σ(4·I - 2)."""
    image = torch.tensor([[0.0, 0.5], [1.0, 0.25]]).repeat_interleave(8, 0).repeat_interleave(8, 1)[None, None]
    m = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).repeat_interleave(8, 0).repeat_interleave(8, 1)[None, None]
    rows = 4000
    segmentor = conv_segmentor()
    masking = scripts["masking"].StepMasking(8, 0.25, beta=1.0, guidance="mixed", segmentor=segmentor, seed=0)
    mask, ids_keep, ids_restore, soft = masking(image.repeat(rows, 1, 1, 1), m.repeat(rows, 1, 1, 1))
    expected_prob = torch.sigmoid(4 * image - 2)
    torch.testing.assert_close(soft, expected_prob.expand(rows, -1, -1, -1), rtol=1e-6, atol=1e-7)
    sig = 1 / (1 + np.exp(-np.array([-2.0, 0.0, 2.0, -1.0])))
    f = 0.5 * np.array([0.0, 1.0, 1.0, 0.0]) + 0.5 * sig
    f /= f.sum()
    assert torch.all(mask.sum(1) == num_masked(4, 0.25)) and ids_keep.shape == (rows, 3)
    counts = mask.sum(0).numpy()
    assert stats.chisquare(counts, f * rows).pvalue > 1e-3, (counts / rows, f)
    assert segmentor.weight.requires_grad, "the masker must copy S, not freeze the caller's module"


def test_seeds_and_beta(scripts):
    """A seed gives the same masks; another seed, other masks; beta 1 always masks the one vessel patch, beta 0
    does not."""
    x = torch.rand(8, 1, 64, 64)
    m = torch.zeros(8, 1, 64, 64)
    m[:, :, :16, :16] = 1

    def draw(seed, beta):
        return scripts["masking"].StepMasking(16, 0.25, beta=beta, seed=seed)(x, m)[0]

    assert torch.equal(draw(3, 0.5), draw(3, 0.5)) and not torch.equal(draw(3, 0.5), draw(4, 0.5))
    assert torch.all(draw(0, 1.0)[:, 0] == 1)
    assert not torch.all(torch.cat([draw(s, 0.0)[:, 0] for s in range(4)]) == 1)
    with pytest.raises(ValueError):
        scripts["masking"].StepMasking(16, 0.5, guidance="mixed")


def test_iteration_draws_masks_and_runs_s_on_the_image_once(scripts):
    """One MAEIteration step: the network gets the masker's masks (the same as a fresh masker of the same seed draws),
    the loss's S(I) is the masker's σ(S(I)), and S runs once on I (masker) and once on I' (loss); a second step
    under bf16 autocast runs too."""
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    net = scripts["mae"].GuidedMAE(**TINY, masking_ratio=0.5)
    seg = UNet(2, 1, 1, channels=(4, 8, 16), strides=(2, 2), num_res_units=0, norm="batch")
    loss = scripts["losses"].VasoMIMLoss(seg, 16)
    masking = scripts["masking"].StepMasking(16, 0.5, beta=1.0, guidance="mixed", segmentor=seg, seed=0)
    calls = {"masker": 0, "loss": 0}
    masking.segmentor.register_forward_hook(lambda *a: calls.__setitem__("masker", calls["masker"] + 1))
    loss.segmentor.register_forward_hook(lambda *a: calls.__setitem__("loss", calls["loss"] + 1))

    class Engine:
        prepare_batch = PrepareBatchExtraInput({"vessel_mask": "vessel_mask"})
        state = type("State", (), {"device": torch.device("cpu")})()
        non_blocking, optim_set_to_none, network, loss_function, inferer = False, True, net, loss, SimpleInferer()
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)

        def fire_event(self, event):
            pass

    x = torch.rand(3, 1, 64, 64)
    m = torch.zeros(3, 1, 64, 64)
    m[:, :, 20:28, 40:60] = 1
    out = scripts["iteration"].MAEIteration(masking)(Engine(), {"image": x, "vessel_mask": m})
    assert calls == {"masker": 1, "loss": 1}
    bf16 = scripts["iteration"].MAEIteration(masking, autocast_dtype=torch.bfloat16)(Engine(), {"image": x,
                                                                                               "vessel_mask": m})
    assert torch.isfinite(bf16["loss"]) and torch.all(bf16["mask"].sum(1) == num_masked(16, 0.5))
    assert calls == {"masker": 2, "loss": 2}
    assert torch.all(out["mask"].sum(1) == num_masked(16, 0.5))
    again = scripts["masking"].StepMasking(16, 0.5, beta=1.0, guidance="mixed", segmentor=seg, seed=0)(x, m)[0]
    assert torch.equal(out["mask"], again)
    torch.testing.assert_close(torch.sigmoid(out["seg_img"]), masking.probability(x), rtol=1e-4, atol=1e-5)
    assert out["beta"] == 1.0 and torch.isfinite(out["loss"])
