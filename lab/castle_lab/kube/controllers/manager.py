"""A small controller framework on the server's event loop: watch a resource type, reconcile by key, requeue."""

import asyncio
import inspect
import logging

log = logging.getLogger(__name__)


class Controller:
    """Reconciles objects of some resource types; reconcile(key, namespace, name) may return seconds to requeue.

    reconcile may be a coroutine function: what it awaits (subprocesses, polls) leaves the event loop free for the
    API server and the other controllers; one controller still reconciles one object at a time."""

    name = 'controller'
    watches = ()

    def __init__(self, api):
        self.api = api
        self.queue = asyncio.Queue()
        self.pending = set()
        self.waiting = {}  # item -> the timer of its delayed requeue

    def notify(self, key, event, obj):
        if key in self.watches:
            self.enqueue(key, obj['metadata'].get('namespace', ''), obj['metadata']['name'])

    def enqueue(self, key, namespace, name, delay=0.0):
        """Queue an object now, or after `delay` seconds; of two delayed requeues the earlier one stands (as a
        delaying work queue keeps an item once, at its earliest time)."""
        item = (key, namespace, name)
        if delay:
            loop = asyncio.get_running_loop()
            due = loop.time() + delay
            timer = self.waiting.get(item)
            if timer is not None and timer.when() <= due:
                return
            if timer is not None:
                timer.cancel()
            self.waiting[item] = loop.call_at(due, self._due, item)
        elif item not in self.pending:
            self.pending.add(item)
            self.queue.put_nowait(item)

    def _due(self, item):
        self.waiting.pop(item, None)
        self.enqueue(*item)

    async def run(self):
        while True:
            item = await self.queue.get()
            self.pending.discard(item)
            try:
                requeue = self.reconcile(*item)
                if inspect.isawaitable(requeue):
                    requeue = await requeue
            except Exception:  # one failing object must not stop the controller
                log.exception('%s: reconcile %s failed', self.name, item)
                requeue = 1.0
            if requeue:
                self.enqueue(*item, delay=requeue)

    def reconcile(self, key, namespace, name):
        raise NotImplementedError


class Manager:
    """Runs controllers as tasks and feeds them the store's events."""

    def __init__(self, store, controllers):
        self.store = store
        self.controllers = controllers
        self.tasks = []
        store.listeners.append(self.notify)

    def notify(self, key, event, obj):
        for controller in self.controllers:
            controller.notify(key, event, obj)

    def start(self):
        # Like an informer's first list: what exists already is reconciled too.
        for controller in self.controllers:
            for key in controller.watches:
                for obj in self.store.list(key):
                    controller.notify(key, 'ADDED', obj)
        self.tasks = [asyncio.create_task(c.run(), name=c.name) for c in self.controllers]

    async def stop(self):
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
