"""kube-controller-manager's part: CRD establishment and clean-up, namespace deletion, workloads and their
pods, garbage collection of dependents, ServiceAccount token Secrets."""

import base64
import copy
import hashlib
import json
import uuid

from ..api.objects import CRD_FINALIZER, NODE, now
from ..api.registry import crd_types
from .manager import Controller

CRDS = ('apiextensions.k8s.io', 'customresourcedefinitions')
NAMESPACES = ('', 'namespaces')
WORKLOADS = (('apps', 'deployments'), ('apps', 'daemonsets'), ('apps', 'statefulsets'))
# Characters of generated name suffixes (no vowels, as Kubernetes avoids words).
SAFE = 'bcdfghjklmnpqrstvwxz2456789'


def condition(kind, reason, message, status='True', observed=None):
    found = {'type': kind, 'status': status, 'lastTransitionTime': now(), 'reason': reason, 'message': message}
    if observed is not None:
        found['lastUpdateTime'] = found['lastTransitionTime']
    return found


def merge_conditions(old, new):
    """New conditions keep the transition time of an old one with the same type and status."""
    previous = {c['type']: c for c in old or []}
    merged = []
    for cond in new:
        before = previous.get(cond['type'])
        if before and before['status'] == cond['status'] and before.get('reason') == cond.get('reason'):
            cond = dict(cond, lastTransitionTime=before['lastTransitionTime'])
            if 'lastUpdateTime' in before:
                cond['lastUpdateTime'] = before['lastUpdateTime']
        merged.append(cond)
    return merged


class CrdController(Controller):
    """Serves an accepted CRD's resource types; on deletion removes its objects, then the CRD."""

    name = 'crd'
    watches = (CRDS,)

    def reconcile(self, key, namespace, name):
        api = self.api
        crd = api.store.get(CRDS, None, name)
        if crd is None:
            api.registry.remove_crd(name)
            return None
        if crd['metadata'].get('deletionTimestamp'):
            for rtype in crd_types(crd):
                api.store.drop_type(rtype.key)
            api.registry.remove_crd(name)
            crd = copy.deepcopy(crd)
            crd['metadata']['finalizers'] = [f for f in crd['metadata'].get('finalizers', []) if f != CRD_FINALIZER]
            if crd['metadata']['finalizers']:
                api.store.put(CRDS, crd)
            else:
                api.store.delete(CRDS, None, name)
            return None
        api.registry.remove_crd(name)
        for rtype in crd_types(crd):
            api.registry.add(rtype)
        spec = crd['spec']
        status = copy.deepcopy(crd.get('status') or {})
        names = dict(spec['names'])
        status['acceptedNames'] = names
        status['conditions'] = merge_conditions(status.get('conditions'), [
            condition('NamesAccepted', 'NoConflicts', 'no conflicts found'),
            condition('Established', 'InitialNamesAccepted', 'the initial names have been accepted')])
        status['storedVersions'] = sorted(set(status.get('storedVersions') or []) | {
            v['name'] for v in spec['versions'] if v.get('storage')})
        if status != crd.get('status'):
            crd = copy.deepcopy(crd)
            crd['status'] = status
            api.store.put(CRDS, crd)
        return None


class NamespaceController(Controller):
    """Empties a terminating namespace of every namespaced object, then removes it."""

    name = 'namespace'
    watches = (NAMESPACES,)

    def reconcile(self, key, namespace, name):
        api = self.api
        ns = api.store.get(NAMESPACES, None, name)
        if ns is None:
            return None
        if not ns['metadata'].get('deletionTimestamp'):
            self._populate(name)
            return None
        left = 0
        for rtype in {t.key: t for t in api.registry.types.values() if t.namespaced}.values():
            for obj in api.store.list(rtype.key, name):
                if obj['metadata'].get('finalizers'):
                    if not obj['metadata'].get('deletionTimestamp'):
                        api.delete(rtype, name, obj['metadata']['name'])
                    left += 1
                else:
                    api.store.delete(rtype.key, name, obj['metadata']['name'])
        if left:
            return 0.5
        api.store.delete(NAMESPACES, None, name)
        return None


    def _populate(self, namespace):
        """What a real cluster's controllers put in every namespace: the default ServiceAccount and the CA."""
        wanted = [(('', 'v1', 'serviceaccounts'), {'metadata': {'name': 'default'}})]
        if self.api.ca_pem:
            wanted.append((('', 'v1', 'configmaps'), {'metadata': {'name': 'kube-root-ca.crt'},
                                                      'data': {'ca.crt': self.api.ca_pem}}))
        for (group, version, plural), body in wanted:
            rtype = self.api.registry.get(group, version, plural)
            if self.api.store.get(rtype.key, namespace, body['metadata']['name']) is None:
                self.api.create(rtype, namespace, body, 'kube-controller-manager')


PODS = ('', 'pods')
REPLICA_SETS = ('apps', 'replicasets')
MANAGER = 'kube-controller-manager'


def template_hash(template):
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return ''.join(SAFE[int(digest[i:i + 2], 16) % len(SAFE)] for i in range(0, 20, 2))


def owner_reference(obj):
    return {'apiVersion': obj['apiVersion'], 'kind': obj['kind'], 'name': obj['metadata']['name'],
            'uid': obj['metadata']['uid'], 'controller': True, 'blockOwnerDeletion': True}


def owned_by(obj, uid):
    return any(ref.get('uid') == uid for ref in obj['metadata'].get('ownerReferences') or [])


class WorkloadController(Controller):
    """Deployments (through ReplicaSets), DaemonSets and StatefulSets get pods that run and are ready at once,
    and report status accordingly."""

    name = 'workloads'
    watches = WORKLOADS
    pod_ips = 0

    def notify(self, key, event, obj):
        if key == PODS and event == 'DELETED':
            # A pod that went away is replaced: reconcile the workload that owns it (through its ReplicaSet).
            owner = self._workload_of(obj)
            if owner:
                self.enqueue(*owner)
            return
        super().notify(key, event, obj)

    def _workload_of(self, pod):
        namespace = pod['metadata']['namespace']
        for ref in pod['metadata'].get('ownerReferences') or []:
            if ref.get('kind') == 'ReplicaSet':
                rs = self.api.store.get(REPLICA_SETS, namespace, ref['name'])
                refs = (rs or {}).get('metadata', {}).get('ownerReferences') or []
                if refs and refs[0].get('kind') == 'Deployment':
                    return ('apps', 'deployments'), namespace, refs[0]['name']
            elif ref.get('kind') in ('StatefulSet', 'DaemonSet'):
                return ('apps', ref['kind'].lower() + 's'), namespace, ref['name']
        return None

    def reconcile(self, key, namespace, name):
        obj = self.api.store.get(key, namespace, name)
        if obj is None or obj['metadata'].get('deletionTimestamp'):
            return None
        spec = obj.get('spec') or {}
        template = spec.get('template') or {}
        if key[1] == 'deployments':
            replicas = spec.get('replicas', 1)
            self._sync_pods(self._replica_set(obj, template, replicas), replicas, template)
        elif key[1] == 'statefulsets':
            self._sync_pods(obj, spec.get('replicas', 1), template, ordinal=True)
        else:
            self._sync_pods(obj, len(self.api.store.list(('', 'nodes'))), template)
        self._set_status(key, obj, self._workload_status(key, obj))
        return None

    def _replica_set(self, deployment, template, replicas):
        """The deployment's ReplicaSet for its current template; older ones are scaled to zero."""
        namespace, uid = deployment['metadata']['namespace'], deployment['metadata']['uid']
        rs_type = self.api.registry.get('apps', 'v1', 'replicasets')
        pod_hash = template_hash(template)
        current = None
        for rs in self.api.store.list(REPLICA_SETS, namespace):
            if not owned_by(rs, uid):
                continue
            if rs['metadata'].get('labels', {}).get('pod-template-hash') == pod_hash:
                current = rs
            elif rs['spec'].get('replicas'):
                old = self.api.served_as(rs_type, rs)
                old['spec']['replicas'] = 0
                old = self.api.replace(rs_type, namespace, rs['metadata']['name'], old, MANAGER)
                self._sync_pods(old, 0, old['spec']['template'])
        labels = dict((template.get('metadata') or {}).get('labels') or {}, **{'pod-template-hash': pod_hash})
        pod_template = copy.deepcopy(template)
        pod_template.setdefault('metadata', {})['labels'] = labels
        body = {'metadata': {'name': '{0}-{1}'.format(deployment['metadata']['name'], pod_hash), 'labels': labels,
                             'annotations': {'deployment.kubernetes.io/revision': '1'},
                             'ownerReferences': [owner_reference(deployment)]},
                'spec': {'replicas': replicas, 'selector': {'matchLabels': labels}, 'template': pod_template}}
        if current is None:
            current = self.api.create(rs_type, namespace, body, MANAGER)
        elif current['spec'].get('replicas') != replicas:
            current = self.api.served_as(rs_type, current)
            current['spec']['replicas'] = replicas
            current = self.api.replace(rs_type, namespace, current['metadata']['name'], current, MANAGER)
        return self.api.served_as(rs_type, current)

    def _sync_pods(self, owner, count, template, ordinal=False):
        """Exactly `count` running, ready pods owned by `owner`; then the owner's status if it is a ReplicaSet."""
        api = self.api
        namespace, uid = owner['metadata']['namespace'], owner['metadata']['uid']
        pod_type = api.registry.get('', 'v1', 'pods')
        pods = [p for p in api.store.list(PODS, namespace) if owned_by(p, uid)]
        base = owner['metadata']['name']
        if ordinal:
            wanted = ['{0}-{1}'.format(base, i) for i in range(count)]
            extra = [p for p in pods if p['metadata']['name'] not in wanted]
            missing = [n for n in wanted if api.store.get(PODS, namespace, n) is None]
        else:
            extra, missing = pods[count:], [None] * max(count - len(pods), 0)
        for pod in extra:
            api.store.delete(PODS, namespace, pod['metadata']['name'])
        for pod_name in missing:
            meta = copy.deepcopy((template.get('metadata') or {}))
            meta.update(ownerReferences=[owner_reference(owner)])
            if pod_name:
                meta['name'] = pod_name
            else:
                meta['generateName'] = base + '-'
            pod = api.create(pod_type, namespace, {'metadata': meta, 'spec': dict(
                copy.deepcopy(template.get('spec') or {}), nodeName=NODE)}, MANAGER)
            api.replace(pod_type, namespace, pod['metadata']['name'], dict(pod, status=self._pod_status(pod)),
                        MANAGER, subresource='status')
        if owner['kind'] == 'ReplicaSet':
            status = {'replicas': count, 'fullyLabeledReplicas': count, 'readyReplicas': count,
                      'availableReplicas': count, 'observedGeneration': owner['metadata'].get('generation', 1)}
            self._set_status(REPLICA_SETS, owner, {k: v for k, v in status.items() if v or k in (
                'replicas', 'observedGeneration')})

    def _pod_status(self, pod):
        started = now()
        containers = (pod.get('spec') or {}).get('containers') or []
        self.pod_ips += 1
        return {'phase': 'Running', 'hostIP': '10.0.0.1', 'podIP': '10.244.{0}.{1}'.format(
            self.pod_ips // 250, self.pod_ips % 250 + 1), 'startTime': started, 'qosClass': 'BestEffort',
            'conditions': [{'type': kind, 'status': 'True', 'lastTransitionTime': started} for kind in (
                'PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled')],
            'containerStatuses': [{'name': c['name'], 'image': c.get('image', ''), 'imageID': '', 'ready': True,
                                   'started': True, 'restartCount': 0, 'containerID': 'containerd://' + uuid.uuid4().hex,
                                   'state': {'running': {'startedAt': started}}} for c in containers]}

    def _set_status(self, key, obj, status):
        current = self.api.store.get(key, obj['metadata']['namespace'], obj['metadata']['name'])
        if current is not None and current.get('status') != status:
            current = copy.deepcopy(current)
            current['status'] = status
            self.api.store.put(key, current)

    def _workload_status(self, key, obj):
        spec, meta = obj.get('spec') or {}, obj['metadata']
        status = copy.deepcopy(obj.get('status') or {})
        generation = meta.get('generation', 1)
        name = meta['name']
        if key[1] == 'daemonsets':
            count = len(self.api.store.list(('', 'nodes')))
            status.update(currentNumberScheduled=count, desiredNumberScheduled=count, numberAvailable=count,
                          numberMisscheduled=0, numberReady=count, updatedNumberScheduled=count,
                          observedGeneration=generation)
            return status
        replicas = spec.get('replicas', 1)
        status.update(replicas=replicas, readyReplicas=replicas, availableReplicas=replicas,
                      updatedReplicas=replicas, observedGeneration=generation)
        if key[1] == 'statefulsets':
            status.update(currentReplicas=replicas, currentRevision='{0}-1'.format(name),
                          updateRevision='{0}-1'.format(name), collisionCount=0)
        for field in ('readyReplicas', 'availableReplicas', 'updatedReplicas'):
            if not replicas:
                status.pop(field, None)
        if key[1] == 'deployments':
            rs_name = '{0}-{1}'.format(name, template_hash(spec.get('template') or {}))
            status['conditions'] = merge_conditions(status.get('conditions'), [
                condition('Available', 'MinimumReplicasAvailable', 'Deployment has minimum availability.',
                          observed=True),
                condition('Progressing', 'NewReplicaSetAvailable',
                          'ReplicaSet "{0}" has successfully progressed.'.format(rs_name), observed=True)])
        return status


class GarbageCollector(Controller):
    """Background propagation: deletes the dependents of a deleted owner once none of their owners is left. A
    namespaced owner's dependents live in its namespace; a cluster-scoped owner's anywhere."""

    name = 'garbage-collector'

    def notify(self, key, event, obj):
        if event == 'DELETED':
            self.enqueue('owner', obj['metadata'].get('namespace', ''), obj['metadata']['uid'])

    def reconcile(self, key, namespace, name):
        for rtype in {t.key: t for t in self.api.registry.types.values()}.values():
            if namespace and not rtype.namespaced:
                continue  # a cluster-scoped object cannot be owned by a namespaced one
            for obj in self.api.store.list(rtype.key, namespace or None):
                if owned_by(obj, name) and not self._other_owner_left(obj, name):
                    self.api.store.delete(rtype.key, obj['metadata'].get('namespace', ''), obj['metadata']['name'])
        return None

    def _other_owner_left(self, obj, gone):
        for ref in obj['metadata'].get('ownerReferences') or []:
            if ref.get('uid') == gone:
                continue
            group, _sep, version = ref.get('apiVersion', '').rpartition('/')
            rtype = self.api.registry.by_kind(group, version, ref.get('kind'))
            if rtype is None:
                return True  # an owner of a kind not served: kept, as the collector cannot tell
            owner = self.api.store.get(rtype.key, obj['metadata'].get('namespace', '') if rtype.namespaced else '',
                                       ref.get('name'))
            if owner is not None and owner['metadata'].get('uid') == ref.get('uid'):
                return True
        return False


SECRETS = ('', 'secrets')
SERVICE_ACCOUNTS = ('', 'serviceaccounts')
TOKEN_TYPE = 'kubernetes.io/service-account-token'
SA_NAME = 'kubernetes.io/service-account.name'
SA_UID = 'kubernetes.io/service-account.uid'


class TokenController(Controller):
    """kube-controller-manager's token controller: fills a ServiceAccount token Secret with a long-lived token, the
    cluster CA and the namespace; deletes such Secrets with their ServiceAccount."""

    name = 'serviceaccount-tokens'
    watches = (SECRETS, SERVICE_ACCOUNTS)

    def notify(self, key, event, obj):
        if key == SECRETS and obj.get('type') == TOKEN_TYPE and event != 'DELETED':
            self.enqueue(key, obj['metadata']['namespace'], obj['metadata']['name'])
        elif key == SERVICE_ACCOUNTS and event == 'DELETED':
            self.enqueue(key, obj['metadata']['namespace'], obj['metadata']['name'])
        elif key == SERVICE_ACCOUNTS and event == 'ADDED':
            # A token Secret written before its ServiceAccount gets its token now.
            for secret in self.api.store.list(SECRETS, obj['metadata']['namespace']):
                if self._account_of(secret) == obj['metadata']['name']:
                    self.enqueue(SECRETS, obj['metadata']['namespace'], secret['metadata']['name'])

    @staticmethod
    def _account_of(secret):
        if secret.get('type') != TOKEN_TYPE:
            return None
        return (secret['metadata'].get('annotations') or {}).get(SA_NAME)

    def reconcile(self, key, namespace, name):
        if key == SERVICE_ACCOUNTS:
            if self.api.store.get(SERVICE_ACCOUNTS, namespace, name) is None:
                for secret in self.api.store.list(SECRETS, namespace):
                    if self._account_of(secret) == name:
                        self.api.store.delete(SECRETS, namespace, secret['metadata']['name'])
            return None
        secret = self.api.store.get(SECRETS, namespace, name)
        account_name = self._account_of(secret) if secret else None
        account = self.api.store.get(SERVICE_ACCOUNTS, namespace, account_name) if account_name else None
        if account is None or self.api.signer is None or secret['metadata'].get('deletionTimestamp'):
            return None
        uid = account['metadata']['uid']
        annotations = secret['metadata'].get('annotations') or {}
        if annotations.get(SA_UID, uid) != uid:
            return None  # written for an earlier account of this name
        data = dict(secret.get('data') or {})
        wanted = {'namespace': namespace, 'ca.crt': self.api.ca_pem}
        if not data.get('token'):
            wanted['token'] = self.api.signer.issue_legacy(namespace, account_name, uid, name)
        missing = {k: base64.b64encode(v.encode()).decode() for k, v in wanted.items() if v and not data.get(k)}
        if not missing and SA_UID in annotations:
            return None
        rtype = self.api.registry.get('', 'v1', 'secrets')
        body = self.api.served_as(rtype, secret)
        body['data'] = {**data, **missing}
        body['metadata'].setdefault('annotations', {})[SA_UID] = uid
        self.api.replace(rtype, namespace, name, body, MANAGER)
        return None
