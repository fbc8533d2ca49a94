"""The controllers the server runs: CRD establishment and clean-up, namespace deletion, workload status."""

import copy

from .api import CRD_FINALIZER, now
from .controllers import Controller
from .registry import crd_types

CRDS = ('apiextensions.k8s.io', 'customresourcedefinitions')
NAMESPACES = ('', 'namespaces')
WORKLOADS = (('apps', 'deployments'), ('apps', 'daemonsets'), ('apps', 'statefulsets'))


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


class WorkloadController(Controller):
    """Deployments, DaemonSets and StatefulSets report status as if all their pods ran and were ready."""

    name = 'workloads'
    watches = WORKLOADS
    nodes = 1

    def reconcile(self, key, namespace, name):
        obj = self.api.store.get(key, namespace, name)
        if obj is None or obj['metadata'].get('deletionTimestamp'):
            return None
        spec, meta = obj.get('spec') or {}, obj['metadata']
        status = copy.deepcopy(obj.get('status') or {})
        generation = meta.get('generation', 1)
        if key[1] == 'daemonsets':
            count = self.nodes
            status.update(currentNumberScheduled=count, desiredNumberScheduled=count, numberAvailable=count,
                          numberMisscheduled=0, numberReady=count, updatedNumberScheduled=count,
                          observedGeneration=generation)
        else:
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
            status['conditions'] = merge_conditions(status.get('conditions'), [
                condition('Available', 'MinimumReplicasAvailable', 'Deployment has minimum availability.',
                          observed=True),
                condition('Progressing', 'NewReplicaSetAvailable',
                          'ReplicaSet "{0}-1" has successfully progressed.'.format(name), observed=True)])
        if status != obj.get('status'):
            obj = copy.deepcopy(obj)
            obj['status'] = status
            self.api.store.put(key, obj)
        return None


def all_controllers(api):
    return [CrdController(api), NamespaceController(api), WorkloadController(api)]
