/*
 * The model in TFLite Micro, for run_pipeline.c and the size image when `harlite bench` is given the
 * Arduino library's sources (-DHARLITE_TFLM): what the sketch's TFLM path does, without the board.
 */
#ifndef HARLITE_TFLM_MODEL_H
#define HARLITE_TFLM_MODEL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Allocate the model's tensors in a static arena of HARLITE_ARENA_BYTES; *input and *output get the
 * model's int8 input and output tensors. Returns 0 on success. */
int harlite_tflm_init(int8_t **input, int8_t **output);

/* MicroInterpreter::Reset() (the fused LSTM keeps state), then Invoke(), on the input tensor; the
 * arguments are the tensors of harlite_tflm_init (harlite_model_fn's signature). Returns 0 on success. */
int harlite_tflm_invoke(const int8_t *input, int8_t *output);

/* harlite_tflm_invoke, then the model's other outputs (output tensors 1, 2, ...: the hidden vector and the
 * logits the unknown decision reads) copied one after another into features (harlite_features_fn). */
int harlite_tflm_invoke_features(const int8_t *input, int8_t *output, int8_t *features);

#ifdef __cplusplus
}
#endif

#endif /* HARLITE_TFLM_MODEL_H */
