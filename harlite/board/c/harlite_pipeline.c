/* harlite pipeline: see harlite_pipeline.h. */
#include "harlite_pipeline.h"

int harlite_pipeline_init(harlite_pipeline_t *p, harlite_model_fn model, int8_t *input, int8_t *output,
                          harlite_smoothing_t mode, unsigned k, float alpha) {
    if (!harlite_smoother_init(&p->smoother, mode, k, alpha)) return 0;
    harlite_frontend_reset(&p->front_end);
    p->model = model;
    p->input = input;
    p->output = output;
    p->next = 0;
    p->window_start = 0;
    return 1;
}

int harlite_pipeline_push(harlite_pipeline_t *p, const float raw[HARLITE_NUM_RAW], int model_idle) {
    const int complete = harlite_frontend_push(&p->front_end, raw);
    p->next++;
    if (!complete) return HARLITE_PUSH_NONE;
    if (!model_idle) return HARLITE_PUSH_SKIPPED;
    harlite_frontend_window_int8(&p->front_end, p->input);
    p->window_start = p->next - HARLITE_WINDOW;
    return HARLITE_PUSH_WINDOW;
}

void harlite_pipeline_gap(harlite_pipeline_t *p, uint32_t lost) {
    p->next += lost;
    harlite_frontend_reset(&p->front_end);
    harlite_smoother_reset(&p->smoother);
}

int harlite_pipeline_invoke(harlite_pipeline_t *p) { return p->model(p->input, p->output); }

void harlite_pipeline_predict(harlite_pipeline_t *p, harlite_prediction_t *prediction) {
    int c;
    prediction->start = p->window_start;
    prediction->end = p->window_start + HARLITE_WINDOW;
    prediction->start_s = (float)prediction->start / (float)HARLITE_RATE_HZ;
    prediction->end_s = (float)prediction->end / (float)HARLITE_RATE_HZ;
    prediction->label = harlite_argmax_int8(p->output, HARLITE_NUM_CLASSES);
    prediction->smoothed = harlite_smoother_update(&p->smoother, p->output);
    for (c = 0; c < HARLITE_NUM_CLASSES; c++) {
        prediction->scores[c] = p->output[c];
        prediction->probabilities[c] = (float)(p->output[c] - HARLITE_OUTPUT_ZERO_POINT) * HARLITE_OUTPUT_SCALE;
    }
    prediction->probability = prediction->probabilities[prediction->label];
}

int harlite_pipeline_report(harlite_pipeline_t *p, char *line, uint32_t invoke_ms) {
    harlite_prediction_t prediction;
    harlite_pipeline_predict(p, &prediction);
    return harlite_format_prediction(line, prediction.start, prediction.scores, prediction.smoothed, invoke_ms);
}
