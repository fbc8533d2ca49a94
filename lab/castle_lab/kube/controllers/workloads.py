"""kube-controller-manager's workload controllers, the scheduler's placement and the kubelet's pod status, as the lab
runs them: Deployments through revisioned ReplicaSets, ReplicaSets, DaemonSets (a pod per eligible node),
StatefulSets and Jobs get pods placed on nodes whose taints they tolerate; pods run and get Ready unless a fault of
the control API (castle_lab.kube.controllers.failures) says otherwise. Nodes get a pod CIDR and the taints their
conditions and spec.unschedulable call for."""

import copy
import datetime
import json
import struct
import time
import uuid

from ... import timing
from ..api.errors import ApiError
from .core import MANAGER, PODS, REPLICA_SETS, condition, merge_conditions, owned_by, owner_reference
from .events import Recorder
from .failures import Failures
from .manager import Controller

NODES = ('', 'nodes')
JOBS = ('batch', 'jobs')
DEPLOYMENTS = ('apps', 'deployments')
DAEMON_SETS = ('apps', 'daemonsets')
STATEFUL_SETS = ('apps', 'statefulsets')
WORKLOADS = (DEPLOYMENTS, DAEMON_SETS, STATEFUL_SETS, JOBS)
REVISION = 'deployment.kubernetes.io/revision'
REVISION_HISTORY = 'deployment.kubernetes.io/revision-history'
DESIRED_REPLICAS = 'deployment.kubernetes.io/desired-replicas'
MAX_REPLICAS = 'deployment.kubernetes.io/max-replicas'
HASH_LABEL = 'pod-template-hash'
UNSCHEDULABLE = 'node.kubernetes.io/unschedulable'
NOT_READY = 'node.kubernetes.io/not-ready'
UNREACHABLE = 'node.kubernetes.io/unreachable'
# What the DaemonSet controller adds to its pods' tolerations (AddOrUpdateDaemonPodTolerations).
DAEMON_TOLERATIONS = [
    {'key': NOT_READY, 'operator': 'Exists', 'effect': 'NoExecute'},
    {'key': UNREACHABLE, 'operator': 'Exists', 'effect': 'NoExecute'},
    {'key': 'node.kubernetes.io/disk-pressure', 'operator': 'Exists', 'effect': 'NoSchedule'},
    {'key': 'node.kubernetes.io/memory-pressure', 'operator': 'Exists', 'effect': 'NoSchedule'},
    {'key': 'node.kubernetes.io/pid-pressure', 'operator': 'Exists', 'effect': 'NoSchedule'},
    {'key': UNSCHEDULABLE, 'operator': 'Exists', 'effect': 'NoSchedule'}]
# What rand.SafeEncodeString maps characters to (no vowels, so no words).
SAFE = 'bcdfghjklmnpqrstvwxz2456789'
FAILED_CREATE_RETRY = 5.0
TIME_FORMAT = '%Y-%m-%dT%H:%M:%SZ'


def fnv32a(data):
    value = 0x811c9dc5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xffffffff
    return value


def go_value(value):
    """A value as the Go struct it decodes to holds it: null and empty fields are the same as absent ones (a
    template kubectl sends back carries `creationTimestamp: null` and `resources: {}`)."""
    if isinstance(value, dict):
        kept = {k: go_value(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [go_value(v) for v in value]
    return value


def template_hash(template, collision_count=None):
    """The pod-template-hash of a template, as the Deployment controller's ComputeHash: FNV-1a (32 bit) over the
    template, then the collision count as 8 bytes (a little-endian uint32 first), the decimal sum safe-encoded. Go
    feeds the template struct as printed by spew; the lab feeds its canonical JSON."""
    data = json.dumps(go_value(template), sort_keys=True, separators=(',', ':')).encode()
    if collision_count is not None:
        data += struct.pack('<I', collision_count & 0xffffffff) + bytes(4)
    return ''.join(SAFE[byte % len(SAFE)] for byte in str(fnv32a(data)).encode())


def timed(cond, stamp):
    """A condition dated by the controllers' clock."""
    cond['lastTransitionTime'] = stamp
    if 'lastUpdateTime' in cond:
        cond['lastUpdateTime'] = stamp
    return cond


def soonest(*delays):
    """The earliest of some requeue delays (None: none wanted)."""
    wanted = [d for d in delays if d]
    return min(wanted) if wanted else None


def parse_time(stamp):
    return datetime.datetime.strptime(stamp, TIME_FORMAT).replace(tzinfo=datetime.timezone.utc).timestamp()


def revision_of(obj):
    try:
        return int((obj['metadata'].get('annotations') or {}).get(REVISION, '0'))
    except ValueError:
        return 0


def find_condition(obj, kind):
    return next((c for c in (obj.get('status') or {}).get('conditions') or [] if c.get('type') == kind), None)


def scaled_int(value, total, round_up):
    """An IntOrString (maxUnavailable, maxSurge) against `total`."""
    if isinstance(value, str) and value.endswith('%'):
        share = int(value[:-1]) * total
        return -(-share // 100) if round_up else share // 100
    return int(value or 0)


def tolerated(taint, tolerations):
    for toleration in tolerations:
        if toleration.get('effect') and toleration['effect'] != taint.get('effect'):
            continue
        if toleration.get('operator') == 'Exists':
            if not toleration.get('key') or toleration['key'] == taint.get('key'):
                return True
        elif toleration.get('key') == taint.get('key') and toleration.get('value', '') == taint.get('value', ''):
            return True
    return False


def node_ready(node):
    ready = find_condition(node, 'Ready')
    return bool(ready) and ready.get('status') == 'True'


def pod_ready(pod):
    ready = find_condition(pod, 'Ready')
    return bool(ready) and ready.get('status') == 'True'


def pod_done(pod):
    return (pod.get('status') or {}).get('phase') in ('Succeeded', 'Failed')


class WorkloadController(Controller):
    """Deployments, DaemonSets, StatefulSets and Jobs, their ReplicaSets and pods, and their status."""

    name = 'workloads'
    watches = WORKLOADS

    def __init__(self, api, failures=None):
        super().__init__(api)
        self.failures = failures or Failures()
        self.failures.listeners.append(self.enqueue_all)
        self.pod_ips = 0
        self.node_marks = {}
        self.pulls = {}  # (node's machine ID, image): [when the node has the image, the pull's seconds] (the real timing profile only)
        self.deployments = Recorder(api, 'deployment-controller', self.failures.now)
        self.replica_sets = Recorder(api, 'replicaset-controller', self.failures.now)
        self.daemon_sets = Recorder(api, 'daemonset-controller', self.failures.now)
        self.stateful_sets = Recorder(api, 'statefulset-controller', self.failures.now)
        self.jobs = Recorder(api, 'job-controller', self.failures.now)
        self.scheduler = Recorder(api, 'default-scheduler', self.failures.now)
        self.kubelet = Recorder(api, 'kubelet', self.failures.now)

    def enqueue_all(self):
        for key in WORKLOADS:
            for obj in self.api.store.list(key):
                self.enqueue(key, obj['metadata']['namespace'], obj['metadata']['name'])

    def notify(self, key, event, obj):
        if key == PODS and event == 'DELETED':
            # A pod that went away is replaced: reconcile the workload that owns it (through its ReplicaSet).
            owner = self._workload_of(obj)
            if owner:
                self.enqueue(*owner)
            return
        if key == NODES:
            # Placement and pod readiness follow the nodes' schedulability and readiness.
            mark = None if event == 'DELETED' else (node_ready(obj), json.dumps(
                (obj.get('spec') or {}).get('taints') or [], sort_keys=True), (obj.get('spec') or {}).get(
                    'unschedulable'), json.dumps(obj['metadata'].get('labels') or {}, sort_keys=True))
            if self.node_marks.get(obj['metadata']['name']) != mark:
                self.node_marks[obj['metadata']['name']] = mark
                self.enqueue_all()
            return
        super().notify(key, event, obj)

    def _workload_of(self, pod):
        namespace = pod['metadata']['namespace']
        for ref in pod['metadata'].get('ownerReferences') or []:
            if ref.get('kind') == 'ReplicaSet':
                rs = self.api.store.get(REPLICA_SETS, namespace, ref['name'])
                refs = (rs or {}).get('metadata', {}).get('ownerReferences') or []
                if refs and refs[0].get('kind') == 'Deployment':
                    return DEPLOYMENTS, namespace, refs[0]['name']
            elif ref.get('kind') in ('StatefulSet', 'DaemonSet'):
                return ('apps', ref['kind'].lower() + 's'), namespace, ref['name']
            elif ref.get('kind') == 'Job':
                return JOBS, namespace, ref['name']
        return None

    def reconcile(self, key, namespace, name):
        obj = self.api.store.get(key, namespace, name)
        if obj is None or obj['metadata'].get('deletionTimestamp'):
            return None
        kind = {DEPLOYMENTS: 'Deployment', DAEMON_SETS: 'DaemonSet', STATEFUL_SETS: 'StatefulSet', JOBS: 'Job'}[key]
        fault = self.failures.fault_of(namespace, kind, name)
        if key == DEPLOYMENTS:
            return self._sync_deployment(obj, fault)
        if key == JOBS:
            return self._sync_job(obj, fault)
        spec = obj.get('spec') or {}
        template = spec.get('template') or {}
        if key == STATEFUL_SETS:
            pods, requeue, _refused = self._sync_pods(obj, spec.get('replicas', 1), template, fault,
                                                      self.stateful_sets, ordinal=True)
            wanted = spec.get('replicas', 1)
        else:
            pods, requeue, wanted = self._sync_daemon_pods(obj, template, fault)
        self._set_status(key, obj, self._workload_status(key, obj, pods, wanted))
        return requeue

    # Deployments

    def _sync_deployment(self, deployment, fault):
        api = self.api
        meta, spec = deployment['metadata'], deployment.get('spec') or {}
        namespace = meta['namespace']
        replicas = spec.get('replicas', 1)
        template = spec.get('template') or {}
        collision = (deployment.get('status') or {}).get('collisionCount')
        pod_hash = template_hash(template, collision)
        owned = [rs for rs in api.store.list(REPLICA_SETS, namespace) if owned_by(rs, meta['uid'])]
        new = next((rs for rs in owned if (rs['metadata'].get('labels') or {}).get(HASH_LABEL) == pod_hash), None)
        olds = [rs for rs in owned if rs is not new]
        newest = max([revision_of(rs) for rs in owned] or [0])
        requeue = None
        if spec.get('paused'):
            rs_pods = {rs['metadata']['uid']: self._pods_of(rs) for rs in owned}
            self._set_status(DEPLOYMENTS, deployment, self._deployment_status(deployment, new, rs_pods))
            return None
        rs_type = api.registry.get('apps', 'v1', 'replicasets')
        annotations = {DESIRED_REPLICAS: str(replicas), MAX_REPLICAS: str(replicas + scaled_int(
            ((spec.get('strategy') or {}).get('rollingUpdate') or {}).get('maxSurge', '25%'), replicas, True))}
        if new is None:
            labels = dict((template.get('metadata') or {}).get('labels') or {}, **{HASH_LABEL: pod_hash})
            pod_template = copy.deepcopy(template)
            pod_template.setdefault('metadata', {})['labels'] = labels
            selector = copy.deepcopy(spec.get('selector') or {})
            selector.setdefault('matchLabels', {})[HASH_LABEL] = pod_hash
            body = {'metadata': {'name': '{0}-{1}'.format(meta['name'], pod_hash), 'labels': labels,
                                 'annotations': dict(annotations, **{REVISION: str(newest + 1)}),
                                 'ownerReferences': [owner_reference(deployment)]},
                    'spec': {'replicas': replicas, 'selector': selector, 'template': pod_template,
                             'minReadySeconds': spec.get('minReadySeconds', 0)}}
            new = api.create(rs_type, namespace, body, MANAGER)
            self.deployments.normal(deployment, 'ScalingReplicaSet', 'Scaled up replica set {0} from 0 to {1}'.format(
                new['metadata']['name'], replicas))
        else:
            wanted = dict(new['metadata'].get('annotations') or {}, **annotations)
            old_revision = revision_of(new)
            if old_revision < newest:
                # A template that comes back (kubectl rollout undo) reuses its ReplicaSet under a new revision.
                history = [h for h in wanted.get(REVISION_HISTORY, '').split(',') if h] + [str(old_revision)]
                wanted.update({REVISION: str(newest + 1), REVISION_HISTORY: ','.join(history)})
            before = new['spec'].get('replicas', 0)
            if before != replicas or wanted != new['metadata'].get('annotations'):
                body = api.served_as(rs_type, new)
                body['metadata']['annotations'] = wanted
                body['spec']['replicas'] = replicas
                new = api.replace(rs_type, namespace, new['metadata']['name'], body, MANAGER)
                if before != replicas:
                    self.deployments.normal(deployment, 'ScalingReplicaSet', 'Scaled {0} replica set {1} from {2} to '
                                            '{3}'.format('up' if replicas > before else 'down',
                                                         new['metadata']['name'], before, replicas))
        rs_pods = {}
        new_pods, requeue = self._sync_replica_set(new, fault)
        rs_pods[new['metadata']['uid']] = new_pods
        new_available = sum(1 for p in new_pods if pod_ready(p)) >= replicas
        current_olds = []
        for old in olds:
            if new_available and old['spec'].get('replicas'):
                # The old pods go once the new ReplicaSet's are all available.
                before = old['spec']['replicas']
                body = api.served_as(rs_type, old)
                body['spec']['replicas'] = 0
                old = api.replace(rs_type, namespace, old['metadata']['name'], body, MANAGER)
                self.deployments.normal(deployment, 'ScalingReplicaSet', 'Scaled down replica set {0} from {1} to '
                                        '0'.format(old['metadata']['name'], before))
            rs_pods[old['metadata']['uid']] = self._sync_replica_set(old, fault)[0]
            current_olds.append(old)
        self._clean_up(deployment, [o for o in current_olds if not rs_pods[o['metadata']['uid']]], rs_type)
        deployment = self._set_revision(deployment, revision_of(new))
        status = self._deployment_status(deployment, new, rs_pods)
        self._set_status(DEPLOYMENTS, deployment, status)
        progressing = find_condition({'status': status}, 'Progressing')
        if progressing and progressing['reason'] not in ('NewReplicaSetAvailable', 'ProgressDeadlineExceeded'):
            left = parse_time(progressing.get('lastUpdateTime') or progressing['lastTransitionTime']) + spec.get(
                'progressDeadlineSeconds', 600) - self.failures.clock()
            requeue = soonest(requeue, max(left, 0.1))
        return requeue

    def _set_revision(self, deployment, revision):
        annotations = deployment['metadata'].get('annotations') or {}
        if annotations.get(REVISION) == str(revision):
            return deployment
        rtype = self.api.registry.get('apps', 'v1', 'deployments')
        body = self.api.served_as(rtype, deployment)
        body['metadata'].setdefault('annotations', {})[REVISION] = str(revision)
        return self.api.replace(rtype, deployment['metadata']['namespace'], deployment['metadata']['name'], body,
                                MANAGER)

    def _clean_up(self, deployment, idle, rs_type):
        """Old ReplicaSets without pods beyond spec.revisionHistoryLimit go, oldest revision first."""
        limit = (deployment.get('spec') or {}).get('revisionHistoryLimit', 10)
        idle = sorted((rs for rs in idle if not rs['spec'].get('replicas')), key=revision_of)
        for rs in idle[:max(len(idle) - limit, 0)]:
            self.api.delete(rs_type, rs['metadata']['namespace'], rs['metadata']['name'])

    def _deployment_status(self, deployment, new, rs_pods):
        spec, meta = deployment.get('spec') or {}, deployment['metadata']
        status = copy.deepcopy(deployment.get('status') or {})
        replicas = spec.get('replicas', 1)
        everything = [p for pods in rs_pods.values() for p in pods]
        new_pods = rs_pods.get(new['metadata']['uid'], []) if new else []
        ready = sum(1 for p in everything if pod_ready(p))
        counts = {'replicas': len(everything), 'updatedReplicas': len(new_pods), 'readyReplicas': ready,
                  'availableReplicas': ready, 'unavailableReplicas': max(replicas - ready, 0)}
        for field, value in counts.items():
            if value or field == 'replicas':
                status[field] = value
            else:
                status.pop(field, None)
        status['observedGeneration'] = meta.get('generation', 1)
        max_unavailable = scaled_int(((spec.get('strategy') or {}).get('rollingUpdate') or {}).get(
            'maxUnavailable', '25%'), replicas, False)
        stamp = self.failures.now()
        if ready >= replicas - max_unavailable:
            available = condition('Available', 'MinimumReplicasAvailable', 'Deployment has minimum availability.',
                                  observed=True)
        else:
            available = condition('Available', 'MinimumReplicasUnavailable',
                                  'Deployment does not have minimum availability.', status='False', observed=True)
        conditions = [timed(available, stamp), self._progressing(deployment, new, new_pods, len(everything), ready,
                                                                 stamp)]
        failure = find_condition(self.api.store.get(REPLICA_SETS, meta['namespace'], new['metadata']['name']) or {},
                                 'ReplicaFailure') if new else None
        if failure:
            conditions.append(dict(failure, lastUpdateTime=failure['lastTransitionTime']))
        status['conditions'] = merge_conditions(status.get('conditions'), conditions)
        return status

    def _progressing(self, deployment, new, new_pods, total, ready, stamp):
        """The Progressing condition: complete, still within spec.progressDeadlineSeconds of the last progress, or
        past it; a complete rollout is not estimated again until the next one."""
        spec = deployment.get('spec') or {}
        replicas = spec.get('replicas', 1)
        name = new['metadata']['name'] if new else ''
        before = find_condition(deployment, 'Progressing')
        same = bool(before) and '"{0}"'.format(name) in before.get('message', '')
        complete = len(new_pods) == replicas and total == replicas
        if same and before.get('reason') == 'NewReplicaSetAvailable' and complete:
            return dict(before)
        if complete and ready >= replicas:
            found = condition('Progressing', 'NewReplicaSetAvailable',
                              'ReplicaSet "{0}" has successfully progressed.'.format(name), observed=True)
        elif same and before.get('reason') == 'ProgressDeadlineExceeded':
            return dict(before)
        elif same and before.get('reason') != 'NewReplicaSetAvailable':
            since = parse_time(before.get('lastUpdateTime') or before['lastTransitionTime'])
            if self.failures.clock() - since <= spec.get('progressDeadlineSeconds', 600):
                return dict(before)
            found = condition('Progressing', 'ProgressDeadlineExceeded',
                              'ReplicaSet "{0}" has timed out progressing.'.format(name), status='False',
                              observed=True)
        else:
            found = condition('Progressing', 'ReplicaSetUpdated', 'ReplicaSet "{0}" is progressing.'.format(name),
                              observed=True)
        return timed(found, stamp)

    # ReplicaSets and pods

    def _pods_of(self, owner):
        uid = owner['metadata']['uid']
        return [p for p in self.api.store.list(PODS, owner['metadata']['namespace']) if owned_by(p, uid)]

    def _sync_replica_set(self, rs, fault):
        count = rs['spec'].get('replicas', 0)
        pods, requeue, refused = self._sync_pods(rs, count, rs['spec'].get('template') or {}, fault,
                                                 self.replica_sets)
        ready = sum(1 for p in pods if pod_ready(p))
        status = {'replicas': len(pods), 'fullyLabeledReplicas': len(pods), 'readyReplicas': ready,
                  'availableReplicas': ready, 'observedGeneration': rs['metadata'].get('generation', 1)}
        status = {k: v for k, v in status.items() if v or k in ('replicas', 'observedGeneration')}
        if refused:
            failure = find_condition(rs, 'ReplicaFailure')
            status['conditions'] = merge_conditions(failure and [failure], [timed(condition(
                'ReplicaFailure', 'FailedCreate', refused), self.failures.now())])
        self._set_status(REPLICA_SETS, rs, status)
        return pods, requeue

    def _sync_pods(self, owner, count, template, fault, recorder, ordinal=False):
        """Exactly `count` pods owned by `owner`, their status as the fault says; returns (pods, seconds to requeue
        or None, the API's message when it refused a pod or None)."""
        api = self.api
        refused = None
        namespace = owner['metadata']['namespace']
        pods = self._pods_of(owner)
        base = owner['metadata']['name']
        if ordinal:
            wanted = ['{0}-{1}'.format(base, i) for i in range(count)]
            extra = [p for p in pods if p['metadata']['name'] not in wanted]
            missing = [n for n in wanted if api.store.get(PODS, namespace, n) is None]
        else:
            extra, missing = pods[count:], [None] * max(count - len(pods), 0)
        for pod in extra:
            api.store.delete(PODS, namespace, pod['metadata']['name'])
            recorder.normal(owner, 'SuccessfulDelete', 'Deleted pod: {0}'.format(pod['metadata']['name']))
        requeue = None
        for pod_name in missing:
            try:
                self._create_pod(owner, template, pod_name, recorder)
            except ApiError as exc:
                # A pod the API refuses (admission, quota, validation) is reported, and tried again later.
                refused = exc.message
                recorder.warning(owner, 'FailedCreate', 'Error creating: {0}'.format(exc.message))
                requeue = FAILED_CREATE_RETRY
                break
        pods, again = self._run_pods(owner, fault)
        return pods, soonest(requeue, again), refused

    def _run_pods(self, owner, fault):
        """The owner's pods scheduled and their status written; (pods, seconds to requeue or None)."""
        pods, requeue = [], None
        for pod in self._pods_of(owner):
            pod, again = self._run_pod(pod, fault)
            pods.append(pod)
            requeue = soonest(requeue, again)
        return pods, requeue

    def _create_pod(self, owner, template, pod_name, recorder, node=None):
        api = self.api
        namespace = owner['metadata']['namespace']
        pod_type = api.registry.get('', 'v1', 'pods')
        meta = copy.deepcopy(template.get('metadata') or {})
        meta.update(ownerReferences=[owner_reference(owner)])
        if owner['kind'] == 'Job':
            meta['labels'] = dict(meta.get('labels') or {}, **{
                'batch.kubernetes.io/job-name': owner['metadata']['name'], 'job-name': owner['metadata']['name'],
                'batch.kubernetes.io/controller-uid': owner['metadata']['uid'],
                'controller-uid': owner['metadata']['uid']})
        if pod_name:
            meta['name'] = pod_name
        else:
            meta['generateName'] = owner['metadata']['name'] + '-'
        spec = copy.deepcopy(template.get('spec') or {})
        if owner['kind'] == 'DaemonSet':
            spec['tolerations'] = (spec.get('tolerations') or []) + [
                t for t in DAEMON_TOLERATIONS if t not in (spec.get('tolerations') or [])]
            spec['nodeName'] = node
        pod = api.create(pod_type, namespace, {'metadata': meta, 'spec': spec}, MANAGER)
        recorder.normal(owner, 'SuccessfulCreate', 'Created pod: {0}'.format(pod['metadata']['name']))
        return pod

    # the scheduler and the kubelet

    def eligible_nodes(self, pod_spec):
        """(nodes the pod may go to, why the others may not)."""
        eligible, why = [], {}
        selector = pod_spec.get('nodeSelector') or {}
        for node in self.api.store.list(NODES):
            labels = node['metadata'].get('labels') or {}
            taints = [t for t in (node.get('spec') or {}).get('taints') or []
                      if t.get('effect') in ('NoSchedule', 'NoExecute')]
            blocking = [t for t in taints if not tolerated(t, pod_spec.get('tolerations') or [])]
            if any(labels.get(k) != v for k, v in selector.items()):
                reason = "node(s) didn't match Pod's node affinity/selector"
            elif blocking and blocking[0].get('key') == UNSCHEDULABLE:
                reason = 'node(s) were unschedulable'
            elif blocking:
                reason = 'node(s) had untolerated taint {{{0}: {1}}}'.format(blocking[0]['key'],
                                                                            blocking[0].get('value', ''))
            else:
                eligible.append(node)
                continue
            why[reason] = why.get(reason, 0) + 1
        return eligible, why

    def _schedule(self, pod):
        """A node for a pending pod (the one with the fewest pods), or None with a FailedScheduling event."""
        nodes, why = self.eligible_nodes(pod.get('spec') or {})
        if not nodes:
            total = len(self.api.store.list(NODES))
            reasons = ', '.join('{0} {1}'.format(n, r) for r, n in sorted(why.items()))
            message = 'no nodes available to schedule pods'
            if total:
                message = '0/{0} nodes are available: {1}. preemption: 0/{0} nodes are available: {0} Preemption is ' \
                          'not helpful for scheduling.'.format(total, reasons)
            self.scheduler.warning(pod, 'FailedScheduling', message)
            return None, message
        load = {}
        for other in self.api.store.list(PODS):
            node_name = (other.get('spec') or {}).get('nodeName')
            load[node_name] = load.get(node_name, 0) + 1
        chosen = min(nodes, key=lambda n: (load.get(n['metadata']['name'], 0), n['metadata']['name']))
        return chosen['metadata']['name'], None

    def _run_pod(self, pod, fault):
        """Schedules a pending pod and writes the status its node and the fault give it; returns (pod, seconds to
        requeue or None)."""
        api = self.api
        pod_type = api.registry.get('', 'v1', 'pods')
        namespace, name = pod['metadata']['namespace'], pod['metadata']['name']
        if pod_done(pod):
            return pod, None
        node_name = (pod.get('spec') or {}).get('nodeName')
        if not node_name:
            node_name, unschedulable = self._schedule(pod)
            if node_name is None:
                status = self._pending_status(pod, unschedulable)
                if status != pod.get('status'):
                    pod = api.replace(pod_type, namespace, name, dict(pod, status=status), MANAGER,
                                      subresource='status')
                return pod, None
            body = api.served_as(pod_type, pod)
            body['spec']['nodeName'] = node_name
            pod = api.replace(pod_type, namespace, name, body, MANAGER)
            self.scheduler.normal(pod, 'Scheduled', 'Successfully assigned {0}/{1} to {2}'.format(
                namespace, name, node_name))
        node = api.store.get(NODES, None, node_name)
        status, again = self._pod_status(pod, node, fault)
        if status != pod.get('status'):
            pod = api.replace(pod_type, namespace, name, dict(pod, status=status), MANAGER, subresource='status')
        return pod, again

    def _pending_status(self, pod, message):
        old = pod.get('status') or {}
        before = find_condition(pod, 'PodScheduled')
        if before and before.get('message') == message:
            return old
        return {'phase': 'Pending', 'qosClass': old.get('qosClass', 'BestEffort'), 'conditions': [
            {'type': 'PodScheduled', 'status': 'False', 'reason': 'Unschedulable', 'message': message,
             'lastProbeTime': None, 'lastTransitionTime': self.failures.now()}]}

    def _pull(self, pod, node, image):
        """Seconds until the pod's node has `image` (0: it has it). The first pod that needs an image on a node
        starts its pull, which lasts the profile's kube.image.pull (only in the real timing profile); the kubelet of a
        Talos node pulls images in parallel (serializeImagePulls: false) and keeps them for the next pods."""
        if not timing.current().real or node is None:
            return 0.0
        # A node wiped and installed again has a new machine ID and none of the images it had.
        machine = ((node.get('status') or {}).get('nodeInfo') or {}).get('machineID')
        key = (machine or node['metadata'].get('uid') or node['metadata']['name'], image)
        now = time.monotonic()
        if key not in self.pulls:
            took = timing.duration('kube.image.pull')
            self.pulls[key] = [now + took, took]
            self.kubelet.normal(pod, 'Pulling', 'Pulling image "{0}"'.format(image))
        done, took = self.pulls[key]
        if done > now:
            return done - now
        if took is not None:  # the pull has ended: said once, then the image is simply there
            self.kubelet.normal(pod, 'Pulled', 'Successfully pulled image "{0}" in {1:.1f}s'.format(image, took))
            self.pulls[key][1] = None
        return 0.0

    def _pod_status(self, pod, node, fault):
        """The kubelet's status of a scheduled pod: (status, seconds to requeue or None)."""
        old = pod.get('status') or {}
        containers = (pod.get('spec') or {}).get('containers') or []
        meta = pod['metadata']
        started = old.get('startTime') or self.failures.now()
        if not old.get('podIP'):
            self.pod_ips += 1
        address = old.get('podIP') or '10.244.{0}.{1}'.format(self.pod_ips // 250, self.pod_ips % 250 + 1)
        node_address = next((a['address'] for a in ((node or {}).get('status') or {}).get('addresses') or []
                             if a.get('type') == 'InternalIP'), '')
        before = {c['name']: c for c in old.get('containerStatuses') or []}
        job = any(ref.get('kind') == 'Job' for ref in meta.get('ownerReferences') or [])
        phase, ready, again = 'Running', True, None
        statuses = []
        for container in containers:
            image, cname = container.get('image', ''), container['name']
            previous = before.get(cname) or {}
            entry = {'name': cname, 'image': image, 'imageID': '', 'restartCount': previous.get('restartCount', 0),
                     'started': True, 'ready': True,
                     'containerID': previous.get('containerID') or 'containerd://' + uuid.uuid4().hex,
                     'state': {'running': {'startedAt': started}}}
            was_running = bool((previous.get('state') or {}).get('running'))
            pulling = 0.0 if was_running or fault == 'image-pull' else self._pull(pod, node, image)
            if pulling:
                entry.update(started=False, ready=False, state={'waiting': {'reason': 'ContainerCreating'}})
                entry.pop('containerID')
                phase, again = 'Pending', soonest(again, pulling)
            elif fault == 'image-pull' and not was_running:
                waiting = (previous.get('state') or {}).get('waiting') or {}
                if waiting.get('reason') in ('ErrImagePull', 'ImagePullBackOff'):
                    entry['state'] = {'waiting': {'reason': 'ImagePullBackOff',
                                                  'message': 'Back-off pulling image "{0}"'.format(image)}}
                    if waiting['reason'] == 'ErrImagePull':
                        self.kubelet.normal(pod, 'BackOff', 'Back-off pulling image "{0}"'.format(image))
                        self.kubelet.warning(pod, 'Failed', 'Error: ImagePullBackOff')
                else:
                    error = 'failed to pull and unpack image "{0}": failed to resolve reference "{0}": {0}: not ' \
                            'found'.format(image)
                    entry['state'] = {'waiting': {'reason': 'ErrImagePull', 'message': 'rpc error: code = NotFound '
                                                                                       'desc = ' + error}}
                    self.kubelet.normal(pod, 'Pulling', 'Pulling image "{0}"'.format(image))
                    self.kubelet.warning(pod, 'Failed', 'Failed to pull image "{0}": rpc error: code = NotFound '
                                                        'desc = {1}'.format(image, error))
                    self.kubelet.warning(pod, 'Failed', 'Error: ErrImagePull')
                    again = 1.0
                entry.update(started=False, ready=False)
                entry.pop('containerID')
                phase = 'Pending'
            elif fault == 'crash-loop':
                entry.update(started=False, ready=False, restartCount=max(entry['restartCount'], 1),
                             state={'waiting': {'reason': 'CrashLoopBackOff', 'message': (
                                 'back-off 10s restarting failed container={0} pod={1}_{2}({3})'.format(
                                     cname, meta['name'], meta['namespace'], meta['uid']))}},
                             lastState={'terminated': {'exitCode': 1, 'reason': 'Error', 'startedAt': started,
                                                       'finishedAt': started, 'containerID': entry['containerID']}})
                if not previous.get('lastState'):
                    self.kubelet.warning(pod, 'BackOff', 'Back-off restarting failed container {0} in pod '
                                                         '{1}_{2}({3})'.format(cname, meta['name'],
                                                                               meta['namespace'], meta['uid']))
            elif fault == 'not-ready':
                entry['ready'] = False
                if previous.get('ready', True):
                    self.kubelet.warning(pod, 'Unhealthy', 'Readiness probe failed: HTTP probe failed with '
                                                           'statuscode: 503')
            elif job:
                failed = fault == 'fail'
                entry.update(started=False, ready=False, state={'terminated': {
                    'exitCode': 1 if failed else 0, 'reason': 'Error' if failed else 'Completed',
                    'startedAt': started, 'finishedAt': self.failures.now(), 'containerID': entry['containerID']}})
                phase = 'Failed' if failed else 'Succeeded'
            ready = ready and entry['ready']
            statuses.append(entry)
        if node is not None and not node_ready(node):
            ready = False  # the node lifecycle controller marks the pods of a node not ready
        unready = [s['name'] for s in statuses if not s['ready']]
        conditions = [('PodReadyToStartContainers', True, None), ('Initialized', True, None),
                      ('Ready', ready, None if ready else 'ContainersNotReady'),
                      ('ContainersReady', not unready, None if not unready else 'ContainersNotReady'),
                      ('PodScheduled', True, None)]
        if phase in ('Succeeded', 'Failed'):
            reason = 'PodCompleted' if phase == 'Succeeded' else 'PodFailed'
            conditions = [(kind, value if kind in ('PodScheduled', 'Initialized') else False,
                           None if kind in ('PodScheduled', 'Initialized') else reason)
                          for kind, value, _reason in conditions]
        old_conditions = {c['type']: c for c in old.get('conditions') or []}
        written = []
        for kind, value, reason in conditions:
            cond = {'type': kind, 'status': 'True' if value else 'False',
                    'lastTransitionTime': self.failures.now(), 'lastProbeTime': None}
            if reason:
                cond['reason'] = reason
                if reason == 'ContainersNotReady' and unready:
                    cond['message'] = 'containers with unready status: [{0}]'.format(' '.join(unready))
            previous = old_conditions.get(kind)
            if previous and previous['status'] == cond['status']:
                cond['lastTransitionTime'] = previous['lastTransitionTime']
            written.append(cond)
        status = {'phase': phase, 'hostIP': node_address, 'hostIPs': [{'ip': node_address}], 'podIP': address,
                  'podIPs': [{'ip': address}], 'startTime': started, 'qosClass': 'BestEffort',
                  'conditions': written, 'containerStatuses': statuses}
        if old and {k: v for k, v in old.items() if k != 'conditions'} == \
                {k: v for k, v in status.items() if k != 'conditions'} and \
                [dict(c, lastTransitionTime=None) for c in old.get('conditions') or []] == \
                [dict(c, lastTransitionTime=None) for c in written]:
            return old, again
        return status, again

    # DaemonSets, StatefulSets and Jobs

    def _sync_daemon_pods(self, daemon_set, template, fault):
        """A pod on every node the template's pods may go to (with the DaemonSet tolerations)."""
        spec = dict(template.get('spec') or {})
        spec['tolerations'] = (spec.get('tolerations') or []) + DAEMON_TOLERATIONS
        nodes = {n['metadata']['name'] for n in self.eligible_nodes(spec)[0]}
        pods = self._pods_of(daemon_set)
        on_node = {}
        for pod in pods:
            node = (pod.get('spec') or {}).get('nodeName')
            if node not in nodes or node in on_node:
                self.api.store.delete(PODS, pod['metadata']['namespace'], pod['metadata']['name'])
                self.daemon_sets.normal(daemon_set, 'SuccessfulDelete', 'Deleted pod: {0}'.format(
                    pod['metadata']['name']))
            else:
                on_node[node] = pod
        requeue = None
        for node in sorted(nodes - set(on_node)):
            try:
                self._create_pod(daemon_set, template, None, self.daemon_sets, node)
            except ApiError as exc:
                self.daemon_sets.warning(daemon_set, 'FailedCreate', 'Error creating: {0}'.format(exc.message))
                requeue = FAILED_CREATE_RETRY
                break
        ran, again = self._run_pods(daemon_set, fault)
        return ran, soonest(requeue, again), len(nodes)

    def _sync_job(self, job, fault):
        spec = job.get('spec') or {}
        status = copy.deepcopy(job.get('status') or {})
        if any(c['type'] in ('Complete', 'Failed') and c['status'] == 'True' for c in status.get('conditions') or []):
            return None
        if spec.get('suspend'):
            return None
        completions = spec.get('completions', 1)
        parallelism = spec.get('parallelism', 1)
        backoff = spec.get('backoffLimit', 6)
        pods, requeue = self._run_pods(job, fault)
        status.setdefault('startTime', self.failures.now())
        for _round in range(backoff + completions + 1):
            succeeded = sum(1 for p in pods if (p.get('status') or {}).get('phase') == 'Succeeded')
            failed = sum(1 for p in pods if (p.get('status') or {}).get('phase') == 'Failed')
            active = [p for p in pods if not pod_done(p)]
            if failed > backoff or succeeded >= completions:
                break
            wanted = min(parallelism, completions - succeeded) - len(active)
            if wanted <= 0:
                break
            try:
                for _pod in range(wanted):
                    self._create_pod(job, spec.get('template') or {}, None, self.jobs, None)
            except ApiError as exc:
                self.jobs.warning(job, 'FailedCreate', 'Error creating: {0}'.format(exc.message))
                requeue = FAILED_CREATE_RETRY
                break
            pods, again = self._run_pods(job, fault)
            requeue = soonest(requeue, again)
        succeeded = sum(1 for p in pods if (p.get('status') or {}).get('phase') == 'Succeeded')
        failed = sum(1 for p in pods if (p.get('status') or {}).get('phase') == 'Failed')
        active = [p for p in pods if not pod_done(p)]
        stamp = self.failures.now()
        status.update(active=len(active), succeeded=succeeded, failed=failed, terminating=0,
                      ready=sum(1 for p in active if pod_ready(p)), uncountedTerminatedPods={})
        for field in ('active', 'succeeded', 'failed'):
            if not status[field]:
                status.pop(field)
        if failed > backoff:
            message = 'Job has reached the specified backoff limit'
            status['conditions'] = [
                dict(condition('FailureTarget', 'BackoffLimitExceeded', message), lastProbeTime=stamp),
                dict(condition('Failed', 'BackoffLimitExceeded', message), lastProbeTime=stamp)]
            for pod in active:
                self.api.store.delete(PODS, pod['metadata']['namespace'], pod['metadata']['name'])
            self.jobs.warning(job, 'BackoffLimitExceeded', message)
            requeue = None
        elif succeeded >= completions:
            message = 'Reached expected number of succeeded pods'
            status['conditions'] = [
                dict(condition('SuccessCriteriaMet', 'CompletionsReached', message), lastProbeTime=stamp),
                dict(condition('Complete', 'CompletionsReached', message), lastProbeTime=stamp)]
            status['completionTime'] = stamp
            self.jobs.normal(job, 'Completed', 'Job completed')
        self._set_status(JOBS, job, status)
        return requeue

    def _set_status(self, key, obj, status):
        current = self.api.store.get(key, obj['metadata']['namespace'], obj['metadata']['name'])
        if current is not None and current.get('status') != status:
            current = copy.deepcopy(current)
            current['status'] = status
            self.api.store.put(key, current)

    def _workload_status(self, key, obj, pods, wanted):
        meta = obj['metadata']
        status = copy.deepcopy(obj.get('status') or {})
        generation = meta.get('generation', 1)
        name = meta['name']
        ready = sum(1 for p in pods if pod_ready(p))
        if key == DAEMON_SETS:
            status.update(currentNumberScheduled=len(pods), desiredNumberScheduled=wanted, numberAvailable=ready,
                          numberMisscheduled=0, numberReady=ready, updatedNumberScheduled=len(pods),
                          observedGeneration=generation)
            if wanted - ready:
                status['numberUnavailable'] = wanted - ready
            else:
                status.pop('numberUnavailable', None)
            if not ready:
                status.pop('numberAvailable')
            return status
        status.update(replicas=len(pods), readyReplicas=ready, availableReplicas=ready,
                      updatedReplicas=len(pods), observedGeneration=generation, currentReplicas=len(pods),
                      currentRevision='{0}-1'.format(name), updateRevision='{0}-1'.format(name), collisionCount=0)
        for field in ('readyReplicas', 'availableReplicas', 'updatedReplicas', 'currentReplicas'):
            if not status[field]:
                status.pop(field, None)
        return status


class NodeController(Controller):
    """kube-controller-manager's node IPAM and lifecycle parts: a pod CIDR per node, the unschedulable taint of a
    cordoned node, the not-ready/unreachable taints of a node whose Ready condition is False/Unknown; a node the
    control API marks down stops posting Ready."""

    name = 'nodes'
    watches = (NODES,)

    def __init__(self, api, failures=None):
        super().__init__(api)
        self.failures = failures or Failures()
        self.failures.listeners.append(self.enqueue_all)
        self.recorder = Recorder(api, 'node-controller', self.failures.now)

    def enqueue_all(self):
        for node in self.api.store.list(NODES):
            self.enqueue(NODES, '', node['metadata']['name'])

    def reconcile(self, key, namespace, name):
        api = self.api
        node = api.store.get(NODES, None, name)
        if node is None or node['metadata'].get('deletionTimestamp'):
            return None
        rtype = api.registry.get('', 'v1', 'nodes')
        ready = find_condition(node, 'Ready')
        down = name in self.failures.nodes_down
        if down and (not ready or ready.get('status') != 'Unknown'):
            self._set_ready(rtype, node, 'Unknown', 'NodeStatusUnknown', 'Kubelet stopped posting node status.')
            self.recorder.normal(node, 'NodeNotReady', 'Node {0} status is now: NodeNotReady'.format(name))
            return None
        if not down and ready and ready.get('reason') == 'NodeStatusUnknown' and name in self.failures.recovered:
            self.failures.recovered.discard(name)
            self._set_ready(rtype, node, 'True', 'KubeletReady', 'kubelet is posting ready status')
            self.recorder.normal(node, 'NodeReady', 'Node {0} status is now: NodeReady'.format(name))
            return None
        spec = copy.deepcopy(node.get('spec') or {})
        if not spec.get('podCIDR'):
            taken = {(n.get('spec') or {}).get('podCIDR') for n in api.store.list(NODES)}
            index = next(i for i in range(256) if '10.244.{0}.0/24'.format(i) not in taken)
            spec['podCIDR'] = '10.244.{0}.0/24'.format(index)
            spec['podCIDRs'] = [spec['podCIDR']]
        taints = [t for t in spec.get('taints') or [] if t.get('key') not in (UNSCHEDULABLE, NOT_READY, UNREACHABLE)]
        if spec.get('unschedulable'):
            taints.append({'key': UNSCHEDULABLE, 'effect': 'NoSchedule', 'timeAdded': self._since(node, UNSCHEDULABLE)})
        status = (ready or {}).get('status')
        if status in ('False', 'Unknown'):
            key = NOT_READY if status == 'False' else UNREACHABLE
            taints += [{'key': key, 'effect': 'NoSchedule'},
                       {'key': key, 'effect': 'NoExecute', 'timeAdded': self._since(node, key)}]
        if taints:
            spec['taints'] = taints
        else:
            spec.pop('taints', None)
        if spec != (node.get('spec') or {}):
            body = api.served_as(rtype, node)
            body['spec'] = spec
            api.replace(rtype, None, name, body, MANAGER)
        return self._evict(name, [t for t in taints if t['effect'] == 'NoExecute'])

    def _evict(self, name, taints):
        """The taint manager: a pod on the node that does not tolerate a NoExecute taint goes at once, one that
        tolerates it for tolerationSeconds (300 unless set: DefaultTolerationSeconds admits every pod so for
        not-ready and unreachable) goes once they have passed; returns the seconds to the next eviction."""
        left = []
        for pod in [p for p in self.api.store.list(PODS) if (p.get('spec') or {}).get('nodeName') == name]:
            tolerations = (pod.get('spec') or {}).get('tolerations') or []
            for taint in taints:
                matching = [t for t in tolerations if tolerated(taint, [t])]
                if matching and all(t.get('tolerationSeconds') is None for t in matching):
                    continue
                seconds = min([t['tolerationSeconds'] for t in matching if t.get('tolerationSeconds') is not None]
                              or [300 if taint['key'] in (NOT_READY, UNREACHABLE) and not matching else 0])
                due = parse_time(taint['timeAdded']) + seconds - self.failures.clock()
                if due > 0:
                    left.append(due)
                    continue
                self.recorder.normal(pod, 'TaintManagerEviction', 'Marking for deletion Pod {0}/{1}'.format(
                    pod['metadata']['namespace'], pod['metadata']['name']))
                self.api.store.delete(PODS, pod['metadata']['namespace'], pod['metadata']['name'])
                break
        return min(left) if left else None

    def _since(self, node, key):
        found = next((t for t in (node.get('spec') or {}).get('taints') or []
                      if t.get('key') == key and t.get('timeAdded')), None)
        return found['timeAdded'] if found else self.failures.now()

    def _set_ready(self, rtype, node, status, reason, message):
        stamp = self.failures.now()
        body = self.api.served_as(rtype, node)
        conditions = [c for c in (body.get('status') or {}).get('conditions') or [] if c.get('type') != 'Ready']
        conditions.append({'type': 'Ready', 'status': status, 'reason': reason, 'message': message,
                           'lastHeartbeatTime': stamp, 'lastTransitionTime': stamp})
        body.setdefault('status', {})['conditions'] = conditions
        self.api.replace(rtype, None, node['metadata']['name'], body, 'kubelet', subresource='status')
