"""A fine-tuned checkpoint that does not fit the config's network: one clear error naming the preset or sizes."""

from __future__ import annotations

import torch

from conftest import SEG_BUNDLE, TINY_NET, monai_bundle, seg_module, tiny_seg_net

CONFIGS = SEG_BUNDLE / "configs"
PRESET = {"img_size": 128, "patch_size": 16, "hidden_size": 192, "mlp_dim": 768, "num_layers": 6, "num_heads": 3}


def test_checkpoint_of_the_cpu_preset_names_the_preset(tmp_path):
    loader = seg_module("model_loader")
    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    torch.save(tiny_seg_net(**PRESET).state_dict(), path)
    assert loader.checkpoint_sizes(torch.load(path, weights_only=True)) == {
        "img_size": 128, "hidden_size": 192, "num_layers": 6, "mlp_dim": 768, "patch_size": 16}
    tiny = tiny_seg_net()
    text = loader.mismatch_message(path, tiny, CONFIGS)
    assert "does not fit" in text and "--hidden_size 192 --num_layers 6 --mlp_dim 768" in text
    assert "preset_cpu.json" in text


def test_inference_with_the_wrong_sizes_fails_in_a_few_lines(tmp_path):
    torch.manual_seed(0)
    model = tmp_path / "model.pt"
    torch.save(tiny_seg_net().state_dict(), model)
    proc = monai_bundle(["run", "--config_file", str(CONFIGS / "inference.json"), "--meta_file",
                         str(CONFIGS / "metadata.json")], cwd=tmp_path, check=False,
                        overrides={**TINY_NET, "hidden_size": 64, "mlp_dim": 128, "handlers#0#load_path": str(model),
                                   "input_dir": str(SEG_BUNDLE.parents[1] / "sample_data" / "dca" / "images" / "1.dcm"),
                                   "output_dir": str(tmp_path / "out")})
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "ValueError: the checkpoint" in log and "trained with --hidden_size 32 --mlp_dim 64 (" in log
    assert log.count("size mismatch for") == 0
