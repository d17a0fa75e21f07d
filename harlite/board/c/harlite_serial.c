/* harlite serial lines: see harlite_serial.h. */
#include "harlite_serial.h"

#include <string.h>

#include "harlite_core.h"

static const char labels[][HARLITE_LABEL_MAX] = HARLITE_LABELS;
typedef char harlite_check_label_count[sizeof labels == HARLITE_NUM_CLASSES * HARLITE_LABEL_MAX ? 1 : -1];

static const uint32_t pow10[10] = {1u, 10u, 100u, 1000u, 10000u, 100000u, 1000000u, 10000000u, 100000000u,
                                   1000000000u};

const char *harlite_label(int index) { return index >= 0 && index < HARLITE_NUM_CLASSES ? labels[index] : ""; }

/* Decimal digits of v, at least min_digits (zero-padded). */
static char *put_uint(char *p, uint32_t v, int min_digits) {
    char digits[10];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v || n < min_digits);
    while (n) *p++ = digits[--n];
    return p;
}

static char *put_str(char *p, const char *s, size_t max) {
    size_t i;
    for (i = 0; i < max && s[i]; i++) *p++ = s[i];
    return p;
}

char *harlite_put_fixed(char *p, float x, int decimals) {
    uint32_t bits, mantissa, whole, frac = 0;
    int exponent, shift;
    memcpy(&bits, &x, sizeof bits);
    exponent = (int)((bits >> 23) & 0xffu);
    mantissa = bits & 0x7fffffu;
    if (exponent >= 127 + 30) return put_str(p, "nan", 3); /* also inf and NaN */
    if (exponent) {
        mantissa |= 0x800000u;
    } else {
        exponent = 1; /* subnormal */
    }
    shift = 150 - exponent; /* |x| = mantissa / 2^shift, exactly */
    if (bits >> 31) *p++ = '-';
    if (shift <= 0) {
        whole = mantissa << -shift;
    } else if (shift >= 64) {
        whole = 0; /* below 2^-40: zero at 9 decimals */
    } else {
        /* fraction * 10^decimals, rounded to nearest, ties to even: all in 64 bits (24 + 30 bits) */
        const uint64_t one = (uint64_t)1 << shift;
        const uint64_t scaled = ((uint64_t)mantissa & (one - 1u)) * pow10[decimals];
        const uint64_t rest = scaled & (one - 1u), half = one >> 1;
        whole = (uint32_t)((uint64_t)mantissa >> shift);
        frac = (uint32_t)(scaled >> shift);
        if (rest > half || (rest == half && ((decimals ? frac : whole) & 1u))) {
            if (decimals) frac++;
            else whole++;
        }
        if (decimals && frac == pow10[decimals]) {
            frac = 0;
            whole++;
        }
    }
    p = put_uint(p, whole, 1);
    if (decimals) {
        *p++ = '.';
        p = put_uint(p, frac, decimals);
    }
    return p;
}

/* Seconds of sample `index`, with 6 decimals (rounded half up): in integers at an integer rate (no
 * double arithmetic, which a Cortex-M4 emulates), else in double. */
static char *put_time(char *p, uint32_t index) {
    const uint32_t rate = (uint32_t)HARLITE_RATE_HZ;
    uint32_t s, us;
    if ((double)rate == (double)HARLITE_RATE_HZ && rate >= 1u && rate <= 4294u) { /* (rate-1) * 10^6 < 2^32 */
        s = index / rate;
        us = ((index % rate) * 1000000u + rate / 2u) / rate;
    } else {
        const double t = (double)index / (double)HARLITE_RATE_HZ;
        s = (uint32_t)t;
        us = (uint32_t)((t - (double)s) * 1e6 + 0.5);
        if (us >= 1000000u) {
            s++;
            us -= 1000000u;
        }
    }
    p = put_uint(p, s, 1);
    *p++ = '.';
    return put_uint(p, us, 6);
}

int harlite_format_sample(char *line, uint32_t index, const float raw[HARLITE_NUM_RAW]) {
    char *p = put_time(line, index);
    int r;
    for (r = 0; r < HARLITE_NUM_RAW; r++) {
        *p++ = ',';
        p = harlite_put_fixed(p, raw[r], 9);
    }
    *p = '\0';
    return (int)(p - line);
}

int harlite_format_prediction(char *line, uint32_t start, const int8_t scores[HARLITE_NUM_CLASSES], int smoothed,
                              uint32_t invoke_ms) {
    const int top = harlite_argmax_int8(scores, HARLITE_NUM_CLASSES);
    char *p = put_str(line, "# pred,start_s=", 15);
    p = put_time(p, start);
    p = put_str(p, ",end_s=", 7);
    p = put_time(p, start + HARLITE_WINDOW);
    p = put_str(p, ",pred_raw=", 10);
    p = put_str(p, labels[top], HARLITE_LABEL_MAX);
    p = put_str(p, ",p=", 3);
    p = harlite_put_fixed(p, (float)(scores[top] - HARLITE_OUTPUT_ZERO_POINT) * HARLITE_OUTPUT_SCALE, 3);
    p = put_str(p, ",pred_smoothed=", 15);
    p = put_str(p, labels[smoothed >= 0 && smoothed < HARLITE_NUM_CLASSES ? smoothed : top], HARLITE_LABEL_MAX);
    p = put_str(p, ",invoke_ms=", 11);
    p = put_uint(p, invoke_ms, 1);
    *p = '\0';
    return (int)(p - line);
}

int harlite_format_banner(char *line, int part, const char *firmware, const char *imu) {
    char *p = line, *end;
    if (part < 0 || part > HARLITE_NUM_CLASSES) return -1;
    if (part) {
        if (part > 1) *p++ = ',';
        p = put_str(p, labels[part - 1], HARLITE_LABEL_MAX);
        *p = '\0';
        return (int)(p - line);
    }
    p = put_str(p, "# harlite format=", 17); /* at most 164 bytes in all */
    p = put_uint(p, (uint32_t)HARLITE_SERIAL_VERSION, 1);
    p = put_str(p, " firmware=", 10);
    p = put_str(p, firmware, HARLITE_NAME_MAX);
    p = put_str(p, " imu=", 5);
    p = put_str(p, imu, HARLITE_NAME_MAX);
    p = put_str(p, HARLITE_NUM_RAW > 3 ? " sensors=acc,gyro" : " sensors=acc", 17);
    p = put_str(p, " rate_hz=", 9);
    end = harlite_put_fixed(p, (float)HARLITE_RATE_HZ, 6);
    while (end[-1] == '0') end--;  /* 50.000000 -> 50, 12.500000 -> 12.5 */
    p = end[-1] == '.' ? end - 1 : end;
    p = put_str(p, " window=", 8);
    p = put_uint(p, (uint32_t)HARLITE_WINDOW, 1);
    p = put_str(p, " hop=", 5);
    p = put_uint(p, (uint32_t)HARLITE_HOP, 1);
    p = put_str(p, " labels=", 8);
    *p = '\0';
    return (int)(p - line);
}
