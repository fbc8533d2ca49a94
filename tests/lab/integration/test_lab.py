"""The lab's six services, checked through the real clients the collection uses."""

import os
import pathlib
import pwd
import signal
import subprocess
import uuid

import hvac
import pytest
import requests
from proxmoxer import ProxmoxAPI, ResourceException

from conftest import LAB_NET, Lab, spare_net
from gitops import git

pytestmark = pytest.mark.lab


def vault_client(env, token=None):
    return hvac.Client(url=env['VAULT_ADDR'], token=token or env['VAULT_TOKEN'], verify=env['VAULT_CACERT'])


def proxmox(env, secret=None):
    user, token_name = env['PROXMOX_TOKEN_ID'].split('!')
    return ProxmoxAPI(env['PROXMOX_HOST'], port=8006, user=user, token_name=token_name,
                      token_value=secret or env['PROXMOX_TOKEN_SECRET'], verify_ssl=env['PROXMOX_CA'])


def test_status_reports_every_service_healthy(lab):
    out = lab.castle_lab('status').stdout
    for service in ('vault', 'factory', 'proxmox', 'git', 'openclaw', 'kube'):
        assert '{0}: ok'.format(service) in out


def test_every_address_is_loopback(env):
    # The session's (under pytest-xdist: this worker's) own network.
    assert env['CASTLE_LAB_NET'] == LAB_NET
    for key in ('VAULT_ADDR', 'PROXMOX_URL', 'CASTLE_GITOPS_URL', 'CASTLE_LAB_FACTORY_URL'):
        assert '//{0}.'.format(env['CASTLE_LAB_NET']) in env[key]
    assert env['CASTLE_OPENCLAW_HOST'].startswith(env['CASTLE_LAB_NET'] + '.')


def test_vault_kv2_write_and_read_with_hvac(env):
    client = vault_client(env)
    path = 'lab-test/{0}'.format(uuid.uuid4().hex)
    client.secrets.kv.v2.create_or_update_secret(path=path, secret={'answer': '42'}, mount_point='kv')
    read = client.secrets.kv.v2.read_secret_version(path=path, mount_point='kv', raise_on_deleted_version=True)
    assert read['data']['data'] == {'answer': '42'}
    assert read['data']['metadata']['version'] == 1


def test_vault_tls_is_verified_against_the_lab_ca(env):
    # The machine's default bundle does not know the lab CA: the lab's TLS is real.
    with pytest.raises(requests.exceptions.SSLError):
        hvac.Client(url=env['VAULT_ADDR'], verify='/etc/ssl/certs/ca-certificates.crt').sys.read_health_status()


def test_vault_rejects_a_wrong_token(env):
    with pytest.raises(hvac.exceptions.Forbidden):
        vault_client(env, token='s.not-a-token').secrets.kv.v2.read_secret_version(
            path='x', mount_point='kv', raise_on_deleted_version=True)


def test_vault_restart_keeps_data_and_unseals(lab, env):
    client = vault_client(env)
    client.secrets.kv.v2.create_or_update_secret(path='lab-test/kept', secret={'kept': 'yes'}, mount_point='kv')
    lab.castle_lab('down', 'vault')
    failed = lab.castle_lab('status', 'vault', check=False)
    assert failed.returncode == 1
    assert 'vault: FAILED' in failed.stdout
    lab.castle_lab('up', 'vault')
    client = vault_client(env)
    assert not client.sys.is_sealed()
    read = client.secrets.kv.v2.read_secret_version(path='lab-test/kept', mount_point='kv',
                                                    raise_on_deleted_version=True)
    assert read['data']['data'] == {'kept': 'yes'}


def test_lab_secrets_are_private(lab):
    for secret in ('vault/init.json', 'vault/root-token', 'proxmox/token', 'ca/ca.key', 'openclaw/id_ed25519',
                   'git/token', 'git/git.key'):
        assert oct(os.stat(lab.dir / secret).st_mode & 0o777) == '0o600', secret


def test_proxmox_token_lists_nodes_and_storage(env):
    api = proxmox(env)
    nodes = sorted(n['node'] for n in api.nodes.get())
    assert nodes and nodes[0] == 'pve1'
    storages = {s['storage'] for s in api.nodes('pve1').storage.get()}
    assert {'local', 'local-lvm'} <= storages
    isos = [c['volid'] for c in api.nodes('pve1').storage('local').content.get(content='iso')]
    assert any(volid.startswith('local:iso/talos-') and volid.endswith('.iso') for volid in isos)
    templates = [vm for vm in api.nodes('pve1').qemu.get() if vm.get('template')]
    assert templates, 'the lab offers a Talos template to clone'


def test_proxmox_refuses_a_wrong_token(env):
    with pytest.raises(ResourceException) as failure:
        proxmox(env, secret='0' * 32).nodes.get()
    assert failure.value.status_code == 401


def test_git_clone_of_the_gitops_url(lab, env, tmp_path):
    assert env['CASTLE_GITOPS_URL'].startswith('https://')
    git(lab, env, 'clone', '--quiet', env['CASTLE_GITOPS_URL'], str(tmp_path / 'gitops'))
    layers = (tmp_path / 'gitops' / 'clusters' / 'lab' / 'layers.yaml').read_text()
    for layer in ('operators', 'configs', 'instances', 'apps'):
        assert 'name: {0}\n'.format(layer) in layers


def test_git_refuses_a_wrong_token(lab, env):
    wrong = '0' * 40
    refused = git(lab, env, 'ls-remote', env['CASTLE_GITOPS_URL'], token=wrong, check=False)
    assert refused.returncode == 128
    assert 'Authentication failed' in refused.stderr
    assert wrong not in refused.stderr + refused.stdout
    anonymous = requests.get(env['CASTLE_GITOPS_URL'] + '/info/refs', params={'service': 'git-upload-pack'},
                             verify=env['CASTLE_GITOPS_CA'], timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers['WWW-Authenticate'] == 'Basic realm="castle-lab git"'


def test_git_push_lands(lab, env, tmp_path):
    checkout, branch = tmp_path / 'gitops', 'lab-test/{0}'.format(uuid.uuid4().hex[:8])
    git(lab, env, 'clone', '--quiet', env['CASTLE_GITOPS_URL'], str(checkout))
    (checkout / 'pushed.txt').write_text('pushed through the lab\'s Git host\n')
    git(lab, env, 'add', 'pushed.txt', cwd=checkout)
    git(lab, env, 'commit', '--quiet', '-m', 'Push a probe', cwd=checkout)
    git(lab, env, 'push', '--quiet', 'origin', 'HEAD:refs/heads/' + branch, cwd=checkout)
    head = git(lab, env, 'rev-parse', 'HEAD', cwd=checkout).stdout.strip()
    remote = git(lab, env, 'ls-remote', env['CASTLE_GITOPS_URL'], 'refs/heads/' + branch).stdout
    assert remote.split() == [head, 'refs/heads/' + branch]
    git(lab, env, 'clone', '--quiet', '--branch', branch, env['CASTLE_GITOPS_URL'], str(tmp_path / 'again'))
    assert (tmp_path / 'again' / 'pushed.txt').read_text() == 'pushed through the lab\'s Git host\n'


def test_git_fetch_with_many_local_commits_sends_gzip_requests(lab, env, tmp_path):
    # Negotiating from a history the server does not know makes git gzip its large requests.
    local = tmp_path / 'local'
    git(lab, env, 'init', '--quiet', str(local))
    script = ''.join('commit refs/heads/local\ncommitter t <t@t> {0} +0000\ndata 2\n{1:02}\n'.format(
        1700000000 + n, n % 100) for n in range(300))
    subprocess.run(['git', 'fast-import', '--quiet'], cwd=local, input=script, text=True, capture_output=True,
                   check=True)
    fetched = git(lab, env, '-c', 'http.postBuffer=1048576', 'fetch', env['CASTLE_GITOPS_URL'], 'main', cwd=local,
                  env_extra={'GIT_TRACE_CURL': '1', 'GIT_TRACE_CURL_NO_DATA': '1'})
    assert 'Content-Encoding: gzip' in fetched.stderr
    assert git(lab, env, 'cat-file', '-t', 'FETCH_HEAD', cwd=local).stdout.strip() == 'commit'


def test_flux_install_manifest_is_a_public_download(lab, env):
    served = requests.get(env['CASTLE_FLUX_MANIFEST_URL'], verify=env['CASTLE_GITOPS_CA'], timeout=10)
    assert served.status_code == 200
    assert served.text == pathlib.Path(env['CASTLE_FLUX_MANIFEST']).read_text()
    assert env['CASTLE_FLUX_MANIFEST_URL'].endswith('/flux/{0}/install.yaml'.format(env['CASTLE_FLUX_VERSION']))
    # kubectl downloads it (trusting the lab CA through SSL_CERT_FILE) and the emulator takes every object.
    try:
        lab.run('kubectl', 'apply', '--server-side', '--force-conflicts', '-f', env['CASTLE_FLUX_MANIFEST_URL'], env=env)
        ready = lab.run('kubectl', '-n', 'flux-system', 'get', 'deployments', '-o',
                        'jsonpath={range .items[*]}{.metadata.name}={.status.availableReplicas} {end}', env=env)
        assert sorted(ready.stdout.split()) == ['helm-controller=1', 'kustomize-controller=1', 'source-controller=1']
    finally:
        lab.run('kubectl', 'delete', '--ignore-not-found', '-f', env['CASTLE_FLUX_MANIFEST'], env=env, check=False)


def test_ansible_ping_and_openclaw_version_over_ssh(lab):
    inventory = str(lab.inventory)
    ping = lab.run('ansible', '-i', inventory, 'openclaw', '-m', 'ansible.builtin.ping')
    assert '"ping": "pong"' in ping.stdout
    version = lab.run('ansible', '-i', inventory, 'openclaw', '-m', 'ansible.builtin.command',
                      '-a', 'openclaw --version')
    assert 'OpenClaw 2026.' in version.stdout


def test_openclaw_node_refuses_unknown_keys(lab, env, tmp_path):
    stranger = tmp_path / 'stranger'
    lab.run('ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(stranger))
    result = lab.run('ssh', '-i', str(stranger), '-p', env['CASTLE_OPENCLAW_PORT'], '-o', 'BatchMode=yes',
                     '-o', 'IdentitiesOnly=yes', '-o', 'UserKnownHostsFile=' + env['CASTLE_OPENCLAW_KNOWN_HOSTS'],
                     '{0}@{1}'.format(env['CASTLE_OPENCLAW_USER'], env['CASTLE_OPENCLAW_HOST']), 'true', check=False)
    assert result.returncode == 255
    assert 'Permission denied' in result.stderr


def test_lab_check_playbook_passes_and_is_idempotent(lab):
    args = ('ansible-playbook', '-i', str(lab.inventory), 'playbooks/lab_check.yml')
    lab.run(*args)
    second = lab.run(*args)
    assert 'changed=0' in second.stdout.split('PLAY RECAP', 1)[1]


@pytest.mark.parametrize('scenario', ['lab_services', 'proxmox_vms'])
def test_molecule_scenario_against_the_lab(lab, scenario):
    # Molecule keeps its scenario directory and a copy of the collection under ANSIBLE_HOME (~/.ansible
    # by default, keyed by the checkout's directory name only): the lab's own, so that runs beside it
    # (other workers, other checkouts) do not share them. SSH keeps its short control socket paths.
    env = dict(lab.env, CASTLE_LAB_INVENTORY=str(lab.inventory), ANSIBLE_HOME=str(lab.dir / 'ansible'),
               ANSIBLE_SSH_CONTROL_PATH_DIR=os.path.expanduser('~/.ansible/cp'))
    result = lab.run('molecule', 'test', '--scenario-name', scenario, env=env, timeout=600)
    assert 'failed=0' in result.stdout + result.stderr


def test_status_names_a_killed_service_and_up_recovers(lab):
    os.killpg(lab.pid('git'), signal.SIGKILL)
    failed = lab.castle_lab('status', check=False)
    assert failed.returncode == 1
    assert 'git: FAILED' in failed.stdout
    assert 'unhealthy: git' in failed.stderr
    lab.castle_lab('up')
    assert lab.castle_lab('status').returncode == 0


def test_up_again_keeps_healthy_services(lab):
    before = {s: lab.pid(s) for s in ('vault', 'factory', 'proxmox', 'git', 'openclaw', 'kube')}
    lab.castle_lab('up')
    assert {s: lab.pid(s) for s in before} == before


def test_bad_invocation_fails_with_one_line(lab):
    result = lab.castle_lab('up', 'nosuch', check=False)
    assert result.returncode != 0
    assert result.stderr.count('\n') == 1
    assert "'nosuch'" in result.stderr


def test_inventory_names_secrets_without_holding_them(lab):
    text = (lab.inventory / 'hosts.yml').read_text()
    assert (lab.dir / 'proxmox' / 'token').read_text().strip() not in text
    assert (lab.dir / 'vault' / 'root-token').read_text().strip() not in text
    assert (lab.dir / 'git' / 'token').read_text().strip() not in text


def lab_processes(lab_dir):
    """PIDs of live processes whose command line names this lab's directory."""
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/{0}/cmdline'.format(entry), 'rb') as handle:
                cmdline = handle.read().decode(errors='replace')
            with open('/proc/{0}/stat'.format(entry)) as handle:
                state = handle.read().rsplit(')', 1)[1].split()[0]
        except OSError:
            continue
        if str(lab_dir) in cmdline and state != 'Z':
            found.append(int(entry))
    return found


def test_down_leaves_no_process_alive():
    # A lab of its own beside the session's (127.1.20 beside the default 127.0.20; the workers' labs take
    # 127.0.21 and up), with an OpenClaw user named after the session's network, as unique as it.
    net = spare_net(LAB_NET)
    other = Lab('test-down-' + net, net, 'castle-claw-d' + LAB_NET.split('.')[-1])
    other.wipe()
    try:
        other.castle_lab('up')
        pids = [other.pid(s) for s in ('vault', 'factory', 'proxmox', 'git', 'openclaw', 'kube')]
        # Services may fork helpers (git http-backend does); each recorded PID is among the lab's processes.
        assert set(pids) <= set(lab_processes(other.dir))
        other.run('ansible', '-i', str(other.inventory), 'openclaw', '-m', 'ansible.builtin.ping')
        other.castle_lab('down')
        assert lab_processes(other.dir) == []
        # SSH sessions on the node (ansible's ControlPersist keeps them) end with the lab too.
        uid = pwd.getpwnam(other.env['CASTLE_LAB_OPENCLAW_USER']).pw_uid
        assert not [p for p in os.listdir('/proc') if p.isdigit() and _owned_by(p, uid) and not _is_zombie(int(p))]
        for pid in pids:
            assert not os.path.exists('/proc/{0}/cmdline'.format(pid)) or _is_zombie(pid)
        assert other.castle_lab('status', check=False).returncode == 1
    finally:
        other.wipe()


def _is_zombie(pid):
    try:
        with open('/proc/{0}/stat'.format(pid)) as handle:
            return handle.read().rsplit(')', 1)[1].split()[0] == 'Z'
    except OSError:
        return True


def _owned_by(pid, uid):
    try:
        return os.stat('/proc/{0}'.format(pid)).st_uid == uid
    except OSError:
        return False
