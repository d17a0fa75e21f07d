/*
 * replay: the model on a recording, on a computer. Reads a CSV recording in harlite's format (a header
 * row, then one row per sample: time_s and the model's raw channels, HARLITE_RAW_NAMES, first and in that
 * order; other columns after them, a label say, are ignored; lines starting with '#' are skipped), pushes
 * every sample through harlite.h and prints one "# pred" line per window, as harlite's firmware does:
 *
 *   harlite_replay recording.csv        (or - for standard input)
 *
 * The lines equal those of `harlite simulate BUNDLE recording.csv --runtime c --smoothing majority:3`,
 * window by window. Rows are taken as consecutive samples at HARLITE_RATE_HZ (a recording at another
 * rate must be resampled first: `harlite simulate` does it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harlite.h"

#define ROW_MAX 1024

/* Parse the first HARLITE_NUM_RAW values after time_s; 1 if the row holds them. */
static int parse_row(char *row, float raw[HARLITE_NUM_RAW]) {
    char *p = strchr(row, ','), *end;
    int r;
    for (r = 0; r < HARLITE_NUM_RAW; r++) {
        if (!p) return 0;
        raw[r] = (float)strtod(p + 1, &end); /* the value as a double, then float32, as harlite reads it */
        if (end == p + 1 || (*end != ',' && *end != '\n' && *end != '\r' && *end != '\0')) return 0;
        p = *end == ',' ? end : NULL;
    }
    return 1;
}

int main(int argc, char **argv) {
    static harlite_t har;
    static char row[ROW_MAX], line[HARLITE_LINE_MAX];
    FILE *f = argc == 2 && strcmp(argv[1], "-") != 0 ? fopen(argv[1], "r") : stdin;
    unsigned long number = 0;
    int header = 0;
    if (argc != 2 || !f) {
        fprintf(stderr, argc != 2 ? "usage: harlite_replay RECORDING.csv (or - for stdin)\n"
                                  : "harlite_replay: cannot open %s\n", argv[argc - 1]);
        return 2;
    }
    harlite_init(&har, HARLITE_SMOOTH_MAJORITY, 3, 0.0f);
    while (fgets(row, sizeof row, f)) {
        float raw[HARLITE_NUM_RAW];
        harlite_prediction_t pred;
        number++;
        if (row[0] == '#' || row[0] == '\n') continue;
        if (!header) { /* the header must name time_s and the model's raw channels first */
            if (strncmp(row, HARLITE_CSV_HEADER, strlen(HARLITE_CSV_HEADER)) != 0) {
                fprintf(stderr, "harlite_replay: line %lu: the header does not start with %s\n", number,
                        HARLITE_CSV_HEADER);
                return 2;
            }
            header = 1;
            continue;
        }
        if (!parse_row(row, raw)) {
            fprintf(stderr, "harlite_replay: line %lu: not %d numbers after time_s\n", number, HARLITE_NUM_RAW);
            return 2;
        }
        if (harlite_push(&har, raw, &pred) == 1) {
            harlite_format_prediction(line, pred.start, pred.scores, pred.smoothed, 0);
            printf("%s\n", line);
        }
    }
    return 0;
}
