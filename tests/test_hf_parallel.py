"""Parallel blocks against transformers: Phi (``model_type: phi``) and GPT-J (``gptj``) run attention
and the MLP on ONE shared LayerNorm's output and add both to the residual; GPT-NeoX with
``use_parallel_residual`` has a LayerNorm per branch. (FLOPs and nonlinear element counts of every
family, these included, are compared with transformers in tests/test_hf_transformers.py.)

Here, from reduced configs with random weights (no hub access):

* numerics: the HF model's weights copied into picost's plain torch reference model of the loaded
  spec (picost.model.torch_reference, which the lowering is checked against op for op in
  tests/test_reference.py) give transformers' final hidden states -- so the block the spec describes
  (which norm each branch reads, where the residual adds sit) is the one transformers runs;
* structure: norms per layer and RoPE's rotated dims per head as transformers' modules have them;
* the shipped phi-2 / gpt-j-6b specs are the real HF configs (tests/data/hf) loaded.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from picost.errors import UserError  # noqa: E402
from picost.model.load import load_spec  # noqa: E402
from picost.model.lower import lower  # noqa: E402
from picost.model.torch_reference import build_reference  # noqa: E402

HF_DATA = Path(__file__).parent / "data" / "hf"
T = 7
SMALL = {  # model_type: (config class, reduced keys)
    "phi": ("PhiConfig", {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
                          "intermediate_size": 96, "vocab_size": 101, "max_position_embeddings": 64,
                          "partial_rotary_factor": 0.5}),
    "gptj": ("GPTJConfig", {"n_layer": 2, "n_embd": 64, "n_head": 4, "n_inner": 96, "vocab_size": 101,
                            "n_positions": 64, "rotary_dim": 8}),
    "gpt_neox": ("GPTNeoXConfig", {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
                                   "intermediate_size": 96, "vocab_size": 101, "max_position_embeddings": 64,
                                   "rotary_pct": 0.25}),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _hf(model_type: str, tmp_path: Path, **extra):
    """The HF base model (eager attention, float64, seeded random weights) and picost's spec of its
    config.json, with no head (the base model's output is the final hidden states)."""
    cls_name, keys = SMALL[model_type]
    config = getattr(transformers, cls_name)(**{**keys, **extra})
    path = tmp_path / "config.json"
    path.write_text(config.to_json_string())
    torch.manual_seed(0)
    model = transformers.AutoModel.from_config(config, attn_implementation="eager").double().eval()
    spec = load_spec(path).model_copy(update={"head": "none", "argmax": False})
    return model, spec


def _every_two_to_half(w: torch.Tensor, heads: int, rotated: int) -> torch.Tensor:
    """Rows of a q/k projection reordered per head so that GPT-J's rotation of dims (2i, 2i+1) becomes
    the reference's rotate-half pairing (i, i + rotated/2); QK^T is unchanged by the same reordering
    of q and k."""
    dh = w.shape[0] // heads
    order = list(range(0, rotated, 2)) + list(range(1, rotated, 2)) + list(range(rotated, dh))
    index = torch.tensor([h * dh + i for h in range(heads) for i in order])
    return w[index]


def _reference_weights(model_type: str, hf: dict[str, torch.Tensor], spec) -> dict[str, torch.Tensor]:
    """The HF state dict under the reference model's names (biases HF lacks are zero)."""
    out = {}
    zeros = lambda n: torch.zeros(n, dtype=torch.float64)  # noqa: E731
    rotated = round(spec.rope_fraction * spec.dim_head)
    for i in range(spec.n_layers):
        B = f"blocks.{i}"
        if model_type == "phi":
            P = f"layers.{i}"
            names = {"ln_in": "input_layernorm", "attn.out": "self_attn.dense", "ffn.up": "mlp.fc1",
                     "ffn.down": "mlp.fc2"}
            q, k, v = (f"{P}.self_attn.{x}_proj" for x in "qkv")
            out[f"{B}.attn.qkv.weight"] = torch.cat([hf[f"{x}.weight"] for x in (q, k, v)])
            out[f"{B}.attn.qkv.bias"] = torch.cat([hf[f"{x}.bias"] for x in (q, k, v)])
        else:
            P = f"h.{i}"
            names = {"ln_in": "ln_1", "ffn.up": "mlp.fc_in", "ffn.down": "mlp.fc_out"}
            H, d = spec.n_heads, spec.d_model
            out[f"{B}.attn.qkv.weight"] = torch.cat([_every_two_to_half(hf[f"{P}.attn.q_proj.weight"], H, rotated),
                                                     _every_two_to_half(hf[f"{P}.attn.k_proj.weight"], H, rotated),
                                                     hf[f"{P}.attn.v_proj.weight"]])
            out[f"{B}.attn.qkv.bias"] = zeros(3 * d)
            out[f"{B}.attn.out.weight"], out[f"{B}.attn.out.bias"] = hf[f"{P}.attn.out_proj.weight"], zeros(d)
        for ours, theirs in names.items():
            out[f"{B}.{ours}.weight"], out[f"{B}.{ours}.bias"] = hf[f"{P}.{theirs}.weight"], hf[f"{P}.{theirs}.bias"]
    embed, final = ("embed_tokens", "final_layernorm") if model_type == "phi" else ("wte", "ln_f")
    out["embed.weight"] = hf[f"{embed}.weight"]
    out["final_norm.weight"], out["final_norm.bias"] = hf[f"{final}.weight"], hf[f"{final}.bias"]
    return out


@pytest.mark.parametrize("model_type", ["phi", "gptj"])
def test_shared_norm_block_computes_what_transformers_computes(model_type, tmp_path):
    model, spec = _hf(model_type, tmp_path)
    assert (spec.parallel_residual, spec.parallel_norm) == (True, "shared")
    reference = build_reference(spec, dtype=torch.float64)
    reference.load_state_dict(_reference_weights(model_type, model.state_dict(), spec), strict=True)
    ids = torch.randint(0, spec.vocab_size, (1, T))
    with torch.no_grad():
        theirs = model(input_ids=ids).last_hidden_state
        ours = reference(ids)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)  # HF makes RoPE's cos/sin in float32
    # the same weights in a sequential block (the FFN reads the norm of x + attention) differ: the check can fail
    sequential = build_reference(spec.model_copy(update={"parallel_residual": False, "parallel_norm": "separate"}),
                                 dtype=torch.float64)
    weights = _reference_weights(model_type, model.state_dict(), spec)
    for name in [n for n in weights if ".ln_in." in n]:
        value = weights.pop(name)
        weights[name.replace(".ln_in.", ".ln_attn.")] = weights[name.replace(".ln_in.", ".ln_ffn.")] = value
    sequential.load_state_dict(weights, strict=True)
    with torch.no_grad():
        assert not torch.allclose(sequential(ids), theirs, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("model_type,extra,norms,shared", [
    ("phi", {}, 1, True), ("gptj", {}, 1, True),
    ("gpt_neox", {"use_parallel_residual": True}, 2, False),
    ("gpt_neox", {"use_parallel_residual": False}, 2, False),
])
def test_norms_per_layer_and_rotated_dims_are_transformers(model_type, extra, norms, shared, tmp_path):
    model, spec = _hf(model_type, tmp_path, **extra)
    layer = model.layers[0] if model_type == "phi" else model.h[0] if model_type == "gptj" else model.layers[0]
    hf_norms = [m for m in layer.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(hf_norms) == norms
    in_block = [op for op in lower(spec, T).ops if op.layer == 0 and op.kind == "layernorm"]
    assert len(in_block) == norms
    assert spec.parallel_residual == extra.get("use_parallel_residual", True)
    assert (spec.parallel_norm == "shared") == shared
    attn = getattr(layer, "self_attn", None) or getattr(layer, "attention", None) or layer.attn
    hf_rotated = next(getattr(attn, a) for a in ("rotary_ndims", "rotary_dim") if hasattr(attn, a))
    (rope,) = [op for op in lower(spec, T).ops if op.layer == 0 and op.kind == "rope"]
    assert rope.dims["n"] == T * (spec.n_heads + spec.kv_heads) * hf_rotated


@pytest.mark.parametrize("shipped,config", [("phi-2", "phi-2-config.json"), ("gpt-j-6b", "gpt-j-6b-config.json")])
def test_shipped_specs_are_the_hf_configs(shipped, config):
    ours, theirs = load_spec(shipped), load_spec(HF_DATA / config)
    fields = ("n_layers", "d_model", "n_heads", "kv_heads", "dim_head", "ffn_width", "vocab_size", "context_length",
              "activation", "norm", "positional", "rope_fraction", "tied_embeddings", "bias", "parallel_residual",
              "parallel_norm", "head", "argmax")
    assert {f: getattr(ours, f) for f in fields} == {f: getattr(theirs, f) for f in fields}


@pytest.mark.parametrize("shipped,config_class", [("phi-2", "PhiConfig"), ("gpt-j-6b", "GPTJConfig")])
def test_shipped_parameter_counts_are_transformers(shipped, config_class):
    """Weights of the real-size HF model (built on the meta device: shapes only) against the weights
    the lowering multiplies: every linear's k x n (QKV, output, MLP, head), the embedding's V x d, and
    two per LayerNorm (gain and bias); plus every linear's bias (n). HF's head carries a bias the spec
    leaves out (no FLOPs; noted in the import's description)."""
    spec = load_spec(shipped).model_copy(update={"head": "full"})
    config = getattr(transformers, config_class).from_json_file(HF_DATA / f"{shipped}-config.json")
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    hf_total = sum(p.numel() for p in model.parameters())
    ops = lower(spec, 1).ops
    linear = sum(op.dims["k"] * op.dims["n"] + op.dims["bias"] * op.dims["n"] for op in ops if op.kind == "linear")
    embedding = spec.vocab_size * spec.d_model
    norms = sum(2 * op.dims["cols"] for op in ops if op.kind == "layernorm")
    head_bias = spec.vocab_size
    qkvo_bias = 4 * spec.d_model * spec.n_layers if shipped == "gpt-j-6b" else 0  # GPT-J's attention has none
    assert linear + embedding + norms + head_bias - qkvo_bias == hf_total


def test_shared_norm_needs_a_pre_norm_parallel_block(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("extends: phi-2\nparallel_residual: false\n")
    with pytest.raises(UserError, match="parallel_residual: true") as err:
        load_spec(path)
    assert err.value.field == "parallel_norm" and err.value.file.endswith("phi-2.yaml")


def test_engines_refuse_a_shared_norm():
    """picost/mpc, SPU and CrypTen run no shared-norm block: a located refusal, not a mis-costed run."""
    from picost.crypten_engine.bridge import model_payload
    from picost.mpc.model import check_supported
    from picost.spu.bridge import model_request

    spec = load_spec("phi-2")
    for refuse in (check_supported, model_request, lambda s: model_payload(s, 8)):
        with pytest.raises(UserError, match="shared norm") as exc:
            refuse(spec)
        assert exc.value.field == "parallel_norm"
