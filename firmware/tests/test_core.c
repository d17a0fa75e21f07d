/*
 * Tests of the harlite core, for the host (gcc with sanitizers) and for the Cortex-M4 under QEMU
 * (semihosting: stdio and files go to the host, main's return value is QEMU's exit status).
 *
 *   test_core                      unit tests, then the golden vectors in the current directory
 *                                  (raw_f32.bin, input_int8.bin of `harlite simulate --dump-golden`)
 *   test_core csv FILE             prints the raw samples of FILE (n x 6 float32, e.g. raw_f32.bin) as
 *                                  the board prints them: HARLITE_CSV_HEADER, then one row a sample
 *   test_core board FILE SCORES [AT:N ...]
 *                                  prints what a board running the sketch prints for the raw samples of FILE
 *                                  (n x HARLITE_NUM_RAW float32): the banner, HARLITE_CSV_HEADER, every
 *                                  sample and, when a window completes, a "# pred" line whose scores are the
 *                                  next row of SCORES (int8 rows of HARLITE_NUM_CLASSES, e.g.
 *                                  output_int8.bin; "-" prints none); AT:N loses samples AT..AT+N-1 as the
 *                                  sketch does when it falls behind (their times skipped, a "# gap" line,
 *                                  the front end and smoother restarted)
 *   test_core smooth MODE K ALPHA FILE
 *                                  smooths the int8 model outputs in FILE (n x HARLITE_NUM_CLASSES, e.g.
 *                                  output_int8.bin) and prints one class a line (MODE 0 none, 1 majority,
 *                                  2 ema)
 *   test_core decide MODE K ALPHA DWELL HYSTERESIS
 *                                  for every window of the golden vectors (input_int8.bin, output_int8.bin,
 *                                  features_int8.bin) prints its unknown decision, distance and energy
 *                                  (harlite_unknown_decide) and the label post-processing reports
 *
 * Output lines start with "ok", "FAIL" or a result key ("golden:"); the return value is the number of
 * failures (0 = pass).
 */
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harlite_core.h"
#include "harlite_pipeline.h"
#include "harlite_serial.h"

static int failures;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);         \
            failures++;                                                    \
        }                                                                  \
    } while (0)

enum { C = HARLITE_NUM_CHANNELS, W = HARLITE_WINDOW, H = HARLITE_HOP, K = HARLITE_NUM_CLASSES };

static harlite_frontend_t fe, fe2;
static int8_t window[HARLITE_WINDOW_BYTES], window2[HARLITE_WINDOW_BYTES];

/* Deterministic pseudo-random numbers (xorshift32), identical on every target. */
static unsigned long rng_state = 2463534242UL;
static unsigned long rng(void) {
    rng_state ^= (rng_state << 13) & 0xffffffffUL;
    rng_state ^= rng_state >> 17;
    rng_state ^= (rng_state << 5) & 0xffffffffUL;
    return rng_state;
}
static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)(rng() % 1000001UL) / 1000000.0f; }

/* A walking-like raw sample: gravity on x, a 2 Hz gait, noise. */
static void walk_sample(long i, float raw[HARLITE_NUM_RAW]) {
    int r;
    const float phase = (float)(i % 25) / 25.0f; /* 2 Hz at 50 Hz */
    const float tri = phase < 0.5f ? 4.0f * phase - 1.0f : 3.0f - 4.0f * phase;
    for (r = 0; r < HARLITE_NUM_RAW; r++) raw[r] = uniform(-0.05f, 0.05f);
    raw[0] += 1.0f + 0.3f * tri;
    if (HARLITE_NUM_RAW > 4) raw[4] += 0.8f * tri;
}

/* The row the last push wrote (white box: the newest ring slot). */
static const int8_t *newest_row(const harlite_frontend_t *f) {
    return f->ring[f->head == 0 ? W - 1 : f->head - 1];
}

static void test_first_window_and_hop(void) {
    float raw[HARLITE_NUM_RAW];
    long i, emitted = 0;
    harlite_frontend_reset(&fe);
    CHECK(harlite_frontend_window_int8(&fe, window) == 0);
    for (i = 0; i < W + 3L * H; i++) {
        const int ready = (walk_sample(i, raw), harlite_frontend_push(&fe, raw));
        /* window k is complete exactly when sample k*H + W - 1 (0-based) arrives */
        const int expect = i >= W - 1 && (i - (W - 1)) % H == 0;
        CHECK(ready == expect);
        if (i < W - 1) CHECK(harlite_frontend_window_int8(&fe, window) == 0);
        emitted += ready;
    }
    CHECK(emitted == 4);
    CHECK(harlite_frontend_window_int8(&fe, window) == 1);
    printf("ok first window at sample %d, then every %d\n", W - 1, H);
}

/* Every window equals the rows of its samples in arrival order, across many wraps of the ring. */
static void test_wrap_around(void) {
    static int8_t rows[W + 8 * H][C];
    float raw[HARLITE_NUM_RAW];
    long i, k = 0;
    harlite_frontend_reset(&fe);
    for (i = 0; i < W + 8L * H; i++) {
        int ready;
        walk_sample(i, raw);
        ready = harlite_frontend_push(&fe, raw);
        memcpy(rows[i], newest_row(&fe), C);
        if (ready) {
            CHECK(harlite_frontend_window_int8(&fe, window) == 1);
            CHECK(memcmp(window, rows[k * H], HARLITE_WINDOW_BYTES) == 0);
            k++;
        }
    }
    CHECK(k == 9);
    printf("ok wrap-around: %ld windows equal their samples' rows\n", k);
}

/* A reset mid-stream forgets everything: the stream after it equals a fresh front end's. */
static void test_reset_mid_stream(void) {
    float raw[HARLITE_NUM_RAW];
    long i, windows = 0;
    harlite_frontend_reset(&fe);
    for (i = 0; i < W + H / 2; i++) {
        walk_sample(i, raw);
        raw[1] += 3.0f; /* a different gravity, so a stale filter state would show */
        harlite_frontend_push(&fe, raw);
    }
    harlite_frontend_reset(&fe);
    harlite_frontend_reset(&fe2);
    CHECK(harlite_frontend_window_int8(&fe, window) == 0);
    for (i = 0; i < W + 2L * H; i++) {
        int a, b;
        walk_sample(i, raw);
        a = harlite_frontend_push(&fe, raw);
        b = harlite_frontend_push(&fe2, raw);
        CHECK(a == b);
        CHECK(memcmp(newest_row(&fe), newest_row(&fe2), C) == 0);
        if (a) {
            harlite_frontend_window_int8(&fe, window);
            harlite_frontend_window_int8(&fe2, window2);
            CHECK(memcmp(window, window2, sizeof window) == 0);
            windows++;
        }
    }
    CHECK(windows == 3);
    printf("ok reset mid-stream\n");
}

/* Extremes and random values never misbehave (the sanitizers watch), and a reset recovers. */
static void test_random_and_extremes(void) {
    static const float extremes[] = {0.0f, -0.0f, FLT_MIN, -FLT_MIN, 1e-40f, FLT_MAX, -FLT_MAX, 1e30f, -1e30f,
                                     1e6f, -1e6f, 127.0f, -128.0f};
    const long n_extremes = (long)(sizeof extremes / sizeof extremes[0]);
    float raw[HARLITE_NUM_RAW];
    long i, windows = 0;
    int r, c;
    harlite_frontend_reset(&fe);
    for (i = 0; i < 20L * W; i++) {
        for (r = 0; r < HARLITE_NUM_RAW; r++) {
            const unsigned long pick = rng() % 4;
            raw[r] = pick == 0 ? extremes[rng() % (unsigned long)n_extremes]
                     : pick == 1 ? uniform(-1e4f, 1e4f)
                                 : uniform(-4.0f, 4.0f);
        }
        if (harlite_frontend_push(&fe, raw)) windows += harlite_frontend_window_int8(&fe, window);
        if (rng() % 997 == 0) harlite_frontend_reset(&fe);
    }
    CHECK(windows > 0);
    /* A channel that passes a raw value through saturates at the ends of int8 for huge inputs. */
    for (c = 0; c < C; c++) {
        static const uint8_t kind[] = HARLITE_CHANNEL_KIND;
        static const uint8_t source[] = HARLITE_CHANNEL_SOURCE;
        static const float mul[] = HARLITE_INPUT_MUL;
        if (kind[c] != HARLITE_CH_RAW) continue;
        for (r = 0; r < 2; r++) {
            memset(raw, 0, sizeof raw);
            raw[source[c]] = r ? FLT_MAX : -FLT_MAX;
            harlite_frontend_reset(&fe);
            harlite_frontend_push(&fe, raw);
            CHECK(newest_row(&fe)[c] == ((r != 0) == (mul[c] > 0.0f) ? 127 : -128));
        }
    }
    /* after reset, the extremes leave no trace */
    harlite_frontend_reset(&fe);
    harlite_frontend_reset(&fe2);
    for (i = 0; i < W; i++) {
        walk_sample(i, raw);
        harlite_frontend_push(&fe, raw);
        harlite_frontend_push(&fe2, raw);
    }
    harlite_frontend_window_int8(&fe, window);
    harlite_frontend_window_int8(&fe2, window2);
    CHECK(memcmp(window, window2, sizeof window) == 0);
    printf("ok random and extreme input: %ld windows\n", windows);
}

static void scores_for(int cls, int8_t out[K]) {
    int i;
    for (i = 0; i < K; i++) out[i] = (int8_t)(i == cls ? 100 : -100);
}

static void test_smoothing(void) {
    harlite_smoother_t sm;
    int8_t s[K];
    /* majority, k=3: A B -> a tie, the most recent wins; A B A -> A; (A) B A B -> B; A B C -> C; ... */
    static const int seq[] = {0, 1, 0, 1, 2, 2, 0};
    static const int want3[] = {0, 1, 0, 1, 2, 2, 2};
    /* majority, k=4: A B A B -> a tie, B; B A B C -> B; A B C C -> C; B C C A -> C */
    static const int want4[] = {0, 1, 0, 1, 1, 2, 2};
    unsigned i;
    CHECK(harlite_smoother_init(&sm, HARLITE_SMOOTH_MAJORITY, 0, 0.0f) == 0);
    CHECK(harlite_smoother_init(&sm, HARLITE_SMOOTH_MAJORITY, HARLITE_MAJORITY_MAX + 1, 0.0f) == 0);
    CHECK(harlite_smoother_init(&sm, HARLITE_SMOOTH_EMA, 0, 0.0f) == 0);
    CHECK(harlite_smoother_init(&sm, HARLITE_SMOOTH_EMA, 0, 1.5f) == 0);
    CHECK(harlite_smoother_init(&sm, (harlite_smoothing_t)7, 1, 0.5f) == 0);

    CHECK(harlite_smoother_init(&sm, HARLITE_SMOOTH_MAJORITY, 3, 0.0f) == 1);
    for (i = 0; i < sizeof seq / sizeof seq[0]; i++) {
        scores_for(seq[i], s);
        CHECK(harlite_smoother_update(&sm, s) == want3[i]);
    }
    CHECK(harlite_smoother_init(&sm, HARLITE_SMOOTH_MAJORITY, 4, 0.0f) == 1);
    for (i = 0; i < sizeof seq / sizeof seq[0]; i++) {
        scores_for(seq[i], s);
        CHECK(harlite_smoother_update(&sm, s) == want4[i]);
    }
    harlite_smoother_reset(&sm); /* history gone: the first prediction stands alone */
    scores_for(K - 1, s);
    CHECK(harlite_smoother_update(&sm, s) == K - 1);

    /* none: argmax, ties to the lowest index */
    CHECK(harlite_smoother_init(&sm, HARLITE_SMOOTH_NONE, 0, 0.0f) == 1);
    memset(s, 0, sizeof s);
    s[1] = s[K - 1] = 5;
    CHECK(harlite_smoother_update(&sm, s) == 1);

    /* ema, alpha 0.25: a single window of another class does not flip it; three do */
    CHECK(harlite_smoother_init(&sm, HARLITE_SMOOTH_EMA, 0, 0.25f) == 1);
    scores_for(0, s);
    CHECK(harlite_smoother_update(&sm, s) == 0);
    CHECK(harlite_smoother_update(&sm, s) == 0);
    scores_for(K - 1, s);
    CHECK(harlite_smoother_update(&sm, s) == 0);
    CHECK(harlite_smoother_update(&sm, s) == 0);
    CHECK(harlite_smoother_update(&sm, s) == K - 1);
    harlite_smoother_reset(&sm);
    scores_for(1, s);
    CHECK(harlite_smoother_update(&sm, s) == 1);
    printf("ok smoothing\n");
}

/* The serial lines: numbers equal the C library's printf (correctly rounded, ties to even). */
static void test_serial_lines(void) {
    static const char *const names[] = HARLITE_LABELS;
    char line[HARLITE_LINE_MAX], want[2 * HARLITE_LINE_MAX], *end;
    float raw[HARLITE_NUM_RAW];
    int8_t scores[K];
    long i, mismatches = 0;
    int r;
    /* random finite floats below 2^30 (every exponent, subnormals included), at 9, 3 and 0 decimals */
    for (i = 0; i < 30000; i++) {
        const unsigned long bits = (rng() & 0x807fffffUL) | ((rng() % 157UL) << 23);
        static const int decimals[] = {9, 3, 0};
        const int d = decimals[i % 3];
        float x;
        uint32_t b = (uint32_t)bits;
        memcpy(&x, &b, sizeof x);
        end = harlite_put_fixed(line, x, d);
        *end = '\0';
        snprintf(want, sizeof want, "%.*f", d, (double)x);
        if (strcmp(line, want) != 0 && mismatches++ < 5) {
            printf("FAIL put_fixed(%.9g, %d): %s, printf %s\n", (double)x, d, line, want);
        }
    }
    CHECK(mismatches == 0);
    end = harlite_put_fixed(line, 1.0f / 1024.0f, 9); /* 0.0009765625: a tie at 9 decimals */
    *end = '\0';
    CHECK(strcmp(line, "0.000976562") == 0);
    end = harlite_put_fixed(line, 2.5f, 0);
    *end = '\0';
    CHECK(strcmp(line, "2") == 0);
    end = harlite_put_fixed(line, -0.0f, 3);
    *end = '\0';
    CHECK(strcmp(line, "-0.000") == 0);
    end = harlite_put_fixed(line, 1073741824.0f, 9); /* 2^30 and beyond, and inf: not a number to the reader */
    *end = '\0';
    CHECK(strcmp(line, "nan") == 0);

    for (r = 0; r < HARLITE_NUM_RAW; r++) raw[r] = (float)(r - 2) * 0.3183099f;
    CHECK(harlite_format_sample(line, 617, raw) == (int)strlen(line));
    snprintf(want, sizeof want, "%.6f,%.9f,%.9f,%.9f", 617.0 / HARLITE_RATE_HZ, (double)raw[0], (double)raw[1],
             (double)raw[2]);
    CHECK(strncmp(line, want, strlen(want)) == 0);

    memset(scores, -128, sizeof scores);
    scores[K - 1] = 111;
    CHECK(harlite_format_prediction(line, 3 * H, scores, 0, 48) == (int)strlen(line));
    snprintf(want, sizeof want, "# pred,start_s=%.6f,end_s=%.6f,pred_raw=%s,p=%.3f,pred_smoothed=%s,invoke_ms=48",
             3.0 * H / HARLITE_RATE_HZ, (3.0 * H + W) / HARLITE_RATE_HZ, names[K - 1],
             (double)((float)(111 - HARLITE_OUTPUT_ZERO_POINT) * HARLITE_OUTPUT_SCALE), names[0]);
    CHECK(strcmp(line, want) == 0);
    if (strcmp(line, want) != 0) printf("  %s\n  %s\n", line, want);

    /* the banner, part by part: the head up to labels=, then each label, after a comma from the second on */
    {
        static char banner[HARLITE_LINE_MAX * (K + 1)];
        char *p = banner;
        int part, n;
        for (part = 0; (n = harlite_format_banner(line, part, "test_core", "an_imu_name_of_more_than_24")) >= 0;
             part++) {
            CHECK(n == (int)strlen(line) && n < HARLITE_LINE_MAX);
            memcpy(p, line, (size_t)n + 1);
            p += n;
        }
        CHECK(part == K + 1 && harlite_format_banner(line, -1, "x", "y") == -1);
        n = snprintf(want, sizeof want, "# harlite format=%d firmware=test_core imu=an_imu_name_of_more_than sensors=%s "
                     "rate_hz=%g window=%d hop=%d labels=", HARLITE_SERIAL_VERSION,
                     HARLITE_NUM_RAW > 3 ? "acc,gyro" : "acc", (double)HARLITE_RATE_HZ, W, H);
        CHECK(strncmp(banner, want, (size_t)n) == 0);
        for (p = banner + n, part = 0; part < K; part++) {
            CHECK(strncmp(p, names[part], strlen(names[part])) == 0);
            p += strlen(names[part]);
            CHECK(*p == (part < K - 1 ? ',' : '\0'));
            p++;
        }
    }
    printf("ok serial lines\n");
}

/* Print a raw sample file as the board prints its samples. */
static int print_csv(const char *path) {
    FILE *f = fopen(path, "rb");
    float raw[HARLITE_NUM_RAW];
    char line[HARLITE_LINE_MAX];
    uint32_t index = 0;
    if (!f) {
        printf("FAIL csv: cannot open %s\n", path);
        return 1;
    }
    printf("%s\n", HARLITE_CSV_HEADER);
    while (fread(raw, sizeof raw, 1, f) == 1) {
        harlite_format_sample(line, index++, raw);
        printf("%s\n", line);
    }
    fclose(f);
    return 0;
}

/* The model of the board mode: the next row of the scores file. */
static FILE *scores_file;
static int scores_model(const int8_t *input, int8_t *output) {
    (void)input;
    return fread(output, K, 1, scores_file) == 1 ? 0 : 1;
}

/* The sketch's output for a raw sample file (see the top of this file), through the sketch's pipeline. */
static int print_board(const char *path, const char *scores_path, int n_gaps, char *const *gaps) {
    FILE *f = fopen(path, "rb");
    static harlite_pipeline_t p;
    static char line[HARLITE_LINE_MAX];
    float raw[HARLITE_NUM_RAW];
    int8_t output[K];
    uint32_t read = 0;
    int g = 0, part;
    scores_file = strcmp(scores_path, "-") == 0 ? NULL : fopen(scores_path, "rb");
    if (!f || (!scores_file && strcmp(scores_path, "-") != 0)) {
        printf("FAIL board: cannot open %s or %s\n", path, scores_path);
        if (f) fclose(f);
        return 1;
    }
    harlite_pipeline_init(&p, scores_model, window, output, HARLITE_SMOOTH_MAJORITY, 3, 0.0f); /* the sketch's default */
    for (part = 0; harlite_format_banner(line, part, "test_core", "none") >= 0; part++) printf("%s", line);
    printf("\n%s\n", HARLITE_CSV_HEADER);
    while (fread(raw, sizeof raw, 1, f) == 1) {
        if (g < n_gaps && read == (uint32_t)strtoul(gaps[g], NULL, 10)) {
            const uint32_t lost = (uint32_t)strtoul(strchr(gaps[g], ':') + 1, NULL, 10);
            uint32_t i;
            for (i = 1; i < lost && fread(raw, sizeof raw, 1, f) == 1; i++) {
            }
            read += lost;
            g++;
            harlite_pipeline_gap(&p, lost);
            printf("# gap: %lu samples lost, the stream restarts\n", (unsigned long)lost); /* as the sketch */
            continue;
        }
        harlite_format_sample(line, p.next, raw);
        printf("%s\n", line);
        if (harlite_pipeline_push(&p, raw, 1) == HARLITE_PUSH_WINDOW && scores_file &&
            harlite_pipeline_invoke(&p) == 0) {
            harlite_pipeline_report(&p, line, 12);
            printf("%s\n", line);
        }
        read++;
    }
    fclose(f);
    if (scores_file) fclose(scores_file);
    return 0;
}

static unsigned long fnv1a(unsigned long h, const int8_t *p, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) h = ((h ^ (unsigned char)p[i]) * 16777619UL) & 0xffffffffUL;
    return h;
}

/* Replay raw_f32.bin through the core; every window must match input_int8.bin within 1 LSB. */
static void test_golden(void) {
    FILE *raw_file = fopen("raw_f32.bin", "rb");
    FILE *want_file = fopen("input_int8.bin", "rb");
    float raw[HARLITE_NUM_RAW];
    long samples = 0, windows = 0, off_by_one = 0, worse = 0;
    unsigned long hash = 2166136261UL;
    if (!raw_file || !want_file) {
        printf("FAIL golden: cannot open raw_f32.bin or input_int8.bin in the current directory\n");
        failures++;
        if (raw_file) fclose(raw_file);
        if (want_file) fclose(want_file);
        return;
    }
    harlite_frontend_reset(&fe);
    while (fread(raw, sizeof raw, 1, raw_file) == 1) {
        samples++;
        if (!harlite_frontend_push(&fe, raw)) continue;
        harlite_frontend_window_int8(&fe, window);
        hash = fnv1a(hash, window, sizeof window);
        if (fread(window2, sizeof window2, 1, want_file) != 1) {
            printf("FAIL golden: the core emits more windows than input_int8.bin holds (%ld)\n", windows);
            failures++;
            break;
        }
        {
            int j;
            for (j = 0; j < HARLITE_WINDOW_BYTES; j++) {
                const int d = abs(window[j] - window2[j]);
                if (d == 1) off_by_one++;
                if (d > 1) {
                    if (worse++ < 5) {
                        printf("FAIL golden: window %ld sample %d channel %d: core %d, python %d\n", windows,
                               j / C, j % C, window[j], window2[j]);
                    }
                }
            }
        }
        windows++;
    }
    if (fread(window2, 1, 1, want_file) == 1) {
        printf("FAIL golden: input_int8.bin holds more windows than the core emitted (%ld)\n", windows);
        failures++;
    }
    if (worse) failures++;
    CHECK(windows > 0);
    fclose(raw_file);
    fclose(want_file);
    printf("golden: samples=%ld windows=%ld values=%ld lsb1=%ld worse=%ld fnv=%08lx\n", samples, windows,
           windows * (long)HARLITE_WINDOW_BYTES, off_by_one, worse, hash);
}

/* Print the smoothed class of each row of a file of int8 model outputs. */
static int smooth_file(int mode, unsigned k, float alpha, const char *path) {
    FILE *f = fopen(path, "rb");
    harlite_smoother_t sm;
    int8_t s[K];
    if (!f || !harlite_smoother_init(&sm, (harlite_smoothing_t)mode, k, alpha)) {
        printf("FAIL smooth: cannot open %s or invalid setting\n", path);
        if (f) fclose(f);
        return 1;
    }
    while (fread(s, sizeof s, 1, f) == 1) printf("%d\n", harlite_smoother_update(&sm, s));
    fclose(f);
    return 0;
}

static int decide_golden(int mode, unsigned k, float alpha, unsigned dwell, float hysteresis) {
    static int8_t in[HARLITE_WINDOW_BYTES], out[K], features[HARLITE_FEATURES_BYTES];
    FILE *fi = fopen("input_int8.bin", "rb"), *fo = fopen("output_int8.bin", "rb"), *ff = fopen("features_int8.bin", "rb");
    harlite_smoother_t sm;
    int status = 0;
    if (!fi || !fo || !ff || !harlite_smoother_init(&sm, (harlite_smoothing_t)mode, k, alpha) ||
        !harlite_smoother_hold(&sm, dwell, hysteresis)) {
        printf("FAIL decide: cannot open the golden vectors or invalid setting\n");
        status = 1;
    }
    while (!status && fread(in, sizeof in, 1, fi) == 1 && fread(out, sizeof out, 1, fo) == 1 &&
           (!HARLITE_UNKNOWN || fread(features, sizeof features, 1, ff) == 1)) {
        int64_t distance;
        int32_t energy;
        const int decision = harlite_unknown_decide(in, out, HARLITE_UNKNOWN ? features : 0, &distance, &energy);
        printf("%d %lld %ld %d\n", decision, (long long)distance, (long)energy,
               harlite_smoother_decide(&sm, out, decision));
    }
    if (fi) fclose(fi);
    if (fo) fclose(fo);
    if (ff) fclose(ff);
    return status;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "csv") == 0) return print_csv(argv[2]);
    if (argc >= 4 && strcmp(argv[1], "board") == 0) return print_board(argv[2], argv[3], argc - 4, argv + 4);
    if (argc == 6 && strcmp(argv[1], "smooth") == 0) {
        return smooth_file(atoi(argv[2]), (unsigned)atoi(argv[3]), (float)atof(argv[4]), argv[5]);
    }
    if (argc == 7 && strcmp(argv[1], "decide") == 0) {
        return decide_golden(atoi(argv[2]), (unsigned)atoi(argv[3]), (float)atof(argv[4]), (unsigned)atoi(argv[5]),
                             (float)atof(argv[6]));
    }
    printf("harlite core tests: window %d, hop %d, %d channels, %d classes, state %u bytes\n", W, H, C, K,
           (unsigned)sizeof(harlite_frontend_t));
    test_first_window_and_hop();
    test_wrap_around();
    test_reset_mid_stream();
    test_random_and_extremes();
    test_smoothing();
    test_serial_lines();
    test_golden();
    printf("%s: %d failure(s)\n", failures ? "FAIL" : "ok", failures);
    return failures;
}
