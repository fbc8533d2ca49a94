"""What the Talos nodes of one cluster share: etcd and its members, and the Kubernetes API that bootstrapping the
first control plane node starts (castle_lab.kube.server.main) at the control plane endpoint, with the cluster CA
and service account key of the machine config.

The Kubernetes API and its objects stand for etcd's data: they live while etcd has a member, through
reboots and power-offs of the node they started on (the API then answers at the endpoint as a VIP would),
and go with the last member. As on Talos, a control plane node refuses a bootstrap only when its own etcd
has data, so bootstrapping one that has not yet joined a running cluster makes a second etcd cluster on it.
"""

import asyncio
import hashlib
import json
import logging
import pathlib
import shutil
import ssl
import sys
import tempfile
import time
from urllib.parse import urlparse

from aiohttp import ClientError, ClientSession, TCPConnector

from ..kube.api.admission import UNCONFIGURED
from ..kube.controllers.longhorn import EXTENSIONS_ANNOTATION
from ..pki import write_secret
from . import secrets
from .api import RpcError

LOG = logging.getLogger('castle_lab.talos')
KUBE_READY_TIMEOUT = 30.0






class Cluster:
    """What the nodes of one cluster (by cluster.id) share: etcd, its members, the Kubernetes API."""

    def __init__(self, fleet, cluster_id):
        self.fleet = fleet
        self.id = cluster_id
        self.bootstrapped = False
        self.etcd = {}  # address -> member id (hex)
        self.kube = None  # the Kubernetes API process (castle_lab.kube.server.main)
        self.kube_node = None  # the control plane node it runs on (the bootstrap node)
        self.kube_dir = None
        self.kube_client = None  # (cluster CA, session) the nodes' kubelets talk to the Kubernetes API with
        self.lock = asyncio.Lock()
        # When (event loop time) the control plane is up after the bootstrap, and the reconcile that waits for
        # the next node or the control plane to come up (timing's durations; never in the fast profile).
        self.up_at = 0.0
        self._later = None

    def nodes(self):
        return [node for node in self.fleet.nodes.values() if node.cluster is self and node.serving]

    @property
    def directory(self):
        """Where the cluster's Kubernetes API keeps its files; its `longhorn` directory holds the nodes' Longhorn
        disks (`nodes/<hostname>`, each node's /var/lib/longhorn on its EPHEMERAL partition)."""
        return self.fleet.state / 'clusters' / hashlib.sha256(self.id.encode()).hexdigest()[:12]

    def longhorn_disk(self, hostname):
        return self.directory / 'longhorn' / 'nodes' / hostname

    def config(self):
        """The machine config of a control plane node of the cluster (it holds the CAs' keys)."""
        for node in self.fleet.nodes.values():
            if node.cluster is self and node.machine_type == 'controlplane':
                return node.document
        return None

    async def start_kube(self, node, restored=None):
        """Start the Kubernetes API on `node`, at the control plane endpoint of its config; with `restored` (the
        database of an etcd snapshot), with that snapshot's objects."""
        cluster = node.document['cluster']
        self.kube_node = node
        parsed = urlparse(cluster['controlPlane']['endpoint'])
        host, port = parsed.hostname, parsed.port or 443
        directory = self.directory
        directory.mkdir(parents=True, exist_ok=True)
        ca_cert, ca_key = secrets.load_pair(cluster['ca'])
        cert, key = secrets.issue(ca_cert, ca_key, 'kube-apiserver', addresses=[
            host, 'localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc',
            'kubernetes.default.svc.' + cluster.get('network', {}).get('dnsDomain', 'cluster.local')], server=True)
        files = {'ca': write_secret(directory / 'ca.crt', secrets.config_pem(cluster['ca']['crt'])),
                 'cert': write_secret(directory / 'apiserver.crt', cert),
                 'key': write_secret(directory / 'apiserver.key', key),
                 'sa': write_secret(directory / 'sa.key', secrets.config_pem(cluster['serviceAccount']['key']))}
        # The PodSecurity plugin's configuration from apiServer.admissionControl; without one the plugin
        # runs unconfigured (privileged everywhere).
        pod_security = next((plugin.get('configuration') or {} for plugin in (cluster.get('apiServer') or {}).get(
            'admissionControl') or [] if plugin.get('name') == 'PodSecurity'), UNCONFIGURED)
        files['pod_security'] = directory / 'pod-security.json'
        files['pod_security'].write_text(json.dumps(pod_security))
        kubectl = shutil.which('kubectl') or 'kubectl'
        argv = [sys.executable, '-m', 'castle_lab.kube.server.main', '--host', host, '--port', str(port),
                '--control-port', str(port + 1), '--cert', str(files['cert']), '--key', str(files['key']),
                '--client-ca', str(files['ca']), '--sa-key', str(files['sa']),
                '--artifact-dir', str(directory / 'artifacts'), '--kubectl', kubectl, '--no-seed-node',
                '--pod-security-config', str(files['pod_security']), '--storage-dir', str(directory / 'longhorn')]
        if restored is not None:
            (directory / 'etcd-restore.json').write_bytes(restored)
            argv += ['--restore-from', str(directory / 'etcd-restore.json')]
        log = open(directory / 'kube.log', 'ab')
        self.kube = await asyncio.create_subprocess_exec(*argv, stdout=log, stderr=log, stdin=asyncio.subprocess.DEVNULL)
        log.close()
        self.kube_dir = directory
        deadline = time.monotonic() + KUBE_READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.kube.returncode is not None:
                raise RpcError('Internal', 'kube-apiserver exited; see {0}'.format(directory / 'kube.log'))
            try:
                _reader, writer = await asyncio.open_connection(host, port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise RpcError('DeadlineExceeded', 'kube-apiserver did not start within {0:g}s'.format(KUBE_READY_TIMEOUT))

    async def stop_kube(self):
        if self.kube_client is not None:
            await self.kube_client[1].close()
            self.kube_client = None
        if self.kube is not None and self.kube.returncode is None:
            self.kube.terminate()
            try:
                await asyncio.wait_for(self.kube.wait(), 10)
            except asyncio.TimeoutError:
                self.kube.kill()
        self.kube = None

    def kube_running(self):
        return self.kube is not None and self.kube.returncode is None

    def _kube_session(self, cluster):
        """The session of the cluster's kubelets: a client certificate issued once per cluster CA, one
        connection pool, as each kubelet keeps its credentials and connection."""
        if self.kube_client is None or self.kube_client[0] != cluster['ca']['crt']:
            ca_cert, ca_key = secrets.load_pair(cluster['ca'])
            cert, key = secrets.issue(ca_cert, ca_key, 'talos:node', organizations=('system:masters',), client=True)
            context = ssl.create_default_context(cadata=secrets.config_pem(cluster['ca']['crt']).decode())
            with tempfile.TemporaryDirectory() as scratch:
                scratch = pathlib.Path(scratch)
                context.load_cert_chain(str(write_secret(scratch / 'crt', cert)),
                                        str(write_secret(scratch / 'key', key)))
            if self.kube_client is not None:
                asyncio.ensure_future(self.kube_client[1].close())
            self.kube_client = (cluster['ca']['crt'], ClientSession(connector=TCPConnector(ssl=context)))
        return self.kube_client[1]

    async def kube_call(self, method, path, body=None):
        """One request to the cluster's Kubernetes API as its admin; (status, JSON body)."""
        cluster = self.config()['cluster']
        url = cluster['controlPlane']['endpoint'].rstrip('/') + path
        headers = {'Content-Type': 'application/merge-patch+json' if method == 'PATCH' else 'application/json'}
        async with self._kube_session(cluster).request(method, url, json=body, headers=headers) as response:
            return response.status, await response.json(content_type=None)

    async def reconcile(self):
        """Workers waiting for a certificate get one; once bootstrapped, control plane nodes join etcd
        and every configured node registers as a Ready Kubernetes Node."""
        for node in self.nodes():
            if node.stage == 'running' and node.runner is None:
                await node.restart_api()
        async with self.lock:
            # No control plane node left to hold the cluster's CA (all reset or gone): nobody to register with.
            if not self.bootstrapped or not self.kube_running() or self.config() is None:
                return
            running = self._up([node for node in self.nodes() if node.stage == 'running'])
            for node in running:
                if node.machine_type == 'controlplane' and node.address not in self.etcd and not node.own_etcd:
                    # etcd gives a member added at runtime an id of its peer URLs, cluster and the time: a new one
                    # on every join, so a node that left and joined again is a new member.
                    self.etcd[node.address] = hashlib.sha256('{0} {1} {2}'.format(
                        node.address, self.id, time.time_ns()).encode()).hexdigest()[:16]
            # Each kubelet registers on its own, all at the same time.
            outcomes = await asyncio.gather(*(self._register(node) for node in running), return_exceptions=True)
            for node, outcome in zip(running, outcomes):
                if isinstance(outcome, (ClientError, OSError, ValueError)):
                    LOG.warning('registering %s as a Kubernetes node failed: %s', node.hostname, outcome)
                elif isinstance(outcome, BaseException):
                    raise outcome

    def _up(self, running):
        """The running nodes whose etcd member and kubelet are up with the control plane; a reconcile is scheduled
        for when the next of the others is."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        waits = [max(node.up_at, self.up_at) - now for node in running]
        later = [secs for secs in waits if secs > 0]
        if later:
            if self._later is not None:
                self._later.cancel()
            self._later = loop.call_later(min(later), lambda: asyncio.ensure_future(self.reconcile()))
        return [node for node, secs in zip(running, waits) if secs <= 0]

    async def _register(self, node):
        labels = {'kubernetes.io/hostname': node.hostname, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64'}
        if node.machine_type == 'controlplane':
            labels['node-role.kubernetes.io/control-plane'] = ''
        labels.update(node.document['machine'].get('nodeLabels') or {})
        # Lab-only: the extensions the node runs, for the emulator's Longhorn (a real one looks at the host).
        annotations = {EXTENSIONS_ANNOTATION: ','.join(node.extensions[1])}
        status, body = await self.kube_call('GET', '/api/v1/nodes/' + node.hostname)
        if status == 404:
            await self.kube_call('POST', '/api/v1/nodes', {'apiVersion': 'v1', 'kind': 'Node', 'metadata': {
                'name': node.hostname, 'labels': labels, 'annotations': annotations}})
        elif not annotations.items() <= ((body.get('metadata') or {}).get('annotations') or {}).items():
            await self.kube_call('PATCH', '/api/v1/nodes/' + node.hostname, {'metadata': {'annotations': annotations}})
        now = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
        version = node.document['machine']['kubelet']['image'].rsplit(':', 1)[-1]
        await self.kube_call('PATCH', '/api/v1/nodes/{0}/status'.format(node.hostname), {'status': {
            'conditions': [{'type': 'Ready', 'status': 'True', 'reason': 'KubeletReady',
                            'message': 'kubelet is posting ready status', 'lastHeartbeatTime': now,
                            'lastTransitionTime': now}],
            'addresses': [{'type': 'InternalIP', 'address': node.address}, {'type': 'Hostname', 'address': node.hostname}],
            'nodeInfo': {'kubeletVersion': version, 'osImage': 'Talos ({0})'.format(node.version),
                         'operatingSystem': 'linux', 'architecture': 'amd64', 'containerRuntimeVersion': 'containerd://2.1.5',
                         'kernelVersion': '6.12.62-talos', 'kubeProxyVersion': version, 'machineID': node.machine_id,
                         'systemUUID': node.machine_id, 'bootID': node.machine_id}}})

    async def snapshot(self):
        """The etcd snapshot of the cluster's data: its Kubernetes API's objects (the kube server's control API)."""
        parsed = urlparse(self.kube_node.document['cluster']['controlPlane']['endpoint'])
        url = 'http://{0}:{1}/snapshot'.format(parsed.hostname, (parsed.port or 443) + 1)
        async with ClientSession() as session:
            async with session.get(url) as response:
                response.raise_for_status()
                return await response.read()

    async def mark_absent_nodes(self):
        """After a recovery: the restored Nodes of machines not running in the cluster get no kubelet status, so
        the node lifecycle controller turns them Ready Unknown."""
        running = {node.hostname for node in self.nodes() if node.stage == 'running'}
        try:
            status, body = await self.kube_call('GET', '/api/v1/nodes')
        except (ClientError, OSError, ValueError) as exc:
            LOG.warning('listing Kubernetes nodes failed: %s', exc)
            return
        names = [item['metadata']['name'] for item in body.get('items') or []] if status == 200 else []
        for name in names:
            if name not in running:
                await self._mark_lost(name)

    async def node_lost(self, node):
        """A powered-off node's kubelet stops posting status: its Node turns Ready Unknown."""
        await self._mark_lost(node.hostname)

    async def _mark_lost(self, hostname):
        now = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
        try:
            await self.kube_call('PATCH', '/api/v1/nodes/{0}/status'.format(hostname), {'status': {'conditions': [
                {'type': 'Ready', 'status': 'Unknown', 'reason': 'NodeStatusUnknown',
                 'message': 'Kubelet stopped posting node status.', 'lastHeartbeatTime': now,
                 'lastTransitionTime': now}]}})
        except (ClientError, OSError, ValueError) as exc:
            LOG.warning('marking Kubernetes node %s lost failed: %s', hostname, exc)

    async def forget(self, node):
        """A node leaves: its etcd membership and its Kubernetes Node go."""
        self.etcd.pop(node.address, None)
        if self.kube_running() and self.config() is not None:
            try:
                await self.kube_call('DELETE', '/api/v1/nodes/' + node.hostname)
            except (ClientError, OSError, ValueError) as exc:
                LOG.warning('deleting Kubernetes node %s failed: %s', node.hostname, exc)
