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

#if HARLITE_UNKNOWN
static const int32_t unknown_center[] = HARLITE_UNKNOWN_CENTER;
static const int16_t unknown_rows[] = HARLITE_UNKNOWN_ROWS; /* upper triangle, row by row from the diagonal */
static const uint8_t unknown_shifts[] = HARLITE_UNKNOWN_SHIFTS;
static const int32_t unknown_means[][HARLITE_UNKNOWN_FEATURES] = HARLITE_UNKNOWN_MEANS;
HARLITE_CHECK(unknown_center_count, sizeof unknown_center == HARLITE_UNKNOWN_FEATURES * sizeof(int32_t));
HARLITE_CHECK(unknown_rows_count,
              sizeof unknown_rows == HARLITE_UNKNOWN_FEATURES * (HARLITE_UNKNOWN_FEATURES + 1) / 2 * sizeof(int16_t));
HARLITE_CHECK(unknown_shifts_count, sizeof unknown_shifts == HARLITE_UNKNOWN_FEATURES);
HARLITE_CHECK(unknown_means_count, sizeof unknown_means == HARLITE_NUM_CLASSES * sizeof unknown_means[0]);
HARLITE_CHECK(unknown_features, HARLITE_UNKNOWN_FEATURES == HARLITE_UNKNOWN_HIDDEN + 2 * HARLITE_NUM_CHANNELS);

/* round(log((q + 128) / 256) * 4096) for an int8 probability q (q = -128: half a step): harlite/core/unknown.py */
static const int16_t log_p[256] = {
    -25552, -22713, -19874, -18213, -17035, -16121, -15374, -14743, -14196, -13713, -13282, -12891, -12535, -12207, -11903, -11621,
    -11357, -11108, -10874, -10653, -10443, -10243, -10052, -9870, -9696, -9529, -9368, -9213, -9064, -8921, -8782, -8647,
    -8517, -8391, -8269, -8150, -8035, -7923, -7813, -7707, -7603, -7502, -7404, -7307, -7213, -7121, -7031, -6943,
    -6857, -6772, -6689, -6608, -6529, -6451, -6374, -6299, -6225, -6153, -6081, -6011, -5943, -5875, -5808, -5743,
    -5678, -5615, -5552, -5491, -5430, -5370, -5311, -5253, -5196, -5139, -5084, -5029, -4974, -4921, -4868, -4816,
    -4764, -4713, -4663, -4613, -4564, -4516, -4468, -4421, -4374, -4328, -4282, -4237, -4192, -4148, -4104, -4060,
    -4017, -3975, -3933, -3891, -3850, -3810, -3769, -3729, -3690, -3650, -3612, -3573, -3535, -3497, -3460, -3423,
    -3386, -3350, -3314, -3278, -3242, -3207, -3172, -3138, -3103, -3069, -3036, -3002, -2969, -2936, -2904, -2871,
    -2839, -2807, -2776, -2744, -2713, -2682, -2651, -2621, -2591, -2561, -2531, -2501, -2472, -2443, -2414, -2385,
    -2357, -2328, -2300, -2272, -2244, -2217, -2189, -2162, -2135, -2108, -2082, -2055, -2029, -2003, -1977, -1951,
    -1925, -1900, -1874, -1849, -1824, -1799, -1774, -1750, -1725, -1701, -1677, -1653, -1629, -1605, -1582, -1558,
    -1535, -1512, -1488, -1466, -1443, -1420, -1397, -1375, -1353, -1330, -1308, -1286, -1265, -1243, -1221, -1200,
    -1178, -1157, -1136, -1115, -1094, -1073, -1052, -1032, -1011, -991, -970, -950, -930, -910, -890, -870,
    -850, -831, -811, -792, -772, -753, -734, -715, -696, -677, -658, -639, -621, -602, -584, -565,
    -547, -529, -511, -492, -474, -457, -439, -421, -403, -386, -368, -351, -333, -316, -299, -281,
    -264, -247, -230, -213, -197, -180, -163, -147, -130, -114, -97, -81, -65, -48, -32, -16};

#define UNKNOWN_CLAMP (INT64_C(1) << 23)
#endif

int harlite_unknown_decide(const int8_t *window, const int8_t scores[HARLITE_NUM_CLASSES], const int8_t *features,
                           int64_t *distance, int32_t *energy) {
    const int top = harlite_argmax_int8(scores, HARLITE_NUM_CLASSES);
#if HARLITE_UNKNOWN
    if (!features) {
        if (distance) *distance = 0;
        if (energy) *energy = 0;
        return top;
    }
    {
    enum { D = HARLITE_UNKNOWN_FEATURES, U = HARLITE_UNKNOWN_HIDDEN, C = HARLITE_NUM_CHANNELS,
           Q = HARLITE_WINDOW / 4 };
    /* v = u - centre (int32: |u| <= 128 * HARLITE_WINDOW); the class distances accumulate as each whitened
     * coordinate comes out, so neither u nor z is kept whole (stack and time on a Cortex-M0/M4) */
    int32_t v[D];
    int64_t d[HARLITE_NUM_CLASSES], best = INT64_MAX;
    int32_t e, logit_max;
    int j, k, c, t;
    const int16_t *a = unknown_rows;
    for (j = 0; j < U; j++) v[j] = (int32_t)features[j] - HARLITE_UNKNOWN_HIDDEN_ZERO_POINT - unknown_center[j];
    for (c = 0; c < C; c++) {
        const int8_t *w = window + c;
        int32_t early = 0, middle = 0, late = 0;
        for (t = 0; t < Q; t++, w += C) early += *w;
        for (; t < HARLITE_WINDOW - Q; t++, w += C) middle += *w;
        for (; t < HARLITE_WINDOW; t++, w += C) late += *w;
        v[U + c] = early + middle + late - unknown_center[U + c];
        v[U + C + c] = late - early - unknown_center[U + C + c];
    }
    for (c = 0; c < HARLITE_NUM_CLASSES; c++) d[c] = 0;
    for (j = 0; j < D; j++) { /* whitened coordinate j, in 1/256 standard deviations */
        int64_t acc = 0, z;
        for (k = j; k < D; k++) acc += (int64_t)*a++ * v[k];
        acc = (acc + (INT64_C(1) << (unknown_shifts[j] - 1))) >> unknown_shifts[j]; /* arithmetic shift */
        z = acc < -UNKNOWN_CLAMP ? -UNKNOWN_CLAMP : acc > UNKNOWN_CLAMP ? UNKNOWN_CLAMP : acc;
        for (c = 0; c < HARLITE_NUM_CLASSES; c++) {
            const int64_t diff = z - unknown_means[c][j];
            d[c] += diff * diff;
        }
    }
    for (c = 0; c < HARLITE_NUM_CLASSES; c++) best = d[c] < best ? d[c] : best;
    logit_max = features[U];
    for (c = 1; c < HARLITE_NUM_CLASSES; c++) logit_max = features[U + c] > logit_max ? features[U + c] : logit_max;
    e = log_p[scores[top] + 128] - (logit_max - HARLITE_UNKNOWN_LOGIT_ZERO_POINT) * HARLITE_UNKNOWN_LOGIT_MUL;
    if (distance) *distance = best;
    if (energy) *energy = e;
    if (best > HARLITE_UNKNOWN_DISTANCE_THRESHOLD || e > HARLITE_UNKNOWN_ENERGY_THRESHOLD ||
        top == HARLITE_UNKNOWN_OTHER_CLASS) {
        return HARLITE_UNKNOWN_CLASS;
    }
    }
#else
    (void)window;
    (void)features;
    if (distance) *distance = 0;
    if (energy) *energy = 0;
#endif
    return top;
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
    sm->dwell = 1;
    sm->hysteresis = 0.0f;
    harlite_smoother_reset(sm);
    return 1;
}

int harlite_smoother_hold(harlite_smoother_t *sm, unsigned dwell, float hysteresis) {
    if (dwell < 1 || dwell > HARLITE_DWELL_MAX || !(hysteresis >= 0.0f && hysteresis < 1.0f) ||
        (sm->mode == HARLITE_SMOOTH_MAJORITY && hysteresis != 0.0f)) {
        return 0;
    }
    sm->dwell = (uint8_t)dwell;
    sm->hysteresis = hysteresis;
    harlite_smoother_reset(sm);
    return 1;
}

void harlite_smoother_reset(harlite_smoother_t *sm) {
    sm->count = 0;
    sm->next = 0;
    sm->waited = 0;
    sm->reported = -1;
    sm->pending = -1;
}

/* Most frequent decision of the history, ties to the one seen most recently. */
static int majority(const harlite_smoother_t *sm, int newest) {
    int votes[HARLITE_NUM_CLASSES + 1] = {0}, last[HARLITE_NUM_CLASSES + 1] = {0};
    int j, c, best = newest; /* seen last of all, so it wins every tie it is in */
    for (j = 0; j < sm->count; j++) {
        const int cls = sm->history[(sm->next + sm->k - sm->count + j) % sm->k];
        votes[cls]++;
        last[cls] = j;
    }
    for (c = 0; c <= HARLITE_NUM_CLASSES; c++) {
        if (votes[c] > votes[best] || (votes[c] == votes[best] && last[c] > last[best])) best = c;
    }
    return best;
}

/* Dwell and hysteresis between the smoothed label and the reported one (scores NULL: no hysteresis). */
static int report(harlite_smoother_t *sm, int candidate, const float *scores) {
    if (sm->reported < 0) {
        sm->reported = (int16_t)candidate;
    } else if (candidate != sm->reported && (!scores || scores[candidate] >= scores[sm->reported] + sm->hysteresis)) {
        sm->waited = (uint8_t)(candidate == sm->pending ? sm->waited + 1 : 1);
        sm->pending = (int16_t)candidate;
        if (sm->waited >= sm->dwell) {
            sm->reported = (int16_t)candidate;
            sm->pending = -1;
            sm->waited = 0;
        }
    } else {
        sm->pending = -1;
        sm->waited = 0;
    }
    return sm->reported;
}

int harlite_smoother_decide(harlite_smoother_t *sm, const int8_t scores[HARLITE_NUM_CLASSES], int decision) {
    float v[HARLITE_NUM_CLASSES + 1];
    int i, best = 0;
    if (decision < 0 || decision > HARLITE_UNKNOWN_CLASS) decision = harlite_argmax_int8(scores, HARLITE_NUM_CLASSES);
    if (sm->mode == HARLITE_SMOOTH_MAJORITY) {
        sm->history[sm->next] = (uint8_t)decision;
        sm->next = (uint8_t)((sm->next + 1) % sm->k);
        if (sm->count < sm->k) sm->count++;
        return report(sm, majority(sm, decision), 0);
    }
    for (i = 0; i < HARLITE_NUM_CLASSES; i++) {
        v[i] = decision == HARLITE_UNKNOWN_CLASS ? 0.0f
                                                 : (float)(scores[i] - HARLITE_OUTPUT_ZERO_POINT) * HARLITE_OUTPUT_SCALE;
    }
    v[HARLITE_UNKNOWN_CLASS] = decision == HARLITE_UNKNOWN_CLASS ? 1.0f : 0.0f;
    for (i = 0; i <= HARLITE_NUM_CLASSES; i++) {
        if (sm->mode == HARLITE_SMOOTH_EMA) {
            sm->ema[i] = sm->count ? sm->alpha * v[i] + (1.0f - sm->alpha) * sm->ema[i] : v[i];
        } else {
            sm->ema[i] = v[i];
        }
        if (sm->ema[i] > sm->ema[best]) best = i;
    }
    sm->count = 1;
    return report(sm, best, sm->ema);
}

int harlite_smoother_update(harlite_smoother_t *sm, const int8_t scores[HARLITE_NUM_CLASSES]) {
    return harlite_smoother_decide(sm, scores, harlite_argmax_int8(scores, HARLITE_NUM_CLASSES));
}
