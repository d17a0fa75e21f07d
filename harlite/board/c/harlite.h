/*
 * harlite.h: a harlite model as a C library. Push raw sensor samples one at a time; every hop samples,
 * once a window is full, you get the window's prediction. Portable C99 (and C++), no allocation, no
 * TFLite Micro, no Arduino: the model runs in harlite's C engine (harlite_engine.h), and everything
 * model-specific comes from the generated harlite_model_config.h.
 *
 *   #include "harlite.h"
 *
 *   static harlite_t har;                      (2,452 bytes for the released model; plus the engine's
 *                                               static scratch, HARLITE_ENGINE_SCRATCH_BYTES)
 *   harlite_init(&har, HARLITE_SMOOTH_MAJORITY, 3, 0.0f);
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
 * same in seconds; label, the window's class (the model's top score), and smoothed, the class after
 * smoothing (as `harlite simulate --smoothing` does it, see harlite_smoother_init in harlite_core.h);
 * probability, that of label; scores and probabilities of every class. harlite_format_prediction
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

#define HARLITE_API_VERSION 1 /* bumped when a call or a field changes meaning */

/* The state of one stream: the pipeline (front end, smoother) and the model's input and output. */
typedef struct {
    harlite_pipeline_t pipeline;
    int8_t input[HARLITE_WINDOW_BYTES];
    int8_t output[HARLITE_NUM_CLASSES];
} harlite_t;

/* Set up a stream with a smoothing of the predictions: HARLITE_SMOOTH_NONE, HARLITE_SMOOTH_MAJORITY over
 * the last k windows (1..HARLITE_MAJORITY_MAX), or HARLITE_SMOOTH_EMA with alpha in (0, 1]. Returns 1,
 * or 0 for an invalid setting (then the stream is not usable). */
int harlite_init(harlite_t *h, harlite_smoothing_t smoothing, unsigned k, float alpha);

/* Add one sample (HARLITE_NUM_RAW values). Returns 1 when it completed a window: *prediction is that
 * window's; 0 when it did not (*prediction untouched); -1 when the model failed on the window. */
int harlite_push(harlite_t *h, const float raw[HARLITE_NUM_RAW], harlite_prediction_t *prediction);

/* `lost` samples never arrived (a sensor or a bus hiccup): their indexes are skipped, and the stream
 * starts over (the next window completes HARLITE_WINDOW samples later; the smoothing forgets). */
void harlite_gap(harlite_t *h, uint32_t lost);

/* Start over from sample index 0, keeping the smoothing setting. */
void harlite_reset(harlite_t *h);

/* harlite_label(index) (harlite_serial.h): the name of a class, e.g. harlite_label(pred.smoothed). */

#ifdef __cplusplus
}
#endif

#endif /* HARLITE_H */
