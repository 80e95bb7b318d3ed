"""How close to the roofline can a task's training get? Floors measured at the task's own shapes.

The roofline that ``harness calibrate`` gives is the time a task's training FLOPs would take at
the peak rate of large (2048²) matrix products. A small model trained with small batches can't
reach it: its matrix products are too small to run at that rate, and the optimizer's update is
memory work the FLOP count leaves out. This benchmark measures both on this machine, so the
gap between a fit time and the roofline can be read as "what the hardware allows" and "what the
framework adds":

- the *products floor*: the matrix products one training step needs (per dense layer: the
  forward product and the weight gradient, plus the input gradient for every layer but the
  first), each timed alone at the task's shapes in numpy, PyTorch and JAX (inside a compiled
  ``lax.scan``), at the fastest rate any of them reached;
- the *update floor*: one Adam update of the task's parameters, alone, in JAX (jitted, in a
  ``lax.scan``) and PyTorch (``fused=True``), the faster of the two;

and their sum over every step of the fit, next to the roofline and each framework's calibrated
peak. With ``--run RUN_DIR`` it also prints the fit times of that run's cells against both.

    python benchmarks/roofline.py                       # mnist_mlp, every core
    python benchmarks/roofline.py --run results/<run>   # ... and a run's fit times against it

Dense models only (the products of convolutions and recurrent layers aren't enumerated here).
This is a benchmark that prints figures, not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from overhead import child_env  # noqa: E402  (a sibling script, not a package)

LIBRARIES = ("numpy", "torch", "jax")
#: roughly how long each product is looped for, in seconds
BUDGET_SECONDS = 0.5
#: layer kinds without weights, hence without matrix products
WEIGHTLESS = ("flatten", "dropout", "max_pool2d")


# -- what one training step computes, from the task spec ----------------------------------


def step_products(task) -> list[tuple[str, int, int, int]]:
    """Each matrix product of one training step as (what, m, k, n): an (m, k) by (k, n) product."""
    from harness.workload.tasks import Dense

    batch = task.training.batch_size
    products = []
    for index, (layer, shape) in enumerate(
        zip(task.model.layers, task.model.input_shapes(), strict=True)
    ):
        if isinstance(layer, Dense):
            (inputs,) = shape
            products.append((f"layer {index} forward", batch, inputs, layer.units))
            products.append((f"layer {index} weight gradient", inputs, batch, layer.units))
            if products[:-2]:  # the first layer's input gradient is never needed
                products.append((f"layer {index} input gradient", batch, layer.units, inputs))
        elif layer.kind not in WEIGHTLESS:
            raise SystemExit(f"{task.name}: layer {index} is a {layer.kind}: dense models only")
    return products


# -- the measurements, each library in its own process -------------------------------------


def product_seconds(library: str, m: int, k: int, n: int, threads: int) -> float:
    """Seconds per (m, k) by (k, n) float32 product in ``library``, looped for BUDGET_SECONDS."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32)
    repeats = max(20, int(BUDGET_SECONDS * 1e11 / (2 * m * k * n)))  # ~100 GFLOP/s guess
    if library == "numpy":
        out = np.empty((m, n), np.float32)
        np.matmul(a, b, out=out)
        start = time.perf_counter()
        for _ in range(repeats):
            np.matmul(a, b, out=out)
        return (time.perf_counter() - start) / repeats
    if library == "torch":
        import torch

        torch.set_num_threads(threads)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        out = torch.mm(ta, tb)
        start = time.perf_counter()
        for _ in range(repeats):
            torch.mm(ta, tb, out=out)
        return (time.perf_counter() - start) / repeats
    import jax
    import jax.numpy as jnp

    @jax.jit
    def loop(a, b):
        def body(carry, _):
            # the barrier stops XLA hoisting the loop-invariant product out of the loop
            a, b, _ = jax.lax.optimization_barrier(carry)
            return (a, b, a @ b), None

        return jax.lax.scan(body, (a, b, jnp.zeros((m, n))), None, length=repeats)[0][2]

    ja, jb = jnp.asarray(a), jnp.asarray(b)
    loop(ja, jb).block_until_ready()
    start = time.perf_counter()
    loop(ja, jb).block_until_ready()
    return (time.perf_counter() - start) / repeats


def update_seconds(library: str, shapes: list[tuple[int, ...]], adam, threads: int) -> float | None:
    """Seconds per Adam update of parameters of ``shapes``, gradients given; None for numpy."""
    import numpy as np

    rng = np.random.default_rng(0)
    params = [rng.standard_normal(shape).astype(np.float32) for shape in shapes]
    grads = [rng.standard_normal(shape).astype(np.float32) * 1e-3 for shape in shapes]
    repeats = 2000
    if library == "torch":
        import torch

        torch.set_num_threads(threads)
        tensors = [torch.from_numpy(p).requires_grad_() for p in params]
        for tensor, grad in zip(tensors, grads, strict=True):
            tensor.grad = torch.from_numpy(grad)
        optimizer = torch.optim.Adam(
            tensors, lr=adam.learning_rate, betas=(adam.beta_1, adam.beta_2), fused=True
        )
        optimizer.step()
        start = time.perf_counter()
        for _ in range(repeats):
            optimizer.step()
        return (time.perf_counter() - start) / repeats
    if library == "jax":
        import jax
        import optax

        optimizer = optax.adam(adam.learning_rate, b1=adam.beta_1, b2=adam.beta_2)

        @jax.jit
        def loop(params, grads):
            def body(state, _):
                params, opt_state = state
                updates, opt_state = optimizer.update(grads, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), None

            state = (params, optimizer.init(params))
            return jax.lax.scan(body, state, None, length=repeats)[0][0]

        jax.block_until_ready(loop(params, grads))
        start = time.perf_counter()
        jax.block_until_ready(loop(params, grads))
        return (time.perf_counter() - start) / repeats
    return None


def measure_main(library: str, task_name: str, threads: int) -> None:
    """In the child: time the task's products and update in ``library``; print JSON."""
    from harness.registry.catalog import load_task
    from harness.workload.fairness import initial_weights

    task = load_task(task_name)
    shapes = [array.shape for layer in initial_weights(task) for array in layer.values()]
    products = [product_seconds(library, m, k, n, threads) for _, m, k, n in step_products(task)]
    update = update_seconds(library, shapes, task.training.optimizer, threads)
    print(json.dumps({"products": products, "update": update}))


def measure(library: str, task_name: str, threads: int) -> dict:
    cores = ",".join(str(core) for core in sorted(os.sched_getaffinity(0))[:threads])
    command = ["taskset", "-c", cores, sys.executable, __file__, "--measure", library]
    command += ["--task", task_name, "--threads", str(threads)]
    out = subprocess.run(command, capture_output=True, text=True, env=child_env(threads))
    if out.returncode != 0:
        raise SystemExit(f"measuring {library} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the report ----------------------------------------------------------------------------


def calibrated_peaks(threads: int) -> dict[str, float]:
    """Each framework's CPU peak at ``threads`` threads, from ``harness calibrate``'s cache."""
    from harness.checks import calibration

    newest: dict[str, dict] = {}  # an upgrade leaves the old version's entry behind
    for key, entry in calibration.load().items():
        framework, *_, device, count, _threads = key.split(" ")
        newer = entry["measured_at"] > newest.get(framework, {}).get("measured_at", "")
        if device == "cpu" and count == str(threads) and newer:
            newest[framework] = entry
    return {framework: entry["flops_per_second"] for framework, entry in newest.items()}


def training_samples(task) -> int:
    """How many samples an epoch trains on: the training split less the validation hold-out."""
    from harness.data import datasets

    split = datasets.load(task.dataset_info, datasets.locate(task.dataset_info), seed=task.seed)
    train, _ = datasets.hold_out(split.train, task.training.validation_samples)
    return len(train.x)


def run_fit_times(run_dir: Path, task_name: str) -> dict[tuple[str, str], list[float]]:
    fits: dict[tuple[str, str], list[float]] = {}
    for line in (run_dir / "results.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("task") == task_name and row.get("status") == "ok":
            key = (row["framework"], row.get("mode", "eager"))
            fits.setdefault(key, []).append(row["metrics"]["fit_seconds"])
    return fits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="mnist_mlp")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--run", type=Path, help="a run folder whose fit times to compare")
    parser.add_argument("--measure", choices=LIBRARIES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure_main(args.measure, args.task, args.threads)
        return

    from harness.registry.catalog import load_task
    from harness.workload.flops import training_flops

    task = load_task(args.task)
    samples = training_samples(task)
    epochs, batch = task.training.epochs, task.training.batch_size
    steps = -(-samples // batch) * epochs
    flops = training_flops(task, samples) * epochs
    products = step_products(task)
    measured = {library: measure(library, args.task, args.threads) for library in LIBRARIES}

    print(
        f"{task.name}: {epochs} epochs of {samples:,} samples in batches of {batch} "
        f"({steps:,} steps), {flops / 1e9:.1f} GFLOP by the task's formula, "
        f"{args.threads} thread(s)"
    )
    print(f"\n{'one step':<44}{'MFLOP':>7}" + "".join(f"{lib:>16}" for lib in LIBRARIES))
    fastest_products = 0.0
    for index, (what, m, k, n) in enumerate(products):
        work = 2 * m * k * n
        cells = []
        for library in LIBRARIES:
            seconds = measured[library]["products"][index]
            cells.append(f"{seconds * 1e6:>7.1f} us {work / seconds / 1e9:>4.0f}G")
        fastest_products += min(measured[lib]["products"][index] for lib in LIBRARIES)
        print(
            f"{f'{what} ({m}x{k})({k}x{n})':<44}{work / 1e6:>7.2f}"
            + "".join(f"{cell:>16}" for cell in cells)
        )
    updates = {lib: measured[lib]["update"] for lib in LIBRARIES if measured[lib]["update"]}
    print(
        f"{'Adam update':<51}"
        + "".join(
            f"{updates[lib] * 1e6:>13.1f} us" if lib in updates else f"{'':>16}"
            for lib in LIBRARIES
        )
    )
    fastest_update = min(updates.values())
    floor = (fastest_products + fastest_update) * steps
    print(
        f"\nfloor: {fastest_products * 1e6:.0f} us of products + {fastest_update * 1e6:.0f} us of "
        f"update per step, at the fastest rate measured for each = {floor:.2f} s for the fit"
    )

    peaks = calibrated_peaks(args.threads)
    if not peaks:
        print("no calibrated peak for this machine: run `harness calibrate` for the roofline")
        return
    print(f"\n{'framework':<14}{'peak GFLOP/s':>13}{'roofline s':>12}{'floor / roofline':>18}")
    for framework, peak in sorted(peaks.items()):
        roofline = flops / peak
        print(f"{framework:<14}{peak / 1e9:>13.0f}{roofline:>12.2f}{floor / roofline:>17.2f}x")

    if args.run:
        fits = run_fit_times(args.run, task.name)
        print(f"\n{'framework':<14}{'mode':<10}{'fit s':>8}{'x roofline':>12}{'x floor':>9}")
        for (framework, mode), times in sorted(fits.items()):
            fit = statistics.median(times)
            peak = peaks.get(framework)
            versus = f"{fit / (flops / peak):>11.1f}x" if peak else f"{'?':>12}"
            print(f"{framework:<14}{mode:<10}{fit:>8.2f}{versus}{fit / floor:>8.1f}x")


if __name__ == "__main__":
    main()
