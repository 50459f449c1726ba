"""Data parallelism with `jax.jit` over a `Mesh`: the batch split over a 'data' axis,
parameters and optimizer state replicated. One code path from 1 device to many hosts.

Every process places the same dataset on its devices (`DataParallel.replicate`); each
device gathers its share of every batch there, and XLA inserts the gradient all-reduce.
Multi-host runs join through `jax.distributed.initialize` (JAX's own runtime).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import threading
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from cnn_jax.errors import ConfigError, PeerTimeoutError

DATA_AXIS = 'data'

# How long a process of a multi-process run waits for the others (`any_process`) or for
# a computation they share (`wait_for_devices`) before it stops with one line: long
# enough for a peer that is still compiling, evaluating or checkpointing.
AGREEMENT_TIMEOUT_ENV = 'CNN_JAX_AGREEMENT_TIMEOUT_S'
DEFAULT_AGREEMENT_TIMEOUT_S = 600.0


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """Joins this process to a multi-process run (call before anything touches JAX).

  Unset arguments come from $JAX_COORDINATOR_ADDRESS, $JAX_NUM_PROCESSES and
  $JAX_PROCESS_ID, else from JAX's cluster auto-detection (Slurm, Open MPI, TPU pods,
  Kubernetes). On CPU the processes talk over gloo.
  """
  env = os.environ
  if num_processes is None and env.get('JAX_NUM_PROCESSES'):
    num_processes = int(env['JAX_NUM_PROCESSES'])
  if process_id is None and env.get('JAX_PROCESS_ID'):
    process_id = int(env['JAX_PROCESS_ID'])
  # Harmless on GPU/TPU; without it multi-process CPU collectives are unavailable.
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)
  if jax.default_backend() == 'cpu':
    # On jax 0.12.1 a multi-process CPU run that took programs from the persistent
    # compilation cache deadlocked in its first cross-process all-reduce (a rerun
    # resuming a stopped run, say); compiled afresh it does not.
    jax.config.update('jax_enable_compilation_cache', False)


def use_cpu_cores(count: int | None = None) -> int:
  """Makes XLA:CPU one device per core this process may run on (default: all of them).

  Why: XLA:CPU runs this network's convolutions and matmuls on one core per device, so
  on a one-device CPU the other cores idle; one device per core turns them into data
  parallelism (docs/speed.md). Call before anything touches JAX; afterwards, or where
  XLA_FLAGS already sets --xla_force_host_platform_device_count, it changes nothing.
  Returns the device count asked for (0 where it changed nothing).
  """
  if 'xla_force_host_platform_device_count' in os.environ.get('XLA_FLAGS', ''):
    return 0
  count = count or len(os.sched_getaffinity(0))
  try:
    jax.config.update('jax_num_cpu_devices', count)
  except RuntimeError:  # Backends already initialized: too late to change.
    return 0
  if count > 1:
    # More runtime threads than devices: with one per core (PJRT's default), a device
    # waiting in an all-reduce can hold the thread its partner needs, and with another
    # process on the cores both hit XLA's rendezvous abort.
    os.environ.setdefault('PJRT_NPROC', str(max(8, 4 * count)))
  return count


@dataclasses.dataclass(frozen=True)
class DataParallel:
  """The mesh of all devices (all processes) along 'data', and its shardings."""
  mesh: Mesh

  @classmethod
  def create(cls, *batch_sizes: int) -> 'DataParallel':
    """All devices; in a single process, only as many as evenly split `batch_sizes`.

    (A batch of 100 on 8 devices runs on 4; across processes every device must take
    part, and `check_batch_size` says which batch sizes work.)
    """
    devices = jax.devices()
    if jax.process_count() == 1 and batch_sizes:
      common = math.gcd(*batch_sizes)
      devices = devices[:max(d for d in range(1, len(devices) + 1) if common % d == 0)]
    # Auto axes: XLA propagates the batch sharding through reshapes (the pooling) by
    # itself; the default Explicit axes would need every reshape annotated.
    mesh = Mesh(np.array(devices), (DATA_AXIS,),
                axis_types=(jax.sharding.AxisType.Auto,))
    return cls(mesh)

  @property
  def num_devices(self) -> int:
    return self.mesh.size

  @property
  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, PartitionSpec())

  @property
  def batch(self) -> NamedSharding:
    return NamedSharding(self.mesh, PartitionSpec(DATA_AXIS))

  def check_batch_size(self, field: str, batch_size: int) -> None:
    """ConfigError unless the global batch splits evenly over devices and processes."""
    if batch_size % self.num_devices:
      raise ConfigError(
          f'config.{field}={batch_size} is invalid: the global batch is split over '
          f'{self.num_devices} devices, so it must be a multiple of {self.num_devices}')

  def replicate(self, x: np.ndarray) -> jax.Array:
    """`x` (the same in every process) on every device of the mesh."""
    return jax.make_array_from_callback(x.shape, self.replicated, lambda index: x[index])


def is_primary() -> bool:
  """True in the one process that writes logs, metrics and TensorBoard events."""
  return jax.process_index() == 0


def to_host(tree: Any) -> Any:
  """NumPy copies of replicated arrays; every process holds them whole, so no
  cross-host gather is needed (np.asarray alone refuses arrays spanning hosts). With
  several processes the wait is bounded (`wait_for_devices`)."""
  wait_for_devices(tree)
  return jax.tree.map(
      lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else x, tree)


def wait_for_devices(tree: Any) -> None:
  """Waits until `tree` is computed; with several processes at most
  `agreement_timeout()`, then PeerTimeoutError: a computation that includes a
  collective with another process that never comes would otherwise wait for ever."""
  if jax.process_count() == 1:
    return
  done = threading.Event()
  threading.Thread(target=lambda: (jax.block_until_ready(tree), done.set()),
                   daemon=True).start()
  timeout = agreement_timeout()
  if not done.wait(timeout):
    raise PeerTimeoutError(
        f'the devices did not finish within {timeout:g} s (${AGREEMENT_TIMEOUT_ENV}): a '
        'collective with another process hangs (it stopped, died or runs other code)')


_agreements = itertools.count()  # The same sequence in every process.


def agreement_timeout() -> float:
  """Seconds `any_process` waits for the other processes ($CNN_JAX_AGREEMENT_TIMEOUT_S)."""
  value = os.environ.get(AGREEMENT_TIMEOUT_ENV, '')
  try:
    seconds = float(value) if value else DEFAULT_AGREEMENT_TIMEOUT_S
  except ValueError:
    seconds = -1.0
  if not 0 < seconds < float('inf'):
    raise ConfigError(f'${AGREEMENT_TIMEOUT_ENV}={value!r} is invalid: expected a '
                      'number of seconds > 0')
  return seconds


def any_process(flag: bool) -> bool:
  """Whether `flag` is true in any process of the run; every process must call it as
  often as the others, and each call waits for all of them (at most
  `agreement_timeout()`, then PeerTimeoutError).

  Agreed on the host through the distributed runtime's key-value store: no collective
  joins the devices' queue and no host waits for the devices at every dispatch, and a
  peer that never comes is an error after the timeout, not a hang.
  """
  if jax.process_count() == 1:
    return flag
  # JAX has no public handle on its coordination service's key-value store.
  client = jax._src.distributed.global_state.client  # pylint: disable=protected-access
  n, me = next(_agreements), jax.process_index()
  timeout = agreement_timeout()
  client.key_value_set(f'cnn_jax/any/{n}/{me}', str(int(bool(flag))))
  answers = []
  for peer in range(jax.process_count()):
    try:
      answers.append(client.blocking_key_value_get(f'cnn_jax/any/{n}/{peer}',
                                                   int(timeout * 1000)))
    except jax.errors.JaxRuntimeError as e:
      raise PeerTimeoutError(
          f'process {peer} did not reach agreement {n} (a dispatch boundary) within '
          f'{timeout:g} s (${AGREEMENT_TIMEOUT_ENV}): it stopped, hangs or runs other '
          f'code ({str(e).splitlines()[0][:120]})') from None
  if n:  # Every process has read round n - 1, since all have written round n.
    client.key_value_delete(f'cnn_jax/any/{n - 1}/{me}')
  return any(a == '1' for a in answers)
