"""The firmware's C core measured with the real cross compiler: flash, RAM and stack on Cortex-M4."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from harlite.errors import ToolMissing

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
CORE = FIRMWARE / "core"
CORE_SOURCES = (CORE / "harlite_core.c", CORE / "harlite_serial.c")
CORTEX_M4 = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
WARNINGS = ("-Wall", "-Wextra", "-Werror", "-Wpedantic", "-Wshadow", "-Wconversion")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"{name} not found: apt-get install $(cat .ci/apt-packages.txt)")
    return path


def _run(cmd: list[Any]) -> str:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed:\n{done.stderr}")
    return done.stdout


def _size(obj: Path) -> dict[str, int]:
    """text, data and bss bytes of an object (arm-none-eabi-size, Berkeley format)."""
    text, data, bss = (int(v) for v in _run([tool("arm-none-eabi-size"), obj]).splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def core_footprint(header_dir: str | Path) -> dict[str, int]:
    """Flash and RAM of the core built for Cortex-M4 at -Os against ``header_dir``'s model config.

    RAM counts the core's static data and the state a sketch keeps (one front end, one smoother);
    ``stack_bytes`` is the deepest frame GCC reports. The serial-line formatter is measured apart.
    """
    gcc = tool("arm-none-eabi-gcc")
    flags = ["-std=c99", *CORTEX_M4, "-Os", *WARNINGS, f"-I{header_dir}", f"-I{CORE}", "-c"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for source in CORE_SOURCES:
            _run([gcc, *flags, "-fstack-usage", source, "-o", out / f"{source.stem}.o"])
        probe = out / "state.c"
        probe.write_text('#include "harlite_core.h"\nharlite_frontend_t fe;\nharlite_smoother_t sm;\n')
        _run([gcc, *flags, probe, "-o", out / "state.o"])
        core, serial, state = (_size(out / f"{n}.o") for n in ("harlite_core", "harlite_serial", "state"))
        frames = (out / "harlite_core.su").read_text().splitlines()
        stack = max(int(line.split("\t")[1]) for line in frames)
    return {
        "flash_bytes": core["text"] + core["data"],
        "ram_bytes": core["data"] + core["bss"] + state["bss"],
        "state_bytes": state["bss"],
        "stack_bytes": stack,
        "serial_flash_bytes": serial["text"] + serial["data"],
    }
