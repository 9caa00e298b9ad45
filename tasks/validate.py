"""Validate: run the dataset's Great Expectations suite on the raw data.

Each expectation has a severity (GX's own field: ``critical`` is reported as ``error``, ``warning``
and ``info`` as themselves). Any failed error expectation stops the run with a message naming every
failed rule and column, after the report is written. When quarantine is on, rows that break
row-level error rules go to ``quarantine.parquet`` with the rule that caught them, and the rest go
on; rows are never dropped silently, and too large a quarantine is still an error.
"""

from __future__ import annotations

import functools
import json
import logging
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from prefect import task

from trainflow.catalog import ArtifactRef, ArtifactStore
from trainflow.catalog.artifacts import QUARANTINE, VALID, VALIDATION_RESULTS
from trainflow.cluster import ComputeSettings, map_parts, on_dask
from trainflow.errors import ValidationFailed
from trainflow.expectations import SAMPLE_SIZE, Outcome, map_outcome, merge, merge_outcomes, run_compiled
from trainflow.progress import run_logger
from trainflow.schema import DatasetSchema

ValidationEngine = Literal["arrow", "gx"]
SEVERITY_NAMES = {"critical": "error", "warning": "warning", "info": "info"}
FINITE_RULE = "expect_column_values_to_be_finite"


def severity_of(rule: dict[str, Any]) -> str:
    """A suite rule's severity as the results name it: error (GX's ``critical``, and any word it does not know),
    warning or info."""
    return SEVERITY_NAMES.get(str(rule.get("severity") or "critical"), "error")  # built in: reported when a numeric column holds +-inf


RESULT_COLUMNS = ["expectation", "column", "severity", "success", "unexpected_count", "unexpected_percent",
                  "observed_value", "sample", "exception", "kwargs", "quarantined"]


@dataclass
class ValidationOutcome:
    """What validation found.

    Attributes:
        results: One row per expectation (column, rule, severity, success, unexpected count and percent,
            a sample of bad values, exception text, whether its rows were quarantined).
        valid: The rows that go on.
        quarantine: Rows set aside, with ``_rule`` and ``_column`` saying why.
        errors: ``(column, rule, detail)`` of each failed error-severity expectation not handled by quarantine.
    """

    results: pd.DataFrame
    valid: pd.DataFrame
    quarantine: pd.DataFrame
    errors: list[tuple[str | None, str, str]] = field(default_factory=list)


@functools.lru_cache(maxsize=8)
def _gx_suite(name: str, expectations_json: str):  # noqa: ANN202 (GX types)
    """An ephemeral GX context's batch definition and suite for one dataset's rules, built once per process and
    reused for every frame (batch inference validates each batch with the same ones)."""
    import great_expectations as gx

    for logger in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(logger).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ctx = gx.get_context(mode="ephemeral")
        ctx.variables.progress_bars = {"globally": False, "metric_calculations": False}
        batch_def = (ctx.data_sources.add_pandas("trainflow").add_dataframe_asset(name)
                     .add_batch_definition_whole_dataframe("all"))
        suite = gx.ExpectationSuite(name=name, expectations=json.loads(expectations_json))
    return batch_def, suite


def _run_suite(df: pd.DataFrame, schema: DatasetSchema, complete: bool):  # noqa: ANN202 (GX result type)
    # GX 1.24's type check cannot match pandas 3's default `str` dtype under any type name: it compares
    # dtype objects, and StringDtype(na_value=nan) equals none it builds. It does build pd.StringDtype()
    # from the name "StringDtype", so GX gets string columns in exactly that dtype: the type rule is then
    # one column-level comparison and every rule stays vectorised (as `object`, GX would check each
    # value's type in Python). Mixed-type `object` columns pass as they are. The caller's frame is unchanged.
    str_cols = {c: pd.StringDtype() for c in df.columns
                if isinstance(df[c].dtype, pd.StringDtype) and df[c].dtype != pd.StringDtype()}
    gx_df = df.astype(str_cols) if str_cols else df
    batch_def, suite = _gx_suite(schema.name, json.dumps([dict(e) for e in schema.expectations], default=str))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = batch_def.get_batch(batch_parameters={"dataframe": gx_df})
        fmt = {"result_format": "COMPLETE" if complete else "SUMMARY", "partial_unexpected_count": SAMPLE_SIZE}
        return batch.validate(suite, result_format=fmt)


def _describe(row: dict) -> str:
    if pd.notna(row["exception"]):
        return row["exception"]
    if row["expectation"] == "expect_column_to_exist":
        return "column is missing"
    if row["unexpected_count"] is not None and not pd.isna(row["unexpected_count"]):
        return f"{int(row['unexpected_count'])} bad rows ({row['unexpected_percent']:.1f}%), e.g. {row['sample']}"
    return f"observed {row['observed_value']}"


def _finite(df: pd.DataFrame, schema: DatasetSchema, complete: bool) -> dict[str, Outcome]:
    """The built-in rule on each numeric column of the schema: no +-inf (no model can use an infinite number,
    whatever range the schema allows; a range rule is often only a warning, this one is an error). Shaped as a
    column map rule's outcome, so that batches merge as the suite's rules do."""
    import pyarrow as pa

    out = {}
    for column in (c.name for c in schema.columns if c.type in ("int", "float") and c.name in df.columns):
        values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        out[column] = map_outcome(df, pa.array(values), pa.array(np.isinf(values)), complete, of_all=True)
    return out


def _key(kind: str, kwargs: dict) -> str:
    return json.dumps([kind, kwargs], sort_keys=True, default=str)


def _outcomes(df: pd.DataFrame, schema: DatasetSchema, complete: bool, engine: str) -> list[Outcome]:
    """Each expectation's outcome, in the suite's order: computed in Arrow (``trainflow.expectations``) where
    it can be with ``engine="arrow"``, by Great Expectations for the rest (all of them with ``"gx"``)."""
    expectations = [dict(e) for e in schema.expectations]
    done, left = run_compiled(df, expectations, complete) if engine == "arrow" else ({}, list(range(len(expectations))))
    if left:
        result = _run_suite(df, schema.model_copy(update={"expectations": [expectations[i] for i in left]}), complete)
        todo = list(left)
        for r in result.results:  # GX orders its results its own way: matched back by type and arguments
            cfg = r.expectation_config
            given = {k: v for k, v in cfg.kwargs.items() if k != "batch_id"}
            i = next((j for j in todo if _key(expectations[j]["type"], expectations[j].get("kwargs") or {})
                      == _key(cfg.type, given)), None)
            if i is None:  # GX filled in a default: the same type on the same column
                i = next(j for j in todo if expectations[j]["type"] == cfg.type
                         and (expectations[j].get("kwargs") or {}).get("column") == given.get("column"))
            todo.remove(i)
            exc = (r.exception_info or {}).get("exception_message") if r.exception_info else None
            done[i] = Outcome(bool(r.success), dict(r.result or {}), exc)
    return [done[i] for i in range(len(expectations))]


@dataclass
class Judgement:
    """What a suite's outcomes on a table mean: the results table, the rows to set aside (index labels, by
    results row) and the error-severity failures left (see :class:`ValidationOutcome`)."""

    results: pd.DataFrame
    set_aside: dict[int, list]
    errors: list[tuple[str | None, str, str]]


def judge(schema: DatasetSchema, outcomes: list[Outcome], finite: dict[str, Outcome], columns: list[str], rows: int,
          quarantine: bool, max_quarantine_fraction: float) -> Judgement:
    """The verdict on a table of ``rows`` rows and ``columns`` from each expectation's outcome (suite order) and
    the built-in finite rule's per numeric column: the same whether the outcomes are one table's or merged
    from its batches'."""
    missing_cols = {c for c in (e["kwargs"].get("column") for e in schema.expectations) if c and c not in columns}
    found, bad_index = [], {}
    for exp, r in zip(schema.expectations, outcomes):
        res = r.result
        kind, kwargs = exp["type"], dict(exp.get("kwargs") or {})
        column = kwargs.get("column")
        exc = r.exception
        if column in missing_cols and kind != "expect_column_to_exist":
            exc = f"column '{column}' is missing"  # GX's own words for it vary by rule
        sample = res.get("partial_unexpected_list") or []
        if kind == "expect_column_values_to_not_be_null":
            sample = [None] * len(sample)  # missing values (GX writes a string column's as "<NA>")
        found.append({
            "expectation": kind, "column": column,
            "severity": severity_of(exp),
            "success": bool(r.success), "unexpected_count": res.get("unexpected_count"),
            "unexpected_percent": res.get("unexpected_percent"),
            "observed_value": None if res.get("observed_value") is None else json.dumps(res["observed_value"],
                                                                                          default=str),
            "sample": json.dumps([None if pd.isna(v) else v for v in sample[:SAMPLE_SIZE]], default=str),
            "exception": exc, "kwargs": json.dumps({k: v for k, v in kwargs.items() if k != "column"}, default=str),
            "quarantined": False,
        })
        if quarantine and not r.success and found[-1]["severity"] == "error" and "unexpected_index_list" in res:
            bad_index[len(found) - 1] = list(res["unexpected_index_list"])
    for column, r in finite.items():
        if r.success:
            continue
        found.append({"expectation": FINITE_RULE, "column": column, "severity": "error", "success": False,
                      "unexpected_count": r.result["unexpected_count"],
                      "unexpected_percent": r.result["unexpected_percent"], "observed_value": None,
                      "exception": None, "kwargs": "{}", "quarantined": False,
                      "sample": json.dumps([str(v) for v in r.result["partial_unexpected_list"]])})
        if quarantine:
            bad_index[len(found) - 1] = list(r.result["unexpected_index_list"])
    results = pd.DataFrame(found, columns=RESULT_COLUMNS)  # the columns even for a suite without rules
    results["unexpected_count"] = results["unexpected_count"].astype("Int64")
    results["unexpected_percent"] = results["unexpected_percent"].astype("Float64")
    if bad_index:
        all_bad = {i for idx in bad_index.values() for i in idx}
        if len(all_bad) <= max_quarantine_fraction * rows:
            results.loc[list(bad_index), "quarantined"] = True
        else:
            for pos in bad_index:
                results.at[pos, "exception"] = (
                    f"quarantine would set aside {len(all_bad)} of {rows} rows, above the allowed "
                    f"{max_quarantine_fraction:.0%}")
            bad_index = {}
    failed = results[(~results["success"]) & (results["severity"] == "error") & (~results["quarantined"])]
    # A missing column fails every rule on it; name it once, by the rule that says so.
    failed = failed[~(failed["column"].isin(missing_cols) & (failed["expectation"] != "expect_column_to_exist"))]
    errors = [(None if pd.isna(r["column"]) else r["column"], r["expectation"], _describe(r))
              for r in failed.to_dict("records")]
    return Judgement(results, bad_index, errors)


def set_aside(df: pd.DataFrame, judgement: Judgement) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(valid, quarantined)``: the rows of ``df`` (a table or one batch of it) that go on, and those the
    judgement sets aside, each with ``_rule`` and ``_column`` (once per rule that caught it)."""
    parts = []
    for pos, labels in judgement.set_aside.items():
        part = df[df.index.isin(labels)].copy()
        part["_rule"], part["_column"] = judgement.results.at[pos, "expectation"], judgement.results.at[pos, "column"]
        parts.append(part)
    if not parts:
        return df, pd.DataFrame(columns=[*df.columns, "_rule", "_column"])
    bad = pd.concat(parts)
    return df.drop(index=bad.index.unique()), bad


def judge_table(df: pd.DataFrame, schema: DatasetSchema, quarantine: bool, max_quarantine_fraction: float,
                engine: ValidationEngine) -> Judgement:
    """:func:`judge` of the suite's outcomes on a whole table (see :func:`validate_data`)."""
    return judge(schema, _outcomes(df, schema, quarantine, engine), _finite(df, schema, quarantine), list(df.columns),
                 len(df), quarantine, max_quarantine_fraction)


def validate_data(df: pd.DataFrame, schema: DatasetSchema, quarantine: bool = False,
                  max_quarantine_fraction: float = 0.05, engine: ValidationEngine = "arrow") -> ValidationOutcome:
    """Run the schema's GX suite on ``df``: the pure part of the validate stage.

    Args:
        df: Raw rows after ingest.
        schema: The dataset's schema and suite.
        quarantine: Set aside rows that break row-level error rules instead of failing.
        max_quarantine_fraction: Above this share of quarantined rows the run fails anyway.
        engine: ``arrow``: the expectation types ``trainflow.expectations`` knows are computed with
            pyarrow.compute (GX's results, tested against GX), the others by GX; ``gx``: all by GX.

    Returns:
        The outcome; the caller decides what to write and whether to raise on ``errors``.
    """
    judgement = judge_table(df, schema, quarantine, max_quarantine_fraction, engine)
    keep, quarantined = set_aside(df, judgement)
    return ValidationOutcome(results=judgement.results, valid=keep, quarantine=quarantined, errors=judgement.errors)


BatchOutcome = tuple[dict[int, Outcome], dict[str, Outcome], int, list[str]]


def _batch_outcome(df: pd.DataFrame, schema: DatasetSchema, quarantine: bool) -> BatchOutcome | None:
    """One batch's outcomes (suite, finite rule), rows and columns; None when a rule needs GX."""
    done, left = run_compiled(df, [dict(e) for e in schema.expectations], quarantine)
    return None if left else (done, _finite(df, schema, quarantine), len(df), list(df.columns))


def _merged(schema: DatasetSchema, batches: list[BatchOutcome | None], quarantine: bool,
            max_quarantine_fraction: float) -> Judgement | None:
    """:func:`judge` of the batches' outcomes merged (``trainflow.expectations.merge_outcomes``), in row order."""
    if not batches or any(b is None for b in batches):
        return None
    merged = merge_outcomes([dict(e) for e in schema.expectations], [b[0] for b in batches])
    finite = {c: merge(FINITE_RULE, {}, [b[1][c] for b in batches]) for c in batches[0][1]}
    return judge(schema, [merged[i] for i in range(len(schema.expectations))], finite, batches[0][3],
                 sum(b[2] for b in batches), quarantine, max_quarantine_fraction)


def judge_batches(batches: Iterable[pd.DataFrame], schema: DatasetSchema, quarantine: bool = False,
                  max_quarantine_fraction: float = 0.05) -> Judgement | None:
    """:func:`judge` of a table read in batches (in row order), the suite computed batch by batch in Arrow and
    merged (``trainflow.expectations.merge_outcomes``): the results :func:`validate_data` gives on the whole
    table, holding one batch at a time. None when a rule needs Great Expectations (it runs on whole tables).

    The batches must have the whole table's dtypes (``ArtifactStore.read_table_batches`` gives them so).
    """
    outcomes = []
    for df in batches:
        outcomes.append(_batch_outcome(df, schema, quarantine))
        if outcomes[-1] is None:
            return None
    return _merged(schema, outcomes, quarantine, max_quarantine_fraction)


Share = tuple[int, dict, int]  # a part's number, the part, its first row in the table: ArtifactStore.shares


def _judge_part(share: Share, store: ArtifactStore, ref: ArtifactRef, schema: DatasetSchema, quarantine: bool,
                types: dict) -> BatchOutcome | None:
    """On a Dask worker: one part's outcomes."""
    return _batch_outcome(store.read_share(ref, share, types), schema, quarantine)


def _set_aside_part(share: Share, store: ArtifactStore, ref: ArtifactRef, judgement: Judgement, folders: list[str],
                    types: dict) -> list[dict | None]:
    """On a Dask worker: one part's valid rows and rows set aside, written as parts of ``valid`` and
    ``quarantine`` (none of the second when the part has none)."""
    keep, bad = set_aside(store.read_share(ref, share, types), judgement)
    return [store.write_part(folders[0], share[0], keep), store.write_part(folders[1], share[0], bad) if len(bad)
            else None]


def verdict(results: pd.DataFrame, quarantined: int = 0) -> str:
    """One line on a validation: passed or failed, rule counts, quarantined rows, the first failed rules."""
    failed = results[~results["success"].astype(bool)]
    errors = int(((failed["severity"] == "error") & ~failed["quarantined"].astype(bool)).sum())
    names = [f"{c}: {rule}" if isinstance(c, str) else rule for c, rule in zip(failed["column"], failed["expectation"])]
    shown = "; failed " + ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "") if names else ""
    return (f"{'FAILED' if errors else 'passed'}: {len(results) - len(failed)}/{len(results)} rules; failed "
            f"{errors} error, {len(failed) - errors} warning or quarantined; {quarantined} rows quarantined{shown}")


@task(name="validate")
def validate(store_root: str, run_id: str, schema: DatasetSchema, raw: ArtifactRef, quarantine: bool = False,
             max_quarantine_fraction: float = 0.05, engine: ValidationEngine = "arrow",
             batch_rows: int | None = None, compute: ComputeSettings | None = None) -> ArtifactRef:
    """Prefect task: validate ``raw`` and write ``validate/validation_results`` (and ``quarantine``, ``valid``).

    Above ``batch_rows`` rows, with the Arrow engine and every rule of the suite computed in Arrow, the table is
    read batch by batch (twice when rows are set aside: to judge, then to write the parts): memory is bounded
    by a batch and the results are the whole table's. With the Dask engine each part of ``raw`` is judged (and
    its rows set aside) on a worker, and the parts' outcomes merged here.

    Returns:
        Reference to the rows that go on (``raw`` itself when nothing was quarantined).

    Raises:
        ValidationFailed: An error-severity expectation failed; the report is written first.
    """
    store = ArtifactStore(store_root)
    judgement = None
    dask = on_dask(compute) and engine == "arrow"
    if dask:
        shares, types = store.shares(raw), store.pandas_types(raw)
        judgement = _merged(schema, map_parts(compute.dask_address, _judge_part, shares, store, raw, schema, quarantine,
                                              types), quarantine, max_quarantine_fraction)
    elif engine == "arrow" and batch_rows and (raw.rows or 0) > batch_rows:
        judgement = judge_batches(store.read_table_batches(raw, batch_rows), schema, quarantine,
                                  max_quarantine_fraction)
        tables = functools.partial(store.read_table_batches, raw, batch_rows)
    if judgement is None:
        dask, df = False, store.read_table(raw)
        judgement = judge_table(df, schema, quarantine, max_quarantine_fraction, engine)
        tables = functools.partial(iter, [df])
    report = store.put(run_id, VALIDATION_RESULTS, judgement.results)
    run_logger().info("validate: %s", verdict(judgement.results, sum(map(len, judgement.set_aside.values()))))
    if judgement.errors:
        raise ValidationFailed(schema.name, judgement.errors, store.uri(report))
    if not judgement.set_aside:
        return raw
    if dask:
        with store.open(run_id, VALID, parts=True) as valid, \
                store.open(run_id, QUARANTINE, parts=True) as quarantined:
            written = map_parts(compute.dask_address, _set_aside_part, shares, store, raw, judgement,
                                [valid.folder, quarantined.folder], types)
            quarantined.close([bad for _, bad in written if bad is not None])
            return valid.close([keep for keep, _ in written])
    with store.open(run_id, VALID) as valid, \
            store.open(run_id, QUARANTINE) as quarantined:
        for table in tables():
            keep, bad = set_aside(table, judgement)
            valid.write(keep)
            if len(bad):
                quarantined.write(bad)
        if quarantined.rows:
            quarantined.close()
        return valid.close()
