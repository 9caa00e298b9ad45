"""Report: the run's summary as Parquet, and as Prefect artifacts that the UI shows on the run's page."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from prefect import task

from trainflow.catalog.artifacts import RUN_SUMMARY
from trainflow.metrics import headline
from trainflow.catalog import ArtifactRef, ArtifactStore
from trainflow.progress import run_logger
from trainflow.ui import embedded_png, publish, readable


EMBED_BYTES = 200 * 1024  # a picture larger than this is named by its path, not carried in the markdown artifact


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def summary_markdown(summary: dict[str, Any], leaderboard: pd.DataFrame, gaps: pd.DataFrame,
                     warnings: pd.DataFrame, plots: dict[str, tuple[str, bytes]]) -> str:
    """The run's summary as markdown for the Prefect UI (``plots``: name -> (path, PNG bytes), shown inline)."""
    lines = [f"# Training run `{summary['run_id']}`: {summary['dataset']}", "",
             f"Model **{summary['family']}**, registered as **{summary['model_name']} v{summary['version']}** "
             f"({', '.join(summary['aliases']) or 'no alias'}).", "", "## Test metrics", "",
             "| metric | value |", "| --- | --- |"]
    lines += [f"| {k} | {v:.4f} |" for k, v in summary["test_metrics"].items()]
    lines += ["", "## Leaderboard (how the model was chosen)", "",
              "| rank | family | metric | score | on | fit s | time limit |", "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['rank']} | {r['family']} | {r['metric']} | {r['score']:.4f} | {r['selected_on']} | "
              f"{r['fit_seconds']:.2f} | {r.get('budget') or ''} |" for r in leaderboard.to_dict("records")]
    board = summary.get("test_leaderboard", {})
    if len(board) > 1:
        names = list(summary["test_metrics"])  # every family's metrics are keyed like the headline's
        lines += ["", "## Every family on the test split (reported, not used to choose)", "",
                  "| family | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
        lines += [f"| {family} | " + " | ".join(f"{m[k]:.4f}" if k in m else "" for k in names) + " |"
                  for family, m in board.items()]
    sens = gaps[gaps["sensitive"]] if len(gaps) else gaps
    if len(sens):
        lines += ["", "## Largest gaps between groups of sensitive attributes", "",
                  "| attribute | metric | best group | worst group | gap |", "| --- | --- | --- | --- | --- |"]
        top = sens.sort_values("gap", ascending=False).groupby("attribute").head(3)
        lines += [f"| {r['attribute']} | {r['metric']} | {r['max_group']} ({r['max_value']:.3f}) | "
                  f"{r['min_group']} ({r['min_value']:.3f}) | {r['gap']:.3f} |" for r in top.to_dict("records")]
    if len(warnings):
        lines += ["", "## Data warnings", ""]
        lines += [f"- `{r['column']}`: {r['expectation']} ({r['unexpected_count']} rows)"
                  for r in warnings.to_dict("records")]
    if plots:
        lines += ["", "## Plots", ""]
        for name, (path, png) in plots.items():
            shown = embedded_png(png, name) if len(png) <= EMBED_BYTES else \
                f"(not embedded: {len(png) / 1024:.0f} KiB, more than the {EMBED_BYTES // 1024} KiB a summary embeds)"
            lines += [f"### {name.replace('_', ' ')}", "", shown, "", f"`{path}`", ""]
    lines += ["", f"Artifacts: `{summary['run_dir']}` (see `manifest.parquet`)."]
    return "\n".join(lines)


@task(name="report")
def report(store_root: str, run_id: str, dataset: str, trained: dict[str, ArtifactRef],
           evaluation: dict[str, ArtifactRef], validation_results: ArtifactRef | None,
           registered: dict[str, Any], task_type: str, compression: ArtifactRef | None = None) -> dict[str, Any]:
    """Prefect task: write ``report/run_summary`` and publish the markdown and metrics artifacts.

    ``compression`` is the compress stage's report: its rows go into the summary (``compression``).

    Returns:
        The summary (run id, folder, model, version, test metrics, artifact paths).
    """
    store = ArtifactStore(store_root)
    board = store.read_table(trained["leaderboard"])
    metrics = store.read_table(evaluation["metrics"])
    gaps = store.read_table(evaluation["slice_gaps"])
    warnings = pd.DataFrame(columns=["column", "expectation", "unexpected_count"])
    if validation_results is not None:
        vr = store.read_table(validation_results)
        warnings = vr[(~vr["success"]) & (vr["severity"] == "warning")]
    test = headline(metrics, task_type)
    test_board = {}
    if "test_leaderboard" in evaluation:
        for r in store.read_table(evaluation["test_leaderboard"]).to_dict("records"):
            m = json.loads(r["test_metrics"])
            test_board[r["family"]] = {k: m[k] for k in test if k in m}
    plots = {v.name.removesuffix(".png"): (store.uri(v), store.read_file(v)) for v in [*trained.values(),
             *evaluation.values()] if v.kind == "file" and v.name.endswith(".png")}
    summary = {"run_id": run_id, "dataset": dataset, "run_dir": store.run_uri(run_id),
        "manifest_uri": store.manifest_uri(run_id),
        "family": board[board["selected"]].iloc[0]["family"],
        "estimators": dict(zip(board["family"], board["estimator"])), "model_name": registered["name"],
        "version": registered["version"],
        "aliases": registered["aliases"], "test_metrics": test, "test_leaderboard": test_board,
        "model_uri": store.uri(trained["model"]), "registry_uri": registered["uri"],
        "serving_variant": registered.get("serving_variant") or "native"}
    if compression is not None:
        columns = ["variant", "status", "metric", "value", "size_bytes", "p50_ms", "rows_per_s", "serving", "reason"]
        summary["compression"] = [{k: (None if pd.isna(v) else v) for k, v in r.items()}
                                  for r in store.read_table(compression)[columns].to_dict("records")]
    store.put(run_id, RUN_SUMMARY, pd.DataFrame([{
        **{k: v for k, v in summary.items() if k not in ("test_metrics", "aliases", "test_leaderboard",
                                                         "estimators", "compression")},
        "aliases": ",".join(summary["aliases"]), "test_metrics": json.dumps(test),
        "test_leaderboard": json.dumps(test_board)}]))
    publish("markdown", summary_markdown(summary, board, gaps, warnings, plots), f"training-{dataset}",
            f"Training run {run_id}", on_flow_run=True)
    publish("table", [{"metric": k, "value": readable(v)} for k, v in test.items()], f"test-metrics-{dataset}",
            f"Test metrics of run {run_id}", on_flow_run=True)
    return summary


def retraining_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """A retraining run's decisions as (label, value) rows: why it retrained (or not), the drift verdict, the
    challenger, both scores on the held-out batch, the promotion. The console and the UI show the same rows."""
    rows = [("champion before", f"v{summary['champion']}" if summary["champion"] else "none")]
    if "drift" in summary:
        d = summary["drift"]
        rows.append(("drift", f"{d['drifted_features']} features ({d['share']:.0%}); dataset drift "
                              f"{d['dataset_drift']}, prediction drift {d['prediction_drift']}, performance drift "
                              f"{d['performance_drift']}"))
    rows.append(("retrained", f"{summary['retrained']} ({'; '.join(summary['retrain_reasons']) or '-'})"))
    if summary.get("challenger"):
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in summary.get("challenger_test_metrics", {}).items())
        rows.append(("challenger", f"v{summary['challenger']} (test {metrics}), training run {summary['training_run']}"))
    decision = summary.get("decision") or {}
    if decision.get("champion_score") is not None:
        rows.append((f"held-out {decision['metric']}", f"champion {decision['champion_score']:.4f}, challenger "
                                                       f"{decision['challenger_score']:.4f}"))
    rows.append(("promoted", f"{summary['promoted']}: {summary['reason']}"))
    return rows


def retraining_markdown(summary: dict[str, Any]) -> str:
    """A retraining run's decisions as markdown for the Prefect UI."""
    lines = [f"# Retraining run `{summary['run_id']}`: {summary['model_name']}", ""]
    return "\n".join(lines + [f"- **{label}**: {value}" for label, value in retraining_rows(summary)])


@task(name="report_retraining")
def report_retraining(summary: dict[str, Any]) -> dict[str, Any]:
    """Prefect task: the retraining run's decisions as a markdown artifact on the flow run, and one log line."""
    run_logger().info("retraining: retrained %s, promoted %s: %s", summary["retrained"], summary["promoted"],
                      summary["reason"])
    publish("markdown", retraining_markdown(summary), f"retraining-{summary['model_name']}",
            f"Retraining run {summary['run_id']}", on_flow_run=True)
    return summary
