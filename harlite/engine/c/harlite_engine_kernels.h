/*
 * harlite's C inference engine: the kernels (hand-written, the same for every model).
 *
 * Integer arithmetic only, no allocation, no floating point: every requantization multiplier and shift
 * was computed at generation time by harlite (as TFLite Micro computes them in Prepare), and the model's
 * generated file (harlite_engine_model.c) calls these kernels with its weights and one static scratch
 * buffer. Bit-exact with TFLite Micro's reference kernels.
 *
 * Vectors are multiplied in 16 bits: an int8 input vector, its zero point removed, is packed into words
 * of two int16 lanes, (x0, x2) and (x1, x3) for every four elements (the order SXTB16 unpacks four
 * weights in); weights are int8, four to a uint32 word (byte k of the word is value & 0xff << 8k), rows
 * interleaved by four (word k of rows 4g..4g+3 consecutive) or, where a kernel runs two vectors at once
 * (convolutions: two output positions; an LSTM's input part: two steps), by two, the two vectors' words
 * interleaved (a02, a13, b02, b13). Lengths are padded to 4 with zeros.
 *
 * On a core with the DSP extension (Cortex-M4/M7/M33 with DSP) the dot products use SMLAD; define
 * HARLITE_ENGINE_PORTABLE to use the plain C path, which gives the same bits.
 */
#ifndef HARLITE_ENGINE_KERNELS_H
#define HARLITE_ENGINE_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Output modes of the row kernels. */
#define HL_OUT_S8 0      /* int8 with zero point and activation range */
#define HL_OUT_S16 1     /* int16, saturated (an LSTM gate's input part) */
#define HL_OUT_S16_ADD 2 /* int16 added with saturation to what is there (its recurrent part) */

/* A matrix of int8 rows applied to one packed vector, each result requantized. */
typedef struct {
    const uint32_t *w;    /* ceil(out_rows / 4) groups x kwords words x 4 rows, see above */
    const int32_t *bias;  /* [out_rows padded to 4] or NULL */
    const int32_t *mult;  /* [out_rows / per] Q0.31 multipliers */
    const int8_t *shift;  /* [out_rows / per] exponents (> 0: left shift) */
    uint16_t per;         /* consecutive rows that share a multiplier */
    uint16_t out_rows;    /* rows written (the last group is padded with zero rows) */
    uint16_t kwords;      /* padded length / 4 */
    int32_t out_zp;       /* HL_OUT_S8 only */
    int32_t act_min;
    int32_t act_max;
} hl_rows_t;

/* CONV_2D over one image row (a Conv1D): [in_w][in_c] int8 -> [out_w][rows.out_rows] int8. */
typedef struct {
    hl_rows_t rows;       /* rows in groups of two */
    uint16_t in_w, in_c, out_w, kernel, stride, dilation, pad;
    int32_t in_offset;    /* minus the input zero point */
} hl_conv_t;

/* FULLY_CONNECTED, batch 1: [in_n] int8 -> [rows.out_rows] int8. */
typedef struct {
    hl_rows_t rows;
    uint16_t in_n;
    int32_t in_offset;
} hl_fc_t;

/* UNIDIRECTIONAL_SEQUENCE_LSTM, batch 1, int8 activations, int16 cell: [steps][in_n] -> [steps][units].
 * Rows of in_rows (with the gate biases; groups of two) and rec_rows (groups of four) are the gates
 * input, forget, cell, output, each
 * `units` rows, requantized to the gates' Q3.12; the cell gate's activation is tanh. */
typedef struct {
    hl_rows_t in_rows;
    hl_rows_t rec_rows;
    const uint16_t *sigmoid_table; /* [256] */
    uint16_t steps, in_n, units;
    int32_t in_offset, h_offset;   /* minus the zero points of the input and the hidden state */
    int32_t h_zp;
    int32_t forget_mult, input_mult, output_mult;
    int8_t forget_shift, input_shift, output_shift;
    int16_t cell_clip;             /* 0: no clipping */
    int32_t tanh_mult;             /* the cell state's tanh input: (c * tanh_mult + tanh_round) >> tanh_shift */
    int32_t tanh_round;
    int32_t tanh_shift;
} hl_lstm_t;

/* SOFTMAX, int8 -> int8 (output scale 1/256, zero point -128). */
typedef struct {
    const int32_t *consts; /* the fixed-point constants, see hl_softmax */
    uint16_t n;
    int32_t mult;
    int32_t shift;
    int32_t diff_min;
} hl_softmax_t;

void hl_conv(const hl_conv_t *p, const int8_t *in, int8_t *out, uint32_t *xw, int8_t *window);
void hl_fc(const hl_fc_t *p, const int8_t *in, int8_t *out, uint32_t *xw);
void hl_lstm(const hl_lstm_t *p, const int8_t *in, int8_t *out, uint32_t *xw, uint32_t *hw, int16_t *cell,
             int16_t *gates);
void hl_softmax(const hl_softmax_t *p, const int8_t *in, int8_t *out);

/* The pieces, for tests. */
void hl_pack(const int8_t *x, unsigned n, int32_t offset, uint32_t *xw, unsigned kwords, unsigned stride);
int16_t hl_sigmoid16(const uint16_t *table, int16_t x, int32_t mult, int32_t left_shift);
int16_t hl_tanh16(const uint16_t *table, int16_t x, int32_t mult, int32_t left_shift);

#ifdef __cplusplus
}
#endif

#endif /* HARLITE_ENGINE_KERNELS_H */
