"""Longhorn's view of the nodes, once its chart runs: longhorn-manager's environment check of each node, reported on
the node's longhorn.io Node, and a Longhorn volume that cannot attach to a node missing a required package.

Longhorn checks the host itself. On Talos (a Node whose osImage names Talos) it looks for iscsiadm in iscsid's
namespace, which only the siderolabs/iscsi-tools system extension brings; on an OS it does not know it checks
nothing. A lab Talos node names the extensions it runs in a lab-only annotation of its Kubernetes Node."""

import copy

from ..api.objects import now
from .charts import LONGHORN_PROVISIONER
from .manager import Controller

EXTENSIONS_ANNOTATION = 'dev.castle-lab.extensions'
ISCSI_TOOLS = 'siderolabs/iscsi-tools'
# What longhorn-manager checks on Talos: cryptsetup and dmsetup on the host, nfs-common in the kubelet, iscsiadm
# in iscsid (from the iscsi-tools extension).
TALOS_PACKAGES = ('cryptsetup', 'dmsetup', 'nfs-common', 'iscsiadm')

NODES = ('', 'nodes')
PODS = ('', 'pods')
CLAIMS = ('', 'persistentvolumeclaims')
VOLUMES = ('', 'persistentvolumes')
DAEMONSETS = ('apps', 'daemonsets')
CRDS = ('apiextensions.k8s.io', 'customresourcedefinitions')
LONGHORN_NODES = ('longhorn.io', 'nodes')
MANAGER = 'longhorn-manager'


def missing_packages(kube_node):
    """The packages Longhorn finds missing on a Kubernetes Node, or None when it checks none (an OS it does not
    know)."""
    os_image = (((kube_node.get('status') or {}).get('nodeInfo') or {}).get('osImage') or '').lower()
    if 'talos' not in os_image:
        return None
    annotation = (kube_node['metadata'].get('annotations') or {}).get(EXTENSIONS_ANNOTATION, '')
    return [] if ISCSI_TOOLS in annotation.split(',') else ['iscsiadm']


def node_conditions(kube_node, old=None):
    """longhorn.io Node conditions of the environment check: RequiredPackages, when Longhorn checks the OS."""
    missing = missing_packages(kube_node)
    if missing is None:
        return []
    if missing:
        found = {'type': 'RequiredPackages', 'status': 'False', 'reason': 'PackagesNotInstalled',
                 'message': 'Missing packages: [{0}]'.format(' '.join(missing))}
    else:
        found = {'type': 'RequiredPackages', 'status': 'True', 'reason': '',
                 'message': 'All required packages [{0}] are installed'.format(' '.join(TALOS_PACKAGES))}
    before = next((c for c in old or [] if c.get('type') == found['type']), None)
    stamp = before['lastTransitionTime'] if before and before.get('status') == found['status'] else now()
    return [dict(found, lastProbeTime='', lastTransitionTime=stamp)]


def attach_error(volume_name, node_name, missing):
    """The attach-detach controller's FailedAttachVolume message for a Longhorn volume on a node missing packages."""
    return ('AttachVolume.Attach failed for volume "{0}" : rpc error: code = Aborted desc = volume {0} cannot be '
            'attached to node {1}: Missing packages: [{2}]').format(volume_name, node_name, ' '.join(missing))


class LonghornController(Controller):
    """longhorn.io Nodes for the Kubernetes Nodes, and pods on a node missing packages kept from starting."""

    name = 'longhorn'
    watches = (NODES, PODS)

    def notify(self, key, event, obj):
        meta = obj['metadata']
        if key == NODES:
            self.enqueue(NODES, '', meta['name'])
            for pod in self.api.store.list(PODS):
                if (pod.get('spec') or {}).get('nodeName') == meta['name']:
                    self.enqueue(PODS, pod['metadata']['namespace'], pod['metadata']['name'])
        elif key == PODS and event != 'DELETED':
            self.enqueue(PODS, meta['namespace'], meta['name'])
        elif (key == DAEMONSETS and meta['name'] == MANAGER) or (key == CRDS and meta['name'] == 'nodes.longhorn.io'):
            for node in self.api.store.list(NODES):
                self.notify(NODES, 'MODIFIED', node)
        elif key == CLAIMS:
            for pod in self.api.store.list(PODS, meta['namespace']):
                if meta['name'] in claim_names(pod):
                    self.enqueue(PODS, meta['namespace'], pod['metadata']['name'])

    def installed(self):
        """The namespace of the release's longhorn-manager DaemonSet, or None without Longhorn."""
        for daemonset in self.api.store.list(DAEMONSETS):
            if daemonset['metadata']['name'] == MANAGER and not daemonset['metadata'].get('deletionTimestamp'):
                return daemonset['metadata']['namespace']
        return None

    def reconcile(self, key, namespace, name):
        longhorn_namespace = self.installed()
        if longhorn_namespace is None:
            return None
        if key == NODES:
            return self.sync_node(longhorn_namespace, name)
        return self.sync_pod(namespace, name)

    def sync_node(self, longhorn_namespace, name):
        rtype = self.api.registry.get('longhorn.io', 'v1beta2', 'nodes')
        if rtype is None:
            return 1.0  # the chart's CRDs are not established yet
        kube_node = self.api.store.get(NODES, None, name)
        current = self.api.store.get(LONGHORN_NODES, longhorn_namespace, name)
        if kube_node is None:
            if current is not None:
                self.api.store.delete(LONGHORN_NODES, longhorn_namespace, name)
            return None
        if current is None:
            current = self.api.create(rtype, longhorn_namespace, {'metadata': {'name': name}, 'spec': {
                'name': name, 'allowScheduling': True, 'evictionRequested': False, 'disks': {}, 'tags': []}},
                MANAGER)
        status = copy.deepcopy(current.get('status') or {})
        status['conditions'] = node_conditions(kube_node, status.get('conditions'))
        if status != current.get('status'):
            self.api.replace(rtype, longhorn_namespace, name, dict(self.api.served_as(rtype, current),
                                                                   status=status), MANAGER, subresource='status')
        return None

    def sync_pod(self, namespace, name):
        pod = self.api.store.get(PODS, namespace, name)
        if pod is None or pod['metadata'].get('deletionTimestamp'):
            return None
        node_name = (pod.get('spec') or {}).get('nodeName')
        kube_node = self.api.store.get(NODES, None, node_name) if node_name else None
        missing = missing_packages(kube_node) if kube_node else None
        if not missing:
            return None
        volumes = [v for v in (self.longhorn_volume(namespace, claim) for claim in claim_names(pod)) if v]
        if not volumes:
            return None
        for volume_name in volumes:
            self.record_event(pod, volume_name, attach_error(volume_name, node_name, missing))
        status = pod.get('status') or {}
        if status.get('phase') != 'Pending' or not status.get('containerStatuses'):
            pod_type = self.api.registry.get('', 'v1', 'pods')
            self.api.replace(pod_type, namespace, name, dict(self.api.served_as(pod_type, pod),
                                                             status=waiting_status(pod)), MANAGER,
                             subresource='status')
        return None

    def longhorn_volume(self, namespace, claim_name):
        """The bound PersistentVolume of a claim when Longhorn provisioned it."""
        claim = self.api.store.get(CLAIMS, namespace, claim_name)
        volume_name = ((claim or {}).get('spec') or {}).get('volumeName')
        volume = self.api.store.get(VOLUMES, None, volume_name) if volume_name else None
        if volume and (volume['spec'].get('csi') or {}).get('driver') == LONGHORN_PROVISIONER:
            return volume_name
        return None

    def record_event(self, pod, volume_name, message):
        event_type = self.api.registry.get('', 'v1', 'events')
        meta = pod['metadata']
        event_name = '{0}.{1}'.format(meta['name'], volume_name)
        if self.api.store.get(('', 'events'), meta['namespace'], event_name) is not None:
            return
        stamp = now()
        self.api.create(event_type, meta['namespace'], {
            'metadata': {'name': event_name},
            'involvedObject': {'kind': 'Pod', 'apiVersion': 'v1', 'namespace': meta['namespace'],
                               'name': meta['name'], 'uid': meta['uid']},
            'reason': 'FailedAttachVolume', 'message': message, 'type': 'Warning', 'count': 1,
            'source': {'component': 'attachdetach-controller'}, 'firstTimestamp': stamp, 'lastTimestamp': stamp,
            'reportingComponent': 'attachdetach-controller', 'reportingInstance': ''}, MANAGER)


def claim_names(pod):
    return [v['persistentVolumeClaim']['claimName'] for v in (pod.get('spec') or {}).get('volumes') or []
            if (v.get('persistentVolumeClaim') or {}).get('claimName')]


def waiting_status(pod):
    """A scheduled pod whose volumes never attach: Pending, its containers waiting in ContainerCreating."""
    stamp = now()
    containers = (pod.get('spec') or {}).get('containers') or []
    not_ready = 'containers with unready status: [{0}]'.format(' '.join(c['name'] for c in containers))
    return {'phase': 'Pending', 'qosClass': 'BestEffort', 'startTime': stamp, 'conditions': [
        {'type': 'PodReadyToStartContainers', 'status': 'False', 'lastTransitionTime': stamp},
        {'type': 'Initialized', 'status': 'True', 'lastTransitionTime': stamp},
        {'type': 'Ready', 'status': 'False', 'lastTransitionTime': stamp, 'reason': 'ContainersNotReady',
         'message': not_ready},
        {'type': 'ContainersReady', 'status': 'False', 'lastTransitionTime': stamp, 'reason': 'ContainersNotReady',
         'message': not_ready},
        {'type': 'PodScheduled', 'status': 'True', 'lastTransitionTime': stamp}],
        'containerStatuses': [{'name': c['name'], 'image': c.get('image', ''), 'imageID': '', 'ready': False,
                               'started': False, 'restartCount': 0,
                               'state': {'waiting': {'reason': 'ContainerCreating'}}} for c in containers]}


def controllers(api):
    return [LonghornController(api)]
