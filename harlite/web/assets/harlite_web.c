/*
 * harlite's WebAssembly module: the stream resampler (harlite_resample.h) in front of the C API the boards
 * and the arduino and cmake exports run (harlite.h: front end, engine, smoothing), behind a few exported
 * functions that harlite.js calls. No imports, no allocation: buffers are static and harlite.js reads them
 * through the exported memory.
 *
 *   hl_reset(mode, k, alpha)  start again (smoothing as harlite_smoother_init); 0 for a bad setting
 *   hl_sample()               where to write one raw sample (HARLITE_NUM_RAW floats) before hl_push
 *   hl_push(t)                add it at time t (seconds); returns the windows it completed (0..HL_MAX)
 *   hl_status()               what hl_push did with the sample (HARLITE_RESAMPLE_*)
 *   hl_grid(), hl_grid_count()  the samples on the model's grid that push made (what the model saw)
 *   hl_scores(), hl_smoothed(), hl_starts(), hl_inputs()  per completed window: int8 scores, the smoothed
 *                             class, its start (seconds after the first sample), its int8 input tensor
 *   hl_config(what)           the compiled-in model shape, for harlite.js to check against manifest.json
 */
#include <stdint.h>
#include <string.h>

#include "harlite.h"
#include "harlite_resample.h"

/* Grid samples (and so windows) one push can make: an interval is at most GAP_PERIODS periods. */
#define HL_MAX (HARLITE_RESAMPLE_GAP_PERIODS + 1)
#define HL_EXPORT(name) __attribute__((export_name(#name)))

static harlite_resampler_t resampler;
static harlite_t har;
static float sample[HARLITE_NUM_RAW];
static float grid[HL_MAX][HARLITE_NUM_RAW];
static int8_t inputs[HL_MAX][HARLITE_WINDOW_BYTES];
static int8_t scores[HL_MAX][HARLITE_NUM_CLASSES];
static int32_t smoothed[HL_MAX];
static double starts[HL_MAX];
static int32_t grid_count, status;
static double first_t, segment_start; /* the first sample's time; that of the segment's (since a restart) */
static int started;

HL_EXPORT(hl_sample) float *hl_sample(void) { return sample; }
HL_EXPORT(hl_grid) float *hl_grid(void) { return &grid[0][0]; }
HL_EXPORT(hl_grid_count) int32_t hl_grid_count(void) { return grid_count; }
HL_EXPORT(hl_status) int32_t hl_status(void) { return status; }
HL_EXPORT(hl_scores) int8_t *hl_scores(void) { return &scores[0][0]; }
HL_EXPORT(hl_smoothed) int32_t *hl_smoothed(void) { return smoothed; }
HL_EXPORT(hl_starts) double *hl_starts(void) { return starts; }
HL_EXPORT(hl_inputs) int8_t *hl_inputs(void) { return &inputs[0][0]; }

HL_EXPORT(hl_config) int32_t hl_config(int32_t what) {
    switch (what) {
    case 0: return HARLITE_NUM_RAW;
    case 1: return HARLITE_NUM_CHANNELS;
    case 2: return HARLITE_NUM_CLASSES;
    case 3: return HARLITE_WINDOW;
    case 4: return HARLITE_HOP;
    case 5: return (int32_t)((double)HARLITE_RATE_HZ * 1000.0 + 0.5); /* mHz */
    case 6: return HL_MAX;
    default: return -1;
    }
}

HL_EXPORT(hl_reset) int32_t hl_reset(int32_t mode, int32_t k, float alpha) {
    harlite_resampler_reset(&resampler);
    grid_count = status = 0;
    started = 0;
    return harlite_init(&har, (harlite_smoothing_t)mode, (unsigned)(k < 0 ? 0 : k), alpha);
}

HL_EXPORT(hl_push) int32_t hl_push(double t) {
    int32_t windows = 0;
    harlite_prediction_t pred;
    grid_count = 0;
    status = harlite_resampler_push(&resampler, t, sample);
    if (status == HARLITE_RESAMPLE_DROPPED) return 0;
    if (!started) {
        started = 1;
        first_t = segment_start = t;
    }
    if (status == HARLITE_RESAMPLE_RESTART) {
        harlite_reset(&har); /* sample indexes count from the restart again */
        segment_start = t;
    }
    while (grid_count < HL_MAX && harlite_resampler_next(&resampler, grid[grid_count])) {
        if (harlite_push(&har, grid[grid_count], &pred) == 1) {
            memcpy(inputs[windows], har.input, sizeof inputs[windows]);
            memcpy(scores[windows], pred.scores, sizeof scores[windows]);
            smoothed[windows] = pred.smoothed;
            starts[windows] = (segment_start - first_t) + (double)pred.start / (double)HARLITE_RATE_HZ;
            windows++;
        }
        grid_count++;
    }
    return windows;
}
