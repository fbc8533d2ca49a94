"""Events the lab's controllers record about the objects they act on, as client-go's event recorder writes them:
a core v1 Event (involvedObject, source, count) and the same occurrence in events.k8s.io/v1 (regarding, note,
reportingController); a repeat of the same reason and message on the same object counts up instead of adding one."""

import copy
import uuid

from ..api.errors import ApiError
from ..api.objects import now

CORE_EVENTS = ('', 'events')
NEW_EVENTS = ('events.k8s.io', 'events')


def reference(obj):
    meta = obj['metadata']
    ref = {'kind': obj['kind'], 'apiVersion': obj['apiVersion'], 'name': meta['name'], 'uid': meta.get('uid', ''),
           'resourceVersion': meta.get('resourceVersion', '')}
    if meta.get('namespace'):
        ref['namespace'] = meta['namespace']
    return ref


class Recorder:
    """Records events for one component (e.g. deployment-controller)."""

    def __init__(self, api, component, clock_now=now):
        self.api = api
        self.component = component
        self.now = clock_now
        self.instance = component

    def normal(self, obj, reason, message, action=''):
        self.record(obj, 'Normal', reason, message, action)

    def warning(self, obj, reason, message, action=''):
        self.record(obj, 'Warning', reason, message, action)

    def record(self, obj, kind, reason, message, action=''):
        namespace = obj['metadata'].get('namespace') or 'default'
        involved = reference(obj)
        stamp = self.now()
        core = self.api.registry.get('', 'v1', 'events')
        same = next((e for e in self.api.store.list(CORE_EVENTS, namespace)
                     if e.get('involvedObject', {}).get('uid') == involved['uid'] and e.get('reason') == reason
                     and e.get('message') == message and e.get('type') == kind
                     and (e.get('source') or {}).get('component') == self.component), None)
        try:
            if same is not None:
                event = self.api.served_as(core, same)
                event.update(count=event.get('count', 1) + 1, lastTimestamp=stamp)
                self.api.replace(core, namespace, event['metadata']['name'], event, self.component)
                self._mirror(event, action)
                return
            event = {'metadata': {'name': '{0}.{1}'.format(involved['name'], uuid.uuid4().hex[:16]),
                                  'namespace': namespace},
                     'involvedObject': involved, 'reason': reason, 'message': message, 'type': kind,
                     'source': {'component': self.component}, 'firstTimestamp': stamp, 'lastTimestamp': stamp,
                     'count': 1, 'eventTime': None, 'reportingComponent': self.component,
                     'reportingInstance': self.instance}
            self._mirror(self.api.create(core, namespace, event, self.component), action)
        except ApiError:
            pass  # as client-go's recorder: an event that cannot be written is dropped, the controller goes on

    def _mirror(self, event, action):
        """The same occurrence as events.k8s.io/v1 serves it."""
        rtype = self.api.registry.get('events.k8s.io', 'v1', 'events')
        if rtype is None:
            return
        meta = event['metadata']
        body = {'metadata': {'name': meta['name'], 'namespace': meta['namespace']},
                'regarding': copy.deepcopy(event['involvedObject']), 'reason': event['reason'],
                'note': event['message'], 'type': event['type'], 'action': action or event['reason'],
                'eventTime': event['firstTimestamp'].replace('Z', '.000000Z'), 'reportingController': self.component,
                'reportingInstance': self.instance,
                'deprecatedSource': {'component': self.component},
                'deprecatedFirstTimestamp': event['firstTimestamp'],
                'deprecatedLastTimestamp': event['lastTimestamp'], 'deprecatedCount': event['count']}
        existing = self.api.store.get(NEW_EVENTS, meta['namespace'], meta['name'])
        if existing is None:
            self.api.create(rtype, meta['namespace'], body, self.component)
        else:
            body['metadata'] = dict(self.api.served_as(rtype, existing)['metadata'])
            self.api.replace(rtype, meta['namespace'], meta['name'], body, self.component)
