"""talos_machine_config without a lab: one talosctl gen config per role, patches merged by talosctl, validation, dest
written 0600 only when it differs (never in check mode), comparison with the node's running config."""

import os
import stat

import yaml

from fake_talos import MAINTENANCE, FakeTalosctl

SECRETS = 'cluster:\n  id: c2VjcmV0\nsecrets:\n  bootstraptoken: abc.def\n'
ARGS = dict(binary_path='/usr/bin/talosctl', secrets=SECRETS, cluster_name='lab',
            cluster_endpoint='https://10.0.40.10:6443')
CP = dict(ARGS, role='controlplane', hostname='cp-1', mac='BC:24:11:00:00:01', address='10.0.40.11/24',
          gateway='10.0.40.1', vip='10.0.40.10', install_disk='/dev/sda')
TALOSCONFIG = 'context: lab\ncontexts:\n  lab:\n    endpoints: [127.0.0.1]\n    key: a2V5\n'


def gen_config(call):
    kind = call.argv[call.argv.index('--output-types') + 1]
    if kind == 'talosconfig':
        return 0, TALOSCONFIG, ''
    doc = dict(version='v1alpha1', machine=dict(type=kind, token='abc.def', install=dict(wipe=False)),
               cluster=dict(clusterName=call.words[2]))
    return 0, yaml.safe_dump(doc), ''


def talosctl(monkeypatch, validate=(0, '', '')):
    fake = FakeTalosctl()
    fake.answers.update({'gen config lab https://10.0.40.10:6443': gen_config, 'validate': validate})
    return fake.install(monkeypatch, 'talos_machine_config')


def test_a_node_config_is_rendered_patched_and_validated(run_module, monkeypatch):
    fake = talosctl(monkeypatch)
    result = run_module('talos_machine_config', patches=[{'cluster': {'network': {'cni': {'name': 'none'}}}}], **CP)
    assert not result.changed
    (doc,) = yaml.safe_load_all(result['config'])
    assert doc['machine']['network']['hostname'] == 'cp-1'
    assert doc['machine']['network']['interfaces'] == [{
        'deviceSelector': {'hardwareAddr': 'bc:24:11:00:00:01'}, 'addresses': ['10.0.40.11/24'],
        'routes': [{'network': '0.0.0.0/0', 'gateway': '10.0.40.1'}], 'vip': {'ip': '10.0.40.10'}}]
    assert doc['cluster']['network']['cni'] == {'name': 'none'} and doc['machine']['install']['disk'] == '/dev/sda'
    (gen,) = fake.ran('gen config lab https://10.0.40.10:6443')
    assert gen.files[gen.flag('--with-secrets')] == SECRETS and SECRETS not in ' '.join(gen.argv)
    (check,) = fake.ran('validate')
    assert check.files[check.flag('--config')] == result['config'] and check.flag('--mode') == 'metal'


def test_talosctl_merges_every_patch_in_order_from_private_files(run_module, monkeypatch, tmp_path):
    fake = talosctl(monkeypatch)
    patch_file = tmp_path / 'p.yaml'
    patch_file.write_text('machine:\n  install:\n    wipe: true\n')
    result = run_module('talos_machine_config', patches=['@{0}'.format(patch_file)],
                        role_patches={'controlplane': [[{'op': 'add', 'path': '/machine/kubelet', 'value': {}}]]},
                        node_patches=['machine: {install: {disk: /dev/vda}}'], **CP)
    assert not result.failed, result.msg
    (merge,) = fake.ran('machineconfig patch')
    # In order: patches, role_patches, the node's own settings, node_patches; each a private file.
    assert [yaml.safe_load(text) for text in merge.patches] == [
        {'machine': {'install': {'wipe': True}}},
        [{'op': 'add', 'path': '/machine/kubelet', 'value': {}}],
        yaml.safe_load(merge.patches[2]),
        {'machine': {'install': {'disk': '/dev/vda'}}}]
    assert yaml.safe_load(merge.patches[2])['machine']['network']['hostname'] == 'cp-1'
    assert merge.words[2] == os.path.join(merge.cwd, 'controlplane.yaml')
    assert all(a == '--patch' or a.startswith('@' + merge.cwd + '/') for a in merge.argv[4:])
    config = yaml.safe_load(result['config'])
    assert config['machine']['install'] == {'wipe': True, 'disk': '/dev/vda'}


def test_a_bad_patch_is_named_before_talosctl_runs(run_module, monkeypatch):
    fake = talosctl(monkeypatch)
    result = run_module('talos_machine_config', node_patches=[{'machine': {}}, 'just text'], **CP)
    assert result.failed and result.msg == ('node_patches: patch 2: neither a strategic merge patch (YAML mappings) '
                                            'nor a JSON patch (a list of operations)')
    assert not fake.ran('machineconfig patch')
    result = run_module('talos_machine_config', role='worker', machines=[dict(hostname='w-1', node_patches=[7])], **ARGS)
    assert result.failed and result.msg == ('w-1: node_patches: patch 1: a patch must be a mapping, a list of JSON '
                                            'patch operations or text, not int')


def test_a_refused_merge_names_the_machine(run_module, monkeypatch):
    fake = talosctl(monkeypatch)
    fake.answers['machineconfig patch'] = (1, '', 'failure applying rfc6902 patches to talos machine config: '
                                                  'test failed at /machine/type')
    result = run_module('talos_machine_config', role='worker', machines=[dict(hostname='w-1')], **ARGS)
    assert result.failed and result.msg == ('w-1: talosctl machineconfig patch failed (rc=1): failure applying '
                                            'rfc6902 patches to talos machine config: test failed at /machine/type')


def test_dest_is_written_0600_once_and_never_in_check_mode(run_module, monkeypatch, tmp_path):
    talosctl(monkeypatch)
    dest = tmp_path / 'cp-1.yaml'
    assert run_module('talos_machine_config', check_mode=True, dest=str(dest), **CP).changed
    assert not dest.exists()
    first = run_module('talos_machine_config', dest=str(dest), **CP)
    assert first.changed and dest.read_text() == first['config']
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert not run_module('talos_machine_config', dest=str(dest), **CP).changed
    dest.chmod(0o644)
    assert run_module('talos_machine_config', dest=str(dest), **CP).changed
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600


def test_compare_to_node_reports_the_difference_redacted(run_module, monkeypatch):
    fake = talosctl(monkeypatch)
    fake.node('10.0.40.11', config='version: v1alpha1\nmachine:\n  type: controlplane\n  token: old.token\n')
    result = run_module('talos_machine_config', diff=True, compare_to_node=True, nodes=['10.0.40.11'], **CP)
    assert result['differs'] is True and result['node_state'] == 'configured'
    assert 'old.token' not in repr(result['diff']) and 'abc.def' not in repr(result['diff'])
    same = run_module('talos_machine_config', **CP)
    fake.nodes['10.0.40.11']['config'] = same['config']
    assert run_module('talos_machine_config', compare_to_node=True, nodes=['10.0.40.11'], **CP)['differs'] is False


def test_a_node_in_maintenance_differs(run_module, monkeypatch):
    fake = talosctl(monkeypatch)
    fake.node('10.0.40.11', state=MAINTENANCE)
    result = run_module('talos_machine_config', compare_to_node=True, nodes=['10.0.40.11'], **CP)
    assert result['differs'] is True and result['node_state'] == 'maintenance'


def test_machines_are_rendered_from_one_generation_per_role(run_module, monkeypatch):
    fake = talosctl(monkeypatch)
    machines = [dict(hostname='cp-1', role='controlplane'), dict(hostname='w-1'), dict(hostname='w-2')]
    result = run_module('talos_machine_config', role='worker', machines=machines, with_talosconfig=True,
                        endpoints=['10.0.40.10'], **ARGS)
    assert sorted(result['configs']) == ['cp-1', 'w-1', 'w-2']
    assert yaml.safe_load(result['configs']['w-2']['config'])['machine']['type'] == 'worker'
    kinds = [call.flag('--output-types') for call in fake.ran('gen config lab https://10.0.40.10:6443')]
    assert kinds == ['controlplane', 'worker', 'talosconfig']
    assert len(fake.ran('validate')) == 3
    assert yaml.safe_load(result['talosconfig'])['contexts']['lab']['endpoints'] == ['10.0.40.10']


def test_a_failed_validation_names_the_machine(run_module, monkeypatch):
    talosctl(monkeypatch, validate=(1, '', '1 error occurred:\n\t* install disk or diskSelector should be defined'))
    result = run_module('talos_machine_config', role='worker', machines=[dict(hostname='w-1')], **ARGS)
    assert result.failed and result.msg == ('w-1: talosctl validate failed (rc=1): * install disk or diskSelector '
                                            'should be defined')


def test_bad_input_is_named(run_module, monkeypatch):
    fake = talosctl(monkeypatch)
    cases = [
        (dict(CP, mac='bc24'), "mac 'bc24' of cp-1 is not a MAC address like BC:24:11:00:00:01"),
        (dict(CP, role='worker'), 'vip is for control-plane nodes; cp-1 has role worker'),
        (dict(CP, cluster_endpoint='10.0.40.10:6443'),
         "cluster_endpoint '10.0.40.10:6443' must be an https:// URL, for example https://10.0.40.10:6443"),
        (dict(ARGS), 'role is required without machines'),
        (dict(ARGS, role='worker', machines=[dict(hostname='w-1'), dict(hostname='w-1')]),
         'machines lists w-1 more than once'),
        (dict(CP, role_patches={'workers': []}), 'role_patches has keys workers; only controlplane and worker are roles'),
        (dict(CP, secrets='a: [b'), None),
    ]
    for args, message in cases:
        result = run_module('talos_machine_config', **args)
        assert result.failed
        if message:
            assert result.msg == message
        else:
            assert result.msg.startswith('the secrets bundle is not YAML: ')
    assert not fake.calls
