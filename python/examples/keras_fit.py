"""A Keras 3 fit steered by rudder: a step decay of the LR per epoch and early
stopping on val_loss, on any backend (KERAS_BACKEND=torch, jax or tensorflow)."""

import numpy as np

import keras  # type: ignore[import-untyped]
from rudder.keras import RudderCallback


def main() -> None:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8)).astype("float32")
    y = (x @ rng.normal(size=(8, 1))).astype("float32")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse")
    rudder = RudderCallback(["lr/step", "stop/early_stop"], params={"step_size": 2, "gamma": 0.5, "patience": 3})
    history = model.fit(x, y, batch_size=32, epochs=6, validation_split=0.125, verbose=0, callbacks=[rudder])
    print(f"val_loss {history.history['val_loss'][-1]:.4f} after {len(history.history['loss'])} epochs")


if __name__ == "__main__":
    main()
