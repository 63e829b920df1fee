"""The Ray engine: batch segments as Ray Data ``map_batches`` over a pool of actors.

How a segment runs
    The driver pickles each batch (a list of :class:`Item`) into one row of a Ray Data dataset
    (``ray.data.from_items``, one block per batch) and maps :class:`_BatchWorker` over it with
    ``batch_size=1`` on an actor pool of ``workers`` actors. Each actor calls
    :func:`~garrison.pipeline._run.run_stages` -- the same pure function the local engine calls
    -- whose per-process cache opens a stage's resources (the MiniLM model) once per actor. The
    driver iterates the output rows as they are produced (streaming), so the sink writes a batch
    while later batches are still being computed.

    Every segment uses actors, model-free ones too: a ``task`` pool would save nothing measurable
    here (stages cost milliseconds per batch, a task's scheduling about as much) and one code path
    is simpler to reason about and test.

Failures
    An exception in a stage is caught inside the actor and comes back as an error row: that batch
    becomes :func:`~garrison.pipeline._run.failed_batch`, the run goes on. A worker that dies
    (segfault, killed for memory) loses the batch it was running; Ray Data is told to skip lost
    blocks (``max_errored_blocks=-1``) and the engine runs the batches that came back from
    neither path once more on a fresh pool, and those still missing once more each alone (a
    dying worker can take the batches queued on it down too). A batch lost every time fails.
    Actors are not restarted in place (``max_restarts=0``): a poisoned batch cannot loop.

    A lost node (``kill -9`` of its raylet, a power loss) takes its actors and the blocks they
    held. Ray Data then often ends the whole segment with a Ray error (``ActorDiedError``, an
    actor that died while starting, a lost object) rather than skipping blocks. The results
    already handed back stay written; the batches that did not come back run again on a fresh
    pool, sized to the CPUs of the nodes still alive, so the run can finish on them. A second
    such failure in the same segment stops the run with :class:`RayClusterFailure`, which says
    what Ray reported and that the batches not run stay pending: the next ``garrison run`` redoes
    only those documents.

Where Ray runs
    Without ``address`` the engine starts a private Ray on loopback (``num_cpus`` = ``workers``
    or every core, no dashboard, no usage stats, a capped object store) and shuts it down in
    :meth:`RayEngine.close`. With ``address`` (``host:6379`` or ``ray://host:10001``; without
    one, ``RAY_ADDRESS`` when set) it connects to that cluster. If the caller already initialized
    Ray, that session is used and left alone.
    Workers get the driver's offline settings (``HF_HUB_OFFLINE``...) through ``runtime_env``
    environment variables only: nothing is ever downloaded or installed on the workers.
"""

from __future__ import annotations

import logging
import os
import pickle
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from garrison.core.errors import EnvironmentProblem, MissingExtra
from garrison.pipeline._run import BatchResult, failed_batch, run_stages
from garrison.pipeline._stage import STAGES, Item, Stage
from garrison.pipeline.engines import Engine
from garrison.pipeline.spec import StageSpec

_log = logging.getLogger(__name__)

__all__ = ["DEFAULT_OBJECT_STORE_MB", "RayClusterFailure", "RayEngine"]

#: Object store of a Ray the engine starts itself (MiB); ``GARRISON_RAY_OBJECT_STORE_MB`` overrides.
DEFAULT_OBJECT_STORE_MB = 200
#: Environment variables the workers inherit from the driver when set (offline models, caches).
FORWARDED_ENV = (
    "HF_HOME",
    "HF_HUB_CACHE",
    "SENTENCE_TRANSFORMERS_HOME",
    "TOKENIZERS_PARALLELISM",
    "OMP_NUM_THREADS",
    "GARRISON_DEBUG",
)
#: Always set on the workers: Garrison's models ship in packages and are never downloaded.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
#: Segment-wide Ray failures (a lost node, say) tolerated per segment before the run stops.
POOL_FAILURES = 1


class RayClusterFailure(EnvironmentProblem):
    """Ray failed under a batch segment more often than the engine retries (a lost node).

    The batches already handed back are written; ``pending`` batches of the segment were not
    run and stay to do. ``ray_error`` is the name of what Ray raised.
    """

    code = "ray-cluster-failure"

    def __init__(self, exc: BaseException, *, pending: int, batches: int) -> None:
        lines = str(exc).strip().splitlines()
        said = lines[0][:300] if lines else ""
        super().__init__(
            f"The Ray cluster failed under the run ({type(exc).__name__}: {said}); {pending} of "
            f"{batches} batches were not run and stay pending. Check the cluster's nodes "
            "(ray status), then run the pipeline again: it redoes only the documents not "
            "written."
        )
        self.ray_error = type(exc).__name__
        self.pending = pending
        self.batches = batches


def _import_ray() -> ModuleType:
    try:
        import ray
        import ray.data  # the engine needs Ray Data, not only Ray core
    except ImportError as exc:
        raise MissingExtra("ray", "ray[data]") from exc
    return ray


def worker_env() -> dict[str, str]:
    """The environment variables every Ray worker gets (``runtime_env={"env_vars": ...}``)."""
    env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    env.update(OFFLINE_ENV)
    return env


def join_token_auth() -> None:
    """Send this host's Ray token when joining a cluster, as ``ray start --head`` does.

    Ray 2.60 turns token authentication on for a head where a token exists, but a process that
    joins (a driver, a worker node) only uses it with ``RAY_AUTH_MODE=token``; without that it
    is refused with ``InvalidAuthToken``. An explicit ``RAY_AUTH_MODE`` is left alone.
    """
    try:
        from ray._private.authentication import authentication_token_setup as auth
    except ImportError:  # a Ray without token authentication
        return
    auth.maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


class _BatchWorker:
    """A Ray Data actor: runs one segment of stages over one pickled batch per call."""

    def __init__(
        self,
        specs: Sequence[StageSpec],
        resources: Mapping[str, Any],
        stages: Mapping[str, type[Stage[Any]]],
    ) -> None:
        # Stages registered in the driver (plugins, tests) exist here even if their module
        # was never imported in this process.
        for name, cls in stages.items():
            STAGES.setdefault(name, cls)
        self.specs = list(specs)
        self.resources = dict(resources)

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[Any]]:
        indexes: list[int] = []
        results: list[bytes] = []
        errors: list[str] = []
        for index, payload in zip(batch["index"], batch["payload"], strict=True):
            items: list[Item] = pickle.loads(payload)  # noqa: S301 -- the driver's bytes
            try:
                result = run_stages(self.specs, items, self.resources)
            except Exception as exc:  # any stage error fails this batch only
                indexes.append(int(index))
                results.append(b"")
                errors.append(f"error: {type(exc).__name__}: {exc}")
                continue
            indexes.append(int(index))
            results.append(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
            errors.append("")
        return {"index": indexes, "result": results, "error": errors}


class RayEngine(Engine):
    """Batch segments on Ray Data actors; a local Ray on loopback, or a cluster at ``address``."""

    name = "ray"

    def __init__(
        self,
        resources: Mapping[str, Any],
        *,
        workers: int | None = None,
        address: str | None = None,
        object_store_mb: int | None = None,
    ) -> None:
        super().__init__(resources)
        self._ray = _import_ray()
        self.workers = workers
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.object_store_mb = object_store_mb or int(
            os.environ.get("GARRISON_RAY_OBJECT_STORE_MB", DEFAULT_OBJECT_STORE_MB)
        )
        #: Processes that ran batches, with how many each (the equivalence tests read it).
        self.pids: dict[int, int] = {}
        self._connected = False
        self._owns_ray = False

    # -- Ray session -------------------------------------------------------------------------

    def _connect(self) -> None:
        """Start or join Ray, once (lazily: a run that fails before its first batch starts none)."""
        if self._connected:
            return
        ray = self._ray
        self._connected = True
        if ray.is_initialized():
            return
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        options: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.WARNING,
            "runtime_env": {"env_vars": worker_env()},
        }
        if self.address is None:
            options.update(
                address="local",
                num_cpus=self.workers or os.cpu_count() or 1,
                object_store_memory=self.object_store_mb * 1024 * 1024,
                _node_ip_address="127.0.0.1",
            )
        else:
            options["address"] = self.address
            join_token_auth()
            if not self.address.startswith("ray://") and _is_loopback(self.address):
                # This host may have other addresses; the head listens on loopback only.
                options["_node_ip_address"] = "127.0.0.1"
        # Ray 2.60 turns on token authentication and says so on every start; the token lives
        # in ~/.ray/auth_token (docs/engines.md), which is not news worth a terminal line.
        auth_log = logging.getLogger("ray._private.authentication.authentication_token_setup")
        auth_level = auth_log.level
        auth_log.setLevel(logging.ERROR)
        try:
            ray.init(**options)
        except Exception as exc:
            where = self.address or "a local Ray on 127.0.0.1"
            raise EnvironmentProblem(
                f"Could not start or reach {where} ({type(exc).__name__}: {exc}); check "
                "--address, or run with --engine local."
            ) from exc
        finally:
            auth_log.setLevel(auth_level)
        self._owns_ray = True

    def close(self) -> None:
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns_ray = False
        self._connected = False

    def describe(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "workers": self.workers,
            "address": self.address or "local",
            "ray": self._ray.__version__,
        }

    def _pool_size(self, batches: int) -> int:
        # Each actor takes a CPU: a pool larger than the live nodes' CPUs would wait forever
        # for actors that cannot be placed (after a node was lost, say).
        cpus = int(self._ray.cluster_resources().get("CPU", 1)) or 1
        size = cpus if self.workers is None else min(self.workers, cpus)
        return max(1, min(size, batches))

    # -- the map -------------------------------------------------------------------------------

    def map_batches(
        self, specs: Sequence[StageSpec], batches: Sequence[list[Item]]
    ) -> Iterator[BatchResult]:
        if not batches:
            return
        self._connect()
        failures = _ray_failures(self._ray)
        pending = set(range(len(batches)))
        # Batches lost with a dying worker run again on a fresh pool; those lost again run
        # once more each alone, so a batch that kills its worker fails without taking the
        # batches queued beside it down too. A failure of the whole segment (a lost node)
        # reruns what is pending on a fresh pool without spending a try, POOL_FAILURES times.
        attempt, failed = 0, 0
        while pending and attempt < 3:
            if attempt < 2:
                groups = [sorted(pending)]
            elif len(pending) > 1:
                groups = [[index] for index in sorted(pending)]
            else:
                break
            try:
                for group in groups:
                    for index, result in self._run(specs, batches, group):
                        pending.discard(index)
                        if result.pid:
                            self.pids[result.pid] = self.pids.get(result.pid, 0) + 1
                        yield result
            except failures as exc:
                failed += 1
                if failed > POOL_FAILURES:
                    raise RayClusterFailure(
                        exc, pending=len(pending), batches=len(batches)
                    ) from exc
                _log.warning(
                    "Ray failed under a batch segment (%s); %d batches rerun on a fresh pool",
                    type(exc).__name__,
                    len(pending),
                )
                continue
            attempt += 1
        for index in sorted(pending):
            yield failed_batch(
                batches[index],
                "crashed: the Ray worker running this batch died on every try "
                "(see Ray's worker logs)",
            )

    def _run(
        self, specs: Sequence[StageSpec], batches: Sequence[list[Item]], indexes: list[int]
    ) -> Iterator[tuple[int, BatchResult]]:
        """Run the segment over ``batches[i]``, ``i`` in ``indexes``; lost batches are skipped."""
        ray = self._ray
        stages = {spec.name: STAGES[spec.name] for spec in specs}
        rows = [
            {"index": i, "payload": pickle.dumps(batches[i], protocol=pickle.HIGHEST_PROTOCOL)}
            for i in indexes
        ]
        with _ray_data_quiet(ray):
            dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
            del rows
            context = dataset.context
            context.enable_progress_bars = False
            context.max_errored_blocks = -1  # a lost batch is skipped here and retried above
            with warnings.catch_warnings():
                # Ray 2.60 deprecates passing actor options as keyword arguments, with no named
                # replacement for max_restarts yet.
                warnings.filterwarnings(
                    "ignore", message=".*ray_remote_args.*", category=DeprecationWarning
                )
                mapped = dataset.map_batches(
                    _BatchWorker,
                    batch_size=1,
                    batch_format="numpy",
                    compute=ray.data.ActorPoolStrategy(size=self._pool_size(len(indexes))),
                    fn_constructor_kwargs={
                        "specs": list(specs),
                        "resources": self.resources,
                        "stages": stages,
                    },
                    num_cpus=1,
                    max_restarts=0,
                )
            for row in mapped.iter_rows():
                index = int(row["index"])
                if row["error"]:
                    yield index, failed_batch(batches[index], str(row["error"]))
                else:
                    yield index, pickle.loads(row["result"])  # noqa: S301 -- our actor's bytes


def _ray_failures(ray: ModuleType) -> tuple[type[BaseException], ...]:
    """What Ray (Data) raises when the cluster fails under a segment, not a stage's error.

    A stage's exception never gets here: :class:`_BatchWorker` returns it as an error row.
    """
    from ray.data.exceptions import ExecutionTimeoutError

    return (ray.exceptions.RayError, ExecutionTimeoutError)


def _is_loopback(address: str) -> bool:
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


@contextmanager
def _ray_data_quiet(ray: ModuleType) -> Iterator[None]:
    """Keep Ray Data's console chatter (plans, progress, skipped blocks) off the terminal.

    Its log file under the Ray session directory still gets everything.
    """
    with warnings.catch_warnings():
        # Ray 2.60's DataContext warns about its own deprecated defaults when first built.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ray\.data\..*")
        ray.data.DataContext.get_current()
    logger = logging.getLogger("ray.data")
    consoles = [h for h in logger.handlers if not isinstance(h, logging.FileHandler)]
    consoles = [h for h in consoles if type(h).__name__ != "SessionFileHandler"]
    levels = [h.level for h in consoles]
    for handler in consoles:
        handler.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for handler, level in zip(consoles, levels, strict=True):
            handler.setLevel(level)
