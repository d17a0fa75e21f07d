"""The cross compilers, binutils and emulators harlite drives, and the CPU cores it builds for.

``CORES`` names the five cores the firmware's portable part is measured on, each an emulated machine of
QEMU with a linker script of its own in ``qemu/`` (start-up code: ``qemu/arm/startup.c``, picolibc's crt0
on RISC-V): Cortex-M0 (ARMv6-M, no DSP, no FPU), Cortex-M4F, Cortex-M7 and Cortex-M33 (arm-none-eabi-gcc
and newlib), RV32IMC (riscv64-unknown-elf-gcc and picolibc).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harlite.board.sources import QEMU_DIR
from harlite.errors import HarliteError, ToolMissing

CORTEX_M4 = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
WARNINGS = ("-Wall", "-Wextra", "-Werror", "-Wpedantic", "-Wshadow", "-Wconversion")
SECTIONS = ("-ffunction-sections", "-fdata-sections")
M4_C = ("-std=c99", *CORTEX_M4, "-Os", *SECTIONS)
# C++ as the Arduino library expects it (ARDUINO selects its CMSIS-NN kernel registrations).
M4_CXX = ("-std=gnu++17", "-DARDUINO", *CORTEX_M4, "-Os", *SECTIONS, "-fno-rtti", "-fno-exceptions",
          "-fno-threadsafe-statics")  # fmt: skip
SEMIHOSTING = ("-nographic", "-semihosting-config", "enable=on,target=native")
ICOUNT = ("-icount", "shift=0")
INSTALL = "install the Debian packages of .ci/apt-packages.txt (scripts/test.sh does)"


@dataclass(frozen=True)
class Core:
    """A CPU core as harlite builds for it and emulates it."""

    name: str
    title: str  # what it is, and which chips are of its class
    cpu: tuple[str, ...]  # compiler flags of the core (and its floating-point ABI)
    qemu: tuple[str, ...]  # the emulator and its machine
    linker_script: Path
    prefix: str = "arm-none-eabi-"
    link_cpu: tuple[str, ...] = ()  # the link's flags when they differ from ``cpu`` (the C library's variant)
    run_libs: tuple[str, ...] = ("--specs=rdimon.specs",)  # the C library with semihosting, for QEMU runs
    bare_libs: tuple[str, ...] = ("--specs=nano.specs", "--specs=nosys.specs")  # for the size image
    clock: str = "SysTick on the processor clock"

    def tool(self, name: str) -> str:
        """The path of this core's ``gcc``, ``g++``, ``size``, ``objdump``..."""
        return tool(self.prefix + name)

    def emulator(self) -> list[str]:
        return [tool(self.qemu[0]), *self.qemu[1:], *SEMIHOSTING]

    def link_flags(self) -> list[str]:
        return [*(self.link_cpu or self.cpu), f"-L{self.linker_script.parent}", "-T", str(self.linker_script)]


_ARM, _RISCV = QEMU_DIR / "arm", QEMU_DIR / "riscv"
CORES = {
    core.name: core
    for core in (
        Core("cortex-m0", "Cortex-M0 (ARMv6-M, no DSP, no FPU: the class of RP2040, nRF51, STM32F0)",
             ("-mcpu=cortex-m0", "-mthumb"), ("qemu-system-arm", "-machine", "microbit", "-cpu", "cortex-m0"),
             _ARM / "microbit.ld"),
        Core("cortex-m4", "Cortex-M4F (ARMv7E-M, DSP, single-precision FPU: nRF52840, STM32F4)", CORTEX_M4,
             ("qemu-system-arm", "-machine", "mps2-an386", "-cpu", "cortex-m4"), _ARM / "mps2.ld"),
        Core("cortex-m7", "Cortex-M7 (ARMv7E-M, DSP, double-precision FPU: STM32F7/H7, i.MX RT)",
             ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"),
             ("qemu-system-arm", "-machine", "mps2-an500", "-cpu", "cortex-m7"), _ARM / "mps2.ld"),
        Core("cortex-m33", "Cortex-M33 (ARMv8-M Mainline, DSP, FPU: nRF5340, STM32U5, RP2350)",
             ("-mcpu=cortex-m33", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"),
             ("qemu-system-arm", "-machine", "mps2-an505", "-cpu", "cortex-m33"), _ARM / "mps2_an505.ld"),
        # QEMU's rv32 with the A, F and D extensions off: an RV32IMC (+Zicsr) core. Debian's picolibc has no
        # rv32imc variant: the link takes rv32im's (the same instructions, uncompressed).
        Core("rv32imc", "RV32IMC (no FPU: the class of ESP32-C3, CH32V30x, GD32VF103)",
             ("-march=rv32imc_zicsr", "-mabi=ilp32", "--specs=picolibc.specs"),
             ("qemu-system-riscv32", "-machine", "virt", "-cpu", "rv32,a=false,f=false,d=false", "-bios", "none"),
             _RISCV / "virt.ld", prefix="riscv64-unknown-elf-",
             link_cpu=("-march=rv32im", "-mabi=ilp32", "--specs=picolibc.specs"),
             run_libs=("--crt0=semihost", "--oslib=semihost"), bare_libs=(), clock="the minstret counter"),
    )
}  # fmt: skip


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"{name} not found: {INSTALL}.")
    return path


def run_tool(cmd: list[Any], cwd: Path | None = None, timeout: float = 900) -> str:
    """A compiler, binutil or emulator's stdout; a failure is a HarliteError with the end of its output."""
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False, cwd=cwd,
                          timeout=timeout, stdin=subprocess.DEVNULL)  # fmt: skip
    if done.returncode:
        raise HarliteError(
            f"{Path(str(cmd[0])).name} failed ({done.returncode}): {(done.stderr or done.stdout)[-1500:]}"
        )
    return done.stdout


def version(name: str) -> str:
    """The first line of a tool's --version (e.g. "arm-none-eabi-gcc (15:12.2.rel1-1) 12.2.1 20221205")."""
    return run_tool([tool(name), "--version"]).splitlines()[0].strip()


def object_size(obj: Path, size_tool: str = "arm-none-eabi-size") -> dict[str, int]:
    """text, data and bss bytes of an object or image (binutils' size, Berkeley format)."""
    text, data, bss = (int(v) for v in run_tool([tool(size_tool), obj]).splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}
