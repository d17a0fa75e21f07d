/*
 * harlite serial lines: what the board prints, formatted without printf's float support (which
 * embedded C libraries often leave out) and tested on the host.
 *
 * Samples are rows of harlite's CSV recording format, so a captured session replays in
 * `harlite simulate` (drop the '#' lines first):
 *
 *   time_s,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z      (HARLITE_CSV_HEADER; the model's HARLITE_RAW_NAMES)
 *   12.340000,0.981234567,-0.331250000,0.020019531,0.012345679,-0.001065264,0.000000000
 *
 * time_s is the sample's index / HARLITE_RATE_HZ to the microsecond; values carry 9 decimals, which
 * give every float32 back exactly from 2^-6 in magnitude up (and within 1e-9 below). One line per window:
 *
 *   # pred,start_s=10.240000,end_s=12.800000,pred_raw=WALKING,p=0.934,pred_smoothed=WALKING,invoke_ms=48
 *
 * start_s and end_s bound the window's samples [start, end) as in the simulator's timeline; pred_raw is
 * the window's top class and p its probability, pred_smoothed the smoothed class, invoke_ms the time
 * the model took.
 *
 * Before the CSV header the board prints one banner line (harlite_format_banner, in parts, so that a
 * line buffer of HARLITE_LINE_MAX holds it whatever the number of labels), which `harlite capture`
 * reads to check the board against a dataset:
 *
 *   # harlite format=1 firmware=harlite_har imu=BMI270 sensors=acc,gyro rate_hz=50 window=128 hop=64 labels=WALKING,...
 *
 * Fields are separated by one space and come in this order; no value holds '=' or a space, except
 * labels, the last field, which runs to the end of the line (label names may hold spaces, never ',' or
 * '='). format is HARLITE_SERIAL_VERSION, the version of these line formats; sensors is "acc" or
 * "acc,gyro" (HARLITE_NUM_RAW 3 or 6), in the CSV header's order; rate_hz is HARLITE_RATE_HZ
 * (up to 6 decimals, trailing zeros dropped); labels are the model's classes in order, comma-separated.
 */
#ifndef HARLITE_SERIAL_H
#define HARLITE_SERIAL_H

#include <stdint.h>

#include "harlite_model_config.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HARLITE_CSV_HEADER "time_s," HARLITE_RAW_NAMES
#define HARLITE_LABEL_MAX 32 /* longest label the prediction line prints in full */
#define HARLITE_LINE_MAX 192 /* bytes of a line buffer, NUL included */
#define HARLITE_SERIAL_VERSION 1 /* the banner's format=: bumped when a line format changes */
#define HARLITE_NAME_MAX 24      /* longest firmware or IMU name the banner prints */

/* Writes sample `index`'s CSV row (no newline) into line[HARLITE_LINE_MAX]; returns its length.
 * A value that is not finite or not below 2^30 in magnitude prints as nan (the reader rejects it). */
int harlite_format_sample(char *line, uint32_t index, const float raw[HARLITE_NUM_RAW]);

/* Writes the prediction line (no newline) of the window whose first sample is `start` into
 * line[HARLITE_LINE_MAX]: the top class of the model's int8 `scores`, the `smoothed` class and the
 * model's time; returns its length. */
int harlite_format_prediction(char *line, uint32_t start, const int8_t scores[HARLITE_NUM_CLASSES], int smoothed,
                              uint32_t invoke_ms);

/* Writes part `part` of the banner line (no newline) into line[HARLITE_LINE_MAX] and returns its length,
 * or -1 past the last part: part 0 runs up to "labels=", part k >= 1 is the k-th label (after a comma
 * from the second on). `firmware` and `imu` name the program and the sensor chip (no spaces or '='; at
 * most HARLITE_NAME_MAX characters are printed). Print the parts one after another, then end the line:
 *
 *   for (part = 0; harlite_format_banner(line, part, "harlite_har", "BMI270") >= 0; part++) print(line);
 */
int harlite_format_banner(char *line, int part, const char *firmware, const char *imu);

/* The name of class `index` (0 .. HARLITE_NUM_CLASSES - 1; at most 31 bytes of UTF-8), or "" for another
 * index. */
const char *harlite_label(int index);

/* Writes x with `decimals` (0..9) digits after the point, correctly rounded (ties to even), into p;
 * returns the end of the text (not NUL-terminated). */
char *harlite_put_fixed(char *p, float x, int decimals);

#ifdef __cplusplus
}
#endif

#endif /* HARLITE_SERIAL_H */
