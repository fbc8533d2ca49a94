"""What can go wrong with workloads in the lab, set through the control API: a workload's pods that never get Ready
(readiness failing or crash-looping), an image that cannot be pulled, a Job whose pods fail, a Node whose kubelet
stops posting status; and the controllers' clock, which a test moves forward instead of waiting."""

import datetime
import time

from aiohttp import web

# fault -> what the pods of the workload do
FAULTS = ('not-ready', 'crash-loop', 'image-pull', 'fail')
KINDS = ('Deployment', 'DaemonSet', 'StatefulSet', 'Job')


class Failures:
    """Fault rules per workload and per node, the controllers' clock, and who to tell when either changes."""

    def __init__(self, clock=time.time):
        self.workloads = {}  # (namespace, kind, name) -> fault
        self.nodes_down = set()
        self.recovered = set()  # nodes marked ready again whose kubelet posts Ready once more
        self.offset = 0.0
        self.base_clock = clock
        self.listeners = []

    def clock(self):
        return self.base_clock() + self.offset

    def now(self):
        """The clock as an RFC 3339 timestamp, as the controllers write them."""
        return datetime.datetime.fromtimestamp(self.clock(), datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')

    def fault_of(self, namespace, kind, name):
        return self.workloads.get((namespace, kind, name))

    def set_fault(self, namespace, kind, name, fault):
        if fault:
            self.workloads[(namespace, kind, name)] = fault
        else:
            self.workloads.pop((namespace, kind, name), None)
        self.changed()

    def set_node_ready(self, name, ready):
        if ready and name in self.nodes_down:
            self.nodes_down.discard(name)
            self.recovered.add(name)
        elif not ready:
            self.nodes_down.add(name)
        self.changed()

    def advance(self, seconds):
        self.offset += seconds
        self.changed()

    def clear(self):
        self.workloads.clear()
        self.recovered |= self.nodes_down
        self.nodes_down.clear()
        self.changed()

    def changed(self):
        for listener in self.listeners:
            listener()

    def report(self):
        return {'workloads': [{'namespace': ns, 'kind': kind, 'name': name, 'fault': fault}
                              for (ns, kind, name), fault in sorted(self.workloads.items())],
                'nodesNotReady': sorted(self.nodes_down), 'clockOffset': self.offset}

    def routes(self, app):
        """POST /workload-fault {namespace, kind, name, fault} (fault null clears it), POST /node-ready {name,
        ready}, POST /clock {advance: seconds}, GET /failures, DELETE /failures."""

        async def body_of(request):
            try:
                body = await request.json()
            except ValueError:
                return None
            return body if isinstance(body, dict) else None

        def refused(message):
            return web.json_response({'error': message}, status=400)

        async def workload_fault(request):
            body = await body_of(request)
            if body is None or body.get('kind') not in KINDS or body.get('fault') not in FAULTS + (None,) or \
                    not all(isinstance(body.get(k), str) and body[k] for k in ('namespace', 'name')):
                return refused('give namespace, name, kind (one of {0}) and fault (one of {1}, or null to '
                               'clear)'.format(', '.join(KINDS), ', '.join(FAULTS)))
            self.set_fault(body['namespace'], body['kind'], body['name'], body['fault'])
            return web.json_response(self.report())

        async def node_ready(request):
            body = await body_of(request)
            if body is None or not isinstance(body.get('name'), str) or not isinstance(body.get('ready'), bool):
                return refused('give name (a Node) and ready (true or false)')
            self.set_node_ready(body['name'], body['ready'])
            return web.json_response(self.report())

        async def clock(request):
            body = await body_of(request)
            seconds = (body or {}).get('advance')
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
                return refused('give advance: the seconds (0 or more) to move the controllers\' clock forward')
            self.advance(seconds)
            return web.json_response(self.report())

        async def listed(request):
            return web.json_response(self.report())

        async def cleared(request):
            self.clear()
            return web.json_response(self.report())

        app.router.add_post('/workload-fault', workload_fault)
        app.router.add_post('/node-ready', node_ready)
        app.router.add_post('/clock', clock)
        app.router.add_get('/failures', listed)
        app.router.add_delete('/failures', cleared)
