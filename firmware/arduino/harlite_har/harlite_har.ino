/*
 * harlite_har: human activity recognition on an Arduino Nano 33 BLE Sense (Rev2: BMI270, Rev1: LSM9DS1)
 * with a harlite model in TensorFlow Lite Micro.
 *
 * Every 1/HARLITE_RATE_HZ s (20 ms at 50 Hz; paced by micros() against a fixed schedule, so it never
 * drifts) the main loop reads the IMU, maps the board's axes and units to the model's, prints the
 * sample as a CSV row and pushes it into the harlite core (harlite_core.h), which filters, quantizes
 * and buffers it. Every hop the core completes a window: its int8 tensor goes to the model, which runs
 * in a thread of lower priority, so sampling never waits for an inference. When the model is done, the
 * main loop smooths the prediction and prints one "# pred" line. Line formats: harlite_serial.h.
 *
 * Files: harlite_core.*, harlite_serial.* are copies of firmware/core (tests/test_firmware.py keeps
 * them identical); harlite_model_config.h, harlite_model_data.*, harlite_op_resolver.h are generated
 * from a bundle by `harlite convert --firmware firmware/arduino/harlite_har`. See firmware/README.md.
 */

/* ---- Configuration: edit here or pass -D flags (platformio.ini does) ---- */

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

#include <TensorFlowLite.h>
#include <mbed.h>

#include <atomic>

#if defined(HARLITE_IMU_LSM9DS1)
#include <Arduino_LSM9DS1.h>
#define HARLITE_IMU_NAME "LSM9DS1"
#else
#include <Arduino_BMI270_BMM150.h>
#define HARLITE_IMU_NAME "BMI270"
#endif

#include "harlite_core.h"
#include "harlite_model_data.h"
#include "harlite_op_resolver.h"
#include "harlite_serial.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"

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

static harlite_frontend_t front_end;
static harlite_smoother_t smoother;
alignas(16) static uint8_t arena[HARLITE_ARENA_BYTES];
static tflite::MicroInterpreter* interpreter = nullptr;
static TfLiteTensor* model_input = nullptr;
static TfLiteTensor* model_output = nullptr;

/* The model runs in its own thread, below the sampling loop's priority. The loop hands it a window
 * when it is idle (busy false) and reads the result when it is done; both flags are atomic. */
static rtos::Thread inference_thread(osPriorityBelowNormal, 8 * 1024);
static rtos::Semaphore window_ready(0);
static std::atomic<bool> busy(false);
static std::atomic<bool> done(false);
static bool invoke_ok = false;
static uint32_t invoke_ms = 0;
static uint32_t window_start = 0;  // first sample of the window in the model

static uint32_t start_us = 0;       // micros() of sample 0
static uint32_t sample_index = 0;   // the next sample
static float last_raw[HARLITE_NUM_RAW] = {0};
static char line[HARLITE_LINE_MAX];
static bool host_connected = false;  // a program on the host has the port open (DTR)

/* micros() at which sample n is due (modulo 2^32, like micros()). */
static uint32_t DueUs(uint32_t n) { return start_us + (uint32_t)(uint64_t)((double)n * 1e6 / (double)HARLITE_RATE_HZ); }

static void InferenceTask() {
  for (;;) {
    window_ready.acquire();
    const uint32_t t0 = micros();
    // The fused LSTM keeps its state between invocations: start every window from zero, as in training.
    invoke_ok = interpreter->Reset() == kTfLiteOk && interpreter->Invoke() == kTfLiteOk;
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

static bool SameScale(float a, float b) { return fabsf(a - b) <= 1e-6f * fabsf(b); }

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
  static char banner[HARLITE_BANNER_MAX];
  harlite_format_banner(banner, "harlite_har", HARLITE_IMU_NAME);
  Serial.println(banner);
  Serial.println(HARLITE_CSV_HEADER);
}

/* Prints the finished window's prediction and frees the model for the next window. */
static void ReportPrediction() {
  if (invoke_ok) {
    const int8_t* scores = model_output->data.int8;
    const int smoothed = harlite_smoother_update(&smoother, scores);
    harlite_format_prediction(line, window_start, scores, smoothed, invoke_ms);
    Serial.println(line);
  } else {
    Serial.println("# error: the model failed to run on a window");
  }
  done = false;
  busy = false;
}

void setup() {
  Serial.begin(115200);
  for (const uint32_t t0 = millis(); !Serial && millis() - t0 < 3000;) {
  }
  if (!IMU.begin()) Fail("IMU.begin() failed: is HARLITE_IMU_BMI270 (Rev2) or HARLITE_IMU_LSM9DS1 (Rev1) right?");
  const tflite::Model* model = tflite::GetModel(harlite_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) Fail("the model's schema version is not this TFLM's");
  static HarliteOpResolver resolver;
  if (harlite_register_ops(resolver) != kTfLiteOk) Fail("registering the model's ops failed");
  static tflite::MicroInterpreter static_interpreter(model, resolver, arena, sizeof arena);
  interpreter = &static_interpreter;
  if (interpreter->AllocateTensors() != kTfLiteOk) Fail("AllocateTensors() failed: raise HARLITE_ARENA_BYTES");
  model_input = interpreter->input(0);
  model_output = interpreter->output(0);
  const TfLiteTensor* in = model_input;
  const TfLiteTensor* out = model_output;
  if (in->type != kTfLiteInt8 || in->bytes != HARLITE_WINDOW_BYTES ||
      in->params.zero_point != HARLITE_INPUT_ZERO_POINT ||
      !SameScale(in->params.scale, HARLITE_INPUT_SCALE) || out->type != kTfLiteInt8 ||
      out->bytes != HARLITE_NUM_CLASSES || out->params.zero_point != HARLITE_OUTPUT_ZERO_POINT ||
      !SameScale(out->params.scale, HARLITE_OUTPUT_SCALE)) {
    Fail("the model and harlite_model_config.h disagree: regenerate both with harlite convert --firmware");
  }
  if (!harlite_smoother_init(&smoother, HARLITE_SMOOTHING, HARLITE_SMOOTHING_K, HARLITE_SMOOTHING_ALPHA)) {
    Fail("invalid HARLITE_SMOOTHING_K or HARLITE_SMOOTHING_ALPHA");
  }
  harlite_frontend_reset(&front_end);

  Serial.print("# harlite_har: " HARLITE_IMU_NAME ", model ");
  Serial.print((unsigned long)HARLITE_MODEL_DATA_LEN);
  Serial.print(" bytes, arena ");
  Serial.print((unsigned long)interpreter->arena_used_bytes());
  Serial.print(" of ");
  Serial.print((unsigned long)sizeof arena);
  Serial.println(" bytes used");
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
  const uint32_t due = DueUs(sample_index);
  int32_t wait;
  while ((wait = (int32_t)(due - micros())) > 0) {
    if (wait > 1500) delay(1);
  }
  if ((uint32_t)-wait > HARLITE_MAX_LATE_US) {
    // Samples were lost: skip their times (the CSV shows the gap) and restart the stream.
    const uint32_t lost = (uint32_t)((double)(uint32_t)-wait * (double)HARLITE_RATE_HZ / 1e6);
    sample_index += lost;
    harlite_frontend_reset(&front_end);
    harlite_smoother_reset(&smoother);
    Serial.print("# gap: ");
    Serial.print((unsigned long)lost);
    Serial.println(" samples lost, the stream restarts");
    return;
  }

  float raw[HARLITE_NUM_RAW];
  ReadSample(raw);
  if (HARLITE_PRINT_SAMPLES) {
    harlite_format_sample(line, sample_index, raw);
    Serial.println(line);
  }
  if (harlite_frontend_push(&front_end, raw)) {
    if (!busy) {
      harlite_frontend_window_int8(&front_end, model_input->data.int8);
      window_start = sample_index + 1 - HARLITE_WINDOW;
      busy = true;
      window_ready.release();
    } else {
      Serial.println("# error: the model is still busy with the previous window; this one is skipped");
    }
  }
  sample_index++;
}
