"""The fleet mesh's hosts: namespace hosts with their own sshd, hostname, /etc and loopback endpoints, powered off
and on through the control API, reaching the lab's vault by name; and nothing left behind by `down`."""

import json
import subprocess
import urllib.request
import uuid

import pytest
from castle_lab.process import alive
from conftest import LAB_NET, Lab, running, spare_net, wait_for

HOSTS = ('railiance00', 'railiance01', 'railiance02', 'workstation')


# This module's lab, beside the worker's; a second lab (the mesh only) beside that one.
NET = spare_net(LAB_NET)
SECOND_NET = spare_net(NET)


def mesh_lab(net):
    return Lab('mesh-lab-' + net, net, 'castle-claw-m' + net.split('.')[-1])


@pytest.fixture(scope='module')
def lab():
    yield from running(mesh_lab(NET), 'vault', 'mesh')


@pytest.fixture(scope='module')
def mesh(lab):
    return lab.info('mesh')['services']['mesh']


def by_name(mesh, name):
    return next(host for host in mesh['hosts'] if host['name'] == name)


def ssh(mesh, name, *remote, check=True):
    files = mesh['files']
    argv = ['/usr/bin/ssh', '-i', files['client_key'], '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes',
            '-o', 'StrictHostKeyChecking=yes', '-o', 'UserKnownHostsFile=' + files['known_hosts'],
            '-o', 'ConnectTimeout=3', 'root@' + by_name(mesh, name)['address'], *remote]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if check:
        assert result.returncode == 0, (argv, result.stdout, result.stderr)
    return result


def control(mesh, path, body=None):
    url = 'http://{0}:{1}{2}'.format(mesh['address'], mesh['ports'][0], path)
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as answer:
        return json.load(answer)


def netns_pids(netns):
    return subprocess.run(['ip', 'netns', 'pids', netns], capture_output=True, text=True, check=True).stdout.split()


def kernel_objects(mesh):
    """The network namespaces, links and mounts of a lab's mesh that are on the machine."""
    names = [host['netns'] for host in mesh['hosts']]
    links = [host['link'] for host in mesh['hosts']] + [mesh['bridge']]
    listed = subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True, check=True).stdout.split()
    found = [name for name in names if name in listed]
    shown = [line.split(':')[1].strip().split('@')[0] for line in subprocess.run(
        ['ip', '-o', 'link'], capture_output=True, text=True, check=True).stdout.splitlines()]
    found += [link for link in links if link in shown]
    with open('/proc/self/mountinfo', encoding='utf-8') as mounts:
        found += [line for line in mounts if mesh['dir'] in line or any(name in line for name in names)]
    return found


def test_every_host_answers_ssh_as_root_with_its_own_hostname(mesh):
    assert [host['name'] for host in mesh['hosts']] == list(HOSTS)
    for name in HOSTS:
        assert ssh(mesh, name, 'id -un; hostname').stdout.split() == ['root', name]


def test_etc_changes_stay_on_their_host(mesh):
    user = 'castle-t' + uuid.uuid4().hex[:8]
    ssh(mesh, 'railiance00', 'useradd', '--system', user)
    assert ssh(mesh, 'railiance00', 'id', user).returncode == 0
    for name in HOSTS[1:]:
        assert ssh(mesh, name, 'id', user, check=False).returncode == 1
    assert subprocess.run(['id', user], capture_output=True, check=False).returncode == 1


def test_a_host_reaches_another_hosts_sshd_but_not_its_loopback_endpoints(mesh):
    target = by_name(mesh, 'railiance01')
    scanned = ssh(mesh, 'workstation', 'ssh-keyscan', '-T', '5', '-t', 'ed25519', target['address']).stdout.split()
    with open(mesh['files']['known_hosts'], encoding='utf-8') as known:
        expected = next(line.split()[1:3] for line in known if line.startswith('railiance01,'))
    assert scanned[1:3] == expected
    for port in target['endpoints'].values():
        refused = ssh(mesh, 'workstation', 'curl', '-sS', '-m', '5', 'http://{0}:{1}/'.format(target['address'], port),
                      check=False)
        assert refused.returncode == 7, refused.stderr  # curl: failed to connect


def test_each_endpoint_answers_on_its_hosts_loopback(mesh):
    for host in mesh['hosts']:
        for workload, port in host['endpoints'].items():
            answer = subprocess.run(['ip', 'netns', 'exec', host['netns'], 'curl', '-sS', '-m', '5',
                                     'http://127.0.0.1:{0}/any/path'.format(port)], capture_output=True, text=True,
                                    check=True).stdout
            assert json.loads(answer) == {'workload': workload, 'host': host['name']}


def test_hosts_reach_the_vault_by_name_with_the_lab_ca(lab, mesh):
    health = ssh(mesh, 'railiance02', 'curl', '-sS', '--cacert', str(lab.dir / 'ca' / 'ca.crt'),
                 'https://vault.lab.castle.internal:8200/v1/sys/health').stdout
    assert json.loads(health)['sealed'] is False


def test_power_off_kills_the_host_and_power_on_boots_its_disk_again(mesh):
    host = by_name(mesh, 'railiance01')
    marker = uuid.uuid4().hex
    ssh(mesh, 'railiance01', 'echo {0} > /root/marker'.format(marker))
    before = next(h for h in control(mesh, '/hosts')['hosts'] if h['name'] == 'railiance01')
    off = control(mesh, '/hosts/railiance01/power', {'state': 'off'})
    assert (off['power'], off['init_pid']) == ('off', None)
    assert netns_pids(host['netns']) == []
    assert not alive(before['init_pid'])
    assert ssh(mesh, 'railiance01', 'true', check=False).returncode == 255
    on = control(mesh, '/hosts/railiance01/power', {'state': 'on'})
    assert on['power'] == 'on' and on['init_pid'] not in (None, before['init_pid'])
    wait_for(lambda: ssh(mesh, 'railiance01', 'true', check=False).returncode == 0, 'railiance01 sshd', timeout=20)
    assert ssh(mesh, 'railiance01', 'cat /root/marker').stdout.strip() == marker
    for workload, port in host['endpoints'].items():
        answer = wait_for(lambda port=port: ssh(mesh, 'railiance01', 'curl', '-sf', 'http://127.0.0.1:{0}/'.format(port),
                                                check=False).stdout, workload, timeout=20)
        assert json.loads(answer)['workload'] == workload


def test_a_second_lab_coexists_and_down_leaves_nothing_even_after_a_crash(mesh):
    other = mesh_lab(SECOND_NET)
    other.wipe()
    other.castle_lab('up', 'mesh')
    try:
        second = other.info('mesh')['services']['mesh']
        assert len(kernel_objects(second)) == 9 + len(HOSTS)  # namespaces, links and the bridge; nsfs mounts
        assert not set(kernel_objects(second)) & set(kernel_objects(mesh))
        assert ssh(second, 'workstation', 'hostname').stdout.strip() == 'workstation'
        # A killed supervisor leaves its hosts running: `up` clears them away and starts afresh, `down` too.
        subprocess.run(['kill', '-KILL', str(other.pid('mesh'))], check=True)
        other.castle_lab('up', 'mesh')
        assert ssh(second, 'workstation', 'hostname').stdout.strip() == 'workstation'
        subprocess.run(['kill', '-KILL', str(other.pid('mesh'))], check=True)
    finally:
        other.castle_lab('down')
    assert kernel_objects(second) == []
    assert ssh(mesh, 'workstation', 'hostname').stdout.strip() == 'workstation'
