"""A suite's expectations computed with pyarrow.compute, with Great Expectations' results.

The suites stay Great Expectations JSON and GX stays the reference: ``run_compiled`` computes the expectation
types listed in ``COMPILED`` on columns whose types it knows (numpy numbers and booleans, pandas strings) and
gives, for each, what GX's pandas engine gives (success, unexpected count and percent, the first unexpected
values in row order, the unexpected rows' index labels, the observed value); ``tests/data/test_expectations.py``
holds it to that, type by type, against GX on the same frames. An expectation it does not know, or a column type
it does not compute (object columns of mixed values, nullable integers, dates), is handed back for GX to run.

GX on pandas filters the whole frame several times per column rule and builds a metric graph per batch; these
are one or two Arrow kernels per rule over one column, with no import of GX and nothing built per batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
SAMPLE_SIZE = 10  # unexpected values kept per rule (GX's partial_unexpected_count, as the validate stage asks)


@dataclass
class Outcome:
    """One expectation's result, shaped as GX's (``result`` holds GX's keys)."""

    success: bool
    result: dict[str, Any] = field(default_factory=dict)
    exception: str | None = None
    parts: dict[str, Any] = field(default_factory=dict)  # what merging batches needs: see merge_outcomes


def _arrow(column: pd.Series) -> Any:
    """The column as an Arrow array, NaN and NA as null (pandas' semantics, as GX counts missing values)."""
    import pyarrow as pa

    return pa.array(column, from_pandas=True)


def _kind(column: pd.Series) -> str | None:
    """``number``, ``bool`` or ``string`` for the column types computed here; None for the others (GX runs
    their rules)."""
    dtype = column.dtype
    if isinstance(dtype, pd.StringDtype):
        return "string"
    if isinstance(dtype, np.dtype):
        if dtype.kind == "b":
            return "bool"
        if dtype.kind in "iuf":
            return "number"
    return None


def _map_success(count: int, domain: int, mostly: float | None) -> bool:
    """GX's verdict on a column map rule from its unexpected count among ``domain`` values."""
    if mostly is None:
        return count == 0
    return domain == 0 or (domain - count) / domain >= mostly


def map_outcome(df: pd.DataFrame, arr: Any, bad: Any, complete: bool, of_all: bool = False,
                mostly: float | None = None) -> Outcome:
    """GX's result of a column map expectation from its unexpected mask (null where the value is missing:
    missing values are outside the rule's domain unless ``of_all``, the not-null rule's case)."""
    import pyarrow.compute as pc

    bad = pc.fill_null(bad, False)
    if not of_all:
        bad = pc.and_(bad, pc.is_valid(arr))
    positions = np.flatnonzero(bad.to_numpy(zero_copy_only=False))
    count = len(positions)
    total = len(arr)
    domain = total if of_all else total - arr.null_count
    percent = 100.0 * count / domain if domain else None
    sample = arr.take(positions[:SAMPLE_SIZE]).to_pylist()
    result = {"element_count": total, "unexpected_count": count, "unexpected_percent": percent,
              "partial_unexpected_list": sample}
    if complete:
        result["unexpected_index_list"] = df.index[positions].tolist()
    return Outcome(_map_success(count, domain, mostly), result, parts={"domain": domain})


def _bounds(arr: Any, low: Any, high: Any, strict_low: bool, strict_high: bool) -> Any:
    """True where a value is outside ``[low, high]`` (open ends when strict; None: no bound)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_integer(arr.type):
        # Arrow compares integers with a float by casting the column, refusing values beyond 2**53, and a
        # float bound on an integer column means its integer neighbour; a bound beyond int64 compares as float.
        low = _integer_bound(low, math.floor if strict_low else math.ceil)
        high = _integer_bound(high, math.ceil if strict_high else math.floor)
        if any(isinstance(b, float) for b in (low, high)):
            arr = arr.cast(pa.float64(), safe=False)
    bad = pa.array(np.zeros(len(arr), dtype=bool))
    if low is not None:
        bad = pc.or_(bad, (pc.less_equal if strict_low else pc.less)(arr, low))
    if high is not None:
        bad = pc.or_(bad, (pc.greater_equal if strict_high else pc.greater)(arr, high))
    return bad


def _integer_bound(bound: Any, to_int: Any) -> Any:
    """``bound`` as an int64 for comparing integers (rounded by ``to_int``), a float where none fits."""
    if bound is None:
        return None
    if isinstance(bound, float):
        if not math.isfinite(bound):
            return bound
        bound = to_int(bound)
    return bound if INT64_MIN <= bound <= INT64_MAX else float(bound)


def _between(df: pd.DataFrame, kw: dict, complete: bool) -> Outcome | None:
    column = df[kw["column"]]
    if _kind(column) != "number" or not all(isinstance(kw.get(k), (int, float, type(None)))
                                            for k in ("min_value", "max_value")):
        return None
    arr = _arrow(column)
    bad = _bounds(arr, kw.get("min_value"), kw.get("max_value"), bool(kw.get("strict_min")),
                  bool(kw.get("strict_max")))
    return map_outcome(df, arr, bad, complete, mostly=kw.get("mostly"))


def _not_null(df: pd.DataFrame, kw: dict, complete: bool) -> Outcome | None:
    column = df[kw["column"]]
    if _kind(column) is None:
        return None
    import pyarrow.compute as pc

    arr = _arrow(column)
    return map_outcome(df, arr, pc.is_null(arr), complete, of_all=True, mostly=kw.get("mostly"))


def _in_set(df: pd.DataFrame, kw: dict, complete: bool) -> Outcome | None:
    import pyarrow as pa
    import pyarrow.compute as pc

    column = df[kw["column"]]
    kind = _kind(column)
    values = list(kw.get("value_set") or [])
    wanted = {"string": str, "number": (int, float), "bool": bool}.get(kind or "")
    if wanted is None or not all(isinstance(v, wanted) and not (kind == "number" and isinstance(v, bool))
                                 for v in values):
        return None
    arr = _arrow(column)
    try:
        value_set = pa.array(values, type=arr.type) if values else pa.array([], type=arr.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None  # e.g. 2.5 in the set of an integer column: GX's comparison decides
    if value_set.null_count or (kind == "number" and any(float(a) != float(b) for a, b in
                                                          zip(values, value_set.to_pylist()))):
        return None
    return map_outcome(df, arr, pc.invert(pc.is_in(arr, value_set=value_set)), complete, mostly=kw.get("mostly"))


def _increasing(df: pd.DataFrame, kw: dict, complete: bool) -> Outcome | None:
    """GX on pandas: the difference from the previous row (missing values included, as NaN), a row whose
    difference is missing counts as increasing."""
    column = df[kw["column"]]
    if _kind(column) != "number":
        return None
    import pyarrow as pa

    arr = _arrow(column)
    values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    diff = np.empty(len(values))
    diff[:1] = np.nan
    diff[1:] = values[1:] - values[:-1]
    with np.errstate(invalid="ignore"):
        bad = (diff <= 0) if kw.get("strictly") else (diff < 0)
    outcome = map_outcome(df, arr, pa.array(bad), complete, mostly=kw.get("mostly"))
    if len(values):  # a batch's first row is compared with the previous batch's last when batches are merged
        outcome.parts.update(first=float(values[0]), last=float(values[-1]), first_value=arr[0].as_py(),
                             first_label=df.index[0])
    return outcome


def _value_lengths(df: pd.DataFrame, kw: dict, complete: bool) -> Outcome | None:
    column = df[kw["column"]]
    if _kind(column) != "string" or not all(isinstance(kw.get(k), (int, type(None)))
                                            for k in ("min_value", "max_value")):
        return None
    import pyarrow.compute as pc

    arr = _arrow(column)
    bad = _bounds(pc.utf8_length(arr), kw.get("min_value"), kw.get("max_value"), bool(kw.get("strict_min")),
                  bool(kw.get("strict_max")))
    return map_outcome(df, arr, bad, complete, mostly=kw.get("mostly"))


def _observed_between(observed: float, kw: dict) -> bool:
    low, high = kw.get("min_value"), kw.get("max_value")
    above = low is None or (observed > low if kw.get("strict_min") else observed >= low)
    below = high is None or (observed < high if kw.get("strict_max") else observed <= high)
    return bool(above and below)


def _unique_count(df: pd.DataFrame, kw: dict, complete: bool) -> Outcome | None:  # noqa: ARG001
    column = df[kw["column"]]
    if _kind(column) is None:
        return None
    import pyarrow.compute as pc

    distinct = pc.unique(_arrow(column).drop_null())
    return Outcome(_observed_between(len(distinct), kw), {"observed_value": len(distinct)},
                   parts={"distinct": distinct})


def _row_count(df: pd.DataFrame, kw: dict, complete: bool) -> Outcome | None:  # noqa: ARG001
    return Outcome(_observed_between(len(df), kw), {"observed_value": len(df)})


def _comparison_types(name: str) -> list[Any]:
    """What GX's pandas engine compares a column's dtype with for one name of a type list (numpy's dtype and
    scalar type, a pandas extension dtype of that name, Python's own type for int, float, str, ...)."""
    out: list[Any] = []
    try:
        out += [np.dtype(name).type, np.dtype(name)]
    except TypeError:
        pd_type = getattr(pd, name, None)
        if isinstance(pd_type, type):
            out.append(pd_type)
            try:
                instance = pd_type()
            except TypeError:
                instance = None
            if isinstance(instance, pd.api.extensions.ExtensionDtype):
                out.append(instance)
        dtypes_type = getattr(pd.core.dtypes.dtypes, name, None)
        if isinstance(dtypes_type, type):
            out.append(dtypes_type)
    native = {"none": (type(None),), "bool": (bool,), "int": (int,), "long": (int,), "float": (float,),
              "bytes": (bytes,), "complex": (complex,), "str": (str,), "string_types": (str,), "list": (list,),
              "dict": (dict,)}.get(name.lower())
    out += list(native or ())
    return out


def _in_type_list(df: pd.DataFrame, kw: dict, complete: bool) -> Outcome | None:  # noqa: ARG001
    """A column-level comparison of the dtype (GX checks each value's type only for object columns, which it
    runs itself). String columns are compared as ``pd.StringDtype()``, the dtype the validate stage hands GX."""
    column = df[kw["column"]]
    kind = _kind(column)
    if kind is None:
        return None
    dtype = pd.StringDtype() if kind == "string" else column.dtype
    names = kw.get("type_list")
    success = True if names is None else any(dtype == t for name in names for t in _comparison_types(str(name)))
    return Outcome(bool(success), {"observed_value": dtype.type.__name__})


def _exists(df: pd.DataFrame, kw: dict, complete: bool) -> Outcome | None:  # noqa: ARG001
    return Outcome(kw["column"] in df.columns)


COMPILED: dict[str, Callable[[pd.DataFrame, dict, bool], Outcome | None]] = {
    "expect_column_to_exist": _exists,
    "expect_column_values_to_not_be_null": _not_null,
    "expect_column_values_to_be_between": _between,
    "expect_column_values_to_be_in_set": _in_set,
    "expect_column_values_to_be_in_type_list": _in_type_list,
    "expect_column_values_to_be_increasing": _increasing,
    "expect_column_value_lengths_to_be_between": _value_lengths,
    "expect_column_unique_value_count_to_be_between": _unique_count,
    "expect_table_row_count_to_be_between": _row_count,
}


def run_compiled(df: pd.DataFrame, expectations: list[dict], complete: bool) -> tuple[dict[int, Outcome], list[int]]:
    """The outcome of each expectation this module computes, by its position in ``expectations``, and the
    positions of those left for GX (an unknown type, a column type not computed here, or an argument it
    would compare differently).

    Args:
        df: The rows, as the validate stage has them.
        expectations: The suite's expectations (GX's JSON: ``type``, ``kwargs``).
        complete: Also list every unexpected row's index label (``unexpected_index_list``), for quarantine.
    """
    done: dict[int, Outcome] = {}
    left: list[int] = []
    for i, exp in enumerate(expectations):
        kind, kw = exp["type"], dict(exp.get("kwargs") or {})
        compute = COMPILED.get(kind)
        column = kw.get("column")
        if compute is None:
            left.append(i)
        elif column is not None and column not in df.columns and kind != "expect_column_to_exist":
            done[i] = Outcome(False, {}, f"column '{column}' is missing")
        else:
            outcome = compute(df, kw, complete)
            if outcome is None:
                left.append(i)
            else:
                done[i] = outcome
    return done, left


def _merge_map(kind: str, kw: dict, outcomes: list[Outcome]) -> Outcome:
    count = sum(o.result["unexpected_count"] for o in outcomes)
    domain = sum(o.parts["domain"] for o in outcomes)
    sample: list = []
    labels: list | None = [] if all("unexpected_index_list" in o.result for o in outcomes) else None
    last = None
    for o in outcomes:
        first_bad: list = []
        if kind == "expect_column_values_to_be_increasing" and "first" in o.parts:
            if last is not None and not np.isnan(last) and not np.isnan(o.parts["first"]) and (
                    o.parts["first"] <= last if kw.get("strictly") else o.parts["first"] < last):
                count += 1
                first_bad = [o.parts["first_value"]]
                if labels is not None:
                    labels.append(o.parts["first_label"])
            last = o.parts["last"]
        if len(sample) < SAMPLE_SIZE:
            sample += first_bad + o.result["partial_unexpected_list"]
        if labels is not None:
            labels += o.result["unexpected_index_list"]
    result = {"element_count": sum(o.result["element_count"] for o in outcomes), "unexpected_count": count,
              "unexpected_percent": 100.0 * count / domain if domain else None,
              "partial_unexpected_list": sample[:SAMPLE_SIZE]}
    if labels is not None:
        result["unexpected_index_list"] = labels
    return Outcome(_map_success(count, domain, kw.get("mostly")), result, parts={"domain": domain})


def merge(kind: str, kw: dict, outcomes: list[Outcome]) -> Outcome:
    """One expectation's outcome over consecutive batches of a table, in row order, from each batch's outcome
    (as :func:`run_compiled` gives it): what the expectation gives on the whole table. The batches must hold
    the same columns in the same dtypes (``ArtifactStore.read_table_batches`` converts them so)."""
    failed = next((o for o in outcomes if o.exception), None)
    if failed is not None or len(outcomes) == 1:
        return failed or outcomes[0]
    if "unexpected_count" in outcomes[0].result:
        return _merge_map(kind, kw, outcomes)
    if kind == "expect_table_row_count_to_be_between":
        rows = sum(o.result["observed_value"] for o in outcomes)
        return Outcome(_observed_between(rows, kw), {"observed_value": rows})
    if kind == "expect_column_unique_value_count_to_be_between":
        import pyarrow as pa
        import pyarrow.compute as pc

        distinct = pc.unique(pa.chunked_array([o.parts["distinct"] for o in outcomes]))
        return Outcome(_observed_between(len(distinct), kw), {"observed_value": len(distinct)},
                       parts={"distinct": distinct})
    return Outcome(all(o.success for o in outcomes), outcomes[0].result)  # column and type rules: every batch's


def merge_outcomes(expectations: list[dict], runs: list[dict[int, Outcome]]) -> dict[int, Outcome]:
    """:func:`merge` for each expectation of the batches' outcomes ``runs`` (in row order), by position."""
    return {i: merge(exp["type"], dict(exp.get("kwargs") or {}), [run[i] for run in runs])
            for i, exp in enumerate(expectations) if all(i in run for run in runs)}
