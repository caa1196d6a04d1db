"""Model I/O: every format loads, matches an independent implementation, and round-trips bit-identically.

Independent references written here: a NumPy 0.5.x WaveNet (dilated convolutions read straight off
the file's weight list), a NumPy LSTM loop (Proteus and NAM layouts), and neural-amp-modeler's own
models for the files it reads (0.7 WaveNet, NAM LSTM).
"""

import copy
import json
import math
import warnings

import numpy as np
import pytest
import torch

from aaexp.aa.models import AmpModel, ModelFileError, SampleRateWarning, export_model, load_model
from aaexp.core.errors import AaexpError

REAL = ["jhm8_tcn_teacher.nam", "jhm8_tcn_student.nam", "jhm8_lstm_teacher.json", "jhm8_lstm_student.json"]


# ---------------------------------------------------------------- independent NumPy references
def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


_ACT = {"Tanh": np.tanh, "ReLU": lambda v: np.maximum(v, 0.0), "Sigmoid": _sigmoid}


def numpy_legacy_wavenet(doc: dict, x: np.ndarray) -> np.ndarray:
    """0.5.x WaveNet from the file's weight list, zero history: x[T] -> y[T] (float64)."""
    cfg, w = doc["config"], np.asarray(doc["weights"], dtype=np.float64)
    pos = 0

    def take(*shape):
        nonlocal pos
        n = int(np.prod(shape))
        pos += n
        return w[pos - n:pos].reshape(shape)

    rf = 1 + sum((lc["kernel_size"] - 1) * sum(lc["dilations"]) for lc in cfg["layers"])
    cond = np.concatenate([np.zeros(rf - 1), x])[None]          # [1 x L]
    y, head = cond, None
    for lc in cfg["layers"]:
        c, k, gated = lc["channels"], lc["kernel_size"], lc.get("gated", True)
        act, mid = _ACT[lc.get("activation", "Tanh")], (2 if gated else 1) * lc["channels"]
        z = take(c, lc["input_size"]) @ y                        # rechannel, no bias
        for d in lc["dilations"]:
            wc, bc = take(mid, c, k), take(mid)
            wm = take(mid, lc["condition_size"])
            w1, b1 = take(c, c), take(c)
            n = z.shape[1] - (k - 1) * d
            a = sum(wc[:, :, j] @ z[:, j * d:j * d + n] for j in range(k)) + bc[:, None] + wm @ cond[:, -n:]
            post = act(a[:c]) * _sigmoid(a[c:]) if gated else act(a)
            z = z[:, -n:] + w1 @ post + b1[:, None]
            head = post if head is None else head[:, -n:] + post
        wh = take(lc["head_size"], c)
        head = wh @ head + (take(lc["head_size"])[:, None] if lc.get("head_bias", True) else 0.0)
        y = z
    head = w[-1] * head                                          # head scale: the last weight
    if cfg.get("head"):
        h = cfg["head"]
        for i in range(h["num_layers"]):
            cout = h["out_channels"] if i == h["num_layers"] - 1 else h["channels"]
            head = _ACT[h["activation"]](head)
            head = take(cout, head.shape[0]) @ head + take(cout)[:, None]
    assert pos == len(w) - 1, "every weight but the head scale consumed"
    return head[0]


def numpy_lstm(w_ih, w_hh, b, lin_w, lin_b, x, h0=None, c0=None):
    """One-layer LSTM (gates i, f, g, o) then a linear read-out, as a plain loop: x[T] -> y[T]."""
    hsz = w_hh.shape[1]
    h = np.zeros(hsz) if h0 is None else h0.copy()
    c = np.zeros(hsz) if c0 is None else c0.copy()
    out = np.empty(len(x))
    for t, xt in enumerate(x):
        g = w_ih[:, 0] * xt + w_hh @ h + b
        i, f, gg, o = _sigmoid(g[:hsz]), _sigmoid(g[hsz:2 * hsz]), np.tanh(g[2 * hsz:3 * hsz]), _sigmoid(g[3 * hsz:])
        c = f * c + i * gg
        h = o * np.tanh(c)
        out[t] = lin_w @ h + lin_b
    return out


# ---------------------------------------------------------------- files made here
def _write(path, doc):
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def nam_files(tmp_path_factory):
    """Files written by neural-amp-modeler 0.13 itself (format 0.7.0) plus a synthetic gated 0.5.x WaveNet."""
    from nam.models import LSTM, WaveNet

    d = tmp_path_factory.mktemp("nam")
    torch.manual_seed(0)
    # nam's exporter measures loudness/gain metadata by running the model on seconds of audio:
    # irrelevant to the format and slow on a shared CPU, so fixed values stand in for them here
    from nam.models.base import BaseNet
    monkey = pytest.MonkeyPatch()
    monkey.setattr(BaseNet, "_metadata_loudness", lambda self, gain=1.0, db=True: -18.0)
    monkey.setattr(BaseNet, "_metadata_gain", lambda self: 0.5)
    common = {"condition_size": 1, "kernel_size": 3, "activation": "Tanh"}
    wn = WaveNet.init_from_config({"layers_configs": [
        {"input_size": 1, "channels": 6, "head": {"out_channels": 3, "kernel_size": 1, "bias": False}, "dilations": [1, 2, 4], **common},
        {"input_size": 6, "channels": 3, "head": {"out_channels": 1, "kernel_size": 1, "bias": True}, "dilations": [8, 16], **common},
    ], "head": None, "head_scale": 0.02, "sample_rate": 48000})
    wn.export(d, basename="wavenet07")
    lstm = LSTM(hidden_size=5, num_layers=2, sample_rate=48000)
    lstm.export(d, basename="lstm07")
    monkey.undo()

    rng = np.random.default_rng(1)
    layers = [{"input_size": 1, "condition_size": 1, "head_size": 3, "channels": 4, "kernel_size": 2,
               "dilations": [1, 3], "activation": "Tanh", "gated": True, "head_bias": True},
              {"input_size": 4, "condition_size": 1, "head_size": 2, "channels": 3, "kernel_size": 2,
               "dilations": [2, 5], "activation": "Tanh", "gated": False, "head_bias": True}]
    n = 0
    for lc in layers:
        c, mid = lc["channels"], (2 if lc["gated"] else 1) * lc["channels"]
        n += c * lc["input_size"] + len(lc["dilations"]) * (mid * c * 2 + mid + mid + c * c + c) + lc["head_size"] * c + lc["head_size"]
    n += (4 * 2 + 4) + (1 * 4 + 1)  # head: 2 -> 4 -> 1 (ReLU)
    legacy = {"version": "0.5.2", "metadata": {"name": "synthetic"}, "architecture": "WaveNet",
              "config": {"layers": layers, "head": {"channels": 4, "activation": "ReLU", "num_layers": 2, "out_channels": 1},
                         "head_scale": 0.5}, "weights": (0.5 * rng.standard_normal(n)).tolist() + [0.5], "sample_rate": 44100}
    _write(d / "legacy_gated_head.nam", legacy)
    return {"wavenet07": (d / "wavenet07.nam", wn), "lstm07": (d / "lstm07.nam", lstm), "legacy": (d / "legacy_gated_head.nam", None)}


def _signal(n=3000, b=1, seed=0, level=0.3):
    g = torch.Generator().manual_seed(seed)
    return level * torch.randn(b, n, generator=g, dtype=torch.float64)


def _all_paths(shared_data, nam_files):
    return [shared_data / "nam" / f for f in REAL] + [p for p, _ in nam_files.values()]


# ---------------------------------------------------------------- agreement with independent implementations
def test_legacy_wavenet_matches_numpy_reference(shared_data, nam_files):
    for path in [shared_data / "nam" / "jhm8_tcn_teacher.nam", nam_files["legacy"][0]]:
        doc = json.loads(path.read_text())
        x = _signal(2500, seed=3)
        with torch.no_grad():
            ours = load_model(path)(x)[0].numpy()
        ref = numpy_legacy_wavenet(doc, x[0].numpy())
        assert np.max(np.abs(ours - ref)) <= 1e-12 * max(1.0, np.max(np.abs(ref))), path.name


def test_legacy_head_scale_comes_from_the_weights(shared_data):
    doc = json.loads((shared_data / "nam" / "jhm8_tcn_teacher.nam").read_text())
    m = load_model(shared_data / "nam" / "jhm8_tcn_teacher.nam")
    assert doc["config"]["head_scale"] == 0.02 and m.core.head_scale == doc["weights"][-1] == float(np.float32(0.02))


def test_current_format_wavenet_matches_nam(nam_files):
    path, nam_model = nam_files["wavenet07"]
    assert json.loads(path.read_text())["version"] == "0.7.0"
    x = _signal(1500, b=2, seed=4)
    with torch.no_grad():
        ref = nam_model.eval()(x.float(), pad_start=True).double()
        ours = load_model(path)(x)
    assert torch.allclose(ours, ref, rtol=0, atol=2e-6 * float(ref.abs().max()))


def test_proteus_lstm_matches_numpy_loop(shared_data):
    path = shared_data / "nam" / "jhm8_lstm_teacher.json"
    sd = json.loads(path.read_text())["state_dict"]
    a = {k: np.asarray(v, dtype=np.float64) for k, v in sd.items()}
    x = _signal(1500, seed=5)[0]
    ref = numpy_lstm(a["rec.weight_ih_l0"], a["rec.weight_hh_l0"], a["rec.bias_ih_l0"] + a["rec.bias_hh_l0"],
                     a["lin.weight"][0], a["lin.bias"][0], x.numpy()) + x.numpy()   # skip = 1: input added
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleRateWarning)
        m = load_model(path)
    with torch.no_grad():
        assert np.max(np.abs(m(x).numpy() - ref)) < 1e-12


def test_nam_lstm_matches_numpy_layout_and_nam(nam_files):
    """Two-layer NAM LSTM: our model vs a NumPy loop over the documented weight layout, and vs nam's own loader."""
    from nam.models import init_from_nam

    path, _ = nam_files["lstm07"]
    doc = json.loads(path.read_text())
    w, hsz, pos = np.asarray(doc["weights"]), doc["config"]["hidden_size"], 0

    def take(n):
        nonlocal pos
        pos += n
        return w[pos - n:pos]

    x = _signal(800, seed=6)[0].numpy()
    layers, inp = [], 1
    for _ in range(doc["config"]["num_layers"]):
        big = take(4 * hsz * (inp + hsz)).reshape(4 * hsz, inp + hsz)
        layers.append((big[:, :inp], big[:, inp:], take(4 * hsz), take(hsz), take(hsz)))
        inp = hsz
    lin_w, lin_b = take(hsz), take(1)[0]
    assert pos == len(w)
    # layer 1 feeds its hidden states to layer 2: run the loop per layer on vector inputs
    seq = x[:, None]
    for w_ih, w_hh, b, h0, c0 in layers:
        hs, h, c = [], h0.copy(), c0.copy()
        for xt in seq:
            g = w_ih @ xt + w_hh @ h + b
            i, f, gg, o = _sigmoid(g[:hsz]), _sigmoid(g[hsz:2 * hsz]), np.tanh(g[2 * hsz:3 * hsz]), _sigmoid(g[3 * hsz:])
            c = f * c + i * gg
            h = o * np.tanh(c)
            hs.append(h)
        seq = np.array(hs)
    ref = seq @ lin_w + lin_b
    m = load_model(path)
    with torch.no_grad():
        ours = m(torch.from_numpy(x)).numpy()
        theirs = init_from_nam(doc).eval()(torch.from_numpy(x).float()[None])[0].double().numpy()
    assert np.max(np.abs(ours - ref)) < 1e-12
    assert np.max(np.abs(ours - theirs)) < 1e-5


# ---------------------------------------------------------------- round trips
def test_round_trip_is_bit_identical_for_every_format(shared_data, nam_files, tmp_path):
    for path in _all_paths(shared_data, nam_files):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SampleRateWarning)
            m = load_model(path)
            out = export_model(m, tmp_path / f"rt_{path.stem}", note="round trip")
            m2 = load_model(out)
        x = _signal(m.receptive_field + 300 if m.architecture == "WaveNet" else 1000, b=2, seed=7)
        with torch.no_grad():
            assert torch.equal(m(x), m2(x)), path.name
        a, b = json.loads(path.read_text()), json.loads(out.read_text())
        key = "weights" if "weights" in a else "state_dict"
        assert a[key] == b[key], path.name          # the numbers themselves, exactly
        assert out.suffix == path.suffix
        assert a.get("version") == b.get("version") and a.get("config", a.get("model_data")) == b.get("config", b.get("model_data"))
        assert b["metadata"]["aaexp"][-1]["note"] == "round trip"
        assert {k: v for k, v in b["metadata"].items() if k != "aaexp"} == a.get("metadata", {})
        assert ("sample_rate" in a) == ("sample_rate" in b)


def test_fine_tuned_student_round_trips_exactly(shared_data, nam_files, tmp_path):
    """Changed float64 weights (a fine-tune) survive export -> load bit for bit, in the source's version."""
    g = torch.Generator().manual_seed(8)
    for path in [shared_data / "nam" / "jhm8_tcn_student.nam", shared_data / "nam" / "jhm8_lstm_teacher.json",
                 nam_files["lstm07"][0], nam_files["legacy"][0]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SampleRateWarning)
            teacher = load_model(path)
            student = copy.deepcopy(teacher)
            with torch.no_grad():
                for p in student.parameters():
                    if p.requires_grad:
                        p.add_(1e-3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
            out = export_model(student, tmp_path / f"student_{path.stem}{student.file_suffix}", note="fine-tuned")
            again = load_model(out)
        x = _signal(student.receptive_field + 200 if student.architecture == "WaveNet" else 1000, seed=9)
        with torch.no_grad():
            assert torch.equal(student(x), again(x)), path.name
            assert not torch.equal(student(x), teacher(x))  # deepcopy is independent of the teacher
        assert json.loads(out.read_text()).get("version") == json.loads(path.read_text()).get("version")


def test_export_fixes_suffix_and_never_writes_nan(shared_data, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleRateWarning)
        m = load_model(shared_data / "nam" / "jhm8_lstm_teacher.json")
    good = export_model(m, tmp_path / "student.nam")
    assert good == tmp_path / "student.json" and good.is_file()
    before = good.read_bytes()
    with torch.no_grad():
        next(m.parameters())[0, 0] = float("nan")
    with pytest.raises(ModelFileError, match="NaN"):
        export_model(m, good)
    assert good.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["student.json"]


# ---------------------------------------------------------------- receptive field, causality, chunks
def test_standard_wavenet_receptive_field_is_4093(shared_data):
    doc = json.loads((shared_data / "nam" / "jhm8_tcn_teacher.nam").read_text())
    formula = 1 + sum((lc["kernel_size"] - 1) * d for lc in doc["config"]["layers"] for d in lc["dilations"])
    m = load_model(shared_data / "nam" / "jhm8_tcn_teacher.nam")
    assert m.receptive_field == formula == 4093
    # y[t] depends on x[t - R + 1 .. t] and on nothing earlier (and nothing later: causal)
    r, n = m.receptive_field, m.receptive_field + 20
    x = _signal(n, seed=10)
    with torch.no_grad():
        y = m(x)
        for at, changes in [(n - r, True), (n - r - 1, False)]:
            xp = x.clone()
            xp[0, at] += 0.5
            yp = m(xp)
            assert bool(yp[0, -1] != y[0, -1]) == changes
            assert torch.equal(yp[0, :at], y[0, :at])


def test_forward_chunk_continues_exactly(shared_data, nam_files):
    for path in [nam_files["wavenet07"][0], nam_files["legacy"][0], shared_data / "nam" / "jhm8_lstm_teacher.json", nam_files["lstm07"][0]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SampleRateWarning)
            m = load_model(path)
        x = _signal(1200, b=2, seed=11)
        with torch.no_grad():
            full = m(x)
            state, parts = None, []
            for piece in torch.split(x, [20, 580, 600], dim=1):  # the first shorter than the receptive field
                y, state = m.forward_chunk(piece, state)
                parts.append(y)
        assert torch.allclose(torch.cat(parts, dim=1), full, rtol=0, atol=1e-13), path.name


# ---------------------------------------------------------------- dtype, batch, device, gradients
def test_float32_batched_and_1d(shared_data, nam_files):
    for path in [nam_files["wavenet07"][0], nam_files["lstm07"][0]]:
        m64 = load_model(path)
        m32 = load_model(path, dtype=torch.float32)
        assert m64.dtype == torch.float64 and m32.dtype == torch.float32 and isinstance(m64, AmpModel)
        x = _signal(1500, b=3, seed=12)
        with torch.no_grad():
            y64, y32 = m64(x), m32(x.float())
            assert y64.shape == x.shape and y32.dtype == torch.float32
            assert float((y32.double() - y64).abs().max()) < 1e-4 * float(y64.abs().max())
            for i in range(3):  # batch items are independent
                assert torch.allclose(m64(x[i]), y64[i], rtol=0, atol=1e-13)
        with pytest.raises(TypeError, match="float32"):
            m64(x.float())
        assert m64.to(torch.float32).dtype == torch.float32


def test_gradients_reach_trainable_weights_only(nam_files, shared_data):
    m = load_model(nam_files["lstm07"][0])
    m.train()
    m(_signal(300, b=2)).pow(2).mean().backward()
    assert m.core.lstm.bias_hh_l0.grad is None and not m.core.lstm.bias_hh_l0.requires_grad
    assert m.core.lstm.weight_hh_l0.grad is not None and m.core.h0.grad is not None
    t = load_model(nam_files["wavenet07"][0])
    t(_signal(t.receptive_field + 50)).pow(2).mean().backward()
    # only the last layer's 1x1 (its residual output feeds nothing) cannot influence the output
    no_grad = {n for n, p in t.named_parameters() if p.requires_grad and p.grad is None}
    assert no_grad == {"core.nam._net._layer_arrays.1._layers.1._layer1x1.weight",
                       "core.nam._net._layer_arrays.1._layers.1._layer1x1.bias"}


# ---------------------------------------------------------------- sample rate
def test_sample_rate_file_then_default_then_44k1(nam_files, tmp_path):
    doc = json.loads(nam_files["wavenet07"][0].read_text())
    assert load_model(nam_files["wavenet07"][0]).sample_rate == 48000.0
    with pytest.warns(SampleRateWarning, match="48000"):
        assert load_model(nam_files["wavenet07"][0], default_sample_rate=44100).sample_rate == 48000.0
    no_rate = _write(tmp_path / "no_rate.nam", {k: v for k, v in doc.items() if k != "sample_rate"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_model(no_rate, default_sample_rate=96000).sample_rate == 96000.0
    with pytest.warns(SampleRateWarning, match="44100"):
        m = load_model(no_rate)
    assert m.sample_rate == 44100.0
    assert "sample_rate" not in json.loads(export_model(m, tmp_path / "out.nam").read_text())


# ---------------------------------------------------------------- bad input
def _bad_files(tmp_path, shared_data, nam_files):
    tcn = json.loads((shared_data / "nam" / "jhm8_tcn_teacher.nam").read_text())
    lstm = json.loads((shared_data / "nam" / "jhm8_lstm_teacher.json").read_text())
    nam_lstm = json.loads(nam_files["lstm07"][0].read_text())
    nan = json.dumps({**tcn, "weights": tcn["weights"][:5] + [float("nan")] + tcn["weights"][6:]})
    (tmp_path / "binary.nam").write_bytes(bytes(range(256)))
    (tmp_path / "text.nam").write_text("this is not json")
    (tmp_path / "nan.nam").write_text(nan)  # json.dumps writes the NaN token, which json.loads accepts
    bad_shape = copy.deepcopy(lstm)
    bad_shape["state_dict"]["rec.weight_hh_l0"] = [row[:-1] for row in lstm["state_dict"]["rec.weight_hh_l0"]]
    nan_lstm = copy.deepcopy(lstm)
    nan_lstm["state_dict"]["lin.bias"] = [float("nan")]
    extra_key = copy.deepcopy(tcn)
    extra_key["config"]["layers"][0]["mystery"] = 1
    return [
        (tmp_path / "missing.nam", "no such file"),
        (tmp_path, "not a regular file"),
        (tmp_path / "binary.nam", "not JSON"),
        (tmp_path / "text.nam", "not JSON"),
        (_write(tmp_path / "list.nam", [1, 2]), "not a model file"),
        (_write(tmp_path / "empty.nam", {}), "no 'architecture' or 'model_data'"),
        (_write(tmp_path / "convnet.nam", {**tcn, "architecture": "ConvNet"}), "unknown architecture 'ConvNet'"),
        (_write(tmp_path / "foo.json", {**lstm, "model_data": {**lstm["model_data"], "model": "Foo"}}), "unknown architecture 'Foo'"),
        (_write(tmp_path / "short.nam", {**tcn, "weights": tcn["weights"][:-1]}),
         "weight count 13800 does not match the config, which needs 13801"),
        (_write(tmp_path / "long.nam", {**tcn, "weights": tcn["weights"] + [0.0]}), "weight count 13802"),
        (_write(tmp_path / "lstm_short.nam", {**nam_lstm, "weights": nam_lstm["weights"][:-2]}), "does not match the config"),
        (_write(tmp_path / "shape.json", bad_shape), "has shape (160, 39)"),
        (tmp_path / "nan.nam", "NaN/Inf weights (first at index 5)"),
        (_write(tmp_path / "nan.json", nan_lstm), "NaN/Inf"),
        (_write(tmp_path / "word.nam", {**tcn, "weights": ["x"] + tcn["weights"][1:]}), "not a number"),
        (_write(tmp_path / "extra.nam", extra_key), "unknown keys ['mystery']"),
        (_write(tmp_path / "rate.nam", {**tcn, "sample_rate": "fast"}), "sample_rate 'fast'"),
    ]


def test_bad_files_give_one_line_naming_file_and_problem(tmp_path, shared_data, nam_files):
    for path, problem in _bad_files(tmp_path, shared_data, nam_files):
        with pytest.raises(ModelFileError) as info:
            load_model(path)
        msg = str(info.value)
        assert "\n" not in msg and msg.startswith(str(path)) and problem in msg, msg
        assert isinstance(info.value, AaexpError) and info.value.exit_code == 2


def test_lstm_warmup_suggestion_is_configurable(shared_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleRateWarning)
        m = load_model(shared_data / "nam" / "jhm8_lstm_teacher.json", lstm_warmup_s=0.25)
    assert m.architecture == "LSTM" and m.receptive_field == round(0.25 * 44100)
    assert math.isclose(m.sample_rate, 44100.0)
