"""harlite.codegen: the TFLM C sources of the tiny bundle, compiled with the real compilers, and the
arena measured with the real TFLM interpreter.

The op resolver header includes TFLM's C++ headers, which are not installed here; its compile check
uses STAND_IN below, a minimal ``tflite::MicroMutableOpResolver`` declaring the Add* methods. It checks
the generated code, not TFLM (users compile the real library).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fixtures_bundle import copy_bundle
from tools import tool

from harlite.bundle.loader import load_bundle
from harlite.codegen.sources import ARTIFACTS, TFLM_DIR
from harlite.codegen.targets import OP_RESOLVER_METHODS, model_ops
from harlite.codegen.tflm import (
    CONFIG_H,
    DATA_CPP,
    DATA_H,
    config_header,
    op_resolver_header,
)
from harlite.core.frontend import quantize_params
from harlite.errors import HarliteError
from harlite.io.hashing import sha256_file
from harlite.pipeline.c_sources import measure_arena, probe_arena, write_sources

STRICT = ["-Wall", "-Wextra", "-Werror"]
CORTEX_M4 = ["-mcpu=cortex-m4", "-mthumb", "-Os"]


def run_ok(cmd: list, cwd: Path | None = None) -> str:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, check=False, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))}\n{done.stdout}{done.stderr}"
    return done.stdout


def stand_in() -> str:
    """COMPILE CHECK ONLY: a stand-in for tensorflow/lite/micro/micro_mutable_op_resolver.h whose Add*
    methods record the op they register, so a program can print what harlite_register_ops added."""
    methods = "".join(f'  TfLiteStatus {method}() {{ return Add("{op}"); }}\n'
                      for op, method in OP_RESOLVER_METHODS.items())  # fmt: skip
    return (
        "#pragma once\n#include <cstdio>\n"
        "enum TfLiteStatus { kTfLiteOk = 0, kTfLiteError = 1 };\n"
        "namespace tflite {\ntemplate <unsigned int tOpCount>\nclass MicroMutableOpResolver {\n public:\n"
        f"{methods}"
        "  unsigned int count = 0;\n"
        " private:\n"
        "  TfLiteStatus Add(const char* op) {\n"
        "    if (count >= tOpCount) return kTfLiteError;\n"
        '    std::printf("op %s\\n", op);\n    ++count;\n    return kTfLiteOk;\n  }\n};\n}  // namespace tflite\n'
    )


MAIN_CC = """
#include "harlite_model_config.h"
#include "harlite_model_data.h"
#include "harlite_op_resolver.h"
#include <cstdio>
int main() {
  static const float mul[HARLITE_NUM_CHANNELS] = HARLITE_INPUT_MUL;
  static const char* const labels[HARLITE_NUM_CLASSES] = HARLITE_LABELS;
  HarliteOpResolver resolver;
  const TfLiteStatus status = harlite_register_ops(resolver);
  std::printf("status %d count %u ops %d\\n", static_cast<int>(status), resolver.count, HARLITE_OP_COUNT);
  std::printf("len %d magic %.4s arena %d\\n", HARLITE_MODEL_DATA_LEN,
              reinterpret_cast<const char*>(harlite_model_data + 4), HARLITE_ARENA_BYTES);
  std::printf("mul0 %.9g label5 %s\\n", static_cast<double>(mul[0]), labels[5]);
  return 0;
}
"""

# Every macro of the header as a C99 array or value, printed back for comparison with the manifest.
CONFIG_C = """
#include <stdio.h>
#include "harlite_model_config.h"
static const int kind[HARLITE_NUM_CHANNELS] = HARLITE_CHANNEL_KIND;
static const int source[HARLITE_NUM_CHANNELS] = HARLITE_CHANNEL_SOURCE;
static const char* const names[HARLITE_NUM_CHANNELS] = HARLITE_CHANNEL_NAMES;
static const char* const units[HARLITE_NUM_CHANNELS] = HARLITE_CHANNEL_UNITS;
static const char* const labels[HARLITE_NUM_CLASSES] = HARLITE_LABELS;
static const float sos[HARLITE_GRAVITY_SECTIONS][6] = HARLITE_GRAVITY_SOS;
static const float zi[HARLITE_GRAVITY_SECTIONS][2] = HARLITE_GRAVITY_ZI;
static const float mul[HARLITE_NUM_CHANNELS] = HARLITE_INPUT_MUL;
static const float add[HARLITE_NUM_CHANNELS] = HARLITE_INPUT_ADD;
int main(void) {
  int c, s, k;
  printf("{\\"rate\\": %d, \\"window\\": %d, \\"hop\\": %d, \\"raw\\": %d, \\"arena\\": %d,\\n", HARLITE_RATE_HZ,
         HARLITE_WINDOW, HARLITE_HOP, HARLITE_NUM_RAW, HARLITE_ARENA_BYTES);
  printf("\\"in\\": [%.9g, %d], \\"out\\": [%.9g, %d], \\"channels\\": [", (double)HARLITE_INPUT_SCALE,
         HARLITE_INPUT_ZERO_POINT, (double)HARLITE_OUTPUT_SCALE, HARLITE_OUTPUT_ZERO_POINT);
  for (c = 0; c < HARLITE_NUM_CHANNELS; c++)
    printf("%s[\\"%s\\", \\"%s\\", %d, %d, %.9g, %.9g]", c ? ", " : "", names[c], units[c], kind[c], source[c],
           (double)mul[c], (double)add[c]);
  printf("], \\"labels\\": [");
  for (c = 0; c < HARLITE_NUM_CLASSES; c++) printf("%s\\"%s\\"", c ? ", " : "", labels[c]);
  printf("], \\"sos\\": [");
  for (s = 0; s < HARLITE_GRAVITY_SECTIONS; s++) {
    printf("%s[", s ? ", " : "");
    for (k = 0; k < 6; k++) printf("%s%.9g", k ? ", " : "", (double)sos[s][k]);
    printf(", %.9g, %.9g]", (double)zi[s][0], (double)zi[s][1]);
  }
  printf("]}\\n");
  return HARLITE_CH_RAW + HARLITE_CH_BODY + HARLITE_CH_GRAVITY - 3;
}
"""


@pytest.fixture(scope="module")
def generated(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:  # noqa: F811
    root = tmp_path_factory.mktemp("codegen")
    bundle = copy_bundle(tiny_bundle, root / "bundle")
    firmware = root / "firmware"
    manifest = write_sources(bundle, firmware_dir=firmware)
    return {"bundle": bundle, "firmware": firmware, "manifest": manifest, "tflm": bundle / TFLM_DIR,
            "model": (bundle / "model_int8.tflite").read_bytes()}  # fmt: skip


def test_model_array_is_the_tflite_byte_for_byte(generated: dict) -> None:
    source = (generated["tflm"] / DATA_CPP).read_text()
    assert "alignas(16) const unsigned char harlite_model_data[HARLITE_MODEL_DATA_LEN] = {" in source
    body = source.split("= {", 1)[1].rsplit("};", 1)[0]
    data = bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body))
    assert data == generated["model"]
    header = (generated["tflm"] / DATA_H).read_text()
    assert f"#define HARLITE_MODEL_DATA_LEN {len(data)}\n" in header
    sha = sha256_file(generated["bundle"] / "model_int8.tflite")
    assert f"bundle/manifest.json; model_int8.tflite sha256 {sha}" in header


def test_manifest_records_arena_ops_and_artifacts(generated: dict) -> None:
    manifest = load_bundle(generated["bundle"]).manifest
    tflm = manifest["tflm"]
    assert tflm["arena_bytes"] == tflm["arena_min_bytes"] + tflm["arena_margin_bytes"]
    assert tflm["arena_min_bytes"] % tflm["arena_step_bytes"] == 0 and tflm["flash_bytes"] == len(generated["model"])
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in manifest["ops"]
    for key, name in ARTIFACTS.items():
        entry = manifest["artifacts"][key]
        assert entry["file"] == f"{TFLM_DIR}/{name}"
        assert entry["sha256"] == sha256_file(generated["bundle"] / entry["file"])
    for name in ARTIFACTS.values():  # the firmware folder gets the same files
        assert (generated["firmware"] / name).read_bytes() == (generated["tflm"] / name).read_bytes()


def test_measured_arena_allocates_and_one_step_less_does_not(generated: dict) -> None:
    tflm, model = generated["manifest"]["tflm"], generated["bundle"] / "model_int8.tflite"
    assert probe_arena(model, tflm["arena_bytes"]).returncode == 0
    assert probe_arena(model, tflm["arena_min_bytes"]).returncode == 0
    assert probe_arena(model, tflm["arena_min_bytes"] - tflm["arena_step_bytes"]).returncode != 0


def test_op_resolver_lists_exactly_the_models_ops(generated: dict, tmp_path: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    # The ops as LiteRT reads them (before delegation), independent of harlite's flatbuffer parser.
    litert_ops = sorted({op["op_name"] for op in Interpreter(model_content=generated["model"])._get_ops_details()})
    assert model_ops(generated["model"]) == litert_ops == generated["manifest"]["ops"]
    out = compile_host(generated["tflm"], tmp_path)
    registered = re.findall(r"^op (\w+)$", out, re.MULTILINE)
    assert registered == litert_ops
    assert f"status 0 count {len(litert_ops)} ops {len(litert_ops)}" in out


def compile_host(tflm: Path, tmp_path: Path) -> str:
    include = tmp_path / "include" / "tensorflow" / "lite" / "micro"
    include.mkdir(parents=True)
    (include / "micro_mutable_op_resolver.h").write_text(stand_in())
    (tmp_path / "main.cc").write_text(MAIN_CC)
    exe = tmp_path / "main"
    run_ok([tool("g++"), "-std=c++17", *STRICT, f"-I{tflm}", f"-I{tmp_path / 'include'}", tmp_path / "main.cc",
            tflm / DATA_CPP, "-o", exe])  # fmt: skip
    return run_ok([exe])


def test_sources_compile_warning_free_on_the_host(generated: dict, tmp_path: Path) -> None:
    out = compile_host(generated["tflm"], tmp_path)
    assert f"len {len(generated['model'])} magic TFL3 arena {generated['manifest']['tflm']['arena_bytes']}" in out


def test_sources_compile_for_cortex_m4_with_the_model_in_flash(generated: dict, tmp_path: Path) -> None:
    gxx = tool("arm-none-eabi-g++")
    include = tmp_path / "include" / "tensorflow" / "lite" / "micro"
    include.mkdir(parents=True)
    (include / "micro_mutable_op_resolver.h").write_text(stand_in())
    (tmp_path / "main.cc").write_text(MAIN_CC.replace("#include <cstdio>", "#include <cstdio>\n"))
    flags = ["-std=c++17", *CORTEX_M4, *STRICT, f"-I{generated['tflm']}", f"-I{tmp_path / 'include'}", "-c"]
    run_ok([gxx, *flags, generated["tflm"] / DATA_CPP, "-o", tmp_path / "data.o"])
    run_ok([gxx, *flags, tmp_path / "main.cc", "-o", tmp_path / "main.o"])
    sections = run_ok([tool("arm-none-eabi-objdump"), "-h", tmp_path / "data.o"])
    rodata = re.search(r"\.rodata\s+([0-9a-f]+)\s+\S+\s+\S+\s+\S+\s+2\*\*(\d+)", sections)
    assert rodata and int(rodata.group(1), 16) == len(generated["model"]) and int(rodata.group(2)) >= 4
    data = re.search(r"\.data\s+([0-9a-f]+)", sections)
    assert data is None or int(data.group(1), 16) == 0


@pytest.mark.parametrize("compiler", ["gcc", "arm-none-eabi-gcc"])
def test_config_header_is_c99_macros_matching_the_manifest(generated: dict, tmp_path: Path, compiler: str) -> None:
    header = (generated["tflm"] / CONFIG_H).read_text()
    body = re.sub(r"/\*.*?\*/", "", header)
    assert ";" not in body and "=" not in body  # macros only, no storage
    assert header.startswith("#ifndef HARLITE_MODEL_CONFIG_H\n#define HARLITE_MODEL_CONFIG_H\n/* Generated by harlite")
    (tmp_path / "config.c").write_text(CONFIG_C)
    flags = ["-std=c99", "-pedantic", *STRICT, f"-I{generated['tflm']}"]
    if compiler == "arm-none-eabi-gcc":
        run_ok([tool(compiler), *flags, *CORTEX_M4, "-c", tmp_path / "config.c", "-o", tmp_path / "config.o"])
        return
    run_ok([tool(compiler), *flags, tmp_path / "config.c", "-o", tmp_path / "config"])
    got = json.loads(run_ok([tmp_path / "config"]))
    m = generated["manifest"]
    quant, fe = m["quantization"], m["frontend"]
    mul, add = quantize_params(m["normalization"]["mean"], m["normalization"]["std"],
                               quant["input"]["scale"], quant["input"]["zero_point"])  # fmt: skip
    assert (got["rate"], got["window"], got["hop"], got["raw"]) == (50, m["window"], m["hop"], 6)
    assert got["arena"] == m["tflm"]["arena_bytes"] and got["labels"] == m["labels"]
    assert got["in"] == [np.float32(quant["input"]["scale"]), quant["input"]["zero_point"]]
    assert got["out"] == [np.float32(quant["output"]["scale"]), quant["output"]["zero_point"]]
    assert [c[0] for c in got["channels"]] == fe["channels"] and [c[1] for c in got["channels"]] == fe["units"]
    assert [c[2:4] for c in got["channels"]][:4] == [[1, 0], [1, 1], [1, 2], [0, 3]]
    np.testing.assert_array_equal(np.float32([c[4] for c in got["channels"]]), mul)  # bit-exact float32
    np.testing.assert_array_equal(np.float32([c[5] for c in got["channels"]]), add)
    expected = np.hstack([fe["gravity_sos"], fe["gravity_zi"]]).astype(np.float32)
    np.testing.assert_array_equal(np.float32(got["sos"]), expected)


def test_config_header_is_deterministic_and_takes_a_comment(generated: dict) -> None:
    manifest = load_bundle(generated["bundle"]).manifest
    written = (generated["tflm"] / CONFIG_H).read_text()
    assert config_header(manifest, comment=written.splitlines()[2][3:-3]) == written
    assert "/* test front end */" in config_header(manifest, comment="test front end")


def test_firmware_files_are_replaced_only_when_harlite_wrote_them(generated: dict, tmp_path: Path) -> None:
    bundle = copy_bundle(generated["bundle"], tmp_path / "bundle")
    firmware = tmp_path / "firmware"
    firmware.mkdir()
    (firmware / CONFIG_H).write_text("/* my own config */\n")
    with pytest.raises(HarliteError, match="--force"):
        write_sources(bundle, firmware_dir=firmware)
    assert (firmware / CONFIG_H).read_text() == "/* my own config */\n"
    write_sources(bundle, firmware_dir=firmware, force=True)
    assert (firmware / CONFIG_H).read_text() == (generated["tflm"] / CONFIG_H).read_text()


def test_unsupported_models_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(HarliteError, match="no tflite::MicroMutableOpResolver method is known for TOPK_V2"):
        op_resolver_header(["FULLY_CONNECTED", "TOPK_V2"], "test")
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    with pytest.raises(HarliteError, match="TFLite Micro cannot run broken.tflite"):
        measure_arena(broken)
