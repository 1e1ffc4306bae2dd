#!/usr/bin/env python3
"""Writes a copy of a single-file checkpoint split into several safetensors
shards with a model.safetensors.index.json, as transformers' save_pretrained
does for large models. Only the standard library: it runs on the Debian
machine and on the GPU machine alike.

linearpatch takes its sharded-input path (decoder layers copied into a
per-layer-shard output while the model is calibrated) only for such inputs,
so scripts/gpu_fixture_check.sh uses this to have transformers load
per-layer-shard outputs of the fixture models.

  python3 scripts/reshard_checkpoint.py SRC DST [--shards 3]

Tensors keep their order and bytes; the other files of SRC (config,
tokenizer) are copied as they are.
"""
import argparse
import json
import os
import shutil
import struct


def read_header(path):
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    return header, 8 + length


def write_shard(path, source, data_start, names, header):
    shard_header, offset = {"__metadata__": header.get("__metadata__", {"format": "pt"})}, 0
    for name in names:
        begin, end = header[name]["data_offsets"]
        shard_header[name] = dict(header[name], data_offsets=[offset, offset + end - begin])
        offset += end - begin
    text = json.dumps(shard_header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, like safetensors' own writer
    with open(source, "rb") as src, open(path, "wb") as dst:
        dst.write(struct.pack("<Q", len(text)) + text)
        for name in names:
            begin, end = header[name]["data_offsets"]
            src.seek(data_start + begin)
            dst.write(src.read(end - begin))
    return offset


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--shards", type=int, default=3)
    args = parser.parse_args()
    source = os.path.join(args.src, "model.safetensors")
    header, data_start = read_header(source)
    names = sorted((n for n in header if n != "__metadata__"), key=lambda n: header[n]["data_offsets"][0])
    if args.shards < 2 or args.shards > len(names):
        parser.error(f"--shards must be between 2 and the tensor count {len(names)}, got {args.shards}")
    os.makedirs(args.dst, exist_ok=False)
    for entry in os.listdir(args.src):
        if entry != "model.safetensors" and os.path.isfile(os.path.join(args.src, entry)):
            shutil.copyfile(os.path.join(args.src, entry), os.path.join(args.dst, entry))
    weight_map, total = {}, 0
    for i in range(args.shards):
        part = names[i * len(names) // args.shards:(i + 1) * len(names) // args.shards]
        file = f"model-{i + 1:05d}-of-{args.shards:05d}.safetensors"
        total += write_shard(os.path.join(args.dst, file), source, data_start, part, header)
        weight_map.update({name: file for name in part})
    with open(os.path.join(args.dst, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


if __name__ == "__main__":
    main()
