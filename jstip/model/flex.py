"""Document-masked attention for packed rows: the dense block-causal mask (:func:`block_causal_mask`) and, without
flash-attn, PyTorch's ``flex_attention`` with a block mask from document ids.

Packed rows hold several documents that must not attend to each other. Flash-attn's variable-length kernels do that
from position resets (``attention: position_ids``); without flash-attn the default is a dense 4D mask
(``attention: mask``), which costs O(L^2) memory per row. ``attention: flex`` builds a ``BlockMask`` from the batch's
document ids (causal, same document, padding attends to itself) and runs ``flex_attention``, which skips the blocks
the mask rules out: compiled (fused) on a GPU, eager (unfused, exact) on a CPU, where PyTorch has no backward for it:
flex trains on a GPU and only evaluates on a CPU.

The attention function is registered with Hugging Face's ``AttentionInterface`` as ``jstip_flex``, so any HF decoder
that dispatches through it (Llama, Qwen, SmolLM2, ...) runs it. A plain 4D boolean mask (what generation builds) is
run with ``scaled_dot_product_attention`` instead: generation is unchanged.
"""

from __future__ import annotations

import functools

import torch

NAME = "jstip_flex"


def block_causal_mask(document_ids: torch.Tensor) -> torch.Tensor:
    """(B, L) document ids (-1 = padding) -> (B, 1, L, L) bool, True where query i may attend to key j: same document
    and j <= i. A padding position attends to itself only (a row with no allowed key would give NaN)."""
    B, L = document_ids.shape
    same = document_ids[:, :, None] == document_ids[:, None, :]  # (B, L, L)
    causal = torch.ones(L, L, dtype=torch.bool, device=document_ids.device).tril()
    allowed = same & causal & (document_ids[:, :, None] >= 0)
    allowed |= torch.eye(L, dtype=torch.bool, device=document_ids.device)
    return allowed[:, None]


def document_block_mask(document_ids: torch.Tensor):
    """(B, L) document ids (-1 = padding) -> a ``BlockMask``: query i attends key j when both are in the same document
    and j <= i; a padding position attends to itself only (as :func:`block_causal_mask`)."""
    from torch.nn.attention.flex_attention import create_block_mask

    docs = document_ids

    def mask_mod(b, h, q, kv):
        return ((docs[b, q] == docs[b, kv]) & (kv <= q) & (docs[b, q] >= 0)) | (q == kv)

    B, L = docs.shape
    # compiled on a GPU: the mask is then built block by block, never as a dense B x L x L tensor
    return create_block_mask(mask_mod, B, None, L, L, device=docs.device, _compile=docs.device.type == "cuda")


@functools.lru_cache(maxsize=2)
def _flex(device_type: str):
    import warnings

    from torch.nn.attention.flex_attention import flex_attention

    if device_type == "cuda":
        return torch.compile(flex_attention, dynamic=True)
    warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
    return flex_attention


def flex_attention_forward(module, query, key, value, attention_mask, scaling=None, dropout: float = 0.0, **kwargs):
    """Hugging Face attention function: query (B, H, L, D), key/value (B, H_kv, S, D) -> ((B, L, H, D), None)."""
    from torch.nn.attention.flex_attention import BlockMask

    gqa = query.shape[1] != key.shape[1]
    if isinstance(attention_mask, BlockMask):
        out = _flex(query.device.type)(query, key, value, block_mask=attention_mask, scale=scaling, enable_gqa=gqa)
    else:  # generation's dense masks (or none): plain SDPA
        mask = attention_mask
        if mask is not None and mask.dtype != torch.bool:
            mask = mask.to(query.dtype)
        out = torch.nn.functional.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, dropout_p=dropout if module.training else 0.0, scale=scaling,
            is_causal=mask is None and query.shape[2] > 1, enable_gqa=gqa)
    return out.transpose(1, 2).contiguous(), None


def register() -> str:
    """Register :func:`flex_attention_forward` (and SDPA-style masks for it) with transformers; returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, flex_attention_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    return NAME


def use_flex(llm) -> None:
    """Switch a Hugging Face LLM (and its sub-configs) to :func:`flex_attention_forward`."""
    register()
    if hasattr(llm, "set_attn_implementation"):
        llm.set_attn_implementation(NAME)
    else:  # older transformers
        llm.config._attn_implementation = NAME


def try_flex(llm) -> bool:
    """Switch ``llm`` to flex attention when it takes another attention implementation; a model that refuses keeps
    its own. Returns whether the switch took."""
    before = getattr(llm.config, "_attn_implementation", None)
    try:
        use_flex(llm)
        ok = getattr(llm.config, "_attn_implementation", None) == NAME
    except Exception:  # noqa: BLE001 -- a model that refuses: keep the mask path
        ok = False
    if not ok and before is not None:
        llm.config._attn_implementation = before
    return ok
