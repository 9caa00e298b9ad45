"""What the Prefect UI shows of a run: markdown with the plots inside it, rounded tables, and artifacts that
hang off the flow run (the run's page) rather than off the task that made them.

The UI renders a PNG data URI in markdown but only the text of a file path, and ``create_image_artifact``
takes a URL, which a local run folder is not: plots are embedded.
"""

from __future__ import annotations

import base64
import math
import re
from typing import Any, Literal

import pandas as pd


def embedded_png(data: bytes, alt: str) -> str:
    """A markdown image of PNG bytes that the UI shows inline."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(data).decode()})"


def readable(value: Any, digits: int = 4) -> Any:
    """A cell a person can read: floats to ``digits`` significant places, missing values blank."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    return value


def table_rows(df: pd.DataFrame, digits: int = 4) -> list[dict[str, Any]]:
    """Rows for a Prefect table artifact, each cell made ``readable``."""
    return [{k: readable(v, digits) for k, v in row.items()} for row in df.to_dict("records")]


def publish(kind: Literal["markdown", "table"], data: str | list[dict[str, Any]], key: str, description: str,
            on_flow_run: bool = False) -> None:
    """Create a markdown or table artifact; ``on_flow_run`` attaches it to the flow run instead of the task run,
    so that it shows on the run's own page. Outside a run nothing is created."""
    from prefect.artifacts import MarkdownArtifact, TableArtifact
    from prefect.utilities.context import get_task_and_flow_run_ids

    task_run_id, flow_run_id = get_task_and_flow_run_ids()
    if flow_run_id is None and task_run_id is None:
        return
    key = re.sub(r"[^a-z0-9-]+", "-", key.lower())  # the only characters Prefect takes in a key
    artifact = (MarkdownArtifact(key=key, markdown=data, description=description) if kind == "markdown" else
                TableArtifact(key=key, table=data, description=description))
    if not on_flow_run:
        artifact.create()
        return
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate

    with get_client(sync_client=True) as client:
        client.create_artifact(ArtifactCreate(key=key, type=artifact.type, description=description,
                                              data=artifact.format(), flow_run_id=flow_run_id))


def tag_flow_run(*tags: str) -> None:
    """Add tags to the flow run in progress, e.g. the dataset it really uses (a deployment's form can change it,
    so the deployment's own tags cannot say). Outside a flow run nothing happens."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.update_flow_run(ctx.flow_run.id, tags=sorted(set(ctx.flow_run.tags or []) | set(tags)))
