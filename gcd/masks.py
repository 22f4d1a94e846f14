"""The int32 token bitmask (xgrammar/llguidance layout) and applying it to logits."""
from __future__ import annotations

import numpy as np
import torch


def allocate_token_bitmask(batch_size: int, vocab_size: int) -> torch.Tensor:
    """Zeroed int32 ``[batch_size, ceil(vocab_size / 32)]``: bit j of word i = token 32*i+j."""
    return torch.zeros((batch_size, (vocab_size + 31) // 32), dtype=torch.int32)


def bitmask_to_bool(bitmask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """int32 ``[..., words]`` -> bool ``[..., vocab_size]`` on the bitmask's device
    (columns beyond ``32 * words`` are False). On the CPU numpy unpacks the bits (~6x faster)."""
    if bitmask.device.type == "cpu":
        words = bitmask.contiguous().numpy()
        bits = np.unpackbits(words.view(np.uint8), axis=-1, bitorder="little")   # little-endian int32 words
        out = np.zeros(words.shape[:-1] + (vocab_size,), dtype=bool)
        n = min(vocab_size, bits.shape[-1])
        out[..., :n] = bits[..., :n]
        return torch.from_numpy(out)
    shifts = torch.arange(32, dtype=torch.int32, device=bitmask.device)
    flags = ((bitmask.unsqueeze(-1) >> shifts) & 1).bool().flatten(-2)
    if flags.shape[-1] >= vocab_size:
        return flags[..., :vocab_size]
    pad = torch.zeros(flags.shape[:-1] + (vocab_size - flags.shape[-1],), dtype=torch.bool, device=flags.device)
    return torch.cat([flags, pad], dim=-1)


def apply_token_bitmask_(logits: torch.Tensor, bitmask: torch.Tensor) -> torch.Tensor:
    """Set disallowed logits to -inf in place (one vectorised op on the logits' device);
    logits ``[B, V_model]`` may be wider than the bitmask covers (padded model vocabularies)."""
    allowed = bitmask_to_bool(bitmask.to(logits.device, non_blocking=True), logits.shape[-1])
    return logits.masked_fill_(~allowed, float("-inf"))
