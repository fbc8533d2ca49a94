"""The control API of the lab's Proxmox VE fake: fault injection and server-side state, for tests and operators.

Plain HTTP with JSON bodies on the fake's own loopback address (port 8007 beside the API's 8006),
served by the fake's event loop, so every change to the model happens on the loop that owns it.
No authentication: it only listens on loopback, where every local user can reach it (as with the
rest of the lab). Errors answer {"error": "..."}: 400 for a malformed request, 404 for an unknown
VM or node, 409 when the fake's state refuses (a lock already held, tasks still running).
"""

import json
import urllib.parse

from aiohttp import web
from fakepve import TaskError

from ..control import ControlError
from ..serving import loopback_only

API_PREFIX = '/api2/json'
METHODS = ('GET', 'POST', 'PUT', 'DELETE')
NETWORK_RATES = ('drop_rate', 'hang_rate')
NETWORK_SECONDS = ('latency', 'jitter', 'hang_secs')
# Most VMs POST /vms adds in one call.
BULK_LIMIT = 20000
# Real seconds POST /reset waits for running tasks by default.
RESET_WAIT = 30.0


def bad(message):
    return ControlError(message, 400)


async def read_body(request, allowed):
    """The JSON object of the request (empty if none), with no fields but `allowed`."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise bad('body is not JSON: {0}'.format(exc)) from None
    if not isinstance(body, dict):
        raise bad('body must be a JSON object')
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise bad('unknown field {0} (known: {1})'.format(', '.join(map(repr, unknown)), ', '.join(allowed)))
    return body


def number(body, key, minimum=0.0, maximum=None, required=True):
    value = body.get(key)
    if value is None:
        if required:
            raise bad('{0!r} is required'.format(key))
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad('{0!r} must be a number, not {1!r}'.format(key, value))
    if value < minimum or (maximum is not None and value > maximum):
        limits = 'between {0} and {1}'.format(minimum, maximum) if maximum is not None else 'at least {0}'.format(minimum)
        raise bad('{0!r} must be {1}, not {2}'.format(key, limits, value))
    return value


def integer(body, key, minimum, required=True):
    value = body.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise bad('{0!r} must be an integer of at least {1}, not {2!r}'.format(key, minimum, value))
    return value


def flag(body, key):
    value = body.get(key)
    if not isinstance(value, bool):
        raise bad('{0!r} must be true or false, not {1!r}'.format(key, value))
    return value


def text(body, key):
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise bad('{0!r} must be a non-empty string, not {1!r}'.format(key, value))
    return value


def api_path(path):
    """A path as the control API shows it: without the /api2/json prefix (other formats keep theirs)."""
    return path[len(API_PREFIX):] if path.startswith(API_PREFIX + '/') else path


def request_params(body):
    """The parameters of a recorded request body (form-encoded or JSON; secrets already redacted)."""
    text = body.decode('utf-8', 'replace') if isinstance(body, bytes) else str(body or '')
    if text.lstrip().startswith('{'):
        try:
            return json.loads(text)
        except ValueError:
            return {}
    return dict(urllib.parse.parse_qsl(text, keep_blank_values=True))


def vm_view(vm):
    return {'vmid': vm.vmid, 'name': vm.name, 'node': vm.node, 'status': vm.status, 'template': bool(vm.template),
            'config': dict(vm.config), 'pending': dict(vm.pending), 'lock': vm.lock}


class ControlApi:
    """The aiohttp application over one LabPve."""

    def __init__(self, pve, talos=None):
        self.pve = pve
        self.talos = talos

    def app(self):
        app = web.Application(middlewares=[loopback_only, self._errors])
        app.add_routes([
            web.get('/requests', self.requests), web.post('/requests/reset', self.reset_requests),
            web.post('/fault', self.fail), web.delete('/fault', self.clear_faults),
            web.post('/time-scale', self.time_scale), web.post('/hold-lock', self.hold_lock),
            web.post('/node', self.node), web.post('/agent', self.agent), web.post('/quorum', self.quorum),
            web.post('/network', self.network), web.get('/vms', self.vms), web.post('/vms', self.create_vms),
            web.get('/talos-nodes', self.talos_nodes), web.post('/reset', self.reset),
            web.post('/talos-hang', self.talos_hang)])
        return app

    @web.middleware
    async def _errors(self, request, handler):
        try:
            return await handler(request)
        except ControlError as exc:
            return web.json_response({'error': str(exc)}, status=exc.status)
        except web.HTTPException as exc:
            return web.json_response({'error': '{0} {1}'.format(exc.reason, request.path)}, status=exc.status)

    async def requests(self, request):
        """[METHOD, PATH] of every request seen; with ?params=1, [METHOD, PATH, {parameter: value}]."""
        if request.query.get('params') in ('1', 'true'):
            seen = [[method, api_path(path), request_params(body)] for method, path, body in self.pve.requests]
        else:
            seen = [[method, api_path(path)] for method, path, _body in self.pve.requests]
        return web.json_response({'count': len(seen), 'requests': seen})

    async def reset_requests(self, request):
        self.pve.requests.clear()
        return web.json_response({'count': 0})

    async def fail(self, request):
        body = await read_body(request, ('method', 'path', 'status', 'message', 'error', 'times', 'html'))
        method = text(body, 'method').upper()
        if method not in METHODS:
            raise bad("'method' must be one of {0}, not {1!r}".format(', '.join(METHODS), body['method']))
        path = api_path(text(body, 'path'))
        if not path.startswith('/'):
            raise bad("'path' must start with '/', not {0!r}".format(path))
        rule = {'times': integer(body, 'times', 1, required=False), 'html': bool(body.get('html', False))}
        if body.get('error') is not None:
            if body.get('status') is not None or body.get('message') is not None:
                raise bad("give either 'error' or 'status' and 'message', not both")
            rule['error'] = text(body, 'error')
        else:
            if body.get('status') is None or body.get('message') is None:
                raise bad("give 'status' and 'message', or 'error' (a name from the PVE error catalogue)")
            rule.update(status=integer(body, 'status', 100), message=text(body, 'message'))
            if rule['status'] > 599:
                raise bad("'status' must be an HTTP status, not {0}".format(rule['status']))
        try:
            self.pve.fail(method, path, **rule)
        except (ValueError, TypeError) as exc:
            raise bad(str(exc)) from None
        return web.json_response(dict(rule, method=method, path=path))

    async def clear_faults(self, request):
        cleared = len(self.pve.failures)
        self.pve.failures.clear()
        return web.json_response({'cleared': cleared})

    async def time_scale(self, request):
        body = await read_body(request, ('value',))
        self.pve.time_scale = float(number(body, 'value'))
        return web.json_response({'time_scale': self.pve.time_scale})

    async def hold_lock(self, request):
        body = await read_body(request, ('vmid', 'secs'))
        vmid, secs = integer(body, 'vmid', 100), number(body, 'secs')
        vm = self.pve.guest(vmid)
        if vm is None:
            raise ControlError(status=404, message='no VM {0}'.format(vmid))
        try:
            await self.pve.hold_config_lock(vmid, None)
        except TaskError as exc:
            raise ControlError(status=409, message=str(exc)) from None
        # PVE seconds at the current scale; at scale 0 (tasks take no time) they count as real seconds.
        real = secs * (self.pve.time_scale or 1)
        request.loop.call_later(real, self.pve.release, vm, 'scenario')
        return web.json_response({'vmid': vmid, 'secs': secs, 'real_secs': real})

    async def agent(self, request):
        """Start (or stop, with interfaces null) a VM's guest agent, answering with these interfaces."""
        body = await read_body(request, ('vmid', 'interfaces'))
        vmid = integer(body, 'vmid', 100)
        vm = self.pve.guest(vmid)
        if vm is None:
            raise ControlError(status=404, message='no VM {0}'.format(vmid))
        interfaces = body.get('interfaces')
        if interfaces is not None and not isinstance(interfaces, list):
            raise ControlError(status=400, message='interfaces must be a list of guest-agent interfaces, or null')
        vm.agent = None if interfaces is None else {'interfaces': interfaces}
        return web.json_response({'vmid': vmid, 'agent': vm.agent})

    async def node(self, request):
        body = await read_body(request, ('node', 'online'))
        name, online = text(body, 'node'), flag(body, 'online')
        if name not in self.pve.nodes:
            raise ControlError(status=404, message='no node {0!r} (known: {1})'.format(
                name, ', '.join(sorted(self.pve.nodes))))
        self.pve.set_node_offline(name, offline=not online)
        return web.json_response({'node': name, 'online': online})

    async def quorum(self, request):
        body = await read_body(request, ('quorate',))
        if flag(body, 'quorate'):
            self.pve.regain_quorum()
        else:
            self.pve.lose_quorum()
        return web.json_response({'quorate': self.pve.quorate})

    async def network(self, request):
        body = await read_body(request, NETWORK_SECONDS + NETWORK_RATES + ('seed',))
        given = {}
        for key in NETWORK_SECONDS + NETWORK_RATES:
            if key in body:
                given[key] = number(body, key, maximum=1.0 if key in NETWORK_RATES else None)
        if 'seed' in body:
            given['seed'] = integer(body, 'seed', 0, required=False)
        return web.json_response(self.pve.network_conditions(**given))

    async def vms(self, request):
        return web.json_response([vm_view(vm) for vm in sorted(self.pve.vms, key=lambda vm: vm.vmid)])

    async def create_vms(self, request):
        """Add many VMs at once, straight into the model (no tasks, no API requests): for scale tests."""
        body = await read_body(request, ('count', 'prefix', 'nodes', 'running', 'first_vmid', 'memory', 'cores'))
        count = integer(body, 'count', 1)
        if count > BULK_LIMIT:
            raise bad("'count' must be at most {0}, not {1}".format(BULK_LIMIT, count))
        prefix = text(body, 'prefix') if 'prefix' in body else 'bulk'
        nodes = body.get('nodes', sorted(self.pve.nodes))
        if not isinstance(nodes, list) or not nodes or not all(isinstance(n, str) for n in nodes):
            raise bad("'nodes' must be a non-empty list of node names, not {0!r}".format(nodes))
        unknown = [n for n in nodes if n not in self.pve.nodes]
        if unknown:
            raise ControlError(status=404, message='no node {0} (known: {1})'.format(
                ', '.join(map(repr, unknown)), ', '.join(sorted(self.pve.nodes))))
        running = flag(body, 'running') if 'running' in body else False
        memory, cores = integer(body, 'memory', 16, required=False) or 512, integer(body, 'cores', 1, required=False) or 1
        taken = {vm.vmid for vm in self.pve.vms}
        first = integer(body, 'first_vmid', 100, required=False) or max([99] + [v for v in taken if v < 9000]) + 1
        vmids = range(first, first + count)
        clash = sorted(taken.intersection(vmids))
        if clash:
            raise ControlError(status=409,
                               message='VM id(s) already taken: {0}'.format(', '.join(map(str, clash[:10]))))
        for i, vmid in enumerate(vmids):
            self.pve.add_vm(vmid, '{0}-{1}'.format(prefix, i + 1), node=nodes[i % len(nodes)],
                            status='running' if running else 'stopped', config={'memory': memory, 'cores': cores})
        return web.json_response({'count': count, 'first_vmid': first, 'last_vmid': first + count - 1})

    async def talos_nodes(self, request):
        """The Talos nodes of the VMs: address, MAC, hostname, stage, machine type."""
        nodes = self.talos.fleet.nodes.items() if self.talos is not None else ()
        return web.json_response([{'vmid': vmid, 'address': node.address, 'mac': node.mac, 'hostname': node.hostname,
                                   'stage': node.stage, 'machine_type': node.machine_type}
                                  for vmid, node in sorted(nodes)])

    async def talos_hang(self, request):
        """From the next boot on, the Talos of VM `name` hangs (`hang` true) or boots again (false): a node that
        does not come back, with neither a Talos API nor a guest agent answering."""
        body = await read_body(request, ('name', 'hang'))
        name, hang = text(body, 'name'), flag(body, 'hang')
        if self.talos is None:
            raise ControlError(status=409, message='this lab runs no Talos machines')
        if hang:
            self.talos.hanging.add(name)
        else:
            self.talos.hanging.discard(name)
        return web.json_response({'hanging': sorted(self.talos.hanging)})

    async def reset(self, request):
        body = await read_body(request, ('wait',))
        wait = number(body, 'wait', required=False)
        if self.talos is not None:
            self.talos.hanging.clear()
        running = await self.pve.restore_initial(RESET_WAIT if wait is None else wait)
        if running:
            raise ControlError(status=409, message='{0} task(s) still running after {1}s: {2}'.format(
                len(running), RESET_WAIT if wait is None else wait, ', '.join(running)))
        return web.json_response({'vms': [vm.vmid for vm in self.pve.vms]})


async def serve(pve, host, port, talos=None):
    """Start the control API on host:port (with the Talos machines, if any); returns the runner to clean up."""
    runner = web.AppRunner(ControlApi(pve, talos).app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
