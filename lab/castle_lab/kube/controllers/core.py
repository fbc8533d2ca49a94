"""kube-controller-manager's part: CRD establishment and clean-up, namespace deletion, garbage collection of
dependents, ServiceAccount token Secrets (workloads and nodes: castle_lab.kube.controllers.workloads)."""

import base64
import copy

from ..api.errors import ApiError
from ..api.objects import CRD_FINALIZER, FOREGROUND_FINALIZER, ORPHAN_FINALIZER, now
from ..api.registry import crd_types
from .manager import Controller

CRDS = ('apiextensions.k8s.io', 'customresourcedefinitions')
NAMESPACES = ('', 'namespaces')


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

    def __init__(self, api, apiserver=('10.0.0.1', 6443)):
        super().__init__(api)
        self.apiserver = apiserver

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
        if namespace == 'default':
            wanted.extend(self._kubernetes_service())
        for (group, version, plural), body in wanted:
            rtype = self.api.registry.get(group, version, plural)
            if self.api.store.get(rtype.key, namespace, body['metadata']['name']) is None:
                self.api.create(rtype, namespace, body, 'kube-controller-manager')

    def _kubernetes_service(self):
        """kube-apiserver's own Service in `default`, 10.96.0.1:443, and its endpoints: the API server's address."""
        address, port = self.apiserver
        labels = {'component': 'apiserver', 'provider': 'kubernetes'}
        return [
            (('', 'v1', 'services'), {'metadata': {'name': 'kubernetes', 'labels': labels}, 'spec': {
                'type': 'ClusterIP', 'clusterIP': '10.96.0.1', 'clusterIPs': ['10.96.0.1'],
                'ipFamilies': ['IPv4'], 'ipFamilyPolicy': 'SingleStack', 'sessionAffinity': 'None',
                'internalTrafficPolicy': 'Cluster',
                'ports': [{'name': 'https', 'port': 443, 'protocol': 'TCP', 'targetPort': port}]}}),
            (('', 'v1', 'endpoints'), {'metadata': {'name': 'kubernetes', 'labels': {
                'endpointslice.kubernetes.io/skip-mirror': 'true'}}, 'subsets': [{
                    'addresses': [{'ip': address}], 'ports': [{'name': 'https', 'port': port, 'protocol': 'TCP'}]}]}),
            (('discovery.k8s.io', 'v1', 'endpointslices'), {
                'metadata': {'name': 'kubernetes', 'labels': {'kubernetes.io/service-name': 'kubernetes'}},
                'addressType': 'IPv4', 'endpoints': [{'addresses': [address], 'conditions': {'ready': True}}],
                'ports': [{'name': 'https', 'port': port, 'protocol': 'TCP'}]})]


PODS = ('', 'pods')
REPLICA_SETS = ('apps', 'replicasets')
SECRETS = ('', 'secrets')
SERVICE_ACCOUNTS = ('', 'serviceaccounts')
MANAGER = 'kube-controller-manager'
# A ServiceAccount token Secret: its type and the annotations naming its account.
TOKEN_TYPE = 'kubernetes.io/service-account-token'
SA_NAME = 'kubernetes.io/service-account.name'
SA_UID = 'kubernetes.io/service-account.uid'
# The garbage collector's work item for an owner that is gone: its dependents, by its uid.
GONE = 'owner'
# Its work item for an object with owners: whether they all exist, by (type key, name).
DEPENDENT = 'dependent'


def owner_reference(obj):
    return {'apiVersion': obj['apiVersion'], 'kind': obj['kind'], 'name': obj['metadata']['name'],
            'uid': obj['metadata']['uid'], 'controller': True, 'blockOwnerDeletion': True}


def owned_by(obj, uid):
    return any(ref.get('uid') == uid for ref in obj['metadata'].get('ownerReferences') or [])


class GarbageCollector(Controller):
    """The garbage collector. The dependents of an owner that is gone are deleted once no owner of theirs is left,
    each with the propagation its own finalizers ask for (a dependent with finalizers stays Terminating until they
    are removed). An owner deleted with the `orphan` finalizer first loses its dependents' references to it; one
    deleted in the foreground (`foregroundDeletion`) has its dependents deleted and stays until those that block it
    (blockOwnerDeletion) are gone. A namespaced owner's dependents live in its namespace; a cluster-scoped owner's
    anywhere."""

    name = 'garbage-collector'

    def notify(self, key, event, obj):
        meta = obj['metadata']
        namespace = meta.get('namespace', '')
        if event == 'DELETED':
            self.enqueue(GONE, namespace, meta['uid'])
            # An owner deleted in the foreground may have been waiting for this one.
            for ref in _refs(obj):
                state, rtype, owner = self._owner(namespace, ref)
                if state == 'found' and _deleting_dependents(owner):
                    self.enqueue(rtype.key, owner['metadata'].get('namespace', ''), owner['metadata']['name'])
            return
        if meta.get('deletionTimestamp') and {ORPHAN_FINALIZER, FOREGROUND_FINALIZER} & set(
                meta.get('finalizers') or []):
            self.enqueue(key, namespace, meta['name'])
        if _refs(obj) and not meta.get('deletionTimestamp'):
            # Its owners are checked: one that does not exist (never did, or another uid) counts as gone.
            self.enqueue(DEPENDENT, namespace, (key, meta['name']))

    def reconcile(self, key, namespace, name):
        if key == GONE:
            for rtype, dependent in self._dependents(namespace, name):
                self._attempt_to_delete(rtype, dependent)
            return None
        if key == DEPENDENT:
            dependent = self.api.store.get(name[0], namespace or None, name[1])
            rtype = self._type_of(dependent) if dependent else None
            if rtype is not None:
                self._attempt_to_delete(rtype, dependent, only_if_owner_gone=True)
            return None
        obj = self.api.store.get(key, namespace or None, name)
        rtype = self._type_of(obj) if obj else None
        if rtype is None or not obj['metadata'].get('deletionTimestamp'):
            return None
        uid, finalizers = obj['metadata']['uid'], obj['metadata'].get('finalizers') or []
        dependents = self._dependents(namespace, uid)
        if ORPHAN_FINALIZER in finalizers:
            for dep_type, dependent in dependents:
                self._drop_owners(dep_type, dependent, {uid})
            self._remove_finalizer(rtype, obj, ORPHAN_FINALIZER)
        elif FOREGROUND_FINALIZER in finalizers:
            for dep_type, dependent in dependents:
                self._attempt_to_delete(dep_type, dependent)
            if not any(_blocks(dependent, uid) for _t, dependent in self._dependents(namespace, uid)):
                self._remove_finalizer(rtype, obj, FOREGROUND_FINALIZER)
        return None

    def _dependents(self, namespace, uid):
        found = []
        for rtype in {t.key: t for t in self.api.registry.types.values()}.values():
            if namespace and not rtype.namespaced:
                continue  # a cluster-scoped object cannot be owned by a namespaced one
            found += [(rtype, obj) for obj in self.api.store.list(rtype.key, namespace or None)
                      if any(r.get('uid') == uid for r in _refs(obj))]
        return found

    def _type_of(self, obj):
        group, _sep, version = obj['apiVersion'].rpartition('/')
        return self.api.registry.by_kind(group, version, obj['kind'])

    def _owner(self, namespace, ref):
        """('found', type, owner), ('gone', type, None), or ('unknown', None, None) for a kind not served, which
        the collector cannot look up and so keeps as an owner."""
        group, _sep, version = ref.get('apiVersion', '').rpartition('/')
        rtype = self.api.registry.by_kind(group, version, ref.get('kind'))
        if rtype is None:
            return 'unknown', None, None
        owner = self.api.store.get(rtype.key, namespace if rtype.namespaced else '', ref.get('name'))
        if owner is None or owner['metadata'].get('uid') != ref.get('uid'):
            return 'gone', rtype, None
        return 'found', rtype, owner

    def _attempt_to_delete(self, rtype, dependent, only_if_owner_gone=False):
        meta = dependent['metadata']
        namespace, finalizers = meta.get('namespace', ''), meta.get('finalizers') or []
        if meta.get('deletionTimestamp'):
            if FOREGROUND_FINALIZER in finalizers:
                self.enqueue(rtype.key, namespace, meta['name'])
            return  # being deleted already: its finalizers decide when it goes
        solid, dropped, waiting = False, set(), []
        for ref in _refs(dependent):
            state, owner_type, owner = self._owner(namespace, ref)
            if state == 'gone':
                dropped.add(ref.get('uid'))
            elif state == 'found' and _deleting_dependents(owner):
                dropped.add(ref.get('uid'))
                waiting.append((owner_type, owner))
            else:
                solid = True
        if only_if_owner_gone and not dropped:
            return
        if solid:
            # Kept by an owner that stays; it stops pointing at those that go, so they are not held up.
            if dropped:
                self._drop_owners(rtype, dependent, dropped)
                for owner_type, owner in waiting:
                    self.enqueue(owner_type.key, owner['metadata'].get('namespace', ''), owner['metadata']['name'])
            return
        if waiting and self._dependents(namespace, meta['uid']):
            policy = 'Foreground'
        elif ORPHAN_FINALIZER in finalizers:
            policy = 'Orphan'
        elif FOREGROUND_FINALIZER in finalizers:
            policy = 'Foreground'
        else:
            policy = 'Background'
        try:
            self.api.delete(rtype, namespace or None, meta['name'], preconditions={'uid': meta['uid']},
                            propagation=policy)
        except ApiError:
            pass  # gone or replaced meanwhile

    def _drop_owners(self, rtype, dependent, uids):
        body = self.api.served_as(rtype, dependent)
        refs = [r for r in _refs(body) if r.get('uid') not in uids]
        if refs:
            body['metadata']['ownerReferences'] = refs
        else:
            body['metadata'].pop('ownerReferences', None)
        self._write(rtype, body)

    def _remove_finalizer(self, rtype, obj, finalizer):
        body = self.api.served_as(rtype, obj)
        body['metadata']['finalizers'] = [f for f in body['metadata']['finalizers'] if f != finalizer]
        self._write(rtype, body)

    def _write(self, rtype, body):
        try:
            self.api.replace(rtype, body['metadata'].get('namespace'), body['metadata']['name'], body, MANAGER)
        except ApiError:
            pass  # changed or gone meanwhile; its next event brings it back


def _refs(obj):
    """An object's owner references (what does not name an owner is skipped)."""
    refs = obj['metadata'].get('ownerReferences')
    return [r for r in refs if isinstance(r, dict) and all(isinstance(r.get(k), str) for k in (
        'apiVersion', 'kind', 'name', 'uid'))] if isinstance(refs, list) else []


def _deleting_dependents(obj):
    return bool(obj['metadata'].get('deletionTimestamp')) and FOREGROUND_FINALIZER in (
        obj['metadata'].get('finalizers') or [])


def _blocks(dependent, uid):
    return any(ref.get('uid') == uid and ref.get('blockOwnerDeletion')
               for ref in _refs(dependent))


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
