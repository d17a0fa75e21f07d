/* The model in TFLite Micro: see tflm_model.h. */
#include "tflm_model.h"

#include <string.h>

#include "harlite_model_config.h"
#include "harlite_model_data.h"
#include "harlite_op_resolver.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {
alignas(16) uint8_t arena[HARLITE_ARENA_BYTES];
tflite::MicroInterpreter* interpreter = nullptr;
}  // namespace

/* TFLM's log goes nowhere here (the sketch's goes to Serial). */
extern "C" void DebugLog(const char* s) { (void)s; }

extern "C" int harlite_tflm_init(int8_t** input, int8_t** output) {
  static HarliteOpResolver resolver;
  const tflite::Model* model = tflite::GetModel(harlite_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION || harlite_register_ops(resolver) != kTfLiteOk) return 1;
  static tflite::MicroInterpreter static_interpreter(model, resolver, arena, sizeof arena);
  interpreter = &static_interpreter;
  if (interpreter->AllocateTensors() != kTfLiteOk) return 1;
  *input = interpreter->input(0)->data.int8;
  *output = interpreter->output(0)->data.int8;
  return 0;
}

extern "C" int harlite_tflm_invoke(const int8_t* input, int8_t* output) {
  (void)input;
  (void)output;
  return interpreter->Reset() == kTfLiteOk && interpreter->Invoke() == kTfLiteOk ? 0 : 1;
}

extern "C" int harlite_tflm_invoke_features(const int8_t* input, int8_t* output, int8_t* features) {
  size_t i, at = 0;
  if (harlite_tflm_invoke(input, output) != 0) return 1;
  for (i = 1; i < interpreter->outputs_size(); i++) {
    memcpy(features + at, interpreter->output(i)->data.int8, interpreter->output(i)->bytes);
    at += interpreter->output(i)->bytes;
  }
  return 0;
}
