"""Architectures: the export copy computes what the trained model computes; MACs; bad names."""

import numpy as np
import pytest

from harlite.pipeline.models import build_model, count_macs, count_params, export_copy


def _trained(name: str, **options) -> tuple[object, np.ndarray]:
    """A small model after a few training steps (batch norm statistics moved away from their start)."""
    from harlite.tf import keras

    k = keras()
    k.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    X = rng.normal(1.0, 2.0, size=(96, 32, 9)).astype(np.float32)
    y = (X[:, :, 0].mean(axis=1) > 1.0).astype(int)
    model = build_model(name, window=32, **options)
    model.compile(k.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(X, y, epochs=2, batch_size=32, verbose=0)
    return model, X[:6]


@pytest.mark.parametrize(("name", "options"), [("cnn_lstm", {"conv": (6, 8), "units": 5}), ("lstm", {"units": 4})])
def test_export_copy_gives_the_trained_models_outputs_with_batch_one(name: str, options: dict) -> None:
    model, X = _trained(name, **options)
    copy = export_copy(model)
    assert copy.input_shape == (1, 32, 9)
    assert not any(type(layer).__name__ == "BatchNormalization" for layer in copy.layers)
    expected = model.predict(X, verbose=0)
    got = np.concatenate([copy.predict(x[None], verbose=0) for x in X])
    np.testing.assert_allclose(got, expected, atol=2e-6)
    assert count_params(model) == copy.count_params()
    if name == "cnn_lstm":  # the folded batch norm must have changed the convolution's weights
        assert not np.allclose(copy.get_layer("conv0").get_weights()[0], model.get_layer("conv0").get_weights()[0])


def test_count_macs_by_hand() -> None:
    model = export_copy(build_model("cnn_lstm", conv=(8, 12), kernel=5, units=10), batch_size=None)
    conv0 = 64 * 5 * 9 * 8  # 128 steps -> 64 (stride 2), kernel 5, 9 -> 8 channels
    conv1 = 32 * 5 * 8 * 12
    lstm = 32 * 4 * 10 * (12 + 10)  # 32 steps, 4 gates, input and recurrent weights
    dense = 10 * 6
    assert count_macs(model) == conv0 + conv1 + lstm + dense
    assert count_macs(build_model("lstm", units=32)) == 128 * 4 * 32 * (9 + 32) + 128 * 4 * 32 * 64 + 32 * 6


def test_default_model_is_small_enough_for_a_microcontroller() -> None:
    model = build_model()
    assert model.name == "cnn_lstm"
    assert 10_000 < count_params(model) < 24_000


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown model 'gru'.*cnn_lstm"):
        build_model("gru")
