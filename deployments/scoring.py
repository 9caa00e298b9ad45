"""Online scoring: ``trainflow serve MODEL[@ALIAS|:VERSION]`` answers HTTP requests with a registered model's
serving variant (ONNX Runtime where the compress stage chose it) and its dataset schema's checks.

- ``POST /predict``: one row (a JSON object) or a batch (a list of them) in the schema's columns; the request
  body is a pydantic model made from the schema, so a value of the wrong type, a missing feature or an unknown
  column is a 422 naming the column, as is a row that breaks one of the schema's error rules (the rule named);
  its warnings are left to batch monitoring.
- ``GET /health``, ``GET /model`` (name, version, aliases, metrics, serving variant, lineage); ``/docs`` is the
  OpenAPI page, its request schema the dataset's columns.

Following an alias (``adult`` or ``adult@production``), the service looks up the alias every
``refresh_seconds`` and, when it points elsewhere (a promotion or a rollback), loads that version beside the one
serving and swaps it in: a request holds the model it started with, so none is dropped. ``adult:3`` pins a
version.
"""

from __future__ import annotations

import datetime as dt
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd
from fastapi import Body, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field, create_model

from trainflow.errors import DataError, TrainflowError
from trainflow.schema import DatasetSchema

PYTHON_TYPES = {"int": int, "float": float, "bool": bool, "category": str, "string": str, "text": str,
                "datetime": dt.datetime}
# rules the request's row model enforces itself (a 422 naming the column before any scoring): the rest of the
# schema's error rules run on the rows of each request; its warnings are batch monitoring's concern
ENFORCED_BY_THE_ROW_MODEL = {"expect_column_to_exist", "expect_column_values_to_be_in_type_list",
                             "expect_column_values_to_be_of_type", "expect_column_values_to_not_be_null",
                             "expect_table_row_count_to_be_between"}
# rows a request scores on the event loop itself (well under a millisecond with an ONNX variant): a thread pool's
# hop cost more than scoring one row; a longer batch goes to a thread
INLINE_ROWS = 64


@dataclass(frozen=True)
class Served:
    """One loaded version: what a request scores with (swapped whole on a promotion)."""

    version: int
    pipeline: Any
    scorer: Any
    scored_by: str
    threshold: float | None
    info: dict[str, Any]


def parse_target(target: str) -> tuple[str, str | None, int | None]:
    """``adult`` / ``adult@candidate`` / ``adult:3`` -> (model, alias, version)."""
    if ":" in target:
        name, version = target.split(":", 1)
        if not version.isdigit():
            raise TrainflowError(f"model '{target}': a version after ':' is a number (adult:3)")
        return name, None, int(version)
    name, _, alias = target.partition("@")
    return name, alias or "production", None


def row_model(schema: DatasetSchema) -> type:
    """The request row's pydantic model: each feature column with its type, no other key, numbers finite; null
    unless an error rule forbids every missing value (a rule with ``mostly`` bounds a batch's share, not a row).
    The schema's other columns (label, id, ignored ones) may come along, as a row of the data holds them, and are
    not read."""
    from tasks.validate import severity_of

    required = {r.get("kwargs", {}).get("column") for r in schema.expectations  # no missing value at all
                if severity_of(r) == "error" and r["type"] == "expect_column_values_to_not_be_null"
                and r.get("kwargs", {}).get("mostly", 1) >= 1}
    fields: dict[str, Any] = {}
    for column in schema.features:
        kind = PYTHON_TYPES[column.type]
        finite = {"allow_inf_nan": False} if kind is float else {}
        fields[column.name] = (kind if column.name in required else kind | None,
                               Field(... if column.name in required else None,
                                     description=column.description or None, **finite))
    for column in schema.columns:  # a row as the data holds it may carry them
        if column.name not in fields:
            fields[column.name] = (Any, Field(None, description=f"{column.role}: not read by the model"))
    return create_model(f"{schema.name.title().replace('_', '')}Row", __config__=ConfigDict(extra="forbid"),
                        **fields)


def _load(registry_url: str | None, name: str, alias: str | None, version: int | None) -> Served:
    from tasks.predict import scoring_model
    from trainflow.registry import Registry

    registry = Registry(registry_url, must_exist=True)
    try:
        number = version if version is not None else registry.resolve(name, alias=alias)
        info = registry.version_info(name, number)
    finally:
        registry.close()
    pipeline, scorer, scored_by, threshold = scoring_model(registry_url, name, number, "serving")
    return Served(number, pipeline, scorer, scored_by, threshold, info)


def create_app(target: str, registry_url: str | None = None, schemas_dir: str | None = None,
               refresh_seconds: float = 10.0) -> FastAPI:
    """The scoring service of a registered model (see the module docstring).

    Raises:
        TrainflowError: The model, alias, version or its dataset's schema does not exist.
    """
    from tasks.predict import predict_records
    from tasks.validate import severity_of, validate_data
    from trainflow.schema import load_schema
    from trainflow.sources import normalise

    name, alias, version = parse_target(target)
    state = {"served": _load(registry_url, name, alias, version)}
    lineage = state["served"].info.get("lineage") or {}
    schema = load_schema(lineage.get("dataset") or name, schemas_dir)  # its rules, as batch inference checks them
    scoring = schema.for_scoring()
    checks = scoring.model_copy(update={"expectations": [r for r in scoring.expectations if severity_of(r) == "error"
                                                         and r["type"] not in ENFORCED_BY_THE_ROW_MODEL]})
    Row = row_model(schema)  # noqa: N806 - a class
    stop = threading.Event()

    def follow() -> None:
        from trainflow.registry import Registry

        while not stop.wait(refresh_seconds):
            try:
                registry = Registry(registry_url, must_exist=True)
                try:
                    now = registry.resolve(name, alias=alias)
                finally:
                    registry.close()
                if now != state["served"].version:
                    state["served"] = _load(registry_url, name, None, now)  # loaded first, then swapped
            except TrainflowError:
                continue  # the registry is away for a moment: keep serving what is loaded

    @asynccontextmanager
    async def lifespan(_: FastAPI):  # noqa: ANN202
        watcher = threading.Thread(target=follow, name="trainflow-follow", daemon=True)
        if version is None:
            watcher.start()
        yield
        stop.set()

    app = FastAPI(title=f"trainflow: {target}", description=f"Scores rows of dataset '{schema.name}' with the "
                                                           f"registered model '{name}'.", lifespan=lifespan)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        """422 naming each bad field, without echoing its value: an infinite number cannot be written back as
        JSON (it made a 500), and a huge value need not travel twice."""
        errors = [{"type": e["type"], "loc": [str(part) for part in e["loc"]], "msg": e["msg"]} for e in exc.errors()]
        return JSONResponse(status_code=422, content={"detail": errors})

    @app.get("/health")
    def health() -> dict[str, Any]:
        served = state["served"]
        return {"status": "ok", "model": name, "version": served.version, "scored_by": served.scored_by}

    @app.get("/model")
    def model() -> dict[str, Any]:
        served = state["served"]
        info = served.info
        return {"model": name, "version": served.version, "aliases": info["aliases"], "family": info["family"],
                "task": info["task"], "metrics": info["metrics"], "serving_variant": served.scored_by,
                "following": alias, "created": str(info["created"]), "lineage": info.get("lineage")}

    def check_rows(clean: pd.DataFrame) -> None:
        """The schema's error rules the row model does not enforce, on a request's rows (DataError: the first
        one broken, its column and rule)."""
        outcome = validate_data(clean, checks, quarantine=True, max_quarantine_fraction=1.0)
        if outcome.errors:
            column, rule, detail = outcome.errors[0]
            raise DataError(schema.name, str(detail), column=column, rule=rule)
        if len(outcome.quarantine):
            bad = outcome.quarantine.iloc[0]
            raise DataError(schema.name, f"row {bad.name} of {len(clean)} breaks a rule of the schema",
                            column=str(bad["_column"]), rule=str(bad["_rule"]))

    def score(served: Served, rows: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            if checks.expectations:  # rules the row model does not hold: Great Expectations on the rows as a frame
                check_rows(normalise(pd.DataFrame(rows), schema.missing_markers))
            preds, report = predict_records(served.pipeline, schema, rows, scorer=served.scorer,
                                            threshold=served.threshold)
        except DataError as exc:
            raise HTTPException(422, detail={"error": str(exc), "column": exc.column, "rule": exc.rule}) from None
        return {"model": name, "version": served.version, "scored_by": served.scored_by,
                "predictions": preds, "unseen_categories": report["unseen_categories"]}

    async def predict(rows=Body(...)) -> dict[str, Any]:  # noqa: ANN001, B008 - typed below: the schema's row model
        served = state["served"]  # this request's model, whatever a promotion swaps in meanwhile
        batch = rows if isinstance(rows, list) else [rows]
        if not batch:
            raise HTTPException(422, detail="no rows to score")
        plain = [r.model_dump() for r in batch]
        if len(plain) > INLINE_ROWS:  # a long batch in a thread, so that the loop goes on answering others
            return await run_in_threadpool(score, served, plain)
        return score(served, plain)

    predict.__annotations__["rows"] = Row | list[Row]  # a class made at run time: not a string annotation
    app.post("/predict")(predict)
    return app


def serve(target: str, host: str = "127.0.0.1", port: int = 8000, registry_url: str | None = None,
          refresh_seconds: float = 10.0) -> None:
    """Run the service with uvicorn until Ctrl-C."""
    import uvicorn

    uvicorn.run(create_app(target, registry_url, refresh_seconds=refresh_seconds), host=host, port=port,
                log_level="warning")
