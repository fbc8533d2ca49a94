"""Longhorn's volumes with real bytes: a longhorn.io Volume for each PersistentVolume driver.longhorn.io provisions
(named by its volumeHandle), Replicas spread one per node, each replica's data a file on "its node's disk"
(<storage-dir>/nodes/<node>/replicas/<replica>/volume.img), robustness from which replicas are usable, and lost
replicas rebuilt from a usable one; the control API's /volumes/{namespace}/{claim}/data stands for a workload
reading and writing its mount.

As longhorn-manager does (v1.10): a volume is attached while a pod on a node uses its claim; robustness is healthy
or degraded only while attached (all replicas usable, or some), faulted when no replica is usable, unknown when
detached otherwise. A replica fails when its node is gone or not Ready or its data is gone (spec.failedAt set,
currentState error). An attached degraded volume gets a new replica on a Ready, schedulable node that holds none of
its usable replicas, copied from a usable one, at once when the failed replica cannot be reused (its node or data is
gone), else after the replica-replenishment-wait-interval setting (600 seconds by default), in case it comes back.
A failed replica is deleted after the volume's staleReplicaTimeout (minutes), or when its node gets a replacement."""

import copy
import datetime
import logging
import os
import pathlib
import re
import shutil
import uuid

from aiohttp import web

from ..api.objects import now
from .charts import LONGHORN_PROVISIONER
from .failures import Failures
from .longhorn import missing_packages
from .manager import Controller

log = logging.getLogger(__name__)
NAMESPACE = 'longhorn-system'
NODES = ('', 'nodes')
PODS = ('', 'pods')
CLAIMS = ('', 'persistentvolumeclaims')
PVS = ('', 'persistentvolumes')
LH_VOLUMES = ('longhorn.io', 'volumes')
REPLICAS = ('longhorn.io', 'replicas')
LH_NODES = ('longhorn.io', 'nodes')
SETTINGS = ('longhorn.io', 'settings')
MANAGER = 'longhorn-manager'
DEFAULT_REPLICAS = 3
REPLENISHMENT_WAIT = 'replica-replenishment-wait-interval'
DEFAULT_REPLENISHMENT_WAIT = 600
DEFAULT_STALE_TIMEOUT = 30  # minutes
# How often a volume's replicas are looked at again: a node's disk can vanish without an API event.
RECHECK = 2.0
UNITS = {'': 1, 'k': 1000, 'M': 1000 ** 2, 'G': 1000 ** 3, 'T': 1000 ** 4, 'Ki': 1024, 'Mi': 1024 ** 2,
         'Gi': 1024 ** 3, 'Ti': 1024 ** 4}


def quantity_bytes(value):
    """A storage quantity ("1Gi", "500M", "1073741824") in bytes."""
    match = re.fullmatch(r'(\d+(?:\.\d+)?)([kMGT]i?)?', str(value).strip())
    if not match:
        raise ValueError('not a storage quantity: {0!r}'.format(value))
    return int(float(match.group(1)) * UNITS[match.group(2) or ''])


class Disks:
    """The lab's node disks: <storage-dir>/nodes/<node>/replicas/<replica>/volume.img."""

    def __init__(self, root):
        self.root = pathlib.Path(root)

    def replica_dir(self, node, replica):
        return self.root / 'nodes' / node / 'replicas' / replica

    def image(self, node, replica):
        return self.replica_dir(node, replica) / 'volume.img'

    def snapshot(self, node, replica, snapshot):
        return self.replica_dir(node, replica) / 'volume-snap-{0}.img'.format(snapshot)

    def create(self, node, replica, data=b''):
        path = self.image(node, replica)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, data)

    def copy(self, source, node, replica):
        """A rebuilt replica: the source replica's directory (data and snapshots) copied to node."""
        target = self.replica_dir(node, replica)
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.replica_dir(*source), target)

    def remove(self, node, replica):
        shutil.rmtree(self.replica_dir(node, replica), ignore_errors=True)


def whole(value, default):
    """A count or size from a spec a client wrote: an integer, or the default when it is none."""
    try:
        return int(value) if value not in (None, '') else default
    except (TypeError, ValueError):
        return default


def write_atomically(path, data):
    partial = path.with_name(path.name + '.partial')
    partial.write_bytes(data)
    os.replace(partial, path)


def condition_status(obj, kind):
    return next((c.get('status') for c in (obj.get('status') or {}).get('conditions') or []
                 if c.get('type') == kind), None)


def longhorn_installed(api):
    return api.registry.get('longhorn.io', 'v1beta2', 'volumes') is not None


def claim_volume(api, namespace, claim_name):
    """(claim, PersistentVolume, Longhorn volume name) of a claim bound to a Longhorn volume; Nones for what is
    missing."""
    claim = api.store.get(CLAIMS, namespace, claim_name)
    pv_name = ((claim or {}).get('spec') or {}).get('volumeName')
    pv = api.store.get(PVS, None, pv_name) if pv_name else None
    csi = ((pv or {}).get('spec') or {}).get('csi') or {}
    return claim, pv, csi.get('volumeHandle') if csi.get('driver') == LONGHORN_PROVISIONER else None


class Volumes:
    """What the volume controller and the data API share: a volume's replicas and which of them are usable."""

    def __init__(self, api, disks, failures=None):
        self.api = api
        self.disks = disks
        self.failures = failures or Failures()

    def replicas(self, namespace, volume_name):
        return [r for r in self.api.store.list(REPLICAS, namespace)
                if (r.get('spec') or {}).get('volumeName') == volume_name]

    def node_ready(self, name):
        node = self.api.store.get(NODES, None, name) if name else None
        return bool(node) and not node['metadata'].get('deletionTimestamp') and \
            condition_status(node, 'Ready') == 'True'

    def reachable(self, replica):
        """Whether a replica's node is up and its data is there."""
        node = replica['spec'].get('nodeID')
        return self.node_ready(node) and self.disks.image(node, replica['metadata']['name']).exists()

    def usable(self, namespace, volume_name):
        return [r for r in self.replicas(namespace, volume_name)
                if not r['spec'].get('failedAt') and self.reachable(r)]

    def find(self, name):
        """The Longhorn volume of that name, in whichever namespace Longhorn runs."""
        return next((v for v in self.api.store.list(LH_VOLUMES) if v['metadata']['name'] == name), None)

    def setting(self, namespace, name, default):
        found = self.api.store.get(SETTINGS, namespace, name)
        try:
            return int(found.get('value')) if found else default
        except (TypeError, ValueError):
            return default


class VolumeController(Controller):
    """longhorn-manager's volume and replica controllers, and the CSI driver's CreateVolume/DeleteVolume."""

    name = 'longhorn-volumes'
    watches = (PVS, LH_VOLUMES, REPLICAS, NODES, LH_NODES, PODS, CLAIMS, SETTINGS)

    def __init__(self, api, volumes):
        super().__init__(api)
        self.volumes = volumes
        volumes.failures.listeners.append(self.enqueue_all)

    def enqueue_all(self):
        for volume in self.api.store.list(LH_VOLUMES):
            self.enqueue(LH_VOLUMES, volume['metadata']['namespace'], volume['metadata']['name'])

    def notify(self, key, event, obj):
        meta = obj['metadata']
        if key == PVS:
            csi = (obj.get('spec') or {}).get('csi') or {}
            if csi.get('driver') == LONGHORN_PROVISIONER:
                if event == 'DELETED':
                    self.release(obj)
                else:
                    self.enqueue(PVS, '', meta['name'])
        elif key == LH_VOLUMES:
            self.enqueue(LH_VOLUMES, meta['namespace'], meta['name'])
        elif key == REPLICAS:
            if event == 'DELETED':  # whoever deleted it (the volume's garbage collection, a client), its data goes
                self.disks.remove((obj.get('spec') or {}).get('nodeID', ''), meta['name'])
            self.enqueue(LH_VOLUMES, meta['namespace'], (obj.get('spec') or {}).get('volumeName', ''))
        else:
            self.enqueue_all()

    def reconcile(self, key, namespace, name):
        if not longhorn_installed(self.api) or not name:
            return None
        if key == PVS:
            return self.provision(name)
        return self.sync(namespace, name)

    def longhorn_namespace(self):
        for daemonset in self.api.store.list(('apps', 'daemonsets')):
            if daemonset['metadata']['name'] == MANAGER:
                return daemonset['metadata']['namespace']
        return None

    def provision(self, pv_name):
        """A Volume for a PersistentVolume of driver.longhorn.io that has none (the CSI driver's CreateVolume)."""
        pv = self.api.store.get(PVS, None, pv_name)
        namespace = self.longhorn_namespace()
        if pv is None or namespace is None:
            return None if pv is None else 1.0
        handle = pv['spec']['csi'].get('volumeHandle')
        provisioner = (pv['metadata'].get('annotations') or {}).get('pv.kubernetes.io/provisioned-by')
        if not handle or self.volumes.find(handle) is not None or provisioner != LONGHORN_PROVISIONER:
            # A PersistentVolume made for an existing volume (a restored one) only binds it.
            self.enqueue_all()
            return None
        attributes = pv['spec']['csi'].get('volumeAttributes') or {}
        try:
            size = quantity_bytes((pv['spec'].get('capacity') or {}).get('storage', ''))
            replicas = int(attributes.get('numberOfReplicas') or DEFAULT_REPLICAS)
            stale = int(attributes.get('staleReplicaTimeout') or DEFAULT_STALE_TIMEOUT)
        except ValueError as exc:
            log.warning('persistentvolume %s: no Longhorn volume: %s', pv_name, exc)
            return None
        spec = {'size': str(size), 'numberOfReplicas': replicas, 'staleReplicaTimeout': stale,
                'fromBackup': attributes.get('fromBackup', ''), 'frontend': 'blockdev', 'accessMode': 'rwo',
                'dataLocality': attributes.get('dataLocality', 'disabled'), 'dataEngine': 'v1',
                'backupTargetName': 'default', 'migratable': False, 'encrypted': False}
        rtype = self.api.registry.get('longhorn.io', 'v1beta2', 'volumes')
        self.api.create(rtype, namespace, {'metadata': {'name': handle}, 'spec': spec}, MANAGER)
        return None

    def release(self, pv):
        """A deleted Delete-policy PersistentVolume that driver.longhorn.io provisioned takes its Volume along."""
        provisioner = (pv['metadata'].get('annotations') or {}).get('pv.kubernetes.io/provisioned-by')
        if provisioner != LONGHORN_PROVISIONER or pv['spec'].get('persistentVolumeReclaimPolicy') != 'Delete':
            return
        volume = self.volumes.find(pv['spec']['csi'].get('volumeHandle'))
        if volume is not None:
            self.api.store.delete(LH_VOLUMES, volume['metadata']['namespace'], volume['metadata']['name'])

    def sync(self, namespace, name):
        volume = self.api.store.get(LH_VOLUMES, namespace, name)
        replicas = self.volumes.replicas(namespace, name)
        if volume is None or volume['metadata'].get('deletionTimestamp'):
            for replica in replicas:
                self.delete_replica(replica)
            if volume is not None:
                self.api.store.delete(LH_VOLUMES, namespace, name)
            return None
        spec = volume.get('spec') or {}
        status = copy.deepcopy(volume.get('status') or {})
        wanted = whole(spec.get('numberOfReplicas'), DEFAULT_REPLICAS)
        attached_to = self.attached_node(name)
        if not status.get('state'):
            # A new volume; one restored from a backup waits for its data.
            status.update(state='creating', robustness='unknown', restoreRequired=bool(spec.get('fromBackup')),
                          currentNodeID='', lastBackup='', lastBackupAt='', conditions=[])
        if not replicas and condition_status(volume, 'Scheduled') != 'True':
            for node in self.eligible_nodes(namespace, name)[:wanted]:
                self.create_replica(volume, node)
            replicas = self.volumes.replicas(namespace, name)
            status['conditions'] = [c for c in status.get('conditions') or [] if c.get('type') != 'Scheduled'] + [
                scheduled_condition(replicas)]
            if not replicas:
                status['state'] = 'detached'
                self.write_status(LH_VOLUMES, volume, status)
                return RECHECK
        requeue = self.check_replicas(volume, replicas, wanted)
        replicas = self.volumes.replicas(namespace, name)
        usable = [r for r in replicas if not r['spec'].get('failedAt')]
        if attached_to and usable and len(usable) < wanted and not status.get('restoreRequired'):
            requeue = min(requeue or RECHECK, self.replenish(volume, replicas, usable) or RECHECK)
            usable = [r for r in self.volumes.replicas(namespace, name) if not r['spec'].get('failedAt')]
        status['state'] = 'attached' if attached_to else 'detached'
        status['currentNodeID'] = attached_to or ''
        if not usable:
            status['robustness'] = 'faulted'
        elif attached_to:
            status['robustness'] = 'healthy' if len(usable) >= wanted else 'degraded'
        else:
            status['robustness'] = 'unknown'
        status['kubernetesStatus'] = self.kubernetes_status(name, status.get('kubernetesStatus') or {})
        status['actualSize'] = sum(self.disks_size(r) for r in usable[:1])
        for replica in self.volumes.replicas(namespace, name):
            self.set_replica_state(replica, attached_to)
        self.write_status(LH_VOLUMES, volume, status)
        return requeue or RECHECK

    @property
    def disks(self):
        return self.volumes.disks

    def disks_size(self, replica):
        path = self.disks.image(replica['spec']['nodeID'], replica['metadata']['name'])
        return path.stat().st_size if path.exists() else 0

    def attached_node(self, volume_name):
        """The node of a pod that uses a claim bound to this volume, where Longhorn can attach it."""
        for pod in self.api.store.list(PODS):
            spec = pod.get('spec') or {}
            node = spec.get('nodeName')
            if not node or (pod.get('status') or {}).get('phase') in ('Succeeded', 'Failed'):
                continue
            for source in spec.get('volumes') or []:
                claim = (source.get('persistentVolumeClaim') or {}).get('claimName')
                if claim and claim_volume(self.api, pod['metadata']['namespace'], claim)[2] == volume_name:
                    kube_node = self.api.store.get(NODES, None, node)
                    if kube_node is not None and not missing_packages(kube_node):
                        return node
        return None

    def eligible_nodes(self, namespace, volume_name, exclude=()):
        """Nodes a new replica may go to: Ready, schedulable for Kubernetes and Longhorn, holding no usable replica
        of the volume; the least loaded first."""
        load = {}
        for replica in self.api.store.list(REPLICAS, namespace):
            load[replica['spec'].get('nodeID')] = load.get(replica['spec'].get('nodeID'), 0) + 1
        nodes = []
        for node in self.api.store.list(NODES):
            node_name = node['metadata']['name']
            lh_node = self.api.store.get(LH_NODES, namespace, node_name)
            lh_spec = (lh_node or {}).get('spec') or {}
            if (node_name in exclude or not self.volumes.node_ready(node_name) or (node.get('spec') or {}).get(
                    'unschedulable') or lh_node is None or lh_spec.get('allowScheduling') is False
                    or lh_spec.get('evictionRequested') or missing_packages(node)):
                continue
            nodes.append(node_name)
        return sorted(nodes, key=lambda n: (load.get(n, 0), n))

    def create_replica(self, volume, node, source=None):
        meta = volume['metadata']
        name = '{0}-r-{1}'.format(meta['name'], uuid.uuid4().hex[:8])
        if source is not None:
            self.disks.copy((source['spec']['nodeID'], source['metadata']['name']), node, name)
        else:
            self.disks.create(node, name)
        rtype = self.api.registry.get('longhorn.io', 'v1beta2', 'replicas')
        self.api.create(rtype, meta['namespace'], {
            'metadata': {'name': name, 'labels': {'longhornvolume': meta['name'], 'longhornnode': node},
                         'ownerReferences': [{'apiVersion': 'longhorn.io/v1beta2', 'kind': 'Volume',
                                              'name': meta['name'], 'uid': meta['uid']}]},
            'spec': {'volumeName': meta['name'], 'nodeID': node, 'diskID': '', 'dataDirectoryName': name,
                     'volumeSize': volume['spec'].get('size', '0'), 'failedAt': '', 'active': True,
                     'dataEngine': 'v1', 'desireState': 'stopped'}}, MANAGER)

    def delete_replica(self, replica):
        self.disks.remove(replica['spec'].get('nodeID', ''), replica['metadata']['name'])
        self.api.store.delete(REPLICAS, replica['metadata']['namespace'], replica['metadata']['name'])

    def check_replicas(self, volume, replicas, wanted):
        """Mark replicas whose node or data went as failed; take back one that returned while still needed;
        delete stale ones. Returns seconds until a stale replica is due, if any."""
        clock = self.volumes.failures.clock()
        stale_after = 60 * whole(volume['spec'].get('staleReplicaTimeout'), DEFAULT_STALE_TIMEOUT)
        good = [r for r in replicas if not r['spec'].get('failedAt') and self.volumes.reachable(r)]
        due = None
        for replica in replicas:
            failed_at = replica['spec'].get('failedAt')
            reachable = self.volumes.reachable(replica)
            if not failed_at and not reachable:
                self.set_failed(replica, self.volumes.failures.now())
            elif failed_at and reachable:
                if len(good) >= wanted:
                    self.delete_replica(replica)
                    continue
                if good:  # it missed the writes made while it was away: synced from a usable replica
                    self.disks.copy((good[0]['spec']['nodeID'], good[0]['metadata']['name']),
                                    replica['spec']['nodeID'], replica['metadata']['name'])
                self.set_failed(replica, '')
                good.append(replica)
            elif failed_at:
                left = stale_after - (clock - timestamp(failed_at))
                if left <= 0 and good:
                    self.delete_replica(replica)
                elif left > 0:
                    due = left if due is None else min(due, left)
        return due

    def replenish(self, volume, replicas, usable):
        """One new replica for a degraded attached volume, when no failed replica may still come back."""
        namespace, name = volume['metadata']['namespace'], volume['metadata']['name']
        wait = self.volumes.setting(namespace, REPLENISHMENT_WAIT, DEFAULT_REPLENISHMENT_WAIT)
        clock = self.volumes.failures.clock()
        waiting = []
        for replica in replicas:
            failed_at = replica['spec'].get('failedAt')
            node = replica['spec'].get('nodeID')
            reusable = self.api.store.get(NODES, None, node) is not None and self.disks.image(
                node, replica['metadata']['name']).exists()
            if failed_at and reusable and clock - timestamp(failed_at) < wait:
                waiting.append(wait - (clock - timestamp(failed_at)))
        if waiting:
            return min(waiting)
        nodes = self.eligible_nodes(namespace, name, exclude={r['spec']['nodeID'] for r in usable})
        if not nodes:
            return None
        self.create_replica(volume, nodes[0], source=usable[0])
        for replica in replicas:
            if replica['spec'].get('failedAt') and replica['spec'].get('nodeID') == nodes[0]:
                self.delete_replica(replica)
        return None

    def set_failed(self, replica, failed_at):
        rtype = self.api.registry.get('longhorn.io', 'v1beta2', 'replicas')
        body = self.api.served_as(rtype, replica)
        body['spec']['failedAt'] = failed_at
        replica.update(self.api.replace(rtype, replica['metadata']['namespace'], replica['metadata']['name'], body,
                                        MANAGER))

    def set_replica_state(self, replica, attached_to):
        if replica['spec'].get('failedAt') or not self.volumes.reachable(replica):
            state = 'error'
        else:
            state = 'running' if attached_to else 'stopped'
        status = dict(replica.get('status') or {}, currentState=state, ownerID=replica['spec'].get('nodeID', ''))
        self.write_status(REPLICAS, replica, status)

    def write_status(self, key, obj, status):
        if status == obj.get('status'):
            return
        rtype = self.api.registry.get(key[0], 'v1beta2', key[1])
        current = self.api.store.get(key, obj['metadata']['namespace'], obj['metadata']['name'])
        if current is None:
            return
        self.api.replace(rtype, obj['metadata']['namespace'], obj['metadata']['name'],
                         dict(self.api.served_as(rtype, current), status=status), MANAGER, subresource='status')

    def kubernetes_status(self, volume_name, old):
        """Where the volume is used in Kubernetes: its PersistentVolume, the claim bound to it, the pods on it."""
        pv = next((p for p in self.api.store.list(PVS) if ((p.get('spec') or {}).get('csi') or {}).get(
            'volumeHandle') == volume_name and p['spec']['csi'].get('driver') == LONGHORN_PROVISIONER), None)
        if pv is None:
            return {'pvName': '', 'pvStatus': '', 'namespace': old.get('namespace', ''),
                    'pvcName': old.get('pvcName', ''), 'lastPVCRefAt': old.get('lastPVCRefAt', ''),
                    'workloadsStatus': None, 'lastPodRefAt': old.get('lastPodRefAt', '')}
        claim_ref = pv['spec'].get('claimRef') or {}
        pods = [p for p in self.api.store.list(PODS, claim_ref.get('namespace')) if claim_ref and any(
            (s.get('persistentVolumeClaim') or {}).get('claimName') == claim_ref.get('name')
            for s in (p.get('spec') or {}).get('volumes') or [])]
        return {'pvName': pv['metadata']['name'], 'pvStatus': (pv.get('status') or {}).get('phase', ''),
                'namespace': claim_ref.get('namespace', ''), 'pvcName': claim_ref.get('name', ''),
                'lastPVCRefAt': '', 'lastPodRefAt': '',
                'workloadsStatus': [{'podName': p['metadata']['name'],
                                     'podStatus': (p.get('status') or {}).get('phase', ''),
                                     'workloadName': '', 'workloadType': ''} for p in pods] or None}


def scheduled_condition(replicas):
    if replicas:
        return {'type': 'Scheduled', 'status': 'True', 'reason': '', 'message': '', 'lastProbeTime': '',
                'lastTransitionTime': now()}
    return {'type': 'Scheduled', 'status': 'False', 'reason': 'ReplicaSchedulingFailure',
            'message': 'precheck new replica failed: no schedulable node', 'lastProbeTime': '',
            'lastTransitionTime': now()}


def timestamp(value):
    return datetime.datetime.strptime(value, '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=datetime.timezone.utc).timestamp()


class VolumeData:
    """The control API's PUT/GET /volumes/{namespace}/{claim}/data: the bytes a workload keeps in its claim."""

    def __init__(self, volumes):
        self.volumes = volumes

    def resolve(self, request):
        """(volume, usable replicas) of the claim in the request, or an error response."""
        namespace, claim_name = request.match_info['namespace'], request.match_info['claim']
        claim, _pv, handle = claim_volume(self.volumes.api, namespace, claim_name)
        volume = self.volumes.find(handle) if handle else None
        if volume is None:
            what = 'not found' if claim is None else 'not bound to a Longhorn volume'
            return web.json_response({'error': 'persistentvolumeclaim {0}/{1} {2}'.format(
                namespace, claim_name, what)}, status=404), None
        name = volume['metadata']['name']
        if (volume.get('status') or {}).get('restoreRequired'):
            return web.json_response({'error': 'volume {0} is being restored'.format(name)}, status=409), None
        usable = self.volumes.usable(volume['metadata']['namespace'], name)
        if not usable:
            return web.json_response({'error': 'volume {0} has no healthy replica'.format(name)}, status=409), None
        return volume, usable

    async def put(self, request):
        volume, usable = self.resolve(request)
        if usable is None:
            return volume
        size = whole(volume['spec'].get('size'), 0)
        # Read past the control API's request size limit, up to one byte more than the volume holds.
        data = bytearray()
        while len(data) <= size:
            chunk = await request.content.read(size + 1 - len(data))
            if not chunk:
                break
            data += chunk
        data = bytes(data)
        if len(data) > size:
            return web.json_response({'error': '{0} bytes do not fit volume {1} of {2} bytes'.format(
                len(data), volume['metadata']['name'], size)}, status=413)
        for replica in usable:
            write_atomically(self.volumes.disks.image(replica['spec']['nodeID'], replica['metadata']['name']), data)
        return web.json_response({'volume': volume['metadata']['name'], 'bytes': len(data),
                                  'replicas': sorted(r['metadata']['name'] for r in usable)})

    async def get(self, request):
        volume, usable = self.resolve(request)
        if usable is None:
            return volume
        replica = usable[0]
        data = self.volumes.disks.image(replica['spec']['nodeID'], replica['metadata']['name']).read_bytes()
        return web.Response(body=data, content_type='application/octet-stream')

    def routes(self, app):
        app.router.add_put('/volumes/{namespace}/{claim}/data', self.put)
        app.router.add_get('/volumes/{namespace}/{claim}/data', self.get)
