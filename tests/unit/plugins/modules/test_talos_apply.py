"""talos_apply without a lab: applied only when the node runs another config, over mTLS or the maintenance API,
check mode as talosctl's dry run, a redacted diff, one node's failure named in a batch."""

from fake_talos import DOWN, MAINTENANCE, FakeTalosctl, config_text

ARGS = dict(binary_path='/usr/bin/talosctl', nodes=['10.0.40.11'])
RUNNING = config_text('cp-1')
WANTED = config_text('cp-1', token='abc.def')


def node(monkeypatch, state='configured', config=RUNNING):
    return FakeTalosctl().node('10.0.40.11', state=state, config=config).install(monkeypatch, 'talos_apply')


def test_the_config_the_node_runs_is_not_applied_again(run_module, monkeypatch):
    fake = node(monkeypatch)
    result = run_module('talos_apply', diff=True, config=RUNNING, **ARGS)
    assert not result.changed and result['node_state'] == 'configured' and 'diff' not in result
    assert not fake.ran('apply-config')


def test_another_config_is_applied_with_a_redacted_diff(run_module, monkeypatch):
    fake = node(monkeypatch)
    result = run_module('talos_apply', diff=True, config=WANTED, **ARGS)
    assert result.changed and result['mode'] == 'auto'
    assert result['answer'] == 'Applied configuration without a reboot\n'
    assert 'token: <hidden>' in result['diff']['after'] and 'abc.def' not in repr(result)
    (call,) = fake.ran('apply-config')
    assert not call.insecure and call.flag('--mode') == 'auto' and call.files[call.flag('--file')] == WANTED
    assert WANTED not in ' '.join(call.argv)
    assert fake.nodes['10.0.40.11']['config'] == WANTED


def test_check_mode_is_a_dry_run(run_module, monkeypatch):
    fake = node(monkeypatch)
    result = run_module('talos_apply', check_mode=True, config=WANTED, **ARGS)
    assert result.changed and 'Dry run summary' in result['dry_run']
    assert '--dry-run' in fake.ran('apply-config')[0].argv and fake.nodes['10.0.40.11']['config'] == RUNNING


def test_a_node_in_maintenance_takes_the_config_insecurely_in_a_mode_it_knows(run_module, monkeypatch):
    fake = node(monkeypatch, state=MAINTENANCE, config=None)
    result = run_module('talos_apply', config=WANTED, mode='no-reboot', **ARGS)
    assert result.changed and result['node_state'] == 'maintenance' and result['mode'] == 'auto'
    (call,) = fake.ran('apply-config')
    assert call.insecure and '--talosconfig' not in call.argv


def test_an_unreachable_node_is_named(run_module, monkeypatch):
    node(monkeypatch, state=DOWN)
    result = run_module('talos_apply', config=WANTED, **ARGS)
    assert result.failed and result.msg.startswith(
        'node 10.0.40.11 answers neither over mTLS nor on the maintenance API: ')


def test_text_that_is_no_machine_config_is_named(run_module, monkeypatch):
    node(monkeypatch)
    result = run_module('talos_apply', config='- a list', **ARGS)
    assert result.failed and result.msg == 'config is not a machine config: a machine config document must be a mapping, not list'


def test_a_missing_config_path_is_named(run_module, monkeypatch, tmp_path):
    node(monkeypatch)
    result = run_module('talos_apply', config_path=str(tmp_path / 'cp-1.yaml'), **ARGS)
    assert result.failed and result.msg.startswith('config_path {0}: '.format(tmp_path / 'cp-1.yaml'))


def test_a_batch_applies_what_differs_and_names_the_node_that_failed(run_module, monkeypatch):
    fake = FakeTalosctl().node('10.0.40.11', config=RUNNING).node('10.0.40.12', config=RUNNING)
    fake.node('10.0.40.13', state=DOWN).install(monkeypatch, 'talos_apply')
    configs = {'10.0.40.11': RUNNING, '10.0.40.12': WANTED, '10.0.40.13': WANTED}
    result = run_module('talos_apply', diff=True, binary_path='/usr/bin/talosctl', configs=configs)
    assert result.failed and result.msg.startswith('1 of 3 nodes failed: 10.0.40.13: node 10.0.40.13 answers neither')
    assert result['nodes']['10.0.40.11']['changed'] is False and result['nodes']['10.0.40.12']['changed'] is True
    assert [d['after_header'] for d in result['diff']] == ['10.0.40.12']
    assert [call.nodes for call in fake.ran('apply-config')] == [['10.0.40.12']]


def test_config_and_configs_exclude_each_other(run_module, monkeypatch):
    node(monkeypatch)
    result = run_module('talos_apply', config=RUNNING, configs={'10.0.40.11': RUNNING}, **ARGS)
    assert result.failed and 'mutually exclusive' in result.msg
