"""How much time does the harness add? Its fit time next to a plain training loop's, per framework and mode.

For each framework and execution mode, in one invocation, this runs ``mnist_mlp`` through
``harness run`` and through a plain, idiomatic training loop of the same model in the same
framework and mode (a fresh process each, pinned to the same cores, the same thread count, the
same 55,000 training samples), and prints both fit times per training sample (median of
``--repeats``, the two sides interleaved) and the harness's overhead; the harness should add no
more than 5 %. The plain loops are what a careful user writes: PyTorch's compiled loop drops
the last, smaller batch (``drop_last``) rather than compile its graphs again for it, and
JAX's scanned epoch trains the full batches; hence the figures per sample. It also prints the roofline: the
task's training FLOPs divided by the peak that ``harness calibrate`` measured.

    python benchmarks/overhead.py                          # every framework and mode, 5 epochs
    python benchmarks/overhead.py -f torch --mode eager --epochs 2 --repeats 3

This is a benchmark that prints figures, not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FRAMEWORKS = ("tensorflow", "torch", "jax")
MODES = ("eager", "compiled")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


# -- plain loops: what a user would write without the harness --------------------------


class StepSample:
    """The steps the harness's :class:`~harness.api.StepClock` times, after the first epoch
    (as its steady percentiles do), for a median step that a few slow moments of the machine
    don't move as they move a fit's total."""

    def __init__(self) -> None:
        from harness.api import StepClock

        self.clock = StepClock()

    def wants(self, epoch: int, step: int) -> bool:
        return epoch > 0 and self.clock.wants(step)

    def record(self, began: float) -> None:
        self.clock.record(time.perf_counter() - began)

    def median(self) -> float | None:
        return statistics.median(self.clock.samples) if self.clock.samples else None


def plain_tensorflow(x, y, epochs, mode):
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras
    import tensorflow as tf

    threads = len(os.sched_getaffinity(0))
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.001, epsilon=1e-7),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        jit_compile=mode == "compiled" or "auto",
    )
    start = time.perf_counter()
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
    # model.fit's steps are not timed: a callback around each would add its own cost
    return time.perf_counter() - start, epochs * len(x), None


class TorchLoop:
    """The plain PyTorch loop's parts: a model, its optimizer and one step on a batch's indices."""

    def __init__(self, x, y, mode):
        import torch
        from torch import nn

        threads = len(os.sched_getaffinity(0))
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(threads)
        self.torch = torch
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
        self.forward = torch.compile(model) if mode == "compiled" else model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=0.001, eps=1e-7)
        # PyTorch's recipe for compiling the optimizer too
        step = self.optimizer.step
        self.optimizer_step = torch.compile(step) if mode == "compiled" else step
        self.loss_fn = nn.CrossEntropyLoss()
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)

    def order(self):
        return self.torch.randperm(len(self.x))

    def step(self, index):
        self.optimizer.zero_grad()
        loss = self.loss_fn(self.forward(self.x[index]), self.y[index])
        loss.backward()
        self.optimizer_step()
        return loss

    def wait(self, loss) -> None:
        pass  # on the CPU a step has ended when it returns


def plain_torch(x, y, epochs, mode):
    loop = TorchLoop(x, y, mode)
    # a careful user of torch.compile drops the last, smaller batch (DataLoader's drop_last):
    # a batch of another shape would compile the graphs a second time inside the clock
    end = len(x) // 32 * 32 if mode == "compiled" else len(x)
    steps = StepSample()
    start = time.perf_counter()
    for epoch in range(epochs):
        order = loop.order()
        for step, begin in enumerate(range(0, end, 32)):
            sampled = steps.wants(epoch, step)
            if sampled:
                began = time.perf_counter()
            loss = loop.step(order[begin : begin + 32])
            if sampled:
                steps.record(began)
        loss.item()
    return time.perf_counter() - start, epochs * end, steps.median()


class JaxLoop:
    """The plain JAX loop's parts: a Flax model, Optax's Adam, a jitted step on a batch's
    indices (the batch sent from the host, as a user's loop over NumPy arrays does) and a
    scanned epoch for the compiled mode."""

    def __init__(self, x, y, mode):
        import flax.linen as nn
        import jax
        import jax.numpy as jnp
        import numpy as np
        import optax

        class MLP(nn.Module):
            @nn.compact
            def __call__(self, x):
                x = x.reshape((x.shape[0], -1))
                return nn.Dense(10)(nn.relu(nn.Dense(128)(x)))

        self.jax, self.x, self.y = jax, x, y.astype(np.int32)
        model = MLP()
        self.params = model.init(jax.random.key(0), x[:1])["params"]
        optimizer = optax.adam(0.001, eps=1e-7)
        self.opt_state = optimizer.init(self.params)

        def step(params, opt_state, xb, yb):
            def loss_fn(params):
                logits = model.apply({"params": params}, xb)
                return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

            loss, grads = jax.value_and_grad(loss_fn)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        self.train_step = jax.jit(step)

        @jax.jit
        def train_epoch(params, opt_state, x_all, y_all, batches):
            def body(carry, index):
                params, opt_state, loss = step(*carry, x_all[index], y_all[index])
                return (params, opt_state), loss

            (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), batches)
            return params, opt_state, losses.mean()

        self.train_epoch = train_epoch
        if mode == "compiled":
            self.x_device, self.y_device = jnp.asarray(x), jnp.asarray(self.y)
        self.rng = np.random.default_rng(0)

    def order(self):
        return self.rng.permutation(len(self.x))

    def step(self, index):
        self.params, self.opt_state, loss = self.train_step(
            self.params, self.opt_state, self.x[index], self.y[index]
        )
        return loss

    def scanned_epoch(self, order):
        """The compiled mode's epoch: its full batches in one program."""
        batches = order[: len(order) // 32 * 32].reshape(-1, 32)
        self.params, self.opt_state, loss = self.train_epoch(
            self.params, self.opt_state, self.x_device, self.y_device, batches
        )
        return loss

    def wait(self, loss) -> None:
        self.jax.block_until_ready(self.params)


def plain_jax(x, y, epochs, mode):
    loop = JaxLoop(x, y, mode)
    steps = StepSample()
    start = time.perf_counter()
    for epoch in range(epochs):
        order = loop.order()
        if mode == "compiled":
            loss = loop.scanned_epoch(order)
            continue
        for step, begin in enumerate(range(0, len(x), 32)):
            sampled = steps.wants(epoch, step)
            if sampled:  # as the harness times a sampled step: the device idle before and after
                loop.wait(None)
                began = time.perf_counter()
            loss = loop.step(order[begin : begin + 32])
            if sampled:
                loop.wait(loss)
                steps.record(began)
    loss.block_until_ready()
    # the scanned epoch trains its full batches only
    trained = len(x) // 32 * 32 if mode == "compiled" else len(x)
    return time.perf_counter() - start, epochs * trained, steps.median()


# -- the two sides, each in a fresh process ---------------------------------------------


def child_env(threads: int, tmp: str | None = None) -> dict[str, str]:
    """The environment of a measuring child: its thread count and, given ``tmp``, a temporary
    folder of its own, so that it compiles from scratch as a harness cell does."""
    env = dict(os.environ)
    env.update({name: str(threads) for name in THREAD_VARS})
    if tmp is not None:
        env.update({"TMPDIR": tmp, "TORCHINDUCTOR_CACHE_DIR": os.path.join(tmp, "inductor")})
    return env


def run_plain(framework: str, mode: str, epochs: int, threads: int) -> tuple[float, float | None]:
    """Seconds per training sample of the plain loop, and its median sampled step (``None``
    where its steps aren't timed)."""
    measured = run_child(
        __file__, ["--plain", framework, "--mode", mode, "--epochs", str(epochs)], threads
    )
    return measured["fit_seconds"] / measured["samples"], measured["step_seconds_p50"]


def run_child(script: str, arguments: list[str], threads: int) -> dict:
    """What ``script arguments`` printed last, as JSON: run pinned to ``threads`` cores with
    as many threads, and a temporary folder of its own."""
    cores = ",".join(str(core) for core in sorted(os.sched_getaffinity(0))[:threads])
    command = ["taskset", "-c", cores, sys.executable, script, *arguments]
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(command, capture_output=True, text=True, env=child_env(threads, tmp))
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(arguments)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_harness(framework: str, mode: str, epochs: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--task",
            "mnist_mlp",
            "-f",
            framework,
            "--mode",
            mode,
            "--device",
            "cpu",
            "--epochs",
            str(epochs),
            "--threads",
            str(threads),
            "--out",
            out,
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        [run_dir] = Path(out).iterdir()
        [row] = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    if row["status"] != "ok":
        raise SystemExit(
            f"harness {framework} {mode}: {row['status']}: {row['error']}\n{result.stderr}"
        )
    return row


def training_data():
    """``mnist_mlp``'s training samples, as the harness holds them out for validation."""
    from harness.data import datasets
    from harness.registry.catalog import load_task

    task = load_task("mnist_mlp")
    split = datasets.load("mnist", datasets.locate("mnist"), divide_by=255)
    train, _ = datasets.hold_out(split.train, task.training.validation_samples)
    return train.x, train.y


def plain_main(framework: str, mode: str, epochs: int) -> None:
    plain = {"tensorflow": plain_tensorflow, "torch": plain_torch, "jax": plain_jax}[framework]
    seconds, samples, step = plain(*training_data(), epochs, mode)
    print(json.dumps({"fit_seconds": seconds, "samples": samples, "step_seconds_p50": step}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-f", "--framework", action="append", choices=FRAMEWORKS)
    parser.add_argument("--mode", choices=[*MODES, "all"], default="all")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--plain", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        plain_main(args.plain, args.mode, args.epochs)
        return

    modes = MODES if args.mode == "all" else (args.mode,)
    print(
        f"mnist_mlp, {args.epochs} epoch(s), {args.threads} thread(s), "
        f"median of {args.repeats} run(s) each"
    )
    print(
        f"{'framework':<12}{'mode':<10}{'plain µs':>10}{'harness µs':>12}{'overhead':>10}{'paired':>10}"
        f"{'x roofline':>12}   range plain / harness (µs per training sample)"
    )
    step_lines = []
    for framework in args.framework or FRAMEWORKS:
        for mode in modes:
            plain, harnessed, roofline = [], [], None
            plain_steps, harness_steps = [], []
            for _ in range(args.repeats):  # interleaved, so drift hits both sides alike
                per_sample, step = run_plain(framework, mode, args.epochs, args.threads)
                plain.append(per_sample)
                row = run_harness(framework, mode, args.epochs, args.threads)
                metrics = row["metrics"]
                samples = metrics["train_samples"] * metrics["epochs"]
                harnessed.append(metrics["fit_seconds"] / samples)
                if step is not None and metrics.get("step_seconds_p50") is not None:
                    plain_steps.append(step)
                    harness_steps.append(metrics["step_seconds_p50"])
                peak = metrics.get("peak_flops_per_second")
                if peak:
                    roofline = metrics["training_flops"] / peak / samples
            versus = (
                f"{statistics.median(harnessed) / roofline:.1f}x" if roofline else "(calibrate)"
            )
            print(f"{framework:<12}{mode:<10}{_versus(plain, harnessed, versus)}", flush=True)
            if plain_steps:
                step_lines.append(f"{framework:<12}{mode:<10}{_versus(plain_steps, harness_steps)}")
    if step_lines:
        print(
            f"\nthe median sampled step (every 32nd step after the first epoch, as the harness's "
            f"step clock takes them), median of the runs\n"
            f"{'framework':<12}{'mode':<10}{'plain µs':>10}{'harness µs':>12}{'overhead':>10}{'paired':>10}"
            f"{'':>12}   range plain / harness (µs per step)"
        )
        print("\n".join(step_lines))


def _versus(plain: list[float], harnessed: list[float], column: str = "") -> str:
    """Medians of the two sides in µs, the harness's overhead (of the medians, and the median of
    the paired runs' ratios), ``column`` (12 characters, or none), and the two sides' ranges."""
    p, h = statistics.median(plain), statistics.median(harnessed)
    # each harness run over the plain run just before it: the machine's slow and fast spells,
    # which last longer than a run, fall on both sides of a pair alike
    paired = statistics.median(b / a for a, b in zip(plain, harnessed, strict=True))
    us = 1e6
    return (
        f"{p * us:>10.2f}{h * us:>12.2f}{(h / p - 1) * 100:>+9.1f}%{(paired - 1) * 100:>+9.1f}%"
        f"{column:>12}   {min(plain) * us:.2f}-{max(plain) * us:.2f} / "
        f"{min(harnessed) * us:.2f}-{max(harnessed) * us:.2f}"
    )


if __name__ == "__main__":
    main()
