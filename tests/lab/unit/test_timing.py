"""The lab's timing profiles: fast by default, real durations that scale with disk size and
CASTLE_LAB_TIMING_SCALE, seeded noise, and the critical path computed from them."""

import asyncio
import shutil
import types

import pytest

from castle_lab import timing
from castle_lab.proxmox.fake import LabPve
from castle_lab.talos.cluster import Cluster
from castle_lab.talos.fleet import Fleet
from castle_lab.talos.node import Node
from castle_lab.timing import STEPS, Timing, critical_path

REAL = {'CASTLE_LAB_TIMING': 'real'}


@pytest.mark.parametrize('environ', [{}, {'CASTLE_LAB_TIMING': ''}, {'CASTLE_LAB_TIMING': 'fast'},
                                     {'CASTLE_LAB_TIMING': 'fast', 'CASTLE_LAB_TIMING_SEED': '7'}])
def test_fast_profile_gives_the_fast_values(environ):
    fast = Timing(environ)
    assert not fast.real
    for name, step in STEPS.items():
        assert fast.duration(name, gib=20) == step.fast + step.fast_per_gib * 20
    assert fast.duration('talos.install') == 0 and fast.duration('pve.clone.full', gib=20) == 20 * 1.0


def test_real_full_clone_scales_with_disk_size():
    real = Timing(REAL)
    step = STEPS['pve.clone.full']
    assert real.duration('pve.clone.full', gib=32) - real.duration('pve.clone.full', gib=20) == pytest.approx(
        12 * step.per_gib)
    assert real.duration('pve.clone.full', gib=0) == step.real
    # A linked clone copies nothing: no longer for a bigger disk.
    assert real.duration('pve.clone.linked', gib=32) == real.duration('pve.clone.linked', gib=1)


def test_scale_multiplies_every_real_duration():
    real, tenth = Timing(REAL), Timing(dict(REAL, CASTLE_LAB_TIMING_SCALE='0.1'))
    for name in STEPS:
        assert tenth.duration(name, gib=8) == pytest.approx(real.duration(name, gib=8) / 10)


def test_seeded_noise_is_reproducible_and_bounded():
    def draws(seed):
        noisy = Timing(dict(REAL, CASTLE_LAB_TIMING_SEED=seed))
        return [noisy.duration(name, gib=20) for name in STEPS]

    plain = [Timing(REAL).duration(name, gib=20) for name in STEPS]
    first, again, other = draws('42'), draws('42'), draws('43')
    assert first == again and first != other and first != plain
    for noisy, exact in zip(first, plain):
        assert abs(noisy - exact) <= timing.NOISE * exact


def test_unknown_profile_or_negative_scale_is_refused():
    with pytest.raises(ValueError, match='CASTLE_LAB_TIMING must be one of fast, real'):
        Timing({'CASTLE_LAB_TIMING': 'slow'})
    with pytest.raises(ValueError, match='must not be negative'):
        Timing(dict(REAL, CASTLE_LAB_TIMING_SCALE='-1'))


class Table:
    """A profile of round numbers, to follow the critical path by hand."""

    def __init__(self, **secs):
        self.secs = dict({name: 0.0 for name in STEPS}, **secs)

    def duration(self, name, gib=0.0):
        return self.secs[name] + (gib if name == 'pve.clone.full' else 0.0)


def test_critical_path_is_the_slowest_node_chain():
    table = Table(**{'pve.start': 1, 'talos.boot.iso': 10, 'talos.install': 20, 'talos.boot.installed': 5,
                     'talos.bootstrap': 30, 'talos.etcd.join': 4, 'talos.kubelet.ready': 6})
    nodes = [{'name': 'cp', 'role': 'controlplane', 'gib': 10}, {'name': 'w', 'role': 'worker', 'gib': 100}]
    chain = critical_path(nodes, table)
    # cp runs at 10 + 1 + 10 + 20 + 5 = 46, the control plane is up at 46 + 30; w runs at 136, Ready at 142.
    assert chain.bootstrap == 76 and chain.per_node == {'cp': 76, 'w': 142} and chain.total == 142
    # A migration on the worker's chain lengthens it alone.
    assert critical_path(nodes, table, extra={'w': 8}).per_node == {'cp': 76, 'w': 150}


def test_critical_path_ends_with_the_cluster_wide_image_pulls():
    table = Table(**{'talos.bootstrap': 30, 'talos.kubelet.ready': 6, 'kube.image.pull': 20})
    nodes = [{'name': 'cp', 'role': 'controlplane', 'gib': 10}, {'name': 'w', 'role': 'worker', 'gib': 40}]
    chain = critical_path(nodes, table)
    # Every node Ready at 46 (w: 40 + 6), then Flux's, the charts' and the apps' images, one after the other.
    assert chain.nodes_ready == 46 and chain.total == 46 + 3 * 20
    assert timing.CLUSTER_STEPS == ('kube.image.pull',) * 3


def test_critical_path_waits_for_the_bootstrap():
    table = Table(**{'talos.bootstrap': 100, 'talos.etcd.join': 4, 'talos.kubelet.ready': 6})
    nodes = [{'name': 'cp-1', 'role': 'controlplane', 'gib': 10}, {'name': 'cp-2', 'role': 'controlplane', 'gib': 20},
             {'name': 'w', 'role': 'worker', 'gib': 20}]
    chain = critical_path(nodes, table)
    assert chain.bootstrap == 110 and set(chain.per_node.values()) == {110} and chain.total == 110
    # With the default profile nothing waits: the chain is the fast clone of the biggest disk.
    assert critical_path(nodes, Timing({})).total == 20


@pytest.fixture(name='profile')
def profile_fixture(monkeypatch):
    """Sets the profile the lab's emulators read (timing.current()) for one test."""
    def use(environ):
        monkeypatch.setattr(timing, '_CURRENT', [Timing(environ)])
    return use


def test_the_real_profile_runs_proxmox_tasks_in_real_seconds(profile):
    profile({})
    assert LabPve().time_scale == 0
    profile(REAL)
    pve = LabPve()
    pve.add_node('pve1')
    pve.local_storages('local-lvm')
    pve.add_vm(9000, 'template', node='pve1', template=True, config={'scsi0': 'local-lvm:base-9000-disk-0,size=20G'})
    assert pve.time_scale == 1.0
    assert pve._clone_duration({'vmid': 9000, 'full': 1}) == timing.duration('pve.clone.full', gib=20)
    assert pve._clone_duration({'vmid': 9000}) == timing.duration('pve.clone.linked')


def test_a_talos_node_boots_installs_and_comes_up_as_the_profile_says(profile, tmp_path):
    profile(REAL)
    node = Node(Fleet(tmp_path), '127.0.83.100', 'bc:24:11:00:00:01')
    assert node._boot_secs() == timing.duration('talos.boot.iso')
    node.installing = True
    assert node._boot_secs() == timing.duration('talos.install') + timing.duration('talos.boot.installed')

    async def waiting():
        cluster = Cluster(node.fleet, 'id')
        now = asyncio.get_running_loop().time()
        up, due = types.SimpleNamespace(up_at=now - 1), types.SimpleNamespace(up_at=now + 50)
        # Before the bootstrap's wait: the node that is up registers, the other one is reconciled once up.
        first, first_wait = cluster._up([up, due]), cluster._later.when() - now
        # The control plane up only in 100 s: nobody registers until then.
        cluster.up_at = now + 100
        second, second_wait = cluster._up([up, due]), cluster._later.when() - now
        cluster._later.cancel()
        return first == [up], first_wait, second, second_wait

    first, first_wait, second, second_wait = asyncio.run(waiting())
    shutil.rmtree(node.scratch)
    assert first and 49 < first_wait < 51 and second == [] and 99 < second_wait < 101


def test_a_boot_that_waits_gives_up_when_the_power_changes_meanwhile(profile, tmp_path):
    """A reset's reboot still waiting when the VM is powered off and on again: only the last boot serves."""
    profile(dict(REAL, CASTLE_LAB_TIMING_SCALE='0.001'))
    fleet = Fleet(tmp_path)
    node = fleet.nodes['100'] = Node(fleet, '127.0.83.100', 'bc:24:11:00:00:01')
    served = []

    async def serve():
        served.append(node.power_changes)

    node._serve = serve

    async def twice():
        first = asyncio.ensure_future(node.boot())
        await asyncio.sleep(0)
        await node.power_off()
        await node.boot()
        await first

    asyncio.run(twice())
    shutil.rmtree(node.scratch)
    assert served == [node.power_changes] and node.stage == 'maintenance'


def test_a_vm_switched_off_during_a_reboot_leaves_its_node_off(profile, tmp_path):
    """A reset's reboot still waiting when its VM is powered off (destroyed): the node must not come up after."""
    profile(dict(REAL, CASTLE_LAB_TIMING_SCALE='0.001'))
    fleet = Fleet(tmp_path)
    node = fleet.nodes[100] = Node(fleet, '127.0.83.100', 'bc:24:11:00:00:01')
    served = []

    async def serve():
        served.append(node.power_changes)

    node._serve = serve

    async def reboot_then_off():
        rebooting = asyncio.ensure_future(fleet.reboot(node))
        await asyncio.sleep(0)
        assert node.booting and node.stage == 'off'
        fleet.switch(100, False)
        await rebooting

    asyncio.run(reboot_then_off())
    shutil.rmtree(node.scratch)
    assert served == [] and node.stage == 'off' and not node.booting
