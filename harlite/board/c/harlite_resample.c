/* harlite resampler: see harlite_resample.h. Mirrors harlite/core/resample.py. */
#include "harlite_resample.h"

#include <string.h>

/* p + w * (c - p) must round twice, as numpy does. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

void harlite_resampler_reset(harlite_resampler_t *r) { memset(r, 0, sizeof *r); }

int harlite_resampler_push(harlite_resampler_t *r, double t, const float raw[HARLITE_NUM_RAW]) {
    int status = HARLITE_RESAMPLE_OK;
    if (!(t == t) || (r->held && !(t > r->cur_t))) return HARLITE_RESAMPLE_DROPPED;
    if (r->held && t - r->cur_t > (double)HARLITE_RESAMPLE_GAP_PERIODS / (double)HARLITE_RATE_HZ) {
        harlite_resampler_reset(r);
        status = HARLITE_RESAMPLE_RESTART;
    }
    if (!r->held) r->t0 = t;
    r->prev_t = r->cur_t;
    memcpy(r->prev, r->cur, sizeof r->prev);
    r->cur_t = t;
    memcpy(r->cur, raw, sizeof r->cur);
    r->held = (uint8_t)(r->held ? 2 : 1);
    return status;
}

int harlite_resampler_next(harlite_resampler_t *r, float out[HARLITE_NUM_RAW]) {
    const double tau = r->t0 + (double)r->next / (double)HARLITE_RATE_HZ;
    int c;
    if (!r->held || tau > r->cur_t + HARLITE_RESAMPLE_SNAP_S) return 0;
    if (r->held == 1 || r->cur_t - tau <= HARLITE_RESAMPLE_SNAP_S) {
        memcpy(out, r->cur, sizeof r->cur); /* on the grid point, within the snap distance */
    } else {
        const double w = (tau - r->prev_t) / (r->cur_t - r->prev_t);
        for (c = 0; c < HARLITE_NUM_RAW; c++) {
            const double p = r->prev[c];
            out[c] = (float)(p + w * ((double)r->cur[c] - p));
        }
    }
    r->next++;
    return 1;
}
