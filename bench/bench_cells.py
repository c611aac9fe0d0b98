"""Benchmark the generated cells (NumPy and numba backends) against torch.nn and their GEMM floor.

One run times, for every cell, size and dtype, these implementations, each in its own worker process
(so numpy's, numba's and torch's thread pools never share a process):

* ``generated``: the committed module ``generated/numpy/<cell>.py`` (``forward`` and ``backward``);
* ``numba``: the committed module ``generated/numba/<cell>.py`` (compiled kernels; timed after the
  first call, which compiles or loads them from numba's cache; default when numba is installed);
* ``torch``: ``torch.nn.RNN``/``LSTM``/``GRU`` with the same weights, autograd on, gradients of the
  parameters and of x (cells without a torch counterpart skip it);
* ``floor``: only the matrix multiplies the algorithm cannot avoid, at the same shapes and with
  preallocated outputs: the input projection of all steps (one GEMM), one recurrent GEMM per step, and
  for backward one transposed GEMM per step, one GEMM per weight gradient and one for dx.

Samples are interleaved: each round asks every worker for one sample of the same case, in a rotating
order, so drift and other load on the machine hit all implementations alike. Before each sample the
driver waits ``--gap-ms``: OpenBLAS and OpenMP worker threads keep spinning for a while after a call,
and without the gap the previous worker's threads steal the cores (measured: 10x slower samples).
A sample is the mean of enough calls to last about ``--sample-ms``; the table reports medians over
``--rounds`` rounds and ratios of those medians. It also reports the bytes the generated forward
keeps for backward (the cache, without x and the parameters) against the minimum: one (T, B, H)
array per forward value the derived backward program reads (states as their (T + 1, B, H)
sequences), and the peak memory of the forward call.

Usage (set BLAS threads before numpy starts, e.g. by the environment)::

    python bench/bench_cells.py                  # the sizes of the issue, float32 and float64
    python bench/bench_cells.py --quick          # a tiny smoke run (seconds)
    python bench/bench_cells.py --cells lstm --sizes medium --dtypes float64 --json out.json
    python bench/bench_cells.py --jit            # numba: first-call compile and cached-load times

Run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (they slow a current numpy on some machines).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

SIZES: dict[str, tuple[int, int, int, int]] = {  # name: (B, T, I, H)
    "small": (1, 100, 32, 64),
    "medium": (32, 100, 128, 256),
    "large": (64, 50, 512, 1024),
    "narrow": (1, 1000, 8, 16),  # call overhead is everything
    "tiny": (2, 5, 4, 8),  # --quick
}
DTYPES = ("float32", "float64")
IMPLS = ("generated", "numba", "torch", "floor")
MODES = ("fwd", "fwd+bwd")


@dataclass(frozen=True)
class Case:
    cell: str
    size: str
    dtype: str


# -- workers: each implementation lives in its own process --------------------------------------------


def _problem(case: Case, backend: str = "numpy"):
    import numpy as np

    import symlstm

    B, T, I, H = SIZES[case.size]
    mod = symlstm.load(case.cell, backend=backend)
    dtype = np.dtype(case.dtype)
    if mod.SAME_SIZE:
        I = H
    params = mod.init_params(I, H, seed=0, dtype=dtype)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    return mod, params, x, dy


def _generated(case: Case, backend: str = "numpy") -> tuple[dict[str, Callable[[], object]], dict]:
    import tracemalloc

    import numpy as np

    import symlstm
    from symlstm.plan import plan_cell

    mod, params, x, dy = _problem(case, backend)
    workspace = {} if os.environ.get("BENCH_WORKSPACE") == "1" else None  # --workspace

    def fwd():
        return mod.forward(params, x, workspace=workspace)

    def fwd_bwd():
        _, _, cache = mod.forward(params, x, workspace=workspace)
        return mod.backward(params, cache, dy, workspace=workspace)

    tracemalloc.start()
    _, _, cache = mod.forward(params, x)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    held = {id(a.base if a.base is not None else a): a.base if a.base is not None else a
            for k, a in cache.items() if isinstance(a, np.ndarray) and k != "x"}  # fmt: skip
    cache_bytes = sum(a.nbytes for a in held.values())
    # The minimum: one (T, B, H) array per forward value the backward program reads.
    plan = plan_cell(symlstm.derive(case.cell))
    need = set(plan.backward_reads) | {g.input for g in plan.gemms.values()}
    need -= {plan.spec.input}
    states = {f"{st}_prev" for st in plan.spec.states} | set(plan.spec.update_of.values())
    per_state = {st for st in plan.spec.states
                 if f"{st}_prev" in need or plan.spec.update_of[st] in need}  # fmt: skip
    T, B, H = x.shape[0], x.shape[1], dy.shape[2]
    item = x.dtype.itemsize
    minimum = ((T + 1) * len(per_state) + T * len(need - states)) * B * H * item
    memory = {"cache_bytes": int(cache_bytes), "min_bytes": int(minimum), "fwd_peak_bytes": int(peak)}
    return {"fwd": fwd, "fwd+bwd": fwd_bwd}, memory


def _torch(case: Case) -> tuple[dict[str, Callable[[], object]], dict]:
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    mod, params, x, dy = _problem(case)
    if mod.TORCH_MODULE == "none":
        return {}, {}
    I, H = x.shape[2], dy.shape[2]
    import symlstm

    kwargs = dict(symlstm.cell(case.cell).torch.get("kwargs", {}))
    dtype = getattr(torch, case.dtype)
    net = getattr(torch.nn, mod.TORCH_MODULE)(I, H, **kwargs).to(dtype)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in mod.to_torch(params).items()})
    xt = torch.from_numpy(x).requires_grad_(True)
    dyt = torch.from_numpy(dy)
    inputs = [*net.parameters(), xt]

    def fwd():
        return net(xt)

    def fwd_bwd():
        y, _ = net(xt)
        return torch.autograd.grad(y, inputs, dyt)

    saved: dict[int, int] = {}

    def pack(tensor):
        saved[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(xt)
    return {"fwd": fwd, "fwd+bwd": fwd_bwd}, {"saved_bytes": int(sum(saved.values()))}


def _floor(case: Case) -> tuple[dict[str, Callable[[], object]], dict]:
    import numpy as np

    import symlstm
    from symlstm.plan import plan_cell

    _, params, x, _ = _problem(case)
    T, B = x.shape[:2]
    dtype = x.dtype
    rng = np.random.default_rng(2)
    gemms = []
    for lay in plan_cell(symlstm.derive(case.cell)).gemms.values():
        W = params[lay.name]
        n_in = W.shape[1]
        GH = W.shape[0]
        src = (x if lay.kind == "input" else 0.1 * rng.standard_normal((T, B, n_in))).astype(dtype)
        gemms.append(
            {
                "kind": lay.kind,
                "W": W,
                "src": src,
                "out": np.empty((T, B, GH), dtype=dtype),
                "d_out": (0.1 * rng.standard_normal((T, B, GH))).astype(dtype),
                "d_in": np.empty((B, n_in), dtype=dtype),
            }
        )

    def fwd():
        for g in gemms:
            if g["kind"] == "input":
                np.matmul(g["src"].reshape(T * B, -1), g["W"].T, out=g["out"].reshape(T * B, -1))
        for t in range(T):
            for g in gemms:
                if g["kind"] != "input":
                    np.matmul(g["src"][t], g["W"].T, out=g["out"][t])

    def fwd_bwd():
        fwd()
        for t in range(T - 1, -1, -1):
            for g in gemms:
                if g["kind"] != "input":
                    np.matmul(g["d_out"][t], g["W"], out=g["d_in"])
        for g in gemms:
            d2 = g["d_out"].reshape(T * B, -1)
            np.matmul(d2.T, g["src"].reshape(T * B, -1))  # the weight gradient
            if g["kind"] == "input":
                np.matmul(d2, g["W"])  # dx

    flops = {"fwd": 0, "fwd+bwd": 0}  # 2 m n k per GEMM, for the test against a hand count
    for g in gemms:
        GH, n_in = g["W"].shape
        flops["fwd"] += 2 * T * B * n_in * GH
        flops["fwd+bwd"] += 3 * 2 * T * B * n_in * GH  # + the transposed product and the weight gradient
    return {"fwd": fwd, "fwd+bwd": fwd_bwd}, {"flops": flops}


def _numba(case: Case) -> tuple[dict[str, Callable[[], object]], dict]:
    mod, params, x, dy = _problem(case, "numba")
    _, _, cache = mod.forward(params, x[:1])  # compile the kernels (or load them from numba's cache)
    mod.backward(params, cache, dy[:1])  # before the memory probe and any sample
    return _generated(case, "numba")


_BUILDERS = {"generated": _generated, "numba": _numba, "torch": _torch, "floor": _floor}


def _worker(impl: str, conn) -> None:
    """Serve requests ("setup", case) / ("sample", case, mode, calls) / ("stop",) over a pipe."""
    if impl == "torch":
        # numpy is only the data source here; its idle OpenBLAS threads next to torch's OpenMP threads
        # made a tiny nn.LSTM call take 40 ms instead of 0.1 ms with the SkylakeX kernel (measured).
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
    fns: dict[Case, dict] = {}
    while True:
        msg = conn.recv()
        if msg[0] == "stop":
            break
        if msg[0] == "setup":
            case = msg[1]
            fns.clear()  # one case at a time keeps memory bounded
            try:
                fns[case], info = _BUILDERS[impl](case)
            except Exception as exc:  # reported, not fatal: e.g. torch missing
                fns[case], info = {}, {"error": f"{type(exc).__name__}: {exc}"}
            conn.send((sorted(fns[case]), info))
        elif msg[0] == "sample":
            _, case, mode, calls = msg
            fn = fns[case][mode]
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            conn.send((time.perf_counter() - t0) / calls)
    conn.close()


# -- the driver --------------------------------------------------------------------------------------


def _run_case(workers: dict, case: Case, rounds: int, sample_s: float, gap_s: float) -> dict:
    available, info = {}, {}
    for conn in workers.values():
        conn.send(("setup", case))
    for impl, conn in workers.items():
        available[impl], info[impl] = conn.recv()
    result = {"case": asdict(case), "shape": SIZES[case.size], "info": info, "median_s": {}, "samples": {}}
    for mode in MODES:
        impls = [impl for impl in workers if mode in available[impl]]
        calls = {}
        for impl in impls:  # calibrate: one warm-up call, then enough calls to fill a sample
            workers[impl].send(("sample", case, mode, 1))
            t = workers[impl].recv()
            workers[impl].send(("sample", case, mode, 1))
            t = min(t, workers[impl].recv())
            calls[impl] = max(1, math.ceil(sample_s / max(t, 1e-9)))
        samples: dict[str, list[float]] = {impl: [] for impl in impls}
        for r in range(rounds):
            order = impls[r % len(impls) :] + impls[: r % len(impls)] if impls else []
            for impl in order:
                time.sleep(gap_s)  # let the last worker's BLAS/OpenMP threads stop spinning
                workers[impl].send(("sample", case, mode, calls[impl]))
                samples[impl].append(workers[impl].recv())
        result["samples"][mode] = samples
        result["median_s"][mode] = {impl: statistics.median(v) for impl, v in samples.items()}
    return result


def _fmt_ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a / b:.2f}"


def format_table(results: list[dict]) -> str:
    """A Markdown table: medians in ms and the ratios generated/floor and generated/torch."""
    head = (
        "| cell | size (B, T, I, H) | dtype | fwd ms | fwd / floor | fwd / torch | fwd+bwd ms "
        "| f+b / floor | f+b / torch | cache MB (min) |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in results:
        c, med = r["case"], r["median_s"]
        row = [c["cell"], f"{c['size']} {tuple(r['shape'])}", c["dtype"]]
        for mode in MODES:
            m = med.get(mode, {})
            gen = m.get("generated")
            row += [_fmt_ms(gen), _ratio(gen, m.get("floor")), _ratio(gen, m.get("torch"))]
        mem = r["info"].get("generated", {})
        if "cache_bytes" in mem:
            row.append(f"{mem['cache_bytes'] / 1e6:.3g} ({mem['min_bytes'] / 1e6:.3g})")
        else:
            row.append("-")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def format_backends(results: list[dict]) -> str:
    """A Markdown table of forward + backward: every backend's median beside the floor's, and ratios."""
    head = (
        "| cell | size (B, T, I, H) | dtype | floor ms | numpy ms | numba ms | torch ms | numpy / floor "
        "| numba / floor | torch / floor | numba / torch | numba / numpy |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in results:
        c, m = r["case"], r["median_s"].get("fwd+bwd", {})
        floor, gen, nb, th = (m.get(k) for k in ("floor", "generated", "numba", "torch"))
        row = [c["cell"], f"{c['size']} {tuple(r['shape'])}", c["dtype"]]
        row += [_fmt_ms(floor), _fmt_ms(gen), _fmt_ms(nb), _fmt_ms(th)]
        row += [_ratio(gen, floor), _ratio(nb, floor), _ratio(th, floor), _ratio(nb, th), _ratio(nb, gen)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


# -- numba's compile and cache-load times, each in a new process ---------------------------------------

_JIT_CHILD = """
import json, sys, time
start = time.perf_counter()
import numpy as np, symlstm
mod = symlstm.load(sys.argv[1], backend="numba")
import numba  # noqa: F401 (imported by the module; counted in its load)
out = {"import_s": time.perf_counter() - start}
for dtype in sys.argv[2:]:
    I = 64 if mod.SAME_SIZE else 32
    params = mod.init_params(I, 64, dtype=np.dtype(dtype))
    x = np.ones((10, 1, I), dtype)
    t0 = time.perf_counter()
    y, _, cache = mod.forward(params, x)
    mod.backward(params, cache, np.ones_like(y))
    out[dtype] = time.perf_counter() - t0
print(json.dumps(out))
"""


def jit_times(cells: list[str], dtypes: list[str]) -> str:
    """Per cell: two new processes sharing a fresh NUMBA_CACHE_DIR, each timing its first forward +
    backward per dtype: the first compiles (and writes the cache), the second loads from it."""
    import subprocess
    import tempfile

    lines = ["| cell | dtype | import + load s | first call (compile) s | first call, cached s |",
             "|---|---|---|---|---|"]  # fmt: skip
    for cell in cells:
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            runs = []
            for _ in range(2):
                cmd = [sys.executable, "-c", _JIT_CHILD, cell, *dtypes]
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        for dtype in dtypes:
            imports = f"{runs[0]['import_s']:.2f} / {runs[1]['import_s']:.2f}"
            lines.append(f"| {cell} | {dtype} | {imports} | {runs[0][dtype]:.2f} | {runs[1][dtype]:.3f} |")
        print("\n".join(lines[-len(dtypes) :]), flush=True)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny size, 2 rounds: a smoke run")
    parser.add_argument("--cells", nargs="+", default=None, help="cell names (default: those with torch)")
    parser.add_argument("--sizes", nargs="+", default=None, choices=sorted(SIZES))
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=DTYPES)
    parser.add_argument(
        "--impls", nargs="+", default=None, choices=IMPLS, help="default: all (numba when installed)"
    )
    parser.add_argument("--rounds", type=int, default=None, help="samples per implementation (default 9)")
    parser.add_argument("--sample-ms", type=float, default=None, help="length of one sample (default 200)")
    parser.add_argument(
        "--gap-ms", type=float, default=None, help="idle time before each sample (default 300)"
    )
    parser.add_argument("--json", default=None, help="also write every sample to this JSON file")
    parser.add_argument(
        "--jit", action="store_true", help="only numba's first-call (compile) and cached-load times"
    )
    parser.add_argument(
        "--workspace",
        action="store_true",
        help="the generated code reuses one workspace dict across calls (forward/backward workspace=)",
    )
    args = parser.parse_args(argv)
    os.environ["BENCH_WORKSPACE"] = "1" if args.workspace else "0"  # read by the spawned workers

    import symlstm

    cells = args.cells or [n for n in sorted(symlstm.CELLS) if symlstm.cell(n).torch]
    unknown = [n for n in cells if n not in symlstm.CELLS]
    if unknown:
        parser.error(f"unknown cells {unknown}; known: {sorted(symlstm.CELLS)}")
    if args.jit:
        print(_environment(), flush=True)
        table = jit_times(cells, args.dtypes)
        print()
        print(table)
        return 0
    sizes = args.sizes or (["tiny"] if args.quick else ["narrow", "small", "medium", "large"])
    impls = list(args.impls) if args.impls else [i for i in IMPLS if i != "numba" or _numba_installed(args)]
    rounds = args.rounds or (2 if args.quick else 9)
    sample_s = (args.sample_ms or (5 if args.quick else 200)) / 1e3
    gap_s = (args.gap_ms if args.gap_ms is not None else (0 if args.quick else 300)) / 1e3

    ctx = mp.get_context("spawn")
    workers, procs = {}, []
    for impl in impls:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(impl, child), daemon=True)
        proc.start()
        workers[impl] = parent
        procs.append(proc)
    print(_environment(), flush=True)
    results = []
    try:
        for size in sizes:
            for dtype in args.dtypes:
                for cell in cells:
                    r = _run_case(workers, Case(cell, size, dtype), rounds, sample_s, gap_s)
                    results.append(r)
                    print(format_table([r]).splitlines()[-1], flush=True)
                    if "numba" in impls:  # every backend's forward + backward, as measured
                        print(format_backends([r]).splitlines()[-1], flush=True)
    finally:
        for conn in workers.values():
            conn.send(("stop",))
        for proc in procs:
            proc.join(timeout=10)
    print()
    print(format_table(results))
    if "numba" in impls:
        print()
        print("Forward + backward, every backend:")
        print()
        print(format_backends(results))
    errors = {(r["case"]["cell"], impl): i["error"] for r in results for impl, i in r["info"].items()
              if "error" in i}  # fmt: skip
    for key, err in sorted(errors.items()):
        print(f"note: {key[1]} skipped for {key[0]}: {err}", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"environment": _environment(), "results": results}, fh, indent=1)
    return 0


def _numba_installed(args: argparse.Namespace) -> bool:
    """numba is in the default run when it is installed, except in --quick (a smoke run of seconds)."""
    import importlib.util

    return not args.quick and importlib.util.find_spec("numba") is not None


def _environment() -> str:
    """Library versions, BLAS kernel and thread counts: what the numbers depend on."""
    import platform

    import numpy as np

    parts = [f"python {platform.python_version()}", f"numpy {np.__version__}"]
    try:
        from threadpoolctl import threadpool_info

        for lib in threadpool_info():
            parts.append(f"{lib['internal_api']} {lib.get('architecture', '')} {lib['num_threads']} threads")
    except ImportError:
        parts.append("(threadpoolctl not installed: BLAS kernel unknown)")
    try:  # the version without importing torch into the driver
        from importlib.metadata import version

        parts.append(f"torch {version('torch')} {os.environ.get('BENCH_THREADS', '2')} threads")
    except Exception:  # importlib.metadata.PackageNotFoundError
        parts.append("torch not installed")
    try:
        from importlib.metadata import version

        blas = "scipy's" if os.environ.get("SYMLSTM_NUMBA_BLAS") == "scipy" else "numpy's where found"
        parts.append(f"numba {version('numba')}, scipy {version('scipy')}, the kernels' BLAS {blas}")
    except Exception:  # importlib.metadata.PackageNotFoundError
        parts.append("numba not installed")
    parts.append(f"{os.cpu_count()} CPUs, load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    unset = [v for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if v in os.environ]
    if unset:
        parts.append(f"{', '.join(unset)} set (unset them: they slow a current numpy)")
    if os.environ.get("BENCH_WORKSPACE") == "1":
        parts.append("generated code with workspace=")
    return "; ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
