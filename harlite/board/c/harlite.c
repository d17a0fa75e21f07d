/* harlite: see harlite.h. The pipeline (harlite_pipeline.h) with harlite's C engine as its model. */
#include "harlite.h"

#include "harlite_engine.h"

/* The engine and the config header must come from the same model. */
typedef char harlite_check_engine_shape[HARLITE_ENGINE_WINDOW * HARLITE_ENGINE_CHANNELS == HARLITE_WINDOW_BYTES &&
                                                HARLITE_ENGINE_CLASSES == HARLITE_NUM_CLASSES
                                            ? 1
                                            : -1];

int harlite_init(harlite_t *h, harlite_smoothing_t smoothing, unsigned k, float alpha) {
    return harlite_pipeline_init(&h->pipeline, harlite_engine_invoke, h->input, h->output, smoothing, k, alpha);
}

int harlite_push(harlite_t *h, const float raw[HARLITE_NUM_RAW], harlite_prediction_t *prediction) {
    if (harlite_pipeline_push(&h->pipeline, raw, 1) != HARLITE_PUSH_WINDOW) return 0;
    if (harlite_pipeline_invoke(&h->pipeline) != 0) return -1;
    harlite_pipeline_predict(&h->pipeline, prediction);
    return 1;
}

void harlite_gap(harlite_t *h, uint32_t lost) { harlite_pipeline_gap(&h->pipeline, lost); }

void harlite_reset(harlite_t *h) {
    harlite_pipeline_gap(&h->pipeline, 0);
    h->pipeline.next = 0;
}
