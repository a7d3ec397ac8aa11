"""Task-vector merge: tiny base/instruct/speech Llama models built here, the equation checked tensor by tensor."""

import json
import re

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from jstip.merge.task_vectors import MergeError, check_compatible, merge_model_folders, merge_state_dicts
from jstip.merge.commands import cli

VOCAB, ADDED = 64, 4


def tiny_llama(seed, vocab=VOCAB, hidden=16, layers=2, tie=False):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=32, num_hidden_layers=layers,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=tie)
    return LlamaForCausalLM(config)


def perturbed(model, seed, amount=0.05):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(amount * torch.randn(p.shape, generator=generator))
    return model


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("merge")
    base = tiny_llama(0)
    base.save_pretrained(root / "base")
    instruct = perturbed(tiny_llama(0), seed=1)  # fine-tuned from the base: same init + a task vector
    instruct.save_pretrained(root / "instruct")
    speech = perturbed(tiny_llama(0), seed=2)  # continued pretraining of the base on speech...
    speech.resize_token_embeddings(VOCAB + ADDED)  # ...with added special tokens (e.g. <N>, audio markers)
    with torch.no_grad():
        speech.get_input_embeddings().weight[VOCAB:] = torch.randn(ADDED, 16)
    speech.save_pretrained(root / "speech")
    (root / "speech" / "tokenizer_config.json").write_text('{"added": true}')
    return root


def load_folder(folder):
    tensors = {}
    for f in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(str(f)))
    return tensors


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_merge_equation_tensor_by_tensor(folders, tmp_path, scale):
    out = tmp_path / "merged"
    result = CliRunner().invoke(cli, ["--base", str(folders / "base"), "--instruct", str(folders / "instruct"),
                                      "--speech", str(folders / "speech"), "--scale", str(scale), "--out", str(out)])
    assert result.exit_code == 0, result.output
    base, instruct, speech = (load_folder(folders / n) for n in ("base", "instruct", "speech"))
    merged = load_folder(out)
    assert set(merged) == set(speech)
    extended = 0
    for name, tensor in merged.items():
        s, i, b = speech[name], instruct[name], base[name]
        assert tensor.dtype == s.dtype and tensor.shape == s.shape, name
        rows = b.shape[0]
        expected = s.clone()
        expected[:rows] = s[:rows] + scale * (i - b)
        torch.testing.assert_close(tensor, expected, rtol=0, atol=1e-6, msg=name)
        if s.shape[0] > rows:
            extended += 1
            assert torch.equal(tensor[rows:], s[rows:]), f"{name}: added-token rows must keep the speech values"
        else:
            assert not torch.equal(tensor, s), f"{name}: the task vector was not added"
    assert extended == 2  # embed_tokens and lm_head
    summary = json.loads((out / "merge.json").read_text())
    assert set(summary["extended_vocab_tensors"]) == {"model.embed_tokens.weight", "lm_head.weight"}
    assert (out / "tokenizer_config.json").read_text() == '{"added": true}'


def test_merged_folder_loads_and_scale_zero_is_the_speech_model(folders, tmp_path):
    from transformers import LlamaForCausalLM

    merge_model_folders(folders / "base", folders / "instruct", folders / "speech", 0.0, tmp_path / "m0",
                        max_shard_bytes=20_000)  # tiny shards: exercise the sharded layout and its index
    assert (tmp_path / "m0" / "model.safetensors.index.json").exists()
    assert len(list((tmp_path / "m0").glob("model-*.safetensors"))) > 1
    model = LlamaForCausalLM.from_pretrained(tmp_path / "m0")
    speech = LlamaForCausalLM.from_pretrained(folders / "speech")
    assert model.config.vocab_size == VOCAB + ADDED
    for (name, p), (_, q) in zip(model.state_dict().items(), speech.state_dict().items()):
        assert torch.equal(p, q), name


def test_state_dict_core_with_a_speechlm_prefix():
    base = tiny_llama(0).state_dict()
    instruct = perturbed(tiny_llama(0), seed=1).state_dict()
    llm = perturbed(tiny_llama(0), seed=2).state_dict()
    speech = {"encoder.layer.weight": torch.ones(3, 3), **{f"llm.{k}": v for k, v in llm.items()},
              "adapter.proj.weight": torch.zeros(2, 2)}
    plan = check_compatible(speech, instruct, base)
    assert plan["prefix"] == "llm." and set(plan["copied"]) == {"encoder.layer.weight", "adapter.proj.weight"}
    merged = merge_state_dicts(speech, instruct, base, scale=2.0)
    assert list(merged) == list(speech)
    assert torch.equal(merged["encoder.layer.weight"], speech["encoder.layer.weight"])
    key = "model.layers.1.mlp.down_proj.weight"
    torch.testing.assert_close(merged[f"llm.{key}"], llm[key] + 2.0 * (instruct[key] - base[key]))


def cli_error(folders, tmp_path, **swap):
    args = {"base": folders / "base", "instruct": folders / "instruct", "speech": folders / "speech"}
    args.update(swap)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, [f"--{k}={v}" for k, v in args.items()] + ["--out", str(out)])
    assert result.exit_code != 0
    assert not list(out.glob("*.safetensors")) if out.exists() else True
    return result.output


def test_error_when_hidden_sizes_differ(folders, tmp_path):
    tiny_llama(5, hidden=32).save_pretrained(tmp_path / "wide")
    message = cli_error(folders, tmp_path, instruct=tmp_path / "wide")
    assert re.search(r"tensor '[\w.]+' has shape \[[\d, ]*32[\d, ]*\] in the instruct model but \[[\d, ]*16", message)
    assert "not the same architecture" in message


def test_error_when_instruct_vocabulary_differs(folders, tmp_path):
    model = perturbed(tiny_llama(0), seed=1)
    model.resize_token_embeddings(VOCAB + 2)
    model.save_pretrained(tmp_path / "chat")
    message = cli_error(folders, tmp_path, instruct=tmp_path / "chat")
    assert "vocab_size differs" in message and "66" in message
    # the state-dict core names the tensor
    with pytest.raises(MergeError, match=r"tensor 'model.embed_tokens.weight'.*instruct vocabulary has 66 rows"):
        check_compatible(tiny_llama(0).state_dict(), model.state_dict(), tiny_llama(0).state_dict())


def test_error_when_speech_model_has_another_depth_or_architecture(folders, tmp_path):
    tiny_llama(0, layers=1).save_pretrained(tmp_path / "shallow")
    message = cli_error(folders, tmp_path, speech=tmp_path / "shallow")
    assert "model.layers.1." in message
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=VOCAB)).save_pretrained(tmp_path / "gpt2")
    message = cli_error(folders, tmp_path, speech=tmp_path / "gpt2")
    assert "different architectures" in message and "gpt2" in message


def test_error_when_speech_vocabulary_is_smaller(tmp_path):
    base, instruct = tiny_llama(0).state_dict(), tiny_llama(1).state_dict()
    speech = tiny_llama(2, vocab=VOCAB - 8).state_dict()
    with pytest.raises(MergeError, match="speech vocabulary has 56 rows, fewer"):
        merge_state_dicts(speech, instruct, base, 1.0)


def test_merge_help():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0 and "Example" in result.output
