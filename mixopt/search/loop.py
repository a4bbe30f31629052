"""The mixture search loop: initial design, proxies as Ray tasks, strategy-driven acquisition, proposal.

::

    preflight (no training) ──► job lock ──► job files checked ──► nothing left to do? the stored proposal
                         │
    prepare_data ──► initial design (feasible.sample + strategy.initial)    meanwhile, in a thread: Ray
                         │                                              starts, its workers import torch
                 ┌──► submit Ray tasks while slots are free and the budget allows
                 │       │ ray.wait: the oldest finished ──► runs.jsonl (fsync) ──► MLflow (async) ──► display
                 │       │ failed ──► retry up to max_retries, then recorded as failed
                 │       │ wall time spent ──► cancel the runs in flight (they stay pending)
                 └── strategy.ask(run table, fresh candidates from the feasible set) when the design is used up
                         │ budget spent
                         ▼
                 proposal = strategy.recommend(run table, feasible set) [+ confirmation run]

The pipeline is kept full: a new run is submitted as soon as the oldest run in flight finishes (no waiting
for rounds). Results are taken in submission order, so the same seed gives the same mixtures whatever the
proxies' timing.

>>> result = run_search(load_job_config("examples/quickstart.yaml"))   # doctest: +SKIP
>>> result.proposal.weights                                              # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import numpy as np

from mixopt.errors import MixoptError
from mixopt.events import fallback, since, snapshot
from mixopt.proposal import Proposal
from mixopt.search.budget import Budget, Spend
from mixopt.search.lock import JobLock
from mixopt.search.phases import PhaseClock
from mixopt.search.progress import ProgressDisplay, Snapshot
from mixopt.search.proposal import build_proposal
from mixopt.search.ray_runtime import ray_session
from mixopt.search.report import HEARTBEAT_S
from mixopt.search.result import SearchResult, finished_result
from mixopt.search.reuse import apply_reuse, write_job_file
from mixopt.search.space import SearchSpace, make_job_strategy
from mixopt.search.state import (
    RUNS_FILE,
    STATE_FILE,
    JobState,
    Launch,
    RunEntry,
    atomic_write_text,
    check_rebuild,
    config_hash,
    read_runs,
)
from mixopt.search.workers import ProxyTask, proxy_slots, record_failure, run_seed, train_settings
from mixopt.tracking import tracking_uri

__all__ = ["SearchResult", "run_search"]

log = logging.getLogger(__name__)


def _weights_dict(domains: list[str], w: np.ndarray) -> dict[str, float]:
    return {d: float(x) for d, x in zip(domains, w, strict=True)}


class _Search:
    """One driver session of a job (state lives on disk, this object only for the session).

    Opening checks the job's files (one writer: the caller holds the :class:`~mixopt.search.lock.JobLock`);
    the data is tokenised and the search space built on first use (``space``), only when there is work.
    """

    def __init__(self, cfg, *, progress: bool, train_fn: Callable | None, rebuild_state: bool = False):
        from mixopt.objective import Objective

        self.cfg = cfg
        self.train_fn = train_fn
        if rebuild_state and not (cfg.job_dir / STATE_FILE).exists():
            check_rebuild(cfg, read_runs(cfg.job_dir / RUNS_FILE))
        # Refuse an incompatible resume or inconsistent job files before any work (one-line errors).
        self.state = JobState.open(cfg.job_dir, config_hash=config_hash(cfg), name=cfg.name,
                                   objective=Objective.parse(cfg.search.objective), rebuild=rebuild_state)
        self.fidelities = cfg.proxy.fidelity_list()
        self.resumed = bool(self.state.runs or self.state.meta["pending"] or self.state.meta["initial_design"])
        self.budget = Budget(cfg.budget)
        self.settings = train_settings(cfg)
        self.threads = max(1, int(math.floor(cfg.search.cpus_per_proxy)))
        self.display = ProgressDisplay(enabled=progress)
        self.progress = progress
        self.t0: float | None = None  # wall time counts from the start of the Ray session
        self.elapsed0 = float(self.state.meta.get("elapsed_s", 0.0))
        self.new_runs = 0

    # --- built on first use: a finished job needs none of them ---------------------------------------
    @cached_property
    def data(self):
        """The prepared data (``prepare_data`` is idempotent: up-to-date shards are reused)."""
        from mixopt.data import prepare_data

        return prepare_data(self.cfg, progress=self.progress)

    @cached_property
    def space(self) -> SearchSpace:
        return SearchSpace.from_data(self.cfg, self.data)

    @property
    def domains(self) -> list[str]:
        return self.space.domains

    @cached_property
    def strategy(self):
        return make_job_strategy(self.cfg, self.space.objective)

    def prepare(self) -> SearchSpace:
        """Tokenise the data (idempotent) and build the search space now, before Ray starts."""
        return self.space

    def has_work(self) -> bool:
        """Whether any proxy may still be launched: pending launches to re-run, or budget left. Nothing once
        the wall-time budget is spent (not even re-runs)."""
        elapsed = self.elapsed()
        if self.budget.wall_exhausted(elapsed):
            return False
        return bool(self.state.meta["pending"]) or self.budget.can_launch(Spend.of(self.state.runs), Spend(), elapsed)

    def finished_proposal(self) -> Proposal | None:
        """The stored proposal when the job has nothing left to do: no launch possible, ``proposal.json``
        made from exactly these runs and settings, and confirmed when ``search.confirm`` asks for it."""
        from mixopt.search.proposal import proposal_key

        if self.has_work() or not self.state.proposal_is_current(proposal_key(self.cfg, self.state.runs)):
            return None
        p = Proposal.from_dict(json.loads((self.state.job_dir / "proposal.json").read_text()))
        if self.cfg.search.confirm and "confirm_run_id" not in p.context:
            return None
        # confirmed worse under ``confirm: true`` and now asked to switch: not finished
        worse = (p.trust.get("confirmation") or {}).get("worse") and "unconfirmed" not in p.context
        return None if self.cfg.search.confirm == "switch" and worse else p

    # --- candidates ---------------------------------------------------------------------------------
    def candidates(self, round_index: int) -> np.ndarray:
        """Fresh feasible mixtures for one round (the constraints the proposal obeys, less the scored floors
        when they apply to the proposal only)."""
        return self.space.design_set.sample(self.cfg.search.candidates,
                                            seed=run_seed(self.cfg.seed, 10_000 + round_index), at_most=True)

    def elapsed(self) -> float:
        return self.elapsed0 + (time.time() - self.t0 if self.t0 is not None else 0.0)

    # --- launches -----------------------------------------------------------------------------------
    def make_launch(self, weights: dict[str, float], fid: int, source: str) -> Launch:
        rid = self.state.new_run_id("c" if source == "confirm" else "r")
        f = self.fidelities[fid]
        weights = self.space.leaf_weights(weights)  # a proxy always trains on the full mixture
        return Launch(rid, weights, fid, f.preset, int(f.tokens), run_seed(self.cfg.seed, int(rid[1:])), source,
                      float(self.space.level_costs[fid]))

    def repeated(self, launch: Launch) -> list[Launch]:
        """``launch`` and ``search.repeats - 1`` more runs of the same mixture and fidelity, each with its own
        run id (so its own seed, ``run_seed(job seed, run index)``)."""
        more = [self.make_launch(dict(launch.weights), launch.fidelity, launch.source)
                for _ in range(self.cfg.search.repeats - 1)]
        return [launch, *more]

    def initial_design(self) -> list[dict]:
        meta = self.state.meta
        if meta["initial_design"] is None:
            cands = self.candidates(-1)
            picks = self.strategy.initial(self.space.empty_table(), cands, self.cfg.search.n_init)
            design = [{"weights": _weights_dict(self.domains, cands[i]), "fidelity": int(f)} for i, f in picks]
            self.state.set(initial_design=design, init_next=int(meta.get("init_next", 0)))  # kept by a rebuild
        return meta["initial_design"]

    def table(self):
        """Every run of the job so far as a run table (what the strategy sees)."""
        return self.space.table(self.state.runs)

    def verification(self) -> Launch | None:
        """A run of the current proposal when it is low-trust and was never run (``search.verify_proposals``).

        The proposal is the strategy's ``recommend`` on the runs so far; :func:`mixopt.trust.assess` judges
        it. Each distinct proposal is run at most once."""
        from mixopt.trust import needs_run, warnings_line

        table = self.table()
        if not self.cfg.search.verify_proposals or not table.at_level(-1).any():
            return None
        p = self.strategy.recommend(table, self.space.feasible)
        if p.rule != "predicted" or p.observed is not None:
            return None
        key = [round(float(p.weights[d]), 6) for d in self.domains]
        done = self.state.meta.setdefault("verified", [])
        if key in done:
            return None
        p.trust = self.strategy.trust(table, p)
        if not needs_run(p):
            return None
        done.append(key)  # saved with the launch by add_pending
        self.display.message(f"the proposal is low-trust ({warnings_line(p.trust['warnings'])}): running it next "
                             "at the target fidelity")
        return self.make_launch(dict(p.weights), len(self.fidelities) - 1, "verify")

    def ask(self, n: int) -> list[Launch]:
        round_index = int(self.state.meta.get("asks", 0))
        check = self.verification()
        if check is not None:
            self.state.meta["asks"] = round_index + 1
            return self.repeated(check)
        cands = self.candidates(round_index)
        try:
            picks = self.strategy.ask(self.table(), cands, n)
        except (MixoptError, ValueError, RuntimeError, np.linalg.LinAlgError) as e:
            # e.g. a surrogate that cannot be fitted on so few runs yet: this round picks at random
            from mixopt.strategies import make_strategy

            fallback("search.ask_failed", f"strategy {self.cfg.search.strategy} could not pick "
                     f"({str(e).splitlines()[0][:200] if str(e) else type(e).__name__}); picking at random this round",
                     log)
            picks = make_strategy("random", seed=run_seed(self.cfg.seed, 20_000 + round_index)).ask(
                self.table(), cands, n)
        self.state.meta["asks"] = round_index + 1  # saved with the launches by add_pending
        return [x for i, f in picks for x in self.repeated(self.make_launch(_weights_dict(self.domains, cands[i]),
                                                                              int(f), "ask"))]

    # --- the pipeline -------------------------------------------------------------------------------
    def run(self, ray) -> None:
        cfg = self.cfg
        task = ProxyTask(num_cpus=cfg.search.cpus_per_proxy, num_gpus=cfg.search.gpus_per_proxy)
        slots = proxy_slots(cfg, ray.cluster_resources().get("CPU", 1))
        inflight: dict = {}
        queue: deque[Launch] = deque(self.state.pending_launches())  # re-run what was in flight
        if queue:
            self.display.message(f"resuming: re-queued {len(queue)} run(s) that were in flight")
        design = self.initial_design()

        def submit(launch: Launch) -> None:
            self.state.add_pending(launch)  # persisted before it is submitted
            ref = task.submit(data_dir=str(cfg.data_dir), preset=launch.preset, weights=launch.weights,
                              tokens=launch.tokens, seed=launch.seed, settings=self.settings, threads=self.threads,
                              device=cfg.proxy.device, train_fn=self.train_fn)
            inflight[ref] = launch

        def next_launches(free: int) -> list[Launch]:
            if self.budget.wall_exhausted(self.elapsed()):
                return []
            if queue:
                return [queue.popleft()]
            spent = Spend.of(self.state.runs)
            running = Spend(len(inflight), sum(x.tokens for x in inflight.values()),
                            sum(x.cost for x in inflight.values()))
            if not self.budget.can_launch(spent, running, self.elapsed()):
                return []
            runs_left = None if self.budget.runs is None else self.budget.runs - spent.runs - running.runs
            if runs_left is not None:
                free = min(free, runs_left)
            i = int(self.state.meta.get("init_next", 0))
            if i < len(design):
                launches = self.repeated(self.make_launch(design[i]["weights"], design[i]["fidelity"], "init"))
                self.state.meta["init_next"] = i + 1  # saved with the launches by add_pending
                return launches[:runs_left]
            # The strategy needs a few revealed runs; wait for in-flight ones rather than ask blind.
            if inflight and len(self.state.ok_runs) < 2:
                return []
            # every repeat counts: a round asks for as many mixtures as free runs allow (at least one)
            n = max(1, min(-(-free // cfg.search.repeats), cfg.search.batch_size))
            return self.ask(n)[:runs_left]

        last_save = time.time()
        while True:
            while len(inflight) < slots:
                launches = next_launches(slots - len(inflight))
                if not launches:
                    break
                self.state.add_pending(*launches)  # a mixture's repeats are persisted together
                for launch in launches:
                    submit(launch)
            self._show()
            if not inflight:
                break
            if self.budget.wall_exhausted(self.elapsed()):
                self.interrupt(ray, inflight)
                break
            # Results are taken in submission order, whichever finishes first: the strategy then sees the
            # same runs in the same order on every machine and load, so the same seed gives the same
            # mixtures with parallel proxies too (a run that finishes early waits for the older ones).
            done, _ = ray.wait([next(iter(inflight))], num_returns=1, timeout=1.0)
            for ref in done:
                launch = inflight.pop(ref)
                retry = self.finish(ray, ref, launch)
                if retry:
                    submit(launch)
            if time.time() - last_save > HEARTBEAT_S:
                self.state.set(elapsed_s=self.elapsed(), heartbeat=time.time())
                last_save = time.time()
        self.state.set(elapsed_s=self.elapsed())
        self.final_fraction = self.budget.fraction(Spend.of(self.state.runs), self.elapsed())

    def interrupt(self, ray, inflight: dict) -> None:
        """The wall-time budget is spent: cancel the runs in flight. They stay pending in ``state.json``
        (interrupted), so a resume with more budget re-runs them with the same seed."""
        from ray.exceptions import RayError

        for ref in inflight:
            try:
                ray.cancel(ref, force=True)
            except (RayError, ValueError, TypeError) as e:  # already finished or gone: it stays pending
                log.debug("could not cancel %s: %s", inflight[ref].run_id, e)
        ids = ", ".join(x.run_id for x in inflight.values())
        self.display.message(f"wall-time budget reached: cancelled {len(inflight)} run(s) in flight ({ids}); "
                             "they stay pending and re-run on a resume with more budget")
        inflight.clear()

    def finish(self, ray, ref, launch: Launch) -> bool:
        """Handle one finished task; returns True when it should be retried."""
        from ray.exceptions import RayError, RayTaskError

        rec = None
        try:
            rec = ray.get(ref)
            why = record_failure(rec, self.space.eval_targets)
        except RayTaskError as e:
            cause = getattr(e, "cause", None) or e
            why = f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1] if str(cause).strip() else ''}"
        except RayError as e:  # worker crashed, node died, object lost
            why = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        if why is not None:
            n = self.state.record_retry(launch.run_id, why[:1000])
            if n <= self.cfg.search.max_retries:
                self.display.message(f"{launch.run_id} failed ({why[:120]}); retry {n}/{self.cfg.search.max_retries}")
                return True
        reasons = self.state.retry_reasons(launch.run_id)
        final = {d: float(v) for d, v in (rec or {}).get("final_loss", {}).items()} if rec else {}
        metrics = {k: float(v) for k, v in ((rec or {}).get("metrics") or {}).items()}
        objective = None
        if why is None:
            values, targets = {**metrics, **final}, self.space.targets
            objective = float(self.space.objective.values([[values[t] for t in targets]], targets)[0])
        entry = RunEntry(
            run_id=launch.run_id, weights=launch.weights, fidelity=launch.fidelity, preset=launch.preset,
            tokens=launch.tokens, seed=launch.seed, source=launch.source,
            status="ok" if why is None else "failed", objective=objective, final_loss=final,
            flops=float((rec or {}).get("flops") or launch.cost), wall_time=float((rec or {}).get("wall_time") or 0.0),
            reason=why, attempts=reasons[:-1] if why is not None else reasons, record=rec, finished_at=time.time(),
            metrics=metrics,
        )
        self.state.append_run(entry)  # on disk before anything else sees it
        self.new_runs += 1
        self.tracker.log_run(entry)
        best = self.state.best()
        spent = Spend.of(self.state.runs)
        self.tracker.log_progress(spent.runs, {
            "best_objective": best.objective if best else None,
            "budget_fraction": self.budget.fraction(spent, self.elapsed()),
            "flops_spent": spent.flops,
        })
        msg = (f"{entry.run_id} {entry.status} objective {entry.objective:.4f}" if entry.ok
               else f"{entry.run_id} failed after {len(reasons)} attempt(s): {str(why)[:120]}")
        self._show(msg + f" ({entry.preset}, {entry.tokens} tokens)")
        return False

    def _show(self, event: str | None = None) -> None:
        spent = Spend.of(self.state.runs)
        best = self.state.best()
        self.display.update(Snapshot(
            done=len(self.state.ok_runs), running=len(self.state.meta["pending"]), failed=len(self.state.failed_runs),
            best=best.objective if best else None, budget=self.budget.fraction(spent, self.elapsed()),
            elapsed_s=self.elapsed()), event)

    # --- the end ------------------------------------------------------------------------------------
    def confirm(self, ray, proposal: Proposal) -> RunEntry | None:
        """Train the proposal at the target fidelity (once per distinct proposal); returns its entry."""
        w = proposal.weights
        target = len(self.fidelities) - 1
        for r in self.state.runs:
            if r.source == "confirm" and r.fidelity == target and all(abs(r.weights[d] - w[d]) < 1e-9 for d in w):
                return r
        launch = self.make_launch(dict(w), target, "confirm")
        task = ProxyTask(num_cpus=self.cfg.search.cpus_per_proxy, num_gpus=self.cfg.search.gpus_per_proxy)
        self.display.message(f"confirmation run {launch.run_id} of the proposal at the target fidelity")
        while True:
            self.state.add_pending(launch)
            ref = task.submit(data_dir=str(self.cfg.data_dir), preset=launch.preset, weights=launch.weights,
                              tokens=launch.tokens, seed=launch.seed, settings=self.settings, threads=self.threads,
                              device=self.cfg.proxy.device, train_fn=self.train_fn)
            ray.wait([ref], num_returns=1)
            if not self.finish(ray, ref, launch):
                return self.state.runs[-1]


def run_search(cfg, *, address: str | None = None, progress: bool = True,
               train_fn: Callable | None = None, rebuild_state: bool = False) -> SearchResult:
    """Run (or resume) the mixture search described by ``cfg`` and return its proposal and runs.

    Everything that needs no training is checked first (:func:`mixopt.search.preflight.preflight`), then
    the job's lock is taken (one writer per job) and its files are checked against each other. Ray is
    started only when a proxy is to run (a finished job returns its stored proposal), in the background
    while the data is prepared, and its workers import torch before the first proxy arrives.

    Args:
        cfg: the job (``JobConfig``); its state lives under ``cfg.job_dir``.
        address: a Ray cluster to join (else ``cfg.ray.address``, ``RAY_ADDRESS``, or embedded Ray).
        progress: show the live progress display and data-preparation progress.
        train_fn: replaces ``proxies.train_proxy`` in the workers (same signature); a test seam.
        rebuild_state: rebuild a missing ``state.json`` from ``runs.jsonl`` (see ``state.rebuild_meta``).
    Raises:
        ConfigError: an invalid job, or one that exists with an incompatible config (see ``config_hash``).
        JobLockedError: another process is searching (or reporting on) this job.
        MixoptError: ``state.json`` and ``runs.jsonl`` disagree (the message says how to fix it).
    """
    from mixopt.search.preflight import preflight

    clock = PhaseClock()
    with clock("preflight"):
        apply_reuse(cfg)
        preflight(cfg)
    with JobLock(cfg.job_dir, purpose="search"):
        return _run_locked(cfg, address=address, progress=progress, train_fn=train_fn, rebuild_state=rebuild_state,
                           clock=clock)


def _run_locked(cfg, *, address, progress, train_fn, rebuild_state, clock: PhaseClock) -> SearchResult:
    from mixopt.tracking import Tracker

    with clock("job files"):
        s = _Search(cfg, progress=progress, train_fn=train_fn, rebuild_state=rebuild_state)
        write_job_file(cfg)  # what a later `--reuse` of this job reads
        done = s.finished_proposal()
    if done is not None:  # nothing to run, nothing to refit: no data preparation, no Ray, no wall time spent
        return finished_result(cfg, s, done, Spend.of(s.state.runs), clock.to_dict())
    events0 = snapshot()
    s.state.set(sessions=int(s.state.meta.get("sessions", 0)) + 1, heartbeat=time.time())
    s.tracker = tracker = Tracker(cfg, s.state)
    tracker.start()  # the store is opened in the tracker's thread, off the critical path
    status = "FAILED"
    proposal, plots, runtime = None, [], None
    try:
        with contextlib.ExitStack() as stack:
            if s.has_work():  # Ray starts (and its workers warm up) while the data and the design are prepared
                s.t0 = time.time()
                runtime = stack.enter_context(ray_session(cfg, address, warm=proxy_slots(cfg)))
            with clock("data"):
                s.prepare()
            if runtime is not None:
                with clock("design"):
                    s.initial_design()
                with clock("wait for Ray"):
                    ray = runtime.ready()
                s.display.message(f"search {cfg.name}: strategy {cfg.search.strategy}, budget {s.budget.describe()}, "
                                  f"{len(s.state.runs)} run(s) on disk, job dir {cfg.job_dir.resolve()}")
                if s.space.reuse is not None:
                    s.display.message(s.space.reuse.describe())
                with clock("proxies"):
                    s.run(ray)
            s.display.close()
            proposal, plots = build_proposal(cfg, s.state, s.space, strategy=s.strategy, clock=clock)
            if proposal is not None and cfg.search.confirm:
                if runtime is None:
                    s.t0 = s.t0 or time.time()
                    runtime = stack.enter_context(ray_session(cfg, address))
                with clock("confirmation run"):
                    entry = s.confirm(runtime.ready(), proposal)
                if entry is not None:  # the observed objective of exactly the proposed weights
                    from mixopt.trust import confirmation_check

                    proposal.observed = entry.objective
                    proposal.context |= {"confirm_run_id": entry.run_id, "confirm_status": entry.status}
                    if entry.status == "ok" and entry.objective is not None:
                        worse = confirmation_check(proposal.trust, entry.objective, entry.run_id, proposal.weights)
                        if worse and cfg.search.confirm == "switch":
                            from mixopt.search.proposal import switch_to_best_run

                            switch_to_best_run(cfg, s.state, s.space, proposal)
                            s.display.message(f"the confirmation run did worse than {proposal.run_id}: that run "
                                              "is the proposal (search.confirm: switch)")
                    atomic_write_text(s.state.job_dir / "proposal.json", json.dumps(proposal.to_dict(), indent=1))
            if runtime is not None:
                clock.add("Ray start", runtime.started_at, runtime.ready_at)
                clock.add("worker warm-up", runtime.ready_at, runtime.warm_done())
            stop = time.time()
        clock.add("Ray shutdown", stop, time.time())
        if proposal is not None:
            tracker.log_proposal(proposal.to_dict(), len(s.state.runs), plots)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        s.display.close()
        # every fallback taken in this session, counted (and already logged as a warning when it happened)
        counts = Counter(s.state.meta.get("fallbacks", {})) + Counter(since(events0))
        s.state.set(elapsed_s=s.elapsed(), heartbeat=None, fallbacks=dict(counts))
        tracker.log_tags({f"mixopt.fallbacks.{k}": v for k, v in counts.items()})
        # interrupted (Ctrl-C, or SIGTERM from `mixopt cancel`: Ray kills the job 3 s later): end the parent
        # run KILLED if MLflow answers at once, and don't wait on the rest of the queue
        with clock("tracking drain"):
            tracker.close(status, timeout=2.0 if status == "KILLED" else 60.0)
        clock.add("store", tracker.opened[0], tracker.opened[1])
    spent = Spend.of(s.state.runs)
    return SearchResult(
        job_dir=Path(cfg.job_dir).resolve(), proposal=proposal, runs=list(s.state.runs), spent=spent.to_dict(),
        budget_fraction=getattr(s, "final_fraction", s.budget.fraction(spent, s.elapsed())), tracking_uri=tracking_uri(cfg),
        experiment=cfg.experiment_name(), parent_run_id=tracker.parent_run_id,
        unlogged=list(s.state.meta.get("unlogged", [])), tracking_error=tracker.error, plots=plots,
        resumed=s.resumed, new_runs=s.new_runs, phases=clock.to_dict(),
    )
