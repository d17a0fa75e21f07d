"""The generator: an int8 .tflite model in, the C99 sources of its engine out.

It reads the flatbuffer, checks that every construct is one the kernels implement (else a
``BundleError`` naming it: never wrong numbers), computes every requantization multiplier and shift as
TFLite Micro's Prepare does (in double, from the tensors' float32 scales), arranges the weights for
the kernels, plans the one static scratch buffer, and writes the op sequence as calls to the kernels
of ``c/harlite_engine_kernels.c``. Only numbers from the model reach the C text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harlite.engine.fixed_point import sigmoid_table, softmax_constants
from harlite.engine.steps import Emitter, Step, _int8, conv_step, fc_step, lstm_step, slice_view, softmax_step
from harlite.engine.tflite_model import Tensor, read_model
from harlite.errors import BundleError
from harlite.io.files import MARKER

KERNELS_DIR = Path(__file__).resolve().parent / "c"
KERNEL_FILES = ("harlite_engine_kernels.h", "harlite_engine_kernels.c")
HEADER, MODEL_C = "harlite_engine.h", "harlite_engine_model.c"


def kernel_sources() -> dict[str, str]:
    """The static kernels as they are copied beside the generated files (with harlite's marker first)."""
    return {name: f"/* {MARKER}: a copy of harlite/engine/c/{name} (do not edit; regenerate). */\n"
            + (KERNELS_DIR / name).read_text() for name in KERNEL_FILES}  # fmt: skip


@dataclass
class Engine:
    """The generated sources and their figures."""

    files: dict[str, str]
    scratch_bytes: int
    weight_bytes: int
    window: int
    channels: int
    classes: int
    macs: int
    ops: list[str]
    input_quant: tuple[float, int]
    output_quant: tuple[float, int]

    def figures(self) -> dict[str, Any]:
        return {"scratch_bytes": self.scratch_bytes, "weight_bytes": self.weight_bytes, "macs": self.macs,
                "ops": self.ops, "files": sorted(self.files)}  # fmt: skip


def generate(model: bytes, comment: str = "") -> Engine:
    """The engine's sources for an int8 .tflite model: ``{file name: text}`` and its figures.

    ``comment`` (a short description, e.g. the bundle's name) goes into the files' first comment only
    after it is reduced to plain printable ASCII."""
    tensors, ops, inputs, outputs, names = read_model(model)
    if len(inputs) != 1 or len(outputs) != 1:
        raise BundleError(f"the C engine runs models of one input and one output, not {len(inputs)} and "
                          f"{len(outputs)}.")  # fmt: skip
    inp, out = tensors[inputs[0]], tensors[outputs[0]]
    _int8(inp, "model input", "the model")
    _int8(out, "model output", "the model")
    if len(inp.shape) != 3 or inp.shape[0] != 1:
        raise BundleError(f"the model input {list(inp.shape)} is not [1, window, channels].")
    em = Emitter()
    table = consts = ""
    steps: list[Step] = []
    views: dict[int, tuple[int, int]] = {}  # tensor -> (tensor it is a view of, element offset)
    for i, op in enumerate(ops):
        kind = names.get(op.code, str(op.code))
        where = f"op {i} ({kind})"
        if kind in ("RESHAPE", "STRIDED_SLICE"):
            src, dst = tensors[op.inputs[0]], tensors[op.outputs[0]]
            offset, count = slice_view(op, tensors, where) if kind == "STRIDED_SLICE" else (0, src.size)
            if count != dst.size or src.type != dst.type:
                raise BundleError(f"{where}: input and output sizes differ.")
            base, base_offset = views.get(src.index, (src.index, 0))
            views[dst.index] = (base, base_offset + offset)
            continue
        if kind == "CONV_2D":
            step = conv_step(em, op, tensors, where)
        elif kind == "FULLY_CONNECTED":
            step = fc_step(em, op, tensors, where)
        elif kind == "UNIDIRECTIONAL_SEQUENCE_LSTM":
            table = table or em.array("uint16_t", "sigmoid", sigmoid_table())
            step = lstm_step(em, op, tensors, where, table)
        elif kind == "SOFTMAX":
            consts = consts or em.array("int32_t", "softmax", softmax_constants())
            step = softmax_step(em, op, tensors, where, consts)
        else:
            raise BundleError(f"{where}: the C engine does not implement {kind}; it runs CONV_2D (one row), "
                              "FULLY_CONNECTED, UNIDIRECTIONAL_SEQUENCE_LSTM, SOFTMAX, RESHAPE and "
                              "STRIDED_SLICE.")  # fmt: skip
        steps.append(step)
    if not steps:
        raise BundleError("the model computes nothing the C engine could run.")
    plan = _plan(steps, tensors, views, inputs[0], outputs[0])
    return _write(em, steps, plan, tensors, inp, out, comment, names, ops)


@dataclass
class Plan:
    pointers: dict[int, str]  # tensor -> C expression of its bytes
    temps: list[dict[str, str]]  # per step: field -> C expression
    scratch_bytes: int
    copy_out: str | None  # a final copy into the output, when the output is a view


def _align(n: int) -> int:
    return -(-n // 4) * 4


def _plan(steps: list[Step], tensors: list[Tensor], views: dict[int, tuple[int, int]], graph_in: int,
          graph_out: int) -> Plan:  # fmt: skip
    """Place the activations of a chain of kernels in one buffer: [temporaries | activations].

    Each kernel's output goes after its input, before it, or over it as far as its access pattern allows
    (``Step.in_place``); the temporaries of a kernel live only during its call."""

    def base(tensor: int) -> tuple[int, int]:
        return views.get(tensor, (tensor, 0))

    produced = {s.target for s in steps}
    for k, step in enumerate(steps):
        src = base(step.source)[0]
        expected = graph_in if k == 0 else steps[k - 1].target
        if src != expected or src not in produced | {graph_in}:
            raise BundleError("the C engine runs sequential models (each layer reads the one before it); "
                              f"op {step.name} reads another tensor.")  # fmt: skip
    out_base, out_offset = base(graph_out)
    if out_base != steps[-1].target:
        raise BundleError("the model output is not computed by its last layer.")
    place: dict[int, int] = {}  # arena tensor -> start (relative, normalized later)
    lo = hi = 0
    for step in steps:
        size = _align(tensors[step.target].size)
        if step.target == graph_out:
            continue  # written straight into the caller's output
        src, src_offset = base(step.source)
        if src == graph_in:
            place[step.target] = 0
            lo, hi = min(lo, 0), max(hi, size)
            continue
        start, in_size = place[src], _align(tensors[src].size)
        reads_all = src_offset == 0 and tensors[step.source].size == tensors[src].size
        candidates = [start + in_size, start - size]
        if step.in_place is not None and (reads_all or step.in_place >= 2**31):
            delta = 0 if step.in_place >= 0 else -_align(-step.in_place)
            candidates.insert(0, start + delta)
        best = min(candidates, key=lambda c: max(hi, c + size) - min(lo, c))
        place[step.target] = best
        lo, hi = min(lo, best), max(hi, best + size)
    temp_bytes = max(sum(_align(b) for _, b, _ in s.temps) for s in steps)
    data = temp_bytes - lo

    def pointer(tensor: int) -> str:
        b, offset = base(tensor)
        if b == graph_in:
            return f"input + {offset}" if offset else "input"
        if b == graph_out or (b == steps[-1].target and b not in place):
            return f"output + {offset}" if offset else "output"
        return f"hl_scratch.b + {data + place[b] + offset}"

    pointers = {s.source: pointer(s.source) for s in steps}
    pointers.update({s.target: pointer(s.target) for s in steps})
    temps = []
    for s in steps:
        offset, fields = 0, {}
        for name, nbytes, member in s.temps:
            unit = {"b": 1, "h": 2, "w": 4}[member]
            fields[name] = f"hl_scratch.{member} + {offset // unit}"
            offset += _align(nbytes)
        temps.append(fields)
    copy_out = None
    if graph_out != steps[-1].target:  # the output is a view of the last kernel's output
        start = data + place[out_base] + out_offset
        copy_out = f"memcpy(output, hl_scratch.b + {start}, {tensors[graph_out].size});"
    return Plan(pointers, temps, max(4, temp_bytes + hi - lo), copy_out)


def _ascii(text: str) -> str:
    return "".join(c for c in text if c.isalnum() or c in " ._-+:,()/")[:120]


def _write(em: Emitter, steps: list[Step], plan: Plan, tensors: list[Tensor], inp: Tensor, out: Tensor,
           comment: str, names: dict[int, str], ops: list[Any]) -> Engine:  # fmt: skip
    note = f" ({_ascii(comment)})" if comment else ""
    window, channels, classes = inp.shape[1], inp.shape[2], out.size
    macs = sum(s.macs for s in steps)
    header = f"""/* {MARKER}{note}: the C inference engine of an int8 model (do not edit; regenerate). */
#ifndef HARLITE_ENGINE_H
#define HARLITE_ENGINE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

#define HARLITE_ENGINE_WINDOW {window}
#define HARLITE_ENGINE_CHANNELS {channels}
#define HARLITE_ENGINE_CLASSES {classes}
#define HARLITE_ENGINE_SCRATCH_BYTES {plan.scratch_bytes}
#define HARLITE_ENGINE_MACS {macs}

/* Runs the model on one window, input [HARLITE_ENGINE_WINDOW][HARLITE_ENGINE_CHANNELS] int8 (quantized
 * as the model's input), output [HARLITE_ENGINE_CLASSES] int8 scores. Every call starts from a zero LSTM
 * state. Uses one static scratch buffer: not reentrant. Returns 0. */
int harlite_engine_invoke(const int8_t *input, int8_t *output);

#ifdef __cplusplus
}}
#endif

#endif /* HARLITE_ENGINE_H */
"""
    calls = []
    for step, fields in zip(steps, plan.temps):
        calls.append("    " + step.call.format(src=plan.pointers[step.source], dst=plan.pointers[step.target],
                                                 **fields))  # fmt: skip
    if plan.copy_out:
        calls.append("    " + plan.copy_out)
    words = plan.scratch_bytes // 4
    body = "".join(em.parts)
    model_c = f"""/* {MARKER}{note}: the model's weights, parameters and op sequence (do not edit; regenerate). */
#include "harlite_engine.h"

#include <string.h>

#include "harlite_engine_kernels.h"

{body}
/* The one scratch buffer: temporaries, then activations ({plan.scratch_bytes} bytes). */
static union {{
    uint32_t w[{words}];
    int16_t h[{2 * words}];
    int8_t b[{4 * words}];
}} hl_scratch;

int harlite_engine_invoke(const int8_t *input, int8_t *output) {{
{chr(10).join(calls)}
    return 0;
}}
"""
    files = {HEADER: header, MODEL_C: model_c, **kernel_sources()}
    return Engine(files, plan.scratch_bytes, em.weight_bytes, window, channels, classes, macs,
                  [names.get(op.code, str(op.code)) for op in ops], (inp.scale, inp.zero_point),
                  (out.scale, out.zero_point))  # fmt: skip
