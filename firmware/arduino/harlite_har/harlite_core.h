/*
 * harlite core: the streaming front end and prediction smoothing of a harlite model, in portable C99.
 *
 * No allocation, no Arduino, no TFLM: everything is configured at compile time by the generated header
 * harlite_model_config.h (from the model's bundle, tflm/harlite_model_config.h), so the board computes
 * exactly what harlite's Python front end computes (harlite/core/frontend.py):
 *
 *   raw sample (acc x,y,z in g, gyro x,y,z in rad/s, the model's axes)
 *     -> causal gravity low-pass (float32 biquads, steady-state start on the first sample)
 *     -> channels (raw / raw - gravity / gravity, HARLITE_CHANNEL_KIND and _SOURCE)
 *     -> int8: q = clamp(floor(v * INPUT_MUL[c] + INPUT_ADD[c] + 0.5), -128, 127), once per sample
 *     -> ring of the last HARLITE_WINDOW quantized samples
 *     -> a window every HARLITE_HOP samples once HARLITE_WINDOW samples have arrived
 *        (window k covers samples [k*HOP, k*HOP + WINDOW), complete when sample k*HOP + WINDOW - 1 arrives).
 *
 * Typical loop (the Arduino sketch does this at 50 Hz):
 *
 *   static harlite_frontend_t fe;  static harlite_smoother_t sm;
 *   harlite_frontend_reset(&fe);   harlite_smoother_init(&sm, HARLITE_SMOOTH_MAJORITY, 3, 0.0f);
 *   for (;;) {
 *     float raw[HARLITE_NUM_RAW] = {...};
 *     if (harlite_frontend_push(&fe, raw)) {
 *       harlite_frontend_window_int8(&fe, input_tensor_int8);   // [window][channel]
 *       ... reset and invoke the model ...
 *       int cls = harlite_smoother_update(&sm, output_tensor_int8);
 *     }
 *   }
 *
 * Non-finite input is not meaningful: a NaN or overflow poisons the gravity filter until the next
 * reset (its channels then quantize to -128); it never causes undefined behaviour.
 */
#ifndef HARLITE_CORE_H
#define HARLITE_CORE_H

#include <stdint.h>

#include "harlite_model_config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of one int8 model input window, layout [window][channel]. */
#define HARLITE_WINDOW_BYTES (HARLITE_WINDOW * HARLITE_NUM_CHANNELS)

/* Raw channels that can have a gravity estimate: the accelerometer's, the first three. */
#define HARLITE_NUM_ACC 3

/* Front-end state; treat as opaque. About WINDOW*CHANNELS + 60 bytes. */
typedef struct {
    int8_t ring[HARLITE_WINDOW][HARLITE_NUM_CHANNELS];      /* quantized samples; oldest at `head` when full */
    float z[HARLITE_NUM_ACC][HARLITE_GRAVITY_SECTIONS][2];  /* gravity filter state per acceleration axis */
    uint16_t head;          /* ring slot the next sample goes to */
    uint16_t filled;        /* samples in the ring, up to HARLITE_WINDOW; 0 right after reset */
    uint16_t until_window;  /* samples still to come before the next window is complete */
    uint8_t filtered;       /* bit r set: acceleration axis r feeds a body or gravity channel */
} harlite_frontend_t;

/* Forget every sample and the filter state (call once before the first push, and after a gap). */
void harlite_frontend_reset(harlite_frontend_t *fe);

/* Add one raw sample (HARLITE_NUM_RAW values); returns 1 when a window has just become complete. */
int harlite_frontend_push(harlite_frontend_t *fe, const float raw[HARLITE_NUM_RAW]);

/* Copy the last HARLITE_WINDOW samples, oldest first, into out (HARLITE_WINDOW_BYTES int8, layout
 * [window][channel]), e.g. straight into the model's input tensor. Returns 0 (and leaves out alone)
 * while fewer than HARLITE_WINDOW samples have arrived since reset, 1 otherwise. */
int harlite_frontend_window_int8(const harlite_frontend_t *fe, int8_t *out);

/* Prediction smoothing, as `harlite simulate --smoothing` does it:
 *   NONE:        the class of the current window (argmax of its scores, ties to the lowest index);
 *   MAJORITY, k: the most frequent class among the last k raw predictions (fewer at the start),
 *                ties going to the tied class seen most recently;
 *   EMA, alpha:  s_0 = p_0, s_t = alpha * p_t + (1 - alpha) * s_{t-1} on the dequantized
 *                probabilities p = (q - OUTPUT_ZERO_POINT) * OUTPUT_SCALE, in float32; argmax s_t. */
typedef enum { HARLITE_SMOOTH_NONE = 0, HARLITE_SMOOTH_MAJORITY = 1, HARLITE_SMOOTH_EMA = 2 } harlite_smoothing_t;

#define HARLITE_MAJORITY_MAX 32 /* largest k for MAJORITY */

typedef struct {
    float ema[HARLITE_NUM_CLASSES];
    float alpha;
    uint8_t history[HARLITE_MAJORITY_MAX]; /* raw predictions, a ring */
    uint8_t mode, k, count, next;
} harlite_smoother_t;

/* Configure and reset; returns 0 for an invalid setting (k outside 1..HARLITE_MAJORITY_MAX for
 * MAJORITY, alpha outside (0, 1] for EMA, an unknown mode), 1 otherwise. k and alpha are ignored by the
 * modes that do not use them. */
int harlite_smoother_init(harlite_smoother_t *sm, harlite_smoothing_t mode, unsigned k, float alpha);

/* Forget the prediction history, keeping the mode. */
void harlite_smoother_reset(harlite_smoother_t *sm);

/* Feed one window's int8 model output (HARLITE_NUM_CLASSES scores); returns the smoothed class. */
int harlite_smoother_update(harlite_smoother_t *sm, const int8_t scores[HARLITE_NUM_CLASSES]);

/* Index of the largest of n int8 scores, ties to the lowest index (the raw prediction). */
int harlite_argmax_int8(const int8_t *scores, int n);

#ifdef __cplusplus
}
#endif

#endif /* HARLITE_CORE_H */
