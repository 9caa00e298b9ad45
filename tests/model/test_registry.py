"""The registry: versions, aliases, lineage, the quality gate, and concurrent writers."""

import multiprocessing as mp

import numpy as np
import pandas as pd
import pytest

from trainflow.errors import RegistryError
from trainflow.models.bundle import bundle_files
from tasks.register import check_gate
from trainflow.registry import load_model, Registry
from tests.model.promote_worker import promote


def _bundle(seed: int) -> dict[str, bytes]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"a": rng.normal(size=50), "b": rng.normal(size=50)})
    pipe = Pipeline([("model", LogisticRegression().fit(x, x["a"] > 0))])
    return bundle_files(pipe, {"family": "logistic"})


def _register_many(url: str, n: int, seed: int) -> None:
    reg = Registry(url)
    for i in range(n):
        reg.register("m", _bundle(seed * 100 + i), f"run-{seed}-{i}", "logistic", "binary", {"roc_auc": 0.9}, {"seed": seed})
    reg.close()


def test_versions_aliases_and_load(registry_url: str) -> None:
    url = registry_url
    reg = Registry(url)
    v1 = reg.register("m", _bundle(1), "run-1", "logistic", "binary", {"roc_auc": 0.8}, {"data_sha256": "abc"})
    v2 = reg.register("m", _bundle(2), "run-2", "logistic", "binary", {"roc_auc": 0.85}, {})
    assert (v1["version"], v2["version"]) == (1, 2)
    assert reg.version_info("m", 1)["aliases"] == ["production"]  # the first version keeps production
    assert v2["aliases"] == ["candidate"] and v1["lineage"]["data_sha256"] == "abc"
    x = pd.DataFrame({"a": [1.0, -1.0], "b": [0.0, 0.0]})
    prod = load_model("m", registry_url=url)
    by_version = load_model("m", version=2, alias=None, registry_url=url)
    assert prod.predict(x).tolist() == [True, False] and by_version.predict(x).tolist() == [True, False]
    reg.set_alias("m", "production", 2, reason="test")
    assert reg.resolve("m") == 2
    events = reg.tables()["registry_events"]
    assert events["event"].tolist().count("alias_set") == 4
    with pytest.raises(RegistryError, match="no version 9"):
        reg.set_alias("m", "production", 9, reason="test")
    with pytest.raises(RegistryError, match="no alias"):
        reg.resolve("unknown")


def _promote_and_roll_back(url: str, rounds: int) -> None:
    reg = Registry(url)
    for _ in range(rounds):
        current = reg.resolve("m")
        reg.promote("m", 1 if current != 1 else 2, current, reason="test")
        reg.rollback("m")
    reg.close()


def test_concurrent_writers_get_distinct_versions(registry_url: str) -> None:
    """Eight writers register at once while two more promote and roll back, each with a registry (an engine and
    its connections) of its own, as separate processes would have; the database's locks alone serialise them
    (threads, not processes: ten interpreters importing scikit-learn cost a minute of a 2-core machine; the
    promotion test below races two processes). Every version is kept with its own number, and production is always exactly one version."""
    from concurrent.futures import ThreadPoolExecutor

    url = registry_url
    reg = Registry(url)
    for i in range(2):
        reg.register("m", _bundle(1000 + i), f"run-first-{i}", "logistic", "binary", {"roc_auc": 0.9}, {})
    with ThreadPoolExecutor(10) as pool:
        jobs = [pool.submit(_register_many, url, 3, s) for s in range(8)]
        jobs += [pool.submit(_promote_and_roll_back, url, 3) for _ in range(2)]
        for job in jobs:
            job.result(timeout=180)  # a writer's error fails the test
    tables = reg.tables()
    versions = tables["model_versions"]
    assert sorted(versions["version"]) == list(range(1, 27)) and versions["run_id"].nunique() == 26
    aliases = tables["model_aliases"]
    assert (aliases["alias"] == "production").sum() == 1 and reg.resolve("m") in (1, 2)
    reg.close()


def test_gate() -> None:
    assert check_gate({"roc_auc": 0.8, "rmse": 3.0}, {"roc_auc": 0.7, "rmse": 5}) == []
    misses = check_gate({"roc_auc": 0.6, "rmse": 6.0}, {"roc_auc": 0.7, "rmse": 5, "r2": 0.1})
    assert misses == ["roc_auc 0.6000 < required 0.7", "rmse 6.0000 > allowed 5", "r2 was not computed"]


def test_promotion_is_compare_and_set_and_rollback_restores(registry_url: str) -> None:
    url = registry_url
    reg = Registry(url)
    for i in range(3):
        reg.register("m", _bundle(i), f"run-{i}", "logistic", "binary", {"roc_auc": 0.8}, {})
    assert reg.resolve("m") == 1
    # two challengers decided against the same champion, promoted from two processes at once: one wins
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=promote, args=(url, v, 1, results)) for v in (2, 3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    outcome = dict(results.get(timeout=10) for _ in procs)
    assert sorted(outcome.values()) == [False, True]
    winner = next(v for v, won in outcome.items() if won)
    assert reg.resolve("m") == winner
    events = reg.tables()["registry_events"]
    assert "promotion_lost" in events["event"].tolist()
    assert reg.rollback("m") == 1 and reg.resolve("m") == 1  # back to the version before
    assert reg.rollback("m", to_version=3) == 3
    with pytest.raises(RegistryError, match="no version 7"):
        reg.rollback("m", to_version=7)


def test_registry_command_line(registry_url: str) -> None:
    from cli.main import main

    url = registry_url
    reg = Registry(url)
    for i in range(2):
        reg.register("m", _bundle(i), f"run-{i}", "logistic", "binary", {"roc_auc": 0.8}, {})
    assert main(["registry", "--registry-url", url, "promote", "m", "2"]) == 0 and reg.resolve("m") == 2
    assert main(["registry", "--registry-url", url, "rollback", "m"]) == 0 and reg.resolve("m") == 1
    assert main(["registry", "--registry-url", url, "rollback", "m", "--to", "9"]) == 2


def test_a_version_much_costlier_than_production_is_called_out(registry_url: str, caplog) -> None:
    import logging

    from tasks.register import _compare_with_production

    url = registry_url
    reg = Registry(url)
    reg.register("m", _bundle(1), "run-1", "logistic", "binary", {"roc_auc": 0.8},
                 {"serving_cost": {"bytes": 2_000_000, "p50_ms": 2.6}})
    with caplog.at_level(logging.WARNING, logger="trainflow"):
        _compare_with_production(reg, "m", {"bytes": 3_000_000, "p50_ms": 3.0})  # 1.5x, 1.2x: nothing said
        assert "new version" not in caplog.text
        _compare_with_production(reg, "m", {"bytes": 35_800_000, "p50_ms": 78.7})
    assert ("the new version of m is 17.9x its size (35.8 MB against 2.0 MB) and 30.3x its single-row latency "
            "(p50 78.7 ms against 2.6 ms) of production v1") in caplog.text
    reg.close()


def test_registry_list_leads_with_the_selection_metric(registry_url: str, capsys) -> None:
    from cli.main import main

    url = registry_url
    reg = Registry(url)
    reg.register("m", _bundle(1), "run-1", "logistic", "binary", {"accuracy": 0.9, "f1": 0.5, "log_loss": 0.3,
                                                                  "roc_auc": 0.8}, {})
    reg.close()
    assert main(["registry", "--registry-url", url, "list", "m"]) == 0
    assert "roc_auc (selection) 0.8000, accuracy 0.9000, f1 0.5000" in capsys.readouterr().out


def test_a_registry_deleted_during_a_run_is_not_made_again_empty(tmp_path) -> None:
    from trainflow.errors import RegistryError
    from trainflow.registry import Registry

    url = f"sqlite:///{tmp_path / 'registry.db'}"
    Registry(url).close()  # what the run's settings check does before any work
    (tmp_path / "registry.db").unlink()  # gone while the run trains
    with pytest.raises(RegistryError, match="no database at"):
        Registry(url, must_exist=True)  # how register, promote, inference and monitoring open it
    assert not (tmp_path / "registry.db").exists()


def test_two_writers_of_a_models_first_version_both_get_its_row(registry_url: str) -> None:
    """The first writer of a new model inserts its row and holds the transaction; a second writer meanwhile finds
    no row and inserts too. On SQLite it waits at BEGIN IMMEDIATE; on PostgreSQL its insert waits on the name,
    fails once the first commits, and it then locks the committed row instead of failing the registration."""
    import threading
    import time

    from sqlalchemy.orm import Session

    reg = Registry(registry_url)
    first_holds, outcome = threading.Event(), {}

    def first() -> None:
        with Session(reg.engine) as session, session.begin():
            reg._lock_model(session, "fresh")
            first_holds.set()
            time.sleep(1.0)  # the second writer arrives while this transaction is open

    def second() -> None:
        first_holds.wait(30)
        try:
            with Session(reg.engine) as session, session.begin():
                outcome["row"] = reg._lock_model(session, "fresh").name
        except Exception as exc:  # noqa: BLE001 - the failure the test looks for
            outcome["error"] = repr(exc)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    reg.close()
    assert outcome == {"row": "fresh"}
