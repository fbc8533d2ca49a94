"""Talos secrets bundles, gen config's patches and talosconfig, and talosctl's flag handling."""

import argparse
import base64
import pathlib

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from castle_lab.talos import cli, machineconfig, secrets
from castle_lab.talos.proxmox_hook import Leases, LeasesExhausted, boots_talos, net0_mac


@pytest.fixture(scope='module')
def bundle():
    return secrets.load(secrets.dump(secrets.generate()))


def certificate(value):
    return x509.load_pem_x509_certificate(base64.b64decode(value))


def test_secrets_bundle_holds_real_cas(bundle):
    for name, organization in (('etcd', 'etcd'), ('k8s', 'kubernetes'), ('os', 'talos')):
        cert, key = secrets.ca_pair(bundle, name)
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value == organization
        assert cert.public_key() == key.public_key()
    assert isinstance(secrets.ca_pair(bundle, 'os')[1], ed25519.Ed25519PrivateKey)
    assert isinstance(secrets.ca_pair(bundle, 'k8s')[1], ec.EllipticCurvePrivateKey)
    assert base64.b64decode(bundle['certs']['k8sserviceaccount']['key']).startswith(b'-----BEGIN EC PRIVATE KEY')
    assert len(bundle['secrets']['bootstraptoken'].split('.')[1]) == 16


def test_a_broken_bundle_is_refused(bundle):
    broken = yaml.safe_load(secrets.dump(bundle))
    del broken['certs']['os']['key']
    with pytest.raises(secrets.BundleInvalid, match='invalid secrets bundle'):
        secrets.load(yaml.safe_dump(broken))


def test_talosconfig_admin_certificate_comes_from_the_os_ca(bundle):
    config = machineconfig.talosconfig(bundle, 'lab', ['10.0.0.1'])
    context = config['contexts']['lab']
    assert config['context'] == 'lab' and context['endpoints'] == ['10.0.0.1']
    admin = certificate(context['crt'])
    assert admin.issuer == certificate(bundle['certs']['os']['crt']).subject
    assert admin.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value == 'os:admin'


CASES = yaml.safe_load((pathlib.Path(__file__).parents[2] / 'fixtures' / 'talos' / 'merge_cases.yaml').read_text())['cases']


@pytest.mark.parametrize('case', CASES, ids=[case['name'] for case in CASES])
def test_upstream_merge_case(case, tmp_path, capsys):
    """The shared table of Talos's merge cases, through `talosctl machineconfig patch` as the collection runs it."""
    config = tmp_path / 'config.yaml'
    config.write_text(machineconfig.dump_documents(case['base']))
    argv = ['machineconfig', 'patch', str(config)]
    for text in case['patches']:
        argv += ['--patch', text]
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    if 'error' in case:
        assert rc == 1 and case['error'] in err
    else:
        assert rc == 0, err
        assert [doc for doc in yaml.safe_load_all(out) if doc is not None] == case['expected']


def test_machineconfig_patch_writes_the_output_file_and_takes_patch_files(tmp_path, capsys):
    config = tmp_path / 'config.yaml'
    config.write_text('version: v1alpha1\nmachine: {type: worker, install: {wipe: false}}\n')
    patch = tmp_path / 'patch.yaml'
    patch.write_text('machine: {install: {wipe: true}}\n')
    output = tmp_path / 'out' / 'worker.yaml'
    assert cli.main(['mc', 'patch', str(config), '-p', '@' + str(patch), '-o', str(output)]) == 0
    assert capsys.readouterr().out == ''
    assert yaml.safe_load(output.read_text()) == {'version': 'v1alpha1', 'machine': {'type': 'worker', 'install': {'wipe': True}}}
    assert cli.main(['machineconfig', 'patch', str(tmp_path / 'missing.yaml')]) == 1
    assert 'open {0}: no such file or directory'.format(tmp_path / 'missing.yaml') in capsys.readouterr().err


def test_strategic_merge_leaves_its_input_alone():
    base = {'machine': {'certSANs': ['a'], 'network': {'hostname': 'x'}}}
    assert machineconfig.strategic_merge(base, {'machine': {'certSANs': ['b']}}) == {
        'machine': {'certSANs': ['a', 'b'], 'network': {'hostname': 'x'}}}
    assert base['machine']['certSANs'] == ['a']


def test_patches_inline_and_from_files(tmp_path):
    (tmp_path / 'p.yaml').write_text('- op: replace\n  path: /machine/type\n  value: worker\n')
    json_patch = machineconfig.read_patch('@{0}'.format(tmp_path / 'p.yaml'))
    merge = machineconfig.read_patch('{"machine": {"install": {"disk": "/dev/vda"}}}')
    assert json_patch[0] == 'json6902' and merge[0] == 'merge'
    out = machineconfig.apply_patches([{'machine': {'type': 'controlplane', 'install': {}}}], [json_patch, merge])
    assert out == [{'machine': {'type': 'worker', 'install': {'disk': '/dev/vda'}}}]
    with pytest.raises(machineconfig.PatchError, match='failed to read patch'):
        machineconfig.read_patch('@' + str(tmp_path / 'missing.yaml'))
    with pytest.raises(machineconfig.PatchError, match='failure applying rfc6902 patches to talos machine config'):
        machineconfig.apply_patches([{}], [('json6902', [{'op': 'remove', 'path': '/nope'}])])


def test_generate_applies_patches_by_machine_type(bundle):
    out = machineconfig.generate(bundle, 'lab', 'https://10.0.0.1:6443',
                                 patches_worker=[machineconfig.read_patch('machine: {nodeLabels: {a: b}}')])
    worker, control_plane = yaml.safe_load(out['worker']), yaml.safe_load(out['controlplane'])
    assert worker['machine']['nodeLabels'] == {'a': 'b'}
    assert 'a' not in control_plane['machine']['nodeLabels']
    assert worker['machine']['ca']['key'] == '' and control_plane['machine']['ca']['key']
    assert yaml.safe_load(out['talosconfig'])['contexts']['lab']['endpoints'] == ['10.0.0.1']


@pytest.mark.parametrize('text, seconds', [('20m0s', 1200), ('90s', 90), ('1h', 3600), ('500ms', 0.5)])
def test_go_durations(text, seconds):
    assert cli.go_duration(text) == seconds


def test_bad_duration_and_boolean_flags():
    with pytest.raises(argparse.ArgumentTypeError):
        cli.go_duration('5 minutes')
    assert cli.normalize_bools(['--merge=false', '--force=true', '--mode=auto']) == ['--no-merge', '--force',
                                                                                     '--mode=auto']


def test_kubeconfig_merge_renames_a_clashing_context():
    new = {'clusters': [{'name': 'lab', 'cluster': {}}], 'users': [{'name': 'admin@lab', 'user': {}}],
           'contexts': [{'name': 'admin@lab', 'context': {'cluster': 'lab', 'user': 'admin@lab'}}],
           'current-context': 'admin@lab'}
    existing = yaml.safe_load(yaml.safe_dump(new))
    merged = cli._merge_kubeconfig(existing, yaml.safe_load(yaml.safe_dump(new)), False, None)
    assert [c['name'] for c in merged['contexts']] == ['admin@lab', 'admin@lab-1']
    assert merged['current-context'] == 'admin@lab-1'
    forced = cli._merge_kubeconfig(existing, yaml.safe_load(yaml.safe_dump(new)), True, None)
    assert [c['name'] for c in forced['contexts']] == ['admin@lab']


def test_roles_come_from_the_certificate_organizations():
    from castle_lab.talos.node import _roles
    peer = {'subject': ((('organizationName', 'os:reader'),), (('commonName', 'ops'),))}
    assert _roles(peer) == ['os:reader'] and _roles(None) == []


def test_gen_and_validate_from_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(['gen', 'secrets']) == 0 and (tmp_path / 'secrets.yaml').exists()
    assert cli.main(['gen', 'config', 'lab', 'https://10.0.0.1:6443', '--with-secrets', 'secrets.yaml',
                     '-t', 'worker', '-o', 'w.yaml', '--config-patch', 'machine: {install: {disk: /dev/vdb}}']) == 0
    assert yaml.safe_load((tmp_path / 'w.yaml').read_text())['machine']['install']['disk'] == '/dev/vdb'
    assert cli.main(['validate', '--mode', 'metal', '--config', 'w.yaml']) == 0
    assert capsys.readouterr().out == 'w.yaml is valid for metal mode\n'
    # Warnings go to stderr as cli.Warning prints them; --strict makes them errors prefixed `warning: `.
    unnamed = yaml.safe_load((tmp_path / 'w.yaml').read_text())
    unnamed['cluster']['clusterName'] = ''
    (tmp_path / 'u.yaml').write_text(yaml.safe_dump(unnamed))
    assert cli.main(['validate', '--mode', 'metal', '--config', 'u.yaml']) == 0
    found = capsys.readouterr()
    assert found.err == 'WARNING: cluster.clusterName: cluster name is empty\n'
    assert found.out == 'u.yaml is valid for metal mode\n'
    assert cli.main(['validate', '--mode', 'metal', '--config', 'u.yaml', '--strict']) == 1
    assert capsys.readouterr().err == '1 error occurred:\n\t* warning: cluster.clusterName: cluster name is empty\n\n'
    assert cli.main(['gen', 'config', 'lab', 'https://10.0.0.1:6443', '-o', '-']) == 1
    assert capsys.readouterr().err == 'the output must be a directory when multiple output types are specified\n'
    assert cli.main(['gen', 'config', 'lab', '10.0.0.1:6443']) == 1
    assert 'must be an https:// URL' in capsys.readouterr().err
    # The documentation and example comments can be left out, as upstream; the config is the same.
    assert cli.main(['gen', 'config', 'lab', 'https://10.0.0.1:6443', '--with-secrets', 'secrets.yaml', '-t', 'worker',
                     '-o', '-', '--with-docs=false', '--with-examples=false']) == 0
    assert yaml.safe_load(capsys.readouterr().out)['machine']['type'] == 'worker'
    with pytest.raises(SystemExit) as refused:
        cli.main(['gen', 'config', 'lab', 'https://10.0.0.1:6443', '-t', 'worker', '-o', '-', '--with-docs=maybe'])
    assert refused.value.code == 1


class Vm:
    def __init__(self, config):
        self.config = config


def test_talos_vms_and_their_leases(tmp_path):
    vm = Vm({'net0': 'virtio=BC:24:11:00:00:01,bridge=vmbr0',
             'ide2': 'local:iso/talos-v1.11.6-metal-amd64.iso,media=cdrom'})
    assert boots_talos(vm) and net0_mac(vm) == 'bc:24:11:00:00:01'
    assert not boots_talos(Vm({'ide2': 'local:iso/debian.iso,media=cdrom'}))
    leases = Leases(tmp_path / 'leases.json', '127.0.9')
    assert leases.address('BC:24:11:00:00:01') == '127.0.9.100'
    assert leases.address('bc:24:11:00:00:02') == '127.0.9.101'
    assert Leases(tmp_path / 'leases.json', '127.0.9').address('bc:24:11:00:00:01') == '127.0.9.100'
    for index in range(98):
        leases.address('02:00:00:00:00:{0:02x}'.format(index))
    with pytest.raises(LeasesExhausted):
        leases.address('02:00:00:00:01:00')
