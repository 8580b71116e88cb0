"""The study's scales (network sizes, epochs, seeds) and arms (pretraining recipes, fine-tuning variants, labels)."""

from __future__ import annotations

VIT_TI = {"hidden_size": 192, "mlp_dim": 768, "num_layers": 6, "num_heads": 3, "decoder_hidden_size": 128,
          "decoder_mlp_dim": 512, "decoder_num_layers": 2, "decoder_num_heads": 4}
CPU = {"img_size": 128, **VIT_TI, "pre_epochs": 5, "warmup_epochs": 1, "pre_batch": 16, "blr": 1.5e-3,
       "segmentor_epochs": 2, "seg_epochs": 8, "seg_batch": 4, "lr": 5e-4, "seeds": [0, 1, 2],
       "frangi_grid": [0.01, 0.02, 0.03, 0.06, 0.1, 0.15, 0.25]}
SCALES = {
    "smoke": {"img_size": 64, "hidden_size": 64, "mlp_dim": 128, "num_layers": 2, "num_heads": 2,
              "decoder_hidden_size": 32, "decoder_mlp_dim": 64, "decoder_num_layers": 1, "decoder_num_heads": 2,
              "pre_epochs": 1, "warmup_epochs": 0, "pre_batch": 32, "blr": 1.5e-3, "segmentor_epochs": 1,
              "seg_epochs": 1, "seg_batch": 4, "lr": 5e-4, "seeds": [0], "frangi_grid": [0.05, 0.15]},
    "cpu": CPU,
    "cpu2": {**CPU, "pre_epochs": 60, "warmup_epochs": 5, "blr": 8e-3, "segmentor_epochs": 15, "seg_epochs": 40},
    "paper": {"img_size": 256, "hidden_size": 384, "mlp_dim": 1536, "num_layers": 12, "num_heads": 6,
              "decoder_hidden_size": 512, "decoder_mlp_dim": 2048, "decoder_num_layers": 8, "decoder_num_heads": 16,
              "pre_epochs": 400, "warmup_epochs": 40, "pre_batch": 64, "blr": 1.5e-4, "segmentor_epochs": 50,
              "seg_epochs": 100, "seg_batch": 8, "lr": 5e-4, "seeds": [0, 1, 2],
              "frangi_grid": [0.02, 0.05, 0.08, 0.12, 0.16, 0.22, 0.3]},
}
PRETRAIN_ARMS = {
    "mae": {"guided": False, "beta_0": 0.0, "beta_E": 0.0, "use_cons": False},
    "vasomim": {"guided": True, "beta_0": 0.0, "beta_E": 0.5, "use_cons": True},
    "guided_only": {"guided": True, "beta_0": 0.0, "beta_E": 0.5, "use_cons": False},
    "cons_only": {"guided": False, "beta_0": 0.0, "beta_E": 0.0, "use_cons": True},
    "strong_to_weak": {"guided": True, "beta_0": 1.0, "beta_E": 1.0, "use_cons": True},
}
BAR = {"img_size": 256, "seg_epochs": 80}
NOT_PRETRAINED = ("frangi", "unet", "scratch_vit")
FRANGI_CONFIGS = ["train.json", "evaluate.json", "evaluate_frangi.json"]
SEG_ARMS = ["scratch_vit", "unet", "unet_bar", "mae", "vasomim", "guided_only", "cons_only", "strong_to_weak",
            "scratch_vit_bar", "vasomim_bar"]
DEFAULT_ARMS = ["frangi", "unet", "scratch_vit", "mae", "vasomim", "guided_only", "cons_only"]
LABELS = {"frangi": "Frangi (tuned threshold)", "unet": "BasicUNet scratch",
          "unet_bar": "BasicUNet scratch, 256², 80 ep", "scratch_vit": "ViT-UNETR scratch",
          "scratch_vit_bar": "ViT-UNETR scratch, 256², 80 ep", "vasomim_bar": "VasoMIM, 256², 80 ep",
          "mae": "MAE", "vasomim": "VasoMIM", "guided_only": "guided masking only", "cons_only": "L_cons only",
          "strong_to_weak": "VasoMIM beta 1->1"}


def base_arm(arm: str) -> str:
    """The arm whose model and pretraining a ``*_bar`` arm uses (the bar's recipe: BAR's input size and epochs)."""
    return arm.removesuffix("_bar")


def vit_overrides(s: dict) -> dict:
    """The ViT encoder sizes of scale ``s`` (input size, hidden size, MLP size, layers, heads) as bundle overrides."""
    return {k: s[k] for k in ("img_size", "hidden_size", "mlp_dim", "num_layers", "num_heads")}
