"""How much TensorFlow's `mnist_mlp` epoch time spreads, per thread setting, and whether the host
itself changes speed.

A plain Keras ``model.fit`` of Flatten → Dense(128, relu) → Dense(10, softmax) on 55,000 real
MNIST samples, batch 32, Adam, one fresh process per run (as harness runs each repeat). Each
epoch prints its wall time, its CPU time, its context switches and its step times, so a slow
epoch can be told apart from one that waits. ``--host-probe SECONDS`` times a fixed
single-threaded Python loop instead, every few milliseconds, to show the machine's own drift.

    python benchmarks/tf_epoch_spread.py --runs 5 --epochs 3
    python benchmarks/tf_epoch_spread.py --host-probe 150

Prints figures; not a test. Needs TensorFlow and the MNIST files (``--data-dir``, default
``../shared/data`` next to the repository).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: the settings compared: name → environment of the run
SETTINGS = {
    "2 intra-op, 2 inter-op threads": {"INTRA": "2", "INTER": "2"},
    "the same, TF_ENABLE_ONEDNN_OPTS=0": {"INTRA": "2", "INTER": "2", "TF_ENABLE_ONEDNN_OPTS": "0"},
    "the same, 1 inter-op thread": {"INTRA": "2", "INTER": "1"},
    "the same, batches gathered in tf.data": {"INTRA": "2", "INTER": "2", "GATHER": "1"},
    "1 intra-op, 1 inter-op thread": {"INTRA": "1", "INTER": "1"},
}
DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist"


def read_idx(path: Path):
    import numpy as np

    with gzip.open(path, "rb") as handle:
        data = handle.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def one_run(data_dir: Path, epochs: int) -> list[dict]:
    """Train in this process, as the environment says; one dict per epoch."""
    import numpy as np

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["KERAS_BACKEND"] = "tensorflow"
    x = read_idx(data_dir / "train-images-idx3-ubyte.gz")[:55000].astype(np.float32) / 255.0
    y = read_idx(data_dir / "train-labels-idx1-ubyte.gz")[:55000].astype(np.int64)
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(int(os.environ["INTRA"]))
    tf.config.threading.set_inter_op_parallelism_threads(int(os.environ["INTER"]))
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    samples = (tf.constant(x), tf.constant(y))
    steps: list[float] = []

    class StepTimes(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.began = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            steps.append(time.perf_counter() - self.began)

    rng = np.random.default_rng(0)
    found = []
    for _ in range(epochs):
        order = rng.permutation(len(x))
        steps.clear()
        cpu, usage, began = (
            os.times(),
            resource.getrusage(resource.RUSAGE_SELF),
            time.perf_counter(),
        )
        if os.environ.get("GATHER"):
            batches = (
                tf.data.Dataset.from_tensor_slices(order)
                .batch(32)
                .map(lambda i: (tf.gather(samples[0], i), tf.gather(samples[1], i)))
                .prefetch(tf.data.AUTOTUNE)
            )
            model.fit(batches, epochs=1, verbose=0, callbacks=[StepTimes()])
        else:
            model.fit(
                x[order],
                y[order],
                batch_size=32,
                epochs=1,
                verbose=0,
                shuffle=False,
                callbacks=[StepTimes()],
            )
        wall = time.perf_counter() - began
        cpu_after, usage_after = os.times(), resource.getrusage(resource.RUSAGE_SELF)
        step_ms = np.array(steps) * 1000
        found.append(
            {
                "wall_s": round(wall, 2),
                "cpu_s": round(cpu_after.user + cpu_after.system - cpu.user - cpu.system, 2),
                "voluntary_switches": usage_after.ru_nvcsw - usage.ru_nvcsw,
                "involuntary_switches": usage_after.ru_nivcsw - usage.ru_nivcsw,
                "step_ms_p10_p50_p90": [
                    round(float(np.percentile(step_ms, q)), 2) for q in (10, 50, 90)
                ],
            }
        )
    return found


def host_probe(seconds: float) -> None:
    """A fixed single-threaded loop, timed over and over: the median per 10 s."""
    began, times = time.time(), []
    while time.time() - began < seconds:
        start = time.perf_counter()
        for _ in range(100):
            sum(value * value for value in range(2000))
        times.append((time.time() - began, (time.perf_counter() - start) * 1000))
    print(f"{'from s':>7}{'median ms':>11}")
    for window in range(0, int(seconds), 10):
        inside = [ms for at, ms in times if window <= at < window + 10]
        if inside:
            print(f"{window:>7}{statistics.median(inside):>11.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per setting")
    parser.add_argument(
        "--epochs", type=int, default=3, help="epochs per run; the first is not counted"
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--host-probe", type=float, metavar="SECONDS")
    parser.add_argument("--one-run", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.host_probe:
        host_probe(args.host_probe)
        return
    if args.one_run:
        print(json.dumps(one_run(args.data_dir, args.epochs)))
        return
    print(f"{'setting':<40}{'epochs':>7}{'fastest':>9}{'median':>9}{'slowest':>9}{'cpu/wall':>10}")
    for name, env in SETTINGS.items():
        later = []
        for _ in range(args.runs):
            child = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one-run",
                    "--epochs",
                    str(args.epochs),
                    "--data-dir",
                    str(args.data_dir),
                ],
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                check=True,
            )
            later += json.loads(child.stdout.strip().splitlines()[-1])[1:]
        walls = [epoch["wall_s"] for epoch in later]
        ratio = statistics.median(epoch["cpu_s"] / epoch["wall_s"] for epoch in later)
        print(
            f"{name:<40}{len(walls):>7}{min(walls):>9.2f}{statistics.median(walls):>9.2f}"
            f"{max(walls):>9.2f}{ratio:>10.2f}"
        )


if __name__ == "__main__":
    main()
