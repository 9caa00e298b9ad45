"""The time limit's arithmetic and the one place that decides thread counts."""

import time

import pytest
from threadpoolctl import threadpool_info

from trainflow import threads
from trainflow.budget import Budget, FitClock, default_time_limit, weighted_deadline
from trainflow.models.settings import TrainSettings
from trainflow.models.classic import build_catboost, build_lightgbm, build_random_forest
from trainflow.models.family import BuildRequest


def test_preset_limits_scale_with_the_table_and_the_preset() -> None:
    assert default_time_limit("default", 1_000, 10) == 90  # the floor
    assert default_time_limit("default", 1_000_000, 20) == 2000  # 1 s per 10,000 cells
    assert default_time_limit("default", 10**9, 100) == 4 * 3600  # the ceiling
    assert default_time_limit("fast", 1_000, 10) == 18 and default_time_limit("best", 1_000, 10) == 360
    assert default_time_limit("default", 1_000, 10, networks=True) == 540


def test_a_budget_shares_what_is_left() -> None:
    budget = Budget(100.0, started=time.time() - 40)
    assert 59 < budget.left() <= 60 and "of 100 s" in budget.line()
    assert budget.share(0.5) == pytest.approx(time.time() + 30, abs=1)
    assert budget.share(1.0, at_most=5) == pytest.approx(time.time() + 5, abs=1)
    assert Budget(None).share(0.3) is None and Budget(None).deadline is None and "no time limit" in Budget(None).line()
    assert Budget(10.0, started=time.time() - 60).left() == 0  # never negative
    # a family's share of the time left: its cost against the costs still to pay
    assert weighted_deadline(time.time() + 100, 1.0, 4.0) == pytest.approx(time.time() + 25, abs=1)
    assert weighted_deadline(None, 1.0, 4.0) is None


def test_a_clock_says_when_to_stop_and_remembers_where() -> None:
    clock = FitClock(time.time() + 3600, "x")
    assert clock.tick(1) is False and clock.stopped_at is None
    late = FitClock(0.0, "x")
    assert late.tick(7) and late.tick(8) and late.stopped_at == 7


def test_thread_counts_come_from_one_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    assert threads.fit_threads(3) == 3 and threads.fit_threads(-1) == 2  # asked for: as asked
    assert threads.fit_threads(barrier=True) == 1 and threads.fit_threads() == 2  # OpenMP rounds stall on 2 cores
    assert threads.fit_threads(concurrent=2) == 1  # parallel workers share the cores
    monkeypatch.setattr(threads, "usable_cores", lambda: 16)
    assert threads.fit_threads(barrier=True) == 16 and threads.fit_threads(concurrent=4, barrier=True) == 4
    assert threads.fit_threads(concurrent=8, barrier=True) == 1
    # the builders ask it: LightGBM and CatBoost as barrier libraries, the forest's joblib trees as a pool
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    request = BuildRequest("x", "binary", TrainSettings(), 0, 100, {}, None)
    assert build_lightgbm(request).n_jobs == 1 and build_catboost(request).params["thread_count"] == 1
    assert build_random_forest(request).n_jobs == 2
    asked = BuildRequest("x", "binary", TrainSettings(n_jobs=2), 0, 100, {}, None)
    assert build_lightgbm(asked).n_jobs == 2


def test_limited_caps_blas_and_openmp_pools_inside_a_fit() -> None:
    with threads.limited(1):
        pools = threadpool_info()
        assert pools and all(p["num_threads"] == 1 for p in pools)
    assert threads.usable_cores() >= 1


def test_a_boosted_family_whose_rounds_cannot_fit_is_dropped_before_training() -> None:
    from tasks.train import RoundCost, boosted_plan

    families = ["lightgbm", "lightgbm_xt", "catboost", "logistic", "random_forest"]
    # the wide table's probes (1,000 rows x 800 columns): CatBoost's rounds cost 4x LightGBM's
    costs = {"lightgbm": RoundCost(0.2, 0.033, 0.1), "lightgbm_xt": RoundCost(0.2, 0.011, 0.05),
             "catboost": RoundCost(0.5, 0.133, 0.08)}
    dropped = boosted_plan(costs, families, seconds=62.0, fits=6)
    assert list(dropped) == ["catboost"]  # at its share (25 s) about 28 of the 33 rounds it needs at 0.3 fit
    assert dropped["catboost"].startswith("skipped: over budget (about 28 of the 33 rounds it needs at learning "
                                          "rate 0.3 fit in its share, 25 s for 6 fits")
    assert boosted_plan(costs, families, seconds=300.0, fits=6) == {}  # time enough: nothing dropped
    # never the last family, however short the time
    assert list(boosted_plan(costs, ["lightgbm", "catboost"], seconds=1.0, fits=6)) == ["catboost"]


def test_the_first_family_gets_the_rounds_its_own_learning_rate_needs_up_to_half_the_time() -> None:
    from tasks.train import ANCHOR_SHARE, ROUNDS_TIMES_RATE, RoundCost, anchor_seconds

    # the wide table's LightGBM: 0.009 s a round, 800 rounds at 0.025; 6 fits (5 folds and the refit)
    lightgbm = RoundCost(0.1, 0.009, 0.025, most_rounds=2000)
    need = 6 * (0.1 + ROUNDS_TIMES_RATE / 0.025 * 0.009)
    assert anchor_seconds("lightgbm", {"lightgbm": lightgbm}, seconds=200.0, fits=6) == pytest.approx(need)
    assert anchor_seconds("lightgbm", {"lightgbm": lightgbm}, seconds=60.0, fits=6) == ANCHOR_SHARE * 60.0
    # its round limit caps the need; a family without probed rounds (not boosted) gets no anchor
    capped = RoundCost(0.1, 0.009, 0.025, most_rounds=100)
    assert anchor_seconds("lightgbm", {"lightgbm": capped}, seconds=200.0, fits=6) == pytest.approx(6 * 1.0)
    assert anchor_seconds("logistic", {"lightgbm": lightgbm}, seconds=200.0, fits=6) == 0.0
