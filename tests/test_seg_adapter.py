"""The seg bundle's default network, VesselViTAdapter (CheXWorld protocol): shapes, patch-size transfer of a
pretrained encoder, drop path, the frozen-encoder probe and nested label subsets."""

from __future__ import annotations

import logging

import pytest
import torch

from conftest import TINY_NET, seg_module, tiny_seg_net

encoder = seg_module("encoder")
adapter = seg_module("adapter")
vit = seg_module("vit")
data = seg_module("data")


@pytest.mark.parametrize("patch_size, tokens", [(8, 64), (16, 16)])
def test_forward_shapes_at_patch_8_and_16(patch_size, tokens):
    net = tiny_seg_net(patch_size=patch_size).eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        tokens_out, _ = net.vit(x)
        assert tokens_out.shape == (2, tokens, TINY_NET["hidden_size"])
        assert net(x).shape == (2, 1, 64, 64)
    with torch.no_grad():
        levels = [level(net.tokens_to_grid(tokens_out)) for level in net.pyramid]
    assert [tuple(f.shape[-2:]) for f in levels] == [(32, 32), (16, 16), (8, 8), (4, 4)]


def test_patch_8_pyramid_is_chexworlds():
    """At patch 8: x4 and x2 by stride-2 transposed convolutions, x1 by a 1x1 convolution, x1/2 by a stride-2 conv."""
    net = tiny_seg_net(patch_size=8)
    kinds = [[type(m).__name__ for m in level if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
             for level in net.pyramid]
    assert kinds == [["ConvTranspose2d", "ConvTranspose2d", "Conv2d"], ["ConvTranspose2d", "Conv2d"], ["Conv2d"],
                     ["Conv2d", "Conv2d"]]
    assert [level[-3].out_channels for level in net.pyramid] == [16, 32, 64, 128]


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="patch_size"):
        tiny_seg_net(patch_size=4)
    with pytest.raises(ValueError, match="divisible by 16"):
        tiny_seg_net(img_size=72)


def test_patch16_checkpoint_loads_every_tensor_into_patch8_network(tiny_pretrain_ckpt, caplog):
    net = tiny_seg_net(patch_size=8)
    with caplog.at_level(logging.INFO):
        encoder.load_pretrained_encoder(net, str(tiny_pretrain_ckpt))
    expected = [k for k in net.state_dict() if k.startswith(encoder.ENCODER_PREFIXES)]
    assert f"Loaded {len(expected)} of {len(expected)} pretrained encoder tensors" in caplog.text
    assert "patch kernel (32, 1, 16, 16) -> (32, 1, 8, 8)" in caplog.text
    mapped = encoder.map_mae_to_vit(torch.load(tiny_pretrain_ckpt), TINY_NET["num_layers"])
    state = net.state_dict()
    kernel, pos = "vit.patch_embedding.patch_embeddings.weight", "vit.patch_embedding.position_embeddings"
    assert state[kernel].shape == (32, 1, 8, 8) and state[pos].shape == (1, 64, 32)
    torch.testing.assert_close(state[kernel], encoder.resize_patch_kernel(mapped[kernel], (8, 8)))
    torch.testing.assert_close(state[pos], encoder.resize_position_embeddings(mapped[pos], 64))
    assert all(torch.equal(state[k], mapped[k]) for k in expected if k not in (kernel, pos))


def test_resized_kernel_keeps_the_response_to_smooth_content():
    kernel = torch.randn(4, 1, 16, 16)
    image = torch.full((1, 1, 16, 16), 0.7)
    small = encoder.resize_patch_kernel(kernel, (8, 8))
    big_response = torch.nn.functional.conv2d(image, kernel, stride=16).flatten()
    small_response = torch.nn.functional.conv2d(image[..., :8, :8], small, stride=8).flatten()
    torch.testing.assert_close(small_response, big_response, rtol=0.15, atol=0.15 * big_response.abs().mean())


def test_missing_encoder_key_fails(tmp_path, tiny_pretrain_ckpt):
    state = torch.load(tiny_pretrain_ckpt)
    del state["blocks.1.mlp.linear1.weight"]
    path = tmp_path / "partial.pt"
    torch.save(state, path)
    with pytest.raises(encoder.PretrainedEncoderError, match="missing 1 .*blocks.1.mlp.linear1.weight"):
        encoder.load_pretrained_encoder(tiny_seg_net(patch_size=8), str(path))


def test_segmentation_checkpoint_is_named_as_such(tmp_path):
    path = tmp_path / "seg_model.pt"
    torch.save(tiny_seg_net().state_dict(), path)
    with pytest.raises(encoder.PretrainedEncoderError, match="segmentation checkpoint"):
        encoder.load_pretrained_encoder(tiny_seg_net(), str(path))


def test_drop_path_blocks_keep_transformer_block_keys_and_are_stochastic_only_in_training():
    from monai.networks.blocks import TransformerBlock

    block = vit.DropPathBlock(32, 64, 2, qkv_bias=True, drop_path=0.5)
    assert block.state_dict().keys() == TransformerBlock(32, 64, 2, qkv_bias=True).state_dict().keys()
    x = torch.randn(64, 4, 32)
    torch.manual_seed(0)
    train_a, train_b = block.train()(x), block(x)
    assert not torch.equal(train_a, train_b)
    block.eval()
    assert torch.equal(block(x), block(x))
    rates = [b.drop_path.drop_prob if hasattr(b.drop_path, "drop_prob") else 0.0
             for b in tiny_seg_net(drop_path=0.1, num_layers=3).vit.blocks]
    assert rates == pytest.approx([0.0, 0.05, 0.1])


def test_frozen_encoder_probe_trains_only_the_decoder():
    net = encoder.freeze_encoder(tiny_seg_net(drop_path=0.0), freeze=True)
    before = {k: v.clone() for k, v in net.vit.state_dict().items()}
    decoder_before = net.out.weight.detach().clone()
    params = [p for p in net.parameters() if p.requires_grad]
    assert params and all(not p.requires_grad for p in net.vit.parameters())
    opt = torch.optim.AdamW(params, lr=1e-2)
    net(torch.rand(2, 1, 64, 64)).mean().backward()
    opt.step()
    assert all(torch.equal(v, before[k]) for k, v in net.vit.state_dict().items())
    assert not torch.equal(net.out.weight, decoder_before)
    with pytest.raises(ValueError, match="no"):
        encoder.freeze_encoder(torch.nn.Conv2d(1, 1, 1), freeze=True)


def test_label_subsets_are_nested_and_seeded():
    items = [{"image": str(i)} for i in range(32)]
    subsets = {n: data.label_subset(items, n, seed=0) for n in (2, 4, 8, 16, 32)}
    for small, large in ((2, 4), (4, 8), (8, 16), (16, 32)):
        assert len(subsets[small]) == small
        assert all(d in subsets[large] for d in subsets[small])
    assert data.label_subset(items, 4, seed=0) == subsets[4]
    assert data.label_subset(items, 4, seed=1) != subsets[4]
    assert data.label_subset(items, None) == items
    with pytest.raises(ValueError, match="n_labels"):
        data.label_subset(items, 33)
