"""vasomim_pretrain bundle code in-process: GuidedMAE masks, losses, beta schedule, encoder export, caching."""

import importlib
import importlib.util
import io
import shutil
import sys
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine
from monai.networks.nets import MaskedAutoEncoderViT, ViT

from conftest import PRETRAIN_TRAIN

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "vasomim_pretrain"
TINY = dict(img_size=64, patch_size=16, hidden_size=32, mlp_dim=64, num_layers=2, num_heads=2,
            decoder_hidden_size=32, decoder_mlp_dim=64, decoder_num_layers=1, decoder_num_heads=2)


@pytest.fixture(scope="module")
def scripts():
    """The bundle's `scripts` package, imported from the bundle root and removed from sys.modules afterwards
    (the seg bundle has its own `scripts`)."""
    saved = {k: v for k, v in sys.modules.items() if k == "scripts" or k.startswith("scripts.")}
    for k in saved:
        del sys.modules[k]
    sys.path.insert(0, str(BUNDLE))
    mods = {name: importlib.import_module(f"scripts.{name}") for name in
            ("mae", "losses", "beta", "export", "checkpoints", "masking", "iteration")}
    yield mods
    sys.path.remove(str(BUNDLE))
    for k in [k for k in sys.modules if k == "scripts" or k.startswith("scripts.")]:
        del sys.modules[k]
    sys.modules.update(saved)


def tiny_mae(scripts, **kw):
    torch.manual_seed(0)
    return scripts["mae"].GuidedMAE(**{**TINY, **kw})


def test_state_dict_layout_is_monai_mae(scripts):
    net = tiny_mae(scripts)
    ref = MaskedAutoEncoderViT(in_channels=1, spatial_dims=2, qkv_bias=True, masking_ratio=0.75, **TINY)
    assert set(net.state_dict()) == set(ref.state_dict())
    ref.load_state_dict(net.state_dict(), strict=True)
    assert f"blocks.{TINY['num_layers']}.weight" in net.state_dict() and "cls_token" in net.state_dict()
    assert all(blk.attn.use_flash_attention for blk in [*net.blocks[:-1], *net.decoder_blocks[:-1]])


def test_given_mask_is_used_exactly(scripts):
    net = tiny_mae(scripts).eval()
    L = 16
    x = torch.rand(2, 1, 64, 64)
    mask = torch.zeros(2, L)
    mask[0, [0, 3, 5, 6, 7, 9, 10, 12, 13, 14, 15, 1]] = 1
    mask[1, [2, 4, 8, 11, 0, 1, 3, 5, 6, 7, 9, 10]] = 1
    ids_keep, ids_restore = scripts["mae"].ids_from_mask(mask)
    seen = []
    hook = net.blocks[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    with torch.no_grad():
        pred, out_mask = net(x, mask=mask, ids_keep=ids_keep, ids_restore=ids_restore)
        latent = net.forward_encoder(x, ids_keep)
        y = x.clone()
        patches = scripts["mae"].patchify(y, 16)
        patches[mask.bool()] = torch.rand_like(patches[mask.bool()])
        y = scripts["mae"].unpatchify(patches, 16, (4, 4))
        latent_masked_changed = net.forward_encoder(y, ids_keep)
        z = x.clone()
        keep_patch = int(ids_keep[0, 0])
        row, col = (keep_patch // 4) * 16, (keep_patch % 4) * 16
        z[0, :, row : row + 16, col : col + 16] += 0.5
        latent_kept_changed = net.forward_encoder(z, ids_keep)
        pred_from_mask_only, _ = net(x, mask=mask)
    hook.remove()
    assert pred.shape == (2, L, 256) and torch.equal(out_mask, mask)
    assert seen[0] == (2, 1 + 4, TINY["hidden_size"])
    assert torch.allclose(latent, latent_masked_changed, atol=1e-6), "masked patches reached the encoder"
    assert not torch.allclose(latent[0], latent_kept_changed[0], atol=1e-4), "kept patches did not reach the encoder"
    assert torch.allclose(pred, pred_from_mask_only, atol=1e-6)


def test_no_mask_masks_randomly(scripts):
    net = tiny_mae(scripts)
    torch.manual_seed(1)
    pred, mask = net(torch.rand(3, 1, 64, 64))
    assert pred.shape == (3, 16, 256) and mask.shape == (3, 16)
    assert torch.all(mask.sum(1) == 16 - int(16 * 0.25))
    assert not torch.equal(mask[0], mask[1]) or not torch.equal(mask[1], mask[2])


def test_bf16_autocast_forward_backward_on_cpu(scripts):
    net = tiny_mae(scripts)
    x = torch.rand(2, 1, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pred, mask = net(x)
        loss = scripts["losses"].forward_loss(x, pred, mask, 16)
    loss.backward()
    assert pred.dtype == torch.bfloat16 and torch.isfinite(loss)
    assert net.patch_embedding.patch_embeddings.weight.grad is not None


def test_presets(scripts):
    base = scripts["mae"].mae_vit_base_patch16(img_size=224)
    assert base.decoder_hidden_size == 512 and len(base.decoder_blocks) == 9 and len(base.blocks) == 13
    assert base.blocks[0].attn.qkv.bias is not None and base.blocks[0].mlp.linear1.out_features == 3072
    assert base.decoder_blocks[0].attn.num_heads == 16 and base.decoder_blocks[0].mlp.linear1.out_features == 2048
    assert not base.decoder_pos_embedding.requires_grad and not base.patch_embedding.position_embeddings.requires_grad
    tiny = scripts["mae"].mae_vit_tiny_patch16(img_size=64)
    assert len(tiny.blocks) == 13 and tiny.cls_token.shape[-1] == 192


def segmentor():
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    return UNet(2, 1, 1, channels=(4, 8, 16), strides=(2, 2), num_res_units=0, norm="batch")


def encoder_grads(scripts, loss_name, use_cons):
    net = tiny_mae(scripts)
    seg = segmentor()
    loss = scripts["losses"].VasoMIMLoss(seg, 16, use_cons=use_cons)
    loss.train()
    torch.manual_seed(3)
    x = torch.rand(2, 1, 64, 64)
    mask = torch.zeros(2, 16)
    mask[:, :12] = 1
    pred, mask = net(x, mask=mask)
    out = loss(x, pred, mask)
    out[loss_name].backward()
    assert all(p.grad is None for p in seg.parameters()) and not seg.training
    grads = [p.grad.flatten() for n, p in net.named_parameters() if n.startswith("blocks.0.") and p.requires_grad]
    return out, torch.cat(grads)


def test_consistency_loss_sends_gradient_into_the_encoder(scripts):
    out, g_cons_only = encoder_grads(scripts, "loss_cons", True)
    assert float(out["loss_cons"]) > 0 and g_cons_only.abs().sum() > 0
    _, g_with = encoder_grads(scripts, "loss", True)
    out_without, g_without = encoder_grads(scripts, "loss", False)
    assert float(out_without["loss_cons"]) == 0.0 and out_without["seg_img"] is None
    assert not torch.allclose(g_with, g_without)
    assert torch.allclose(g_with - g_without, g_cons_only, atol=1e-5, rtol=1e-3)


def test_loss_shares_patch_statistics_and_builds_no_graph_for_s_of_image(scripts):
    net, seg = tiny_mae(scripts), segmentor()
    loss = scripts["losses"].VasoMIMLoss(seg, 16)
    x = torch.rand(2, 1, 64, 64)
    pred, mask = net(x)
    out = loss(x, pred, mask)
    assert torch.allclose(out["recon"], scripts["losses"].reconstruct(x, pred, 16), atol=1e-6)
    assert torch.allclose(out["loss_rec"], scripts["losses"].forward_loss(x, pred, mask, 16), atol=1e-6)
    assert out["seg_img"].grad_fn is None and out["seg_recon"].grad_fn is not None
    assert not any(p.requires_grad for p in seg.parameters()) and not seg.training


def test_soft_map_of_the_step_masking_gives_the_same_consistency_loss(scripts):
    """The "mixed" guidance computes sigmoid(S(I)) when it draws the step's masks; handed to the loss, it replaces the
    loss's own S(I) pass with the same value and the same gradient into the reconstruction."""
    net, seg = tiny_mae(scripts), segmentor()
    loss = scripts["losses"].VasoMIMLoss(seg, 16)
    x = torch.rand(2, 1, 64, 64)
    pred, mask = net(x)
    soft = scripts["masking"].StepMasking(16, 0.5, guidance="mixed", segmentor=seg).probability(x)
    own = loss(x, pred, mask)
    given = loss(x, pred, mask, soft)
    torch.testing.assert_close(given["loss_cons"], own["loss_cons"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.sigmoid(given["seg_img"]), torch.sigmoid(own["seg_img"]), rtol=1e-4, atol=1e-5)
    g_own = torch.autograd.grad(own["loss_cons"], pred, retain_graph=True)[0]
    g_given = torch.autograd.grad(given["loss_cons"], pred)[0]
    torch.testing.assert_close(g_given, g_own, rtol=1e-4, atol=1e-7)


def test_reconstruction_uses_each_patch_own_statistics(scripts):
    x = torch.rand(1, 1, 64, 64) * 0.5 + torch.linspace(0, 0.5, 64).reshape(1, 1, 64, 1)
    target = scripts["mae"].patchify(x, 16)
    mean, std = scripts["losses"].patch_stats(target)
    perfect = (target - mean) / std
    recon = scripts["losses"].reconstruct(x, perfect, 16)
    assert torch.allclose(recon, x, atol=1e-5)
    assert float(scripts["losses"].forward_loss(x, perfect, torch.ones(1, 16), 16)) < 1e-10


def test_beta_schedule_handler(scripts):
    from transforms import SharedBeta

    beta = SharedBeta()
    values = []
    engine = Engine(lambda e, b: values.append((e.state.epoch, beta.value, e.state.beta)))
    scripts["beta"].BetaScheduleHandler(beta, 0.0, 0.5).attach(engine)
    engine.run([0], max_epochs=4)
    assert [v[1] for v in values] == [pytest.approx(0.5 * e / 4) for e in range(1, 5)]
    assert all(v[1] == v[2] for v in values)
    off = SharedBeta(0.3)
    engine = Engine(lambda e, b: values.append(off.value))
    scripts["beta"].BetaScheduleHandler(off, 0.0, 1.0, enabled=False).attach(engine)
    engine.run([0], max_epochs=2)
    assert values[-2:] == [0.0, 0.0]
    with pytest.raises(ValueError):
        scripts["beta"].BetaScheduleHandler(beta, 0.0, 1.5)


def test_encoder_export_loads_into_monai_vit(scripts, tmp_path):
    net = tiny_mae(scripts)
    path = scripts["export"].EncoderExport(net, tmp_path / "encoder.pt", TINY["num_layers"]).save()
    vit = ViT(in_channels=1, img_size=64, patch_size=16, hidden_size=32, mlp_dim=64, num_layers=2, num_heads=2,
              spatial_dims=2, qkv_bias=True, classification=False)
    state = torch.load(path, weights_only=True)
    vit.load_state_dict(state, strict=True)
    assert torch.equal(vit.norm.weight, net.blocks[2].weight)
    ddp_style = {f"module.{k}": v for k, v in net.state_dict().items()}
    assert set(scripts["export"].encoder_state_dict(ddp_style, 2)) == set(vit.state_dict())


def test_atomic_save_leaves_no_partial_file(scripts, tmp_path):
    target = tmp_path / "m.pt"

    class Boom:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        scripts["checkpoints"].atomic_save({"x": Boom()}, target)
    assert list(tmp_path.iterdir()) == []
    scripts["checkpoints"].atomic_save({"x": torch.ones(2)}, target)
    assert torch.equal(torch.load(target)["x"], torch.ones(2))
    for name in ("checkpoint_epoch=2.pt", "checkpoint_epoch=10.pt", "tmpabc", "checkpoint_epoch=3.pt.tmp"):
        (tmp_path / name).write_bytes(b"")
    assert scripts["checkpoints"].latest_checkpoint(tmp_path).name == "checkpoint_epoch=10.pt"


def test_vesselness_and_pseudo_mask_cached_once(scripts, tmp_path, monkeypatch):
    """Issue 7: in a 3-epoch run (S trained 2 epochs on the same cache) Frangi and the pseudo-mask run once per
    image."""
    from monai.bundle import ConfigParser

    import transforms.pseudo_mask as pm
    import transforms.vesselness as ves

    calls = {"frangi": 0, "pseudo": 0}
    frangi_call, pseudo_call = ves.FrangiVesselnessd.__call__, pm.VesselPseudoMaskd.__call__

    def count(name, fn):
        def wrapper(self, data):
            calls[name] += 1
            return fn(self, data)
        return wrapper

    monkeypatch.setattr(ves.FrangiVesselnessd, "__call__", count("frangi", frangi_call))
    monkeypatch.setattr(pm.VesselPseudoMaskd, "__call__", count("pseudo", pseudo_call))
    data = tmp_path / "data"
    data.mkdir()
    for n in (1, 2, 3):
        shutil.copy(REPO / "sample_data" / "dca" / "images" / f"{n}.dcm", data)
    parser = ConfigParser()
    parser.read_config([str(BUNDLE / "configs" / f) for f in (*PRETRAIN_TRAIN, "preset_cpu.json")])
    parser.update({**TINY, "working_size": 64, "dataset_dir": str(data), "output_dir": str(tmp_path / "out"),
                   "max_epochs": 3, "warmup_epochs": 1, "batch_size": 2, "segmentor_epochs": 2,
                   "segmentor_channels": [4, 8, 16], "num_workers": 0, "cache_workers": 1})
    trainer = parser.get_parsed_content("train#trainer")
    assert calls == {"frangi": 3, "pseudo": 3}
    trainer.run()
    assert trainer.state.epoch == 3
    assert calls == {"frangi": 3, "pseudo": 3}, f"vesselness recomputed across epochs: {calls}"
    parser.get_parsed_content("train#tb_writer").close()


def test_fast_segmentor_copy_computes_the_same_function_and_input_gradient(scripts):
    seg = segmentor()
    seg.train()
    for _ in range(3):
        seg(torch.rand(4, 1, 64, 64) * 3 + 1)
    prelus = [m for m in seg.modules() if isinstance(m, torch.nn.PReLU)]
    assert len(prelus) == 4
    with torch.no_grad():
        for m, slope in zip(prelus, (0.1, -0.3, 0.7, 1.5)):
            m.weight.fill_(slope)
    fast = scripts["losses"].fast_frozen_copy(seg.eval())
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.PReLU)) for m in fast.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in seg.modules()) == 4
    assert [m.negative_slope for m in fast.modules() if isinstance(m, torch.nn.LeakyReLU)] == pytest.approx(
        [0.1, -0.3, 0.7, 1.5])
    x = torch.rand(2, 1, 64, 64, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    ref, ours = seg(x), fast(x2)
    assert torch.allclose(ref, ours, atol=1e-5)
    ref.square().sum().backward()
    ours.square().sum().backward()
    assert torch.allclose(x.grad, x2.grad, atol=1e-5, rtol=1e-4)


def test_benchmark_flop_count_includes_cpu_flash_attention(scripts):
    from torch.utils.flop_counter import FlopCounterMode

    spec = importlib.util.spec_from_file_location("bench_flops", REPO / "benchmarks" / "_flops.py")
    flops = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(flops)
    x = torch.rand(2, 1, 64, 64)
    counts = {}
    for name, net in (("ours", tiny_mae(scripts)),
                      ("monai", MaskedAutoEncoderViT(in_channels=1, spatial_dims=2, qkv_bias=True, **TINY))):
        for mapping in (None, flops.CPU_SDPA_FLOPS):
            torch.manual_seed(0)
            with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
                pred, mask = net(x)
                scripts["losses"].forward_loss(x, pred, mask, 16).backward()
            counts[name, mapping is not None] = counter.get_total_flops()
    assert counts["ours", False] < counts["monai", False], "torch now counts the CPU flash kernel; drop _flops.py"
    assert counts["ours", True] == counts["monai", True] == counts["monai", False]


@pytest.mark.parametrize("norm_pix_loss", [True, False])
def test_reconstructor_is_the_training_reconstruction_and_scripts(scripts, norm_pix_loss):
    """MAEReconstructor (inference.json's network_def) loads a GuidedMAE state dict strictly, returns the training
    reconstruction I' clamped to [0, 1] for a given mask, and its TorchScript export gives the same output."""
    trained = tiny_mae(scripts)
    net = scripts["mae"].MAEReconstructor(**TINY, norm_pix_loss=norm_pix_loss).eval()
    net.load_state_dict(trained.state_dict(), strict=True)
    x = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(2, 16)
    mask[0, :12], mask[1, 4:] = 1, 1
    with torch.no_grad():
        pred, _ = trained.eval()(x, mask=mask)
        expected = scripts["losses"].reconstruct(x, pred, 16, norm_pix_loss).clamp(0, 1)
        out = net(x, mask=mask)
        buffer = io.BytesIO()
        torch.jit.save(torch.jit.script(net), buffer)
        buffer.seek(0)
        scripted = torch.jit.load(buffer)(x, mask=mask)
    assert out.shape == (2, 1, 64, 64)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(scripted, out, rtol=1e-5, atol=1e-6)


def test_guided_mae_scripts_with_every_masking_path(scripts):
    """TorchScript keeps GuidedMAE's optional mask arguments (unannotated, they became undefined-tensor defaults that
    torch.jit.save cannot write): random masking, a mask, ids_keep alone, and all three give the eager outputs."""
    net = tiny_mae(scripts).eval()
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(net), buffer)
    buffer.seek(0)
    scripted = torch.jit.load(buffer)
    x = torch.rand(2, 1, 64, 64)
    mask = torch.zeros(2, 16)
    mask[:, ::2] = 1
    ids_keep, ids_restore = scripts["mae"].ids_from_mask(mask)
    for kwargs in ({}, {"mask": mask}, {"ids_keep": ids_keep}, {"mask": mask, "ids_keep": ids_keep,
                                                               "ids_restore": ids_restore}):
        with torch.no_grad():
            torch.manual_seed(5)
            eager = net(x, **kwargs)
            torch.manual_seed(5)
            jit = scripted(x, **kwargs)
        for a, b in zip(eager, jit):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        if kwargs:
            assert torch.equal(jit[1], mask)
