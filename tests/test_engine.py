"""The C engine (harlite.engine) against the TFLite Micro wheel: bit for bit on real windows of the released
model, on random and saturating inputs of it and of tiny freshly trained models of both architectures,
its integer sigmoid/tanh on every int16 input, warning-free under gcc and arm-none-eabi-gcc, clean under
ASan/UBSan, and the Cortex-M4 build under QEMU (DSP and portable paths) equal to the host, within the
instruction, flash and RAM budgets.

The cross toolchain and QEMU come from .ci/apt-packages.txt (scripts/test.sh installs them); without them
those tests fail.
"""

from __future__ import annotations

import ctypes
import math
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures_bundle import build_tiny_bundle, bundle_windows
from tools import tool

from harlite.board.engine_bench import BENCH_C, footprint, run_cortex_m4
from harlite.board.toolchain import CORTEX_M4, WARNINGS
from harlite.bundle.loader import load_bundle
from harlite.core.frontend import quantize
from harlite.engine import KERNELS_DIR, generate
from harlite.engine.fixed_point import sigmoid_table
from harlite.engine.generate import HEADER, KERNEL_FILES, MODEL_C
from harlite.engine.tflite_model import read_model
from harlite.errors import BundleError
from harlite.io.files import MARKER
from harlite.run.host_engine import HostEngine, build_library

RELEASED = Path(__file__).resolve().parents[1] / "models" / "cnn_lstm"
REAL_WINDOWS = 300
RANDOM_WINDOWS = 120
MAX_INSTRUCTIONS = 1_500_000  # per window of the released model on the Cortex-M4 (issue 14)
MAX_ENGINE_FLASH = 32 * 1024  # engine + weights, so that the whole image stays within 40 KiB
MAX_SCRATCH, MAX_ENGINE_RAM = 3 * 1024, 4 * 1024  # the scratch buffer; static RAM + stack of one window
SANITIZERS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


class TFLM:
    """The tflite-micro wheel's interpreter, reset before every window (as the board does)."""

    def __init__(self, model: bytes) -> None:
        from tflite_micro.python.tflite_micro import runtime

        self.it = runtime.Interpreter.from_bytes(model, arena_size=10 * len(model))

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        out = []
        for q in windows:
            self.it.reset()
            self.it.set_input(q[None], 0)
            self.it.invoke()
            out.append(np.array(self.it.get_output(0)[0]))
        return np.array(out, np.int8)


def released_model() -> bytes:
    return (RELEASED / "model_int8.tflite").read_bytes()


def stress_windows(window: int, channels: int, n: int, seed: int = 0) -> np.ndarray:
    """Saturating extremes (all -128, all 127, alternating both ways, one spike), then uniform random
    int8 and random walks of several widths."""
    rng = np.random.default_rng(seed)
    checker = np.where(np.indices((window, channels)).sum(0) % 2 == 0, 127, -128)
    spike = np.full((window, channels), -128)
    spike[window // 2] = 127
    extremes = [np.full((window, channels), -128), np.full((window, channels), 127), checker, -1 - checker, spike]
    uniform = rng.integers(-128, 128, (n // 2, window, channels))
    walks = np.cumsum(rng.normal(0, rng.uniform(1, 12, (n - n // 2, 1, 1)), (n - n // 2, window, channels)), axis=1)
    return np.clip(np.concatenate([extremes, uniform, walks.round()]), -128, 127).astype(np.int8)


def engine_outputs(engine: HostEngine, windows: np.ndarray) -> np.ndarray:
    return np.array([engine.invoke_int8(q) for q in windows], np.int8)


@pytest.fixture(scope="module")
def tiny_lstm(tmp_path_factory: pytest.TempPathFactory, _session_cache: Path) -> Path:
    """A tiny bundle of the ``lstm`` architecture (two stacked LSTM(8)), one epoch on 300 windows."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARLITE_CACHE", str(_session_cache))
        root = tmp_path_factory.mktemp("tiny_lstm")
        return build_tiny_bundle(str(root), "lstm", (("units", 8),), n_windows=300, epochs=1, calibration=100)


@pytest.fixture(scope="module", params=["released", "tiny_cnn_lstm", "tiny_lstm"])
def model(request: pytest.FixtureRequest) -> bytes:
    if request.param == "released":
        return released_model()
    bundle = request.getfixturevalue("tiny_bundle" if request.param == "tiny_cnn_lstm" else "tiny_lstm")
    return (bundle / "model_int8.tflite").read_bytes()


def test_released_model_equals_tflm_on_real_windows(_session_cache: Path) -> None:
    manifest = load_bundle(RELEASED).manifest
    windows = bundle_windows(RELEASED, REAL_WINDOWS, _session_cache)
    quant = manifest["quantization"]["input"]
    norm = manifest["normalization"]
    q = quantize(windows.X, np.asarray(norm["mean"]), np.asarray(norm["std"]), quant["scale"], quant["zero_point"])
    want = TFLM(released_model())(q)
    got = engine_outputs(HostEngine(released_model(), cache=_session_cache), q)
    lsb = np.abs(got.astype(int) - want.astype(int))
    print(f"\nreleased model, {len(q)} real test windows of subjects {sorted(set(windows.group.tolist()))}: "
          f"{int((lsb > 0).sum())} of {lsb.size} scores differ (max {lsb.max()} LSB); "
          f"top-1 {np.mean(got.argmax(1) == windows.y):.4f}")  # fmt: skip
    assert len(set(windows.group.tolist())) == 9 and len(set(want.argmax(1).tolist())) == 6
    np.testing.assert_array_equal(got, want)


def test_equals_tflm_on_random_and_saturating_inputs(model: bytes, _session_cache: Path) -> None:
    engine = HostEngine(model, cache=_session_cache)
    windows = stress_windows(engine.window, engine.channels, RANDOM_WINDOWS)
    want = TFLM(model)(windows)
    got = engine_outputs(engine, windows)
    assert len({tuple(w) for w in want}) > len(windows) // 4  # the inputs reach many different outputs
    np.testing.assert_array_equal(got, want)
    print(f"\n{len(windows)} windows, ops {engine.engine.ops}: identical; scratch {engine.engine.scratch_bytes} B")


def test_every_window_starts_from_zero_state(_session_cache: Path) -> None:
    """The LSTM state does not leak from one invoke into the next (TFLM needs reset() for that)."""
    engine = HostEngine(released_model(), cache=_session_cache)
    a, b = stress_windows(engine.window, engine.channels, 10, seed=3)[5:7]
    first = engine.invoke_int8(a)
    engine.invoke_int8(b)
    np.testing.assert_array_equal(engine.invoke_int8(a), first)


def one_op_model(op: str, input_scale: float) -> bytes:
    """A .tflite of one int16 LOGISTIC or TANH op over 65536 values (output scale 2^-15)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    def tensor(index: int, scale: float) -> object:
        t = schema.TensorT()
        t.shape, t.type, t.buffer, t.name = [65536], schema.TensorType.INT16, 0, f"t{index}".encode()
        t.quantization = schema.QuantizationParametersT()
        t.quantization.scale, t.quantization.zeroPoint = [scale], [0]
        return t

    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = getattr(schema.BuiltinOperator, op)
    code.version = 1
    operator = schema.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = 0, [0], [1]
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = (
        [tensor(0, input_scale), tensor(1, 2**-15)],
        [0],
        [1],
        [operator],
    )
    m = schema.ModelT()
    m.version, m.subgraphs, m.operatorCodes, m.buffers = 3, [graph], [code], [schema.BufferT()]
    return packed(m)


def packed(m: Any) -> bytes:
    """A tflite schema ModelT as .tflite bytes."""
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.mark.parametrize(("op", "function", "input_scale", "left_shift"),
                         [("LOGISTIC", "hl_sigmoid16", 2**-12, 0), ("TANH", "hl_tanh16", 2**-12, 0),
                          ("TANH", "hl_tanh16", 2**-11, 1)])  # fmt: skip
def test_sigmoid_and_tanh_equal_tflm_on_every_int16(op: str, function: str, input_scale: float, left_shift: int,
                                                    _session_cache: Path) -> None:  # fmt: skip
    """The table, computed from its definition (generate.sigmoid_table), and the interpolation give
    TFLM's int16 logistic/tanh for all 65536 inputs, at the scales of the LSTM gates (Q3.12) and of a
    cell state of scale 2^-11 (as the released model's)."""
    from tflite_micro.python.tflite_micro import runtime

    x = np.arange(-32768, 32768, dtype=np.int16)
    it = runtime.Interpreter.from_bytes(one_op_model(op, input_scale), arena_size=1 << 20)
    it.set_input(x, 0)
    it.invoke()
    want = np.array(it.get_output(0))
    files = {name: (KERNELS_DIR / name).read_text() for name in KERNEL_FILES}
    lib = ctypes.CDLL(str(build_library(files, cache=_session_cache)))
    fn = getattr(lib, function)
    fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_int16, ctypes.c_int32, ctypes.c_int32], ctypes.c_int16
    table = np.asarray(sigmoid_table(), np.uint16)
    got = np.array([fn(table.ctypes.data, int(v), 0, left_shift) for v in x], np.int16)
    np.testing.assert_array_equal(got, want)


def test_generated_files_carry_the_marker_and_only_numbers(tmp_path: Path) -> None:
    engine = generate(released_model(), comment='cnn_lstm */ "evil"\n#include <x>')
    assert sorted(engine.files) == sorted([HEADER, MODEL_C, *KERNEL_FILES])
    for name, text in engine.files.items():
        assert MARKER in text.splitlines()[0], name
        assert '*/ "evil' not in text and "#include <x>" not in text
    model_c = engine.files[MODEL_C]
    strings = re.findall(r'"[^"\n]*"', model_c)
    assert strings == ['"harlite_engine.h"', '"harlite_engine_kernels.h"'], strings
    assert engine.macs == load_bundle(RELEASED).manifest["model"]["macs_per_window"] == 706_800


def edited(model: bytes, edit: Callable[[Any], None]) -> bytes:
    """The model with ``edit`` applied to its object tree (tflite schema ModelT)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    edit(m)
    for code in m.operatorCodes:  # readers take the larger of the two codes
        code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    return packed(m)


def fc_model(scales: tuple[float, float, float], bias: np.ndarray, depth: int = 4) -> bytes:
    """A .tflite of one per-tensor int8 FULLY_CONNECTED (input [1, 1, depth], weights picking the first
    input, ``bias`` per output row) with input, weight and output ``scales``; zero points 0."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    rows = len(bias)
    weights = np.zeros((rows, depth), np.int8)
    weights[:, 0] = 1

    def tensor(shape: list[int], kind: int, scale: float, buffer: int) -> object:
        t = schema.TensorT()
        t.shape, t.type, t.buffer = shape, kind, buffer
        t.quantization = schema.QuantizationParametersT()
        t.quantization.scale, t.quantization.zeroPoint = [scale], [0]
        return t

    def buffer(data: bytes = b"") -> object:
        b = schema.BufferT()
        b.data = list(data) or None
        return b

    a, w, c = scales
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.FULLY_CONNECTED
    code.version = 1
    operator = schema.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = 0, [0, 1, 2], [3]
    operator.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
    operator.builtinOptions = schema.FullyConnectedOptionsT()
    graph = schema.SubGraphT()
    graph.tensors = [tensor([1, 1, depth], schema.TensorType.INT8, a, 0),
                     tensor([rows, depth], schema.TensorType.INT8, w, 1),
                     tensor([rows], schema.TensorType.INT32, float(np.float32(a) * np.float32(w)), 2),
                     tensor([1, rows], schema.TensorType.INT8, c, 0)]  # fmt: skip
    graph.inputs, graph.outputs, graph.operators = [0], [3], [operator]
    m = schema.ModelT()
    m.version, m.subgraphs, m.operatorCodes = 3, [graph], [code]
    m.buffers = [buffer(), buffer(weights.tobytes()), buffer(bias.astype("<i4").tobytes())]
    return packed(m)


def requantized(acc: int, real: float) -> int:
    """TFLite's MultiplyByQuantizedMultiplier of a positive accumulator by ``real`` < 1, its multiplier
    made by QuantizeMultiplier: a rounding high multiply by the Q0.31 mantissa, then a rounding shift."""
    mantissa, exponent = math.frexp(real)
    multiplier = math.floor(mantissa * 2**31 + 0.5)
    high = (acc * multiplier + 2**30) >> 31
    return (high + (1 << (-exponent - 1))) >> -exponent


def test_fully_connected_rescales_with_the_double_product_of_the_scales(_session_cache: Path) -> None:
    """The wheel requantizes a per-tensor FULLY_CONNECTED (and the LSTM's gate FCs) with input scale x
    weight scale in double, not the float32 product: accumulators on which the two multipliers round
    differently (a bundle's LSTM met one, 1 LSB off) come out as the wheel's."""
    a, w, c = (float(np.float32(v)) for v in (0.0078431317, 0.0070177843, 4.000123))
    single, double = float(np.float32(a) * np.float32(w)) / c, a * w / c
    ties = (round((k - 0.5) / double) + d for k in range(1, 128) for d in range(-2, 3))  # output k - 1/2
    accs = sorted({acc for acc in ties if requantized(acc, single) != requantized(acc, double)})
    assert len(accs) >= 6
    model = fc_model((a, w, c), np.array(accs[:32], np.int32))
    want = TFLM(model)(np.zeros((1, 1, 4), np.int8))[0]
    assert [int(v) for v in want] == [requantized(acc, double) for acc in accs[:32]]  # the wheel: double
    got = HostEngine(model, cache=_session_cache).invoke_int8(np.zeros((1, 4), np.int8))
    np.testing.assert_array_equal(got, want)


def lstm_gate_model(cell_gate_bias: np.ndarray, weight_scale: float) -> bytes:
    """The released model's LSTM alone, one step, its weights replaced: the cell gate's input FC picks
    the first input (scale ``weight_scale``) plus ``cell_gate_bias``, the input and output gates are
    saturated open, no recurrence; the hidden state at 2^-11 (one LSB of the cell state)."""
    tensors, ops, _, _, names = read_model(released_model())
    (lstm,) = [i for i, op in enumerate(ops) if names[op.code] == "UNIDIRECTIONAL_SEQUENCE_LSTM"]
    idx = [int(i) for i in ops[lstm].inputs]
    inp, out, units = idx[0], int(ops[lstm].outputs[0]), tensors[idx[1]].shape[0]
    in_scale = float(tensors[inp].scales[0])

    def edit(m: Any) -> None:
        graph = m.subgraphs[0]
        graph.operators, graph.inputs, graph.outputs = [graph.operators[lstm]], [inp], [out]
        for t in (inp, out):
            graph.tensors[t].shape = [1, 1, units]
        for t in (idx[18], out):
            graph.tensors[t].quantization.scale = [2.0**-11]
        graph.tensors[idx[3]].quantization.scale = [weight_scale]
        first = np.zeros((units, units), np.int8)
        first[:, 0] = 1
        for gate in range(1, 9):
            m.buffers[graph.tensors[idx[gate]].buffer].data = list(
                (first if gate == 3 else np.zeros_like(first)).tobytes()
            )
        # biases that saturate the input and output gates (Q3.12 values above 8: sigmoid 1)
        open_ = [40000 * 2**-12 / (in_scale * float(tensors[idx[g]].scales[0])) for g in (1, 4)]
        for gate, bias in ((12, open_[0]), (13, 0), (14, cell_gate_bias), (15, open_[1])):
            values = np.broadcast_to(np.int32(np.round(bias)), (units,)).astype("<i4")
            m.buffers[graph.tensors[idx[gate]].buffer].data = list(values.tobytes())

    return edited(released_model(), edit)


def test_lstm_gates_rescale_with_the_double_product_of_the_scales(_session_cache: Path) -> None:
    """The LSTM's gate FCs too: cell-gate values on which the float32 and the double product of the
    scales round apart (the bundle's case) reach the hidden state as the wheel's."""
    weight_scale = float(np.float32(2.6e-7))  # gate values of a few hundred LSB from accumulators of millions
    tensors, _, inputs, _, _ = read_model(lstm_gate_model(np.zeros(1), weight_scale))
    a = float(tensors[inputs[0]].scales[0])
    single, double = float(np.float32(a) * np.float32(weight_scale)) / 2**-12, a * weight_scale / 2**-12
    ties = (round((k - 0.5) / double) + d for k in range(1, 256) for d in range(-2, 3))
    units = tensors[inputs[0]].shape[2]
    accs = sorted({acc for acc in ties if requantized(acc, single) != requantized(acc, double)})[:units]
    assert len(accs) >= 16
    model = lstm_gate_model(np.array(accs + [0] * (units - len(accs))), weight_scale)
    x = np.full((1, 1, units), int(tensors[inputs[0]].zero_points[0]), np.int8)
    want = TFLM(model)(x)[0].reshape(-1)
    got = HostEngine(model, cache=_session_cache).invoke_int8(x[0]).reshape(-1)
    print(f"\n{len(accs)} cell-gate values at the corner; hidden state {want.tolist()}")
    np.testing.assert_array_equal(got, want)


def test_unsupported_models_are_clear_errors() -> None:
    with pytest.raises(BundleError, match="int8"):
        generate((RELEASED / "model_float32.tflite").read_bytes())
    with pytest.raises(BundleError, match="does not implement LOGISTIC"):
        generate(edited(released_model(), lambda m: setattr(m.operatorCodes[-1], "builtinCode", 14)))
    with pytest.raises(BundleError, match="fused activation 4"):  # TANH fused into a convolution
        generate(edited(released_model(), lambda m: setattr(m.subgraphs[0].operators[1].builtinOptions,
                                                            "fusedActivationFunction", 4)))  # fmt: skip
    with pytest.raises(BundleError, match="flatbuffer"):
        generate(b"not a model at all")


def compile_ok(cmd: list) -> str:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL, timeout=300)  # fmt: skip
    assert done.returncode == 0, f"{' '.join(map(str, cmd))}\n{done.stdout}{done.stderr}"
    return done.stdout


def write_engine(model: bytes, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in generate(model).files.items():
        (folder / name).write_text(text)
    return [folder / MODEL_C, folder / "harlite_engine_kernels.c"]


@pytest.mark.parametrize("compiler", ["gcc", "arm-none-eabi-gcc"])
def test_engine_compiles_without_warnings(model: bytes, compiler: str, tmp_path: Path) -> None:
    sources = write_engine(model, tmp_path)
    variants = [["-O2"]] if compiler == "gcc" else [["-Os", *CORTEX_M4], ["-Os", *CORTEX_M4, "-DHARLITE_ENGINE_PORTABLE"],
                                                    ["-O2", "-mcpu=cortex-m0plus", "-mthumb"]]  # fmt: skip
    for flags in variants:  # the bench driver is for the host and the Cortex-M4
        for source in [*sources, *([BENCH_C] if "-mcpu=cortex-m0plus" not in flags else [])]:
            compile_ok([tool(compiler), "-std=c99", *WARNINGS, *flags, f"-I{tmp_path}", "-c", source, "-o",
                        tmp_path / f"{source.stem}.o"])  # fmt: skip


def test_host_driver_under_sanitizers_equals_tflm(tmp_path: Path) -> None:
    sources = write_engine(released_model(), tmp_path)
    exe = tmp_path / "engine"
    compile_ok([tool("gcc"), "-std=c99", "-O1", "-g", *WARNINGS, *SANITIZERS, f"-I{tmp_path}", *sources, BENCH_C,
                "-o", exe])  # fmt: skip
    windows = stress_windows(128, 9, 40, seed=5)
    windows.tofile(tmp_path / "input_int8.bin")
    out = subprocess.run([exe], cwd=tmp_path, capture_output=True, text=True, check=True, timeout=300).stdout
    assert f"windows={len(windows)}" in out
    got = np.fromfile(tmp_path / "output_int8.bin", np.int8).reshape(len(windows), -1)
    np.testing.assert_array_equal(got, TFLM(released_model())(windows))


@pytest.fixture(scope="module")
def m4_windows(_session_cache: Path) -> np.ndarray:
    """Real windows of the released model (quantized as the board does) and saturating ones."""
    manifest = load_bundle(RELEASED).manifest
    windows = bundle_windows(RELEASED, 12, _session_cache)
    quant, norm = manifest["quantization"]["input"], manifest["normalization"]
    q = quantize(windows.X, np.asarray(norm["mean"]), np.asarray(norm["std"]), quant["scale"], quant["zero_point"])
    return np.concatenate([q, stress_windows(128, 9, 8, seed=7)])


@pytest.mark.parametrize("portable", [False, True], ids=["dsp", "portable"])
def test_cortex_m4_under_qemu_equals_host(portable: bool, m4_windows: np.ndarray, _session_cache: Path) -> None:
    tool("arm-none-eabi-gcc")
    tool("qemu-system-arm")
    engine = generate(released_model())
    scores, figures = run_cortex_m4(engine, m4_windows, portable=portable)
    host = engine_outputs(HostEngine(engine, cache=_session_cache), m4_windows)
    np.testing.assert_array_equal(scores, host)
    cal = figures["calibration"]
    print(f"\nCortex-M4 {figures['path']}: {figures['instructions_per_window']:,} instructions per window "
          f"(worst {figures['instructions_worst_window']:,}; {figures['instructions_per_window'] / engine.macs:.2f} "
          f"per MAC), stack {figures['stack_bytes']} B; SysTick calibration: {cal['loop_instructions']:,} "
          f"instructions = {cal['systick_ticks']:,} ticks")  # fmt: skip
    assert cal["instructions_per_tick"] == 40.0  # 25 MHz SysTick, 1 GHz of icount shift=0
    if not portable:
        assert figures["instructions_worst_window"] <= MAX_INSTRUCTIONS


def test_cortex_m4_footprint(m4_windows: np.ndarray) -> None:
    tool("arm-none-eabi-size")
    engine = generate(released_model())
    size = footprint(engine)
    _, figures = run_cortex_m4(engine, m4_windows[:2])
    print(f"\nengine on Cortex-M4 -Os: {size}, stack {figures['stack_bytes']} B")
    assert size["flash_bytes"] <= MAX_ENGINE_FLASH and size["code_bytes"] <= 8 * 1024
    assert size["scratch_bytes"] == engine.scratch_bytes <= MAX_SCRATCH
    assert size["ram_bytes"] + figures["stack_bytes"] <= MAX_ENGINE_RAM
    assert 0 < figures["stack_bytes"] < 1024
