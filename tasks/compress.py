"""Compress: smaller and faster variants of the trained model, kept only where they keep its predictions.

Variants of the selected model (``make_variants``):

- ``onnx``: the whole serving Pipeline, preprocessing included, as one ONNX graph under ONNX Runtime
  (``trainflow.export``); the same model in another runtime.
- ``onnx_int8``: ONNX Runtime dynamic int8 quantisation of that graph, where the graph has weights it
  quantises (MatMul/Gemm: networks); tree ensembles and scikit-learn's linear operators have none, and the
  report says so.
- the family's own forms (``Family.compressions``), each measured as it is, in ONNX Runtime, or both:
  LightGBM's ``onnx_lightgbm_<k>`` (its first k trees, k the smallest of 1/8, 1/4, 1/2 and 3/4 of the trees
  whose held-out loss stays within half the allowed drop: a smaller model, not only another format); the
  networks' (MLP, CNN, Transformer, GRU/LSTM) ``torch_bf16``, ``torch_int8`` (torchao's ``quantize_``) and
  ``torch_pruned_<n>`` (global magnitude pruning made permanent) with its ONNX form ``onnx_pruned_<n>``.

Every family the train stage can select exports (the text and series baselines too).

The parity gate (``gate``) measures each variant against the native model on the test rows, in this
process on the same rows: file size, the main metric, the largest difference of its predictions from
the native model's (class probabilities; for regression relative to the predictions' standard deviation),
batch-of-1 latency (p50 and p99 over ``latency_calls`` calls, fewer for a model slower than ``latency_seconds``
allows) and batch rows per second, in wall and in CPU time. ONNX's tree operators
compare in float32 where LightGBM compares in float64, so a value within float32 rounding of a split threshold
may take the other branch: the ONNX variant of a LightGBM model can differ on a rare row, and the report counts
the rows beyond the tolerance (``rows_over_tolerance``). A variant is kept
when its relative metric drop is within ``max_metric_drop`` and its predictions within ``tolerance``
(``lossy_tolerance`` for variants that change the model). The serving variant the register stage records is
chosen by CPU time (rows/s on batches, p50 for single rows, or both, as ``speed`` says), not wall time, which another
process on the machine changes: an exact variant replaces the native model only when ``margin`` times faster,
a variant that changes the model only when ``min_gain`` times faster than that; the native model stays the
fallback.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from prefect import task
from pydantic import Field
from sklearn.pipeline import Pipeline

from trainflow.catalog import ArtifactRef, ArtifactStore, folder_digest
from trainflow.catalog.artifacts import COMPRESSION_REPORT, SERVING, SIZE_LATENCY_PLOT, TRAINING_HISTORY
from trainflow.errors import ArtifactError
from trainflow.features import as_model_input
from trainflow.forms import FormModel, Toggle
from trainflow.metrics import label_values, predict_scores, relative_drop, score
from trainflow.models.bundle import bundle_files, load_bundle
from trainflow.models.families import FAMILIES
from trainflow.models.family import CompressRequest
from trainflow.progress import run_logger
from trainflow.schema import DatasetSchema
from trainflow.ui import embedded_png, publish, readable, table_rows


class CompressSettings(FormModel):
    """Which compressed variants are made and what they must keep."""

    enabled: Toggle = Field("auto", description="make and gate compressed variants (ONNX, int8, fewer trees); "
                                                "off: the native model serves; auto: the preset decides (fast: off; "
                                                "default, best: on)")
    max_metric_drop: float = Field(0.01, ge=0, description="largest relative drop of the main test metric a variant "
                                                           "may cost (0.01: 1%)")
    tolerance: float = Field(1e-3, ge=0, description="largest difference from the native predictions for a format "
                                                     "change (ONNX, float32 inside): probabilities, or values over "
                                                     "their std")
    lossy_tolerance: float = Field(0.2, ge=0, description="the same for variants that change the model (int8, fewer "
                                                          "trees), which the metric drop judges first; a broken "
                                                          "variant differs far more")
    fewer_trees: bool = Field(True, description="offer LightGBM with fewer trees (chosen on the validation split)")
    prune_sparsity: float = Field(0.5, ge=0, lt=1, description="networks: share of the weights set to zero by global "
                                                               "magnitude pruning, made permanent")
    latency_calls: int = Field(200, ge=10, description="single-row calls timed per variant (p50 and p99)")
    latency_seconds: float = Field(2.0, gt=0, description="at most this long on one variant's single-row calls: a "
                                                          "slow model gets fewer than latency_calls (at least 10; "
                                                          "the report says how many)")
    batch_rows: int = Field(1024, ge=1, description="rows per call for the throughput figure")
    speed: Literal["both", "batch", "single"] = Field(
        "both", description="what 'fastest' means for the serving variant, in CPU time: rows/s on batches (batch "
                            "inference), single-row p50 latency (online), or both (their geometric mean: the "
                            "serving variant does both)")
    margin: float = Field(1.2, ge=1, description="an exact variant (ONNX) serves instead of the native model only "
                                                 "when this many times faster in CPU time: a difference within the "
                                                 "noise of a busy machine must not change what is served")
    min_gain: float = Field(1.1, ge=1, description="a variant that changes the model (int8, fewer trees, pruning) "
                                                   "serves only when this many times faster than the exact one "
                                                   "chosen (native or ONNX): a timing difference within noise is no "
                                                   "reason to change predictions")


MEASURED = ("kept", "reference", "rejected")  # report statuses whose row holds measurements (the others: a reason)


@dataclass
class Variant:
    """A candidate: a name, its model (the native Pipeline's prediction API), how it was made; ``servable``
    when it has safe files the registry can store and load (a torch model in bf16 or with int8 tensors is
    measured here but has no file format of its own in this project)."""

    name: str
    runtime: Literal["native", "onnx"]
    model: Any
    lossy: bool
    note: str
    size: int = 0
    meta: dict = field(default_factory=dict)
    servable: bool = True


def _known_categories(pipeline: Pipeline, schema: DatasetSchema) -> dict[str, list[str]]:
    from trainflow.features import known_categories

    return {k: sorted(v) for k, v in known_categories(pipeline, schema).items()}


def _onnx_variant(name: str, pipeline: Pipeline, schema: DatasetSchema, family: str, classes: list | None, note: str,
                  lossy: bool) -> Variant:
    from trainflow.export import OnnxModel, to_onnx

    data = to_onnx(pipeline, schema, family)
    categories = _known_categories(pipeline, schema)
    model = OnnxModel(data, [c.name for c in schema.features], classes, categories, schema.name)
    return Variant(name, "onnx", model, lossy, note, len(data),
                   {"features": [c.name for c in schema.features], "classes": classes, "categories": categories})


def _int8_variant(base: Variant, schema: DatasetSchema) -> Variant | str:
    """ONNX Runtime's dynamic quantisation of an ONNX variant, or why it does not apply."""
    import onnx

    graph = onnx.load_from_string(base.model.data)
    weighted = [n.op_type for n in graph.graph.node if n.op_type in ("MatMul", "Gemm")]
    if not weighted:
        ops = sorted({n.op_type for n in graph.graph.node if n.domain == "ai.onnx.ml"} - {"LabelEncoder"})
        return f"the graph has no MatMul/Gemm weights to quantise ({', '.join(ops) or 'no weights'})"
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import QuantType, quantize_dynamic

    from trainflow.export import OnnxModel

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "model.onnx", Path(tmp) / "model.int8.onnx"
        src.write_bytes(base.model.data)
        logging.disable(logging.WARNING)  # the quantiser advises its pre-processing on the root logger, every time
        try:
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
        finally:
            logging.disable(logging.NOTSET)
        data = dst.read_bytes()
    m = base.meta
    model = OnnxModel(data, m["features"], m["classes"], m["categories"], schema.name)
    return Variant(f"{base.name}_int8", "onnx", model, True, "int8 weights (onnxruntime quantize_dynamic)", len(data),
                   base.meta)


def make_variants(pipeline: Pipeline, meta: dict, schema: DatasetSchema, validation: pd.DataFrame,
                  settings: CompressSettings, history: pd.DataFrame | None = None,
                  native_size: int = 0, deadline: float | None = None) -> tuple[list[Variant], list[dict]]:
    """The candidate variants of a serving Pipeline, and a report row for each one that could not be made
    (``deadline``: the run's time limit, ``time.time()``; an ONNX export whose estimated time does not fit before
    it is not made, see ``trainflow.export.export_seconds``)."""
    from trainflow.export import ExportError, export_seconds

    classes = meta.get("classes")
    if classes is None and schema.is_classification:
        classes = [str(c) for c in pipeline.classes_]
    variants, skipped = [], []
    needed = export_seconds(pipeline)
    if deadline is not None and time.time() + needed > deadline:
        why = (f"the time limit: exporting the model takes about {needed:.0f} s, "
               f"{max(0.0, deadline - time.time()):.0f} s of it left")
        return variants, [{"variant": "onnx", "runtime": "onnx", "status": "not applicable", "reason": why}]
    try:
        onnx = _onnx_variant("onnx", pipeline, schema, meta["family"], classes, "the whole Pipeline in ONNX Runtime",
                             lossy=False)
        variants.append(onnx)
        try:
            int8 = _int8_variant(onnx, schema)
        except Exception as exc:  # noqa: BLE001 - the quantiser's own errors become a report row
            skipped.append({"variant": "onnx_int8", "runtime": "onnx", "status": "failed",
                            "reason": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"})
        else:
            if isinstance(int8, str):
                skipped.append({"variant": "onnx_int8", "runtime": "onnx", "status": "not applicable",
                                "reason": int8})
            else:
                variants.append(int8)
    except (ExportError, ArtifactError) as exc:
        skipped.append({"variant": "onnx", "runtime": "onnx", "status": "failed", "reason": str(exc)})
    own = FAMILIES[meta["family"]].compressions if meta.get("family") in FAMILIES else None
    if own is not None:
        request = CompressRequest(pipeline, meta, schema, validation, history, settings.model_dump(), native_size,
                                  lambda p: sum(len(v) for v in bundle_files(p, {"family": meta["family"]}).values()))
        made, failed = own(request)
        skipped += failed
        for c in made:
            if c.native:
                variants.append(Variant(c.name, "native", c.model, True, c.note, c.size or request.bundle_size(c.model),
                                        servable=c.servable))
            if c.onnx is not None:
                note = c.note + " in ONNX Runtime"
                try:
                    variants.append(_onnx_variant(c.onnx, c.model, schema, meta["family"], classes, note, lossy=True))
                except (ExportError, ArtifactError) as exc:
                    skipped.append({"variant": c.onnx, "runtime": "onnx", "status": "failed", "reason": str(exc)})
    return variants, skipped


MIN_LATENCY_CALLS = 10


BATCH_ROUNDS = 5  # rounds of batch calls timed per variant; the serving choice reads the cheapest one's CPU time


def _timed(model: Any, x: pd.DataFrame, task_type: str, calls: int, batch_rows: int,
           seconds: float = float("inf"), batch_seconds: float = float("inf")) -> dict[str, float]:
    """Batch-of-1 latency (p50, p99 in ms over ``calls`` calls, after a warm-up call; fewer, but at least
    ``MIN_LATENCY_CALLS``, once they have taken ``seconds``) and rows/s on batches (wall: the median of
    ``BATCH_ROUNDS`` rounds; fewer, but at least one, once they have taken ``batch_seconds``), and the same in
    this process's CPU time (``cpu_p50_ms``; ``cpu_rows_per_s`` of the cheapest round, as ``timeit`` advises:
    what a call costs, which another process on the machine and a round's interruptions do not change)."""
    predict_scores(model, x.iloc[:1], task_type)  # warm-up: lazy initialisation is not latency
    single: list[float] = []
    single_cpu: list[float] = []
    for i in range(calls):
        if len(single) >= MIN_LATENCY_CALLS and sum(single) > seconds:
            break
        row = x.iloc[[i % len(x)]]
        start, cpu = time.perf_counter(), time.process_time()
        predict_scores(model, row, task_type)
        single.append(time.perf_counter() - start)
        single_cpu.append(time.process_time() - cpu)
    batch = x.iloc[:batch_rows]
    reps = max(1, 1_000 // max(1, len(batch)))
    wall, cpu_times = [], []
    for _ in range(BATCH_ROUNDS):
        if wall and sum(wall) > batch_seconds:  # the time limit: one round is still a figure
            break
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(reps):
            predict_scores(model, batch, task_type)
        wall.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu)
    rows = reps * len(batch)
    return {"p50_ms": float(np.percentile(single, 50) * 1e3), "p99_ms": float(np.percentile(single, 99) * 1e3),
            "latency_calls": len(single), "batch_rounds": len(wall), "rows_per_s": rows / float(np.median(wall)),
            "cpu_p50_ms": float(np.percentile(single_cpu, 50) * 1e3),
            "cpu_rows_per_s": rows / max(min(cpu_times), 1e-9)}


def gate(schema: DatasetSchema, native: Variant, variants: list[Variant], test: pd.DataFrame, metric: str,
         settings: CompressSettings, deadline: float | None = None) -> pd.DataFrame:
    """The compression report: one row per model (native first), with the gate's verdict and the serving pick.
    With a ``deadline`` each model's single-row calls and batch rounds share the time left (``latency_seconds`` at
    most on single rows)."""
    x, y = as_model_input(test, schema), label_values(test, schema)
    classes = getattr(native.model, "classes_", None)
    reference = predict_scores(native.model, x, schema.task)
    spread = max(float(np.std(reference)), 1e-12) if schema.task == "regression" else 1.0
    rows = []
    # under a deadline each model's single-row calls and batch rounds share the time left
    share = float("inf") if deadline is None else max(0.0, deadline - time.time()) / (2 * (1 + len(variants)))
    for v in [native, *variants]:
        scores = reference if v is native else predict_scores(v.model, x, schema.task)
        value = score(schema.task, y, scores, classes, schema.positive_class).get(metric, np.nan)
        per_row = np.abs(np.asarray(scores, dtype=float) - reference).reshape(len(x), -1).max(axis=1) / spread
        limit = settings.lossy_tolerance if v.lossy else settings.tolerance
        diff = float(per_row.max() * spread) if len(x) else 0.0
        rows.append({"variant": v.name, "runtime": v.runtime, "lossy": v.lossy, "note": v.note, "size_bytes": v.size,
                     "metric": metric, "value": float(value), "max_abs_diff": diff, "max_rel_diff": diff / spread,
                     "rows_over_tolerance": int((per_row > limit).sum()),
                     **_timed(v.model, x, schema.task, settings.latency_calls, settings.batch_rows,
                              min(settings.latency_seconds, share), share)})
    report = pd.DataFrame(rows)
    base = report.iloc[0]
    report["metric_drop"] = [relative_drop(metric, base["value"], v) for v in report["value"]]
    report["size_ratio"] = report["size_bytes"] / max(base["size_bytes"], 1)
    report["speedup_p50"] = base["p50_ms"] / report["p50_ms"]
    report["speedup_rows"] = report["rows_per_s"] / base["rows_per_s"]
    status, reasons = [], []
    for r in report.to_dict("records"):
        limit = settings.lossy_tolerance if r["lossy"] else settings.tolerance
        why = []
        if r["variant"] == native.name:
            status.append("reference")
            reasons.append("the native model (the fallback)")
            continue
        if r["metric_drop"] > settings.max_metric_drop:
            why.append(f"{metric} drops {r['metric_drop']:.2%} > {settings.max_metric_drop:.2%}")
        if r["max_rel_diff"] > limit:
            what = "values (over their std)" if schema.task == "regression" else "probabilities"
            why.append(f"{what} differ by up to {r['max_rel_diff']:.3g} > {limit:g} on {r['rows_over_tolerance']} "
                       f"of {len(x)} rows")
        status.append("rejected" if why else "kept")
        reasons.append("; ".join(why) or "within the gate")
    report["status"], report["reason"] = status, reasons
    report["servable"] = report["variant"].map({v.name: v.servable for v in [native, *variants]})
    report["serving"] = report.index == serving_choice(report, settings)
    return report


def serving_choice(report: pd.DataFrame, settings: CompressSettings) -> Any:
    """The index of the serving variant in a gated report, by CPU time (rows/s on batches, single-row p50, or the
    geometric mean of both, as ``settings.speed`` says): the native model (the first row), unless a servable exact
    variant (a format change)
    is ``margin`` times faster, and a kept variant that changes the model only when ``min_gain`` times faster
    than that choice (and ``margin`` times faster than the native model). CPU time and a margin make the choice the same on an idle or a busy machine."""
    passing = report[report["status"].isin(["kept", "reference"]) & report["servable"].astype(bool)]
    speed = _cpu_speed(passing, settings)
    lossy = passing["lossy"].astype(bool)
    native = report.index[0]
    exact = speed[~lossy]
    best = exact.idxmax() if exact.max() >= settings.margin * speed[native] else native
    fast_enough = max(settings.min_gain * speed[best], settings.margin * speed[native])
    if lossy.any() and speed[lossy].max() >= fast_enough:
        best = speed[lossy].idxmax()
    return best


def _cpu_speed(report: pd.DataFrame, settings: CompressSettings) -> pd.Series:
    """Each row's speed in CPU time as ``settings.speed`` means it (larger is faster)."""
    batch, single = report["cpu_rows_per_s"].astype(float), 1 / report["cpu_p50_ms"].astype(float)
    return {"batch": batch, "single": single}.get(settings.speed, np.sqrt(batch * single))


SPEED_WORDS = {"batch": "rows/s", "single": "single-row speed", "both": "speed (batch and single-row)"}


def _cpu_gain(report: pd.DataFrame, row: pd.Series, settings: CompressSettings) -> str:
    """``2.10x the native rows/s`` (or single-row speed, or both) of a report row, in CPU time."""
    native = _cpu_speed(report.iloc[[0]], settings).iloc[0]
    gain = float(_cpu_speed(row.to_frame().T, settings).iloc[0] / native)
    return f"{gain:.2f}x the native {SPEED_WORDS[settings.speed]}"


def size_latency_figure(report: pd.DataFrame):  # noqa: ANN201 (matplotlib Figure)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in report.to_dict("records"):
        marker = "*" if r["serving"] else ("o" if r["status"] in ("kept", "reference") else "x")
        ax.scatter(r["size_bytes"] / 1024, r["p50_ms"], marker=marker, s=120 if r["serving"] else 50)
        ax.annotate(r["variant"], (r["size_bytes"] / 1024, r["p50_ms"]), textcoords="offset points", xytext=(5, 5),
                    fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("size (KiB)")
    ax.set_ylabel("single-row latency p50 (ms)")
    ax.set_title("Variants: size and latency (* serving, x rejected)")
    return fig


@task(name="compress")
def compress(store_root: str, run_id: str, schema: DatasetSchema, model: ArtifactRef, splits: dict[str, ArtifactRef],
             settings: CompressSettings, deadline: float | None = None) -> dict[str, ArtifactRef]:
    """Prefect task: make the variants, gate them on the test split, and write ``compress/compression_report``,
    ``compress/size_latency.png`` and, when a variant beats the native model, ``compress/serving`` (its files,
    ``trainflow.export.variant_files``), which the register stage stores with the version.

    ``deadline``: the run's time limit (``time.time()``): an export that would not fit is skipped and the timing
    rounds shortened.

    Returns:
        References by name (``serving`` only when a variant serves).
    """
    store = ArtifactStore(store_root)
    files = store.read_bundle(model)
    pipeline, meta = load_bundle(files)
    validation, test = store.read_table(splits["validation"]), store.read_table(splits["test"])
    native = Variant("native", "native", pipeline, False, f"{meta['family']} as trained ({meta['model_format']})",
                     sum(len(v) for v in files.values()))
    try:  # LightGBM's out-of-fold curves, for choosing fewer trees after a refit
        history = store.read_table(store.get(model.run_id, TRAINING_HISTORY))
    except ArtifactError:
        history = None
    variants, skipped = make_variants(pipeline, meta, schema, validation, settings, history, native.size, deadline)
    metric = meta["selection_metric"]
    report = gate(schema, native, variants, test, metric, settings, deadline)
    if skipped:
        report = pd.concat([report, pd.DataFrame(skipped)], ignore_index=True)
        report["serving"] = report["serving"].astype("boolean").fillna(False).astype(bool)
    report["lossy"] = report["lossy"].astype("boolean")
    refs = {"compression_report": store.put(run_id, COMPRESSION_REPORT, report)}
    measured = report[report["status"].isin(MEASURED)]
    refs["size_latency"] = store.put(run_id, SIZE_LATENCY_PLOT, size_latency_figure(measured))
    serving = report[report["serving"]].iloc[0]
    log = run_logger()
    for r in report.to_dict("records"):
        if r["status"] in MEASURED:
            log.info("compress: %s %s: %s %.4f (drop %.2f%%), max diff %.2g, %.1f KiB, p50 %.3f ms, %.0f rows/s "
                     "(CPU time: p50 %.3f ms, %.0f rows/s)%s", r["variant"], r["status"], metric, r["value"],
                     100 * r["metric_drop"], r["max_abs_diff"], r["size_bytes"] / 1024, r["p50_ms"], r["rows_per_s"],
                     r["cpu_p50_ms"], r["cpu_rows_per_s"], "" if r["status"] != "rejected" else f" ({r['reason']})")
        else:
            log.info("compress: %s %s: %s", r["variant"], r["status"], r["reason"])
    if serving["variant"] != native.name:
        chosen = next(v for v in variants if v.name == serving["variant"])
        from trainflow.export import variant_files

        vmeta = {**chosen.meta, "variant": chosen.name, "runtime": chosen.runtime, "note": chosen.note,
                 "family": meta["family"], "task": schema.task, "label": schema.label, "dataset": schema.name,
                 "features": [c.name for c in schema.features],
                 "classes": chosen.meta.get("classes", meta.get("classes")),
                 "gate": {k: float(serving[k]) for k in ("value", "metric_drop", "max_abs_diff", "p50_ms", "p99_ms",
                                                 "rows_per_s", "size_bytes")}, "metric": metric}
        bundle = variant_files(chosen.model, vmeta)
        refs["serving"] = store.put(run_id, SERVING, bundle)
        log.info("compress: serving variant %s (%s in CPU time, at least %.1fx needed; p50 %.3f ms against %.3f ms; "
                 "sha256 %s)", chosen.name, _cpu_gain(report, serving, settings), settings.margin, serving["p50_ms"],
                 report.iloc[0]["p50_ms"], folder_digest(bundle)[:12])
    else:
        fastest = measured[measured["variant"] != native.name]
        best = fastest.loc[_cpu_speed(fastest, settings).idxmax()] if len(fastest) else None
        log.info("compress: the native model serves (%s)", "no variant passed the gate" if best is None else
                 f"the fastest variant, {best['variant']}, is {_cpu_gain(report, best, settings)} in CPU time; "
                 f"{settings.margin:.1f}x needed")
    shown = ["variant", "status", "value", "metric_drop", "max_abs_diff", "size_bytes", "p50_ms", "p99_ms",
             "rows_per_s", "speedup_rows", "serving", "reason"]
    publish("table", table_rows(report[[c for c in shown if c in report.columns]].rename(columns={"value": metric})),
            f"compression-{run_id}", f"Compressed variants of run {run_id}", on_flow_run=True)
    plot = store.read_file(refs["size_latency"])
    kept, rejected = (", ".join(report.loc[report["status"] == s, "variant"]) or "none" for s in ("kept", "rejected"))
    publish("markdown", f"# Compression of {meta['family']}\n\nServing: **{serving['variant']}** "
                        f"({readable(serving['speedup_rows'], 3)}x the native rows/s, single-row p50 "
                        f"{readable(serving['p50_ms'], 3)} ms). Kept: {kept}; rejected: {rejected}.\n\n"
                        f"{embedded_png(plot, 'size and latency of the variants')}",
            f"compression-plot-{run_id}", f"Compression of run {run_id}", on_flow_run=True)
    return refs


__all__ = ["CompressSettings", "compress", "gate", "make_variants"]


def compression_rows(report: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The compress stage's variants as console rows: what each scored, weighed and took; the serving one marked."""
    rows = []
    for v in report:
        status = "serving" if v["serving"] else v["status"]
        measured = v["status"] in MEASURED
        rows.append((f"variant {v['variant']}", f"{status}: " + (
            f"{v['metric']} {v['value']:.4f}, {v['size_bytes'] / 1024:,.0f} KiB, p50 {v['p50_ms']:.2f} ms, "
            f"{v['rows_per_s']:,.0f} rows/s" if measured else v["reason"])))
    return rows
