/*
 * classify: a harlite activity model on any Arduino board with an IMU. Fill in ReadSample() below with
 * your IMU's reading; the sketch samples it at the model's rate (HARLITE_RATE_HZ, paced by micros()),
 * pushes every sample into the model (harlite.h) and prints one "# pred" line per window to Serial:
 *
 *   # pred,start_s=10.240000,end_s=12.800000,pred_raw=WALKING,p=0.934,pred_smoothed=WALKING,invoke_ms=23
 *
 * (pred_raw: the window's class, p its probability, pred_smoothed the class after smoothing over the
 * last 3 windows, invoke_ms the time the window's call took). The library needs no other library: the
 * model runs in harlite's C engine, plain C99 with no allocation.
 */
#include <harlite.h>

/* Fill raw[] with one sample of your IMU in the model's units and axes and return true; false when no
 * reading was available. raw[0..2]: acceleration x, y, z in g (m/s^2 / 9.80665); for a model that reads
 * a gyroscope (HARLITE_NUM_RAW is 6) raw[3..5]: angular rate x, y, z in rad/s (deg/s * 0.0174533). The
 * axes are those of the data the model was trained on (see the library's README). For example, with
 * the Arduino_LSM6DS3 library (IMU.begin() in setup(); it reports g and deg/s):
 *
 *   float gx, gy, gz;
 *   if (!IMU.readAcceleration(raw[0], raw[1], raw[2]) || !IMU.readGyroscope(gx, gy, gz)) return false;
 *   raw[3] = gx * 0.0174533f; raw[4] = gy * 0.0174533f; raw[5] = gz * 0.0174533f;
 *   return true;
 */
static bool ReadSample(float raw[HARLITE_NUM_RAW]) {
  (void)raw;
  return false;  // replace with your IMU's reading
}

static harlite_t har;
static char line[HARLITE_LINE_MAX];
static uint32_t start_us;  // micros() of sample 0

/* micros() at which sample n is due (modulo 2^32, like micros()). */
static uint32_t DueUs(uint32_t n) { return start_us + (uint32_t)(uint64_t)((double)n * 1e6 / (double)HARLITE_RATE_HZ); }

void setup() {
  Serial.begin(115200);
  harlite_init(&har, HARLITE_SMOOTH_MAJORITY, 3, 0.0f);
  start_us = micros();
}

void loop() {
  const uint32_t due = DueUs(har.pipeline.next);
  const int32_t late = (int32_t)(micros() - due);
  if (late < 0) return;  // not yet
  if (late > 100000) {   // more than 0.1 s late: skip the lost samples' times and start over
    harlite_gap(&har, (uint32_t)((double)late * (double)HARLITE_RATE_HZ / 1e6));
    return;
  }
  float raw[HARLITE_NUM_RAW];
  if (!ReadSample(raw)) {
    static uint32_t misses = 0;
    if (misses++ % 500u == 0) Serial.println("# no sample: fill in ReadSample()");
    harlite_gap(&har, 1);
    return;
  }
  harlite_prediction_t pred;
  const uint32_t t0 = micros();
  if (harlite_push(&har, raw, &pred) == 1) {
    harlite_format_prediction(line, pred.start, pred.scores, pred.smoothed, (micros() - t0 + 500u) / 1000u);
    Serial.println(line);
  }
}
