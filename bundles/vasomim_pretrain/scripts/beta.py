"""Weak-to-strong guidance schedule: an Ignite handler updating the SharedBeta read by the masking transform."""

from __future__ import annotations

from ignite.engine import Engine, Events

from transforms import SharedBeta


def beta_at(epoch: int, max_epochs: int, beta_0: float, beta_e: float) -> float:
    """beta_e = beta_0 + (e / E)(beta_E - beta_0) with e the 1-based epoch about to run (Ignite's
    engine.state.epoch at EPOCH_STARTED, = the authors' 0-based epoch + 1), E = max_epochs: the first epoch uses
    beta_0 + (beta_E - beta_0) / E and the last one beta_E."""
    return beta_0 + (epoch / max_epochs) * (beta_e - beta_0)


class BetaScheduleHandler:
    """Sets beta.value = beta_at(engine.state.epoch, engine.state.max_epochs, beta_0, beta_E) at EPOCH_STARTED,
    before the epoch's DataLoader iterator (and its workers' draws) starts; also stores it in engine.state.beta.

    Args:
        beta: the SharedBeta given to AnatomyGuidedMaskd.
        beta_0, beta_E: schedule ends (0, 0.5 = weak-to-strong, the paper's best; 0, 0 = random masking).
        enabled: False keeps beta at 0 (the "no guidance" ablation).
    """

    def __init__(self, beta: SharedBeta, beta_0: float = 0.0, beta_E: float = 0.5, enabled: bool = True):
        for v in (beta_0, beta_E):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"beta_0 and beta_E must be in [0, 1], got {beta_0}, {beta_E}")
        self.beta, self.beta_0, self.beta_E, self.enabled = beta, float(beta_0), float(beta_E), bool(enabled)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        value = beta_at(engine.state.epoch, engine.state.max_epochs, self.beta_0, self.beta_E) if self.enabled else 0.0
        self.beta.value = value
        engine.state.beta = value
