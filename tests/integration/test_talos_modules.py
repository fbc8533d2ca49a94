"""The Talos modules run ad hoc through Ansible, as `ansible localhost -m` would.

talos_secrets (and talos_kubeconfig's Vault copy) run against the session lab's Vault, read back with hvac.
The modules that drive talosctl run against FakeTalosctl (talos_fake.py): a script this test writes into
a temporary directory, which records every argv and answers with the CLI reference's documented outputs.
"""

import os
import pathlib
import shutil
import stat
import subprocess
import tempfile
import uuid

import hvac
import pytest
import yaml
from harness import play_recap, run_module, run_playbook
from talos_fake import FakeTalosctl

from conftest import REPO

CP, WORKER, SPARE = '127.0.69.51', '127.0.69.52', '127.0.69.53'
CLUSTER = dict(cluster_name='lab', cluster_endpoint='https://10.0.40.10:6443')


@pytest.fixture
def fake(tmp_path):
    (tmp_path / 'bin').mkdir()
    return FakeTalosctl(tmp_path / 'bin', [CP, WORKER, SPARE])


@pytest.fixture
def talos_env(fake):
    """Environment for the talosctl-driving modules: the fake's state, a private TMPDIR to check for leftovers.
    The TMPDIR is a short one of its own: Ansible's RPC host listens on a Unix socket under it, and a path
    under tmp_path (longer under pytest-xdist) can pass the 107 characters a socket path may have."""
    tmp = tempfile.mkdtemp(prefix='talos-modules-')
    yield dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), TMPDIR=tmp, **fake.environ)
    shutil.rmtree(tmp, ignore_errors=True)


def talos(env, fake, name, **args):
    args.setdefault('binary_path', str(fake.path))
    return run_module(env, name, **args)


def leftovers(env):
    return [p for p in os.listdir(env['TMPDIR']) if p.startswith('castle-talos-')]


def bundle_for_tests(fake, env):
    """A bundle made by the fake's gen secrets, through talosctl itself."""
    out = pathlib.Path(env['TMPDIR']) / 'bundle.yaml'
    subprocess.run([str(fake.path), 'gen', 'secrets', '--output-file', str(out)], env=env, check=True)
    text = out.read_text()
    out.unlink()
    return text


def render(env, fake, bundle, **args):
    params = dict(CLUSTER, secrets=bundle, role='controlplane', hostname='cp-1', address='10.0.40.11/24',
                  gateway='10.0.40.1', vip='10.0.40.10', mac='BC:24:11:00:00:01', install_disk='/dev/vda')
    params.update(args)
    return talos(env, fake, 'talos_machine_config', **params)


# --------------------------------------------------------------- machine config

def test_machine_config_merges_cluster_role_and_node_patches_in_order(talos_env, fake):
    bundle = bundle_for_tests(fake, talos_env)
    made = render(talos_env, fake, bundle,
                  patches=[{'machine': {'certSANs': ['lab.example']}, 'cluster': {'network': {'cni': {'name': 'none'}}}}],
                  role_patches={'controlplane': [{'cluster': {'allowSchedulingOnControlPlanes': True}}],
                                'worker': [{'machine': {'nodeLabels': {'role': 'worker'}}}]},
                  node_patches=['- op: add\n  path: /machine/nodeLabels\n  value: {rack: r1}\n'])
    assert made.rc == 0, made.result
    assert made.changed is False
    config = yaml.safe_load(made.result['config'])
    machine, cluster = config['machine'], config['cluster']
    assert machine['network']['hostname'] == 'cp-1'
    # The node's device is the one with its MAC: Talos names a Proxmox virtio NIC ens18, not eth0.
    assert machine['network']['interfaces'] == [{'deviceSelector': {'hardwareAddr': 'bc:24:11:00:00:01'},
                                                 'addresses': ['10.0.40.11/24'], 'routes': [
        {'network': '0.0.0.0/0', 'gateway': '10.0.40.1'}], 'vip': {'ip': '10.0.40.10'}}]
    assert machine['install']['disk'] == '/dev/vda' and machine['certSANs'] == ['lab.example']
    assert machine['nodeLabels'] == {'rack': 'r1'}
    assert cluster['allowSchedulingOnControlPlanes'] is True and cluster['network']['cni'] == {'name': 'none'}
    commands = [c[:2] for c in fake.calls]
    assert commands[1:] == [['gen', 'config'], ['machineconfig', 'patch'], ['validate', '--config']]
    # talosctl merges: the cluster's, the role's, the node's own settings, then the node's patches, in order.
    assert fake.calls[2].count('--patch') == 4
    assert fake.calls[3][-2:] == ['--mode', 'metal']
    again = render(talos_env, fake, bundle)
    assert yaml.safe_load(again.result['config'])['cluster']['ca'] == cluster['ca']
    assert leftovers(talos_env) == []


def test_machine_config_names_bad_input(talos_env, fake):
    bundle = bundle_for_tests(fake, talos_env)
    bad = render(talos_env, fake, bundle, address='10.0.40.11')
    assert bad.rc != 0 and "address '10.0.40.11' needs a prefix length" in bad.result['msg']
    worker_vip = render(talos_env, fake, bundle, role='worker')
    assert worker_vip.rc != 0 and 'vip is for control-plane nodes' in worker_vip.result['msg']
    bad_patch = render(talos_env, fake, bundle, patches=[[{'op': 'remove', 'path': '/machine/nothing'}]])
    assert bad_patch.rc != 0 and bad_patch.result['msg'].startswith(
        'talosctl machineconfig patch failed (rc=1): failure applying rfc6902 patches to talos machine config: ')
    not_a_patch = render(talos_env, fake, bundle, node_patches=['plain words'])
    assert not_a_patch.rc != 0 and not_a_patch.result['msg'] == (
        'node_patches: patch 1: neither a strategic merge patch (YAML mappings) nor a JSON patch (a list of operations)')
    no_device = render(talos_env, fake, bundle, mac=None)
    assert no_device.rc != 0 and 'cp-1: address, gateway and vip go on a network device' in no_device.result['msg']
    bad_mac = render(talos_env, fake, bundle, mac='bc:24:11:00:00')
    assert bad_mac.rc != 0 and "mac 'bc:24:11:00:00' of cp-1 is not a MAC address" in bad_mac.result['msg']
    named = render(talos_env, fake, bundle, interface='bond0')
    assert yaml.safe_load(named.result['config'])['machine']['network']['interfaces'][0]['interface'] == 'bond0'
    endpoint = render(talos_env, fake, bundle, cluster_endpoint='10.0.40.10:6443')
    assert endpoint.rc != 0 and 'cluster_endpoint' in endpoint.result['msg']


def test_validation_failure_carries_talosctls_answer(talos_env, fake):
    bundle = bundle_for_tests(fake, talos_env)
    bad = render(talos_env, fake, bundle, address=None, vip=None, gateway=None,
                 node_patches=[{'machine': {'network': {'interfaces': [{'interface': 'eth1', 'addresses': ['10.0.40.300/24']}]}}}])
    assert bad.rc != 0
    assert bad.result['msg'] == ('talosctl validate failed (rc=1): * [networking.os.device.addresses] "eth1": '
                                 'invalid CIDR address: 10.0.40.300/24')
    assert bad.result['rc'] == 1 and bad.result['command'].split()[1:3] == ['validate', '--config']
    assert leftovers(talos_env) == []


# --------------------------------------------------------- apply to bootstrap

def test_the_cluster_flow_apply_bootstrap_kubeconfig_health(talos_env, fake, tmp_path):
    bundle = bundle_for_tests(fake, talos_env)
    config = render(talos_env, fake, bundle).result['config']
    worker = render(talos_env, fake, bundle, role='worker', hostname='worker-1', address='10.0.40.21/24',
                    vip=None).result['config']
    start = len(fake.calls)

    # A node in maintenance mode takes auto, reboot and try only, in a dry run too: no-reboot goes as auto.
    predicted = talos(talos_env, fake, 'talos_apply', check=True, config=config, nodes=[CP], mode='no-reboot')
    assert predicted.rc == 0 and predicted.changed, predicted.result
    assert fake.state['nodes'][CP]['config'] is None
    assert '--dry-run' in fake.calls[-1] and '--insecure' in fake.calls[-1]
    assert fake.calls[-1][fake.calls[-1].index('--mode') + 1] == 'auto' and predicted.result['mode'] == 'auto'
    assert predicted.result['dry_run'] == ('Dry run summary:\nNode is running in maintenance mode and does not have a '
                                           'config yet.\n')

    applied = talos(talos_env, fake, 'talos_apply', config=config, nodes=[CP], talosconfig='/nonexistent/talosconfig',
                    mode='staged')
    assert applied.rc == 0 and applied.changed, applied.result
    assert applied.result['node_state'] == 'maintenance' and applied.result['mode'] == 'auto'
    assert applied.result['answer'] == ''
    assert fake.calls[-1][0] == 'apply-config' and '--insecure' in fake.calls[-1]
    assert '--talosconfig' not in fake.calls[-1]
    assert fake.state['nodes'][CP]['config'] == config

    again = talos(talos_env, fake, 'talos_apply', config=config, nodes=[CP])
    assert again.rc == 0 and again.changed is False
    assert again.result['node_state'] == 'configured'
    assert fake.calls[-1][:2] == ['get', 'machineconfig']

    changed = render(talos_env, fake, bundle, hostname='cp-one').result['config']
    # The node's MachineConfig `persistent` (staged, on disk) differs; the one it runs, `v1alpha1`, does not.
    nodes = fake.state['nodes']
    nodes[CP]['staged'] = changed
    fake.update(nodes=nodes)
    steady = talos(talos_env, fake, 'talos_apply', config=config, nodes=[CP])
    assert steady.rc == 0 and steady.changed is False, steady.result
    nodes[CP].pop('staged')
    fake.update(nodes=nodes)
    shown = talos(talos_env, fake, 'talos_apply', check=True, diff=True, config=changed, nodes=[CP], mode='no-reboot')
    assert shown.changed and '--dry-run' in fake.calls[-1] and '--insecure' not in fake.calls[-1]
    assert shown.result['dry_run'].startswith('Dry run summary:\nApplied configuration without a reboot')
    lines = shown.stdout.splitlines()
    assert [line for line in lines if line.startswith('-') and line.endswith('hostname: cp-1')]
    assert [line for line in lines if line.startswith('+') and line.endswith('hostname: cp-one')]
    assert fake.state['nodes'][CP]['config'] == config

    compared = render(talos_env, fake, bundle, hostname='cp-one', compare_to_node=True, nodes=[CP])
    assert compared.result['differs'] is True and compared.result['node_state'] == 'configured'
    assert render(talos_env, fake, bundle, compare_to_node=True, nodes=[CP]).result['differs'] is False

    assert talos(talos_env, fake, 'talos_apply', config=worker, nodes=[WORKER]).changed
    relabelled = render(talos_env, fake, bundle, role='worker', hostname='worker-one', address='10.0.40.21/24',
                        vip=None).result['config']
    reapplied = talos(talos_env, fake, 'talos_apply', config=relabelled, nodes=[WORKER], mode='no-reboot')
    assert reapplied.result['answer'] == 'Applied configuration without a reboot\n', reapplied.result

    booted = talos(talos_env, fake, 'talos_bootstrap', nodes=[CP])
    assert booted.rc == 0 and booted.changed and booted.result['members'] == []
    assert fake.state['bootstrapped'] is True
    rebooted = talos(talos_env, fake, 'talos_bootstrap', nodes=[CP])
    assert rebooted.rc == 0 and rebooted.changed is False and rebooted.result['members'][0]['HOSTNAME'] == 'cp-1'
    assert [c[0] for c in fake.calls[-1:]] == ['etcd']
    # A rebuilt first node that has not joined the running etcd yet: another control-plane node answers for the
    # cluster, so nothing is bootstrapped beside it.
    configured = fake.state['nodes']
    configured[SPARE]['config'] = configured[CP]['config']
    fake.update(etcd_not_joined=[CP], nodes=configured)
    bootstraps = [c[0] for c in fake.calls].count('bootstrap')
    rejoining = talos(talos_env, fake, 'talos_bootstrap', nodes=[CP, SPARE])
    assert rejoining.rc == 0 and rejoining.changed is False and rejoining.result['members'][0]['NODE'] == SPARE
    assert [c[0] for c in fake.calls].count('bootstrap') == bootstraps and 'split_brain' not in fake.state
    configured[SPARE]['config'] = None
    fake.update(etcd_not_joined=[], nodes=configured)

    dest = tmp_path / 'kube' / 'config'
    dest.parent.mkdir()
    fetched = talos(talos_env, fake, 'talos_kubeconfig', nodes=[CP], dest=str(dest))
    assert fetched.rc == 0 and fetched.changed and fetched.result['servers'] == ['https://10.0.40.10:6443']
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    first = dest.read_text()
    refetched = talos(talos_env, fake, 'talos_kubeconfig', nodes=[CP], dest=str(dest))
    assert refetched.changed is False and dest.read_text() == first
    forced = talos(talos_env, fake, 'talos_kubeconfig', nodes=[CP], dest=str(dest), force=True)
    assert forced.changed and dest.read_text() != first

    healthy = talos(talos_env, fake, 'talos_health', control_plane_nodes=[CP], worker_nodes=[WORKER, SPARE],
                    wait_timeout=30)
    assert healthy.rc == 0 and healthy.changed is False, healthy.result
    assert healthy.result['not_configured'] == [SPARE] and healthy.result['checked'] == [CP, WORKER]
    assert 'waiting for all k8s nodes to report ready: OK' in healthy.result['checks']
    assert healthy.result['runs'] == 1
    health_call = [c for c in fake.calls if c[0] == 'health'][-1]
    assert health_call[health_call.index('--wait-timeout') + 1] == '30s'
    assert health_call[health_call.index('--worker-nodes') + 1] == WORKER

    info = talos(talos_env, fake, 'talos_info', nodes=[CP, WORKER, SPARE])
    assert info.rc == 0 and info.changed is False
    assert info.result['nodes'][CP] == {'state': 'configured', 'stage': 'running', 'ready': True, 'version': 'v1.11.6'}
    assert info.result['nodes'][SPARE]['state'] == 'maintenance'
    assert sorted(m['hostname'] for m in info.result['members']) == [CP, WORKER]
    assert info.result['etcd_members'][0]['NODE'] == CP

    # Nothing secret ever reached a command line.
    secrets = yaml.safe_load(bundle)
    for value in (secrets['cluster']['secret'], secrets['certs']['os']['key'], secrets['trustdinfo']['token']):
        assert not any(value in arg for call in fake.calls[start:] for arg in call)
    assert leftovers(talos_env) == []


def test_health_names_the_failing_check(talos_env, fake):
    bundle = bundle_for_tests(fake, talos_env)
    talos(talos_env, fake, 'talos_apply', config=render(talos_env, fake, bundle).result['config'], nodes=[CP])
    failed = talos(talos_env, fake, 'talos_health', control_plane_nodes=[CP], wait_timeout=1)
    assert failed.rc != 0
    assert failed.result['msg'] == (
        'health check "etcd to be healthy" did not pass within 1s (1 run of talosctl health): 1 error occurred: '
        '* {0}: service "etcd" not in expected state "Running": current state [Preparing] Running pre state'.format(CP))
    assert failed.result['stderr'].splitlines()[-1] == ('healthcheck error: rpc error: code = DeadlineExceeded '
                                                        'desc = context deadline exceeded')
    nothing = talos(talos_env, fake, 'talos_health', control_plane_nodes=[SPARE], wait_timeout=5)
    assert nothing.rc != 0 and 'no control-plane node of 127.0.69.53 is configured yet' in nothing.result['msg']


def test_health_runs_again_past_a_checks_own_cap(talos_env, fake):
    """Each Talos check stops at its own cap (5 or 10 minutes): the module runs talosctl health again until its
    own wait_timeout."""
    bundle = bundle_for_tests(fake, talos_env)
    talos(talos_env, fake, 'talos_apply', config=render(talos_env, fake, bundle).result['config'], nodes=[CP])
    fake.update(bootstrapped=True, health_failing=1)
    healthy = talos(talos_env, fake, 'talos_health', control_plane_nodes=[CP], wait_timeout=60)
    assert healthy.rc == 0, healthy.result
    assert healthy.result['runs'] == 2 and 'waiting for kube-proxy to report ready: SKIP' in healthy.result['checks']
    health_calls = [c for c in fake.calls if c[0] == 'health']
    assert len(health_calls) == 2 and health_calls[0][health_calls[0].index('--nodes') + 1] == CP


def test_health_takes_ip_addresses_only(talos_env, fake):
    named = talos(talos_env, fake, 'talos_health', control_plane_nodes=[CP], worker_nodes=['worker-1'])
    assert named.rc != 0 and named.result['msg'] == 'talosctl health takes IP addresses only; not one: worker-1'
    assert not fake.calls


def test_bootstrap_asks_one_node_and_names_each_nodes_error(talos_env, fake):
    bundle = bundle_for_tests(fake, talos_env)
    config = render(talos_env, fake, bundle).result['config']
    talos(talos_env, fake, 'talos_apply', config=config, nodes=[CP])
    nodes = fake.state['nodes']
    nodes[SPARE]['config'] = config
    fake.update(nodes=nodes, bootstrap_error='code = FailedPrecondition desc = time is not in sync yet')
    failed = talos(talos_env, fake, 'talos_bootstrap', nodes=[CP, SPARE])
    assert failed.rc != 0
    assert failed.result['msg'] == ('talosctl bootstrap failed (rc=1): {0}: rpc error: code = FailedPrecondition '
                                    'desc = time is not in sync yet'.format(CP))
    bootstraps = [c for c in fake.calls if c[0] == 'bootstrap']
    assert bootstraps and all(c[c.index('--nodes') + 1] == CP for c in bootstraps)


def test_unreachable_nodes_are_retried_then_named(talos_env, fake):
    bundle = bundle_for_tests(fake, talos_env)
    talos(talos_env, fake, 'talos_apply', config=render(talos_env, fake, bundle).result['config'], nodes=[CP])
    fake.update(unavailable={'version': 2})
    info = talos(talos_env, fake, 'talos_info', nodes=[CP], retries=3)
    assert info.rc == 0, info.result
    assert [c[0] for c in fake.calls].count('version') == 3
    fake.update(unavailable={'version': 5})
    failed = talos(talos_env, fake, 'talos_info', nodes=[CP], retries=1)
    assert failed.rc != 0 and 'after 2 tries' in failed.result['msg'] and 'connection refused' in failed.result['msg']
    gone = talos(talos_env, fake, 'talos_apply', config='version: v1alpha1\n', nodes=['127.0.69.99'])
    assert gone.rc != 0 and 'node 127.0.69.99 answers neither over mTLS nor on the maintenance API' in gone.result['msg']


def test_reset_needs_the_gate_token_for_the_node(talos_env, fake, consent):
    bundle = bundle_for_tests(fake, talos_env)
    talos(talos_env, fake, 'talos_apply', config=render(talos_env, fake, bundle).result['config'], nodes=[CP])
    unconsented = talos(talos_env, fake, 'talos_reset', nodes=[CP])
    assert unconsented.rc != 0 and 'reset 127.0.69.51 destroys it: give gate_token' in unconsented.result['msg']
    other = talos(talos_env, fake, 'talos_reset', nodes=[CP], **consent('cp-2'))
    assert other.rc != 0 and 'clears cp-2 (target cp-2), not cp-1' in other.result['msg']
    expired = talos(talos_env, fake, 'talos_reset', nodes=[CP], **consent('cp-1', ttl=-1))
    assert expired.rc != 0 and 'expired at' in expired.result['msg']
    made_up = talos(talos_env, fake, 'talos_reset', nodes=[CP], **dict(consent('cp-1'), gate_token='b'))
    assert made_up.rc != 0 and 'not a token the gate issued' in made_up.result['msg']
    assert not [c for c in fake.calls if c[0] == 'reset']
    assert fake.state['nodes'][CP]['config']

    predicted = talos(talos_env, fake, 'talos_reset', check=True, nodes=[CP])
    assert predicted.rc == 0 and predicted.changed and not [c for c in fake.calls if c[0] == 'reset']
    token = consent('cp-1')
    done = talos(talos_env, fake, 'talos_reset', nodes=[CP], **token)
    assert done.rc == 0 and done.changed and done.result['hostname'] == 'cp-1', done.result
    # talosctl's own wait would never see a node wiped back to maintenance mode: the module waits itself.
    resets = [c for c in fake.calls if c[0] == 'reset']
    assert resets == [['reset', '--graceful=true', '--reboot=true', '--wait=false', '--nodes', CP]]
    assert done.result['state_after'] == 'maintenance'
    assert fake.state['nodes'][CP]['config'] is None
    assert 'used: reset cp-1' in open(token['gate_journal']).read()
    # Nothing left to wipe: nothing is used, but the token is asked for all the same.
    again = talos(talos_env, fake, 'talos_reset', nodes=[CP], **token)
    assert again.rc == 0 and again.changed is False and again.result['node_state'] == 'maintenance'
    assert talos(talos_env, fake, 'talos_reset', nodes=[CP]).rc != 0
    talos(talos_env, fake, 'talos_apply', config=render(talos_env, fake, bundle).result['config'], nodes=[CP])
    reused = talos(talos_env, fake, 'talos_reset', nodes=[CP], **token)
    assert reused.rc != 0 and 'already used to reset cp-1' in reused.result['msg']
    assert len([c for c in fake.calls if c[0] == 'reset']) == 1


# ------------------------------------------------------------ against Vault

def vault(env):
    return hvac.Client(url=env['VAULT_ADDR'], token=env['VAULT_TOKEN'], verify=env['VAULT_CACERT'])


@pytest.fixture
def vault_env(env, talos_env):
    merged = dict(talos_env)
    merged.update((k, v) for k, v in env.items() if k.startswith('VAULT_'))
    return merged


@pytest.mark.lab
def test_secrets_bundle_is_made_once_kept_in_vault_and_rotated(vault_env, fake, tmp_path):
    path = 'castle/it-{0}/talos'.format(uuid.uuid4().hex[:8])
    client = vault(vault_env)

    predicted = talos(vault_env, fake, 'talos_secrets', check=True, vault_path=path)
    assert predicted.rc == 0 and predicted.changed and predicted.result['stored'] is False
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.secrets.kv.v2.read_secret_version(path=path, mount_point='kv', raise_on_deleted_version=True)

    made = talos(vault_env, fake, 'talos_secrets', vault_path=path)
    assert made.rc == 0 and made.changed and made.result['generated'] and made.result['version'] == 1
    kept = client.secrets.kv.v2.read_secret_version(path=path, mount_point='kv', raise_on_deleted_version=True)
    assert kept['data']['data']['secrets.yaml'] == made.result['bundle']
    assert fake.calls[-1][:3] == ['gen', 'secrets', '--output-file']

    dest = tmp_path / 'secrets.yaml'
    again = talos(vault_env, fake, 'talos_secrets', vault_path=path, dest=str(dest))
    assert again.rc == 0 and again.changed and not again.result['generated']  # only dest was written
    assert again.result['bundle_sha256'] == made.result['bundle_sha256']
    assert dest.read_text() == made.result['bundle'] and stat.S_IMODE(dest.stat().st_mode) == 0o600
    steady = talos(vault_env, fake, 'talos_secrets', vault_path=path, dest=str(dest))
    assert steady.rc == 0 and steady.changed is False

    would = talos(vault_env, fake, 'talos_secrets', check=True, diff=True, vault_path=path, rotate=True)
    assert would.changed and 'bundle_sha256' in would.stdout
    assert client.secrets.kv.v2.read_secret_metadata(path=path, mount_point='kv')['data']['current_version'] == 1
    rotated = talos(vault_env, fake, 'talos_secrets', vault_path=path, rotate=True)
    assert rotated.changed and rotated.result['version'] == 2
    assert rotated.result['bundle_sha256'] != made.result['bundle_sha256']
    assert leftovers(vault_env) == []


@pytest.mark.lab
def test_secrets_refuse_a_bad_token_and_a_foreign_secret(vault_env, fake):
    path = 'castle/it-{0}/talos'.format(uuid.uuid4().hex[:8])
    refused = talos(vault_env, fake, 'talos_secrets', vault_path=path, vault_token='not-a-token')
    assert refused.rc != 0 and 'refused the token' in refused.result['msg']
    assert 'not-a-token' not in refused.stdout
    vault(vault_env).secrets.kv.v2.create_or_update_secret(path=path, secret={'other': 'x'}, mount_point='kv')
    foreign = talos(vault_env, fake, 'talos_secrets', vault_path=path)
    assert foreign.rc != 0 and 'holds no secrets.yaml key' in foreign.result['msg']
    assert not [c for c in fake.calls if c[:2] == ['gen', 'secrets']]


@pytest.mark.lab
def test_kubeconfig_is_kept_in_vault_once(vault_env, fake):
    bundle = bundle_for_tests(fake, vault_env)
    talos(vault_env, fake, 'talos_apply', config=render(vault_env, fake, bundle).result['config'], nodes=[CP])
    path = 'castle/it-{0}/kubeconfig'.format(uuid.uuid4().hex[:8])
    kept = talos(vault_env, fake, 'talos_kubeconfig', nodes=[CP], vault_path=path)
    assert kept.rc == 0 and kept.changed and kept.result['written'] == ['vault:kv/' + path]
    stored = vault(vault_env).secrets.kv.v2.read_secret_version(path=path, mount_point='kv',
                                                                raise_on_deleted_version=True)
    assert stored['data']['data']['kubeconfig'] == kept.result['kubeconfig']
    again = talos(vault_env, fake, 'talos_kubeconfig', nodes=[CP], vault_path=path)
    assert again.rc == 0 and again.changed is False


# ------------------------------------------------------------------- the role

PLAY = """
- name: Talos cluster
  hosts: localhost
  gather_facts: false
  roles:
    - role: ephemeral.castle.talos_cluster
      vars:
        talos_cluster_name: lab
        talos_cluster_endpoint: https://10.0.40.10:6443
        talos_cluster_vip: 10.0.40.10
        talos_cluster_gateway: 10.0.40.1
        talos_cluster_binary_path: {binary}
        talos_cluster_vault_path: {path}/talos
        talos_cluster_kubeconfig_vault_path: {path}/kubeconfig
        talos_cluster_kubeconfig_path: {dir}/kubeconfig
        talos_cluster_talosconfig_path: {dir}/talosconfig
        talos_cluster_health_timeout: 30
        talos_cluster_role_patches:
          worker:
            - machine:
                nodeLabels:
                  role: worker
        talos_cluster_nodes:
          - {{hostname: cp-1, address: {cp}, role: controlplane, cidr: 10.0.40.11/24, mac: "BC:24:11:00:00:51"}}
          - {{hostname: worker-1, address: {worker}, role: worker, cidr: 10.0.40.21/24, mac: "BC:24:11:00:00:52"}}
"""


@pytest.mark.lab
def test_the_role_builds_the_cluster_then_changes_nothing(vault_env, fake, tmp_path):
    path = 'castle/it-{0}'.format(uuid.uuid4().hex[:8])
    playbook = tmp_path / 'talos.yml'
    playbook.write_text(PLAY.format(binary=fake.path, path=path, dir=tmp_path, cp=CP, worker=WORKER))

    def play(*extra):
        return run_playbook(vault_env, playbook, *extra)

    predicted = play('--check')
    assert predicted.returncode == 0, predicted.stdout[-3000:]
    assert fake.state['nodes'][CP]['config'] is None and not fake.state.get('bootstrapped')

    first = play()
    assert first.returncode == 0, first.stdout[-3000:]
    state = fake.state
    assert state['bootstrapped'] and state['nodes'][CP]['config'] and state['nodes'][WORKER]['config']
    assert yaml.safe_load(state['nodes'][WORKER]['config'])['machine']['nodeLabels'] == {'role': 'worker'}
    assert yaml.safe_load(state['nodes'][WORKER]['config'])['machine']['network']['interfaces'] == [
        {'deviceSelector': {'hardwareAddr': 'bc:24:11:00:00:52'}, 'addresses': ['10.0.40.21/24'],
         'routes': [{'network': '0.0.0.0/0', 'gateway': '10.0.40.1'}]}]
    assert yaml.safe_load(state['nodes'][CP]['config'])['machine']['network']['interfaces'][0]['vip'] == {
        'ip': '10.0.40.10'}
    for name in ('kubeconfig', 'talosconfig'):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    bootstraps = [c for c in fake.calls if c[0] == 'bootstrap']
    assert len(bootstraps) == 1 and bootstraps[0][-1] == CP
    assert yaml.safe_load(state['nodes'][CP]['config'])['machine']['token'] not in first.stdout

    again = play()
    assert again.returncode == 0, again.stdout[-3000:]
    assert play_recap(again)['localhost']['changed'] == 0, again.stdout[-3000:]
    assert len([c for c in fake.calls if c[0] == 'bootstrap']) == 1
    assert leftovers(vault_env) == []
