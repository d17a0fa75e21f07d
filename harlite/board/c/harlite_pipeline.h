/*
 * harlite pipeline: what the firmware does with each raw sample, in portable C99, shared by the sketch
 * (harlite_har.ino, with TFLM or with harlite's C engine) and the tests that run it under QEMU.
 *
 *   raw sample -> front end (harlite_core.h) -> a window every hop, copied into the model's input
 *              -> the model (a function: harlite_engine_invoke, or the sketch's TFLM call)
 *              -> smoothing -> the "# pred" line (harlite_serial.h)
 *
 * The model call is a step of its own, so that the sketch can run it in a thread of lower priority
 * while samples keep arriving (the engine needs about 23 ms at 64 MHz for the released model, longer
 * than a 20 ms sample period):
 *
 *   static harlite_pipeline_t p;  static int8_t in[HARLITE_WINDOW_BYTES], out[HARLITE_NUM_CLASSES];
 *   harlite_pipeline_init(&p, harlite_engine_invoke, in, out, HARLITE_SMOOTH_MAJORITY, 3, 0.0f);
 *   for each sample:                                    sampling loop
 *     harlite_format_sample(line, p.next, raw);         (optional: the sample's CSV row)
 *     if (harlite_pipeline_push(&p, raw, idle) == HARLITE_PUSH_WINDOW) start the model;
 *   harlite_pipeline_invoke(&p);                        the model's thread (or right away)
 *   harlite_pipeline_report(&p, line, invoke_ms);       sampling loop, once the model is done
 *
 * (or harlite_pipeline_predict for the prediction as numbers instead of a line). While the model runs,
 * the caller must not push with model_idle set (that writes the input) nor report (that reads the
 * output); nothing else is shared. No allocation; not reentrant per pipeline. harlite.h wraps all of it
 * in one call per sample for a program that runs the model right away.
 */
#ifndef HARLITE_PIPELINE_H
#define HARLITE_PIPELINE_H

#include <stdint.h>

#include "harlite_core.h"
#include "harlite_serial.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The model: int8 input [HARLITE_WINDOW][HARLITE_NUM_CHANNELS] to int8 scores [HARLITE_NUM_CLASSES];
 * returns 0 on success (harlite_engine_invoke has this signature). It starts every window from a zero
 * state. */
typedef int (*harlite_model_fn)(const int8_t *input, int8_t *output);

typedef struct {
    harlite_frontend_t front_end;
    harlite_smoother_t smoother;
    harlite_model_fn model;
    int8_t *input;         /* HARLITE_WINDOW_BYTES: the window the model runs on */
    int8_t *output;        /* HARLITE_NUM_CLASSES: its scores */
    uint32_t next;         /* index of the next sample (its time is next / HARLITE_RATE_HZ s) */
    uint32_t window_start; /* first sample of the window in input */
} harlite_pipeline_t;

/* One window's prediction (harlite_pipeline_predict, harlite_push). Fields may be added at the end of
 * a group in later versions: use the names, not the layout. */
typedef struct {
    uint32_t start;        /* index of the window's first sample (samples since init; lost samples count) */
    uint32_t end;          /* one past its last sample: the window holds samples [start, end) */
    float start_s, end_s;  /* the same in seconds (index / HARLITE_RATE_HZ) */
    int32_t label;         /* the window's class: the largest score, ties to the lowest index */
    int32_t smoothed;      /* the smoothed class (the pipeline's smoothing) */
    float probability;     /* probabilities[label] */
    float probabilities[HARLITE_NUM_CLASSES]; /* (scores - HARLITE_OUTPUT_ZERO_POINT) * HARLITE_OUTPUT_SCALE */
    int8_t scores[HARLITE_NUM_CLASSES];       /* the model's int8 output */
} harlite_prediction_t;

/* What harlite_pipeline_push found. */
#define HARLITE_PUSH_NONE 0    /* no window completed */
#define HARLITE_PUSH_WINDOW 1  /* a window is in input: run the model */
#define HARLITE_PUSH_SKIPPED 2 /* a window completed while the model was busy: it is skipped */

/* Configure and reset: the model, its input and output buffers (e.g. the model's own tensors), and the
 * smoothing (see harlite_smoother_init). Returns 0 for an invalid smoothing setting, 1 otherwise. */
int harlite_pipeline_init(harlite_pipeline_t *p, harlite_model_fn model, int8_t *input, int8_t *output,
                          harlite_smoothing_t mode, unsigned k, float alpha);

/* Add raw sample p->next (HARLITE_NUM_RAW values, the model's axes and units) to the front end; when it
 * completes a window and model_idle is set, copies the window into the model's input. */
int harlite_pipeline_push(harlite_pipeline_t *p, const float raw[HARLITE_NUM_RAW], int model_idle);

/* `lost` samples never arrived: skip their times and restart the front end and the smoother. */
void harlite_pipeline_gap(harlite_pipeline_t *p, uint32_t lost);

/* Run the model on the window in input; returns the model's status (0: ok). */
int harlite_pipeline_invoke(harlite_pipeline_t *p);

/* Smooth the model's output (once per window) and describe the window in *prediction. */
void harlite_pipeline_predict(harlite_pipeline_t *p, harlite_prediction_t *prediction);

/* harlite_pipeline_predict, then the window's "# pred" line (no newline) into line[HARLITE_LINE_MAX];
 * returns its length. */
int harlite_pipeline_report(harlite_pipeline_t *p, char *line, uint32_t invoke_ms);

#ifdef __cplusplus
}
#endif

#endif /* HARLITE_PIPELINE_H */
