"""The web export of a bundle: a static folder that runs the model in a browser, the board's C in WebAssembly.

``harlite export BUNDLE --format web --out DIR`` (``harlite.pipeline.export``) writes ``index.html`` (the page: live activity,
probabilities, timeline, recording), ``app.js`` (the page's code), ``harlite.js`` (the ES module web
developers embed), ``style.css``, ``harlite.wasm`` and ``manifest.json`` (what the model is; the wasm's
size and sha256, which harlite.js checks). Nothing else is loaded: no CDN, no network beyond the folder.

``harlite.wasm`` is the model's C library, the one the arduino and cmake exports hold (``harlite.h`` over the
front end, smoothing and pipeline of harlite/board/c, the bundle's verified C engine and config header), with
the stream resampler in front, behind ``assets/harlite_web.c``, compiled with clang for wasm32 and
linked by wasm-ld against wasi-libc (for memcpy and memset: no imports, no JavaScript glue). It is cached
under harlite's cache folder, keyed by the sources and the tools.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from harlite import __version__
from harlite.board.library import library_files
from harlite.board.sources import C_DIR
from harlite.errors import HarliteError, ToolMissing
from harlite.io.cache import cache_dir

FORMAT = "harlite-web"
FORMAT_VERSION = 1
ASSETS = ("index.html", "app.js", "harlite.js", "style.css")
GLUE = "harlite_web.c"
RESAMPLER = ("harlite_resample.h", "harlite_resample.c")
WASM = "harlite.wasm"
MANIFEST = "manifest.json"
# -ffp-contract=off: the front end and resampler round as numpy does (wasm has no FMA, but be explicit).
CFLAGS = ("--target=wasm32-wasi", "-O2", "-std=c99", "-ffp-contract=off", "-DHARLITE_ENGINE_PORTABLE",
          "-Wall", "-Werror", "-fno-common", "-ffunction-sections", "-fdata-sections")  # fmt: skip
LDFLAGS = ("--no-entry", "--strip-all", "--gc-sections")


def _assets() -> Any:
    return resources.files("harlite.web") / "assets"


def toolchain() -> dict[str, str]:
    """clang, wasm-ld and wasi-libc's libc.a ($HARLITE_CLANG, $HARLITE_WASM_LD, $WASI_SYSROOT override)."""
    clang = shutil.which(os.environ.get("HARLITE_CLANG", "clang"))
    linker = shutil.which(os.environ.get("HARLITE_WASM_LD", "wasm-ld"))
    if clang is None or linker is None:
        raise ToolMissing("the web export compiles C to WebAssembly with clang and wasm-ld: apt-get install clang "
                          "lld wasi-libc (or set HARLITE_CLANG and HARLITE_WASM_LD).")  # fmt: skip
    sysroot = os.environ.get("WASI_SYSROOT")
    flags = [f"--sysroot={sysroot}"] if sysroot else []
    found = subprocess.run([clang, "--target=wasm32-wasi", *flags, "-print-file-name=libc.a"], capture_output=True,
                           text=True, check=False).stdout.strip()  # fmt: skip
    if not found or not Path(found).is_file():
        raise ToolMissing("wasi-libc not found (clang --target=wasm32-wasi finds no libc.a): apt-get install "
                          "wasi-libc, or set WASI_SYSROOT to a WASI sysroot.")  # fmt: skip
    version = subprocess.run([clang, "--version"], capture_output=True, text=True, check=False).stdout.splitlines()
    return {"clang": clang, "wasm_ld": linker, "libc": found, "sysroot": sysroot or "",
            "version": version[0] if version else "clang"}  # fmt: skip


def wasm_sources(bundle: Any) -> dict[str, str]:
    """The C files of the wasm: the model's C library (``harlite.board.library``), the resampler, the glue."""
    files = library_files(bundle)
    files.update({name: (C_DIR / name).read_text() for name in RESAMPLER})
    files[GLUE] = (_assets() / GLUE).read_text()
    return files


def build_wasm(files: dict[str, str], tools: dict[str, str] | None = None) -> bytes:
    """Compile the C ``files`` into the wasm module (cached by sources and tools); returns its bytes."""
    tools = tools or toolchain()
    key = hashlib.sha256(repr((sorted(files.items()), tools, CFLAGS, LDFLAGS)).encode()).hexdigest()[:24]
    cached = cache_dir() / "web" / f"harlite_{key}.wasm"
    if cached.is_file():
        return cached.read_bytes()
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cached.parent) as tmp:
        work = Path(tmp)
        for name, text in files.items():
            (work / name).write_text(text)
        sysroot = [f"--sysroot={tools['sysroot']}"] if tools["sysroot"] else []
        objects = []
        for name in sorted(n for n in files if n.endswith(".c")):
            obj = work / f"{name}.o"
            _run([tools["clang"], *CFLAGS, *sysroot, f"-I{work}", "-c", str(work / name), "-o", str(obj)])
            objects.append(str(obj))
        out = work / WASM
        _run([tools["wasm_ld"], *LDFLAGS, "-o", str(out), *objects, tools["libc"]])
        os.replace(out, cached)
    return cached.read_bytes()


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise HarliteError(f"{Path(cmd[0]).name} could not build harlite.wasm: {last}")


def web_manifest(bundle: Any, wasm: bytes, tools: dict[str, str]) -> dict[str, Any]:
    """What the export is: the model's labels, rate, window, sensors and output scale; the wasm's digest."""
    spec = bundle.frontend()
    quant = bundle.manifest["quantization"]["output"]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "generator": f"Generated by harlite {__version__}",
        "name": str(bundle.manifest.get("name", bundle.root.name)),
        "labels": list(bundle.labels),
        "rate_hz": float(spec.rate_hz),
        "window": int(spec.window),
        "hop": int(spec.hop),
        "raw_channels": list(spec.raw_channels),
        "units": {"acc": "g", "gyro": "rad/s", "time": "s"},
        "channels": list(spec.channels),
        "output": {"scale": float(quant["scale"]), "zero_point": int(quant["zero_point"])},
        "model_int8_sha256": bundle.entry("int8")["sha256"],
        "wasm": {
            "file": WASM,
            "bytes": len(wasm),
            "sha256": hashlib.sha256(wasm).hexdigest(),
            "compiler": tools["version"],
        },  # fmt: skip
    }


def web_files(bundle: Any) -> dict[str, bytes]:
    """Every file of the web export of a verified Bundle, by name."""
    tools = toolchain()
    wasm = build_wasm(wasm_sources(bundle), tools)
    files = {name: (_assets() / name).read_bytes() for name in ASSETS}
    files[WASM] = wasm
    files[MANIFEST] = (json.dumps(web_manifest(bundle, wasm, tools), indent=2) + "\n").encode()
    return files
