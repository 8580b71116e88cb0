"""One VasoMIM pretraining step, used as SupervisedTrainer's iteration_update."""

from __future__ import annotations

import torch
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys as Keys

from transforms import SharedBeta


class MAEIteration:
    """iteration_update(engine, batch) for a SupervisedTrainer whose network is a GuidedMAE and whose
    loss_function is a VasoMIMLoss.

    The batch holds "image" (B, 1, D1, D2) and, through engine.prepare_batch (PrepareBatchExtraInput), the
    network's keyword inputs "mask" (B, L), "ids_keep" (B, L_keep), "ids_restore" (B, L). A "segmentor_prob"
    (B, 1, D1, D2) in the batch (the "mixed" guidance's sigmoid(S(I))) is handed to the loss, which then need not run S
    on I again.
    engine.state.output gets "loss", "loss_rec", "loss_cons" (detached scalars), "beta", "lr" (floats) and,
    detached, "image", "mask", "recon", "seg_img", "seg_recon" for image logging.

    Args:
        beta: the SharedBeta read for logging (the masking itself happens in the data pipeline).
        autocast_dtype: e.g. torch.bfloat16 to run forward + loss under torch.autocast on the batch's device.
    """

    def __init__(self, beta: SharedBeta | float | None = None, autocast_dtype: torch.dtype | None = None):
        self.beta = beta
        self.autocast_dtype = autocast_dtype

    def __call__(self, engine, batchdata: dict) -> dict:
        inputs, _, args, kwargs = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking)
        inputs = torch.as_tensor(inputs)
        soft = batchdata.get("segmentor_prob")
        soft = None if soft is None else torch.as_tensor(soft).to(inputs.device, non_blocking=engine.non_blocking)
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        with torch.autocast(inputs.device.type, dtype=self.autocast_dtype or torch.bfloat16,
                            enabled=self.autocast_dtype is not None):
            pred, mask = engine.inferer(inputs, engine.network, *args, **kwargs)
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            out = engine.loss_function(inputs, pred, mask) if soft is None else engine.loss_function(
                inputs, pred, mask, soft)
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        out["loss"].backward()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        engine.optimizer.step()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        beta = self.beta.value if isinstance(self.beta, SharedBeta) else self.beta
        result = {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in out.items()}
        result.update({Keys.IMAGE: inputs.detach(), "mask": mask.detach(), "beta": float(beta or 0.0),
                       "lr": float(engine.optimizer.param_groups[0]["lr"])})
        return result
