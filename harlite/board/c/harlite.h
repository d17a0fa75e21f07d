/*
 * harlite.h: a harlite model as a C library. Push raw sensor samples one at a time; every hop samples,
 * once a window is full, you get the window's prediction. Portable C99 (and C++), no allocation, no
 * TFLite Micro, no Arduino: the model runs in harlite's C engine (harlite_engine.h), and everything
 * model-specific comes from the generated harlite_model_config.h.
 *
 *   #include "harlite.h"
 *
 *   static harlite_t har;                      (2,524 bytes for the released model; plus the engine's
 *                                               static scratch, HARLITE_ENGINE_SCRATCH_BYTES)
 *   harlite_init_calibrated(&har);            (or harlite_init(&har, HARLITE_SMOOTH_MAJORITY, 3, 0.0f))
 *   every 1 / HARLITE_RATE_HZ seconds:
 *     float raw[HARLITE_NUM_RAW] = {...};      (the model's units and axes, see below)
 *     harlite_prediction_t pred;
 *     if (harlite_push(&har, raw, &pred) == 1)
 *       printf("%s %.2f\n", harlite_label(pred.smoothed), pred.probability);
 *
 * Samples: HARLITE_NUM_RAW values in the order of HARLITE_RAW_NAMES (acc_x, acc_y, acc_z in g, then, for
 * a model that reads a gyroscope, gyro_x, gyro_y, gyro_z in rad/s), at HARLITE_RATE_HZ, in the axes of
 * the data the model was trained on. A window is HARLITE_WINDOW samples; a new one completes every
 * HARLITE_HOP samples, the first when sample HARLITE_WINDOW - 1 arrives. The call that completes a window
 * runs the model (the released model: about 1.5 M instructions on a Cortex-M4); the others only filter
 * and quantize the sample (a few hundred instructions).
 *
 * The prediction (harlite_prediction_t, harlite_pipeline.h): the window's samples [start, end) and the
 * same in seconds; label, the window's decision: its class (the model's top score), or HARLITE_UNKNOWN_CLASS
 * (= HARLITE_NUM_CLASSES, harlite_label() "unknown") when the bundle has an unknown decision (HARLITE_UNKNOWN
 * 1 in harlite_model_config.h) and the window is none of its classes; smoothed, the label to report after
 * post-processing (as `harlite simulate --smoothing` does it, see harlite_smoother_init in harlite_core.h;
 * a class or HARLITE_UNKNOWN_CLASS); top, the class of the top score whatever the decision, and
 * probability, its probability; scores and probabilities of every class. harlite_format_decision
 * (harlite_serial.h) writes it as the "# pred" line the harlite firmware prints.
 *
 * One harlite_t per sensor stream; not reentrant (the engine's scratch buffer is one static array: run
 * one model at a time). To run the model in another thread than the sampling loop, use the pipeline
 * (harlite_pipeline.h) directly, as the harlite_har sketch does.
 */
#ifndef HARLITE_H
#define HARLITE_H

#include <stdint.h>

#include "harlite_core.h"
#include "harlite_model_config.h"
#include "harlite_pipeline.h"
#include "harlite_serial.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HARLITE_API_VERSION 2 /* bumped when a call or a field changes meaning (2: label may be unknown) */

/* The state of one stream: the pipeline (front end, smoother) and the model's input and output. */
typedef struct {
    harlite_pipeline_t pipeline;
    int8_t input[HARLITE_WINDOW_BYTES];
    int8_t output[HARLITE_NUM_CLASSES];
#if HARLITE_UNKNOWN
    int8_t features[HARLITE_FEATURES_BYTES]; /* the model's other outputs, which the unknown decision reads */
#endif
} harlite_t;

/* Set up a stream with a smoothing of the predictions: HARLITE_SMOOTH_NONE, HARLITE_SMOOTH_MAJORITY over
 * the last k windows (1..HARLITE_MAJORITY_MAX), or HARLITE_SMOOTH_EMA with alpha in (0, 1]. Returns 1,
 * or 0 for an invalid setting (then the stream is not usable). */
int harlite_init(harlite_t *h, harlite_smoothing_t smoothing, unsigned k, float alpha);

/* harlite_init with the post-processing `harlite calibrate` chose for the bundle on its validation
 * recordings (HARLITE_POSTPROCESS_* in harlite_model_config.h: smoothing, dwell, hysteresis), or the
 * majority of the last 3 windows when the bundle has none. Returns 1 (0 only for a config header edited
 * into an invalid setting). */
int harlite_init_calibrated(harlite_t *h);

/* After harlite_init: a new label is reported once it has come `dwell` windows in a row
 * (1..HARLITE_DWELL_MAX) and, with NONE or EMA, once its smoothed score beats the reported label's by
 * `hysteresis` (0 <= h < 1; 0 with MAJORITY). Returns 1, or 0 for an invalid setting (nothing changes). */
int harlite_hold(harlite_t *h, unsigned dwell, float hysteresis);

/* Add one sample (HARLITE_NUM_RAW values). Returns 1 when it completed a window: *prediction is that
 * window's; 0 when it did not (*prediction untouched); -1 when the model failed on the window. */
int harlite_push(harlite_t *h, const float raw[HARLITE_NUM_RAW], harlite_prediction_t *prediction);

/* `lost` samples never arrived (a sensor or a bus hiccup): their indexes are skipped, and the stream
 * starts over (the next window completes HARLITE_WINDOW samples later; the smoothing forgets). */
void harlite_gap(harlite_t *h, uint32_t lost);

/* Start over from sample index 0, keeping the smoothing setting. */
void harlite_reset(harlite_t *h);

/* harlite_label(index) (harlite_serial.h): the name of a class or "unknown", e.g. harlite_label(pred.smoothed). */

#ifdef __cplusplus
}
#endif

#endif /* HARLITE_H */
