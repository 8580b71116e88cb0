"""One VasoMIM pretraining step, used as SupervisedTrainer's iteration_update."""

from __future__ import annotations

import torch
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys as Keys

from .masking import StepMasking


class MAEIteration:
    """iteration_update(engine, batch) for a SupervisedTrainer whose network is a GuidedMAE and whose
    loss_function is a VasoMIMLoss.

    engine.prepare_batch (PrepareBatchExtraInput with extra key "vessel_mask") gives the "image" (B, 1, D1, D2) and
    the pseudo-mask "vessel_mask" (B, 1, D1, D2) on the engine's device. The step draws the batch's MAE masks there
    (`StepMasking`: mask (B, L), ids_keep, ids_restore and, for the "mixed" guidance, σ(S(I)) (B, 1, D1, D2), which the
    loss then takes as its L_cons target instead of running S on I again), then runs the network, the loss, backward
    and the optimizer step.
    engine.state.output gets "loss", "loss_rec", "loss_cons" (detached scalars), "beta", "lr" (floats) and,
    detached, "image", "mask", "recon", "seg_img", "seg_recon" for image logging.

    Args:
        masking: the masker of the step.
        autocast_dtype: e.g. torch.bfloat16 to run masking, forward and loss under torch.autocast on the batch's
            device.
    """

    def __init__(self, masking: StepMasking, autocast_dtype: torch.dtype | None = None):
        self.masking = masking
        self.autocast_dtype = autocast_dtype

    def __call__(self, engine, batchdata: dict) -> dict:
        inputs, _, args, kwargs = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking)
        inputs = torch.as_tensor(inputs)
        vessel = torch.as_tensor(kwargs.pop("vessel_mask"))
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        with torch.autocast(inputs.device.type, dtype=self.autocast_dtype or torch.bfloat16,
                            enabled=self.autocast_dtype is not None):
            mask, ids_keep, ids_restore, soft = self.masking(inputs, vessel)
            pred, mask = engine.inferer(inputs, engine.network, *args, mask=mask, ids_keep=ids_keep,
                                        ids_restore=ids_restore, **kwargs)
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            out = engine.loss_function(inputs, pred, mask, soft)
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        out["loss"].backward()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        engine.optimizer.step()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        result = {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in out.items()}
        result.update({Keys.IMAGE: inputs.detach(), "mask": mask.detach(), "beta": self.masking.current_beta(),
                       "lr": float(engine.optimizer.param_groups[0]["lr"])})
        return result
