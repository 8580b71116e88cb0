"""FLOP formulas for the CPU flash-attention kernel, which torch.utils.flop_counter.FlopCounterMode lacks (it counts
that kernel as zero work). Pass CPU_SDPA_FLOPS as its custom_mapping."""

import torch
from torch.utils.flop_counter import sdpa_flop_count


def _sdpa_forward_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_backward_flops(grad_out_shape, query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    return 2 * sdpa_flop_count(query_shape, key_shape, value_shape)


CPU_SDPA_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_forward_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_backward_flops,
}
