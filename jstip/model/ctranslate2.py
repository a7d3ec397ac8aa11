"""Reading CTranslate2 ``model.bin`` files (the format of faster-whisper's converted Whisper models) without
CTranslate2 itself, and mapping a Whisper one onto Hugging Face's ``WhisperForConditionalGeneration``.

The binary layout (little-endian; CTranslate2 binary version 6, ``ctranslate2/specs/model_spec.py``)::

    uint32 version | string spec name | uint32 revision | uint32 n_variables
    n_variables x ( string name | uint8 ndim | uint32 shape[ndim] | uint8 dtype | uint32 n_bytes | bytes )
    uint32 n_aliases | n_aliases x ( string alias | string target )

where a string is ``uint16 length`` (terminating NUL included) followed by its UTF-8 bytes and the NUL, and the dtype
ids are float32, int8, int16, int32, float16, bfloat16 in that order. Nothing in the file is executed: it is read as
numbers, so a model.bin from anywhere is safe to load.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
SUPPORTED_VERSIONS = (5, 6)


class ModelFileError(ValueError):
    """A model file that is truncated, foreign, or of an unsupported layout; the message names the file."""


def read_ctranslate2(paths) -> tuple[str, dict[str, np.ndarray]]:
    """The spec name and the variables of a CTranslate2 model file (aliases resolved to their targets).

    Args:
        paths: one ``model.bin``, or a list of files that concatenate to one (a model shipped in parts).

    Returns:
        (spec name such as ``WhisperSpec``, {variable name: array}); bfloat16 arrays come back as float32, scalars as
        0-d arrays. Arrays are views of one buffer read into memory.

    Raises:
        ModelFileError: not a CTranslate2 model, an unsupported version, or cut short (the file is named).
    """
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    name = " + ".join(str(p) for p in paths)
    for p in paths:
        if not p.is_file():
            raise ModelFileError(f"{p}: no such model file")
    data = memoryview(b"".join(p.read_bytes() for p in paths))
    pos = 0

    def take(n: int) -> memoryview:
        nonlocal pos
        if pos + n > len(data):
            raise ModelFileError(f"{name}: the file ends after {len(data)} bytes inside a record at byte {pos} "
                                 "(truncated or incomplete download; re-install the package or re-convert the model)")
        out = data[pos:pos + n]
        pos += n
        return out

    def unpack(fmt: str):
        return struct.unpack("<" + fmt, take(struct.calcsize("<" + fmt)))

    def string() -> str:
        (n,) = unpack("H")
        raw = bytes(take(n))
        if not raw or raw[-1] != 0:
            raise ModelFileError(f"{name}: a name at byte {pos - n} is not NUL-terminated: not a CTranslate2 model")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as e:
            raise ModelFileError(f"{name}: a name at byte {pos - n} is not UTF-8: not a CTranslate2 model") from e

    if len(data) < 8:
        raise ModelFileError(f"{name}: {len(data)} bytes: not a CTranslate2 model file")
    (version,) = unpack("I")
    if version not in SUPPORTED_VERSIONS:
        raise ModelFileError(f"{name}: not a CTranslate2 model file (header {version}; expected binary version "
                             f"{' or '.join(map(str, SUPPORTED_VERSIONS))}). Give a faster-whisper/CTranslate2 "
                             "model.bin or a Hugging Face Whisper folder")
    spec = string()
    unpack("I")  # revision
    (count,) = unpack("I")
    if count > 100_000:
        raise ModelFileError(f"{name}: claims {count} variables: not a CTranslate2 model file")
    variables: dict[str, np.ndarray] = {}
    for _ in range(count):
        var = string()
        (ndim,) = unpack("B")
        shape = unpack("I" * ndim) if ndim else ()
        (dtype_id,) = unpack("B")
        (n_bytes,) = unpack("I")
        if dtype_id >= len(_DTYPES):
            raise ModelFileError(f"{name}: variable {var} has unknown dtype id {dtype_id}")
        raw = take(n_bytes)
        dtype = _DTYPES[dtype_id]
        if dtype == "bfloat16":
            arr = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=dtype)
        if arr.size != int(np.prod(shape)):
            raise ModelFileError(f"{name}: variable {var} has {arr.size} values for shape {tuple(shape)}")
        variables[var] = arr.reshape(shape)
    (n_alias,) = unpack("I")
    for _ in range(n_alias):
        alias, target = string(), string()
        if target not in variables:
            raise ModelFileError(f"{name}: alias {alias} points to a missing variable {target}")
        variables[alias] = variables[target]
    if pos != len(data):
        raise ModelFileError(f"{name}: {len(data) - pos} bytes after the last record (not one CTranslate2 model)")
    return spec, variables


def _scalar(variables: dict, key: str) -> int:
    return int(np.asarray(variables[key]).reshape(-1)[0])


def _layers(variables: dict, prefix: str) -> int:
    n = 0
    while f"{prefix}/layer_{n}/ffn/linear_0/weight" in variables:
        n += 1
    return n


def whisper_from_ctranslate2(variables: dict[str, np.ndarray], source: str = "model.bin"):
    """(``WhisperConfig`` keyword arguments, Hugging Face state dict of float32 tensors) of a ``WhisperSpec`` file.

    Names map one to one (``encoder/layer_N/self_attention/linear_1`` -> ``model.encoder.layers.N.self_attn.out_proj``);
    the fused self-attention q/k/v (``linear_0``, 3 x d rows) and the decoder's fused cross-attention k/v are split;
    Whisper's k projections have no bias (CTranslate2 stores zeros there).
    """
    import torch

    quantized = sorted(k for k in variables if k.endswith("weight_scale"))
    if quantized:
        raise ModelFileError(f"{source}: a quantized conversion ({quantized[0]} and {len(quantized) - 1} more scales; "
                             "int8/int16 weights): jstip reads float16/float32/bfloat16 files. Convert again with "
                             "--quantization float16, or give a Hugging Face Whisper folder")

    def t(key: str) -> torch.Tensor:
        if key not in variables:
            raise ModelFileError(f"{source}: no variable {key}: not a Whisper model")
        return torch.from_numpy(np.array(variables[key], dtype=np.float32))

    state: dict[str, torch.Tensor] = {}

    def linear(dst: str, src: str, bias: bool = True) -> None:
        state[f"{dst}.weight"] = t(f"{src}/weight")
        if bias:
            state[f"{dst}.bias"] = t(f"{src}/bias")

    def norm(dst: str, src: str) -> None:
        state[f"{dst}.weight"] = t(f"{src}/gamma")
        state[f"{dst}.bias"] = t(f"{src}/beta")

    def qkv(dst: str, src: str) -> None:
        w, b = t(f"{src}/weight"), t(f"{src}/bias")
        d = w.shape[1]
        for i, proj in enumerate(("q_proj", "k_proj", "v_proj")):
            state[f"{dst}.{proj}.weight"] = w[i * d:(i + 1) * d].clone()
            if proj != "k_proj":
                state[f"{dst}.{proj}.bias"] = b[i * d:(i + 1) * d].clone()

    def ffn(dst: str, src: str) -> None:
        norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")
        linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
        linear(f"{dst}.fc2", f"{src}/ffn/linear_1")

    n_enc, n_dec = _layers(variables, "encoder"), _layers(variables, "decoder")
    if n_enc == 0 or n_dec == 0:
        raise ModelFileError(f"{source}: no encoder/decoder layers: not a Whisper model")
    for part in ("conv1", "conv2"):
        linear(f"model.encoder.{part}", f"encoder/{part}")
    state["model.encoder.embed_positions.weight"] = t("encoder/position_encodings/encodings")
    for i in range(n_enc):
        dst, src = f"model.encoder.layers.{i}", f"encoder/layer_{i}"
        norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
        qkv(f"{dst}.self_attn", f"{src}/self_attention/linear_0")
        linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
        ffn(dst, src)
    norm("model.encoder.layer_norm", "encoder/layer_norm")

    state["model.decoder.embed_tokens.weight"] = t("decoder/embeddings/weight")
    state["model.decoder.embed_positions.weight"] = t("decoder/position_encodings/encodings")
    for i in range(n_dec):
        dst, src = f"model.decoder.layers.{i}", f"decoder/layer_{i}"
        norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
        qkv(f"{dst}.self_attn", f"{src}/self_attention/linear_0")
        linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
        norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
        linear(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
        w, b = t(f"{src}/attention/linear_1/weight"), t(f"{src}/attention/linear_1/bias")
        d = w.shape[1]
        state[f"{dst}.encoder_attn.k_proj.weight"] = w[:d].clone()
        state[f"{dst}.encoder_attn.v_proj.weight"] = w[d:].clone()
        state[f"{dst}.encoder_attn.v_proj.bias"] = b[d:].clone()
        linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
        ffn(dst, src)
    norm("model.decoder.layer_norm", "decoder/layer_norm")
    state["proj_out.weight"] = state["model.decoder.embed_tokens.weight"]

    d_model = state["model.encoder.conv1.weight"].shape[0]
    vocab = state["model.decoder.embed_tokens.weight"].shape[0]
    config = dict(
        vocab_size=vocab, num_mel_bins=state["model.encoder.conv1.weight"].shape[1], d_model=d_model,
        encoder_layers=n_enc, decoder_layers=n_dec,
        encoder_attention_heads=_scalar(variables, "encoder/num_heads"),
        decoder_attention_heads=_scalar(variables, "decoder/num_heads"),
        encoder_ffn_dim=state["model.encoder.layers.0.fc1.weight"].shape[0],
        decoder_ffn_dim=state["model.decoder.layers.0.fc1.weight"].shape[0],
        max_source_positions=state["model.encoder.embed_positions.weight"].shape[0],
        max_target_positions=state["model.decoder.embed_positions.weight"].shape[0],
        tie_word_embeddings=True,
    )
    return config, state
