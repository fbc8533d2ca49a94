"""talos_secrets without a lab: the bundle is generated once and kept in Vault, rotated only when asked,
nothing stored in check mode, dest written 0600."""

import os
import stat

from fake_talos import FakeKV, FakeTalosctl

ARGS = dict(binary_path='/usr/bin/talosctl', vault_addr='https://vault:8200', vault_token='t',
            vault_path='clusters/lab/talos')
BUNDLE = 'cluster:\n  id: Y2x1c3Rlcg==\nsecrets:\n  bootstraptoken: abc.def\n'


def setup(monkeypatch, stored=None, bundle=BUNDLE):
    fake = FakeTalosctl()

    def gen_secrets(call):
        with open(call.flag('--output-file'), 'w') as handle:
            handle.write(bundle)
        return 0, '', ''
    fake.answers['gen secrets'] = gen_secrets
    fake.install(monkeypatch, 'talos_secrets')
    return fake, FakeKV(stored).install(monkeypatch, 'talos_secrets')


def test_a_bundle_is_generated_and_stored_once(run_module, monkeypatch):
    fake, kv = setup(monkeypatch)
    result = run_module('talos_secrets', diff=True, talos_version='v1.11', **ARGS)
    assert result.changed and result['generated'] and result['stored'] and result['version'] == 1
    assert kv.writes == [('clusters/lab/talos', {'secrets.yaml': BUNDLE})]
    assert result['diff']['before'] == {'vault': 'kv/clusters/lab/talos', 'bundle_sha256': None}
    (call,) = fake.ran('gen secrets')
    assert call.flag('--talos-version') == 'v1.11' and '--nodes' not in call.argv
    again = run_module('talos_secrets', **ARGS)
    assert not again.changed and not again['generated'] and again['bundle'] == BUNDLE
    assert len(fake.ran('gen secrets')) == 1


def test_check_mode_generates_but_stores_nothing(run_module, monkeypatch):
    dummy, kv = setup(monkeypatch)
    result = run_module('talos_secrets', check_mode=True, **ARGS)
    assert result.changed and result['generated'] and not result['stored'] and kv.writes == []


def test_rotate_replaces_the_bundle(run_module, monkeypatch):
    dummy, kv = setup(monkeypatch, {'clusters/lab/talos': {'secrets.yaml': 'old: bundle\n'}})
    result = run_module('talos_secrets', rotate=True, **ARGS)
    assert result.changed and kv.stored['clusters/lab/talos'] == {'secrets.yaml': BUNDLE}


def test_dest_is_written_0600(run_module, monkeypatch, tmp_path):
    setup(monkeypatch, {'clusters/lab/talos': {'secrets.yaml': BUNDLE}})
    dest = tmp_path / 'secrets.yaml'
    assert run_module('talos_secrets', dest=str(dest), **ARGS).changed
    assert dest.read_text() == BUNDLE and stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert not run_module('talos_secrets', dest=str(dest), **ARGS).changed


def test_a_secret_that_is_no_bundle_is_named(run_module, monkeypatch):
    fake, kv = setup(monkeypatch, {'clusters/lab/talos': {'other': 'x'}})
    result = run_module('talos_secrets', **ARGS)
    assert result.failed and result.msg == ('kv/clusters/lab/talos exists but holds no secrets.yaml key; it is not '
                                            'a Talos secrets bundle')
    assert not fake.calls and kv.writes == []


def test_a_generated_bundle_that_is_not_yaml_is_refused(run_module, monkeypatch):
    dummy, kv = setup(monkeypatch, bundle='a: [b')
    result = run_module('talos_secrets', **ARGS)
    assert result.failed and result.msg.startswith('not valid YAML') and kv.writes == []
