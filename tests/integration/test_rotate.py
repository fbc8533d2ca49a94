"""playbooks/rotate.yml against the cluster `castle` of a lab of this file's own (bootstrapped once with the lab's
fleet, as test_phoenix.py does, but on a fresh lab: nothing another test file left in the worker's lab, such as a
cluster of the same name, changes what a rotation meets): every node rebuilt in turn while a probe counts failed Kubernetes API requests and samples
etcd's members and Longhorn's volumes; a second run with nothing older than the rotation age changes nothing; a
rotation stopped by a volume whose only healthy replica is on the node to go names the volume and leaves every
node as it was; one whose drain a PodDisruptionBudget holds up stops after trying until its timeout, the node
uncordoned. Without a controller group it fails at once, with no lab.

The tests share one cluster and run in file order."""

import os
import re
import subprocess
import threading

import pytest
import urllib3
import yaml
from castle_lab.control import ProxmoxControl
from kubernetes import client as kube_client, config as kube_config
from kubernetes.client.exceptions import ApiException

from ansible_collections.ephemeral.castle.plugins.module_utils import gate
from conftest import LAB_NET, REPO, Lab, find, remove_named, running, spare_net, wait_for
from harness import play_recap, run_playbook

pytestmark = pytest.mark.lab

NODES = ['talos-cp-1', 'talos-cp-2', 'talos-cp-3', 'talos-w-1', 'talos-w-2', 'talos-w-3']
CONTROL_PLANE = NODES[:3]
LONGHORN = ('longhorn.io', 'v1beta2', 'longhorn-system')


def test_rotate_without_a_controller_group_fails_saying_so(tmp_path):
    (tmp_path / 'site.fleet.yml').write_text(yaml.safe_dump({'plugin': 'ephemeral.castle.fleet', 'live': False, 'fleet': {
        'clusters': [{'name': 'castle', 'nodes': [{'name': 'cp-1', 'role': 'controlplane'}]}]}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(('ANSIBLE_', 'CASTLE_', 'PROXMOX_'))}
    run = run_playbook(env, REPO / 'playbooks' / 'rotate.yml', inventory=tmp_path)
    assert run.returncode != 0, run.stdout[-3000:]
    assert 'the inventory has none. Nothing was changed' in run.stdout
    assert 'node_rotation' not in run.stdout


@pytest.fixture(scope='module')
def lab():
    """A lab of this module's own, on the network beside the worker's, stopped at the end."""
    net = spare_net(LAB_NET)
    yield from running(Lab('rotate-lab-' + net, net, 'castle-claw-r' + net.split('.')[-1]))


def playbook(lab, env, name, *extra):
    return lab.run('ansible-playbook', '-i', str(lab.inventory), 'playbooks/' + name, *extra, env=env, check=False,
                   timeout=1500)


@pytest.fixture(scope='module')
def cluster(lab, env, pve):
    remove_named(pve, *NODES)
    journal = lab.inventory / 'phoenix-journal.md'
    journal.unlink(missing_ok=True)
    built = playbook(lab, env, 'bootstrap.yml')
    assert built.returncode == 0, built.stdout[-4000:]
    kubeconfig = lab.dir / 'talos' / 'castle' / 'kubeconfig'
    api = kube_config.new_client_from_config(str(kubeconfig))
    found = {'kubeconfig': kubeconfig, 'talosconfig': lab.dir / 'talos' / 'castle' / 'talosconfig', 'journal': journal,
             'core': kube_client.CoreV1Api(api), 'custom': kube_client.CustomObjectsApi(api)}
    # The lab's default StorageClass keeps one replica per volume; a cluster whose nodes rotate keeps two, so
    # each volume has a copy off the node that goes (Longhorn adds the replica to an attached volume).
    group, version, namespace = LONGHORN
    volumes = found['custom'].list_namespaced_custom_object(group, version, namespace, 'volumes')['items']
    assert volumes, 'the lab cluster has no Longhorn volumes'
    for volume in volumes:
        found['custom'].patch_namespaced_custom_object(group, version, namespace, 'volumes', volume['metadata']['name'],
                                                       {'spec': {'numberOfReplicas': 2}})
    wait_for(lambda: all(len(healthy_replicas(replicas(found), v['metadata']['name'])) == 2 for v in volumes),
             'every volume has two healthy replicas')
    yield found
    remove_named(pve, *NODES)


def identities(pve, core):
    """{node: (its VM's SMBIOS uuid, its Kubernetes Node's uid)}: what a rebuild makes anew."""
    found = {}
    nodes = {n.metadata.name: n for n in core.list_node().items}
    for name in NODES:
        vm = find(pve, name)[0]
        config = pve.nodes(vm['node']).qemu(vm['vmid']).config.get()
        found[name] = (config['smbios1'], nodes[name].metadata.uid if name in nodes else None)
    return found


def control_plane_addresses(env):
    """The control-plane nodes' addresses, as the lab's Talos nodes report them."""
    found = {n.get('hostname'): n['address'] for n in ProxmoxControl(env['CASTLE_LAB_PROXMOX_CONTROL']).talos_nodes()}
    return [found[name] for name in CONTROL_PLANE]


def replicas(cluster):
    group, version, namespace = LONGHORN
    return cluster['custom'].list_namespaced_custom_object(group, version, namespace, 'replicas')['items']


def healthy_replicas(listed, volume):
    """The replicas of `volume` Longhorn has not marked failed and whose instance is not in error."""
    return [r for r in listed if r['spec'].get('volumeName') == volume and not r['spec'].get('failedAt')
            and (r.get('status') or {}).get('currentState') != 'error']


class Probe(threading.Thread):
    """Samples, until stopped: a Kubernetes API request (each failure kept), etcd's member count as the first
    control-plane node that answers lists it, and each Longhorn volume's robustness and healthy replicas."""

    def __init__(self, cluster, env, control_plane):
        super().__init__(daemon=True)
        self.cluster, self.env, self.control_plane = cluster, env, control_plane
        self.done = threading.Event()
        self.requests, self.failures, self.members, self.volumes, self.lost = 0, [], [], {}, []

    def run(self):
        while not self.done.is_set():
            self.sample_api()
            self.sample_etcd()
            self.done.wait(0.5)

    def sample_api(self):
        try:
            self.cluster['core'].list_node(_request_timeout=10)
            group, version, namespace = LONGHORN
            volumes = self.cluster['custom'].list_namespaced_custom_object(group, version, namespace, 'volumes',
                                                                           _request_timeout=10)['items']
            listed = self.cluster['custom'].list_namespaced_custom_object(group, version, namespace, 'replicas',
                                                                          _request_timeout=10)['items']
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            self.failures.append('{0}: {1}'.format(type(exc).__name__, exc))
            return
        finally:
            self.requests += 1
        for volume in volumes:
            name = volume['metadata']['name']
            robustness = (volume.get('status') or {}).get('robustness')
            self.volumes.setdefault(name, set()).add(robustness)
            if robustness == 'faulted' or not healthy_replicas(listed, name):
                self.lost.append((name, robustness))

    def sample_etcd(self):
        for address in self.control_plane:
            listed = subprocess.run(['talosctl', '--talosconfig', str(self.cluster['talosconfig']), '--nodes', address,
                                     'etcd', 'members'], env=self.env, capture_output=True, text=True, timeout=30,
                                    check=False)
            if listed.returncode == 0:
                self.members.append(len([line for line in listed.stdout.splitlines()[1:] if line.strip()]))
                return
        self.members.append(0)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.join(60)


def uses_since(journal, count):
    """The journal's token uses after its first `count` records: [(action, name)]."""
    return [(r['action'], r['name']) for r in gate.records(str(journal))[count:] if r['event'] == 'use']


def test_rotate_rebuilds_every_node_in_turn_with_the_cluster_serving(lab, env, pve, cluster):
    before = identities(pve, cluster['core'])
    # Oldest first: the Nodes' creation times (a second apart at most, ties in the fleet's order).
    created = {n.metadata.name: n.metadata.creation_timestamp for n in cluster['core'].list_node().items}
    oldest_first = sorted(NODES, key=created.__getitem__)
    replicas_before = {r['metadata']['name'] for r in replicas(cluster)}
    journal_records = len(gate.records(str(cluster['journal']))) if cluster['journal'].exists() else 0
    with Probe(cluster, env, control_plane_addresses(env)) as probe:
        rotated = playbook(lab, env, 'rotate.yml', '-e', 'rotation_max_age=0')
    assert rotated.returncode == 0, rotated.stdout[-6000:]

    # One turn per node, each with its duration, oldest first.
    turns = re.findall(r'"(talos-[a-z0-9-]+) \((controlplane|worker)\) ([0-9.]+) s"', rotated.stdout.rsplit(
        "TASK [ephemeral.castle.node_rotation : Each node's duration]", 1)[1])
    assert [name for name, _role, _seconds in turns] == oldest_first, rotated.stdout[-3000:]
    after = identities(pve, cluster['core'])
    for name in NODES:
        assert all(new != old for new, old in zip(after[name], before[name])), (name, before[name], after[name])
    # Each wipe carried the gate's token for that node: a reset and a destroy of each, one node after the other.
    assert uses_since(cluster['journal'], journal_records) == [
        (action, name) for name in oldest_first for action in ('reset', 'destroy')]

    # The API answered every request; etcd never fell below a quorum of its three members, and went down to two
    # while each control plane was out; no volume was ever without a healthy replica.
    assert probe.requests > 50 and probe.failures == [], (probe.requests, probe.failures[:5])
    assert min(probe.members) == 2 and probe.members[-1] == 3, probe.members
    assert probe.volumes and probe.lost == [], (probe.volumes, probe.lost[:5])
    # Every replica's node was wiped: each volume's two healthy replicas now are ones Longhorn rebuilt.
    rebuilt = replicas(cluster)
    for volume in probe.volumes:
        healthy = {r['metadata']['name'] for r in healthy_replicas(rebuilt, volume)}
        assert len(healthy) == 2 and not healthy & replicas_before, (volume, healthy)
    nodes = cluster['core'].list_node().items
    assert sorted(n.metadata.name for n in nodes if not n.spec.unschedulable and any(
        c.type == 'Ready' and c.status == 'True' for c in n.status.conditions)) == NODES


def test_a_second_rotation_with_nothing_older_changes_nothing(lab, env, pve, cluster):
    before = identities(pve, cluster['core'])
    again = playbook(lab, env, 'rotate.yml', '-e', 'rotation_max_age=1h')
    assert again.returncode == 0, again.stdout[-4000:]
    assert 'nothing to rotate (every node older than 1h, oldest first)' in again.stdout
    assert play_recap(again)['localhost']['changed'] == 0, again.stdout[-3000:]
    assert identities(pve, cluster['core']) == before


STORAGE_CLASS = {'apiVersion': 'storage.k8s.io/v1', 'kind': 'StorageClass', 'metadata': {'name': 'longhorn-single'},
                 'provisioner': 'driver.longhorn.io', 'parameters': {'numberOfReplicas': '1'},
                 'volumeBindingMode': 'Immediate', 'reclaimPolicy': 'Delete'}
CLAIM = {'apiVersion': 'v1', 'kind': 'PersistentVolumeClaim', 'metadata': {'name': 'single-copy', 'namespace': 'default'},
         'spec': {'storageClassName': 'longhorn-single', 'accessModes': ['ReadWriteOnce'],
                  'resources': {'requests': {'storage': '1Gi'}}}}


def single_copy_volume(cluster):
    """(volume name, node of its one replica) of the claim single-copy, once Longhorn made them."""
    def made():
        claim = cluster['core'].read_namespaced_persistent_volume_claim('single-copy', 'default')
        if not claim.spec.volume_name:
            return None
        volume = cluster['core'].read_persistent_volume(claim.spec.volume_name).spec.csi.volume_handle
        found = healthy_replicas(replicas(cluster), volume)
        return (volume, found[0]['spec']['nodeID']) if found else None
    return wait_for(made, 'Longhorn made a volume with a replica for the claim single-copy')


def test_a_rotation_stopped_by_a_volume_names_it_and_leaves_every_node_as_it_was(lab, env, pve, cluster):
    kubectl = ['kubectl', '--kubeconfig', str(cluster['kubeconfig'])]
    for manifest in (STORAGE_CLASS, CLAIM):
        subprocess.run(kubectl + ['apply', '-f', '-'], input=yaml.safe_dump(manifest), env=env, text=True,
                       capture_output=True, check=True, timeout=60)
    try:
        volume, holder = single_copy_volume(cluster)
        before = identities(pve, cluster['core'])
        journal_records = len(gate.records(str(cluster['journal'])))
        after = next(name for name in NODES if name != holder)
        stopped = playbook(lab, env, 'rotate.yml', '-e', 'nodes={0},{1}'.format(holder, after), '-e',
                           'node_rotation_volume_timeout=6', '-e', 'node_rotation_poll=2')
        assert stopped.returncode != 0
        assert 'Rotation stopped before {0} goes'.format(holder) in stopped.stdout, stopped.stdout[-4000:]
        assert 'volume {0} (claim default/single-copy) has its only healthy replica on {1}'.format(
            volume, holder) in stopped.stdout
        assert '{0} and the nodes after it were not touched'.format(holder) in stopped.stdout
        # Nothing was wiped, nothing cordoned, no token used.
        assert identities(pve, cluster['core']) == before
        assert not any(n.spec.unschedulable for n in cluster['core'].list_node().items)
        assert uses_since(cluster['journal'], journal_records) == []
    finally:
        subprocess.run(kubectl + ['delete', 'pvc', 'single-copy', '-n', 'default', '--ignore-not-found'], env=env,
                       capture_output=True, check=False, timeout=60)
        subprocess.run(kubectl + ['delete', 'storageclass', 'longhorn-single', '--ignore-not-found'], env=env,
                       capture_output=True, check=False, timeout=60)


def pinned_deployment(node):
    return {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': 'pinned', 'namespace': 'default'},
            'spec': {'replicas': 1, 'selector': {'matchLabels': {'app': 'pinned'}},
                     'template': {'metadata': {'labels': {'app': 'pinned'}},
                                  'spec': {'nodeSelector': {'kubernetes.io/hostname': node},
                                           'containers': [{'name': 'app', 'image': 'registry.k8s.io/pause:3.10'}]}}}}


BUDGET = {'apiVersion': 'policy/v1', 'kind': 'PodDisruptionBudget', 'metadata': {'name': 'pinned', 'namespace': 'default'},
          'spec': {'minAvailable': 1, 'selector': {'matchLabels': {'app': 'pinned'}}}}


def test_a_drain_a_disruption_budget_holds_up_stops_the_rotation_and_uncordons_the_node(lab, env, pve, cluster):
    kubectl = ['kubectl', '--kubeconfig', str(cluster['kubeconfig'])]
    for manifest in (pinned_deployment('talos-w-1'), BUDGET):
        subprocess.run(kubectl + ['apply', '-f', '-'], input=yaml.safe_dump(manifest), env=env, text=True,
                       capture_output=True, check=True, timeout=60)
    try:
        pod = wait_for(lambda: [p.metadata.name for p in cluster['core'].list_namespaced_pod(
            'default', label_selector='app=pinned').items if p.status.phase == 'Running'],
            'the pinned pod runs on talos-w-1')[0]
        before = identities(pve, cluster['core'])
        journal_records = len(gate.records(str(cluster['journal'])))
        stopped = playbook(lab, env, 'rotate.yml', '-e', 'nodes=talos-w-1,talos-w-2', '-e',
                           'node_rotation_drain_timeout=6', '-e', 'node_rotation_poll=2')
        assert stopped.returncode != 0
        assert 'Rotation stopped: draining talos-w-1 did not settle within 6 s' in stopped.stdout, stopped.stdout[-4000:]
        assert "Cannot evict pod as it would violate the pod's disruption budget" in stopped.stdout
        assert 'talos-w-1 is schedulable again and the nodes after it were not touched' in stopped.stdout
        # Tried until the timeout, not given up at the first refusal.
        assert stopped.stdout.count('RETRYING: [localhost]: ephemeral.castle.node_rotation : Cordon the node and evict its '
                                    'pods, talos-w-1') >= 2
        assert identities(pve, cluster['core']) == before
        assert not any(n.spec.unschedulable for n in cluster['core'].list_node().items)
        assert [p.metadata.name for p in cluster['core'].list_namespaced_pod(
            'default', label_selector='app=pinned').items] == [pod]
        assert uses_since(cluster['journal'], journal_records) == []
    finally:
        for kind in ('poddisruptionbudget', 'deployment'):
            subprocess.run(kubectl + ['delete', kind, 'pinned', '-n', 'default', '--ignore-not-found'], env=env,
                           capture_output=True, check=False, timeout=60)


def talos_stage(env, name):
    return next(n['stage'] for n in ProxmoxControl(env['CASTLE_LAB_PROXMOX_CONTROL']).talos_nodes() if n.get('hostname') == name)


def node_ready(cluster, name):
    return any(c.type == 'Ready' and c.status == 'True' for c in cluster['core'].read_node(name).status.conditions)


def test_a_control_plane_is_not_rotated_while_another_etcd_member_is_down(lab, env, pve, cluster):
    vm = find(pve, 'talos-cp-3')[0]
    machine = pve.nodes(vm['node']).qemu(vm['vmid'])
    address = control_plane_addresses(env)[2]
    before = identities(pve, cluster['core'])
    journal_records = len(gate.records(str(cluster['journal'])))
    machine.status.stop.post()
    try:
        wait_for(lambda: talos_stage(env, 'talos-cp-3') == 'off', 'talos-cp-3 is off')
        stopped = playbook(lab, env, 'rotate.yml', '-e', 'nodes=talos-cp-1')
        assert stopped.returncode != 0
        # Without talos-cp-1, etcd would keep two members of three, its quorum, but one of them is down.
        assert 'Rotation stopped before talos-cp-1 goes: etcd has 3 members (' in stopped.stdout, stopped.stdout[-4000:]
        # The member of the powered-off node, by its name or (as the lab's etcd lists a member whose node is off) its
        # address.
        assert re.search(r'not healthy: (talos-cp-3|{0}); without talos-cp-1 it would keep 2, and its quorum is 2\.'.format(
            re.escape(address)), stopped.stdout), stopped.stdout[-3000:]
        assert identities(pve, cluster['core']) == before
        assert uses_since(cluster['journal'], journal_records) == []
        assert 'Ask the gate' not in stopped.stdout
    finally:
        machine.status.start.post()
        wait_for(lambda: node_ready(cluster, 'talos-cp-3'), 'talos-cp-3 is a Ready Kubernetes Node again', timeout=180)
