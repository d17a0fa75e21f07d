/*
 * Bare-metal start-up for the Arm M-profile cores harlite runs under QEMU (Cortex-M0 on microbit, M4F on
 * mps2-an386, M7 on mps2-an500, M33 on mps2-an505; one linker script per machine beside this file): the
 * vector table, a reset handler that turns the FPU on (on a core that has one) and copies .data before
 * newlib's rdimon crt0 (_start: .bss, semihosting stdio, main, exit with main's return value), and a
 * fault handler that ends QEMU with a failure.
 */
#include <stdint.h>

extern uint32_t __stack_top__, __data_load__, __data_start__, __data_end__;
extern void _start(void);
void Reset_Handler(void);
void Fault_Handler(void);

/* Semihosting SYS_EXIT, reason ADP_Stopped_RunTimeErrorUnknown: QEMU exits with status 1. */
void Fault_Handler(void) {
    register uint32_t op __asm__("r0") = 0x18;
    register uint32_t reason __asm__("r1") = 0x20023;
    __asm__ volatile("bkpt 0xab" : : "r"(op), "r"(reason) : "memory");
    for (;;) {
    }
}

void Reset_Handler(void) {
    uint32_t *src = &__data_load__, *dst = &__data_start__;
#if defined(__ARM_FP)
    /* CPACR: full access to CP10 and CP11 (the FPU), before the first floating-point instruction. */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" : : : "memory");
#endif
    while (dst < &__data_end__) *dst++ = *src++;
    _start();
    Fault_Handler(); /* _start does not return */
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(uintptr_t)&__stack_top__,
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    0, 0, 0, 0,
    Fault_Handler, /* SVCall */
    Fault_Handler, /* DebugMonitor */
    0,
    Fault_Handler, /* PendSV */
    Fault_Handler, /* SysTick */
};
