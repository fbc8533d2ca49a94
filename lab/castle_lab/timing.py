"""How long the lab's emulated steps take, in one table: at once (`fast`, the default) or about as long as on real
hardware (`CASTLE_LAB_TIMING=real`). docs/lab.md ("Timing profiles") gives each real duration's source.

CASTLE_LAB_TIMING_SCALE multiplies every real duration (0.1 runs a real profile ten times faster);
CASTLE_LAB_TIMING_SEED adds noise, up to NOISE of each real duration either way, the same for the same seed and the
same sequence of calls. The fast profile has no noise.
"""

import collections
import os
import random

PROFILES = ('fast', 'real')
NOISE = 0.1

# fast, fast_per_gib: seconds in the default profile (PVE seconds for the Proxmox steps, which fakepve's time_scale,
# 0 unless a test sets it, turns into real ones; 0 for the rest). real, per_gib: seconds on real hardware. Each
# per_gib is added for every GiB of disk the step copies.
Step = collections.namedtuple('Step', 'fast fast_per_gib real per_gib')
STEPS = {
    # A full clone copies every disk (qemu-img convert); on lvmthin and directory storage alike at ~200 MB/s.
    'pve.clone.full': Step(0.0, 1.0, 2.0, 5.0),
    # A linked clone only snapshots the template's base volume.
    'pve.clone.linked': Step(2.0, 0.0, 2.0, 0.0),
    'pve.create': Step(3.0, 0.0, 3.0, 0.0),
    # An offline migration: local disks copied to the other node over its migration network (~1 Gbit/s).
    'pve.migrate': Step(0.0, 1.0, 5.0, 9.0),
    # qm start: the QEMU process up (the guest then boots on its own).
    'pve.start': Step(0.0, 0.0, 2.0, 0.0),
    # From power-on to the maintenance API of the ISO (firmware, kernel, machined).
    'talos.boot.iso': Step(0.0, 0.0, 30.0, 0.0),
    # The install after the first config: partitions, the installer image pulled and written, then the reboot.
    'talos.install': Step(0.0, 0.0, 60.0, 0.0),
    # From a reboot of an installed node to its API with the config (no longer delayed 10 s, siderolabs/talos#8666).
    'talos.boot.installed': Step(0.0, 0.0, 25.0, 0.0),
    # After the bootstrap call: etcd up, then the control plane's static pods (images pulled) answering.
    'talos.bootstrap': Step(0.0, 0.0, 60.0, 0.0),
    # A control plane node's etcd joining as learner and being promoted.
    'talos.etcd.join': Step(0.0, 0.0, 15.0, 0.0),
    # kubelet up, registered, and Ready (CNI running on it).
    'talos.kubelet.ready': Step(0.0, 0.0, 30.0, 0.0),
    # A container image pulled and unpacked on a node, the first time a pod there needs it.
    'kube.image.pull': Step(0.0, 0.0, 20.0, 0.0),
}

# What the bootstrap does once every node is Ready, one step after the other, each waiting for the pods of the one
# before: the Flux controllers' images pulled, then the foundation charts', then those of the GitOps repository's
# workloads (its app layer, which waits for the layers before it).
CLUSTER_STEPS = ('kube.image.pull', 'kube.image.pull', 'kube.image.pull')

Chain = collections.namedtuple('Chain', 'total per_node bootstrap nodes_ready')


class Timing:
    """A profile read from an environment: its duration(name, gib=...) of each step."""

    def __init__(self, environ=None):
        environ = os.environ if environ is None else environ
        self.profile = environ.get('CASTLE_LAB_TIMING') or 'fast'
        if self.profile not in PROFILES:
            raise ValueError('CASTLE_LAB_TIMING must be one of {0}, not {1!r}'.format(
                ', '.join(PROFILES), self.profile))
        self.scale = float(environ.get('CASTLE_LAB_TIMING_SCALE') or 1)
        if self.scale < 0:
            raise ValueError('CASTLE_LAB_TIMING_SCALE must not be negative')
        seed = environ.get('CASTLE_LAB_TIMING_SEED')
        self.noise = random.Random(seed) if seed not in (None, '') else None

    @property
    def real(self):
        return self.profile == 'real'

    def duration(self, name, gib=0.0):
        """Seconds the step takes; for a step that copies disks, `gib` is how much."""
        step = STEPS[name]
        if not self.real:
            return step.fast + step.fast_per_gib * gib
        secs = (step.real + step.per_gib * gib) * self.scale
        if self.noise is not None:
            secs *= 1 + self.noise.uniform(-NOISE, NOISE)
        return secs


_CURRENT = []


def current():
    """The Timing of this process's environment, read once."""
    if not _CURRENT:
        _CURRENT.append(Timing())
    return _CURRENT[0]


def duration(name, gib=0.0):
    return current().duration(name, gib=gib)


def critical_path(nodes, timing, clone='pve.clone.full', extra=None):
    """The longest chain of dependent steps from no VMs to a cluster serving its workloads, as the lab's emulators
    time them: each node cloned, started, booted from the ISO, installed and booted from disk, then its etcd member
    (control planes) and kubelet up; the first control plane node bootstrapped as soon as it runs; a node is Ready
    once both its own chain and the control plane after the bootstrap are up; then the cluster-wide CLUSTER_STEPS.

    nodes: dicts with `name`, `role` and `gib` (its disks). extra: name -> seconds a node's chain takes beside the
    profile's steps (e.g. a migration). Returns Chain(total, per_node seconds to Ready, bootstrap done, every node
    Ready)."""
    extra = extra or {}
    running = {}
    for node in nodes:
        running[node['name']] = (timing.duration(clone, gib=node['gib']) + extra.get(node['name'], 0.0)
                                 + timing.duration('pve.start') + timing.duration('talos.boot.iso')
                                 + timing.duration('talos.install') + timing.duration('talos.boot.installed'))
    first = next(node['name'] for node in nodes if node['role'] == 'controlplane')
    bootstrap = running[first] + timing.duration('talos.bootstrap')
    ready = {}
    for node in nodes:
        own = timing.duration('talos.kubelet.ready')
        if node['role'] == 'controlplane':
            own += timing.duration('talos.etcd.join')
        ready[node['name']] = max(running[node['name']] + own, bootstrap)
    nodes_ready = max(ready.values())
    return Chain(nodes_ready + sum(timing.duration(step) for step in CLUSTER_STEPS), ready, bootstrap, nodes_ready)
