"""Online simulator: the running API driven for simulated days by users whose tastes are known.

The synthetic world (etl/synthetic.py) plants taste communities: each community prefers three genres. Simulated
users ask the API for lists, look down each list with a position bias, click items of their community's genres
far more often than others (some clicks become purchases), dislike some items outside their taste, and ignore the
rest. Part way through, new items of each community's genres arrive through ``POST /items``; later a few items are
hidden and a few expire through ``PATCH /items/{id}``. Every reaction goes back through ``POST /feedback`` with the
list's ``recommendation_id``.

Arms, each on a freshly loaded graph and a freshly started API, with the same users, seeds and schedule:

* ``all``: fatigue on, exploration on, two variants (the blend vs a popularity-only blend, 50/50);
* ``no_fatigue``: the same with exposure fatigue off;
* ``no_exploration``: the same with exploration off.

What it shows (figures printed side by side, JSON and a figure under bench/out/):

* fatigue: impressions of items the user had already been shown twice without reacting (``all`` vs
  ``no_fatigue``);
* exploration: how many of the new items got a first click, and how soon (``all`` vs ``no_exploration``);
* variants: clicks per impression of each variant from ``kgrec report`` (95% intervals, and the interval of the
  difference);
* safety: every disliked, hidden or expired item shown again after the fact is counted; each arm must show 0.

    .venv/bin/python -m bench.online [--users 400 --items 600 --days 6 --requests-per-day 300 --k 10]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from bench.common import OUT, ROOT, impression_db, private_server, remove_impressions, serve_api, stop_api
from etl.load import load_dataset
from etl.synthetic import SyntheticWorld, generate_world
from graph.driver import create_driver
from graph.neo4j_local import launcher

console = Console()
API_PORT = int(os.environ.get("KGREC_BENCH_ONLINE_API_PORT", "28010"))
KEY = "kgrec-online-bench-write-key"
ARTIFACTS = OUT / "online_artifacts"
BASE = f"http://127.0.0.1:{API_PORT}"


def online_settings():  # noqa: ANN201
    """The simulator's own Neo4j: .kgrec/neo4j-online on 27689/27476 (or KGREC_BENCH_ONLINE_BOLT_PORT/HTTP_PORT)."""
    return private_server(
        "online",
        int(os.environ.get("KGREC_BENCH_ONLINE_BOLT_PORT", "27689")),
        int(os.environ.get("KGREC_BENCH_ONLINE_HTTP_PORT", "27476")),
    )


@dataclass
class Taste:
    """The hidden truth of the world: each user's community and each item's genres."""

    user_community: dict[str, int]
    community_genres: dict[int, tuple[str, ...]]
    item_genres: dict[str, set[str]]

    def likes(self, user: str, item: str) -> bool:
        return bool(self.item_genres.get(item, set()) & set(self.community_genres[self.user_community[user]]))


@dataclass
class ArmLog:
    """What one arm saw, from the simulated users' side."""

    requests: int = 0
    impressions: int = 0
    clicks: int = 0
    repeats_of_ignored: int = 0
    violations: Counter[str] = field(default_factory=Counter)
    new_item_first_click: dict[str, int] = field(default_factory=dict)
    new_item_impressions: Counter[str] = field(default_factory=Counter)
    explored: int = 0
    variants: Counter[str] = field(default_factory=Counter)
    ctr_by_day: list[float] = field(default_factory=list)
    report: dict = field(default_factory=dict)


def build_world(users: int, items: int, seed: int) -> tuple[SyntheticWorld, Taste]:
    world = generate_world(users=users, items=items, seed=seed)
    genres: dict[str, set[str]] = defaultdict(set)
    for row in world.dataset.genres:
        genres[row.item_id].add(row.genre)
    return world, Taste(world.user_community, world.community_genres, dict(genres))


def load_world(settings, world: SyntheticWorld) -> None:  # noqa: ANN001
    """The world in place of the arm before's, and none of its impressions (the graph's, or the SQLite file's)."""
    with create_driver(settings) as driver:
        load_dataset(driver, world.dataset, replace=True, reject_dir=OUT / "rejects")
    remove_impressions(settings)


def train_models(settings) -> tuple[str, str]:  # noqa: ANN001
    """The two models of the variant test: the blend as it ships, and a blend that may weight only global
    popularity (a deliberately weaker model). Returns (strong version, weak version); the strong one is current."""
    from gnn.config import GnnSettings, resolve_config
    from gnn.jobs import retrain_job

    shutil.rmtree(ARTIFACTS, ignore_errors=True)  # the versions of an earlier run belong to another world
    gnn = GnnSettings(artifacts_dir=ARTIFACTS, snapshots_dir=OUT / "online_snapshots")
    weak_config = OUT / "online_weak_blend.yaml"
    weak_config.write_text("ranker_features: [pop_global]\n", encoding="utf-8")
    weak = retrain_job(settings, gnn, resolve_config("blend", weak_config), publish=False)
    strong = retrain_job(settings, gnn, resolve_config("blend"), publish=False)  # promoted: not worse than the weak
    return strong.artifact.path.name, weak.artifact.path.name


def new_items(taste: Taste, count: int, start: int) -> list[dict]:
    """``count`` planted new items, spread over the communities, each in one of its community's genres."""
    out = []
    communities = sorted(taste.community_genres)
    for j in range(count):
        c = communities[j % len(communities)]
        genre = taste.community_genres[c][j % 3]
        item_id = f"new{start + j}"
        taste.item_genres[item_id] = {genre}
        out.append({"item_id": item_id, "title": f"New arrival {start + j}", "genres": [genre], "year": 2026})
    return out


class Simulator:
    """Drives one arm: requests, reactions, catalogue changes, and the users' own bookkeeping."""

    def __init__(self, taste: Taste, args: argparse.Namespace, seed: int) -> None:
        self.taste = taste
        self.args = args
        self.rng = np.random.default_rng(seed)
        self.http = httpx.Client(base_url=BASE, timeout=30.0, headers={"X-API-Key": KEY})
        self.shown: Counter[tuple[str, str]] = Counter()
        self.reacted: set[tuple[str, str]] = set()
        self.disliked: set[tuple[str, str]] = set()
        self.gone: set[str] = set()
        self.log = ArmLog()

    def feedback(self, user: str, item: str, kind: str, rec_id: str | None) -> None:
        body = {"user_id": user, "item_id": item, "type": kind}
        if rec_id is not None:
            body["recommendation_id"] = rec_id
        response = self.http.post("/feedback", json=body)
        if response.status_code >= 300:
            self.log.violations[f"feedback {response.status_code}"] += 1

    def request(self, user: str) -> None:
        explain = self.rng.random() < 0.1
        response = self.http.get(f"/users/{user}/recommendations", params={"k": self.args.k, "explain": explain})
        self.log.requests += 1
        if response.status_code != 200:
            self.log.violations[f"recommendations {response.status_code}"] += 1
            return
        body = response.json()
        rec_id = body.get("recommendation_id")
        self.log.variants[body.get("variant", "?")] += 1
        for position, entry in enumerate(body["items"]):
            item = entry["item_id"]
            pair = (user, item)
            self.log.impressions += 1
            if "exploration" in entry["sources"]:
                self.log.explored += 1
                if explain and not entry.get("explanations"):
                    self.log.violations["explored item without explanation"] += 1
            if pair in self.disliked:
                self.log.violations["disliked item shown again"] += 1
            if item in self.gone:
                self.log.violations["hidden or expired item shown"] += 1
            if self.shown[pair] >= 2 and pair not in self.reacted:
                self.log.repeats_of_ignored += 1
            self.shown[pair] += 1
            if item.startswith("new"):
                self.log.new_item_impressions[item] += 1
            examined = self.rng.random() < 1.0 / math.log2(position + 2)
            if not examined:
                continue
            if self.taste.likes(user, item):
                if self.rng.random() < 0.35:
                    self.log.clicks += 1
                    self.reacted.add(pair)
                    self.feedback(user, item, "click", rec_id)
                    if item.startswith("new"):
                        self.log.new_item_first_click.setdefault(item, self.log.requests)
                    if self.rng.random() < 0.3:
                        self.feedback(user, item, "purchase", rec_id)
            elif self.rng.random() < 0.04:
                self.reacted.add(pair)
                self.disliked.add(pair)
                self.feedback(user, item, "dislike", rec_id)

    def run(self, users: list[str], weights: np.ndarray) -> ArmLog:
        args = self.args
        for day in range(args.days):
            clicks_before, shown_before = self.log.clicks, self.log.impressions
            if day == args.new_items_day:
                for body in new_items(self.taste, args.new_items, 1):
                    response = self.http.post("/items", json=body)
                    if response.status_code >= 300:
                        self.log.violations[f"POST /items {response.status_code}"] += 1
            if day == args.retire_day:
                self.retire()
            for user in self.rng.choice(users, size=args.requests_per_day, p=weights):
                self.request(str(user))
            day_shown = self.log.impressions - shown_before
            self.log.ctr_by_day.append((self.log.clicks - clicks_before) / day_shown if day_shown else 0.0)
            console.print(
                f"  day {day + 1}: {args.requests_per_day} lists, CTR {self.log.ctr_by_day[-1]:.3f}, "
                f"explored {self.log.explored}, repeats of ignored {self.log.repeats_of_ignored}"
            )
        return self.log

    def retire(self) -> None:
        """Hide the three most shown items and let the next three expire now."""
        by_item = Counter()
        for (_, item), n in self.shown.items():
            by_item[item] += n
        ranked = [item for item, _ in by_item.most_common(6)]
        now = int(time.time())
        for n, item in enumerate(ranked):
            body = {"hidden": True} if n < 3 else {"available_until": now}
            response = self.http.patch(f"/items/{item}", json=body)
            if response.status_code >= 300:
                self.log.violations[f"PATCH /items {response.status_code}"] += 1
            self.gone.add(item)


def read_report(env: dict[str, str]) -> dict:
    """``kgrec report --json`` against the arm's graph."""
    done = subprocess.run(
        [sys.executable, "-m", "kgrec.cli", "report", "--json", "--baseline", "blend"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        console.print(f"[red]kgrec report failed[/red]: {done.stderr.strip()[-500:]}")
        return {}
    return json.loads(done.stdout)


def run_arm(name: str, settings, world, taste, versions, args) -> ArmLog:  # noqa: ANN001
    strong, weak = versions
    variants = OUT / f"online_variants_{name}.yaml"
    variants.write_text(
        "salt: online-bench\n"
        "variants:\n"
        f"  - {{name: blend, share: 0.5, model_version: '{strong}'}}\n"
        f"  - {{name: popularity, share: 0.5, model_version: '{weak}'}}\n",
        encoding="utf-8",
    )
    env = {
        "KGREC_ARTIFACTS_DIR": str(ARTIFACTS),
        "KGREC_SERVE_MODEL": "blend",
        "KGREC_API_KEY": KEY,
        "KGREC_VARIANTS": str(variants),
        "KGREC_CACHE_WARM_USERS": "0",
        "KGREC_RESPONSE_CACHE_SIZE": "0",  # every visit computed: a simulated day passes between a user's visits
        "KGREC_EXPLORATION_SHARE": "0" if name == "no_exploration" else str(args.exploration_share),
        "KGREC_EXPLORATION_SEED": str(args.seed),  # the arms draw from the same random source
        "KGREC_FATIGUE_HALF_LIFE": "0" if name == "no_fatigue" else str(args.fatigue_half_life),
    }
    console.print(f"[bold]{name}[/bold]: loading the world, starting the API …")
    load_world(settings, world)
    api = serve_api(settings, API_PORT, env, f"online_{name}.log", timeout=120.0)
    try:
        users = sorted(taste.user_community)
        ranks = np.arange(1, len(users) + 1, dtype=np.float64)
        weights = 1.0 / ranks**0.8
        weights /= weights.sum()
        log = Simulator(Taste(taste.user_community, taste.community_genres, dict(taste.item_genres)), args, 7).run(
            users, weights
        )
    finally:
        stop_api(api)  # flushes the impression queue
    log.report = read_report(
        {
            "NEO4J_URI": settings.uri,
            "NEO4J_PASSWORD": settings.password.get_secret_value(),
            "KGREC_ARTIFACTS_DIR": str(ARTIFACTS),
            "KGREC_IMPRESSION_DB": str(impression_db(settings)),  # the API's (bench.common.serve_api)
        }
    )
    return log


def summary_table(logs: dict[str, ArmLog], args: argparse.Namespace) -> Table:
    table = Table(title=f"online simulation: {args.days} days × {args.requests_per_day} lists of {args.k}")
    for column in (
        "arm",
        "lists",
        "impressions",
        "CTR",
        "repeats of ignored",
        "explored",
        "new items clicked",
        "first click (median request)",
        "violations",
    ):
        table.add_column(column, justify="right")
    for name, log in logs.items():
        firsts = sorted(log.new_item_first_click.values())
        table.add_row(
            name,
            str(log.requests),
            str(log.impressions),
            f"{log.clicks / max(log.impressions, 1):.4f}",
            str(log.repeats_of_ignored),
            str(log.explored),
            f"{len(firsts)}/{args.new_items}",
            str(int(np.median(firsts))) if firsts else "—",
            str(sum(log.violations.values())) + (f" {dict(log.violations)}" if log.violations else ""),
        )
    return table


def variant_table(report: dict) -> Table:
    table = Table(title="variants (kgrec report, arm 'all')")
    for column in ("variant", "lists", "impressions", "clicks", "CTR [95% CI]", "conversions"):
        table.add_column(column, justify="right")
    table.add_column("CTR − blend's [95% CI]", justify="right")
    for row in report.get("variants", []):
        diff = row.get("ctr_diff")
        table.add_row(
            row["variant"],
            str(row["lists"]),
            str(row["impressions"]),
            str(row["clicks"]),
            f"{row['ctr']:.4f} [{row['ctr_low']:.4f}, {row['ctr_high']:.4f}]",
            str(row["conversions"]),
            "—" if diff is None else f"{diff:+.4f} [{row['ctr_diff_low']:+.4f}, {row['ctr_diff_high']:+.4f}]",
        )
    return table


def plot(logs: dict[str, ArmLog], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, log in logs.items():
        ax.plot(range(1, len(log.ctr_by_day) + 1), log.ctr_by_day, marker="o", label=name)
    ax.set_xlabel("simulated day")
    ax.set_ylabel("clicks per impression")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=400, help="users of the synthetic world")
    parser.add_argument("--items", type=int, default=600, help="items of the synthetic world")
    parser.add_argument("--seed", type=int, default=42, help="seed of the world")
    parser.add_argument("--days", type=int, default=6, help="simulated days")
    parser.add_argument("--requests-per-day", type=int, default=300, help="lists asked for per day")
    parser.add_argument("--k", type=int, default=10, help="list length")
    parser.add_argument("--new-items", type=int, default=12, help="planted new items")
    parser.add_argument("--new-items-day", type=int, default=1, help="day (0-based) the new items arrive")
    parser.add_argument("--retire-day", type=int, default=3, help="day (0-based) items are hidden or expire")
    parser.add_argument("--exploration-share", type=float, default=0.2, help="share of positions explored")
    parser.add_argument("--fatigue-half-life", type=float, default=3.0, help="impressions that halve an ignored score")
    parser.add_argument("--arms", default="all,no_fatigue,no_exploration", help="arms to run, comma-separated")
    parser.add_argument("--keep-server", action="store_true", help="leave the simulator's Neo4j running")
    args = parser.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    settings = online_settings()
    launcher.start(settings)
    logs: dict[str, ArmLog] = {}
    try:
        world, taste = build_world(args.users, args.items, args.seed)
        load_world(settings, world)
        console.print("training the two models of the variant test …")
        versions = train_models(settings)
        for name in args.arms.split(","):
            logs[name] = run_arm(name, settings, world, taste, versions, args)
    finally:
        if not args.keep_server:
            launcher.stop(settings)
    wide = Console(width=max(console.width, 160))
    wide.print(summary_table(logs, args))
    if "all" in logs:
        wide.print(variant_table(logs["all"].report))
    figure = OUT / "online.png"
    plot(logs, figure)
    path = OUT / "online.json"
    path.write_text(
        json.dumps(
            {
                name: {
                    **log.__dict__,
                    "violations": dict(log.violations),
                    "variants": dict(log.variants),
                    "new_item_impressions": dict(log.new_item_impressions),
                }
                for name, log in logs.items()
            },
            indent=2,
        )
    )
    console.print(f"figures written to {path} and {figure}")


if __name__ == "__main__":
    main()
