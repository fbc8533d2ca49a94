"""The fleet mesh (opt-in: `castle-lab up vault mesh`): fleet machines as namespace hosts with their own sshd,
reachable as root with the lab's key, powered off and on through a control API (castle_lab.mesh)."""

import json
import shutil
import sys
import urllib.request

from ..mesh import hosts
from ..mesh.topology import CONTROL_HOST, CONTROL_PORT, HOSTS, Mesh
from ..process import LabError
from .base import Service
from .openclaw import SSHD, run
from .vault import VaultService

TOOLS = ('ip', 'unshare', 'mount', 'ssh-keygen')


class MeshService(Service):
    name = 'mesh'
    host = CONTROL_HOST
    port = CONTROL_PORT
    ready_timeout = 60.0

    def __init__(self, cfg):
        super().__init__(cfg)
        self.mesh = Mesh(cfg.net)
        self.client_key, self.known_hosts = self.dir / 'id_ed25519', self.dir / 'known_hosts'
        # The mesh's inventory, beside the lab's: inventories/lab-mesh for inventories/lab.
        self.inventory_dir = cfg.inventory.parent / (cfg.inventory.name + '-mesh')

    @property
    def control_url(self):
        return 'http://{0}:{1}'.format(self.address, self.port)

    def prepare(self):
        missing = [tool for tool in (SSHD,) + TOOLS if not shutil.which(tool)]
        if missing:
            raise LabError('mesh: {0} missing: install openssh-server and iproute2 (make setup does)'.format(
                ', '.join(missing)))
        hosts.cleanup(self.mesh)
        keys = [(self.client_key, 'castle-lab-mesh-operator')]
        keys += [(hosts.host_dir(self.dir, host.name) / 'ssh_host_ed25519_key', host.name) for host in HOSTS]
        for key, comment in keys:
            key.parent.mkdir(parents=True, exist_ok=True)
            if not key.exists():
                run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', str(key)])
        self.known_hosts.write_text(''.join('{0},{1} {2}'.format(
            host.name, self.mesh.address(host.name),
            (hosts.host_dir(self.dir, host.name) / 'ssh_host_ed25519_key.pub').read_text()) for host in HOSTS))

    def command(self):
        vault = VaultService(self.cfg)
        return [sys.executable, '-m', 'castle_lab.mesh.hosts', '--state', str(self.dir), '--net', self.cfg.net,
                '--vault', '{0}:{1}'.format(vault.address, vault.port),
                '--listen', '{0}:{1}'.format(self.address, self.port)]

    def stop(self):
        pid = super().stop()
        if shutil.which('ip'):
            hosts.cleanup(self.mesh)  # what a killed supervisor left behind
        return pid

    def hosts(self):
        """The control API's view of the hosts: name, address, role, netns, power and init PID."""
        try:
            with urllib.request.urlopen(self.control_url + '/hosts', timeout=5) as answer:
                return json.load(answer)['hosts']
        except (OSError, ValueError, KeyError) as exc:
            raise LabError('mesh: {0}/hosts: {1}'.format(self.control_url, exc)) from exc

    def ssh_argv(self, host, *remote):
        return ['ssh', '-i', str(self.client_key), '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes',
                '-o', 'StrictHostKeyChecking=yes', '-o', 'UserKnownHostsFile={0}'.format(self.known_hosts),
                '-o', 'ConnectTimeout=5', 'root@' + self.mesh.address(host), *remote]

    def check(self):
        off = [host['name'] for host in self.hosts() if host['power'] != 'on' or not host['init_pid']]
        if off:
            raise LabError('mesh: host(s) not running: {0}'.format(', '.join(off)))
        for host in HOSTS:
            name = run(self.ssh_argv(host.name, 'hostname'), timeout=10).strip()
            if name != host.name:
                raise LabError('mesh: {0} answers ssh as {1!r}'.format(host.name, name))
        return '{0} hosts answer ssh on {1}0/24, control {2}'.format(len(HOSTS), self.mesh.prefix, self.control_url)

    def files(self):
        return dict(super().files(), client_key=self.client_key, known_hosts=self.known_hosts,
                    inventory=self.inventory_dir)

    def env(self):
        return {'CASTLE_LAB_MESH_CONTROL': self.control_url, 'CASTLE_LAB_MESH_INVENTORY': str(self.inventory_dir)}

    def describe(self):
        return dict(super().describe(), mesh=self.mesh.prefix + '0/24', gateway=self.mesh.gateway,
                    bridge=self.mesh.bridge,
                    hosts=[{'name': host.name, 'address': self.mesh.address(host.name), 'role': host.role,
                            'netns': self.mesh.netns(host.name), 'link': self.mesh.veth(host.name),
                            'endpoints': dict(host.endpoints)} for host in HOSTS])
