"""The PyTorch reference for FineTunePlatform.OpenWeights: Llama / Qwen2 / Mistral causal LMs with LoRA, written from
the published architectures (transformers' modeling_llama / modeling_qwen2 / modeling_mistral semantics: RMSNorm,
rotate-half RoPE with linear and llama3 scaling, grouped-query attention, SwiGLU, tied or untied head, Qwen2's q/k/v
biases, Mistral's sliding window) and PEFT's LoRA (y = W x + b + (alpha/r) * B A dropout(x), PEFT tensor names).
Gradients come from PyTorch's autograd. Nothing here calls our C# code; the tests compare the two.

Commands (each reads and writes files; see the C# tests for how they are used):
  cases ROOT            generate tiny random models, adapters and batches, and the expected logits, losses, LoRA
                        gradients, AdamW updates and DPO losses/gradients for each
  check-export JSON     logits of a base + exported PEFT adapter, and of an exported merged model
  bench JSON            time LoRA training steps of a model shape (random weights), print JSON figures
  make-model JSON       one random model directory in the Hugging Face layout: {"config", "seed", "directory",
                        "dtype", "shards"} (config.json and safetensors; the caller adds the tokenizer files)
"""

import json
import math
import os
import resource
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ATTENTION = {"q_proj", "k_proj", "v_proj", "o_proj"}


# ---------------------------------------------------------------- config and weights


class Config:
    def __init__(self, raw):
        self.raw = raw
        self.arch = raw["architectures"][0]
        self.hidden = raw["hidden_size"]
        self.layers = raw["num_hidden_layers"]
        self.heads = raw["num_attention_heads"]
        self.kv_heads = raw.get("num_key_value_heads") or self.heads
        self.head_dim = raw.get("head_dim") or self.hidden // self.heads
        self.inter = raw["intermediate_size"]
        self.vocab = raw["vocab_size"]
        self.eps = raw.get("rms_norm_eps", 1e-6)
        self.theta = raw.get("rope_theta", 10000.0)
        self.scaling = raw.get("rope_scaling")
        self.tied = raw.get("tie_word_embeddings", False)
        self.qkv_bias = self.arch == "Qwen2ForCausalLM" or raw.get("attention_bias", False)
        self.o_bias = raw.get("attention_bias", False)
        self.mlp_bias = raw.get("mlp_bias", False)
        self.window = raw.get("sliding_window") if self.arch == "MistralForCausalLM" else None

    def shape(self, module):
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return {"q_proj": (q, self.hidden), "k_proj": (kv, self.hidden), "v_proj": (kv, self.hidden),
                "o_proj": (self.hidden, q), "gate_proj": (self.inter, self.hidden),
                "up_proj": (self.inter, self.hidden), "down_proj": (self.hidden, self.inter)}[module]

    def has_bias(self, module):
        if module in ("q_proj", "k_proj", "v_proj"):
            return self.qkv_bias
        if module == "o_proj":
            return self.o_bias
        return self.mlp_bias


def path_of(layer, module):
    return f"model.layers.{layer}.{'self_attn' if module in ATTENTION else 'mlp'}.{module}"


def load_model(directory, dtype):
    with open(os.path.join(directory, "config.json")) as f:
        config = Config(json.load(f))
    index = os.path.join(directory, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    weights = {}
    for name in files:
        tensors, _ = safetensors_io.read(os.path.join(directory, name))
        # Stored dtype -> float32 (as the C# loader converts) -> the reference's compute dtype.
        weights.update({k: v.to(torch.float32).to(dtype) for k, v in tensors.items()})
    return config, weights


def load_peft_adapter(directory, dtype):
    """PEFT's layout: adapter_config.json + adapter_model.safetensors named base_model.model.<module path>.lora_A.weight."""
    with open(os.path.join(directory, "adapter_config.json")) as f:
        adapter_config = json.load(f)
    assert adapter_config["peft_type"] == "LORA" and adapter_config["task_type"] == "CAUSAL_LM"
    tensors, _ = safetensors_io.read(os.path.join(directory, "adapter_model.safetensors"))
    r, alpha = adapter_config["r"], adapter_config["lora_alpha"]
    scaling = alpha / math.sqrt(r) if adapter_config.get("use_rslora") else alpha / r
    pairs = {}
    for name, tensor in tensors.items():
        assert name.startswith("base_model.model.") and name.endswith(".weight"), name
        module_path, kind = name[len("base_model.model."):-len(".weight")].rsplit(".", 1)
        pairs.setdefault(module_path, {})[kind] = tensor.to(torch.float32).to(dtype)
    return {"pairs": {k: (v["lora_A"], v["lora_B"]) for k, v in pairs.items()}, "scaling": scaling,
            "dropout": adapter_config.get("lora_dropout", 0.0)}


# ---------------------------------------------------------------- the model


def inverse_frequencies(config):
    d = config.head_dim
    inv = 1.0 / (config.theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    s = config.scaling
    kind = None if s is None else s.get("rope_type", s.get("type"))
    if kind == "linear":
        inv = inv / s["factor"]
    elif kind == "llama3":
        factor, low, high, old = s["factor"], s["low_freq_factor"], s["high_freq_factor"], s["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old / low, old / high
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > low_wavelen, inv / factor, inv)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
        inv = torch.where(medium, smoothed, scaled)
    return inv


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rms_norm(x, weight, eps):
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def dropout_mask(step_seed, layer, module_index, p, count):
    """The C# library's hash-based LoRA dropout mask (SplitMix64 of key + e*golden), re-implemented to apply the
    same masks here; masks themselves are not what is under test."""
    with np.errstate(over="ignore"):
        def mix(z):
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            return z ^ (z >> np.uint64(31))
        key = mix(np.array([step_seed * 1000003 + layer * 16 + module_index], dtype=np.uint64))[0]
        e = np.arange(count, dtype=np.uint64)
        u = (mix(key + e * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)).astype(np.float64) / float(1 << 24)
    return torch.from_numpy((u >= np.float32(p)).astype(np.float64))


def forward(config, weights, tokens, adapter=None, dropout=None):
    """Logits [B, T, V]. adapter: {"pairs": {module path: (A, B)}, "scaling": s}; dropout: (step seed, p) or None."""
    dtype = weights["model.embed_tokens.weight"].dtype
    b, t = tokens.shape
    x = weights["model.embed_tokens.weight"][tokens]
    inv = inverse_frequencies(config)
    angles = torch.arange(t, dtype=torch.float32)[:, None] * inv[None, :]
    emb = torch.cat((angles, angles), dim=-1)
    cos, sin = emb.cos().to(dtype), emb.sin().to(dtype)

    def linear(layer, module, inp):
        path = path_of(layer, module)
        y = inp @ weights[path + ".weight"].T
        if config.has_bias(module):
            y = y + weights[path + ".bias"]
        if adapter is not None and path in adapter["pairs"]:
            a, bb = adapter["pairs"][path]
            dropped = inp
            if dropout is not None and dropout[1] > 0:
                mask = dropout_mask(dropout[0], layer, MODULES.index(module), dropout[1], inp.numel()).to(dtype).reshape(inp.shape)
                dropped = inp * mask / (1 - np.float32(dropout[1]).item())
            y = y + (dropped @ a.T @ bb.T) * adapter["scaling"]
        return y

    causal = torch.ones(t, t, dtype=torch.bool).tril()
    if config.window is not None:
        causal = causal & ~torch.ones(t, t, dtype=torch.bool).tril(-config.window)
    for layer in range(config.layers):
        prefix = f"model.layers.{layer}."
        h = rms_norm(x, weights[prefix + "input_layernorm.weight"], config.eps)
        q = linear(layer, "q_proj", h).view(b, t, config.heads, config.head_dim).transpose(1, 2)
        k = linear(layer, "k_proj", h).view(b, t, config.kv_heads, config.head_dim).transpose(1, 2)
        v = linear(layer, "v_proj", h).view(b, t, config.kv_heads, config.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        group = config.heads // config.kv_heads
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(config.head_dim)
        scores = scores.masked_fill(~causal, float("-inf"))
        attn = torch.softmax(scores, dim=-1) @ v
        attn = attn.transpose(1, 2).reshape(b, t, config.heads * config.head_dim)
        x = x + linear(layer, "o_proj", attn)
        h = rms_norm(x, weights[prefix + "post_attention_layernorm.weight"], config.eps)
        gate = linear(layer, "gate_proj", h)
        up = linear(layer, "up_proj", h)
        x = x + linear(layer, "down_proj", torch.nn.functional.silu(gate) * up)
    x = rms_norm(x, weights["model.norm.weight"], config.eps)
    head = weights["model.embed_tokens.weight"] if config.tied else weights["lm_head.weight"]
    return x @ head.T


def token_log_probs(logits, targets):
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def masked_loss(logits, targets, weights):
    return -(token_log_probs(logits, targets) * weights).sum() / weights.sum()


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):
    margin = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    return torch.nn.functional.softplus(-margin).mean()


# ---------------------------------------------------------------- generating tiny models and adapters


def random_model(raw_config, seed, directory, dtype="F32", shards=1):
    os.makedirs(directory, exist_ok=True)
    config = Config(raw_config)
    g = torch.Generator().manual_seed(seed)
    tensors = {"model.embed_tokens.weight": torch.randn(config.vocab, config.hidden, generator=g) * 0.5}
    for layer in range(config.layers):
        prefix = f"model.layers.{layer}."
        tensors[prefix + "input_layernorm.weight"] = 1 + 0.2 * torch.randn(config.hidden, generator=g)
        tensors[prefix + "post_attention_layernorm.weight"] = 1 + 0.2 * torch.randn(config.hidden, generator=g)
        for module in MODULES:
            out_features, in_features = config.shape(module)
            tensors[path_of(layer, module) + ".weight"] = torch.randn(out_features, in_features, generator=g) / math.sqrt(in_features)
            if config.has_bias(module):
                tensors[path_of(layer, module) + ".bias"] = 0.1 * torch.randn(out_features, generator=g)
    tensors["model.norm.weight"] = 1 + 0.2 * torch.randn(config.hidden, generator=g)
    if not config.tied:
        tensors["lm_head.weight"] = torch.randn(config.vocab, config.hidden, generator=g) / math.sqrt(config.hidden)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(raw_config, f, indent=2)
    names = list(tensors)
    if shards == 1:
        safetensors_io.write(os.path.join(directory, "model.safetensors"), tensors, {"format": "pt"}, dtype)
    else:
        weight_map = {}
        per = math.ceil(len(names) / shards)
        for s in range(shards):
            file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            part = {n: tensors[n] for n in names[s * per:(s + 1) * per]}
            weight_map.update({n: file for n in part})
            safetensors_io.write(os.path.join(directory, file), part, {"format": "pt"}, dtype)
        with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f, indent=2)


def random_adapter(config, directory, rank, alpha, targets, seed, dropout=0.0):
    """A PEFT-layout adapter with non-zero B (a fresh PEFT adapter has B = 0, which would hide A's gradient)."""
    os.makedirs(directory, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in range(config.layers):
        for module in MODULES:
            if module not in targets:
                continue
            out_features, in_features = config.shape(module)
            prefix = "base_model.model." + path_of(layer, module)
            tensors[prefix + ".lora_A.weight"] = (torch.rand(rank, in_features, generator=g) * 2 - 1) / math.sqrt(in_features)
            tensors[prefix + ".lora_B.weight"] = 0.3 * torch.randn(out_features, rank, generator=g)
    safetensors_io.write(os.path.join(directory, "adapter_model.safetensors"), tensors, {"format": "pt"})
    with open(os.path.join(directory, "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": alpha, "lora_dropout": dropout,
                   "target_modules": targets, "bias": "none", "use_rslora": False, "use_dora": False,
                   "fan_in_fan_out": False, "base_model_name_or_path": None}, f, indent=2)


def base_config(arch, **overrides):
    raw = {"architectures": [arch], "model_type": {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2",
                                                   "MistralForCausalLM": "mistral"}[arch],
           "hidden_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
           "intermediate_size": 80, "vocab_size": 97, "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
           "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2}
    raw.update(overrides)
    return raw


CASES = {
    # name: (config, dtype, shards, lora targets, rank, alpha, dropout)
    "llama_tied_llama3_gqa": (base_config("LlamaForCausalLM", tie_word_embeddings=True, rope_theta=500000.0,
                                          rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                        "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
                              "F32", 1, MODULES, 4, 8, 0.0),
    "qwen2_untied_bf16_sharded": (base_config("Qwen2ForCausalLM", num_key_value_heads=1, rope_theta=1000000.0),
                                  "BF16", 3, ["q_proj", "v_proj", "down_proj"], 2, 16, 0.0),
    "mistral_sliding_window_f16": (base_config("MistralForCausalLM", sliding_window=4, num_key_value_heads=4),
                                   "F16", 1, ["o_proj", "gate_proj", "up_proj"], 3, 6, 0.0),
    "llama_dropout_linear_rope": (base_config("LlamaForCausalLM", head_dim=8, num_attention_heads=4, attention_bias=True,
                                              rope_scaling={"type": "linear", "factor": 2.0}),
                                  "F32", 1, MODULES, 4, 4, 0.25),
}

ADAMW = {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01, "max_grad_norm": 1.0}
DPO_BETA = 0.1
DROPOUT_SEED = 12345


def make_batch(config, seed, b=3, t=11):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, config.vocab, (b, t), generator=g)
    targets = torch.randint(0, config.vocab, (b, t), generator=g)
    weights = (torch.rand(b, t, generator=g) < 0.6).to(torch.float64)
    weights[0, :] = 1.0
    weights[1, :4] = 0.0      # a prompt
    weights[2, -3:] = 0.0     # padding
    weights[2, 1] = 0.5       # a fractional weight
    return tokens, targets, weights


def run_case(root, name, dtype):
    raw, stored, shards, targets, rank, alpha, dropout = CASES[name]
    directory = os.path.join(root, name)
    model_dir, adapter_dir, reference_dir = (os.path.join(directory, d) for d in ("model", "adapter", "reference_adapter"))
    random_model(raw, seed=len(name), directory=model_dir, dtype=stored, shards=shards)
    config, weights = load_model(model_dir, dtype)
    random_adapter(config, adapter_dir, rank, alpha, targets, seed=7, dropout=dropout)
    random_adapter(config, reference_dir, rank, alpha, targets, seed=8, dropout=dropout)
    adapter = load_peft_adapter(adapter_dir, dtype)
    reference = load_peft_adapter(reference_dir, dtype)
    tokens, targets_, loss_weights = make_batch(config, seed=3)
    loss_weights = loss_weights.to(dtype)
    expected = {}

    # Supervised: logits (no dropout, evaluation), loss and LoRA gradients (dropout on when the case has it).
    with torch.no_grad():
        expected["logits"] = forward(config, weights, tokens, adapter)
        expected["base_logits"] = forward(config, weights, tokens)
    names = []
    parameters = []
    for path, (a, bb) in adapter["pairs"].items():
        a.requires_grad_(True)
        bb.requires_grad_(True)
        names += ["base_model.model." + path + ".lora_A.weight", "base_model.model." + path + ".lora_B.weight"]
        parameters += [a, bb]
    logits = forward(config, weights, tokens, adapter, dropout=(DROPOUT_SEED, dropout) if dropout > 0 else None)
    loss = masked_loss(logits, targets_, loss_weights)
    loss.backward()
    expected["loss"] = loss.detach().reshape(1)
    expected["token_log_probs"] = token_log_probs(logits, targets_).detach() * (loss_weights != 0)
    for n, p in zip(names, parameters):
        expected["grad." + n] = p.grad.detach().clone()

    # One AdamW step after global-norm clipping, as the C# optimizer does.
    stepped = [p.detach().clone().requires_grad_(True) for p in parameters]
    for s, p in zip(stepped, parameters):
        s.grad = p.grad.detach().clone()
    torch.nn.utils.clip_grad_norm_(stepped, ADAMW["max_grad_norm"])
    optimizer = torch.optim.AdamW(stepped, lr=ADAMW["lr"], betas=ADAMW["betas"], eps=ADAMW["eps"], weight_decay=ADAMW["weight_decay"])
    optimizer.step()
    for n, s in zip(names, stepped):
        expected["adamw." + n] = s.detach()

    # DPO: rows 0 and 1 of a preference batch are the chosen and rejected answers of pair 0, rows 2 and 3 of pair 1;
    # the reference is the base with the reference adapter, no dropout.
    for p in parameters:
        p.grad = None
    dpo_tokens, dpo_targets, dpo_weights = make_batch(config, seed=4, b=4)
    dpo_weights = dpo_weights.to(dtype)
    with torch.no_grad():
        ref = (token_log_probs(forward(config, weights, dpo_tokens, reference), dpo_targets) * dpo_weights).sum(-1)
    pol = (token_log_probs(forward(config, weights, dpo_tokens, adapter, dropout=(DROPOUT_SEED, dropout) if dropout > 0 else None), dpo_targets) * dpo_weights).sum(-1)
    loss = dpo_loss(pol[0::2], pol[1::2], ref[0::2], ref[1::2], DPO_BETA)
    loss.backward()
    expected["dpo.loss"] = loss.detach().reshape(1)
    for n, p in zip(names, parameters):
        expected["dpo.grad." + n] = p.grad.detach().clone()

    safetensors_io.write(os.path.join(directory, "inputs.safetensors"),
                         {"tokens": tokens, "targets": targets_, "weights": loss_weights.float(),
                          "dpo.tokens": dpo_tokens, "dpo.targets": dpo_targets, "dpo.weights": dpo_weights.float()})
    safetensors_io.write(os.path.join(directory, "expected.safetensors"), {k: v.float() for k, v in expected.items()})
    with open(os.path.join(directory, "case.json"), "w") as f:
        json.dump({"dropout_seed": DROPOUT_SEED, "adamw": ADAMW, "dpo_beta": DPO_BETA, "dropout": dropout,
                   "rank": rank, "alpha": alpha, "targets": targets}, f)


def cases(root):
    torch.manual_seed(0)
    for name in CASES:
        run_case(root, name, torch.float64)
    print(json.dumps(sorted(CASES)))


def check_export(spec_path):
    """spec: {model, adapter, merged, tokens (a safetensors file with "tokens"), out}."""
    with open(spec_path) as f:
        spec = json.load(f)
    tensors, _ = safetensors_io.read(spec["tokens"])
    tokens = tensors["tokens"]
    config, weights = load_model(spec["model"], torch.float64)
    out = {}
    with torch.no_grad():
        if spec.get("adapter"):
            out["peft_logits"] = forward(config, weights, tokens, load_peft_adapter(spec["adapter"], torch.float64)).float()
        if spec.get("merged"):
            merged_config, merged_weights = load_model(spec["merged"], torch.float64)
            out["merged_logits"] = forward(merged_config, merged_weights, tokens).float()
    safetensors_io.write(spec["out"], out)


# ---------------------------------------------------------------- bench


def bench(spec_path):
    """LoRA training steps (forward, backward through the frozen base, AdamW on the adapters) in float32 at a
    given shape with random weights; prints tokens/s, seconds per step and peak RSS as JSON."""
    with open(spec_path) as f:
        spec = json.load(f)
    torch.set_num_threads(spec.get("threads", 2))
    config = Config(spec["config"])
    g = torch.Generator().manual_seed(1)
    weights = {"model.embed_tokens.weight": torch.randn(config.vocab, config.hidden, generator=g) * 0.02}
    for layer in range(config.layers):
        prefix = f"model.layers.{layer}."
        weights[prefix + "input_layernorm.weight"] = torch.ones(config.hidden)
        weights[prefix + "post_attention_layernorm.weight"] = torch.ones(config.hidden)
        for module in MODULES:
            out_features, in_features = config.shape(module)
            weights[path_of(layer, module) + ".weight"] = torch.randn(out_features, in_features, generator=g) * 0.02
    weights["model.norm.weight"] = torch.ones(config.hidden)
    rank, alpha = spec["rank"], spec["alpha"]
    pairs = {}
    for layer in range(config.layers):
        for module in MODULES:
            out_features, in_features = config.shape(module)
            a = ((torch.rand(rank, in_features, generator=g) * 2 - 1) / math.sqrt(in_features)).requires_grad_(True)
            pairs[path_of(layer, module)] = (a, torch.zeros(out_features, rank).requires_grad_(True))
    adapter = {"pairs": pairs, "scaling": alpha / rank}
    parameters = [p for pair in pairs.values() for p in pair]
    optimizer = torch.optim.AdamW(parameters, lr=1e-4, weight_decay=0.01)
    b, t = spec["batch"], spec["length"]
    tokens = torch.randint(0, config.vocab, (b, t), generator=g)
    targets = torch.randint(0, config.vocab, (b, t), generator=g)
    loss_weights = torch.ones(b, t)
    times = []
    for _ in range(spec["steps"]):
        started = time.perf_counter()
        optimizer.zero_grad()
        loss = masked_loss(forward(config, weights, tokens, adapter), targets, loss_weights)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        times.append(time.perf_counter() - started)
    measured = times[1:] if len(times) > 1 else times
    per_step = sum(measured) / len(measured)
    print(json.dumps({"seconds_per_step": per_step, "tokens_per_second": b * t / per_step, "steps": times,
                      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "torch": torch.__version__, "threads": torch.get_num_threads(), "loss": loss.item()}))


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "cases":
        cases(sys.argv[2])
    elif command == "check-export":
        check_export(sys.argv[2])
    elif command == "bench":
        bench(sys.argv[2])
    elif command == "make-model":
        with open(sys.argv[2]) as f:
            spec = json.load(f)
        random_model(spec["config"], spec["seed"], spec["directory"], spec.get("dtype", "F32"), spec.get("shards", 1))
    else:
        raise SystemExit(f"unknown command {command}")
