"""What each command prints when it ends: a short table of the run and the whole paths of what it wrote."""

from __future__ import annotations

from typing import Any

def print_rows(title: str, rows: list[tuple[str, str]]) -> None:
    """A two-column console table (label, value) with a title; values are printed literally."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")  # wrapped, never cut with an ellipsis
    for label, value in rows:
        table.add_row(label, escape(str(value)))
    Console().print(table)


def print_paths(paths: dict[str, str]) -> None:
    """Label and path, one a line and never cut, so that a path can be copied whole."""
    width = max(map(len, paths), default=0)
    for label, path in paths.items():
        print(f"{label:<{width}}  {path}")


def print_summary(summary: dict[str, Any]) -> None:
    """A short, readable table of the training run for the console."""
    from tasks.compress import compression_rows

    estimators = summary.get("estimators", {})

    def shown(family: str) -> str:  # the logistic family is ridge regression for a regression task
        return "logistic (Ridge)" if estimators.get(family) == "Ridge" else family

    rows = [("model", f"{shown(summary['family'])} → {summary['model_name']} v{summary['version']} "
                      f"[{', '.join(summary['aliases'])}]")]
    rows += [(f"test {k}", f"{v:.4f}") for k, v in summary["test_metrics"].items()]
    for family, m in summary.get("test_leaderboard", {}).items():
        if family != summary["family"]:
            rows.append((f"  vs {shown(family)}", ", ".join(f"{k} {v:.4f}" for k, v in m.items())))
    rows += compression_rows(summary.get("compression", []))
    print_rows(f"training run {summary['run_id']} ({summary['dataset']})", rows)
    print_paths({"artifacts": summary["run_dir"], "manifest": summary["manifest_uri"],
                 "model file": summary["model_uri"], "registry": summary["registry_uri"]})


def print_stage(summary: dict[str, Any]) -> None:
    """The stage's result, then every artifact it wrote or borrowed with its whole path."""
    print_rows(f"stage {summary['stage']}: run {summary['run_id']}"
               + (f" (inputs from {summary['from_run']})" if summary["from_run"] else ""), summary["result"])
    print_paths(summary["outputs"])


def print_inference(summary: dict[str, Any]) -> None:
    """An inference run: the model, the rows in, scored and quarantined, unseen categories, the predictions."""
    rows = [("model", f"{summary['model_name']} v{summary['model_version']}, scored by "
                      f"{summary.get('scored_by', 'native')}"),
            ("rows", f"{summary['rows_in']:,} in, {summary['rows_scored']:,} scored, "
                     f"{summary['rows_quarantined']:,} quarantined")]
    if summary["unseen_categories"]:
        rows.append(("unseen categories", "; ".join(f"{k}: {', '.join(v[:5])}"
                                                    for k, v in summary["unseen_categories"].items())))
    rows.append(("predictions", summary["predictions_path"]))
    print_rows(f"inference run {summary['run_id']}", rows)


def print_monitoring(summary: dict[str, Any]) -> None:
    """A monitoring run: the rows scored and what drifted."""
    print_rows(f"monitoring run {summary['run_id']}", [
        ("model", f"{summary['model_name']} v{summary['model_version']}"),
        ("rows", f"{summary['rows_scored']:,} scored, {summary['rows_quarantined']:,} quarantined"),
        ("drifted features", f"{summary['drifted_features']} of {summary['features']} ({summary['share']:.0%})"),
        ("dataset drift", summary["dataset_drift"]), ("prediction drift", summary["prediction_drift"]),
        ("performance drift", summary["performance_drift"]), ("drift report", summary["report_path"])])


def print_retraining(summary: dict[str, Any]) -> None:
    """A retraining run: why it retrained or not, and the promotion decision."""
    from tasks.report import retraining_rows

    print_rows(f"retraining run {summary['run_id']} ({summary['model_name']})", retraining_rows(summary))
