"""Task-vector merging (SpeechCombine): add instruction following to a speech-adapted LLM by weight arithmetic.

    theta = theta_speech + scale * (theta_instruct - theta_base)

on every LLM tensor the three models share. ``theta_base`` is the text LLM that speech pretraining started from,
``theta_instruct`` its instruction-tuned sibling, ``theta_speech`` the speech-adapted LLM. Speech pretraining must
start from the base model (METHOD.md), so the task vector (instruct - base) is measured from the same point.

Rules:

- Tensors are matched by name. The speech state dict may carry a prefix before the LLM names (a jstip SpeechLM
  checkpoint holds the LLM under e.g. ``llm.``); it is detected, or given. Speech tensors that are not LLM tensors
  (encoder, adapter) are copied unchanged.
- Base and instruct must have the same tensor names and shapes (same architecture, same vocabulary); the speech model
  must hold every base tensor with the base shape...
- ...except vocabulary tensors (input embeddings, LM head) of a speech model that added special tokens: their first
  ``V_base`` rows are merged and the extra rows keep the speech model's values (the task vector knows nothing of them).
- Anything else is an error that names the tensor, the shapes and the likely cause. Nothing is written on error.

The core (:func:`iter_merged`, :func:`merge_state_dicts`) works on state-dict mappings; :func:`merge_model_folders`
reads and writes Hugging Face ``save_pretrained`` folders (safetensors, sharded or not), one tensor at a time, so a
7B merge needs memory for a few tensors, not three models.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

VOCAB_TENSOR_MARKERS = ("embed_tokens", "lm_head", "wte", "word_embeddings", "embed_in", "embed_out", "output.weight")
"""Substrings of the names of vocabulary tensors (rows = tokens), for common HF architectures."""


class MergeError(ValueError):
    """The three models cannot be merged; the message names the tensor (or file) and the cause."""


def _shape(state: Mapping, key: str) -> tuple[int, ...]:
    shape_of = getattr(state, "shape", None)
    if callable(shape_of):
        return tuple(shape_of(key))
    return tuple(state[key].shape)


def detect_prefix(speech_keys: list[str], base_keys: list[str]) -> str:
    """The prefix under which the speech state dict holds the base LLM's tensors ('' when the names are the same).

    Raises:
        MergeError: if no prefix maps every base tensor name onto a speech tensor name.
    """
    speech_set = set(speech_keys)
    if all(k in speech_set for k in base_keys):
        return ""
    probe = max(base_keys, key=len)  # the longest name is the most specific
    candidates = sorted({k[: -len(probe)] for k in speech_keys if k.endswith(probe) and k != probe}, key=len)
    best, best_hits = "", -1
    for prefix in candidates:
        hits = sum(prefix + k in speech_set for k in base_keys)
        if hits > best_hits:
            best, best_hits = prefix, hits
    if best_hits == len(base_keys):
        return best
    missing = [k for k in base_keys if best + k not in speech_set]
    raise MergeError(f"the speech model has no tensor {best + missing[0]!r} (nor {len(missing) - 1} other base "
                     f"tensors{', under the prefix ' + repr(best) if best else ''}): it is not the base architecture. "
                     "Pass the speech model adapted from this base model, or give the prefix explicitly.")


def is_vocab_tensor(name: str) -> bool:
    """True for input-embedding and LM-head tensors (rows are tokens), by name."""
    return any(marker in name for marker in VOCAB_TENSOR_MARKERS)


def check_compatible(speech: Mapping, instruct: Mapping, base: Mapping, prefix: str | None = None) -> dict:
    """Check that the three state dicts can be merged, without loading tensor values.

    Returns:
        A plan: ``prefix``, ``merged`` (base names), ``extended`` (base names of vocabulary tensors whose speech
        version has extra rows: name -> (base rows, speech rows)), ``copied`` (speech names outside the LLM).

    Raises:
        MergeError: naming the first tensor that does not match and why.
    """
    base_keys, instruct_keys, speech_keys = list(base.keys()), list(instruct.keys()), list(speech.keys())
    only_base = [k for k in base_keys if k not in set(instruct_keys)]
    only_instruct = [k for k in instruct_keys if k not in set(base_keys)]
    if only_base or only_instruct:
        name = (only_base or only_instruct)[0]
        where = "base but not instruct" if only_base else "instruct but not base"
        raise MergeError(f"tensor {name!r} is in the {where} model ({len(only_base)} base-only, {len(only_instruct)} "
                         "instruct-only tensors): the two are not the same architecture")
    if prefix is None:
        prefix = detect_prefix(speech_keys, base_keys)
    extended: dict[str, tuple[int, int]] = {}
    for key in base_keys:
        b_shape, i_shape = _shape(base, key), _shape(instruct, key)
        if b_shape != i_shape:
            if is_vocab_tensor(key) and b_shape[1:] == i_shape[1:]:
                raise MergeError(f"tensor {key!r}: the instruct vocabulary has {i_shape[0]} rows, the base "
                                 f"{b_shape[0]}: the task vector is undefined for tokens the base model lacks. "
                                 "Use the instruct model of this base model with the same tokenizer.")
            raise MergeError(f"tensor {key!r} has shape {list(i_shape)} in the instruct model but {list(b_shape)} in "
                             "the base model: not the same architecture")
        if prefix + key not in speech:
            raise MergeError(f"the speech model has no tensor {prefix + key!r}: it is not the base architecture")
        s_shape = _shape(speech, prefix + key)
        if s_shape == b_shape:
            continue
        if is_vocab_tensor(key) and s_shape[1:] == b_shape[1:] and s_shape[0] > b_shape[0]:
            extended[key] = (b_shape[0], s_shape[0])
            continue
        if is_vocab_tensor(key) and s_shape[1:] == b_shape[1:]:
            raise MergeError(f"tensor {prefix + key!r}: the speech vocabulary has {s_shape[0]} rows, fewer than the "
                             f"base model's {b_shape[0]}: the speech model was not adapted from this base model")
        raise MergeError(f"tensor {prefix + key!r} has shape {list(s_shape)} in the speech model but {list(b_shape)} "
                         "in the base model: not the same architecture")
    llm_names = {prefix + k for k in base_keys}
    copied = [k for k in speech_keys if k not in llm_names]
    return {"prefix": prefix, "merged": base_keys, "extended": extended, "copied": copied}


def merge_tensor(speech: torch.Tensor, instruct: torch.Tensor, base: torch.Tensor, scale: float) -> torch.Tensor:
    """theta_speech + scale * (theta_instruct - theta_base), in float32, cast back to the speech dtype.

    A speech tensor with more rows than the base (added tokens) keeps its extra rows unchanged.
    """
    out = speech.detach().to(torch.float32).clone()
    rows = base.shape[0] if base.dim() > 0 else None
    delta = instruct.detach().to(torch.float32) - base.detach().to(torch.float32)
    if rows is not None and speech.shape[0] > rows:
        out[:rows] += scale * delta
    else:
        out += scale * delta
    return out.to(speech.dtype)


def iter_merged(
    speech: Mapping, instruct: Mapping, base: Mapping, scale: float, prefix: str | None = None,
    plan: dict | None = None,
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (speech tensor name, merged tensor) for every speech tensor, in the speech state dict's order.

    The compatibility check (:func:`check_compatible`) runs first, so nothing is yielded for incompatible models.
    """
    plan = plan or check_compatible(speech, instruct, base, prefix)
    prefix = plan["prefix"]
    for name in speech.keys():
        if name.startswith(prefix) and name[len(prefix):] in base:
            key = name[len(prefix):]
            yield name, merge_tensor(speech[name], instruct[key], base[key], scale)
        else:
            yield name, speech[name]


def merge_state_dicts(
    speech: Mapping[str, torch.Tensor], instruct: Mapping[str, torch.Tensor], base: Mapping[str, torch.Tensor],
    scale: float, prefix: str | None = None,
) -> dict[str, torch.Tensor]:
    """Merge state dicts: theta_speech + scale * (theta_instruct - theta_base) on every shared LLM tensor.

    Args:
        speech: state dict of the speech-adapted model (an HF LLM, or a SpeechLM holding the LLM under a prefix).
        instruct, base: state dicts of the instruct and base text LLMs.
        scale: lambda; 0 returns the speech model unchanged, 1 adds the whole task vector.
        prefix: the prefix of the LLM tensor names in ``speech``; detected when None.

    Raises:
        MergeError: naming the tensor when the architectures, shapes or vocabularies do not match.
    """
    return dict(iter_merged(speech, instruct, base, scale, prefix))


# ---------------------------------------------------------------------------------------------------------------
# Hugging Face folders


class SafetensorsFolder(Mapping):
    """The tensors of a ``save_pretrained`` folder, read lazily from its safetensors file(s)."""

    def __init__(self, folder: str | Path):
        from safetensors import safe_open

        self.folder = Path(folder)
        files = sorted(self.folder.glob("*.safetensors"))
        if not files:
            raise MergeError(f"{self.folder}: no *.safetensors file; save the model with save_pretrained "
                             "(safe_serialization, the default) or convert it first")
        self._handles = {f: safe_open(str(f), framework="pt") for f in files}
        self._where: dict[str, Path] = {}
        for f, handle in self._handles.items():
            for key in handle.keys():
                self._where[key] = f

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._handles[self._where[key]].get_tensor(key)

    def __iter__(self):
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, key: object) -> bool:
        return key in self._where

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._handles[self._where[key]].get_slice(key).get_shape())


def _read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.exists():
        raise MergeError(f"{path} not found: --base/--instruct/--speech must be save_pretrained folders")
    return json.loads(path.read_text())


def _check_configs(base: dict, instruct: dict, speech: dict, folders: dict[str, Path]) -> None:
    arch = {name: (cfg.get("model_type"), tuple(cfg.get("architectures") or ()))
            for name, cfg in (("base", base), ("instruct", instruct), ("speech", speech))}
    if len({a[0] for a in arch.values()}) > 1:
        detail = ", ".join(f"{n} {a[0]!r} ({folders[n]})" for n, a in arch.items())
        raise MergeError(f"the models have different architectures (model_type: {detail}); all three must be the "
                         "same LLM architecture")
    if base.get("vocab_size") != instruct.get("vocab_size"):
        raise MergeError(f"vocab_size differs: base {base.get('vocab_size')} ({folders['base']}), instruct "
                         f"{instruct.get('vocab_size')} ({folders['instruct']}); the task vector needs one vocabulary")


def _write_shards(tensors: Iterator[tuple[str, torch.Tensor]], out: Path, max_shard_bytes: int) -> list[Path]:
    from safetensors.torch import save_file

    shards: list[dict[str, torch.Tensor]] = [{}]
    written: list[Path] = []
    sizes = [0]
    tmp_names: list[Path] = []

    def flush(index: int) -> None:
        path = out / f".shard-{index:05d}.safetensors"
        save_file({k: v.contiguous() for k, v in shards[-1].items()}, str(path), metadata={"format": "pt"})
        tmp_names.append(path)

    total = 0
    weight_map: dict[str, int] = {}
    for name, tensor in tensors:
        size = tensor.numel() * tensor.element_size()
        if shards[-1] and sizes[-1] + size > max_shard_bytes:
            flush(len(shards))
            shards.append({})
            sizes.append(0)
        shards[-1][name] = tensor
        sizes[-1] += size
        total += size
        weight_map[name] = len(shards)
    flush(len(shards))
    count = len(tmp_names)
    if count == 1:
        final = out / "model.safetensors"
        tmp_names[0].replace(final)
        return [final]
    for k, tmp in enumerate(tmp_names, 1):
        final = out / f"model-{k:05d}-of-{count:05d}.safetensors"
        tmp.replace(final)
        written.append(final)
    index = {"metadata": {"total_size": total},
             "weight_map": {name: f"model-{k:05d}-of-{count:05d}.safetensors" for name, k in weight_map.items()}}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return written


def merge_model_folders(
    base: str | Path, instruct: str | Path, speech: str | Path, scale: float, out: str | Path,
    max_shard_bytes: int = 5 * 1024**3,
) -> dict:
    """Merge three ``save_pretrained`` folders into ``out`` (safetensors + the speech model's config and tokenizer).

    Args:
        base, instruct, speech: model folders (config.json + *.safetensors).
        scale: lambda of the task vector.
        out: output folder; created; must not be one of the inputs.
        max_shard_bytes: shard size of the written safetensors.

    Returns:
        A summary (also written to ``out/merge.json``): inputs, scale, counts of merged / extended / copied tensors.

    Raises:
        MergeError: naming the folder or tensor that does not match; nothing is written then.
    """
    from jstip.model.export import is_export

    speech = Path(speech) / "llm" if is_export(speech) else Path(speech)  # a `jstip export` folder: its LLM
    folders = {"base": Path(base), "instruct": Path(instruct), "speech": Path(speech)}
    out = Path(out)
    if any(out.resolve() == f.resolve() for f in folders.values()):
        raise MergeError(f"--out {out} is one of the input folders; choose a new folder")
    configs = {name: _read_config(folder) for name, folder in folders.items()}
    _check_configs(configs["base"], configs["instruct"], configs["speech"], folders)
    states = {name: SafetensorsFolder(folder) for name, folder in folders.items()}
    plan = check_compatible(states["speech"], states["instruct"], states["base"], prefix="")
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("*.safetensors"), out / "model.safetensors.index.json"]:
        stale.unlink(missing_ok=True)
    files = _write_shards(iter_merged(states["speech"], states["instruct"], states["base"], scale, plan=plan), out,
                          max_shard_bytes)
    # The merged model is the speech model with new weights: its config, tokenizer (with any added tokens) and
    # generation settings come from the speech folder.
    for item in folders["speech"].iterdir():
        if item.is_file() and not item.name.endswith(".safetensors") and item.name not in (
                "model.safetensors.index.json", "merge.json"):
            shutil.copy2(item, out / item.name)
    summary = {
        "formula": "theta_speech + scale * (theta_instruct - theta_base)",
        "scale": scale,
        "base": str(folders["base"]), "instruct": str(folders["instruct"]), "speech": str(folders["speech"]),
        "merged_tensors": len(plan["merged"]),
        "extended_vocab_tensors": {k: {"base_rows": b, "speech_rows": s} for k, (b, s) in plan["extended"].items()},
        "copied_tensors": len(plan["copied"]),
        "copied_tensor_names": plan["copied"][:50],
        "files": [f.name for f in files],
    }
    (out / "merge.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
