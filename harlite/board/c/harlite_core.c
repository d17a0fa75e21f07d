/* harlite core: see harlite_core.h. Mirrors harlite/core/frontend.py; the golden-vector tests prove it. */
#include "harlite_core.h"

#include <string.h>

/* numpy rounds v * mul + add twice; a fused multiply-add (GCC's default in GNU modes, as on Arduino)
 * would round once and move some values by one LSB. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

static const uint8_t channel_kind[] = HARLITE_CHANNEL_KIND;
static const uint8_t channel_source[] = HARLITE_CHANNEL_SOURCE;
static const float input_mul[] = HARLITE_INPUT_MUL;
static const float input_add[] = HARLITE_INPUT_ADD;
static const float gravity_sos[][6] = HARLITE_GRAVITY_SOS;
static const float gravity_zi[][2] = HARLITE_GRAVITY_ZI;

/* A header whose lists disagree with its counts must not compile. */
#define HARLITE_CHECK(name, cond) typedef char harlite_check_##name[(cond) ? 1 : -1]
HARLITE_CHECK(kind_count, sizeof channel_kind == HARLITE_NUM_CHANNELS);
HARLITE_CHECK(source_count, sizeof channel_source == HARLITE_NUM_CHANNELS);
HARLITE_CHECK(mul_count, sizeof input_mul == HARLITE_NUM_CHANNELS * sizeof(float));
HARLITE_CHECK(add_count, sizeof input_add == HARLITE_NUM_CHANNELS * sizeof(float));
HARLITE_CHECK(sos_count, sizeof gravity_sos == HARLITE_GRAVITY_SECTIONS * 6 * sizeof(float));
HARLITE_CHECK(zi_count, sizeof gravity_zi == HARLITE_GRAVITY_SECTIONS * 2 * sizeof(float));
HARLITE_CHECK(hop_in_window, HARLITE_HOP >= 1 && HARLITE_HOP <= HARLITE_WINDOW && HARLITE_WINDOW <= 65535);
HARLITE_CHECK(raw_has_acc, HARLITE_NUM_RAW >= HARLITE_NUM_ACC);

void harlite_frontend_reset(harlite_frontend_t *fe) {
    int c;
    memset(fe, 0, sizeof *fe);
    fe->until_window = HARLITE_WINDOW;
    for (c = 0; c < HARLITE_NUM_CHANNELS; c++) {
        if (channel_kind[c] != HARLITE_CH_RAW && channel_source[c] < HARLITE_NUM_ACC) {
            fe->filtered |= (uint8_t)(1u << channel_source[c]);
        }
    }
}

/* One sample through the cascaded biquads (direct form II transposed, scipy.signal.sosfilt's
 * recurrence); on the first sample the state starts steady for a constant input x (zi * x). */
static float gravity_lowpass(float z[][2], float x, int first) {
    int s;
    if (first) {
        for (s = 0; s < HARLITE_GRAVITY_SECTIONS; s++) {
            z[s][0] = gravity_zi[s][0] * x;
            z[s][1] = gravity_zi[s][1] * x;
        }
    }
    for (s = 0; s < HARLITE_GRAVITY_SECTIONS; s++) {
        const float *c = gravity_sos[s];
        const float y = c[0] * x + z[s][0];
        z[s][0] = c[1] * x - c[4] * y + z[s][1];
        z[s][1] = c[2] * x - c[5] * y;
        x = y;
    }
    return x;
}

/* clamp(floor(v * mul + add + 0.5), -128, 127) without libm; NaN gives -128. */
static int8_t quantize(float v, float mul, float add) {
    const float t = v * mul + add + 0.5f;
    int i;
    if (!(t >= -128.0f)) return -128;
    if (t >= 127.0f) return 127;
    i = (int)t; /* truncates toward zero; step down for negative non-integers */
    if ((float)i > t) i--;
    return (int8_t)i;
}

int harlite_frontend_push(harlite_frontend_t *fe, const float raw[HARLITE_NUM_RAW]) {
    float gravity[HARLITE_NUM_RAW];
    int8_t *slot = fe->ring[fe->head];
    int r, c;
    for (r = 0; r < HARLITE_NUM_RAW; r++) { /* bits are set for acceleration axes only (reset) */
        gravity[r] = ((fe->filtered >> r) & 1) ? gravity_lowpass(fe->z[r], raw[r], fe->filled == 0) : 0.0f;
    }
    for (c = 0; c < HARLITE_NUM_CHANNELS; c++) {
        const int src = channel_source[c];
        const float v = channel_kind[c] == HARLITE_CH_RAW    ? raw[src]
                        : channel_kind[c] == HARLITE_CH_BODY ? raw[src] - gravity[src]
                                                             : gravity[src];
        slot[c] = quantize(v, input_mul[c], input_add[c]);
    }
    fe->head = (uint16_t)(fe->head + 1 == HARLITE_WINDOW ? 0 : fe->head + 1);
    if (fe->filled < HARLITE_WINDOW) fe->filled++;
    if (--fe->until_window) return 0;
    fe->until_window = HARLITE_HOP;
    return 1;
}

int harlite_frontend_window_int8(const harlite_frontend_t *fe, int8_t *out) {
    const size_t older = (size_t)(HARLITE_WINDOW - fe->head) * HARLITE_NUM_CHANNELS;
    if (fe->filled < HARLITE_WINDOW) return 0;
    memcpy(out, fe->ring[fe->head], older);
    memcpy(out + older, fe->ring[0], (size_t)fe->head * HARLITE_NUM_CHANNELS);
    return 1;
}

int harlite_argmax_int8(const int8_t *scores, int n) {
    int i, best = 0;
    for (i = 1; i < n; i++) {
        if (scores[i] > scores[best]) best = i;
    }
    return best;
}

int harlite_smoother_init(harlite_smoother_t *sm, harlite_smoothing_t mode, unsigned k, float alpha) {
    if (mode == HARLITE_SMOOTH_MAJORITY ? (k < 1 || k > HARLITE_MAJORITY_MAX)
        : mode == HARLITE_SMOOTH_EMA    ? !(alpha > 0.0f && alpha <= 1.0f)
                                        : mode != HARLITE_SMOOTH_NONE) {
        return 0;
    }
    sm->mode = (uint8_t)mode;
    sm->k = (uint8_t)(mode == HARLITE_SMOOTH_MAJORITY ? k : 1);
    sm->alpha = alpha;
    harlite_smoother_reset(sm);
    return 1;
}

void harlite_smoother_reset(harlite_smoother_t *sm) {
    sm->count = 0;
    sm->next = 0;
}

/* Most frequent class of the history, ties to the one seen most recently. */
static int majority(const harlite_smoother_t *sm, int newest) {
    int votes[HARLITE_NUM_CLASSES] = {0}, last[HARLITE_NUM_CLASSES] = {0};
    int j, c, best = newest; /* seen last of all, so it wins every tie it is in */
    for (j = 0; j < sm->count; j++) {
        const int cls = sm->history[(sm->next + sm->k - sm->count + j) % sm->k];
        votes[cls]++;
        last[cls] = j;
    }
    for (c = 0; c < HARLITE_NUM_CLASSES; c++) {
        if (votes[c] > votes[best] || (votes[c] == votes[best] && last[c] > last[best])) best = c;
    }
    return best;
}

int harlite_smoother_update(harlite_smoother_t *sm, const int8_t scores[HARLITE_NUM_CLASSES]) {
    const int cls = harlite_argmax_int8(scores, HARLITE_NUM_CLASSES);
    int i, best = 0;
    if (sm->mode == HARLITE_SMOOTH_MAJORITY) {
        sm->history[sm->next] = (uint8_t)cls;
        sm->next = (uint8_t)((sm->next + 1) % sm->k);
        if (sm->count < sm->k) sm->count++;
        return majority(sm, cls);
    }
    if (sm->mode != HARLITE_SMOOTH_EMA) return cls;
    for (i = 0; i < HARLITE_NUM_CLASSES; i++) {
        const float p = (float)(scores[i] - HARLITE_OUTPUT_ZERO_POINT) * HARLITE_OUTPUT_SCALE;
        sm->ema[i] = sm->count ? sm->alpha * p + (1.0f - sm->alpha) * sm->ema[i] : p;
        if (sm->ema[i] > sm->ema[best]) best = i;
    }
    sm->count = 1;
    return best;
}
