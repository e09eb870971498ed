"""A minimal safetensors reader and writer (the format: an 8-byte little-endian header length, a JSON header of
{name: {dtype, shape, data_offsets}}, then raw little-endian tensor bytes). Written here because Debian has no
`safetensors` package; it follows the format's published description, not our C# reader."""

import json
import struct

import numpy as np
import torch

_NUMPY = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64, "BF16": np.int16}
_SIZE = {"F32": 4, "F16": 2, "BF16": 2, "I32": 4, "I64": 8}


def read(path):
    """Returns ({name: torch tensor}, metadata). BF16 comes back as torch.bfloat16, the rest as stored."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype=_NUMPY[entry["dtype"]]).reshape(entry["shape"]).copy()
        tensor = torch.from_numpy(array)
        if entry["dtype"] == "BF16":
            tensor = tensor.view(torch.bfloat16)
        tensors[name] = tensor
    return tensors, metadata


def write(path, tensors, metadata=None, dtype="F32"):
    """Writes {name: tensor}; float tensors are stored as `dtype` (F32, F16 or BF16), integer ones as I64."""
    header = {}
    blobs = []
    offset = 0
    for name, tensor in tensors.items():
        tensor = tensor.detach().cpu().contiguous()
        if tensor.dtype in (torch.int32, torch.int64):
            stored, raw = "I64", tensor.to(torch.int64).numpy().tobytes()
        elif dtype == "BF16":
            stored, raw = "BF16", tensor.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
        elif dtype == "F16":
            stored, raw = "F16", tensor.to(torch.float16).numpy().tobytes()
        else:
            stored, raw = "F32", tensor.to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": stored, "shape": list(tensor.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    encoded = json.dumps(header).encode("utf-8")
    encoded += b" " * ((8 - len(encoded) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for blob in blobs:
            f.write(blob)
