/*
 * A driver of the generated engine, for tests and `harlite bench`: reads int8 windows from
 * input_int8.bin in the working folder (QEMU's, through semihosting, on the Cortex-M4), runs the engine
 * on each, writes the scores to output_int8.bin and prints one line of figures.
 *
 * On the Cortex-M4 under QEMU with -icount shift=0, SysTick (processor clock) advances with the
 * instructions executed: a loop of a known number of instructions calibrates it. The stack one
 * window uses is measured by painting the stack below main's frame before the first window.
 */
#include <stdint.h>
#include <stdio.h>

#include "harlite_engine.h"

#define N_INPUT (HARLITE_ENGINE_WINDOW * HARLITE_ENGINE_CHANNELS)
#define STACK_PAINT 4096u
#define PAINT 0xa5a5a5a5u

#if defined(__arm__)
#define SYST_CSR (*(volatile uint32_t *)0xe000e010u)
#define SYST_RVR (*(volatile uint32_t *)0xe000e014u)
#define SYST_CVR (*(volatile uint32_t *)0xe000e018u)
#define CALIBRATION_LOOPS 1000000u

static uint32_t elapsed(uint32_t from, uint32_t to) { return (from - to) & 0xffffffu; }

/* SysTick ticks of CALIBRATION_LOOPS iterations of two instructions (subs, bne). */
static uint32_t calibrate(void) {
    uint32_t n = CALIBRATION_LOOPS;
    const uint32_t t0 = SYST_CVR;
    __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
    return elapsed(t0, SYST_CVR);
}
#endif

int main(void) {
    static int8_t input[N_INPUT];
    int8_t output[HARLITE_ENGINE_CLASSES];
    unsigned long windows = 0, ticks = 0, worst = 0, calibration = 0, stack = 0;
    FILE *in = fopen("input_int8.bin", "rb");
    FILE *out = fopen("output_int8.bin", "wb");
    if (!in || !out) {
        printf("engine: cannot open input_int8.bin or output_int8.bin\n");
        return 1;
    }
#if defined(__arm__)
    {
        volatile uint32_t *sp;
        __asm__ volatile("mov %0, sp" : "=r"(sp));
        SYST_RVR = 0xffffffu;
        SYST_CVR = 0u;
        SYST_CSR = 5u; /* enabled, processor clock, no interrupt */
        calibration = calibrate();
        while (fread(input, 1, sizeof input, in) == sizeof input) {
            uint32_t t0, t1, i;
            if (windows == 0) {
                for (i = 16; i < STACK_PAINT / 4; ++i) sp[-(int32_t)i] = PAINT;
            }
            t0 = SYST_CVR;
            harlite_engine_invoke(input, output);
            t1 = SYST_CVR;
            if (windows == 0) {
                for (i = STACK_PAINT / 4 - 1; i >= 16 && sp[-(int32_t)i] == PAINT; --i) {
                }
                stack = 4ul * i;
            }
            ticks += elapsed(t0, t1);
            worst = elapsed(t0, t1) > worst ? elapsed(t0, t1) : worst;
            fwrite(output, 1, sizeof output, out);
            ++windows;
        }
    }
#else
    while (fread(input, 1, sizeof input, in) == sizeof input) {
        harlite_engine_invoke(input, output);
        fwrite(output, 1, sizeof output, out);
        ++windows;
    }
#endif
    fclose(in);
    fclose(out);
    printf("engine: windows=%lu ticks=%lu worst=%lu calibration_ticks=%lu calibration_instructions=%lu "
           "stack=%lu scratch=%lu\n",
           windows, ticks, worst, calibration, 2ul * 1000000ul, stack, (unsigned long)HARLITE_ENGINE_SCRATCH_BYTES);
    return 0;
}
