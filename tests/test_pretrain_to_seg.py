"""The pretraining bundle's GuidedMAE checkpoint loads into the segmentation bundle's network, every encoder tensor.

Both bundles have a package named ``scripts`` (model-zoo layout), so each side runs in its own interpreter.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZES = "img_size=64, hidden_size=32, mlp_dim=64, num_layers=2, num_heads=2"

SAVE_MAE = f"""
import sys, torch
sys.path.insert(0, {str(REPO / 'bundles' / 'vasomim_pretrain')!r})
from scripts.mae import GuidedMAE
torch.manual_seed(3)
mae = GuidedMAE({SIZES}, decoder_hidden_size=32, decoder_mlp_dim=64, decoder_num_layers=1, decoder_num_heads=2)
torch.save(mae.state_dict(), sys.argv[1])
"""

LOAD_SEG = f"""
import sys, torch
sys.path.insert(0, {str(REPO / 'bundles' / 'vasomim_seg')!r})
from scripts.network import VesselUNETR
from scripts.encoder import load_pretrained_encoder
mae = torch.load(sys.argv[1], weights_only=True)
net = load_pretrained_encoder(VesselUNETR({SIZES}, feature_size=8, qkv_bias=True), sys.argv[1])
vit = net.vit.state_dict()
L = len(net.vit.blocks)
names = {{k: ("norm." + k.split(".", 2)[2]) if k.startswith(f"blocks.{{L}}.") else k for k in mae}}
matched = [k for k, v in names.items() if v in vit and torch.equal(vit[v], mae[k])]
encoder = [k for k in vit if k.startswith(("patch_embedding.", "blocks.", "norm."))]
print(len(matched), len(encoder))
"""


def _python(code: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.split()


def test_every_encoder_tensor_of_a_guided_mae_checkpoint_loads_into_the_seg_network(tmp_path):
    ckpt = tmp_path / "model.pt"
    _python(SAVE_MAE, str(ckpt))
    matched, encoder = map(int, _python(LOAD_SEG, str(ckpt))[-2:])
    assert encoder > 0
    assert matched == encoder
