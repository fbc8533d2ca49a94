"""castle-lab's command line: usage errors are one line, before any lab is touched; `env` as export lines or
JSON."""

import json
import shlex

import pytest

from castle_lab import cli


@pytest.mark.parametrize('argv, reason', [
    (['fault', 'proxmox', 'nosuch'], "invalid choice: 'nosuch'"),
    (['fault', 'proxmox', 'node', 'pve2'], 'one of the arguments --offline --online is required'),
    (['fault', 'proxmox', 'hold-lock', '100'], 'the following arguments are required: secs'),
    ([], 'the following arguments are required: COMMAND'),
])
def test_usage_errors_are_one_line(capsys, argv, reason):
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1
    assert err.startswith('castle-lab: ') and reason in err


@pytest.mark.parametrize('argv, reason', [
    (['up', 'nosuch'], "unknown service 'nosuch'"),
    (['fault', 'nosuch', 'clear'], "unknown service 'nosuch'"),
    (['requests', 'vault'], "only proxmox has a control API, not 'vault'"),
])
def test_unknown_or_unsupported_services_are_refused(capsys, monkeypatch, tmp_path, argv, reason):
    monkeypatch.setenv('CASTLE_LAB_DIR', str(tmp_path))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and reason in err
    assert list(tmp_path.iterdir()) == []


def test_env_json_gives_the_export_lines_values_and_each_services_paths(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv('CASTLE_LAB_DIR', str(tmp_path / 'lab'))
    monkeypatch.setenv('CASTLE_LAB_NET', '127.0.81')
    monkeypatch.delenv('CASTLE_LAB_INVENTORY', raising=False)
    (tmp_path / 'lab' / 'proxmox').mkdir(parents=True)
    (tmp_path / 'lab' / 'proxmox' / 'token').write_text('secret\n')
    assert cli.main(['env', 'kube', 'proxmox']) == 0
    exported = dict(line[len('export '):].split('=', 1) for line in capsys.readouterr().out.splitlines())
    assert cli.main(['env', '--json', 'kube', 'proxmox']) == 0
    found = json.loads(capsys.readouterr().out)
    assert found['env'] == {key: shlex.split(value)[0] for key, value in exported.items()}
    lab = tmp_path / 'lab'
    assert (found['dir'], found['net'], found['ca_cert']) == (str(lab), '127.0.81', str(lab / 'ca' / 'ca.crt'))
    assert found['inventory_file'] == str(lab / 'inventory' / 'hosts.yml')
    kube = found['services']['kube']
    assert (kube['address'], kube['ports']) == ('127.0.81.5', [6443, 6444])
    assert kube['files'] == {'pid': str(lab / 'kube' / 'kube.pid'), 'log': str(lab / 'kube' / 'kube.log'),
                             'ca': str(lab / 'kube' / 'ca.crt'), 'kubeconfig': str(lab / 'kube' / 'kubeconfig')}
    proxmox = found['services']['proxmox']
    assert proxmox['env']['PROXMOX_TOKEN_SECRET'] == 'secret'
    assert proxmox['files']['token'] == str(lab / 'proxmox' / 'token')
    assert proxmox['files']['talos_leases'] == str(lab / 'talos' / 'leases.json')
