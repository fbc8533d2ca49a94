"""Clients of the control APIs of the Proxmox VE fake (see castle_lab.proxmox.control) and of the Kubernetes emulator,
on the standard library only."""

import json
import urllib.error
import urllib.request

from .process import LabError


class ControlError(LabError):
    """A control API refused a request (HTTP `status`, one-line reason), or did not answer (`status` None).

    The control API servers raise it to answer with that status; their clients raise it with the server's reason."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


class ControlClient:
    """JSON over a lab service's control API at `url` (the service's variable in `castle-lab env`)."""

    service = ''

    def __init__(self, url, timeout=60.0):
        self.url = url.rstrip('/')
        self.timeout = timeout

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={'Content-Type': 'application/json', 'Accept': 'application/json'})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b'null')
        except urllib.error.HTTPError as exc:
            raise ControlError('{0} {1}: {2}'.format(method, path, _reason(exc)), exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, 'reason', exc)
            raise ControlError('control API at {0} does not answer ({1}); is `castle-lab up {2}` running?'.format(
                self.url, reason, self.service)) from None


class ProxmoxControl(ControlClient):
    """Fault injection and server-side state of the lab's Proxmox VE, at CASTLE_LAB_PROXMOX_CONTROL."""

    service = 'proxmox'

    def requests(self, params=False):
        """{'count': N, 'requests': [[METHOD, PATH], ...]}, paths without the /api2/json prefix; with `params`,
        each request's parameters too: [METHOD, PATH, {name: value}]."""
        return self._call('GET', '/requests?params=1' if params else '/requests')

    def reset_requests(self):
        return self._call('POST', '/requests/reset')

    def fail(self, method, path, status=None, message=None, error=None, times=None, html=False):
        """Fail requests whose path ends with `path`: with status and message, or a named PVE error."""
        body = {'method': method, 'path': path}
        for key, value in (('status', status), ('message', message), ('error', error), ('times', times)):
            if value is not None:
                body[key] = value
        if html:
            body['html'] = True
        return self._call('POST', '/fault', body)

    def clear_faults(self):
        return self._call('DELETE', '/fault')

    def time_scale(self, value):
        return self._call('POST', '/time-scale', {'value': value})

    def hold_lock(self, vmid, secs):
        return self._call('POST', '/hold-lock', {'vmid': vmid, 'secs': secs})

    def agent(self, vmid, interfaces):
        """The VM's guest agent answers network-get-interfaces with these (None: no agent)."""
        return self._call('POST', '/agent', {'vmid': vmid, 'interfaces': interfaces})

    def node(self, name, online):
        return self._call('POST', '/node', {'node': name, 'online': online})

    def quorum(self, quorate):
        return self._call('POST', '/quorum', {'quorate': quorate})

    def network(self, **conditions):
        """latency, jitter, drop_rate, hang_rate, hang_secs, seed: only those given change."""
        return self._call('POST', '/network', conditions)

    def vms(self):
        return self._call('GET', '/vms')

    def create_vms(self, count, prefix=None, nodes=None, running=False, first_vmid=None):
        """Add `count` VMs named <prefix>-1.. straight into the fake, round robin over `nodes`."""
        body = {'count': count, 'running': running}
        body.update((k, v) for k, v in (('prefix', prefix), ('nodes', nodes), ('first_vmid', first_vmid))
                    if v is not None)
        return self._call('POST', '/vms', body)

    def talos_nodes(self):
        """[{'vmid', 'address', 'mac', 'hostname', 'stage', 'machine_type'}] of the VMs' Talos nodes."""
        return self._call('GET', '/talos-nodes')

    def talos_hang(self, name, hang=True):
        """From its next boot on, the Talos of VM `name` hangs (or, with hang False, boots again)."""
        return self._call('POST', '/talos-hang', {'name': name, 'hang': hang})

    def reset(self, wait=None):
        return self._call('POST', '/reset', {} if wait is None else {'wait': wait})


def _reason(exc):
    try:
        return json.loads(exc.read())['error']
    except (ValueError, KeyError, TypeError, OSError):
        return '{0} {1}'.format(exc.code, exc.reason)


class KubeControl(ControlClient):
    """The Kubernetes emulator's control API at CASTLE_LAB_KUBE_CONTROL: what its External Secrets controllers sent
    to Vault, and the failures of its workloads and nodes."""

    service = 'kube'

    def vault_requests(self):
        """{'externalSecrets': {'<ns>/<name>': {requests, seconds, perMinute, lastMinute}}, 'stores': {...}}."""
        return self._call('GET', '/eso/vault-requests')

    def reset_vault_requests(self):
        return self._call('POST', '/eso/vault-requests/reset')

    def workload_fault(self, namespace, kind, name, fault):
        """The pods of a Deployment, DaemonSet, StatefulSet or Job fail as `fault` says (not-ready, crash-loop,
        image-pull, fail; None clears it); returns every fault now set (GET /failures)."""
        return self._call('POST', '/workload-fault', {'namespace': namespace, 'kind': kind, 'name': name,
                                                      'fault': fault})

    def node_ready(self, name, ready):
        """A Node's kubelet stops (False) or starts again (True) posting Ready."""
        return self._call('POST', '/node-ready', {'name': name, 'ready': ready})

    def advance_clock(self, seconds):
        """Moves the controllers' clock (progress deadlines, Helm timeouts) forward."""
        return self._call('POST', '/clock', {'advance': seconds})

    def failures(self):
        return self._call('GET', '/failures')

    def clear_failures(self):
        return self._call('DELETE', '/failures')
