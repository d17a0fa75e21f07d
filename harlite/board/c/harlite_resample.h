/*
 * harlite resampler: timestamped samples at any rate, regular or not -> samples on the model's grid.
 *
 * What a phone's browser or any sensor without a fixed schedule needs in front of the front end
 * (harlite_core.h), and what `harlite simulate` does to a recording whose rate is not the model's
 * (harlite/core/resample.py is its Python twin; the tests prove both give the same bits):
 *
 *   - the first sample after a reset is t0; grid point k lies at t0 + k / HARLITE_RATE_HZ (double);
 *   - grid point k is ready once the first sample at t >= its time - HARLITE_RESAMPLE_SNAP_S has arrived;
 *     it takes that sample's values as they are when the sample lies within the snap distance of it (a
 *     clock written with rounding stays exact), else the linear interpolation, in double, between that
 *     sample and the one before it, rounded to float;
 *   - a sample whose time does not increase is dropped; an interval longer than
 *     HARLITE_RESAMPLE_GAP_PERIODS model periods restarts the grid at the new sample (the caller then
 *     resets its front end: the samples before and after do not belong to one window).
 *
 *   static harlite_resampler_t rs;  float grid[HARLITE_NUM_RAW];
 *   harlite_resampler_reset(&rs);
 *   for each sample (t in seconds, raw in the model's units and axes):
 *     if (harlite_resampler_push(&rs, t, raw) == HARLITE_RESAMPLE_RESTART) reset the front end;
 *     while (harlite_resampler_next(&rs, grid)) harlite_frontend_push(&fe, grid) ...;
 */
#ifndef HARLITE_RESAMPLE_H
#define HARLITE_RESAMPLE_H

#include <stdint.h>

#include "harlite_model_config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A sample this close (seconds) to a grid point counts as on it: the point takes its values as they are. */
#define HARLITE_RESAMPLE_SNAP_S 1e-6
/* An interval longer than this many model periods is a gap: the grid restarts after it. */
#define HARLITE_RESAMPLE_GAP_PERIODS 10

/* What harlite_resampler_push did with a sample. */
#define HARLITE_RESAMPLE_DROPPED (-1) /* its time did not increase (or is not a number): ignored */
#define HARLITE_RESAMPLE_OK 0
#define HARLITE_RESAMPLE_RESTART 1    /* it came after a gap: the grid starts again at it */

/* Resampler state; treat as opaque. */
typedef struct {
    double t0;                     /* time of grid point 0 */
    double prev_t, cur_t;          /* the last two samples' times */
    float prev[HARLITE_NUM_RAW];
    float cur[HARLITE_NUM_RAW];
    uint32_t next;                 /* the next grid point to emit */
    uint8_t held;                  /* samples held: 0, 1 or 2 */
} harlite_resampler_t;

/* Forget every sample: the next one starts a new grid. */
void harlite_resampler_reset(harlite_resampler_t *r);

/* Add one sample at time t (seconds); returns HARLITE_RESAMPLE_OK, _RESTART or _DROPPED. */
int harlite_resampler_push(harlite_resampler_t *r, double t, const float raw[HARLITE_NUM_RAW]);

/* Write the next grid sample that the samples so far determine into out; 0 when there is none. */
int harlite_resampler_next(harlite_resampler_t *r, float out[HARLITE_NUM_RAW]);

#ifdef __cplusplus
}
#endif

#endif /* HARLITE_RESAMPLE_H */
