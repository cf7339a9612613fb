"""Runs exported networks in PyTorch, as a user would, and writes what came out.

    python scripts/torch_export_check.py DIR [DIR ...]

Each DIR holds an export (model.py, model.safetensors) and input.safetensors (tensor `input`).
For each, the script imports model.py, calls build(), loads the weights with
load_state_dict(strict=True), checks the state dict against model.py's STATE_DICT table, runs
the input in eval mode and writes DIR/output.json: the output, its shape, the state dict's
names, shapes and dtypes, and the torch version. The trainer's `export` test runs it (see
docs/EXPORT.md); it needs only torch. The weights are read with safetensors.torch.load_file
when the `safetensors` package is installed, else with the small reader below (the format: an
8-byte little-endian header length, a JSON header, the raw tensor data).
"""

import importlib.util
import json
import pathlib
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "I32": torch.int32}


def read_safetensors(path):
    """The tensors of a safetensors file, by name."""
    data = pathlib.Path(path).read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    body = bytearray(data[8 + size :])
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype, chunk = DTYPES[info["dtype"]], body[start:end]
        flat = torch.frombuffer(chunk, dtype=dtype) if chunk else torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(info["shape"]).clone()
    return tensors


def load_file(path):
    """safetensors.torch.load_file where installed, else read_safetensors."""
    try:
        import safetensors.torch
    except ImportError:
        return read_safetensors(path), "own reader"
    return safetensors.torch.load_file(str(path)), "safetensors " + safetensors.__version__


def check(directory):
    directory = pathlib.Path(directory)
    spec = importlib.util.spec_from_file_location(f"export_{directory.name}", directory / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.build()
    weights, reader = load_file(directory / "model.safetensors")
    model.load_state_dict(weights, strict=True)
    state = model.state_dict()
    declared = {name: tuple(shape) for name, shape in module.STATE_DICT.items()}
    actual = {name: tuple(t.shape) for name, t in state.items()}
    if declared != actual or list(declared) != list(actual):
        raise SystemExit(f"{directory}: STATE_DICT differs from state_dict():\n{declared}\n{actual}")
    model.eval()
    x = read_safetensors(directory / "input.safetensors")["input"]
    with torch.no_grad():
        y = model(x)
    result = {
        "torch": torch.__version__,
        "reader": reader,
        "output": [float(v) for v in y.flatten()],
        "output_shape": list(y.shape),
        "state_dict": [[name, list(t.shape), str(t.dtype).removeprefix("torch.")] for name, t in state.items()],
    }
    (directory / "output.json").write_text(json.dumps(result))
    print(f"{directory.name}: output {list(y.shape)}, {len(state)} tensors ({reader})")


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    torch.manual_seed(0)
    for directory in sys.argv[1:]:
        check(directory)


if __name__ == "__main__":
    main()
