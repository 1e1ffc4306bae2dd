#!/usr/bin/env python3
"""Writes the committed seed corpora of tests/data/fuzz/seeds/ from the
fixtures (../shared) and the demo model, kept small: libFuzzer mutates small
inputs faster, and large fixtures are added at run time by scripts/fuzz.sh.
Re-run after a format change: python3 tests/fuzz/make_seeds.py"""
import json
import os
import struct
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.environ.get("LP_SHARED_DIR", os.path.join(ROOT, "..", "shared"))
OUT = os.path.join(ROOT, "tests", "data", "fuzz", "seeds")
DEMO = os.path.join(ROOT, "data", "models", "demo-llama3-d")


def write(target, name, data):
    os.makedirs(os.path.join(OUT, target), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(OUT, target, name), "wb") as f:
        f.write(data)


def header_of(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return n, f.read(n)


def safetensors(tensors, metadata=None):
    """A valid file: tensors is [(name, dtype, shape, bytes)]."""
    header, data = {}, b""
    for name, dtype, shape, payload in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def safetensors_seeds():
    write("safetensors_header", "small", safetensors(
        [("a", "F32", [2, 2], bytes(16)), ("b", "BF16", [3], bytes(6)), ("c", "I64", [], bytes(8)),
         ("d", "U8", [0, 5], b"")], {"format": "pt"}))
    write("safetensors_header", "empty", safetensors([]))
    # Real headers: the first few small tensors as a valid file, and the
    # whole header without data (fails the layout check after the walk).
    for model in ("demo-llama3-d", "tiny-llama2-s"):
        path = os.path.join(DEMO if model == "demo-llama3-d" else os.path.join(SHARED, "fixtures", "models", model),
                            "model.safetensors" if model == "demo-llama3-d" else "model-00005-of-00005.safetensors")
        n, text = header_of(path)
        header = json.loads(text)
        kept = dict(sorted(((k, v) for k, v in header.items() if k != "__metadata__"),
                           key=lambda kv: kv[1]["data_offsets"][0])[:3])
        small = [(k, v["dtype"], v["shape"], bytes(v["data_offsets"][1] - v["data_offsets"][0]))
                 for k, v in kept.items() if v["data_offsets"][1] - v["data_offsets"][0] <= 4096]
        if small:
            write("safetensors_header", model + "-head", safetensors(small, header.get("__metadata__")))
        # The whole header with no data: every tensor fails the size check,
        # but the parser walks the real structure first.
        write("safetensors_header", model + "-header-only", struct.pack("<Q", n) + text)


def index_seeds():
    path = os.path.join(SHARED, "fixtures", "models", "tiny-llama2-s", "model.safetensors.index.json")
    with open(path) as f:
        real = json.load(f)
    items = list(real["weight_map"].items())[:12]
    write("checkpoint_index", "tiny-llama2-s-cut", json.dumps(
        {"metadata": real.get("metadata", {}), "weight_map": dict(items)}, indent=2))
    # Matches the two shards fuzz_targets.cpp writes next to the index.
    write("checkpoint_index", "valid", json.dumps({"metadata": {"total_size": 28}, "weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
        "c": "model-00002-of-00002.safetensors"}}))
    write("checkpoint_index", "missing-shard", json.dumps({"weight_map": {"a": "model-00003-of-00003.safetensors"}}))


def config_seeds():
    write("llama_config", "demo-llama3-d", open(os.path.join(DEMO, "config.json")).read())
    write("llama_config", "tiny-llama2-s",
          open(os.path.join(SHARED, "fixtures", "models", "tiny-llama2-s", "config.json")).read())
    for name in sorted(os.listdir(os.path.join(ROOT, "tests", "data", "config"))):
        if name.endswith(".json"):
            write("llama_config", name[:-5], open(os.path.join(ROOT, "tests", "data", "config", name)).read())


def mini_tokenizer(full, keep_ids):
    model = full["model"]
    vocab = {tok: i for tok, i in model["vocab"].items() if i < keep_ids}
    merges = []
    for merge in model["merges"]:
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        if left in vocab and right in vocab and left + right in vocab:
            merges.append(merge)
    mini = dict(full)
    mini["model"] = dict(model, vocab=vocab, merges=merges)
    return mini


def tokenizer_seeds():
    demo = json.load(open(os.path.join(DEMO, "tokenizer.json")))
    mini = mini_tokenizer(demo, 400)
    added = []
    for i, token in enumerate(demo["added_tokens"][:3]):
        added.append(dict(token, id=400 + i))
    mini["added_tokens"] = added
    bos = added[0]["content"]
    mini["post_processor"]["special_tokens"] = {bos: {"id": bos, "ids": [400], "tokens": [bos]}}
    write("tokenizer_json", "mini-byte-level.json", json.dumps(mini, ensure_ascii=False))
    llama2 = json.load(open(os.path.join(SHARED, "fixtures", "tokenizers", "llama2", "tokenizer.json")))
    write("tokenizer_json", "mini-byte-fallback.json", json.dumps(mini_tokenizer(llama2, 400), ensure_ascii=False))
    write("tokenizer_config", "demo-llama3-d.json", open(os.path.join(DEMO, "tokenizer_config.json")).read())
    write("tokenizer_config", "tiny-llama2-s.json",
          open(os.path.join(SHARED, "fixtures", "models", "tiny-llama2-s", "tokenizer_config.json")).read())
    write("tokenizer_config", "added-token-object.json", json.dumps(
        {"bos_token": {"content": "<|begin_of_text|>", "lstrip": False}, "add_bos_token": True,
         "add_eos_token": False, "eos_token": None}))
    golden = json.load(open(os.path.join(SHARED, "fixtures", "tokenizers", "golden.json")))
    texts = []
    def collect(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("text", "input") and isinstance(value, str):
                    texts.append(value)
                else:
                    collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)
    collect(golden)
    for i, text in enumerate(texts[:40]):
        write("tokenizer_encode", "golden-%02d" % i, text.encode("utf-8", "surrogatepass"))
    write("tokenizer_encode", "invalid-utf8", b"caf\xc3 \xff\xfe <|begin_of_text|> \xe2\x82")


def json_lines_seeds():
    write("json_lines", "records", '{"text": "first record"}\n"a bare string"\n\n{"text": "caf\\u00e9", "id": 3}\n')
    write("json_lines", "crlf", '{"text": "windows"}\r\n{"text": "line"}\r\n')
    write("json_lines", "nested", '{"text": "x", "meta": {"a": [1, {"b": null}]}}\n')


def spm_seeds():
    # tokenizer.model is 125 KB; scripts/fuzz.sh adds it from ../shared. A
    # truncated copy keeps the committed seed small and starts the fuzzer
    # inside the protobuf structure.
    path = os.path.join(SHARED, "fixtures", "models", "tiny-llama2-s", "tokenizer.model")
    write("spm_model", "tiny-llama2-s-head", open(path, "rb").read()[:2048])


if __name__ == "__main__":
    if not os.path.isdir(SHARED):
        sys.exit("make_seeds.py: no shared fixtures at " + SHARED)
    safetensors_seeds()
    index_seeds()
    config_seeds()
    tokenizer_seeds()
    json_lines_seeds()
    spm_seeds()
