"""`talosctl health`: the cluster checks of pkg/cluster/check, run in order on the node (server side).

As in Talos: the node list is taken as IP addresses only (cluster.IPsToNodeInfos); every check polls under its
own cap (most 5 minutes, `no diagnostics` 1 minute, `all k8s nodes to report ready` 10 minutes) within
--wait-timeout, and the first check that does not pass in time ends the run. Progress goes to stderr as the
node streams it: `discovered nodes: [...]`, then `waiting for <check>: ...`, each new answer, and `: OK` (or
`: SKIP`); a failure ends with `healthcheck error: <the node's error>`.

Checks of what the lab does not emulate (memory and disk sizes, diagnostics, static pods) pass on what stands
for them here: a running node, and a Kubernetes API that answers.
"""

import base64
import http.client
import ipaddress
import json
import pathlib
import ssl
import sys
import tempfile
import time
from urllib.parse import quote, urlparse

import yaml

from .api import RpcError

POLL = 0.5  # seconds between two looks of a check (Talos: 5s; the lab's state changes faster)
MINUTE = 60.0


class CheckFailed(Exception):
    """A check that does not pass yet."""


class Skip(Exception):
    """A check whose subject is absent (conditions.ErrSkipAssertion): reported as SKIP, counted as passed."""


def _split(values):
    return [part for value in values or () for part in value.split(',') if part]


def parse_addresses(nodes):
    """The nodes as IP addresses, as Go's netip.ParseAddr takes them; the first that is not one is the error."""
    for node in nodes:
        try:
            ipaddress.ip_address(node)
        except ValueError:
            raise RpcError('Unknown', 'ParseAddr("{0}"): unable to parse IP'.format(node)) from None
    return nodes


class Health:
    """The checks over the control plane and worker nodes, through the client's endpoint."""

    def __init__(self, client, control_plane, workers):
        self.client = client
        self.control_plane = control_plane
        self.workers = workers
        self.kube_api = None  # (server URL, TLS context) of the admin kubeconfig

    @property
    def everyone(self):
        return self.control_plane + self.workers

    def etcd_healthy(self):
        for node in self.control_plane:
            members = self.client.call('EtcdMemberList', node)['members']
            if not any('https://{0}:2379'.format(node) in m['client_urls'] for m in members):
                raise CheckFailed('{0}: etcd is not running'.format(node))

    def etcd_consistent(self):
        seen = {node: sorted(m['id'] for m in self.client.call('EtcdMemberList', node)['members'])
                for node in self.control_plane}
        if len({json.dumps(ids) for ids in seen.values()}) > 1:
            raise CheckFailed('etcd member lists differ across nodes: {0}'.format(seen))

    def etcd_control_plane(self):
        members = self.client.call('EtcdMemberList', self.control_plane[0])['members']
        addresses = sorted(url.split('//')[1].rsplit(':', 1)[0] for m in members for url in m['client_urls'])
        if addresses != sorted(self.control_plane):
            raise CheckFailed('etcd members {0} are not the control plane nodes {1}'.format(
                addresses, sorted(self.control_plane)))

    def apid_ready(self):
        for node in self.everyone:
            self.client.call('Version', node)

    def _stages(self):
        return {node: self.client.call('Get', node, type='machinestatus')['items'][0]['spec'] for node in self.everyone}

    def nodes_running(self):
        """Memory and disk sizes, diagnostics and kubelet: what a running lab node has."""
        for node, status in self._stages().items():
            if status['stage'] != 'running':
                raise CheckFailed('node {0} is in stage {1}'.format(node, status['stage']))

    def boot_finished(self):
        for node, status in self._stages().items():
            if status['stage'] != 'running' or not status['status']['ready']:
                raise CheckFailed('node {0} is in stage {1}, not ready'.format(node, status['stage']))

    def _kube(self, path):
        if self.kube_api is None:
            config = yaml.safe_load(self.client.call('Kubeconfig', self.control_plane[0])['kubeconfig'])
            cluster, user = config['clusters'][0]['cluster'], config['users'][0]['user']
            context = ssl.create_default_context(cadata=base64.b64decode(cluster['certificate-authority-data']).decode())
            with tempfile.TemporaryDirectory() as scratch:
                files = {}
                for name, data in (('crt', user['client-certificate-data']), ('key', user['client-key-data'])):
                    files[name] = pathlib.Path(scratch) / name
                    files[name].write_bytes(base64.b64decode(data))
                context.load_cert_chain(str(files['crt']), str(files['key']))
            self.kube_api = (urlparse(cluster['server']), context)
        server, context = self.kube_api
        connection = http.client.HTTPSConnection(server.hostname, server.port or 443, timeout=10, context=context)
        try:
            connection.request('GET', path)
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise CheckFailed('Get "{0}{1}": {2}'.format(server.geturl(), path, exc)) from None
        finally:
            connection.close()
        if response.status != 200:
            raise CheckFailed('kubernetes API answered {0} for {1}'.format(response.status, path))
        return json.loads(body)['items']

    def _kube_nodes(self):
        return self._kube('/api/v1/nodes')

    def _addresses(self, kube_node):
        return [a['address'] for a in (kube_node.get('status') or {}).get('addresses') or [] if a['type'] == 'InternalIP']

    def k8s_report(self):
        reported = sorted(a for n in self._kube_nodes() for a in self._addresses(n))
        if reported != sorted(self.everyone):
            raise CheckFailed('expected nodes {0}, got {1}'.format(sorted(self.everyone), reported))

    def control_plane_answers(self):
        """Static pods and control plane components: the Kubernetes API answering stands for them."""
        self._kube('/api/v1/namespaces/kube-system/pods')

    def k8s_ready(self):
        for kube_node in self._kube_nodes():
            conditions = {c['type']: c['status'] for c in (kube_node.get('status') or {}).get('conditions') or []}
            if conditions.get('Ready') != 'True':
                raise CheckFailed('node {0!r} is not ready'.format(kube_node['metadata']['name']))

    def _pods_ready(self, kind, selector):
        """Skipped when no such workload exists, else every pod it selects Ready."""
        if not self._kube('/apis/apps/v1/namespaces/kube-system/{0}?labelSelector={1}'.format(kind, quote(selector))):
            raise Skip()
        pods = self._kube('/api/v1/namespaces/kube-system/pods?labelSelector={0}'.format(quote(selector)))
        ready = [p for p in pods if any(c['type'] == 'Ready' and c['status'] == 'True'
                                        for c in (p.get('status') or {}).get('conditions') or [])]
        if not pods or len(ready) != len(pods):
            raise CheckFailed('{0} of {1} pods ready for {2}'.format(len(ready), len(pods), selector))

    def kube_proxy_ready(self):
        self._pods_ready('daemonsets', 'k8s-app=kube-proxy')

    def coredns_ready(self):
        self._pods_ready('deployments', 'k8s-app=kube-dns')

    def k8s_schedulable(self):
        for kube_node in self._kube_nodes():
            if (kube_node.get('spec') or {}).get('unschedulable'):
                raise CheckFailed('node {0!r} is not schedulable'.format(kube_node['metadata']['name']))


# DefaultClusterChecks in order: (description, assertion, cap in seconds).
CHECKS = (('etcd to be healthy', Health.etcd_healthy, 5 * MINUTE),
          ('etcd members to be consistent across nodes', Health.etcd_consistent, 5 * MINUTE),
          ('etcd members to be control plane nodes', Health.etcd_control_plane, 5 * MINUTE),
          ('apid to be ready', Health.apid_ready, 5 * MINUTE),
          ('all nodes memory sizes', Health.nodes_running, 5 * MINUTE),
          ('all nodes disk sizes', Health.nodes_running, 5 * MINUTE),
          ('no diagnostics', Health.nodes_running, 1 * MINUTE),
          ('kubelet to be healthy', Health.nodes_running, 5 * MINUTE),
          ('all nodes to finish boot sequence', Health.boot_finished, 5 * MINUTE),
          ('all k8s nodes to report', Health.k8s_report, 5 * MINUTE),
          ('all control plane static pods to be running', Health.control_plane_answers, 5 * MINUTE),
          ('all control plane components to be ready', Health.control_plane_answers, 5 * MINUTE),
          ('all k8s nodes to report ready', Health.k8s_ready, 10 * MINUTE),
          ('kube-proxy to report ready', Health.kube_proxy_ready, 5 * MINUTE),
          ('coredns to report ready', Health.coredns_ready, 5 * MINUTE),
          ('all k8s nodes to report schedulable', Health.k8s_schedulable, 5 * MINUTE))


def discover(client):
    """(control plane, workers) addresses from the cluster's members."""
    members = client.call('Get', None, type='members')['items']
    control_plane = [m['spec']['addresses'][0] for m in members if m['spec']['machineType'] == 'controlplane']
    workers = [m['spec']['addresses'][0] for m in members if m['spec']['machineType'] != 'controlplane']
    return control_plane, workers


def _say(line):
    print(line, file=sys.stderr, flush=True)


def run_health(client, args, clock=time.monotonic, sleep=time.sleep, checks=CHECKS):
    """0 when every check passed; 1 after `healthcheck error: ...` (on stderr, like all progress)."""
    if len(client.targets()) > 1:
        _say('command "health" is not supported with multiple nodes')
        return 1
    deadline = clock() + args.wait_timeout
    try:
        control_plane, workers = _split(args.control_plane_nodes), _split(args.worker_nodes)
        if args.init_node:
            control_plane = control_plane + [args.init_node]
        if control_plane or workers:
            parse_addresses(control_plane + workers)
        else:
            control_plane, workers = discover(client)
    except RpcError as exc:
        _say('healthcheck error: {0}'.format(exc))
        return 1
    _say('discovered nodes: [{0}]'.format(' '.join('"{0}"'.format(a) for a in control_plane + workers)))
    health = Health(client, control_plane, workers)
    for description, check, cap in checks:
        _say('waiting for {0}: ...'.format(description))
        ends = min(deadline, clock() + cap)
        last = None
        while True:
            try:
                check(health)
                _say('waiting for {0}: OK'.format(description))
                break
            except Skip:
                _say('waiting for {0}: SKIP'.format(description))
                break
            except (CheckFailed, RpcError) as exc:
                if str(exc) != last:
                    _say('waiting for {0}: {1}'.format(description, exc))
                    last = str(exc)
                if clock() >= ends:
                    _say('healthcheck error: rpc error: code = DeadlineExceeded desc = context deadline exceeded')
                    return 1
                sleep(POLL)
    return 0
