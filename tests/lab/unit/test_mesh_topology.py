"""The fleet mesh's pure parts: addresses and kernel object names per lab, each host's files, the mesh inventory,
the endpoint's answer, and the mesh being opt-in."""

import asyncio
import http.client
import json
import threading

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from castle_lab import cli, config, inventory
from castle_lab.mesh import endpoint, hosts
from castle_lab.mesh.topology import HOSTS, Mesh
from castle_lab.services import SERVICES


def test_the_mesh_follows_the_lab_network():
    assert Mesh('127.0.10').prefix == '10.200.10.'
    assert Mesh('127.0.81').gateway == '10.200.81.1'
    assert Mesh('127.1.81').prefix == '10.201.81.'
    assert Mesh('127.0.10').address('workstation') == '10.200.10.20'
    assert [host.index for host in HOSTS] == [10, 11, 12, 20]


@pytest.mark.parametrize('net', ['127.0.81', '127.1.81', '127.49.255', '127.255.255'])
def test_interface_names_fit_the_kernel_limit(net):
    mesh = Mesh(net)
    names = [mesh.bridge] + [mesh.veth(host.name) for host in HOSTS] + [mesh.veth(host.name) + 'p' for host in HOSTS]
    assert max(len(name) for name in names) <= 15  # IFNAMSIZ - 1
    assert len(set(names)) == len(names)


def test_labs_on_different_meshes_share_no_kernel_object():
    def objects(mesh):
        return {mesh.bridge} | {f(host.name) for host in HOSTS for f in (mesh.veth, mesh.netns)}
    assert Mesh('127.0.81').netns('railiance00') == 'castle-81-railiance00'
    assert Mesh('127.0.81').bridge == 'cmesh81'
    assert not objects(Mesh('127.0.81')) & objects(Mesh('127.1.81'))
    assert not objects(Mesh('127.0.81')) & objects(Mesh('127.0.82'))


def test_a_hosts_files():
    mesh = Mesh('127.0.81')
    lines = mesh.hosts_file('railiance01').splitlines()
    assert '10.200.81.11\trailiance01' in lines
    assert '10.200.81.20\tworkstation' in lines
    assert lines[-1] == '10.200.81.1\tvault.lab.castle.internal'
    sshd = hosts.sshd_config('10.200.81.11').splitlines()
    for line in ('ListenAddress 10.200.81.11', 'PermitRootLogin prohibit-password', 'PasswordAuthentication no',
                 'HostKey /etc/ssh/ssh_host_ed25519_key'):
        assert line in sshd
    unit = hosts.endpoint_unit('/venv/bin/python', 'blog', 8080)
    assert 'ExecStart=/venv/bin/python -m castle_lab.mesh.endpoint --workload blog --port 8080\n' in unit
    assert 'WantedBy=multi-user.target\n' in unit


def test_the_mesh_inventory(tmp_path, monkeypatch):
    template = tmp_path / 'repo' / 'inventories' / 'lab-mesh'
    (template / 'group_vars').mkdir(parents=True)
    (template / 'mesh.fleet.yml').write_text('machines: [{name: railiance01, address: 10.200.10.11}]\n')
    (template / 'group_vars' / 'all.yml').write_text('---\nurl: "{{ castle_lab_mesh_control }}"\n')
    monkeypatch.setattr(config, 'REPO', tmp_path / 'repo')
    cfg = config.load({'CASTLE_LAB_DIR': str(tmp_path / 'lab'), 'CASTLE_LAB_NET': '127.1.81'})
    services = {name: SERVICES[name](cfg) for name in ('vault', 'mesh')}
    path = inventory.write_mesh(cfg, services)
    assert path == tmp_path / 'lab' / 'inventory-mesh' / 'hosts.yml'
    data = yaml.safe_load(path.read_text())['all']
    assert data['vars']['ansible_user'] == 'root'
    assert data['vars']['castle_lab_mesh_control'] == 'http://127.1.81.8:9100'
    assert data['vars']['castle_lab_mesh_vault_addr'] == 'https://vault.lab.castle.internal:8200'
    assert data['vars']['castle_lab_vault_addr'] == 'https://127.1.81.1:8200'
    assert 'StrictHostKeyChecking=yes' in data['vars']['ansible_ssh_common_args']
    assert data['children']['mesh']['hosts']['railiance01']['ansible_host'] == '10.201.81.11'
    assert data['children']['controller']['hosts']['localhost']['ansible_connection'] == 'local'
    fleet = yaml.safe_load((path.parent / 'mesh.fleet.yml').read_text())
    assert fleet['machines'][0]['address'] == '10.201.81.11'
    assert yaml.safe_load((path.parent / 'group_vars' / 'all.yml').read_text()) == {
        'url': '{{ castle_lab_mesh_control }}'}


def test_the_mesh_starts_only_when_named(tmp_path):
    cfg = config.load({'CASTLE_LAB_DIR': str(tmp_path)})
    services = cli._services  # pylint: disable=protected-access
    assert 'vault' in services(cfg, opt_in=False) and 'mesh' not in services(cfg, opt_in=False)  # `up`
    assert 'mesh' in services(cfg)  # `down`, `status`, `env`
    assert list(services(cfg, ['vault', 'mesh'], opt_in=False)) == ['vault', 'mesh']


def test_an_endpoint_names_its_workload_and_host():
    server = endpoint.http.server.ThreadingHTTPServer(('127.0.0.1', 0), endpoint.handler('blog'))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        conn = http.client.HTTPConnection('127.0.0.1', server.server_address[1], timeout=5)
        conn.request('GET', '/any/path')
        answer = conn.getresponse()
        assert answer.status == 200
        assert json.loads(answer.read()) == {'workload': 'blog', 'host': endpoint.socket.gethostname()}
    finally:
        server.shutdown()
        server.server_close()


class FakeFleet:
    """The hosts' power without namespaces: what the control API asks of the supervisor's Fleet."""

    def __init__(self):
        self.power = {host.name: 'on' for host in HOSTS}

    def power_on(self, name):
        self.power[name] = 'on'

    def power_off(self, name):
        self.power[name] = 'off'

    def describe(self, name):
        return {'name': name, 'power': self.power[name]}


def test_the_control_api_powers_hosts_and_refuses_bad_requests():
    async def exchange():
        fleet = FakeFleet()
        async with TestClient(TestServer(hosts.control_app(fleet))) as client:
            answers = []
            for method, path, body in (('POST', '/hosts/workstation/power', {'state': 'off'}),
                                       ('GET', '/hosts', None),
                                       ('POST', '/hosts/nosuch/power', {'state': 'off'}),
                                       ('POST', '/hosts/workstation/power', {'state': 'reboot'}),
                                       ('POST', '/hosts/workstation/power', ['off'])):
                response = await client.request(method, path, json=body)
                answers.append((response.status, await response.json()))
            return answers

    off, listed, unknown, bad_state, bad_body = asyncio.run(exchange())
    assert off == (200, {'name': 'workstation', 'power': 'off'})
    assert listed[1]['hosts'][-1] == {'name': 'workstation', 'power': 'off'}
    assert unknown[0] == 404 and "no host 'nosuch'" in unknown[1]['error']
    assert bad_state[0] == bad_body[0] == 400
