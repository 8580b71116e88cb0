"""Bundle code of vasomim_pretrain: GuidedMAE, VasoMIM losses, beta schedule, MAE iteration, segmentor stage,
run folder."""
