"""Pure text generation: a bundle's manifest and int8 model bytes in, C sources out (TFLite Micro's
model array, config header and op resolver; the TFLM builds a model may target)."""
