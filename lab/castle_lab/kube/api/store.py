"""Objects of every resource type, one resourceVersion counter, and watch fan-out."""

import asyncio
import collections
import copy

HISTORY = 10000


class Expired(Exception):
    """A watch asked for a resourceVersion older than the history kept (410 Gone)."""


class Watcher:
    """One watch: the events of one resource type (optionally one namespace), queued for its stream."""

    def __init__(self, key, namespace):
        self.key, self.namespace = key, namespace
        self.queue = asyncio.Queue()

    def wants(self, key, obj):
        return key == self.key and (not self.namespace or obj['metadata'].get('namespace') == self.namespace)


class Store:
    def __init__(self):
        self.objects = collections.defaultdict(dict)
        self.revision = 1
        self.history = collections.deque(maxlen=HISTORY)
        self.watchers = set()
        self.listeners = []

    @property
    def resource_version(self):
        return str(self.revision)

    def get(self, key, namespace, name):
        return self.objects[key].get((namespace or '', name))

    def list(self, key, namespace=None):
        items = [o for (ns, _name), o in self.objects[key].items() if not namespace or ns == namespace]
        return sorted(items, key=lambda o: (o['metadata'].get('namespace', ''), o['metadata']['name']))

    def put(self, key, obj):
        """Store obj with a new resourceVersion; ADDED or MODIFIED to watchers."""
        self.revision += 1
        obj['metadata']['resourceVersion'] = self.resource_version
        ident = (obj['metadata'].get('namespace', ''), obj['metadata']['name'])
        event = 'MODIFIED' if ident in self.objects[key] else 'ADDED'
        self.objects[key][ident] = obj
        self._emit(key, event, obj)
        return obj

    def delete(self, key, namespace, name):
        obj = self.objects[key].pop((namespace or '', name), None)
        if obj is not None:
            self.revision += 1
            obj = copy.deepcopy(obj)
            obj['metadata']['resourceVersion'] = self.resource_version
            self._emit(key, 'DELETED', obj)
        return obj

    def drop_type(self, key):
        for namespace, name in list(self.objects[key]):
            self.delete(key, namespace, name)

    def _emit(self, key, event, obj):
        snapshot = copy.deepcopy(obj)
        self.history.append((self.revision, key, event, snapshot))
        for watcher in list(self.watchers):
            if watcher.wants(key, snapshot):
                watcher.queue.put_nowait((event, snapshot))
        for listener in self.listeners:
            listener(key, event, snapshot)

    def watch(self, key, namespace, since):
        """A registered Watcher whose queue starts after resourceVersion `since` (None or '0': current state)."""
        watcher = Watcher(key, namespace)
        if not since or since == '0':
            for obj in self.list(key, namespace):
                watcher.queue.put_nowait(('ADDED', copy.deepcopy(obj)))
        else:
            since = int(since)
            oldest = self.history[0][0] if self.history else self.revision + 1
            if since < oldest - 1 and since < self.revision:
                raise Expired('too old resource version: {0} ({1})'.format(since, oldest - 1))
            for revision, ev_key, event, obj in self.history:
                if revision > since and watcher.wants(ev_key, obj):
                    watcher.queue.put_nowait((event, copy.deepcopy(obj)))
        self.watchers.add(watcher)
        return watcher

    def unwatch(self, watcher):
        self.watchers.discard(watcher)
