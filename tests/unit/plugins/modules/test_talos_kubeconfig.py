"""talos_kubeconfig without a lab: written to a file (0600) and Vault only when the cluster's identity differs,
never in check mode; a new client certificate alone is no change."""

import os
import stat

from fake_talos import FakeKV, FakeTalosctl

ARGS = dict(binary_path='/usr/bin/talosctl', nodes=['10.0.40.11'], vault_addr='https://vault:8200',
            vault_token='t')
KUBECONFIG = ('apiVersion: v1\nclusters:\n- name: lab\n  cluster: {server: "https://10.0.40.10:6443", '
              'certificate-authority-data: Q0E=}\ncontexts:\n- name: admin@lab\nusers:\n- name: admin@lab\n'
              '  user: {client-certificate-data: T05F, client-key-data: a2V5}\n')
RENEWED = KUBECONFIG.replace('T05F', 'VFdP')


def talosctl(monkeypatch, text=KUBECONFIG):
    fake = FakeTalosctl().node('10.0.40.11')
    fake.answers['kubeconfig'] = (0, text, '')
    return fake.install(monkeypatch, 'talos_kubeconfig')


def test_the_kubeconfig_is_written_once_0600(run_module, monkeypatch, tmp_path):
    fake = talosctl(monkeypatch)
    dest = tmp_path / 'kubeconfig'
    result = run_module('talos_kubeconfig', diff=True, dest=str(dest), **ARGS)
    assert result.changed and result['written'] == [str(dest)] and result['servers'] == ['https://10.0.40.10:6443']
    assert dest.read_text() == KUBECONFIG and stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert result['diff']['before'] == {str(dest): None}
    assert fake.ran('kubeconfig')[0].nodes == ['10.0.40.11']
    fake.answers['kubeconfig'] = (0, RENEWED, '')
    again = run_module('talos_kubeconfig', dest=str(dest), **ARGS)
    assert not again.changed and dest.read_text() == KUBECONFIG


def test_force_and_a_wrong_mode_rewrite(run_module, monkeypatch, tmp_path):
    talosctl(monkeypatch, RENEWED)
    dest = tmp_path / 'kubeconfig'
    dest.write_text(KUBECONFIG)
    dest.chmod(0o644)
    result = run_module('talos_kubeconfig', dest=str(dest), **ARGS)
    assert result.changed and dest.read_text() == KUBECONFIG and stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert run_module('talos_kubeconfig', dest=str(dest), force=True, **ARGS).changed
    assert dest.read_text() == RENEWED


def test_check_mode_writes_nothing(run_module, monkeypatch, tmp_path):
    talosctl(monkeypatch)
    kv = FakeKV().install(monkeypatch, 'talos_kubeconfig')
    dest = tmp_path / 'kubeconfig'
    result = run_module('talos_kubeconfig', check_mode=True, dest=str(dest), vault_path='clusters/lab', **ARGS)
    assert result.changed and result['written'] == [str(dest), 'vault:kv/clusters/lab']
    assert not dest.exists() and kv.writes == []


def test_vault_is_written_when_it_holds_another_cluster(run_module, monkeypatch):
    talosctl(monkeypatch)
    kv = FakeKV({'clusters/lab': {'kubeconfig': KUBECONFIG.replace('Q0E=', 'T0xE')}})
    kv.install(monkeypatch, 'talos_kubeconfig')
    assert run_module('talos_kubeconfig', vault_path='clusters/lab', **ARGS).changed
    assert kv.writes == [('clusters/lab', {'kubeconfig': KUBECONFIG})]
    assert not run_module('talos_kubeconfig', vault_path='clusters/lab', **ARGS).changed


def test_no_kubeconfig_printed_is_named(run_module, monkeypatch):
    talosctl(monkeypatch, 'apiVersion: v1\nclusters: []\n')
    result = run_module('talos_kubeconfig', **ARGS)
    assert result.failed and result.msg == 'talosctl kubeconfig printed no kubeconfig'


def test_a_failed_call_hides_the_kubeconfig(run_module, monkeypatch):
    fake = talosctl(monkeypatch)
    fake.answers['kubeconfig'] = (1, KUBECONFIG, 'error: boom')
    result = run_module('talos_kubeconfig', **ARGS)
    assert result.failed and result['stdout'] == '<hidden>' and 'a2V5' not in repr(result)
