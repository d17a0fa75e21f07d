/* harlite: see harlite.h. The pipeline (harlite_pipeline.h) with harlite's C engine as its model. */
#include "harlite.h"

#include "harlite_engine.h"

/* The engine and the config header must come from the same model. */
typedef char harlite_check_engine_shape[HARLITE_ENGINE_WINDOW * HARLITE_ENGINE_CHANNELS == HARLITE_WINDOW_BYTES &&
                                                HARLITE_ENGINE_CLASSES == HARLITE_NUM_CLASSES
                                            ? 1
                                            : -1];

#if HARLITE_UNKNOWN
typedef char harlite_check_engine_features[HARLITE_ENGINE_FEATURES == HARLITE_FEATURES_BYTES ? 1 : -1];
#endif

int harlite_init(harlite_t *h, harlite_smoothing_t smoothing, unsigned k, float alpha) {
    if (!harlite_pipeline_init(&h->pipeline, harlite_engine_invoke, h->input, h->output, smoothing, k, alpha)) {
        return 0;
    }
#if HARLITE_UNKNOWN
    harlite_pipeline_features(&h->pipeline, harlite_engine_invoke_features, h->features);
#endif
    return 1;
}

int harlite_init_calibrated(harlite_t *h) {
#ifdef HARLITE_POSTPROCESS_MODE
    return harlite_init(h, (harlite_smoothing_t)HARLITE_POSTPROCESS_MODE, HARLITE_POSTPROCESS_K,
                        HARLITE_POSTPROCESS_ALPHA) &&
           harlite_hold(h, HARLITE_POSTPROCESS_DWELL, HARLITE_POSTPROCESS_HYSTERESIS);
#else
    return harlite_init(h, HARLITE_SMOOTH_MAJORITY, 3, 0.0f);
#endif
}

int harlite_hold(harlite_t *h, unsigned dwell, float hysteresis) {
    return harlite_smoother_hold(&h->pipeline.smoother, dwell, hysteresis);
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
