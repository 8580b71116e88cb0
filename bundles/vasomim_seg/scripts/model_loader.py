"""Loading the fine-tuned model for evaluation and inference, with a short answer when it does not fit the config."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from monai.handlers import CheckpointLoader

SIZE_IDS = ("img_size", "hidden_size", "num_layers", "mlp_dim", "patch_size")


def checkpoint_sizes(state: dict) -> dict:
    """Encoder sizes read off a ViT state dict: img_size, hidden_size, num_layers, mlp_dim, patch_size (those found).

    Keys are matched by suffix (``patch_embedding.position_embeddings`` (1, N, hidden), ``patch_embedding.
    patch_embeddings.weight`` (hidden, C, p, p), ``blocks.<i>.mlp.linear1.weight`` (mlp_dim, hidden)), so any network
    with a MONAI ViT encoder is read.
    """
    sizes: dict = {}
    blocks = set()
    for key, value in state.items():
        shape = tuple(getattr(value, "shape", ()))
        if key.endswith("patch_embedding.patch_embeddings.weight") and len(shape) == 4:
            sizes["hidden_size"], sizes["patch_size"] = shape[0], shape[-1]
        elif key.endswith("patch_embedding.position_embeddings") and len(shape) == 3:
            sizes["tokens"] = shape[1]
        elif re.search(r"blocks\.0\.mlp\.linear1\.weight$", key) and len(shape) == 2:
            sizes["mlp_dim"] = shape[0]
        match = re.search(r"(?:^|\.)blocks\.(\d+)\.", key)
        if match:
            blocks.add(int(match.group(1)))
    if blocks:
        sizes["num_layers"] = max(blocks) + 1
    tokens = sizes.pop("tokens", None)
    if tokens and "patch_size" in sizes and int(tokens ** 0.5) ** 2 == tokens:
        sizes["img_size"] = int(tokens ** 0.5) * sizes["patch_size"]
    return {k: int(sizes[k]) for k in SIZE_IDS if k in sizes}


def mismatch_message(load_path, network: torch.nn.Module, config_dir=None) -> str:
    """What differs between the checkpoint at ``load_path`` and ``network``, and which preset or sizes to pass."""
    state = torch.load(load_path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    own = network.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    resized = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
               if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    parts = [f"{len(resized)} tensor(s) of another size (e.g. {resized[0]})" if resized else "",
             f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
             f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else ""]
    text = (f"the checkpoint {load_path} does not fit the network of this config: "
            + "; ".join(p for p in parts if p) + ".")
    sizes, expected = checkpoint_sizes(state), checkpoint_sizes(own)
    if missing and unexpected and len(missing) + len(unexpected) > len(own) // 2:
        text += " It holds a different network: pass the network_def it was trained with."
    if sizes and sizes != expected:
        presets = []
        for path in sorted(Path(config_dir).glob("preset*.json")) if config_dir else []:
            preset = json.loads(path.read_text())
            if all(preset.get(k, expected.get(k)) == v for k, v in sizes.items()):
                presets.append(path.name)
        overrides = " ".join(f"--{k} {v}" for k, v in sizes.items() if expected.get(k) != v)
        text += f" It was trained with {overrides} (num_heads and decoder widths cannot be read off it)."
        if presets:
            text += f" Add the preset it was trained with to --config_file: {', '.join(presets)}."
        else:
            text += " Pass those sizes (and the num_heads it was trained with) as overrides."
    return text


class ModelCheckpointLoader(CheckpointLoader):
    """MONAI ``CheckpointLoader`` that, when the checkpoint does not fit the network, raises a ``ValueError`` saying
    which sizes the checkpoint has and which preset in ``config_dir`` matches them, instead of the state-dict
    traceback (hundreds of lines for a ViT).

    Args:
        config_dir: the bundle's ``configs`` folder, searched for ``preset*.json``.
        others: as ``monai.handlers.CheckpointLoader``.
    """

    def __init__(self, load_path: str, load_dict: dict, config_dir=None, **kwargs) -> None:
        super().__init__(load_path=load_path, load_dict=load_dict, **kwargs)
        self.config_dir = config_dir

    def __call__(self, engine) -> None:
        """Loads the checkpoint; a mismatch raises ValueError (the RuntimeError's listing is dropped)."""
        try:
            super().__call__(engine)
        except RuntimeError as err:
            network = self.load_dict.get("model")
            if network is None or "state_dict" not in str(err):
                raise
            raise ValueError(mismatch_message(self.load_path, network, self.config_dir)) from None
