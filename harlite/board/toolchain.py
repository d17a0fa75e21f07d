"""The cross compilers, binutils and emulators harlite drives, and the flags of the cores it builds for."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from harlite.errors import HarliteError, ToolMissing

CORTEX_M4 = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
WARNINGS = ("-Wall", "-Wextra", "-Werror", "-Wpedantic", "-Wshadow", "-Wconversion")
SECTIONS = ("-ffunction-sections", "-fdata-sections")
M4_C = ("-std=c99", *CORTEX_M4, "-Os", *SECTIONS)
# C++ as the Arduino library expects it (ARDUINO selects its CMSIS-NN kernel registrations).
M4_CXX = ("-std=gnu++17", "-DARDUINO", *CORTEX_M4, "-Os", *SECTIONS, "-fno-rtti", "-fno-exceptions",
          "-fno-threadsafe-statics")  # fmt: skip
QEMU = ("-machine", "mps2-an386", "-cpu", "cortex-m4", "-nographic", "-semihosting-config", "enable=on,target=native")
ICOUNT = ("-icount", "shift=0")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"{name} not found: apt-get install $(cat .ci/apt-packages.txt)")
    return path


def run_tool(cmd: list[Any], cwd: Path | None = None, timeout: float = 900) -> str:
    """A compiler, binutil or emulator's stdout; a failure is a HarliteError with the end of its output."""
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False, cwd=cwd,
                          timeout=timeout, stdin=subprocess.DEVNULL)  # fmt: skip
    if done.returncode:
        raise HarliteError(f"{Path(str(cmd[0])).name} failed ({done.returncode}): {(done.stderr or done.stdout)[-1500:]}")
    return done.stdout


def object_size(obj: Path) -> dict[str, int]:
    """text, data and bss bytes of an object (arm-none-eabi-size, Berkeley format)."""
    text, data, bss = (int(v) for v in run_tool([tool("arm-none-eabi-size"), obj]).splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}
