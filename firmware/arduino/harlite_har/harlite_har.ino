/*
 * harlite_har: human activity recognition on an Arduino Nano 33 BLE Sense (Rev2: BMI270, Rev1: LSM9DS1)
 * with a harlite model, run by TensorFlow Lite Micro (the default) or by harlite's C engine
 * (HARLITE_ENGINE below: then the sketch needs only the board core and the IMU library).
 *
 * Every 1/HARLITE_RATE_HZ s (20 ms at 50 Hz; paced by micros() against a fixed schedule, so it never
 * drifts) the main loop reads the IMU, maps the board's axes and units to the model's, prints the
 * sample as a CSV row and pushes it into the harlite pipeline (harlite_pipeline.h: the front end
 * filters, quantizes and buffers it). Every hop the pipeline completes a window and copies it into the
 * model's input; the model runs in a thread of lower priority, so sampling never waits for an inference
 * (the released model takes ~23 ms in the C engine at 64 MHz, longer than a sample period). When the
 * model is done, the main loop smooths the prediction and prints one "# pred" line. Line formats:
 * harlite_serial.h.
 *
 * Files: every other file of this folder is written by `harlite convert BUNDLE --firmware FOLDER`:
 * harlite_core.*, harlite_serial.*, harlite_pipeline.* (copies of the portable C inside the harlite
 * package, harlite/board/c/), and from the bundle harlite_model_config.h, harlite_model_data.*,
 * harlite_op_resolver.h (TFLM) and harlite_engine*.{h,c} (the C engine). This sketch is written there
 * too, when the folder has none or with --force (an edited sketch is kept). See firmware/README.md.
 */

/* ---- Configuration: edit here or pass -D flags (platformio.ini does) ---- */

/* The model's runtime: TensorFlow Lite Micro (the Arduino library tflite-micro-arduino-examples, see
 * firmware/README.md) by default; define HARLITE_ENGINE for harlite's C engine (harlite_engine.h), which
 * needs no library: no TFLM header is included then. */
/* #define HARLITE_ENGINE */

/* The IMU: Rev2 boards carry a BMI270 (+BMM150), Rev1 boards an LSM9DS1. */
#if !defined(HARLITE_IMU_BMI270) && !defined(HARLITE_IMU_LSM9DS1)
#define HARLITE_IMU_BMI270
#endif

/* Board axes (as the IMU library reports them) to the model's axes: model = M * board, for acceleration
 * and angular rate alike; M must be a rotation. The model's axes are those of UCI HAR's phone at the
 * waist: +x up (toward the head when standing), +y to the wearer's right, +z forward (out of the body).
 * The identity suits a board worn with its x axis up and z axis forward. Check: standing still, the
 * printed acc_x reads about +1 g; leaning forward turns acc_z negative. */
#ifndef HARLITE_AXES
#define HARLITE_AXES {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}
#endif

/* Smoothing of predictions: HARLITE_SMOOTH_NONE, _MAJORITY (last K windows) or _EMA (ALPHA). */
#ifndef HARLITE_SMOOTHING
#define HARLITE_SMOOTHING HARLITE_SMOOTH_MAJORITY
#endif
#ifndef HARLITE_SMOOTHING_K
#define HARLITE_SMOOTHING_K 3
#endif
#ifndef HARLITE_SMOOTHING_ALPHA
#define HARLITE_SMOOTHING_ALPHA 0.5f
#endif

/* 1: print every sample (a recording); 0: prediction lines only. */
#ifndef HARLITE_PRINT_SAMPLES
#define HARLITE_PRINT_SAMPLES 1
#endif

/* A sample this late (the serial port blocked, say) is a gap: the stream restarts. */
#ifndef HARLITE_MAX_LATE_US
#define HARLITE_MAX_LATE_US 100000u
#endif

/* ---- End of configuration ---- */

#ifndef HARLITE_ENGINE
#include <TensorFlowLite.h>
#endif
#include <mbed.h>

#include <atomic>

#if defined(HARLITE_IMU_LSM9DS1)
#include <Arduino_LSM9DS1.h>
#define HARLITE_IMU_NAME "LSM9DS1"
#else
#include <Arduino_BMI270_BMM150.h>
#define HARLITE_IMU_NAME "BMI270"
#endif

#include "harlite_pipeline.h"
#ifdef HARLITE_ENGINE
#include "harlite_engine.h"
#else
#include "harlite_model_data.h"
#include "harlite_op_resolver.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"
#endif

/* HARLITE_AXES must be a rotation: orthonormal rows, determinant +1. */
static constexpr int kAxes[3][3] = HARLITE_AXES;
#define HARLITE_DOT(a, b) (kAxes[a][0] * kAxes[b][0] + kAxes[a][1] * kAxes[b][1] + kAxes[a][2] * kAxes[b][2])
static_assert(HARLITE_DOT(0, 0) == 1 && HARLITE_DOT(1, 1) == 1 && HARLITE_DOT(2, 2) == 1 && HARLITE_DOT(0, 1) == 0 &&
                  HARLITE_DOT(0, 2) == 0 && HARLITE_DOT(1, 2) == 0 &&
                  kAxes[0][0] * (kAxes[1][1] * kAxes[2][2] - kAxes[1][2] * kAxes[2][1]) -
                          kAxes[0][1] * (kAxes[1][0] * kAxes[2][2] - kAxes[1][2] * kAxes[2][0]) +
                          kAxes[0][2] * (kAxes[1][0] * kAxes[2][1] - kAxes[1][1] * kAxes[2][0]) ==
                      1,
              "HARLITE_AXES must be a rotation: one +1 or -1 per row and column, determinant +1");
static constexpr float kRadPerDeg = 0.0174532925f;
static_assert(HARLITE_NUM_RAW == 3 || HARLITE_NUM_RAW == 6, "the model reads acc (3) or acc and gyro (6)");

static harlite_pipeline_t pipeline;
#ifdef HARLITE_ENGINE
#define HARLITE_RUNTIME "C engine"
#define HARLITE_MODEL_STACK (2 * 1024) /* the released model's engine reached 256 bytes under QEMU */
static int8_t model_input[HARLITE_WINDOW_BYTES];
static int8_t model_output[HARLITE_NUM_CLASSES];
static_assert(HARLITE_ENGINE_WINDOW * HARLITE_ENGINE_CHANNELS == HARLITE_WINDOW_BYTES &&
                  HARLITE_ENGINE_CLASSES == HARLITE_NUM_CLASSES,
              "the C engine and harlite_model_config.h disagree: regenerate both with harlite convert --firmware");
#else
#define HARLITE_RUNTIME "TFLM"
#define HARLITE_MODEL_STACK (8 * 1024)
alignas(16) static uint8_t arena[HARLITE_ARENA_BYTES];
static tflite::MicroInterpreter* interpreter = nullptr;

/* The model in TFLM on its input and output tensors (harlite_model_fn). The fused LSTM keeps its state
 * between invocations: Reset() starts every window from zero, as in training. */
static int TflmInvoke(const int8_t*, int8_t*) {
  return interpreter->Reset() == kTfLiteOk && interpreter->Invoke() == kTfLiteOk ? 0 : 1;
}
#endif

/* The model runs in its own thread, below the sampling loop's priority. The loop hands it a window
 * when it is idle (busy false) and reads the result when it is done; both flags are atomic. */
static rtos::Thread inference_thread(osPriorityBelowNormal, HARLITE_MODEL_STACK);
static rtos::Semaphore window_ready(0);
static std::atomic<bool> busy(false);
static std::atomic<bool> done(false);
static bool invoke_ok = false;
static uint32_t invoke_ms = 0;

static uint32_t start_us = 0;  // micros() of sample 0
static float last_raw[HARLITE_NUM_RAW] = {0};
static char line[HARLITE_LINE_MAX];
static bool host_connected = false;  // a program on the host has the port open (DTR)

/* micros() at which sample n is due (modulo 2^32, like micros()). */
static uint32_t DueUs(uint32_t n) { return start_us + (uint32_t)(uint64_t)((double)n * 1e6 / (double)HARLITE_RATE_HZ); }

static void InferenceTask() {
  for (;;) {
    window_ready.acquire();
    const uint32_t t0 = micros();
    invoke_ok = harlite_pipeline_invoke(&pipeline) == 0;
    invoke_ms = (micros() - t0 + 500u) / 1000u;
    done = true;
  }
}

/* Setup failed: say why every two seconds (a serial monitor opened late still sees it) and blink. */
static void Fail(const char* why) {
  pinMode(LED_BUILTIN, OUTPUT);
  for (;;) {
    Serial.print("# error: ");
    Serial.println(why);
    for (int i = 0; i < 8; i++) {
      digitalWrite(LED_BUILTIN, i % 2 ? HIGH : LOW);
      delay(250);
    }
  }
}

#ifndef HARLITE_ENGINE
static bool SameScale(float a, float b) { return fabsf(a - b) <= 1e-6f * fabsf(b); }
#endif

/* Reads one sample in the model's axes and units (g, rad/s): the accelerometer, and the gyroscope when
 * the model reads it (HARLITE_NUM_RAW 6); keeps the last good sample if a read fails. */
static void ReadSample(float raw[HARLITE_NUM_RAW]) {
  float acc[3], gyro[3] = {0, 0, 0};
  const bool ok = IMU.readAcceleration(acc[0], acc[1], acc[2]) &&
                  (HARLITE_NUM_RAW < 6 || IMU.readGyroscope(gyro[0], gyro[1], gyro[2]));
  if (!ok) {
    Serial.println("# error: IMU read failed, repeating the last sample");
    memcpy(raw, last_raw, sizeof last_raw);
    return;
  }
  for (int i = 0; i < 3; i++) {
    raw[i] = kAxes[i][0] * acc[0] + kAxes[i][1] * acc[1] + kAxes[i][2] * acc[2];
#if HARLITE_NUM_RAW == 6
    raw[3 + i] = kRadPerDeg * (kAxes[i][0] * gyro[0] + kAxes[i][1] * gyro[1] + kAxes[i][2] * gyro[2]);
#endif
  }
  memcpy(last_raw, raw, sizeof last_raw);
}

/* The banner (firmware, IMU, sensors, rate; harlite_serial.h) and the CSV header: at start-up and again
 * whenever a program on the host opens the port, as USB serial drops what is printed while none has it
 * open, so `harlite capture` started at any time sees them. */
static void PrintStart() {
  for (int part = 0; harlite_format_banner(line, part, "harlite_har", HARLITE_IMU_NAME) >= 0; part++) {
    Serial.print(line);
  }
  Serial.println();
  Serial.println(HARLITE_CSV_HEADER);
}

/* Prints the finished window's prediction and frees the model for the next window. */
static void ReportPrediction() {
  if (invoke_ok) {
    harlite_pipeline_report(&pipeline, line, invoke_ms);
    Serial.println(line);
  } else {
    Serial.println("# error: the model failed to run on a window");
  }
  done = false;
  busy = false;
}

/* The model: TFLM's interpreter with its tensors checked against harlite_model_config.h, or the C engine. */
static void SetUpModel(int8_t** input, int8_t** output, harlite_model_fn* model) {
#ifdef HARLITE_ENGINE
  *input = model_input;
  *output = model_output;
  *model = harlite_engine_invoke;
#else
  const tflite::Model* tflite_model = tflite::GetModel(harlite_model_data);
  if (tflite_model->version() != TFLITE_SCHEMA_VERSION) Fail("the model's schema version is not this TFLM's");
  static HarliteOpResolver resolver;
  if (harlite_register_ops(resolver) != kTfLiteOk) Fail("registering the model's ops failed");
  static tflite::MicroInterpreter static_interpreter(tflite_model, resolver, arena, sizeof arena);
  interpreter = &static_interpreter;
  if (interpreter->AllocateTensors() != kTfLiteOk) Fail("AllocateTensors() failed: raise HARLITE_ARENA_BYTES");
  const TfLiteTensor* in = interpreter->input(0);
  const TfLiteTensor* out = interpreter->output(0);
  if (in->type != kTfLiteInt8 || in->bytes != HARLITE_WINDOW_BYTES ||
      in->params.zero_point != HARLITE_INPUT_ZERO_POINT ||
      !SameScale(in->params.scale, HARLITE_INPUT_SCALE) || out->type != kTfLiteInt8 ||
      out->bytes != HARLITE_NUM_CLASSES || out->params.zero_point != HARLITE_OUTPUT_ZERO_POINT ||
      !SameScale(out->params.scale, HARLITE_OUTPUT_SCALE)) {
    Fail("the model and harlite_model_config.h disagree: regenerate both with harlite convert --firmware");
  }
  *input = in->data.int8;
  *output = out->data.int8;
  *model = TflmInvoke;
#endif
}

void setup() {
  Serial.begin(115200);
  for (const uint32_t t0 = millis(); !Serial && millis() - t0 < 3000;) {
  }
  if (!IMU.begin()) Fail("IMU.begin() failed: is HARLITE_IMU_BMI270 (Rev2) or HARLITE_IMU_LSM9DS1 (Rev1) right?");
  int8_t *input, *output;
  harlite_model_fn model;
  SetUpModel(&input, &output, &model);
  if (!harlite_pipeline_init(&pipeline, model, input, output, HARLITE_SMOOTHING, HARLITE_SMOOTHING_K,
                             HARLITE_SMOOTHING_ALPHA)) {
    Fail("invalid HARLITE_SMOOTHING_K or HARLITE_SMOOTHING_ALPHA");
  }

  Serial.print("# harlite_har: " HARLITE_IMU_NAME ", " HARLITE_RUNTIME);
#ifndef HARLITE_ENGINE
  Serial.print(", model ");
  Serial.print((unsigned long)HARLITE_MODEL_DATA_LEN);
  Serial.print(" bytes, arena ");
  Serial.print((unsigned long)interpreter->arena_used_bytes());
  Serial.print(" of ");
  Serial.print((unsigned long)sizeof arena);
  Serial.print(" bytes used");
#endif
  Serial.println();
  host_connected = Serial.connected();  // a host that opens the port from now on gets the banner again
  PrintStart();

  inference_thread.start(InferenceTask);
  start_us = micros();
}

void loop() {
  if (done) ReportPrediction();
  const bool host = Serial.connected();
  if (host && !host_connected) PrintStart();
  host_connected = host;

  // Wait for the next sample's time; sleeping lets the inference thread run.
  const uint32_t due = DueUs(pipeline.next);
  int32_t wait;
  while ((wait = (int32_t)(due - micros())) > 0) {
    if (wait > 1500) delay(1);
  }
  if ((uint32_t)-wait > HARLITE_MAX_LATE_US) {
    // Samples were lost: skip their times (the CSV shows the gap) and restart the stream.
    const uint32_t lost = (uint32_t)((double)(uint32_t)-wait * (double)HARLITE_RATE_HZ / 1e6);
    harlite_pipeline_gap(&pipeline, lost);
    Serial.print("# gap: ");
    Serial.print((unsigned long)lost);
    Serial.println(" samples lost, the stream restarts");
    return;
  }

  float raw[HARLITE_NUM_RAW];
  ReadSample(raw);
  if (HARLITE_PRINT_SAMPLES) {
    harlite_format_sample(line, pipeline.next, raw);
    Serial.println(line);
  }
  switch (harlite_pipeline_push(&pipeline, raw, !busy)) {
    case HARLITE_PUSH_WINDOW:
      busy = true;
      window_ready.release();
      break;
    case HARLITE_PUSH_SKIPPED:
      Serial.println("# error: the model is still busy with the previous window; this one is skipped");
      break;
  }
}
