"""Property-based fuzzing (hypothesis) of what a careless or hostile user hands the project: files for ingest ->
validate, and rows for batch inference. Every case must end in success or one clean error line (a
``TrainflowError``, one line, a few hundred characters), never a traceback or a hang, and must leave the
earlier run and the registry as they were.

CI runs the ``ci`` profile (a fixed seed, a bounded number of cases); a developer runs the long one:

    pytest -m fuzz --hypothesis-profile=long -s     # prints the outcome counts of each test
    FUZZ_COUNT_ONLY=1 pytest -m fuzz -s             # counts tracebacks too instead of stopping at the first
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import traceback
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.ingest import ingest
from tasks.predict import PredictSettings, predict
from tasks.validate import validate
from trainflow.catalog import ArtifactStore, new_run_id
from trainflow.errors import TrainflowError
from trainflow.features import TransformSettings
from trainflow.models.settings import TrainSettings
from trainflow.models.fit import fit_family
from trainflow.models.bundle import bundle_files
from trainflow.registry import Registry
from trainflow.schema import DatasetSchema

pytestmark = pytest.mark.fuzz
HANG_SECONDS = 20
COUNT_ONLY = os.environ.get("FUZZ_COUNT_ONLY") == "1"  # count every outcome instead of stopping at the first failure
OUTCOMES: dict[str, Counter] = {}
ROOT = Path(__file__).resolve().parents[2]
WHERE: Counter = Counter()  # where each counted traceback was raised, printed with the counts

TEXTS = st.one_of(st.text(max_size=30), st.sampled_from(["", " ", "?", "nan", "inf", "-inf", "1e309", "NULL",
                                                         "Private", "Married-civ-spouse", ">50K", "<=50K",
                                                         "\x00", "é", "\ufeff", "x" * 10_000, "1,2", '"']))
NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**12, 10**12))
CELLS = st.one_of(TEXTS, NUMBERS, st.none(), st.booleans())


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


class Hang(Exception):
    pass


def outcome_of(name: str, call) -> None:  # noqa: ANN001 (a function of no argument)
    """Run one case under a hang guard and count how it ended; fail on anything but success or a clean line."""
    def alarm(*_: object) -> None:
        raise Hang(f"no answer within {HANG_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(HANG_SECONDS)
    counts = OUTCOMES.setdefault(name, Counter())
    try:
        call()
        counts["success"] += 1
    except TrainflowError as exc:
        line = str(exc)
        clean = "\n" not in line and len(line) <= 1500
        counts["clean error" if clean else "unclean error"] += 1
        if not clean:
            WHERE[f"unclean error of {len(line):,} characters: {line[:160]!r}"] += 1
        assert clean or COUNT_ONLY, f"not one short line ({len(line)} characters): {line[:300]!r}"
    except Hang:
        counts["hang"] += 1
        if not COUNT_ONLY:
            raise
    except Exception as exc:
        counts["traceback"] += 1
        if not COUNT_ONLY:
            raise
        ours = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(str(ROOT)) and "/.venv/" not in f.filename]
        frame = (ours or traceback.extract_tb(exc.__traceback__))[-1]  # the project's last line on the way
        WHERE[f"{Path(frame.filename).name}:{frame.lineno} {type(exc).__name__}: {str(exc)[:100]!r}"] += 1
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    for name, counts in OUTCOMES.items():
        print(f"\nfuzz {name}: {sum(counts.values())} cases: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for where, n in WHERE.most_common():
        print(f"  {n} x {where}")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, adult_schema: DatasetSchema) -> dict:
    """An earlier run and a registry with one model, which no fuzzed case may change."""
    from trainflow.sources import normalise, read_source

    tmp = tmp_path_factory.mktemp("fuzz")
    root, registry_url = str(tmp / "data"), f"sqlite:///{tmp / 'registry.db'}"
    raw = normalise(read_source(adult_schema.source, "adult"), adult_schema.missing_markers).sample(
        1500, random_state=1)
    from tasks.split import SplitSettings, split_data
    from tasks.transform import fit_transform_splits

    splits, _ = split_data(raw, adult_schema, SplitSettings(), 0)
    pre, feats = fit_transform_splits(splits, adult_schema, TransformSettings())
    pipe, info, _ = fit_family("logistic", adult_schema, feats["train"], feats["validation"], TransformSettings(),
                               TrainSettings(n_jobs=1), 0)
    from sklearn.pipeline import Pipeline

    serving = Pipeline([("preprocess", pre), *pipe.steps])
    registry = Registry(registry_url)
    registry.register("adult", bundle_files(serving, {"family": "logistic"}), "earlier", "logistic", "binary",
                      {"roc_auc": 0.9}, {})
    registry.close()
    store = ArtifactStore(root)
    earlier = new_run_id()
    store.write_table(earlier, "ingest", "raw", raw)
    return {"tmp": tmp, "root": root, "registry": registry_url, "raw": raw, "earlier": earlier,
            "before": unchanged_state(tmp, root, earlier)}


def unchanged_state(tmp: Path, root: str, earlier: str) -> tuple[str, bytes]:
    """What no case may change: the earlier run's folder and the registry database."""
    return digest(Path(root) / "runs" / earlier), (tmp / "registry.db").read_bytes()


@st.composite
def broken_files(draw: st.DrawFn, base: pd.DataFrame) -> bytes:
    """The adult rows, then mangled as exports, hands and attackers mangle files."""
    rows = base.sample(draw(st.integers(0, 40)), random_state=draw(st.integers(0, 10**6))).astype(object)
    for _ in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["cell", "drop", "duplicate", "rename", "column", "flood"]))
        if action == "cell" and len(rows):
            rows.iloc[draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, rows.shape[1] - 1))] = draw(CELLS)
        elif action == "drop" and rows.shape[1] > 1:
            rows = rows.drop(columns=[rows.columns[draw(st.integers(0, rows.shape[1] - 1))]])
        elif action == "duplicate" and rows.shape[1]:
            rows.insert(0, " " + str(rows.columns[draw(st.integers(0, rows.shape[1] - 1))]), rows.iloc[:, 0],
                        allow_duplicates=True)
        elif action == "rename" and rows.shape[1]:
            rows = rows.rename(columns={rows.columns[0]: draw(TEXTS)})
        elif action == "column":
            rows[draw(TEXTS)] = draw(CELLS)
        elif action == "flood" and rows.shape[1]:
            rows[rows.columns[draw(st.integers(0, rows.shape[1] - 1))]] = draw(CELLS)
        rows = rows.astype(object)  # a column made from one string is str-typed: the next cell may be anything
    text = rows.to_csv(index=False)
    data = text.encode(draw(st.sampled_from(["utf-8", "utf-8", "utf-16", "latin-1", "utf-8-sig"])),
                       errors="replace")
    cut = draw(st.one_of(st.none(), st.integers(0, max(len(data) - 1, 0))))
    if cut is not None:
        data = data[:cut]
    if draw(st.booleans()) and data:
        spot = draw(st.integers(0, len(data) - 1))
        data = data[:spot] + draw(st.binary(min_size=1, max_size=8)) + data[spot + 1:]
    return data


def train_on(rows: pd.DataFrame, schema: DatasetSchema) -> None:
    """What the training stages after validate make of rows that passed it: split, transform, a logistic fit."""
    from tasks.split import SplitSettings, split_data
    from tasks.transform import fit_transform_splits

    splits, _ = split_data(rows, schema, SplitSettings(), 0)
    _, feats = fit_transform_splits(splits, schema, TransformSettings())
    fit_family("logistic", schema, feats["train"], feats["validation"], TransformSettings(), TrainSettings(n_jobs=1), 0)


def test_ingest_then_validate_never_crashes(world: dict, adult_schema: DatasetSchema) -> None:
    @settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=broken_files(world["raw"]), suffix=st.sampled_from([".csv", ".tsv", ".csv.gz", ".parquet"]))
    def case(data: bytes, suffix: str) -> None:
        path = world["tmp"] / f"case{suffix}"
        if suffix == ".csv.gz":
            import gzip

            data = gzip.compress(data)[: len(data) // 2 or None] if data[:1] == b"x" else gzip.compress(data)
        path.write_bytes(data)
        run_id = new_run_id()

        def run() -> None:
            raw = ingest.fn(world["root"], run_id, adult_schema, str(path))
            valid = validate.fn(world["root"], run_id, adult_schema, raw, quarantine=True)
            train_on(ArtifactStore(world["root"]).read_table(valid), adult_schema)

        outcome_of("ingest -> validate -> split -> transform -> train", run)

    case()
    assert unchanged_state(world["tmp"], world["root"], world["earlier"]) == world["before"]


@st.composite
def exotic_parquet(draw: st.DrawFn, base: pd.DataFrame) -> bytes:
    """The adult rows as Parquet with a column of an exotic Arrow type (nested, half float, unsigned 64-bit,
    decimal, binary, dictionary, timestamp, null), pandas' metadata broken or not, then bytes changed."""
    import decimal

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = base.sample(draw(st.integers(1, 40)), random_state=draw(st.integers(0, 10**6)))
    table = pa.Table.from_pandas(rows, preserve_index=False)
    n, column = len(rows), draw(st.sampled_from(list(rows.columns)))
    kinds = {
        "list": lambda: pa.array([[1, 2]] * n), "large_list": lambda: pa.array([["a"]] * n, pa.large_list(pa.string())),
        "struct": lambda: pa.array([{"a": 1}] * n), "map": lambda: pa.array([[("k", 1)]] * n, pa.map_(pa.string(), pa.int64())),
        "float16": lambda: pa.array(np.full(n, draw(st.floats(width=16)), dtype=np.float16)),
        "uint64": lambda: pa.array(np.full(n, draw(st.sampled_from([0, 7, 2**63 - 1, 2**63, 2**64 - 1])),
                                           dtype=np.uint64)),
        "decimal": lambda: pa.array([decimal.Decimal("12.5")] * n, pa.decimal128(5, 1)),
        "binary": lambda: pa.array([draw(st.binary(max_size=6))] * n, pa.binary()),
        "dictionary": lambda: pa.array([draw(TEXTS)] * n).dictionary_encode(),
        "timestamp": lambda: pa.array([0] * n, pa.timestamp("ns")), "null": lambda: pa.nulls(n),
    }
    kind = draw(st.sampled_from(sorted(kinds)))
    table = table.set_column(table.schema.get_field_index(column), column, kinds[kind]())
    if draw(st.booleans()):
        table = table.replace_schema_metadata({b"pandas": draw(st.sampled_from([b"{not json", b"[]", b"{}", b"1"]))})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    data = bytearray(buffer.getvalue())
    for _ in range(draw(st.integers(0, 3))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


def test_exotic_parquet_through_ingest_and_validate_never_crashes(world: dict, adult_schema: DatasetSchema) -> None:
    @settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=exotic_parquet(world["raw"]))
    def case(data: bytes) -> None:
        path = world["tmp"] / "exotic.parquet"
        path.write_bytes(data)
        run_id = new_run_id()

        def run() -> None:
            raw = ingest.fn(world["root"], run_id, adult_schema, str(path))
            validate.fn(world["root"], run_id, adult_schema, raw, quarantine=True)

        outcome_of("exotic parquet -> ingest -> validate", run)

    case()
    assert unchanged_state(world["tmp"], world["root"], world["earlier"]) == world["before"]


def test_batch_inference_never_crashes(world: dict, adult_schema: DatasetSchema) -> None:
    @settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=broken_files(world["raw"].drop(columns=["income"])))
    def case(data: bytes) -> None:
        path = world["tmp"] / "rows.csv"
        path.write_bytes(data)
        run_id = new_run_id()
        outcome_of("batch inference", lambda: predict.fn(world["root"], run_id, adult_schema, str(path), None,
                                                         PredictSettings(registry_url=world["registry"])))

    case()
    assert unchanged_state(world["tmp"], world["root"], world["earlier"]) == world["before"]


def test_rows_of_any_type_never_reach_scikit_learn_as_a_traceback(world: dict, adult_schema: DatasetSchema) -> None:
    columns = [c.name for c in adult_schema.features]

    @settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(cells=st.lists(st.lists(CELLS, min_size=len(columns), max_size=len(columns)), min_size=1, max_size=8))
    def case(cells: list[list]) -> None:
        frame = pd.DataFrame(cells, columns=columns, dtype=object)
        buffer = io.BytesIO()
        path = world["tmp"] / "typed.parquet"
        try:
            frame.to_parquet(buffer)
        except Exception:  # noqa: BLE001 (pyarrow cannot store this mix in one column; CSV can)
            path = world["tmp"] / "typed.csv"
            buffer = io.BytesIO(frame.to_csv(index=False).encode("utf-8", errors="replace"))
        path.write_bytes(buffer.getvalue())
        run_id = new_run_id()
        outcome_of("typed rows", lambda: predict.fn(world["root"], run_id, adult_schema, str(path), None,
                                                    PredictSettings(registry_url=world["registry"])))

    case()
    assert unchanged_state(world["tmp"], world["root"], world["earlier"]) == world["before"]


def setting_paths(model: type) -> list[tuple[str, ...]]:
    """Every setting of a settings class as a path of field names (``("tune", "n_trials")``)."""
    from pydantic import BaseModel

    paths = []
    for name, field in model.model_fields.items():
        kind = field.annotation
        nested = isinstance(kind, type) and issubclass(kind, BaseModel)
        paths += [(name, *rest) for rest in setting_paths(kind)] if nested else [(name,)]
    return paths


VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), TEXTS,
              st.sampled_from(["../../etc/passwd", "/proc", "${HOME}", "${secret:X}", "sqlite:///nowhere/r.db",
                               "postgresql://u:pw@127.0.0.1:abc/d", "tcp://127.0.0.1:1", "adult", "lightgbm",
                               "__import__('os')", "fast", "best", "dask", "-1", "1e400"])),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXTS, inner, max_size=4)), max_leaves=8)


@st.composite
def command_lines(draw: st.DrawFn, settings_cls: type, folder: Path) -> list[str]:
    """A config file (YAML or JSON: real and unknown settings with values of any type, then maybe Python tags,
    aliases, truncation or changed bytes) and flags, as a user's or an attacker's command line."""
    import json

    import yaml

    paths = setting_paths(settings_cls)
    config: dict = {}
    for _ in range(draw(st.integers(0, 6))):
        path = draw(st.one_of(st.sampled_from(paths), st.lists(TEXTS, min_size=1, max_size=3).map(tuple)))
        node = config
        for key in path[:-1]:
            node = node.setdefault(key, {}) if isinstance(node.get(key, {}), dict) else {}
        node[path[-1]] = draw(VALUES)
    as_json = draw(st.booleans())
    text = json.dumps(config, default=str) if as_json else yaml.safe_dump(config, allow_unicode=True)
    change = draw(st.sampled_from(["none", "none", "tag", "alias", "cut", "bytes"]))
    if change == "tag":
        text = f"!!python/object/apply:os.system [\"touch {folder}/pwned\"]\n" if draw(st.booleans()) else \
            text.replace(": ", ": !!python/name:os.system ", 1)
    elif change == "alias":
        text = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    data = text.encode("utf-8")
    if change == "cut" and data:
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif change == "bytes" and data:
        spot = draw(st.integers(0, len(data) - 1))
        data = data[:spot] + draw(st.binary(min_size=1, max_size=4)) + data[spot + 1:]
    config_file = folder / ("settings.json" if as_json else "settings.yaml")
    config_file.write_bytes(data)
    flags = []
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(paths))
        flags += ["--" + ".".join(p.replace("_", "-") for p in path), str(draw(VALUES))]
    return ["--config", str(config_file), *flags]


@pytest.mark.parametrize("flow", ["training", "inference"])
def test_config_files_and_flags_through_the_command_line_never_crash(flow: str, world: dict) -> None:
    """The command's own entry (cli.run.run_flow: parse, merge, check, one error line, exit 2) over hostile config
    files and flags; the flow itself is a stand-in, the settings it would get being the subject."""
    import contextlib
    import importlib

    from cli.run import run_flow as main

    module = importlib.import_module(f"flows.{flow}")
    settings_cls = {"training": "TrainingSettings", "inference": "InferenceSettings"}[flow]
    folder = world["tmp"] / f"config-{flow}"
    folder.mkdir(exist_ok=True)
    fixed = ["--artifacts-root", world["root"]]  # first: a fuzzed flag after it may replace it

    @settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(argv=command_lines(getattr(module, settings_cls), folder))
    def case(argv: list[str]) -> None:
        def run() -> None:
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = main(lambda settings: {}, getattr(module, settings_cls), argv=[*fixed, *argv],
                            printer=lambda summary: None)
            if code == 2:
                lines = err.getvalue().strip().splitlines()
                assert len(lines) == 1 and lines[0].startswith("error: "), err.getvalue()[-500:]
                raise TrainflowError(lines[-1].removeprefix("error: "))
            assert code == 0, code

        outcome_of(f"{flow} command line", run)

    case()
    assert not (folder / "pwned").exists()
    assert unchanged_state(world["tmp"], world["root"], world["earlier"]) == world["before"]
