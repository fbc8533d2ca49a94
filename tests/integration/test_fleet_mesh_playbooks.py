"""playbooks/fleet_mesh.yml and playbooks/workstation_off.yml against the lab's fleet machines (`castle-lab up vault
mesh`: each machine a host of its own with its own sshd and service manager, OpenBao reached through the mesh):
every tunnel of inventories/lab-mesh gets its unit and carries requests to its workload, and each principal may
forward only its own; a killed ssh comes back within 10 s; an expired certificate is renewed and the tunnel
reconnects; the drill passes with the workstation off; a port clash changes nothing; check mode changes nothing on
any host (nor in Vault); a tunnel removed from the fleet file loses its unit, and Vault its actor's SSH role and its
machine's AppRole and policy, while a new critical one on the workstation is only a warning; a second run changes
nothing; the drill then fails naming that tunnel. The machines' secret IDs and private keys join the secret
markers, so a log that shows one fails the session.

The tests share one lab and run in file order."""

import base64
import json
import shutil
import struct
import subprocess
import time
import urllib.request

import hvac
import pytest
import yaml

from ansible_collections.ephemeral.castle.plugins.module_utils import fleet, fleet_mesh
from conftest import LAB_NET, SECRET_MARKERS, Lab, running, spare_net, wait_for
from harness import play_recap

pytestmark = pytest.mark.lab

MACHINES = ['railiance00', 'railiance01', 'railiance02', 'workstation']
# The renewal timer looks every few seconds here, so an expired certificate is replaced at once.
FAST = ['-e', 'fleet_tunnels_renew_every=3', '-e', 'fleet_tunnels_renew_boot=2']


@pytest.fixture(scope='module')
def lab():
    """A lab of this module's own with only OpenBao and the mesh, on the network beside the worker's."""
    net = spare_net(LAB_NET)
    yield from running(Lab('mesh-lab-' + net, net, 'castle-claw-m' + net.split('.')[-1]), 'vault', 'mesh')


@pytest.fixture(scope='module')
def env(lab):
    return lab.client_env()


@pytest.fixture(scope='module')
def inventory(lab, tmp_path_factory):
    """A copy of the lab's mesh inventory the tests may change: its fleet file is rewritten per test."""
    source = lab.info('mesh')['services']['mesh']['files']['inventory']
    copy = tmp_path_factory.mktemp('mesh-inventory') / 'inventory'
    shutil.copytree(source, copy)
    return copy


def fleet_file(inventory):
    return inventory / 'mesh.fleet.yml'


def edit_fleet(inventory, change):
    path = fleet_file(inventory)
    doc = yaml.safe_load(path.read_text())
    change(doc['fleet'])
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def playbook(lab, env, inventory, name, *extra):
    return lab.run('ansible-playbook', '-i', str(inventory), 'playbooks/' + name, *extra, env=env, check=False,
                   timeout=900)


CONTROL = {}


def control(lab, path, body=None):
    """An answer of the mesh's control API (its address read once per lab)."""
    if lab.dir not in CONTROL:
        CONTROL[lab.dir] = lab.info('mesh')['services']['mesh']['env']['CASTLE_LAB_MESH_CONTROL']
    url = CONTROL[lab.dir] + path
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method='GET' if body is None else 'POST',
                                     headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)


def on(lab, machine, *argv, check=True, stdin=None):
    """argv run inside a machine (its network, mount and host name), as its root."""
    pid = next(h['init_pid'] for h in control(lab, '/hosts')['hosts'] if h['name'] == machine)
    result = subprocess.run(['nsenter', '--target', str(pid), '--mount', '--net', '--uts', '--'] + list(argv),
                            capture_output=True, text=True, timeout=60, input=stdin, check=False)
    if check and result.returncode != 0:
        pytest.fail('{0} on {1} exited {2}: {3}'.format(argv, machine, result.returncode, result.stderr))
    return result


def request(lab, machine, port):
    """The body of one GET to 127.0.0.1:port from inside a machine, or None when nothing answers."""
    code = ('import urllib.request,sys\ntry:\n print(urllib.request.urlopen("http://127.0.0.1:{0}/",timeout=3)'
            '.read().decode())\nexcept Exception as e:\n sys.exit(str(e))').format(port)
    result = on(lab, machine, 'python3', '-c', code, check=False)
    return result.stdout if result.returncode == 0 else None


def plan(inventory):
    return fleet_mesh.plan(fleet.load_file(str(fleet_file(inventory))))


def unit_state(lab, machine, unit):
    shown = on(lab, machine, 'systemctl', 'show', '-p', 'ActiveState,MainPID,NRestarts', unit).stdout
    return dict(line.split('=', 1) for line in shown.splitlines() if '=' in line)


def mark_secrets(lab):
    """Each machine's AppRole secret ID and its actors' private keys become secret markers."""
    for machine in MACHINES:
        found = on(lab, machine, 'sh', '-c', 'cat /etc/castle-tunnels/approle.json 2>/dev/null; echo; '
                   'cat /var/lib/castle-tunnels/*/id_ed25519 2>/dev/null', check=False).stdout
        for line in found.splitlines():
            if line.startswith('{'):
                SECRET_MARKERS.append(json.loads(line)['secret_id'])
            elif line and not line.startswith('-----'):
                SECRET_MARKERS.append(line.strip())


def vault_holds(env):
    """The fleet's SSH roles, the AppRoles and the ACL policies in the lab's OpenBao."""
    vault = hvac.Client(url=env['VAULT_ADDR'], token=env['VAULT_TOKEN'], verify=env['VAULT_CACERT'])
    return (vault.secrets.ssh.list_roles(mount_point='ssh-fleet')['data']['keys'],
            vault.auth.approle.list_roles(mount_point='approle')['data']['keys'],
            vault.sys.list_acl_policies()['data']['keys'])


def snapshot(lab):
    """What the role manages on every machine: its files (path and content), its users and the state of its units."""
    script = ('for f in $(find /etc/systemd/system /etc/ssh /etc/castle-tunnels /var/lib/castle-tunnels -path "*castle*" '
              '-type f 2>/dev/null | sort); do echo "== $f"; cat "$f"; done; getent passwd | grep castle- | sort; '
              'for u in $(systemctl list-units --all --plain --no-legend "castle-tunnel*" | cut -d" " -f1 | sort); do '
              # A renewal service is a oneshot its timer starts at any moment: only whether it is enabled counts.
              'case $u in castle-tunnel-cert-*.service) echo "$u";; '
              '*) echo "$u $(systemctl is-enabled $u) $(systemctl is-active $u)";; esac; done')
    return {machine: on(lab, machine, 'sh', '-c', script).stdout for machine in MACHINES}


def test_every_tunnel_gets_its_unit_and_carries_requests_to_its_workload(lab, env, inventory):
    run = playbook(lab, env, inventory, 'fleet_mesh.yml', *FAST)
    assert run.returncode == 0, run.stdout[-5000:]
    mark_secrets(lab)
    found = plan(inventory)
    assert len(found['tunnels']) == 5
    for tunnel in found['tunnels']:
        state = unit_state(lab, tunnel['from'], tunnel['unit'])
        assert state['ActiveState'] == 'active', (tunnel['name'], state)
        body = wait_for(lambda t=tunnel: request(lab, t['listen']['machine'], t['listen']['port']),
                        'an answer through ' + tunnel['name'], 15)
        assert json.loads(body)['workload'] == tunnel['workload'], (tunnel['name'], body)
    # The workload's own port answers only on its machine: a request from elsewhere must go through a tunnel.
    assert request(lab, 'railiance01', 8080) is None
    # The actor's key was made on its machine, is its own, and the certificate names its principal only.
    assert on(lab, 'railiance01', 'stat', '-c', '%U %a', '/var/lib/castle-tunnels/gateway/id_ed25519').stdout.split() \
        == ['castle-gateway', '600']
    listed = on(lab, 'railiance01', 'ssh-keygen', '-L', '-f', '/var/lib/castle-tunnels/gateway/id_ed25519-cert.pub').stdout
    assert 'permit-port-forwarding' in listed and 'gateway' in listed and 'permit-pty' not in listed


def test_a_principal_may_forward_only_what_its_tunnels_need(lab):
    """The gateway's certificate logs in on railiance02, but its principals line opens only its tunnels' ports and
    runs no command."""
    key = '/var/lib/castle-tunnels/gateway/id_ed25519'
    address = next(m['address'] for m in control(lab, '/hosts')['hosts'] if m['name'] == 'railiance02')
    ssh = ['ssh', '-F', 'none', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5', '-o', 'IdentitiesOnly=yes',
           '-o', 'UserKnownHostsFile=/var/lib/castle-tunnels/gateway/known_hosts', '-i', key,
           '-o', 'CertificateFile={0}-cert.pub'.format(key)]
    allowed = on(lab, 'railiance01', *ssh, '-W', '127.0.0.1:8080', 'castle-tunnel@' + address,
                 stdin='GET / HTTP/1.0\r\n\r\n', check=False)
    assert '"blog"' in allowed.stdout, allowed.stderr
    other = on(lab, 'railiance01', *ssh, '-W', '127.0.0.1:22', 'castle-tunnel@' + address, stdin='', check=False)
    assert other.returncode != 0 and 'prohibited' in other.stderr, other.stderr
    shell = on(lab, 'railiance01', *ssh, 'castle-tunnel@' + address, 'id', check=False)
    assert shell.returncode != 0 and 'uid=' not in shell.stdout


def test_a_killed_ssh_comes_back_within_ten_seconds(lab, env, inventory):
    unit = 'castle-tunnel-gateway-runtime.service'
    before = unit_state(lab, 'railiance01', unit)
    killed_at = time.monotonic()
    subprocess.run(['kill', '-9', before['MainPID']], check=True)

    def back():
        now = unit_state(lab, 'railiance01', unit)
        return now['MainPID'] not in ('0', before['MainPID']) and request(lab, 'railiance01', 18080)
    body = wait_for(back, 'the tunnel back after its ssh was killed', 10)
    assert json.loads(body)['workload'] == 'blog'
    assert time.monotonic() - killed_at < 10
    assert int(unit_state(lab, 'railiance01', unit)['NRestarts']) > int(before['NRestarts'])


def valid_before(text):
    blob = base64.b64decode(text.split()[1])
    at = 0
    for field in range(5):  # type, nonce, key; then, after serial and type, key id and principals
        at += 4 + struct.unpack('>I', blob[at:at + 4])[0] + (12 if field == 2 else 0)
    return struct.unpack('>QQ', blob[at:at + 16])[1]


def test_an_expired_certificate_is_renewed_and_the_tunnel_reconnects(lab, env):
    """A certificate signed for two seconds takes the place of the gateway's; once it has expired the tunnel's ssh
    is killed, and cannot log in again until the renewal timer has replaced it."""
    cert = '/var/lib/castle-tunnels/gateway/id_ed25519-cert.pub'
    public = on(lab, 'railiance01', 'cat', '/var/lib/castle-tunnels/gateway/id_ed25519.pub').stdout
    vault = hvac.Client(url=env['VAULT_ADDR'], token=env['VAULT_TOKEN'], verify=env['VAULT_CACERT'])
    short = vault.write('ssh-fleet/sign/gateway', public_key=public, valid_principals='gateway', ttl='2s')
    text = short['data']['signed_key']
    on(lab, 'railiance01', 'sh', '-c', 'cat > {0}.new && mv {0}.new {0}'.format(cert), stdin=text)
    wait_for(lambda: time.time() > valid_before(text) + 1, 'the short certificate to expire', 10)
    unit = 'castle-tunnel-gateway-runtime.service'
    subprocess.run(['kill', '-9', unit_state(lab, 'railiance01', unit)['MainPID']], check=True)

    def renewed_and_back():
        current = on(lab, 'railiance01', 'cat', cert).stdout
        return valid_before(current) > time.time() + 600 and request(lab, 'railiance01', 18080)
    assert json.loads(wait_for(renewed_and_back, 'a renewed certificate and the tunnel back', 30))['workload'] == 'blog'


def test_the_drill_passes_with_the_workstation_off(lab, env, inventory, tmp_path):
    report = tmp_path / 'drill.json'
    run = playbook(lab, env, inventory, 'workstation_off.yml', '-e', 'workstation_off_report=' + str(report))
    assert run.returncode == 0, run.stdout[-5000:]
    found = json.loads(report.read_text())
    assert found['workstations'] == ['workstation']
    assert sorted(p['path'] for p in found['paths']) == ['gateway-callback', 'gateway-identity', 'gateway-runtime']
    assert all(p['answered'] and p['latency_ms'] is not None for p in found['paths']), found
    assert 'all 3 critical paths answered' in run.stdout
    # The workstation is back: its sshd answers and its own tunnel carries requests again.
    assert wait_for(lambda: request(lab, 'workstation', 18006), 'the workstation\'s tunnel after the drill', 20)


def test_a_port_clash_changes_nothing(lab, env, inventory):
    def clash(fleet):
        fleet['tunnels'].append(dict(fleet['tunnels'][0], name='gateway-twin', remote_port=8081))
    original = fleet_file(inventory).read_text()
    edit_fleet(inventory, clash)
    try:
        before = snapshot(lab)
        run = playbook(lab, env, inventory, 'fleet_mesh.yml', *FAST)
        assert run.returncode != 0
        assert '[tunnel-port-clash] tunnels gateway-runtime and gateway-twin both listen on railiance01 port 18080' \
            in run.stdout
        assert snapshot(lab) == before
    finally:
        fleet_file(inventory).write_text(original)


def next_fleet(fleet):
    """The fleet file's next state: the archive's tunnel gone, and the reports fed through a critical tunnel from
    the workstation, allowed (a warning) while the reports have not moved."""
    fleet['tunnels'] = [t for t in fleet['tunnels'] if t['name'] != 'archive-export']
    fleet['tunnels'].append({'name': 'reports-feed', 'from': 'workstation', 'to': 'railiance02', 'direction': 'reverse',
                             'actor': 'reports', 'critical': True, 'workload': 'reports', 'local_port': 9090,
                             'remote_port': 29090, 'check_expect': 'reports'})


def test_check_mode_changes_nothing_on_any_host(lab, env, inventory):
    original = fleet_file(inventory).read_text()
    edit_fleet(inventory, next_fleet)
    try:
        before, held = snapshot(lab), vault_holds(env)
        run = playbook(lab, env, inventory, 'fleet_mesh.yml', '--check', '--diff', *FAST)
        assert run.returncode == 0, run.stdout[-5000:]
        recap = play_recap(run)
        assert recap['railiance00']['changed'] > 0 and recap['workstation']['changed'] > 0, recap
        assert '+ExecStart=/usr/bin/ssh' in run.stdout  # the new unit, shown as a diff
        assert snapshot(lab) == before and vault_holds(env) == held
    finally:
        fleet_file(inventory).write_text(original)


def test_a_removed_tunnel_loses_its_unit_and_a_new_one_on_the_workstation_is_only_a_warning(lab, env, inventory):
    assert 'castle-tunnel-archive-export.service' in snapshot(lab)['railiance00']
    edit_fleet(inventory, next_fleet)
    run = playbook(lab, env, inventory, 'fleet_mesh.yml', *FAST)
    assert run.returncode == 0, run.stdout[-5000:]
    assert 'critical tunnel reports-feed starts on workstation workstation (allowed until workload reports completes ' \
        'wave 4)' in run.stdout + run.stderr
    mark_secrets(lab)
    after = snapshot(lab)
    assert 'castle-tunnel' not in after['railiance00'] and 'castle-archive' not in after['railiance00']
    principals = on(lab, 'railiance02', 'cat', '/etc/ssh/castle-principals/castle-tunnel').stdout
    assert ' archive' not in principals and principals.rstrip().endswith(' reports')
    assert request(lab, 'railiance02', 28090) is None
    assert 'reports' in wait_for(lambda: request(lab, 'railiance02', 29090), 'the reports through their new tunnel', 20)
    # In Vault: the actor's SSH role, and the AppRole and policy of railiance00, which no tunnel starts on now.
    roles, approles, policies = vault_holds(env)
    assert 'archive' not in roles and {'gateway', 'reports'} <= set(roles), roles
    assert 'castle-tunnel-railiance00' not in approles + policies and 'castle-tunnel-workstation' in approles
    assert 'castle-tunnel-workstation' in policies


def test_a_second_run_changes_nothing(lab, env, inventory):
    """After the removal and the new tunnel: every unit in place, nothing to change on any machine."""
    run = playbook(lab, env, inventory, 'fleet_mesh.yml', *FAST)
    assert run.returncode == 0, run.stdout[-5000:]
    recap = play_recap(run)
    assert all(counts['changed'] == 0 for counts in recap.values()), recap
    assert set(MACHINES) <= set(recap)


def test_the_drill_fails_naming_a_critical_tunnel_still_on_the_workstation(lab, env, inventory):
    drill = playbook(lab, env, inventory, 'workstation_off.yml')
    assert drill.returncode != 0
    assert 'stopped answering: reports-feed' in drill.stdout
    assert wait_for(lambda: request(lab, 'railiance02', 29090), 'the reports feed after the workstation is back', 30)
