/*
 * harlite's C inference engine: the kernels. See harlite_engine_kernels.h for the data layouts.
 *
 * The arithmetic is TFLite Micro's reference kernels' (written anew from their definitions):
 * requantization by a Q0.31 multiplier with double rounding (a rounding doubling high multiply, then a
 * rounding shift that breaks ties away from zero), int32 accumulation of (x - input zero point) * w,
 * the int16 LSTM gates with the sigmoid/tanh of a 256-entry interpolated table, and the fixed-point
 * softmax. Signed right shifts are arithmetic (as on every compiler for the targets harlite supports).
 */
#include "harlite_engine_kernels.h"

#include <string.h>

#if defined(__ARM_FEATURE_DSP) && !defined(HARLITE_ENGINE_PORTABLE)
#define HL_DSP 1
#include <arm_acle.h>
#else
#define HL_DSP 0
#endif

#if defined(__GNUC__)
#define HL_INLINE static inline __attribute__((always_inline))
#else
#define HL_INLINE static inline
#endif

#define HL_INT16_MIN (-32768)
#define HL_INT16_MAX 32767

HL_INLINE int32_t hl_clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* Wrapping int32 arithmetic (TFLite's fixed-point code adds and shifts raw int32s). */
HL_INLINE int32_t hl_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
HL_INLINE int32_t hl_sub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }
HL_INLINE int32_t hl_shl(int32_t x, int n) { return (int32_t)((uint32_t)x << n); }

/* round(a * b / 2^31), ties up, for b >= 0: floor((a * b + 2^30) / 2^31) equals gemmlowp's
 * SaturatingRoundingDoublingHighMul (its truncating division of a * b + nudge) for either sign. */
HL_INLINE int32_t hl_high_mul(int32_t a, int32_t b) {
    return (int32_t)(((int64_t)a * b + ((int64_t)1 << 30)) >> 31);
}

/* The same for any b: saturates the one product that overflows, (-1) * (-1). */
static int32_t hl_srdhm(int32_t a, int32_t b) {
    return (a == b && a == INT32_MIN) ? INT32_MAX : hl_high_mul(a, b);
}

/* x / 2^e rounded to nearest, ties away from zero (gemmlowp's RoundingDivideByPOT), 0 <= e <= 31. */
HL_INLINE int32_t hl_rdbpot(int32_t x, int e) {
    const int32_t mask = (int32_t)((1u << e) - 1u);
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + ((x & mask) > threshold ? 1 : 0);
}

/* x * 2^e saturated to int32, 0 < e < 31. */
static int32_t hl_sat_shl(int32_t x, int e) {
    const int32_t threshold = (int32_t)((1u << (31 - e)) - 1u);
    return x > threshold ? INT32_MAX : (x < -threshold ? INT32_MIN : hl_shl(x, e));
}



HL_INLINE uint32_t hl_pair(int32_t lo, int32_t hi) { return ((uint32_t)lo & 0xffffu) | ((uint32_t)hi << 16); }

#if HL_DSP
static int32_t hl_sxtb16_ror8(int32_t w) {
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(w));
    return r;
}
#endif

void hl_pack(const int8_t *x, unsigned n, int32_t offset, uint32_t *xw, unsigned kwords, unsigned stride) {
    unsigned k = 0;
#if HL_DSP
    const int32_t offsets = (int32_t)hl_pair(offset, offset);
    for (; 4 * k + 4 <= n; ++k, xw += stride) {
        int32_t v;
        memcpy(&v, x + 4 * k, sizeof v);
        xw[0] = (uint32_t)__sadd16(__sxtb16(v), offsets);
        xw[1] = (uint32_t)__sadd16(hl_sxtb16_ror8(v), offsets);
    }
#endif
    for (; k < kwords; ++k, xw += stride) {
        int32_t v[4];
        unsigned j;
        for (j = 0; j < 4; ++j) {
            const unsigned i = 4 * k + j;
            v[j] = i < n ? x[i] + offset : 0;
        }
        xw[0] = hl_pair(v[0], v[2]);
        xw[1] = hl_pair(v[1], v[3]);
    }
}

/* acc[r] += dot(row r of the 4-row group w, packed vector xw). Not inlined on the DSP path: its twelve
 * registers would push the caller's variables onto the stack. */
#if HL_DSP && defined(__GNUC__)
__attribute__((noinline))
#endif
static void hl_dot4(const uint32_t *w, const uint32_t *xw, unsigned kwords, int32_t acc[4]) {
#if HL_DSP
    /* 21 instructions per 16 multiply-accumulates: two LDRD of weights, one of the vector, SXTB16 and
     * SMLAD (two lanes each); written out because GCC -Os reloads the weights under register pressure */
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    const uint32_t *end = xw + 2 * kwords;
    uint32_t x02, x13, wa, wb, t;
    __asm__ volatile(
        "1:\n\t"
        "ldrd %[x02], %[x13], [%[x]], #8\n\t"
        "ldrd %[wa], %[wb], [%[w]], #8\n\t"
        "sxtb16 %[t], %[wa]\n\t"
        "smlad %[a0], %[t], %[x02], %[a0]\n\t"
        "sxtb16 %[wa], %[wa], ror #8\n\t"
        "smlad %[a0], %[wa], %[x13], %[a0]\n\t"
        "sxtb16 %[t], %[wb]\n\t"
        "smlad %[a1], %[t], %[x02], %[a1]\n\t"
        "sxtb16 %[wb], %[wb], ror #8\n\t"
        "smlad %[a1], %[wb], %[x13], %[a1]\n\t"
        "ldrd %[wa], %[wb], [%[w]], #8\n\t"
        "sxtb16 %[t], %[wa]\n\t"
        "smlad %[a2], %[t], %[x02], %[a2]\n\t"
        "sxtb16 %[wa], %[wa], ror #8\n\t"
        "smlad %[a2], %[wa], %[x13], %[a2]\n\t"
        "sxtb16 %[t], %[wb]\n\t"
        "smlad %[a3], %[t], %[x02], %[a3]\n\t"
        "sxtb16 %[wb], %[wb], ror #8\n\t"
        "smlad %[a3], %[wb], %[x13], %[a3]\n\t"
        "cmp %[x], %[end]\n\t"
        "bne 1b"
        : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(xw), [w] "+r"(w),
          [x02] "=&r"(x02), [x13] "=&r"(x13), [wa] "=&r"(wa), [wb] "=&r"(wb), [t] "=&r"(t)
        : [end] "r"(end)
        : "cc", "memory");
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
#else
    unsigned k, r;
    for (k = 0; k < kwords; ++k, xw += 2, w += 4) {
        int32_t x[4];
        x[0] = (int16_t)(xw[0] & 0xffffu);
        x[2] = (int16_t)(xw[0] >> 16);
        x[1] = (int16_t)(xw[1] & 0xffffu);
        x[3] = (int16_t)(xw[1] >> 16);
        for (r = 0; r < 4; ++r) {
            unsigned j;
            for (j = 0; j < 4; ++j) acc[r] += (int8_t)((w[r] >> (8 * j)) & 0xffu) * x[j];
        }
    }
#endif
}

/* acc[2r + v] += dot(row r of the 2-row group w, vector v of the pair packed into xw), the pair's
 * words interleaved (a02, a13, b02, b13): 18 instructions per 16 multiply-accumulates. */
#if HL_DSP && defined(__GNUC__)
__attribute__((noinline))
#endif
static void hl_dot2x2(const uint32_t *w, const uint32_t *xw, unsigned kwords, int32_t acc[4]) {
#if HL_DSP
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    const uint32_t *end = xw + 4 * kwords;
    uint32_t xa02, xa13, xb02, xb13, wv, t;
    __asm__ volatile(
        "1:\n\t"
        "ldrd %[xa02], %[xa13], [%[x]], #8\n\t"
        "ldrd %[xb02], %[xb13], [%[x]], #8\n\t"
        "ldr %[wv], [%[w]], #4\n\t"
        "sxtb16 %[t], %[wv]\n\t"
        "smlad %[a0], %[t], %[xa02], %[a0]\n\t"
        "smlad %[a1], %[t], %[xb02], %[a1]\n\t"
        "sxtb16 %[wv], %[wv], ror #8\n\t"
        "smlad %[a0], %[wv], %[xa13], %[a0]\n\t"
        "smlad %[a1], %[wv], %[xb13], %[a1]\n\t"
        "ldr %[wv], [%[w]], #4\n\t"
        "sxtb16 %[t], %[wv]\n\t"
        "smlad %[a2], %[t], %[xa02], %[a2]\n\t"
        "smlad %[a3], %[t], %[xb02], %[a3]\n\t"
        "sxtb16 %[wv], %[wv], ror #8\n\t"
        "smlad %[a2], %[wv], %[xa13], %[a2]\n\t"
        "smlad %[a3], %[wv], %[xb13], %[a3]\n\t"
        "cmp %[x], %[end]\n\t"
        "bne 1b"
        : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(xw), [w] "+r"(w),
          [xa02] "=&r"(xa02), [xa13] "=&r"(xa13), [xb02] "=&r"(xb02), [xb13] "=&r"(xb13), [wv] "=&r"(wv),
          [t] "=&r"(t)
        : [end] "r"(end)
        : "cc", "memory");
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
#else
    unsigned k, r, v, j;
    for (k = 0; k < kwords; ++k, xw += 4, w += 2) {
        for (v = 0; v < 2; ++v) {
            int32_t x[4];
            x[0] = (int16_t)(xw[2 * v] & 0xffffu);
            x[2] = (int16_t)(xw[2 * v] >> 16);
            x[1] = (int16_t)(xw[2 * v + 1] & 0xffffu);
            x[3] = (int16_t)(xw[2 * v + 1] >> 16);
            for (r = 0; r < 2; ++r) {
                for (j = 0; j < 4; ++j) acc[2 * r + v] += (int8_t)((w[r] >> (8 * j)) & 0xffu) * x[j];
            }
        }
    }
#endif
}

/* floor((v2 * mult + 2^31) / 2^32): with v2 = 2 v, TFLite's rounding doubling high multiply of v. */
HL_INLINE int32_t hl_high_mul2(int32_t v2, int32_t mult) {
#if HL_DSP
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(v2), "r"(mult));
    return r;
#else
    return (int32_t)(((int64_t)v2 * mult + ((int64_t)1 << 31)) >> 32);
#endif
}

HL_INLINE int32_t hl_sat16(int32_t v) {
#if HL_DSP
    int32_t r;
    __asm__("ssat %0, #16, %1" : "=r"(r) : "r"(v));
    return r;
#else
    return hl_clamp(v, HL_INT16_MIN, HL_INT16_MAX);
#endif
}

/* TFLite's MultiplyByQuantizedMultiplier(v, mult, shift) with left = max(shift, 0) + 1 and
 * right = max(-shift, 0): the rounding shift adds half, less one below zero (ties away from zero).
 * harlite checked at generation time that v << left and the rounding cannot overflow. */
HL_INLINE int32_t hl_scale(int32_t v, int32_t mult, int32_t left, int32_t right) {
    v = hl_high_mul2(hl_shl(v, left), mult);
    return right ? (v + (1 << (right - 1)) + (v >> 31)) >> right : v;
}

HL_INLINE int32_t hl_scale_by(int32_t v, int32_t mult, int32_t shift) {
    return shift > 0 ? hl_scale(v, mult, shift + 1, 0) : hl_scale(v, mult, 1, -shift);
}

/* One output row: clamp, store (mode is a constant once inlined); int16 outputs saturate. */
HL_INLINE void hl_put(const hl_rows_t *r, int32_t v, int8_t *out8, int16_t *out16, unsigned i, const int mode) {
    if (mode == HL_OUT_S8) {
        out8[i] = (int8_t)hl_clamp(hl_add(v, r->out_zp), r->act_min, r->act_max);
    } else if (mode == HL_OUT_S16) {
        out16[i] = (int16_t)hl_sat16(v);
    } else {
        out16[i] = (int16_t)hl_sat16(hl_sat16(v) + out16[i]);
    }
}

/* The multiplier of the next block of rows that share one (blocks start at a group of rows). */
HL_INLINE void hl_next_block(const int32_t **mult, const int8_t **shift, int32_t *m, int32_t *lshift,
                             int32_t *rshift, unsigned *left, unsigned per) {
    const int32_t sh = *(*shift)++;
    *m = *(*mult)++;
    *lshift = sh > 0 ? sh + 1 : 1;
    *rshift = sh > 0 ? 0 : -sh;
    *left = per;
}

HL_INLINE void hl_rows_mode(const hl_rows_t *r, const uint32_t *xw, int8_t *out8, int16_t *out16, const int mode) {
    const uint32_t *w = r->w;
    const int32_t *bias = r->bias, *mult = r->mult;
    const int8_t *shift = r->shift;
    const unsigned n = r->out_rows, kwords = r->kwords, per = r->per;
    unsigned row, left = 0;
    int32_t m = 0, lshift = 0, rshift = 0;
    for (row = 0; row < n; row += 4, w += 4 * kwords) {
        int32_t acc[4];
        if (bias) { /* padded to a multiple of four */
            acc[0] = bias[row];
            acc[1] = bias[row + 1];
            acc[2] = bias[row + 2];
            acc[3] = bias[row + 3];
        } else {
            acc[0] = acc[1] = acc[2] = acc[3] = 0;
        }
        hl_dot4(w, xw, kwords, acc);
        if (per == 1) { /* a multiplier per row */
            acc[0] = hl_scale_by(acc[0], mult[row], shift[row]);
            if (row + 1 < n) acc[1] = hl_scale_by(acc[1], mult[row + 1], shift[row + 1]);
            if (row + 2 < n) acc[2] = hl_scale_by(acc[2], mult[row + 2], shift[row + 2]);
            if (row + 3 < n) acc[3] = hl_scale_by(acc[3], mult[row + 3], shift[row + 3]);
        } else {
            if (left == 0) hl_next_block(&mult, &shift, &m, &lshift, &rshift, &left, per);
            left = left > 4 ? left - 4 : 0;
            acc[0] = hl_scale(acc[0], m, lshift, rshift);
            acc[1] = hl_scale(acc[1], m, lshift, rshift);
            acc[2] = hl_scale(acc[2], m, lshift, rshift);
            acc[3] = hl_scale(acc[3], m, lshift, rshift);
        }
        hl_put(r, acc[0], out8, out16, row, mode);
        if (row + 3 < n) {
            hl_put(r, acc[1], out8, out16, row + 1, mode);
            hl_put(r, acc[2], out8, out16, row + 2, mode);
            hl_put(r, acc[3], out8, out16, row + 3, mode);
        } else {
            if (row + 1 < n) hl_put(r, acc[1], out8, out16, row + 1, mode);
            if (row + 2 < n) hl_put(r, acc[2], out8, out16, row + 2, mode);
        }
    }
}

static void hl_rows_s8(const hl_rows_t *r, const uint32_t *xw, int8_t *out) { hl_rows_mode(r, xw, out, 0, HL_OUT_S8); }

static void hl_rows_s16_add(const hl_rows_t *r, const uint32_t *xw, int16_t *out) {
    hl_rows_mode(r, xw, 0, out, HL_OUT_S16_ADD);
}

/* hl_rows on a pair of vectors (rows in groups of two, see hl_dot2x2): outputs to a and b. */
HL_INLINE void hl_rows2_mode(const hl_rows_t *r, const uint32_t *xw, int8_t *a8, int8_t *b8, int16_t *a16,
                             int16_t *b16, const int mode) {
    const uint32_t *w = r->w;
    const int32_t *bias = r->bias, *mult = r->mult;
    const int8_t *shift = r->shift;
    const unsigned n = r->out_rows, kwords = r->kwords, per = r->per;
    unsigned row, left = 0;
    int32_t m = 0, lshift = 0, rshift = 0;
    for (row = 0; row < n; row += 2, w += 2 * kwords) {
        int32_t acc[4];
        if (bias) { /* padded to a multiple of four */
            acc[0] = acc[1] = bias[row];
            acc[2] = acc[3] = bias[row + 1];
        } else {
            acc[0] = acc[1] = acc[2] = acc[3] = 0;
        }
        hl_dot2x2(w, xw, kwords, acc);
        if (per == 1) {
            const int32_t s0 = shift[row], m0 = mult[row];
            acc[0] = hl_scale_by(acc[0], m0, s0);
            acc[1] = hl_scale_by(acc[1], m0, s0);
            if (row + 1 < n) {
                const int32_t s1 = shift[row + 1], m1 = mult[row + 1];
                acc[2] = hl_scale_by(acc[2], m1, s1);
                acc[3] = hl_scale_by(acc[3], m1, s1);
            }
        } else {
            if (left == 0) hl_next_block(&mult, &shift, &m, &lshift, &rshift, &left, per);
            left = left > 2 ? left - 2 : 0;
            acc[0] = hl_scale(acc[0], m, lshift, rshift);
            acc[1] = hl_scale(acc[1], m, lshift, rshift);
            acc[2] = hl_scale(acc[2], m, lshift, rshift);
            acc[3] = hl_scale(acc[3], m, lshift, rshift);
        }
        hl_put(r, acc[0], a8, a16, row, mode);
        hl_put(r, acc[1], b8, b16, row, mode);
        if (row + 1 < n) {
            hl_put(r, acc[2], a8, a16, row + 1, mode);
            hl_put(r, acc[3], b8, b16, row + 1, mode);
        }
    }
}

static void hl_rows2_s8(const hl_rows_t *r, const uint32_t *xw, int8_t *a, int8_t *b) {
    hl_rows2_mode(r, xw, a, b, 0, 0, HL_OUT_S8);
}

static void hl_rows2_s16(const hl_rows_t *r, const uint32_t *xw, int16_t *a, int16_t *b) {
    hl_rows2_mode(r, xw, 0, 0, a, b, HL_OUT_S16);
}

/* The packed window of output position o of a convolution, at xw (stride 4: one of a pair). */
static void hl_conv_window(const hl_conv_t *p, const int8_t *in, unsigned o, uint32_t *xw, int8_t *window) {
    const int x0 = (int)(o * p->stride) - (int)p->pad;
    const int8_t *src = window;
    if (p->dilation == 1 && x0 >= 0 && x0 + (int)p->kernel <= (int)p->in_w) {
        src = in + (unsigned)x0 * p->in_c;
    } else {
        unsigned t;
        for (t = 0; t < p->kernel; ++t) {
            const int xi = x0 + (int)(t * p->dilation);
            if (xi >= 0 && xi < (int)p->in_w) {
                memcpy(window + t * p->in_c, in + (unsigned)xi * p->in_c, p->in_c);
            } else {
                memset(window + t * p->in_c, (int8_t)(-p->in_offset), p->in_c);
            }
        }
    }
    hl_pack(src, (unsigned)p->kernel * p->in_c, p->in_offset, xw, p->rows.kwords, 4);
}

void hl_conv(const hl_conv_t *p, const int8_t *in, int8_t *out, uint32_t *xw, int8_t *window) {
    const unsigned c = p->rows.out_rows;
    unsigned o;
    for (o = 0; o < p->out_w; o += 2) { /* two positions at a time (the last one twice if odd) */
        const unsigned o2 = o + 1 < p->out_w ? o + 1 : o;
        hl_conv_window(p, in, o, xw, window);
        hl_conv_window(p, in, o2, xw + 2, window);
        hl_rows2_s8(&p->rows, xw, out + o * c, out + o2 * c);
    }
}

void hl_fc(const hl_fc_t *p, const int8_t *in, int8_t *out, uint32_t *xw) {
    hl_pack(in, p->in_n, p->in_offset, xw, p->rows.kwords, 2);
    hl_rows_s8(&p->rows, xw, out);
}

/* TFLite's int16 logistic and tanh interpolate a 256-entry table at 1/24 steps: v is the input
 * rescaled as TFLite Micro prepares it (x * 3 for Q3.12), in units of 1/(24 * 2^9) (sigmoid) or
 * 1/(48 * 2^8) (tanh, from tanh(x) = 2 sigmoid(2x) - 1). */
HL_INLINE int32_t hl_sigmoid_of(const uint16_t *table, int32_t v) {
    const uint32_t a = (uint32_t)(v < 0 ? -v : v);
    const uint32_t uh = a >> 9;
    uint32_t r = 0x7fffu << 10;
    if (uh < 255) {
        const uint32_t ua = table[uh], ub = table[uh + 1];
        r = (ua << 9) + (a & 0x1ffu) * (ub - ua);
    }
    r = v >= 0 ? r + (1u << 9) : (1u << 25) - r + (1u << 9) - 1u;
    return (int32_t)(r >> 10);
}

HL_INLINE int32_t hl_tanh_of(const uint16_t *table, int32_t v) {
    const uint32_t a = (uint32_t)(v < 0 ? -v : v);
    const uint32_t uh = a >> 8;
    int32_t r = 0xffff << 8;
    if (uh < 255) {
        const uint32_t ua = table[uh], ub = table[uh + 1];
        r = (int32_t)((ua << 8) + (a & 0xffu) * (ub - ua));
    }
    r = v >= 0 ? r - (1 << 23) + (1 << 7) : (1 << 23) - r + (1 << 7) - 1;
    return r >> 8;
}

/* The input rescaling of TFLite Micro's int16 Logistic/Tanh(input_multiplier, input_left_shift):
 * a multiplier of 0 means 3 * 2^left_shift. */
static int32_t hl_scaled(int16_t x, int32_t mult, int32_t left_shift) {
    if (mult == 0) {
        return x * (3 << left_shift);
    }
    return (x * mult + (left_shift > 0 ? 1 << (left_shift - 1) : 0)) >> left_shift;
}

int16_t hl_sigmoid16(const uint16_t *table, int16_t x, int32_t mult, int32_t left_shift) {
    return (int16_t)hl_sigmoid_of(table, hl_scaled(x, mult, left_shift));
}

int16_t hl_tanh16(const uint16_t *table, int16_t x, int32_t mult, int32_t left_shift) {
    return (int16_t)hl_tanh_of(table, hl_scaled(x, mult, left_shift));
}

/* The elementwise part of one LSTM step: gates (Q3.12) -> cell state (int16) and hidden state (int8). */
/* v * mult / 2^(31 + right) for |v| < 2^30 and right >= 1 (the LSTM's elementwise products). */
HL_INLINE int32_t hl_scale_down(int32_t v, int32_t mult, int32_t right, int32_t half) {
    v = hl_high_mul2(v * 2, mult);
    return (v + half + (v >> 31)) >> right;
}

static void hl_lstm_cell(const hl_lstm_t *p, const int16_t *gates, int16_t *cell, int8_t *h) {
    const uint16_t *table = p->sigmoid_table;
    const unsigned units = p->units;
    const int16_t *gi = gates, *gf = gates + units, *gc = gates + 2 * units, *go = gates + 3 * units;
    /* harlite checked that these three scales are below one (negative shifts) */
    const int32_t fm = p->forget_mult, fr = -p->forget_shift, fh = 1 << (fr - 1);
    const int32_t im = p->input_mult, ir = -p->input_shift, ih = 1 << (ir - 1);
    const int32_t om = p->output_mult, orr = -p->output_shift, oh = 1 << (orr - 1);
    const int32_t lo = p->cell_clip > 0 ? -p->cell_clip : HL_INT16_MIN;
    const int32_t hi = p->cell_clip > 0 ? p->cell_clip : HL_INT16_MAX;
    const int32_t tm = p->tanh_mult, tr = p->tanh_round, ts = p->tanh_shift, zp = p->h_zp;
    unsigned u;
    for (u = 0; u < units; ++u) {
        const int32_t i = hl_sigmoid_of(table, 3 * gi[u]), f = hl_sigmoid_of(table, 3 * gf[u]);
        const int32_t g = hl_tanh_of(table, 3 * gc[u]), o = hl_sigmoid_of(table, 3 * go[u]);
        int32_t c = hl_sat16(hl_scale_down(f * cell[u], fm, fr, fh));
        c = hl_sat16(c + hl_sat16(hl_scale_down(i * g, im, ir, ih)));
        c = hl_clamp(c, lo, hi);
        cell[u] = (int16_t)c;
        c = hl_tanh_of(table, (c * tm + tr) >> ts) * o;
        h[u] = (int8_t)hl_clamp(hl_scale_down(c, om, orr, oh) + zp, -128, 127);
    }
}

void hl_lstm(const hl_lstm_t *p, const int8_t *in, int8_t *out, uint32_t *xw, uint32_t *hw, int16_t *cell,
             int16_t *gates) {
    const unsigned units = p->units, steps = p->steps;
    int16_t *const next = gates + 4 * units; /* the gates of the odd step of a pair */
    unsigned t;
    memset(cell, 0, units * sizeof *cell);
    memset(hw, 0, 8u * p->rec_rows.kwords); /* the reset hidden state: its zero point */
    for (t = 0; t < steps; ++t) {
        int8_t *h = out + t * units;
        int16_t *g = t % 2 ? next : gates;
        if (t % 2 == 0) { /* the input part of the gates of steps t and t + 1 (t twice if last) */
            const unsigned t2 = t + 1 < steps ? t + 1 : t;
            hl_pack(in + t * p->in_n, p->in_n, p->in_offset, xw, p->in_rows.kwords, 4);
            hl_pack(in + t2 * p->in_n, p->in_n, p->in_offset, xw + 2, p->in_rows.kwords, 4);
            hl_rows2_s16(&p->in_rows, xw, gates, t2 > t ? next : gates);
        }
        if (t > 0) hl_pack(h - units, units, p->h_offset, hw, p->rec_rows.kwords, 2);
        hl_rows_s16_add(&p->rec_rows, hw, g);
        hl_lstm_cell(p, g, cell, h);
    }
}

/* gemmlowp's exp(x) for x in [-1/4, 0), Q0.31 (consts: exp(-1/8), 1/3). */
static int32_t hl_exp_quarter(const int32_t *k, int32_t a) {
    const int32_t x = hl_add(a, 1 << 28);
    const int32_t x2 = hl_srdhm(x, x), x3 = hl_srdhm(x2, x), x4 = hl_srdhm(x2, x2);
    const int32_t poly = hl_rdbpot(hl_add(hl_srdhm(hl_add(hl_rdbpot(x4, 2), x3), k[1]), x2), 1);
    return hl_add(k[0], hl_srdhm(k[0], hl_add(x, poly)));
}

/* exp(a) for a <= 0 in Q5.26, result Q0.31 (consts 2..8: exp(-2^e), e = -2..4). */
static int32_t hl_exp_negative(const int32_t *k, int32_t a) {
    const int32_t quarter = 1 << 24;
    const int32_t a_mod = hl_sub(a & (quarter - 1), quarter);
    const int32_t remainder = hl_sub(a_mod, a);
    int32_t result = hl_exp_quarter(k, hl_sat_shl(a_mod, 5));
    int e;
    for (e = 0; e < 7; ++e) {
        if (remainder & (1 << (24 + e))) result = hl_srdhm(result, k[2 + e]);
    }
    return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + a) for a in [0, 1), Q0.31, by Newton-Raphson (consts 9, 10: 48/17, -32/17 in Q2.29). */
static int32_t hl_one_over_one_plus(const int32_t *k, int32_t a) {
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    int32_t x = hl_add(k[9], hl_srdhm(half, k[10]));
    int i;
    for (i = 0; i < 3; ++i) {
        const int32_t one_minus = hl_sub(1 << 29, hl_srdhm(half, x));
        x = hl_add(x, hl_sat_shl(hl_srdhm(x, one_minus), 2));
    }
    return hl_sat_shl(x, 1);
}

void hl_softmax(const hl_softmax_t *p, const int8_t *in, int8_t *out) {
    int32_t max = -128, sum = 0, scale, unit_bits = 12;
    uint32_t shifted;
    unsigned c;
    for (c = 0; c < p->n; ++c) max = in[c] > max ? in[c] : max;
    for (c = 0; c < p->n; ++c) {
        const int32_t diff = in[c] - max;
        if (diff >= p->diff_min) {
            sum = hl_add(sum, hl_rdbpot(hl_exp_negative(p->consts, hl_srdhm(hl_shl(diff, p->shift), p->mult)), 12));
        }
    }
    /* 1 / sum: sum = 2^unit_bits * (1 + x) with x in [0, 1) */
    shifted = (uint32_t)sum;
    while (shifted && !(shifted & 0x80000000u)) {
        shifted <<= 1;
        --unit_bits;
    }
    scale = hl_one_over_one_plus(p->consts, (int32_t)(shifted - 0x80000000u));
    for (c = 0; c < p->n; ++c) {
        const int32_t diff = in[c] - max;
        int32_t v = -128;
        if (diff >= p->diff_min) {
            const int32_t e = hl_exp_negative(p->consts, hl_srdhm(hl_shl(diff, p->shift), p->mult));
            v = hl_clamp(hl_rdbpot(hl_srdhm(scale, e), unit_bits + 23) - 128, -128, 127);
        }
        out[c] = (int8_t)v;
    }
}
