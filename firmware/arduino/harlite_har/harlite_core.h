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

/* Post-processing of the windows' decisions, as `harlite simulate --smoothing` does it. A decision is a
 * class, or HARLITE_UNKNOWN_CLASS (= HARLITE_NUM_CLASSES) for a window that is none of them
 * (harlite_unknown_decide). Each window gets a score vector of HARLITE_NUM_CLASSES + 1 entries: a known
 * window's dequantized probabilities p = (q - OUTPUT_ZERO_POINT) * OUTPUT_SCALE and 0 for unknown, an
 * unknown window 1 for unknown and 0 for the classes.
 *   NONE:        the window's decision;
 *   MAJORITY, k: the most frequent decision among the last k (fewer at the start), ties going to the
 *                tied one seen most recently;
 *   EMA, alpha:  s_0 = v_0, s_t = alpha * v_t + (1 - alpha) * s_{t-1} on the score vectors, in float32;
 *                argmax s_t (ties to the lowest index).
 * Then, set by harlite_smoother_hold: hysteresis h (NONE and EMA): the smoothed label replaces the
 * reported one only if its score is at least the reported one's + h; dwell d: only once the same new
 * label has come d windows in a row. The first window reports its smoothed label. */
typedef enum { HARLITE_SMOOTH_NONE = 0, HARLITE_SMOOTH_MAJORITY = 1, HARLITE_SMOOTH_EMA = 2 } harlite_smoothing_t;

#define HARLITE_MAJORITY_MAX 32 /* largest k for MAJORITY */
#define HARLITE_DWELL_MAX 255   /* largest dwell */
#define HARLITE_UNKNOWN_CLASS HARLITE_NUM_CLASSES /* the decision and reported label "unknown" */

typedef struct {
    float ema[HARLITE_NUM_CLASSES + 1];
    float alpha, hysteresis;
    uint8_t history[HARLITE_MAJORITY_MAX]; /* decisions, a ring */
    uint8_t mode, k, count, next, dwell, waited;
    int16_t reported, pending; /* -1: none yet */
} harlite_smoother_t;

/* Configure (dwell 1, hysteresis 0) and reset; returns 0 for an invalid setting (k outside
 * 1..HARLITE_MAJORITY_MAX for MAJORITY, alpha outside (0, 1] for EMA, an unknown mode), 1 otherwise. k and
 * alpha are ignored by the modes that do not use them. */
int harlite_smoother_init(harlite_smoother_t *sm, harlite_smoothing_t mode, unsigned k, float alpha);

/* Set dwell (1..HARLITE_DWELL_MAX) and hysteresis (0 <= h < 1; 0 with MAJORITY) and reset; returns 0 (and
 * changes nothing) for an invalid setting, 1 otherwise. */
int harlite_smoother_hold(harlite_smoother_t *sm, unsigned dwell, float hysteresis);

/* Forget the prediction history, keeping the settings. */
void harlite_smoother_reset(harlite_smoother_t *sm);

/* Feed one window's int8 model output (HARLITE_NUM_CLASSES scores) and its decision (a class, or
 * HARLITE_UNKNOWN_CLASS); returns the label to report (a class, or HARLITE_UNKNOWN_CLASS). */
int harlite_smoother_decide(harlite_smoother_t *sm, const int8_t scores[HARLITE_NUM_CLASSES], int decision);

/* harlite_smoother_decide with the window's top class as its decision. */
int harlite_smoother_update(harlite_smoother_t *sm, const int8_t scores[HARLITE_NUM_CLASSES]);

/* Index of the largest of n int8 scores, ties to the lowest index (the raw prediction). */
int harlite_argmax_int8(const int8_t *scores, int n);

/* The unknown decision of a model whose bundle has one (HARLITE_UNKNOWN 1 in harlite_model_config.h), in
 * integers, exactly as harlite/core/unknown.py: a window is unknown when its class-conditional
 * Mahalanobis distance (u = the hidden vector less its zero point, and per input channel the window's sum
 * and its last quarter's sum less its first quarter's) exceeds HARLITE_UNKNOWN_DISTANCE_THRESHOLD, or its
 * energy log(top probability) - max logit (in 2^-12 nats) exceeds HARLITE_UNKNOWN_ENERGY_THRESHOLD, or its
 * top class is the model's "other" class. window: the model's int8 input [HARLITE_WINDOW][channels];
 * scores: its class scores; features: its other outputs, the hidden vector then the logits
 * (HARLITE_FEATURES_BYTES, as harlite_engine_invoke_features writes them). distance and energy may be NULL.
 * Returns HARLITE_UNKNOWN_CLASS or the top class; without an unknown decision (or features NULL), always
 * the top class. */
int harlite_unknown_decide(const int8_t *window, const int8_t scores[HARLITE_NUM_CLASSES], const int8_t *features,
                           int64_t *distance, int32_t *energy);

#ifndef HARLITE_UNKNOWN
#define HARLITE_UNKNOWN 0
#endif
#if !HARLITE_UNKNOWN && !defined(HARLITE_FEATURES_BYTES)
#define HARLITE_FEATURES_BYTES 1 /* no other outputs are read */
#endif

#ifdef __cplusplus
}
#endif

#endif /* HARLITE_CORE_H */
