/*
 * The firmware's portable part (harlite_pipeline.h: front end, model, smoothing, serial lines) on a
 * recording, as the sketch runs it: for the host, and for the Cortex-M4 under QEMU (semihosting).
 *
 * It reads raw_f32.bin in the working folder (n samples x HARLITE_NUM_RAW float32, little-endian) and
 * prints the banner, one "# pred" line per window (smoothing majority:3, the sketch's default) and a
 * line of figures. The model is harlite's C engine (harlite_engine.h), or TFLM when built with
 * -DHARLITE_TFLM and tflm_model.cc. Every sample is also formatted as its CSV row (not printed).
 *
 * On the Cortex-M4 (QEMU -icount shift=0) SysTick counts instructions, 40 to a tick, which a loop of
 * known length calibrates; the pred line's invoke_ms is then the model's instructions / 64,000 (its time
 * at one instruction per cycle of the nRF52840's 64 MHz) and the figures give ticks per part. The stack
 * below this program's frame is painted before the pipeline's calls and checked after them: "stack" is
 * the deepest the pipeline reached, "model_stack" the model's call alone. On the host those are 0.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "harlite_pipeline.h"

#ifdef HARLITE_TFLM
#include "tflm_model.h"
#define MODEL_INVOKE harlite_tflm_invoke
#define MODEL_FEATURES harlite_tflm_invoke_features
#else
#include "harlite_engine.h"
#define MODEL_INVOKE harlite_engine_invoke
#define MODEL_FEATURES harlite_engine_invoke_features
#endif

#define PAINT_WORDS 1024u /* 4 KiB of stack painted */
#define MARGIN_WORDS 16u  /* left alone below main's stack pointer: paint() and depth() run there */
#define PAINT 0xa5a5a5a5u
#define CLOCK_HZ 64000000u
#define LOOPS 1000000u /* of two instructions: the calibration */

#if defined(__arm__)
#define SYST_CSR (*(volatile uint32_t *)0xe000e010u)
#define SYST_RVR (*(volatile uint32_t *)0xe000e014u)
#define SYST_CVR (*(volatile uint32_t *)0xe000e018u)
#define STACK_POINTER(sp) __asm__ volatile("mov %0, sp" : "=r"(sp))

static uint32_t now(void) { return SYST_CVR; }
static uint32_t since(uint32_t t0) { return (t0 - SYST_CVR) & 0xffffffu; } /* SysTick counts down */

/* SysTick on (processor clock), then its ticks for 2 * LOOPS instructions. */
static uint32_t start_clock(void) {
    uint32_t n = LOOPS, t0;
    SYST_RVR = 0xffffffu;
    SYST_CVR = 0u;
    SYST_CSR = 5u;
    t0 = now();
    __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
    return since(t0);
}
#else
#define STACK_POINTER(sp) ((sp) = NULL)
static uint32_t now(void) { return 0; }
static uint32_t since(uint32_t t0) { return t0; }
static uint32_t start_clock(void) { return 1; }
#endif

/* The stack below main's stack pointer sp: painted; then the bytes the calls since reached (an upper
 * bound: the margin counts as used). Nothing on the host. */
static void paint(volatile uint32_t *sp) {
    uint32_t i;
    for (i = MARGIN_WORDS + 1; sp && i <= MARGIN_WORDS + PAINT_WORDS; i++) sp[-(int32_t)i] = PAINT;
}
static uint32_t depth(volatile uint32_t *sp) {
    uint32_t i = MARGIN_WORDS + PAINT_WORDS;
    while (sp && i > MARGIN_WORDS && sp[-(int32_t)i] == PAINT) i--;
    return sp ? 4u * i : 0u;
}

static uint32_t max_u32(uint32_t a, uint32_t b) { return a > b ? a : b; }

/* The banner, part by part into the line buffer as the sketch prints it. */
static void print_banner(char *line) {
    int part;
    for (part = 0; harlite_format_banner(line, part, "harlite_har", "none") >= 0; part++) printf("%s", line);
    printf("\n");
}

int main(void) {
    static harlite_pipeline_t p;
    static float block[HARLITE_HOP][HARLITE_NUM_RAW];
    static char line[HARLITE_LINE_MAX];
#ifdef HARLITE_TFLM
    int8_t *input = NULL, *output = NULL;
#else
    static int8_t model_input[HARLITE_WINDOW_BYTES], model_output[HARLITE_NUM_CLASSES];
#if HARLITE_UNKNOWN
    static int8_t features[HARLITE_FEATURES_BYTES]; /* the model's other outputs: the unknown decision reads them */
#endif
    int8_t *input = model_input, *output = model_output;
#endif
    unsigned long windows = 0, model = 0, worst = 0, push = 0, report = 0, rows = 0, failed = 0;
    uint32_t stack = 0, model_stack = 0, calibration;
    volatile uint32_t *base;
    FILE *f = fopen("raw_f32.bin", "rb");
    size_t n, i;
    if (!f) {
        printf("run_pipeline: cannot open raw_f32.bin\n");
        return 1;
    }
#ifdef HARLITE_TFLM
    if (harlite_tflm_init(&input, &output) != 0) {
        printf("run_pipeline: TFLM setup failed\n");
        return 1;
    }
#endif
    calibration = start_clock();
    STACK_POINTER(base);
    harlite_pipeline_init(&p, MODEL_INVOKE, input, output, HARLITE_SMOOTH_MAJORITY, 3, 0.0f);
#if HARLITE_UNKNOWN
    harlite_pipeline_features(&p, MODEL_FEATURES, features);
#endif
    print_banner(line);
    while ((n = fread(block, sizeof block[0], HARLITE_HOP, f)) > 0) {
        int ready = 0;
        paint(base);
        for (i = 0; i < n; i++) {
            uint32_t t0 = now();
            harlite_format_sample(line, p.next, block[i]);
            rows += since(t0);
            t0 = now();
            ready |= harlite_pipeline_push(&p, block[i], 1) == HARLITE_PUSH_WINDOW;
            push += since(t0);
        }
        if (ready) { /* one window a hop at most: the block is one hop */
            uint32_t t0, ticks, status;
            stack = max_u32(stack, depth(base));
            paint(base);
            t0 = now();
            status = (uint32_t)harlite_pipeline_invoke(&p);
            ticks = since(t0);
            model_stack = max_u32(model_stack, depth(base));
            stack = max_u32(stack, model_stack);
            model += ticks;
            worst = ticks > worst ? ticks : worst;
            failed += status != 0;
            paint(base);
            t0 = now();
            /* ticks * (2 * LOOPS / calibration) instructions, at one a cycle of CLOCK_HZ */
            harlite_pipeline_report(&p, line, (uint32_t)(((uint64_t)ticks * 2u * LOOPS / calibration +
                                                          CLOCK_HZ / 2000u) / (CLOCK_HZ / 1000u)));
            report += since(t0);
            windows++;
        }
        stack = max_u32(stack, depth(base));
        if (ready) printf("%s\n", line);
    }
    fclose(f);
    printf("figures: samples=%lu windows=%lu failed=%lu model_ticks=%lu model_worst_ticks=%lu push_ticks=%lu "
           "report_ticks=%lu sample_line_ticks=%lu calibration_ticks=%lu calibration_instructions=%lu stack=%lu "
           "model_stack=%lu\n",
           (unsigned long)p.next, windows, failed, model, worst, push, report, rows, (unsigned long)calibration,
           2ul * LOOPS, (unsigned long)stack, (unsigned long)model_stack);
    return failed != 0;
}
