"""Where a run trains: one place that turns `--distribute` into a TensorFlow strategy or a Keras distribution.

keras_ssl adds no engine of its own: TensorFlow runs use `tf.distribute`
(MirroredStrategy on one machine, MultiWorkerMirroredStrategy across
processes configured by TF_CONFIG), JAX runs use `keras.distribution`
(DataParallel over local devices, or over every process's devices after
`jax.distributed` has joined them). What this module adds is the choice by
name, bounded timeouts so that a lost worker ends the job instead of hanging
it, and an error that names the lost worker.
"""

import contextlib
import dataclasses
import json
import os
import re

import keras

KINDS = ("auto", "none", "mirrored", "multi-worker", "data-parallel")
# Environment variables of a JAX multi-process run (keras.distribution.initialize reads the same ones).
JAX_ADDRESS, JAX_PROCESSES, JAX_PROCESS_ID = (
    "KERAS_DISTRIBUTION_JOB_ADDRESSES",
    "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "KERAS_DISTRIBUTION_PROCESS_ID",
)


class WorkerLostError(RuntimeError):
    """A worker of a multi-worker run died or stopped answering; the others stop too."""


@dataclasses.dataclass
class Placement:
    """What a distribution scope gives: its kind, replicas (devices that split the batch) and processes."""

    kind: str
    num_replicas: int
    num_processes: int = 1
    process_id: int = 0
    description: str = ""


def _accelerators():
    return [d for d in keras.distribution.list_devices() if not d.lower().startswith("cpu")]


@contextlib.contextmanager
def distribution_scope(kind="auto", timeout_seconds=120):
    """Builds and trains methods created inside it on `kind`; yields a `Placement`.

    Args:
        kind: "none" (one device), "mirrored" (all local devices: TF
            MirroredStrategy, or JAX DataParallel), "data-parallel" (the same,
            named as in JAX), "multi-worker" (one process per machine: TF
            MultiWorkerMirroredStrategy from TF_CONFIG; JAX `jax.distributed`
            from KERAS_DISTRIBUTION_JOB_ADDRESSES / _NUM_PROCESSES /
            _PROCESS_ID), or "auto": all local devices when there is more
            than one accelerator, else one device.
        timeout_seconds: how long a collective (TF) or a missing heartbeat
            (JAX) may take before the run fails instead of hanging.
    """
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}. Received: {kind!r}")
    backend = keras.backend.backend()
    if kind == "auto":
        kind = "mirrored" if len(_accelerators()) > 1 else "none"
    if kind == "none":
        yield Placement("none", 1, description="one device")
        return
    if backend == "tensorflow":
        with _tensorflow_scope(kind, timeout_seconds) as placement:
            yield placement
    elif backend == "jax":
        with _jax_scope(kind, timeout_seconds) as placement:
            yield placement
    else:
        raise ValueError(
            f"--distribute {kind} needs the TensorFlow or JAX backend (tf.distribute / keras.distribution). "
            f"Received: KERAS_BACKEND={backend}"
        )


@contextlib.contextmanager
def _tensorflow_scope(kind, timeout_seconds):
    import tensorflow as tf

    if kind == "multi-worker":
        cluster = _tf_cluster()
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_seconds)
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        task = json.loads(os.environ["TF_CONFIG"])["task"]
        placement = Placement(
            kind,
            strategy.num_replicas_in_sync,
            num_processes=len(cluster),
            process_id=int(task["index"]),
            description=f"{len(cluster)} workers ({', '.join(cluster)}), {strategy.num_replicas_in_sync} replicas",
        )
    else:
        strategy = tf.distribute.MirroredStrategy()
        devices = strategy.extended.worker_devices
        placement = Placement(kind, strategy.num_replicas_in_sync, description=f"{len(devices)} local devices")
    with strategy.scope():
        yield placement


def _tf_cluster():
    """The worker addresses of TF_CONFIG, or a clear error when it is missing or malformed."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise ValueError(
            "--distribute multi-worker on TensorFlow reads the cluster from TF_CONFIG, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}} '
            "(docs/scaling.md shows how SLURM or Kubernetes set it). Received: TF_CONFIG is not set"
        )
    try:
        config = json.loads(text)
        workers = list(config["cluster"]["worker"])
        index = int(config["task"]["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"TF_CONFIG must name cluster.worker and task.index. Received: {text!r} ({error})") from None
    if not 0 <= index < len(workers):
        raise ValueError(f"TF_CONFIG task.index must be in [0, {len(workers)}). Received: {index}")
    return workers


@contextlib.contextmanager
def _jax_scope(kind, timeout_seconds):
    import jax

    num_processes, process_id = 1, 0
    if kind == "multi-worker":
        address = os.environ.get(JAX_ADDRESS)
        if not address or JAX_PROCESSES not in os.environ or JAX_PROCESS_ID not in os.environ:
            raise ValueError(
                f"--distribute multi-worker on JAX reads {JAX_ADDRESS} (the coordinator, process 0, as host:port), "
                f"{JAX_PROCESSES} and {JAX_PROCESS_ID} (docs/scaling.md). Received: "
                f"{ {k: os.environ.get(k) for k in (JAX_ADDRESS, JAX_PROCESSES, JAX_PROCESS_ID)} }"
            )
        num_processes, process_id = int(os.environ[JAX_PROCESSES]), int(os.environ[JAX_PROCESS_ID])
        if not jax.distributed.is_initialized():
            # What keras.distribution.initialize does, with bounded timeouts: a dead process is noticed within
            # `timeout_seconds` instead of the default 100 s heartbeat and 300 s start-up waits.
            jax.distributed.initialize(
                coordinator_address=address.split(",")[0],
                num_processes=num_processes,
                process_id=process_id,
                initialization_timeout=timeout_seconds,
                heartbeat_timeout_seconds=max(10, timeout_seconds // 4),
            )
    devices = keras.distribution.list_devices()
    # keras_ssl's inputs give each process its own rows of every global batch (`replicas.process_shard`), so
    # Keras must not shard them again.
    distribution = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(distribution)
    where = f"{num_processes} processes, " if num_processes > 1 else ""
    try:
        yield Placement(
            kind, len(devices), num_processes, process_id, description=f"{where}{len(devices)} devices (DataParallel)"
        )
    finally:
        keras.distribution.set_distribution(previous)


_TASK = re.compile(r"/job:worker/replica:\d+/task:(\d+)")
_LOST = (
    "unhealthy",
    "heartbeat",
    "collective ops is aborted",
    "failed to connect",
    "socket closed",
    "connection reset",
    "connection closed",
    "deadline exceeded",
    "unavailable",
    "timed out",
    "timeout",
    "peer",
    "coordination service",
    "gloo",
)


def lost_worker_error(error):
    """A `WorkerLostError` naming the lost worker when `error` comes from a dead or silent peer, else None."""
    text = f"{type(error).__name__}: {error}"
    lowered = text.lower()
    if not any(sign in lowered for sign in _LOST):
        return None
    tasks = sorted({int(t) for t in _TASK.findall(text)})
    workers = []
    if os.environ.get("TF_CONFIG"):
        with contextlib.suppress(ValueError):
            addresses = _tf_cluster()
            workers = [f"worker {t} ({addresses[t]})" for t in tasks if t < len(addresses)]
    elif keras.backend.backend() == "jax":
        workers = [f"process {p}" for p in _dead_jax_processes()]
    lost = ", ".join(workers) or (", ".join(f"worker {t}" for t in tasks) if tasks else "a worker")
    return WorkerLostError(
        f"Lost {lost}: it died or stopped answering, so this worker stops too instead of waiting for it. Restart "
        "every worker with the same command; with --checkpoint-dir the run resumes from its last backup. "
        f"Underlying error: {text.strip().splitlines()[0][:500]}"
    )


def _dead_jax_processes():
    """The JAX processes the coordination service no longer hears from (empty when it cannot tell)."""
    import jax

    with contextlib.suppress(Exception):  # a private client API: without it the message is less specific
        from jax._src import distributed as jax_distributed

        client, count = jax_distributed.global_state.client, jax.process_count()
        if client is not None and count > 1:
            live = set(client.get_live_nodes(list(range(count))))
            return [p for p in range(count) if p not in live]
    return []
