"""Data parallelism with `jax.jit` over a `Mesh`: the batch split over a 'data' axis,
parameters and optimizer state replicated. One code path from 1 device to many hosts.

Every process places the same dataset on its devices (`DataParallel.replicate`); each
device gathers its share of every batch there, and XLA inserts the gradient all-reduce.
Multi-host runs join through `jax.distributed.initialize` (JAX's own runtime).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from cnn_jax.errors import ConfigError

DATA_AXIS = 'data'


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
  cross-host gather is needed (np.asarray alone refuses arrays spanning hosts)."""
  return jax.tree.map(
      lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else x, tree)
