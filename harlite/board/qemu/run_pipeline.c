/*
 * The firmware's per-sample path on a recording, as a program using harlite.h runs it: for the host, and
 * for each emulated core under QEMU (semihosting: files and stdout go to the host).
 *
 * It reads raw_f32.bin in the working folder (n samples x HARLITE_NUM_RAW float32, little-endian), pushes
 * every sample through harlite_push (front end, the C engine, smoothing majority:3, the sketch's default),
 * formats every sample's CSV row (not printed), and prints the banner, one "# pred" line per window and a
 * line of figures. Built with -DHARLITE_TFLM (and tflm_model.cc), the model is TFLite Micro instead, run
 * through the pipeline (harlite_pipeline.h) as the sketch's TFLM path runs it.
 *
 * Counting instructions (QEMU -icount shift=0, one instruction a nanosecond of virtual time): on Arm
 * M-profile cores SysTick on the processor clock, on RISC-V the minstret counter; a loop of known length
 * calibrates either. The pred line's invoke_ms is the model's instructions / 64,000 (its time at one
 * instruction per cycle of the nRF52840's 64 MHz). The stack below main's frame is painted before each
 * hop of samples and checked after it: "stack" is the deepest the path reached. On the host the counts
 * and the stack are 0.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "harlite_pipeline.h"
#ifdef HARLITE_TFLM
#include "tflm_model.h"
#else
#include "harlite.h"
#include "harlite_engine.h"
#endif

#ifndef PAINT_WORDS
#define PAINT_WORDS 1024u /* 4 KiB of stack painted */
#endif
#define MARGIN_WORDS 16u /* left alone below main's stack pointer: paint() and depth() run there */
#define PAINT 0xa5a5a5a5u
#define CLOCK_HZ 64000000u
#define LOOPS 1000000u /* of two instructions: the calibration */

#if defined(__arm__)
#define SYST_CSR (*(volatile uint32_t *)0xe000e010u)
#define SYST_RVR (*(volatile uint32_t *)0xe000e014u)
#define SYST_CVR (*(volatile uint32_t *)0xe000e018u)
#define STACK_POINTER(sp) __asm__ volatile("mov %0, sp" : "=r"(sp))
#if __ARM_ARCH_ISA_THUMB == 1 /* ARMv6-M: GCC passes inline assembly in divided syntax, where sub sets flags */
#define LOOP(n) __asm__ volatile("1: sub %0, #1\n\tbne 1b" : "+l"(n) : : "cc")
#else
#define LOOP(n) __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+l"(n) : : "cc")
#endif
static uint32_t now(void) { return SYST_CVR; }
static uint32_t since(uint32_t t0) { return (t0 - SYST_CVR) & 0xffffffu; } /* SysTick counts down */
static void clock_on(void) {
    SYST_RVR = 0xffffffu;
    SYST_CVR = 0u;
    SYST_CSR = 5u; /* enabled, processor clock, no interrupt */
}
#elif defined(__riscv)
#define STACK_POINTER(sp) __asm__ volatile("mv %0, sp" : "=r"(sp))
#define LOOP(n) __asm__ volatile("1: addi %0, %0, -1\n\tbnez %0, 1b" : "+r"(n))
static uint32_t now(void) {
    uint32_t t;
    __asm__ volatile("csrr %0, minstret" : "=r"(t));
    return t;
}
static uint32_t since(uint32_t t0) { return now() - t0; }
static void clock_on(void) {}
#else
#define STACK_POINTER(sp) ((sp) = NULL)
#define LOOP(n) ((void)(n))
static uint32_t now(void) { return 0; }
static uint32_t since(uint32_t t0) { return t0; }
static void clock_on(void) {}
#endif

/* The clock's ticks for 2 * LOOPS instructions (1 on the host). */
static uint32_t calibrate(void) {
    uint32_t n = LOOPS, t0, ticks;
    clock_on();
    t0 = now();
    LOOP(n);
    ticks = since(t0);
    return ticks ? ticks : 1u;
}

static volatile uint32_t *base; /* main's stack pointer */

/* The stack below main's stack pointer: painted; then the bytes the calls since reached (an upper bound:
 * the margin counts as used). Nothing on the host. */
static void paint(void) {
    uint32_t i;
    for (i = MARGIN_WORDS + 1; base && i <= MARGIN_WORDS + PAINT_WORDS; i++) base[-(int32_t)i] = PAINT;
}
static uint32_t depth(void) {
    uint32_t i = MARGIN_WORDS + PAINT_WORDS;
    while (base && i > MARGIN_WORDS && base[-(int32_t)i] == PAINT) i--;
    return base ? 4u * i : 0u;
}

/* The model, timed: the pipeline calls it through this. */
static harlite_model_fn model;
static unsigned long model_ticks, model_worst;
static uint32_t last_ticks;
static int timed_model(const int8_t *input, int8_t *output) {
    const uint32_t t0 = now();
    const int status = model(input, output);
    last_ticks = since(t0);
    model_ticks += last_ticks;
    model_worst = last_ticks > model_worst ? last_ticks : model_worst;
    return status;
}

#ifdef HARLITE_TFLM
static harlite_pipeline_t pipeline;
static harlite_pipeline_t *set_up(void) {
    int8_t *input, *output;
    if (harlite_tflm_init(&input, &output) != 0) return NULL;
    model = harlite_tflm_invoke;
    harlite_pipeline_init(&pipeline, timed_model, input, output, HARLITE_SMOOTH_MAJORITY, 3, 0.0f);
    return &pipeline;
}
/* harlite_push's steps, with TFLM as the model. */
static int push(const float *raw, harlite_prediction_t *prediction) {
    if (harlite_pipeline_push(&pipeline, raw, 1) != HARLITE_PUSH_WINDOW) return 0;
    if (harlite_pipeline_invoke(&pipeline) != 0) return -1;
    harlite_pipeline_predict(&pipeline, prediction);
    return 1;
}
#else
static harlite_t har;
static harlite_pipeline_t *set_up(void) {
    harlite_init(&har, HARLITE_SMOOTH_MAJORITY, 3, 0.0f);
    model = har.pipeline.model; /* harlite_engine_invoke, timed from here on */
    har.pipeline.model = timed_model;
    return &har.pipeline;
}
static int push(const float *raw, harlite_prediction_t *prediction) { return harlite_push(&har, raw, prediction); }
#endif

int main(void) {
    static float block[HARLITE_HOP][HARLITE_NUM_RAW];
    static char line[HARLITE_LINE_MAX];
    harlite_prediction_t prediction;
    harlite_pipeline_t *p;
    unsigned long windows = 0, pushes = 0, report = 0, rows = 0, failed = 0;
    uint32_t stack = 0, calibration;
    int part;
    FILE *f = fopen("raw_f32.bin", "rb");
    size_t n, i;
    if (!f) {
        printf("run_pipeline: cannot open raw_f32.bin\n");
        return 1;
    }
    p = set_up();
    if (!p) {
        printf("run_pipeline: the model's setup failed\n");
        return 1;
    }
    calibration = calibrate();
    STACK_POINTER(base);
    for (part = 0; harlite_format_banner(line, part, "harlite_har", "none") >= 0; part++) printf("%s", line);
    printf("\n");
    while ((n = fread(block, sizeof block[0], HARLITE_HOP, f)) > 0) {
        int ready = 0;
        paint();
        for (i = 0; i < n; i++) {
            uint32_t t0 = now();
            int status;
            harlite_format_sample(line, p->next, block[i]);
            rows += since(t0);
            t0 = now();
            status = push(block[i], &prediction);
            pushes += since(t0);
            failed += status < 0;
            ready |= status == 1;
        }
        stack = depth() > stack ? depth() : stack;
        if (ready) { /* one window a hop at most: the block is one hop */
            /* the model's ticks * (2 * LOOPS / calibration) instructions, at one a cycle of CLOCK_HZ */
            const uint32_t ms = (uint32_t)(((uint64_t)last_ticks * 2u * LOOPS / calibration + CLOCK_HZ / 2000u) /
                                           (CLOCK_HZ / 1000u));
            const uint32_t t0 = now();
            harlite_format_prediction(line, prediction.start, prediction.scores, prediction.smoothed, ms);
            report += since(t0);
            windows++;
            printf("%s\n", line);
        }
    }
    fclose(f);
    printf("figures: samples=%lu windows=%lu failed=%lu model_ticks=%lu model_worst_ticks=%lu push_ticks=%lu "
           "report_ticks=%lu sample_line_ticks=%lu calibration_ticks=%lu calibration_instructions=%lu stack=%lu\n",
           (unsigned long)p->next, windows, failed, model_ticks, model_worst, pushes, report, rows,
           (unsigned long)calibration, 2ul * LOOPS, (unsigned long)stack);
    return failed != 0;
}
