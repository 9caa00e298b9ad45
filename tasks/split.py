"""Split: train / validation / test, as the schema says.

Stratified on the label for classification, time-ordered when the schema names a time column
(the latest rows are the test rows), group-aware when it names a group column (no group straddles
two splits), predefined when the schema names a split column (rows tagged ``test`` are the test rows).
A time series is first cut into windows of past values (``make_windows``), then split in time order.
Seeded; the original row index is kept so any row can be traced back to the raw data, and rows keep the data's
order inside each split (time order for a time split).
"""

from __future__ import annotations

from contextlib import ExitStack

import numpy as np
import pandas as pd
import pyarrow as pa
from prefect import task
from pydantic import Field, model_validator
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from trainflow.cache import CONTENT
from trainflow.catalog import ArtifactRef, ArtifactStore, row_index, with_row_index
from trainflow.catalog.artifacts import SPLIT, SPLIT_SUMMARY
from trainflow.cluster import ComputeSettings, map_parts, on_dask
from trainflow.errors import DataError
from trainflow.forms import FormModel
from trainflow.progress import run_logger
from trainflow.schema import DatasetSchema

SPLITS = ("train", "validation", "test")


class SplitSettings(FormModel):
    """How to split the rows."""

    validation_fraction: float = Field(0.15, gt=0, lt=0.5, description="share of rows for validation")
    test_fraction: float = Field(0.15, gt=0, lt=0.5, description="share of rows for the test split")
    strategy: str = Field("auto", description="auto (from the schema), stratified, random, time, group, or "
                                              "predefined (the schema's split column marks the test rows)")
    train_fraction: float = Field(1.0, gt=0, le=1, description="keep this share of the training rows (stratified "
                                                              "sample), e.g. to fine-tune on few labels")

    @model_validator(mode="after")
    def _fractions(self) -> SplitSettings:
        if self.validation_fraction + self.test_fraction >= 0.8:
            raise ValueError("validation_fraction + test_fraction must leave at least 20% for training")
        return self


def _strategy(schema: DatasetSchema, settings: SplitSettings) -> str:
    if settings.strategy != "auto":
        return settings.strategy
    if schema.role_column("split"):
        return "predefined"
    if schema.role_column("time"):
        return "time"
    if schema.role_column("group"):
        return "group"
    return "stratified" if schema.is_classification else "random"


Rows = pd.DataFrame | pa.Table


def _column(rows: Rows, name: str) -> pd.Series:
    return rows[name].to_pandas() if isinstance(rows, pa.Table) else rows[name].reset_index(drop=True)


def _two_way(df: Rows, pos: np.ndarray, frac: float, strategy: str, schema: DatasetSchema,
             seed: int, strata: np.ndarray | None,
             shuffled: tuple[bool, bool] = (True, True)) -> tuple[np.ndarray, np.ndarray]:
    """Split row positions ``pos`` in two; rows are taken from ``df`` once, at the end. ``shuffled``: which of
    the two parts the caller needs in scikit-learn's shuffled order (a stratified split can skip the others)."""
    if strategy == "time":
        order = pos[np.argsort(_column(df, schema.role_column("time")).to_numpy()[pos], kind="stable")]
        cut = int(round(len(order) * (1 - frac)))
        return order[:cut], order[cut:]
    if strategy == "group":
        gss = GroupShuffleSplit(n_splits=1, test_size=frac, random_state=seed)
        a, b = next(gss.split(pos, groups=_column(df, schema.role_column("group")).to_numpy()[pos]))
        return pos[a], pos[b]
    if strategy == "stratified":
        return _stratified_two_way(pos, frac, seed, strata[pos], shuffled)
    return train_test_split(pos, test_size=frac, random_state=seed)


def _stratified_two_way(pos: np.ndarray, frac: float, seed: int, codes: np.ndarray,
                        shuffled: tuple[bool, bool] = (True, True)) -> tuple[np.ndarray, np.ndarray]:
    """``train_test_split(pos, test_size=frac, random_state=seed, stratify=codes)``, the same positions in the
    same order (tested), for class codes 0..k-1: scikit-learn's StratifiedShuffleSplit sorts the labels twice
    and moves every position through a Python list (most of the split's time on millions of rows); here a pass
    per class.
    Its own steps (``_validate_shuffle_split``, ``_approximate_mode``, one ``RandomState(seed)`` drawn from in
    the same order) decide; where it would refuse (a class of one row, fewer rows than classes) it is called.

    A part not in ``shuffled`` comes unshuffled, class by class (the same positions: its shuffle is the last
    draw of its part, so skipping it changes no other): its order is not used when the rows are sorted after."""
    from sklearn.model_selection._split import _validate_shuffle_split
    from sklearn.utils.extmath import _approximate_mode

    n_train, n_test = _validate_shuffle_split(len(pos), frac, None, default_test_size=0.25)
    counts = np.bincount(codes)
    classes = np.flatnonzero(counts)  # the classes present, in np.unique's (sorted) order
    counts = counts[classes]
    if counts.min() < 2 or min(n_train, n_test) < len(classes):
        return train_test_split(pos, test_size=frac, random_state=seed, stratify=codes)
    rng = np.random.RandomState(seed)
    n_i = _approximate_mode(counts, n_train, rng)
    t_i = _approximate_mode(counts - n_i, n_test, rng)
    train, test = [], []
    for i, c in enumerate(classes):
        members = np.flatnonzero(codes == c).take(rng.permutation(counts[i]), mode="clip")
        train.append(members[:n_i[i]])
        test.append(members[n_i[i]:n_i[i] + t_i[i]])
    parts = (np.concatenate(train), np.concatenate(test))
    return tuple(pos[rng.permutation(part) if shuffle else part] for part, shuffle in zip(parts, shuffled))


def make_windows(df: pd.DataFrame, schema: DatasetSchema) -> pd.DataFrame:
    """A time series as supervised rows: each step's ``window`` past values (``lag_k``) and its value.

    The first ``window`` steps have no full history and are dropped; rows stay in time order.
    """
    s = schema.series
    ordered = df.sort_values(s.time, kind="stable")
    values = pd.to_numeric(ordered[s.value]).astype(float)
    out = pd.DataFrame({s.time: pd.to_numeric(ordered[s.time]).astype(float)}, index=ordered.index)
    for k in range(s.window, 0, -1):
        out[s.lag(k)] = values.shift(k)
    out[s.value] = values
    return out.iloc[s.window:]


def _take(rows: Rows, positions: np.ndarray, in_order: bool) -> Rows:
    """The rows at ``positions``, with their original index. Positions in order (every strategy but time) are
    selected with a mask: in Arrow a filter, several times faster than a take of the same rows."""
    if isinstance(rows, pd.DataFrame):
        return rows.iloc[positions]
    data, index = row_index(rows)
    if in_order:
        keep = np.zeros(len(rows), dtype=bool)
        keep[positions] = True
        return _where(data, index, keep)
    return with_row_index(data.take(positions), index.take(positions))


def _where(rows: pa.Table, index: pa.ChunkedArray, keep: np.ndarray) -> pa.Table:
    """The rows where ``keep`` holds, with their index labels (see ``catalog.with_row_index``)."""
    return with_row_index(rows.filter(keep), index.filter(keep))


def split_positions(df: Rows, schema: DatasetSchema, settings: SplitSettings, seed: int,
                    sort: bool = True) -> tuple[dict[str, np.ndarray], pd.DataFrame, bool]:
    """Which rows go to train, validation and test, and the summary: the decisions of the split stage, made on
    the columns they need (label, time, group, split) alone.

    Args:
        sort: Sort each part's positions when ``in_order`` (False: a caller that only marks each row's part
            need not pay for it).

    Returns:
        ``(positions, summary, in_order)``: each part's row positions (in the data's order when ``in_order``
        and ``sort``; in time order for a time split, when ``in_order`` is False; else in no order to rely on),
        and one summary row per split and class.

    Raises:
        DataError: Too few rows, or a class too small to stratify.
    """
    strategy = _strategy(schema, settings)
    if len(df) < 20:
        raise DataError(schema.name, f"need at least 20 rows to split, found {len(df)}", rule="min_rows")
    labels = _column(df, schema.label)
    asked_stratified = strategy == "stratified"
    predefined = strategy == "predefined"  # the split column marks the test rows; the rest is split as usual
    if predefined:
        strategy = "stratified" if schema.is_classification else "random"
    codes, classes = (pd.factorize(labels) if schema.is_classification or strategy == "stratified"
                      else (None, None))  # codes -1: a missing label
    if asked_stratified:  # counted on the codes it factorizes anyway, not by a second pass over the labels
        counts = np.bincount(codes[codes >= 0], minlength=len(classes))
        if counts.min() < 3:
            raise DataError(schema.name, f"class {classes[counts.argmin()]!r} has {counts.min()} rows; stratified "
                                         "splitting needs at least 3 per class", column=schema.label,
                            rule="min_class_rows")
    strata = codes if strategy == "stratified" else None
    if predefined:
        tags = _column(df, schema.role_column("split")).astype("str").to_numpy()
        rest, test = np.flatnonzero(tags != "test"), np.flatnonzero(tags == "test")
        if len(test) == 0:
            raise DataError(schema.name, "no row is tagged 'test' in the split column", column=schema.role_column(
                "split"), rule="predefined_split")
        val_share = settings.validation_fraction
    else:  # the rest's order decides the next split; no other order of a non-time split is used (sorted below,
        # or only marked), so a stratified split need not shuffle those parts
        rest, test = _two_way(df, np.arange(len(df)), settings.test_fraction, strategy, schema, seed, strata,
                              shuffled=(True, False))
        val_share = settings.validation_fraction / (1 - settings.test_fraction)
    subsample = settings.train_fraction < 1
    train, validation = _two_way(df, rest, val_share, strategy, schema, seed + 1, strata,
                                 shuffled=(subsample, False))
    if subsample:
        train, _ = _two_way(df, train, 1 - settings.train_fraction, strategy if strategy != "time" else "random",
                            schema, seed + 2, strata, shuffled=(False, False))
    if strategy != "time" and sort:  # rows keep the data's order inside each split (a time split keeps time order):
        # sorted positions read each column front to back; shuffled ones jump about in memory
        train, validation, test = np.sort(train), np.sort(validation), np.sort(test)
    positions = {"train": train, "validation": validation, "test": test}
    rows = []
    order = pd.Index(classes).argsort() if schema.is_classification else None  # sorted, as sort_index does
    for name, pos in positions.items():
        base = {"split": name, "strategy": strategy, "rows": len(pos), "fraction": len(pos) / len(df)}
        if schema.is_classification:  # counted on the codes: taking the text labels of every part is not needed
            part = codes[pos]
            counts = np.bincount(part[part >= 0], minlength=len(classes))
            rows += [{**base, "class": str(classes[k]), "class_rows": int(counts[k]),
                      "class_share": counts[k] / len(pos)} for k in order if counts[k]]
        else:
            y = pd.to_numeric(labels.iloc[pos])
            rows.append({**base, "class": None, "class_rows": None, "class_share": None,
                         "label_mean": float(np.mean(y)), "label_std": float(np.std(y))})
    return positions, pd.DataFrame(rows), strategy != "time"


def split_data(df: Rows, schema: DatasetSchema, settings: SplitSettings,
               seed: int) -> tuple[dict[str, Rows], pd.DataFrame]:
    """Split rows into train, validation and test: the pure part of the split stage.

    Args:
        df: Validated rows, a DataFrame or an Arrow table (as the stage reads them: no pandas round trip; a
            time series is made into windows in pandas).
        schema: Gives the label and the time or group column.
        settings: Fractions and strategy.
        seed: Random seed.

    Returns:
        ``(splits, summary)``: the three parts (of ``df``'s kind, each row with its original index), and one
        summary row per split and class.

    Raises:
        DataError: Too few rows, or a class too small to stratify.
    """
    if schema.series is not None:
        df, schema = make_windows(df.to_pandas() if isinstance(df, pa.Table) else df, schema), schema.model_view()
    positions, summary, in_order = split_positions(df, schema, settings, seed)
    return {name: _take(df, pos, in_order) for name, pos in positions.items()}, summary


def _split_of_rows(store: ArtifactStore, data: ArtifactRef, schema: DatasetSchema, settings: SplitSettings,
                   seed: int) -> tuple[np.ndarray, pd.DataFrame] | None:
    """Which split each row goes to (0, 1, 2: train, validation, test; -1: none), decided from the columns that
    decide it, and the summary; None where rows cannot stay in the data's order (a time series or time split)."""
    if schema.series is not None:
        return None
    roles = [schema.label, *(schema.role_column(r) for r in ("time", "group", "split"))]
    keys = store.read_arrow(data, columns=list(dict.fromkeys(c for c in roles if c)))
    positions, summary, in_order = split_positions(keys, schema, settings, seed, sort=False)
    if not in_order:
        return None
    part_of = np.full(len(keys), -1, dtype=np.int8)
    for k, pos in enumerate(positions.values()):
        part_of[pos] = k
    return part_of, summary


def _split_batches(store: ArtifactStore, run_id: str, data: ArtifactRef, schema: DatasetSchema,
                   settings: SplitSettings, seed: int, batch_rows: int) -> dict[str, ArtifactRef] | None:
    """The split stage over ``batch_rows`` rows at a time: positions from the columns that decide them, then one
    pass over the data writing each batch's rows to their part. None where it cannot stream (a time series,
    or a time split, whose parts are in time order)."""
    decided = _split_of_rows(store, data, schema, settings, seed)
    if decided is None:
        return None
    part_of, summary = decided
    with ExitStack() as stack:
        writers = [stack.enter_context(store.open(run_id, SPLIT.of(split=name))) for name in SPLITS]
        offset = 0
        for batch in store.read_arrow_batches(data, batch_rows):
            rows, index = row_index(batch, offset)
            parts = part_of[offset:offset + len(batch)]
            for k, writer in enumerate(writers):
                writer.write(_where(rows, index, parts == k))
            offset += len(batch)
        refs = {name: writer.close() for name, writer in zip(SPLITS, writers)}
    store.put(run_id, SPLIT_SUMMARY, summary)
    return refs


def _split_part(item: tuple[int, dict, int, np.ndarray], store: ArtifactStore, data: ArtifactRef,
                folders: list[str]) -> list[dict]:
    """On a Dask worker: one part of the data, its rows written to their split's dataset (``part_of``: each
    row's split)."""
    number, part, offset, part_of = item
    rows, index = row_index(store.read_arrow(data, parts=[part]), offset)
    return [store.write_part(folder, number, _where(rows, index, part_of == k)) for k, folder in enumerate(folders)]


def _split_dask(store: ArtifactStore, run_id: str, data: ArtifactRef, schema: DatasetSchema, settings: SplitSettings,
                seed: int, compute: ComputeSettings) -> dict[str, ArtifactRef] | None:
    """The split stage on a Dask cluster: rows decided here (from the deciding columns), each part of the data
    written to the three split datasets by a worker. None where it cannot (see :func:`_split_of_rows`)."""
    decided = _split_of_rows(store, data, schema, settings, seed)
    if decided is None:
        return None
    part_of, summary = decided
    items = [(number, part, offset, part_of[offset:offset + part["rows"]])
             for number, part, offset in store.shares(data)]
    with ExitStack() as stack:
        writers = [stack.enter_context(store.open(run_id, SPLIT.of(split=name), parts=True)) for name in SPLITS]
        written = map_parts(compute.dask_address, _split_part, items, store, data, [w.folder for w in writers])
        refs = {name: writer.close([w[k] for w in written]) for k, (name, writer) in enumerate(zip(SPLITS, writers))}
    store.put(run_id, SPLIT_SUMMARY, summary)
    return refs


@task(name="split", cache_policy=CONTENT, result_serializer="json", persist_result=True)
def split(store_root: str, run_id: str, schema: DatasetSchema, data: ArtifactRef, settings: SplitSettings,
          seed: int, batch_rows: int = 1_000_000, compute: ComputeSettings | None = None) -> dict[str, ArtifactRef]:
    """Prefect task: write ``split/{train,validation,test}`` and ``split/split_summary``.

    Data of more than ``batch_rows`` rows is read and written a batch at a time (memory: the deciding columns,
    a byte per row, and one batch), except a time series or a time split. With the Dask engine the workers
    write the splits, a part of the data each (three datasets of parts).

    Returns:
        References to the three splits, by name.
    """
    store = ArtifactStore(store_root)
    refs = None
    if on_dask(compute):
        refs = _split_dask(store, run_id, data, schema, settings, seed, compute)
    elif (data.rows or 0) > batch_rows:
        refs = _split_batches(store, run_id, data, schema, settings, seed, batch_rows)
    if refs is None:
        splits, summary = split_data(store.read_arrow(data), schema, settings, seed)
        store.put(run_id, SPLIT_SUMMARY, summary)
        refs = {name: store.put(run_id, SPLIT.of(split=name), part) for name, part in splits.items()}
    run_logger().info("split: %s rows", " / ".join(f"{name} {ref.rows}" for name, ref in refs.items()))
    return refs
