"""Emulated Talos nodes: maintenance mode, configuration, bootstrap, etcd membership, Kubernetes Nodes, reset.

Each node serves the node API (castle_lab.talos.api) on its own address, port 50000: self-signed TLS without
client authentication in maintenance mode, mutual TLS with the cluster's OS CA once configured.
"""

import asyncio
import base64
import difflib
import hashlib
import ipaddress
import logging
import pathlib
import shutil
import ssl
import tempfile
import time
import uuid

import yaml
from aiohttp import ClientError, web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..kube.api import snapshot
from .. import timing
from ..pki import write_secret
from . import API_PORT, TALOS_VERSION, network, secrets
from .api import ALIASES, MAINTENANCE_METHODS, RESOURCES, RpcError
from .factory import extension_status
from .schema import ConfigInvalid, machine_document, validate

LOG = logging.getLogger('castle_lab.talos')
APPLY_MODES = ('auto', 'no-reboot', 'reboot', 'staged', 'try')
# What a client certificate without the os:admin role (O) may call.
READER_METHODS = ('Version', 'Get', 'EtcdMemberList', 'EtcdStatus')
ADMIN_ROLE = secrets.ADMIN_ROLE
# Where Talos keeps an uploaded snapshot until etcd recovers from it (constants.EtcdRecoverySnapshotPath).
RECOVERY_SNAPSHOT = '/var/lib/etcd.snapshot'
ETCD_VERSION = '3.6.4'
# What a call to the node's own etcd client port gets while etcd is not running there.
ETCD_DOWN = ('rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: '
             'dial tcp 127.0.0.1:2379: connect: connection refused"')






def stable_hostname(mac):
    digest = hashlib.sha256(mac.lower().encode()).hexdigest()
    return 'talos-{0}-{1}'.format(digest[:3], digest[3:6])



def _roles(peercert):
    """The Talos roles (organizations) of a verified client certificate as ssl's getpeercert() gives it."""
    return [value for rdn in (peercert or {}).get('subject', ()) for attr, value in rdn
            if attr == 'organizationName']



class Node:
    """One Talos machine: its address, its stage, its machine config, and its API server."""

    def __init__(self, fleet, address, mac):
        self.fleet = fleet
        self.address = address
        self.mac = mac
        self.default_hostname = stable_hostname(mac)
        self.machine_id = hashlib.sha256(('machine' + mac).encode()).hexdigest()[:32]
        self.config_text = None  # the applied config (the STATE partition)
        self._parsed = None  # (config_text, its v1alpha1 document)
        self.staged_text = None
        self.rollback = None  # (handle, previous text) of a try-mode apply
        self.own_etcd = None  # member id of an etcd bootstrapped here beside the cluster's running one
        # The EPHEMERAL partition's etcd files: the snapshot uploaded for a recovery, and whether a failed
        # recovery left a database in the etcd data directory.
        self.recovery_snapshot = None
        self.etcd_data_left = False
        self.version = TALOS_VERSION
        self.stage = 'off'
        # (schematic ID or None, official extension names) of what the node booted: its ISO in maintenance
        # mode, the installer image of its config once installed (set by the Proxmox hook on each boot).
        self.extensions = (None, [])
        self.runner = None
        self.site = None
        # Whether the next boot follows the install of a first config, and when (event loop time) the node's
        # etcd member and kubelet are up once it runs (timing's durations; at once in the fast profile).
        self.installing = False
        self.up_at = 0.0
        # A boot waiting out its duration (the node is still off), given up if the power changes meanwhile.
        self.booting = False
        self.power_changes = 0
        self.scratch = pathlib.Path(tempfile.mkdtemp(prefix='talos-node-'))

    # ---------------------------------------------------------- state

    @property
    def configured(self):
        return self.config_text is not None

    @property
    def hostname(self):
        """machine.network.hostname of the applied config, else the name Talos derives from the MAC."""
        if self.configured:
            network = (self.document.get('machine') or {}).get('network') or {}
            if network.get('hostname'):
                return network['hostname']
        return self.default_hostname

    @property
    def serving(self):
        return self.stage in ('maintenance', 'running')

    @property
    def document(self):
        """The v1alpha1 document of the applied config (read-only), parsed once per config: the cluster's
        bookkeeping asks every node for it on every boot, which a real node answers from memory."""
        if not self.configured:
            return None
        if self._parsed is None or self._parsed[0] is not self.config_text:
            self._parsed = (self.config_text, machine_document(list(yaml.safe_load_all(self.config_text))))
        return self._parsed[1]

    @property
    def machine_type(self):
        return self.document['machine']['type'] if self.configured else None

    @property
    def cluster(self):
        return self.fleet.cluster(self.document['cluster']['id']) if self.configured else None

    # -------------------------------------------------------- power

    async def boot(self):
        self.power_changes += 1
        change, secs = self.power_changes, self._boot_secs()
        if secs:
            self.booting = True
            await asyncio.sleep(secs)
            if change != self.power_changes or all(node is not self for node in self.fleet.nodes.values()):
                return  # powered off, booted again or gone with its VM meanwhile
        self.installing = self.booting = False
        if self.staged_text is not None:
            self.config_text, self.staged_text = self.staged_text, None
        self.stage = 'running' if self.configured else 'maintenance'
        if self.configured:
            own = timing.duration('talos.kubelet.ready')
            if self.machine_type == 'controlplane':
                own += timing.duration('talos.etcd.join')
            self.up_at = asyncio.get_running_loop().time() + own
        if self.fleet.on_boot is not None:
            self.fleet.on_boot(self)
        await self._serve()
        if self.configured:
            cluster = self.cluster
            if cluster.bootstrapped and cluster.kube_node is self and not cluster.kube_running():
                await cluster.start_kube(self)
            await cluster.reconcile()

    def _boot_secs(self):
        """Seconds from power-on to the node's API: the install of a first config first, then a boot from disk;
        without a config, a boot of the ISO to the maintenance API."""
        if self.installing:
            return timing.duration('talos.install') + timing.duration('talos.boot.installed')
        if self.configured or self.staged_text is not None:
            return timing.duration('talos.boot.installed')
        return timing.duration('talos.boot.iso')

    async def power_off(self):
        self.power_changes += 1
        self.booting = False
        if self.rollback:
            self.rollback[0].cancel()
            self.config_text, self.rollback = self.rollback[1], None
        self.stage = 'off'
        await self._unserve()
        if self.configured and self.cluster.kube_running():
            await self.cluster.node_lost(self)

    async def reboot(self):
        await self.power_off()
        await self.boot()

    # -------------------------------------------------------- serving

    def _tls(self):
        if not self.configured:
            return self._maintenance_tls()
        document = self.document
        os_ca = document['machine']['ca']
        key = os_ca.get('key') or self._cluster_os_key()
        if not key:
            return None
        ca_cert, ca_key = secrets.load_pair({'crt': os_ca['crt'], 'key': key})
        cert, private = secrets.issue(ca_cert, ca_key, self.hostname, addresses=[self.address, self.hostname],
                                      server=True)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH,
                                             cafile=str(write_secret(self.scratch / 'os-ca.crt',
                                                                     secrets.config_pem(os_ca['crt']))))
        context.load_cert_chain(str(write_secret(self.scratch / 'node.crt', cert)),
                                str(write_secret(self.scratch / 'node.key', private)))
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    def _cluster_os_key(self):
        """A worker's certificate comes from a control plane node of its cluster (trustd)."""
        config = self.cluster.config()
        return config['machine']['ca'].get('key') if config else None

    def _maintenance_tls(self):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'maintenance-service')])
        cert, private = secrets.issue(_SelfSigned(name), key, 'maintenance-service', addresses=[self.address],
                                      server=True, key=key)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(write_secret(self.scratch / 'maint.crt', cert)),
                                str(write_secret(self.scratch / 'maint.key', private)))
        context.verify_mode = ssl.CERT_NONE
        return context

    async def _serve(self):
        context = self._tls()
        if context is None:
            LOG.info('%s: waiting for a control plane node to issue its certificate', self.address)
            return
        app = web.Application(client_max_size=16 * 1024 ** 2)
        app.router.add_post('/{method}', self._handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        self.site = web.TCPSite(self.runner, self.address, API_PORT, ssl_context=context, reuse_address=True)
        await self.site.start()

    async def _unserve(self):
        if self.runner is not None:
            await self.runner.cleanup()
        self.runner = self.site = None

    async def restart_api(self):
        await self._unserve()
        if self.serving:
            await self._serve()

    async def _handle(self, request):
        method = request.match_info['method']
        try:
            body = await request.json()
            peer = request.transport.get_extra_info('peercert')
            target = self.fleet.nodes_by_address().get(body.get('node') or self.address)
            if target is None or not target.serving:
                raise RpcError('Unavailable', 'connection error: desc = "transport: Error while dialing: dial tcp '
                               '{0}:{1}: connect: connection refused"'.format(body.get('node'), API_PORT))
            if target is not self and (not self.configured or not target.configured
                                       or target.cluster is not self.cluster):
                raise RpcError('Unavailable', 'connection error: desc = "transport: authentication handshake failed: '
                               'tls: failed to verify certificate: x509: certificate signed by unknown authority"')
            # The endpoint's own refusals (apid's authentication and authorization) fail the call as a whole.
            if not peer and self.configured:
                raise RpcError('Unauthenticated', 'client certificate required', whole_call=True)
            if self.configured and method not in READER_METHODS and ADMIN_ROLE not in _roles(peer):
                raise RpcError('PermissionDenied', 'not authorized', whole_call=True)
            if not self.configured and method not in MAINTENANCE_METHODS:
                raise RpcError('Unimplemented', 'API is not implemented in maintenance mode', whole_call=True)
            handler = getattr(target, 'rpc_' + method, None)
            if handler is None:
                raise RpcError('Unimplemented', 'unknown method {0}'.format(method))
            return web.json_response(await handler(body))
        except RpcError as exc:
            return web.json_response(exc.body(), status=exc.http_status)
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response(RpcError('InvalidArgument', str(exc)).body(), status=400)

    # ------------------------------------------------------------ RPCs

    async def rpc_Version(self, body):
        features = {'rbac': bool(self.configured and self.document['machine'].get('features', {}).get('rbac'))}
        return {'node': self.address, 'tag': self.version, 'sha': '6dd14300', 'arch': 'amd64', 'os': 'linux',
                'go_version': 'go1.24.11', 'features': features, 'maintenance': not self.configured}

    async def rpc_ApplyConfiguration(self, body):
        mode, dry_run = body.get('mode', 'auto'), bool(body.get('dry_run'))
        if mode not in APPLY_MODES:
            raise RpcError('InvalidArgument', 'unknown apply mode {0!r}'.format(mode))
        # The maintenance service takes auto, reboot and try only, checked before anything else (dry run too).
        if not self.configured and mode not in ('auto', 'reboot', 'try'):
            raise RpcError('Unimplemented', "apply configuration --mode='{0}' is not supported in maintenance "
                           'mode'.format(mode))
        text = body.get('data') or ''
        try:
            documents, warnings = validate(text, mode='metal')
        except ConfigInvalid as exc:
            raise RpcError('InvalidArgument', 'configuration validation failed: {0}'.format(exc)) from None
        new = machine_document(documents)
        if not self.configured:
            # It installs the config and reboots whatever the mode; it answers no mode details.
            if dry_run:
                return {'mode_details': 'Dry run summary:\nNode is running in maintenance mode and does not have '
                                        'a config yet.', 'warnings': warnings}
            await self._apply(text, 'reboot', True, 0)
            return {'mode_details': '', 'warnings': warnings}
        reboot = self._needs_reboot(new)
        summary = self._summary(mode, reboot, body.get('try_timeout', 60))
        diff = ''.join(difflib.unified_diff((self.config_text or '').splitlines(True), text.splitlines(True),
                                            'a/machineconfig', 'b/machineconfig'))
        if dry_run:
            return {'mode_details': 'Dry run summary:\n{0} (skipped in dry-run).\n\nConfig diff:\n\n{1}'.format(
                summary, diff), 'warnings': warnings}
        if mode == 'no-reboot' and reboot:
            raise RpcError('FailedPrecondition', 'apply configuration without reboot failed: '
                           'the configuration change requires a reboot')
        await self._apply(text, mode, reboot, body.get('try_timeout', 60))
        return {'mode_details': summary, 'warnings': warnings}

    def _needs_reboot(self, new):
        old = self.document
        if new['machine'].get('type') != old['machine'].get('type'):
            raise RpcError('InvalidArgument', 'configuration validation failed: 1 error occurred:\n'
                           "\t* machine type can't be changed\n")
        if new['cluster'].get('id') != old['cluster'].get('id'):
            raise RpcError('InvalidArgument', "configuration validation failed: 1 error occurred:\n"
                           "\t* cluster ID can't be changed\n")
        return new['machine'].get('install') != old['machine'].get('install')

    @staticmethod
    def _summary(mode, reboot, try_timeout):
        if mode == 'staged':
            return 'Staged configuration to be applied after a reboot'
        if mode == 'try':
            return 'Applied configuration with a try mode: will roll back in {0}'.format(_duration(try_timeout))
        if mode == 'reboot' or (mode == 'auto' and reboot):
            return 'Applied configuration with a reboot'
        return 'Applied configuration without a reboot'

    async def _apply(self, text, mode, reboot, try_timeout):
        if mode == 'staged':
            self.staged_text = text
            return
        previous = self.config_text
        was_configured = self.configured
        self.config_text = text
        if mode == 'try':
            loop = asyncio.get_running_loop()
            handle = loop.call_later(float(try_timeout), lambda: asyncio.ensure_future(self._roll_back()))
            self.rollback = (handle, previous)
        if not was_configured or mode == 'reboot' or (mode == 'auto' and reboot):
            self.installing = not was_configured
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self.fleet.reboot(self)))
        else:
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self.cluster.reconcile()))

    async def _roll_back(self):
        if self.rollback:
            self.config_text, self.rollback = self.rollback[1], None
            await self.cluster.reconcile()

    def _require(self, machine_type=None):
        if not self.configured or self.stage != 'running':
            raise RpcError('Unavailable', 'the node is not running')
        if machine_type and self.machine_type != machine_type:
            raise RpcError('FailedPrecondition', 'this API is only available on control plane nodes')

    async def rpc_Bootstrap(self, body):
        self._require('controlplane')
        cluster = self.cluster
        restored = None
        async with cluster.lock:
            if self.address in cluster.etcd or self.own_etcd or self.etcd_data_left:
                raise RpcError('AlreadyExists', 'etcd data directory is not empty')
            if cluster.bootstrapped:
                # Talos looks at this node's data only: a second, one-member etcd cluster starts here.
                self.own_etcd = hashlib.sha256('{0} {1}'.format(self.address, time.time_ns()).encode()).hexdigest()[:16]
                LOG.warning('%s: bootstrapped beside the running etcd of its cluster: split brain', self.hostname)
                return {}
            if body.get('recover_etcd'):
                # Talos answers once the etcd service is started: a recovery that fails fails the service, not
                # the call.
                restored = self._recovered_database(bool(body.get('recover_skip_hash_check')))
                if restored is None:
                    return {}
            await cluster.start_kube(self, restored)
            cluster.bootstrapped = True
            cluster.up_at = asyncio.get_running_loop().time() + timing.duration('talos.bootstrap')
        await cluster.reconcile()
        if restored is not None:
            await cluster.mark_absent_nodes()
        return {}

    def _recovered_database(self, skip_hash_check):
        """The etcd database restored from the uploaded snapshot (services.Etcd recoverFromSnapshot, etcdutl's
        restore), or None with the etcd service failed. The restore writes the database into the data directory
        before checking its hash, so a failed check leaves the directory not empty."""
        data = self.recovery_snapshot
        if data is None:
            return self._etcd_failed('error verifying snapshot: stat {0}: no such file or directory'.format(
                RECOVERY_SNAPSHOT))
        try:
            snapshot.status(data)
        except snapshot.SnapshotInvalid as exc:
            return self._etcd_failed('error verifying snapshot: {0}'.format(exc))
        try:
            restored = snapshot.verify(data, skip_hash_check)
        except ValueError as exc:
            self.etcd_data_left = True
            return self._etcd_failed('error recovering from the snapshot: {0}'.format(exc))
        self.recovery_snapshot = None
        return restored

    def _etcd_failed(self, reason):
        LOG.warning('%s: etcd service failed: Failed to run pre stage: %s', self.hostname, reason)

    async def rpc_Kubeconfig(self, body):
        self._require('controlplane')
        cluster = self.document['cluster']
        name = cluster['clusterName']
        ca_cert, ca_key = secrets.load_pair(cluster['ca'])
        crt, key = secrets.kube_admin(ca_cert, ca_key)
        user, context = 'admin@{0}'.format(name), 'admin@{0}'.format(name)
        config = {'apiVersion': 'v1', 'kind': 'Config',
                  'clusters': [{'name': name, 'cluster': {'server': cluster['controlPlane']['endpoint'],
                                                          'certificate-authority-data': cluster['ca']['crt']}}],
                  'users': [{'name': user, 'user': {'client-certificate-data': crt, 'client-key-data': key}}],
                  'contexts': [{'name': context, 'context': {'cluster': name, 'namespace': 'default', 'user': user}}],
                  'current-context': context}
        return {'kubeconfig': yaml.safe_dump(config, sort_keys=False)}

    async def rpc_Get(self, body):
        kind = ALIASES.get(str(body.get('type', '')).lower())
        if kind is None:
            raise RpcError('NotFound', 'resource type {0!r} is not registered'.format(body.get('type')))
        if not self.configured and kind not in ('machinestatus', 'hostname', 'links', 'addresses'):
            raise RpcError('PermissionDenied', 'not authorized')
        items = getattr(self, '_resources_' + kind)()
        if body.get('id'):
            items = [item for item in items if item['metadata']['id'] == body['id']]
            if not items:
                raise RpcError('NotFound', 'resource {0}/{1} not found'.format(RESOURCES[kind][1], body['id']))
        return {'items': items}

    def _metadata(self, kind, rid, version=1):
        namespace, rtype = RESOURCES[kind]
        return {'namespace': namespace, 'type': rtype, 'id': rid, 'version': version, 'owner': '',
                'phase': 'running', 'created': '', 'updated': ''}

    def _resources_machineconfig(self):
        """`persistent` (the config on disk: ahead after a staged apply, behind during a try) and `v1alpha1` (the
        one running), by ID as Talos lists them."""
        persistent = self.staged_text or (self.rollback[1] if self.rollback else None) or self.config_text
        return [{'metadata': self._metadata('machineconfig', 'persistent'), 'spec': persistent},
                {'metadata': self._metadata('machineconfig', 'v1alpha1'), 'spec': self.config_text}]

    def _resources_members(self):
        return [{'metadata': self._metadata('members', node.hostname),
                 'spec': {'nodeId': node.machine_id, 'addresses': [node.address], 'hostname': node.hostname,
                          'machineType': node.machine_type, 'operatingSystem': 'Talos ({0})'.format(node.version)}}
                for node in sorted(self.cluster.nodes(), key=lambda n: ipaddress.ip_address(n.address))
                if node.stage == 'running']

    def _resources_extensions(self):
        sid, names = self.extensions
        return [{'metadata': self._metadata('extensions', str(index)), 'spec': spec}
                for index, spec in enumerate(extension_status(names, sid, self.version))]

    def _resources_links(self):
        return [{'metadata': self._metadata('links', name), 'spec': spec}
                for name, spec in network.links(self.mac).items()]

    def _resources_addresses(self):
        return [{'metadata': self._metadata('addresses', '{0}/{1}'.format(name, cidr)),
                 'spec': network.address_status(name, cidr, self.mac)} for name, cidr in self.network_addresses()]

    def network_addresses(self):
        """[(link name, CIDR)] of the addresses the node holds, as Talos assigns them from its config."""
        return network.addresses(self.document, self.mac, self.address, self.held_vip())

    def held_vip(self):
        """The shared IP this node holds, or None. Talos elects its holder among the control plane nodes through
        etcd, so it comes up once the cluster is bootstrapped and only on a node that puts it on an existing link;
        here the running such node with the lowest address holds it."""
        if not self.configured or self.machine_type != 'controlplane' or self.stage != 'running':
            return None
        vip = network.configured_vip(self.document, self.mac)
        if vip is None or not self.cluster.bootstrapped:
            return None
        holders = [node for node in self.cluster.nodes() if node.stage == 'running'
                   and node.machine_type == 'controlplane' and network.configured_vip(node.document, node.mac) == vip]
        holder = min(holders, key=lambda node: ipaddress.ip_address(node.address))
        return vip if holder is self else None

    def _resources_hostname(self):
        return [{'metadata': self._metadata('hostname', 'hostname'),
                 'spec': {'hostname': self.hostname, 'domainname': ''}}]

    def _resources_machinestatus(self):
        ready = self.stage == 'running' and (self.cluster.bootstrapped or self.machine_type == 'worker')
        unmet = [] if ready or self.stage == 'maintenance' else [
            {'name': 'etcd', 'reason': 'service "etcd" not ready'}]
        return [{'metadata': self._metadata('machinestatus', 'machine'),
                 'spec': {'stage': self.stage, 'status': {'ready': ready or self.stage == 'maintenance',
                                                          'unmetConditions': unmet}}}]

    async def rpc_EtcdMemberList(self, body):
        self._require('controlplane')
        if self.own_etcd:
            return {'members': [{'id': self.own_etcd, 'hostname': self.hostname,
                                 'peer_urls': ['https://{0}:2380'.format(self.address)],
                                 'client_urls': ['https://{0}:2379'.format(self.address)], 'is_learner': False}]}
        if self.address not in self.cluster.etcd:
            raise RpcError('Unavailable', 'etcd is not running on this node')
        nodes = self.fleet.nodes_by_address()
        return {'members': [{'id': member, 'hostname': nodes[address].hostname if address in nodes else address,
                             'peer_urls': ['https://{0}:2380'.format(address)],
                             'client_urls': ['https://{0}:2379'.format(address)], 'is_learner': False}
                            for address, member in sorted(self.cluster.etcd.items())]}

    def _require_etcd_api(self, api_name):
        """The etcd APIs answer on control plane nodes only (checkControlplaneService)."""
        self._require()
        if self.machine_type != 'controlplane':
            raise RpcError('Unimplemented', '{0} is only available on control plane nodes'.format(api_name))

    async def _etcd_data(self, failure):
        """The snapshot of this node's etcd member; `failure` prefixes the error when etcd is not running here."""
        cluster = self.cluster
        if self.address not in cluster.etcd or not cluster.kube_running():
            raise RpcError('Unknown', '{0}: {1}'.format(failure, ETCD_DOWN))
        try:
            return await cluster.snapshot()
        except (ClientError, OSError) as exc:
            raise RpcError('Unknown', '{0}: {1}'.format(failure, exc)) from None

    async def rpc_EtcdSnapshot(self, body):
        self._require_etcd_api('etcd snapshot')
        data = await self._etcd_data('failed reading etcd snapshot')
        return {'data': base64.b64encode(data).decode()}

    async def rpc_EtcdRecover(self, body):
        self._require_etcd_api('etcd recover')
        self.recovery_snapshot = base64.b64decode(body.get('data') or '')
        return {}

    async def rpc_EtcdStatus(self, body):
        self._require_etcd_api('etcd status')
        data = await self._etcd_data('failed to query etcd status')
        found = snapshot.status(data)
        cluster = self.cluster
        leader = cluster.etcd.get(cluster.kube_node.address) or min(cluster.etcd.values())
        return {'member_status': {
            'member_id': cluster.etcd[self.address], 'protocol_version': ETCD_VERSION, 'db_size': len(data),
            'db_size_in_use': found['total_size'], 'leader': leader, 'raft_index': found['revision'] + 1,
            'raft_term': 2, 'raft_applied_index': found['revision'] + 1, 'is_learner': False,
            'storage_version': ETCD_VERSION.rsplit('.', 1)[0] + '.0', 'errors': []}}

    async def rpc_EtcdRemoveMember(self, body):
        self._require('controlplane')
        wanted = str(body.get('member', ''))
        for address, member in list(self.cluster.etcd.items()):
            if member == wanted or self.fleet.nodes_by_address().get(address, self).hostname == wanted:
                del self.cluster.etcd[address]
                return {}
        raise RpcError('Unknown', 'etcdserver: member not found')

    async def rpc_Reset(self, body):
        labels = body.get('system_labels_to_wipe') or []
        unknown = sorted(set(labels) - {'STATE', 'EPHEMERAL', 'META'})
        if unknown:
            raise RpcError('InvalidArgument', 'failed to reset: unknown system partition label(s) {0}'.format(
                ', '.join(unknown)))
        if body.get('wipe_mode', 'all') not in ('all', 'system-disk', 'user-disks'):
            raise RpcError('InvalidArgument', 'unknown wipe mode {0!r}'.format(body.get('wipe_mode')))
        # The config lives in STATE on the system disk: user disks alone, or labels without STATE, keep it.
        wipe_state = (not labels or 'STATE' in labels) and body.get('wipe_mode', 'all') != 'user-disks'
        # EPHEMERAL (/var: etcd's data, an uploaded snapshot, /var/lib/longhorn) is on the system disk too.
        wipe_ephemeral = (not labels or 'EPHEMERAL' in labels) and body.get('wipe_mode', 'all') != 'user-disks'
        if self.configured:
            cluster = self.cluster
            if body.get('graceful', True) and self.machine_type == 'controlplane' and \
                    list(cluster.etcd) == [self.address]:
                raise RpcError('FailedPrecondition', '1 error occurred:\n\t* etcd: refusing to leave the etcd '
                               'cluster as its last member, use --graceful=false\n')
            if wipe_ephemeral:
                shutil.rmtree(cluster.longhorn_disk(self.hostname), ignore_errors=True)
            await cluster.forget(self)
            if not cluster.etcd:
                await cluster.stop_kube()
                cluster.kube_node = None
                cluster.bootstrapped = False
                cluster.etcd.clear()
        if wipe_state:
            self.config_text = self.staged_text = self.own_etcd = None
        if wipe_ephemeral:
            self.own_etcd = self.recovery_snapshot = None
            self.etcd_data_left = False
        loop = asyncio.get_running_loop()
        if body.get('reboot'):
            loop.call_soon(lambda: asyncio.ensure_future(self.fleet.reboot(self)))
        else:
            loop.call_soon(lambda: asyncio.ensure_future(self.fleet.shutdown(self)))
        return {'actor_id': str(uuid.uuid4())}

    async def rpc_Upgrade(self, body):
        self._require()
        image = body.get('image') or 'ghcr.io/siderolabs/installer:{0}'.format(TALOS_VERSION)
        tag = image.rsplit(':', 1)[-1] if ':' in image.rsplit('/', 1)[-1] else 'latest'
        documents = list(yaml.safe_load_all(self.config_text))
        machine_document(documents)['machine'].setdefault('install', {})['image'] = image
        self.config_text = '---\n'.join(yaml.safe_dump(doc, sort_keys=False) for doc in documents)
        if tag.startswith('v'):
            self.version = tag
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self.fleet.reboot(self)))
        return {'ack': 'Upgrade request received'}


class _SelfSigned:
    """A stand-in issuer for a self-signed certificate: its subject is the certificate's own name."""

    def __init__(self, subject):
        self.subject = subject


def _duration(seconds):
    seconds = int(float(seconds))
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return '{0}h{1}m{2}s'.format(hours, minutes, rest)
    return '{0}m{1}s'.format(minutes, rest) if minutes else '{0}s'.format(rest)
