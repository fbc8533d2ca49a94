"""fleet_gate run in-process on fleet files: every reason of a refusal, and for a machine the token it issues
(on a pass or an override, for exactly the names it clears, recorded in the journal by its SHA-256), none in
check mode or without a journal, and errors naming the bad input."""

import datetime
import hashlib
import json
import re

import pytest
import yaml

from ansible_collections.ephemeral.castle.plugins.module_utils import gate

STAGES = ('deploy', 'observe', 'promote', 'rollback')


def today(days=0):
    return (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)).strftime('%Y-%m-%d')


def fleet(drained=True):
    """pve-old, drained (its database moved to pve-new, freshly backed up) or not, and the castle cluster."""
    return {
        'machines': [{'name': 'pve-old', 'role': 'frozen', 'state': 'draining'},
                     {'name': 'pve-new', 'role': 'production'}],
        'workloads': [{'name': 'db', 'current_host': 'pve-new' if drained else 'pve-old', 'previous_host': 'pve-old',
                       'target_host': 'pve-new', 'owner': 'data', 'wave': 1, 'stateful': True,
                       'promotion': {'backup_restore': {'date': today(-1), 'reference': 'drill-9'}}}],
        'clusters': [{'name': 'castle', 'nodes': [{'name': 'cp-1', 'role': 'controlplane'},
                                                  {'name': 'w-1', 'role': 'worker'}]}]}


@pytest.fixture
def src(tmp_path):
    def write(data):
        path = tmp_path / 'site.fleet.yml'
        path.write_text(yaml.safe_dump({'plugin': 'ephemeral.castle.fleet', 'fleet': data}), encoding='utf-8')
        return str(path)
    return write


def records(journal):
    return [json.loads(m.group(1)) for m in re.finditer(r'<!-- castle-gate (\{.*\}) -->', journal.read_text())]


def test_a_workload_gate_returns_every_reason_and_no_token(run_module, tmp_path):
    result = run_module('fleet_gate', fleet=fleet(), workload='db', base_dir=str(tmp_path))
    assert not result.failed and not result.changed and result['passed'] is False
    assert result['target'] == 'workload/db'
    assert [r['code'] for r in result['reasons']] == ['no-overlay'] + ['stage-not-proven'] * 4 + [
        'no-canary', 'no-approval', 'image-not-pinned']
    assert 'token' not in result and 'cleared' not in result


def test_a_fully_promoted_workload_passes(run_module, tmp_path):
    overlay = tmp_path / 'apps' / 'db'
    overlay.mkdir(parents=True)
    for name in ('app.toml',) + tuple(stage + '.yaml' for stage in STAGES):
        (overlay / name).write_text('{}\n')
    data = fleet()
    data['workloads'][0]['promotion'].update(
        overlay='apps/db', stages={s: True for s in STAGES}, canary={'date': today(-2), 'reference': 'canary-1'},
        approval={'by': 'alice', 'at': today(-1)}, image='ghcr.io/x/db:16.4')
    result = run_module('fleet_gate', fleet=data, workload='db', base_dir=str(tmp_path), fail_on_refusal=True)
    assert not result.failed and result['passed'] is True and result['reasons'] == []


def test_a_refused_machine_fails_on_refusal_naming_every_reason_and_writes_nothing(run_module, src, tmp_path):
    journal = tmp_path / 'journal.md'
    result = run_module('fleet_gate', src=src(fleet(drained=False)), machine='pve-old', journal=str(journal),
                        fail_on_refusal=True)
    assert result.failed and result.msg == 'machine/pve-old does not pass the gate: [not-drained] workload db ' \
                                           'still runs on pve-old'
    assert result['passed'] is False and result['overridden'] is False and 'token' not in result
    assert not journal.exists()


def test_a_cleared_cluster_gets_a_token_for_its_nodes_recorded_in_the_journal(run_module, src, tmp_path):
    journal = tmp_path / 'journal.md'
    path = src(fleet())
    result = run_module('fleet_gate', diff=True, src=path, machine='castle', journal=str(journal), token_ttl=600)
    assert not result.failed and result.changed and result['passed'] is True
    assert result['kind'] == 'cluster' and result['cleared'] == ['cp-1', 'w-1'] and result['overridden'] is False
    token = result['token']
    assert result['token_id'] == hashlib.sha256(token.encode()).hexdigest()[:12]
    expires = datetime.datetime.strptime(result['expires'], '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=datetime.timezone.utc)
    assert 590 <= (expires - datetime.datetime.now(datetime.timezone.utc)).total_seconds() <= 600
    text = journal.read_text()
    assert token not in text
    [record] = records(journal)
    assert record['event'] == 'issue' and record['id'] == result['token_id'] and record['target'] == 'castle'
    assert record['cleared'] == ['cp-1', 'w-1'] and record['expires'] == result['expires']
    assert record['fleet_sha256'] == hashlib.sha256(open(path, 'rb').read()).hexdigest()
    assert result['diff']['after'] in text and 'gate passed' in result['diff']['after']
    # The token is the one the destructive modules accept, for those names only.
    assert gate.check(str(journal), token, ['w-1'], 'reset')['id'] == result['token_id']
    with pytest.raises(gate.GateError, match='not pve-old'):
        gate.check(str(journal), token, ['pve-old'], 'reset')


@pytest.mark.parametrize('machine, kind, cleared', [('cp-1', 'node', ['cp-1']), ('pve-old', 'machine', ['pve-old'])])
def test_a_node_or_a_machine_clears_only_itself(run_module, src, tmp_path, machine, kind, cleared):
    result = run_module('fleet_gate', src=src(fleet()), machine=machine, journal=str(tmp_path / 'journal.md'))
    assert result['passed'] is True and result['kind'] == kind and result['cleared'] == cleared
    assert records(tmp_path / 'journal.md')[0]['cleared'] == cleared


def test_an_override_issues_a_token_and_records_the_reason_with_the_refusals(run_module, src, tmp_path):
    journal = tmp_path / 'journal.md'
    result = run_module('fleet_gate', src=src(fleet(drained=False)), machine='pve-old', journal=str(journal),
                        override_reason='the disk is failing', fail_on_refusal=True)
    assert not result.failed and result.changed and result['passed'] is False and result['overridden'] is True
    assert result['token'] and [r['code'] for r in result['reasons']] == ['not-drained']
    line = journal.read_text().splitlines()[-1]
    assert '"the disk is failing"' in line and '[not-drained] workload db still runs on pve-old' in line
    assert result['token_id'] in line


def test_check_mode_issues_no_token_and_writes_nothing(run_module, src, tmp_path):
    journal = tmp_path / 'journal.md'
    result = run_module('fleet_gate', check_mode=True, src=src(fleet()), machine='castle', journal=str(journal))
    assert not result.failed and not result.changed and result['passed'] is True
    assert result['cleared'] == ['cp-1', 'w-1'] and 'token' not in result
    assert not journal.exists()


def test_without_a_journal_no_token_is_issued(run_module, src):
    result = run_module('fleet_gate', src=src(fleet()), machine='castle')
    assert not result.changed and result['passed'] is True and 'token' not in result


def test_a_token_needs_the_fleet_file(run_module, tmp_path):
    journal = tmp_path / 'journal.md'
    result = run_module('fleet_gate', fleet=fleet(), machine='castle', journal=str(journal))
    assert result.failed and 'give src (not fleet) with journal' in result.msg
    assert not journal.exists()


@pytest.mark.parametrize('args, msg', [
    ({'workload': 'db', 'machine': 'pve-old'}, 'give exactly one of workload and machine'),
    ({}, 'give exactly one of workload and machine'),
    ({'machine': 'pve-old', 'max_evidence_age_days': -1}, 'max_evidence_age_days must be 0 or more, not -1'),
    ({'machine': 'pve-old', 'token_ttl': 0}, 'token_ttl must be more than 0 seconds, not 0'),
    ({'machine': 'pve-old', 'override_reason': ' '}, 'override_reason must say why the gate may be overridden, not be empty'),
    ({'machine': 'mars'}, "'mars' is not a machine, cluster or cluster node of the fleet"),
    ({'workload': 'ghost'}, "'ghost' is not a workload of the fleet"),
])
def test_bad_input_fails_naming_it(run_module, args, msg):
    result = run_module('fleet_gate', fleet=fleet(), **args)
    assert result.failed and result.msg == msg


def test_an_invalid_fleet_fails_naming_the_key_path(run_module):
    data = fleet()
    data['workloads'][0]['promotion']['backup_restore']['date'] = 'yesterday'
    result = run_module('fleet_gate', fleet=data, machine='pve-old')
    assert result.failed and result['errors'] == [
        "fleet.workloads[0].promotion.backup_restore.date: expected a date or time (ISO 8601, e.g. 2026-11-02 or "
        "2026-11-02T10:00:00Z), got 'yesterday'"]


def test_a_cluster_gate_reads_the_backups_just_taken_and_issues_no_token_on_a_failed_one(run_module, src, tmp_path):
    data = fleet()
    data['workloads'][0].update(target_host='castle', volumes=['data/db-0'])
    journal = tmp_path / 'phoenix-journal.md'
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    failed = {'name': 'pvc-1', 'kind': 'volume', 'claim': 'data/db-0', 'state': 'Error', 'created': None,
              'error': 'backup target default is unavailable'}
    refused = run_module('fleet_gate', src=src(data), machine='castle', journal=str(journal), backups=[failed])
    assert refused['passed'] is False and 'token' not in refused and not journal.exists()
    assert refused['reasons'] == [{'code': 'backup-failed', 'message': 'volume backup pvc-1 of claim data/db-0 did '
                                   'not complete (Error): backup target default is unavailable'}]
    done = dict(failed, name='backup-1', state='Completed', created=now, error='')
    passed = run_module('fleet_gate', src=src(data), machine='castle', journal=str(journal), backups=[done])
    assert passed['passed'] is True and passed['token'] and passed['cleared'] == ['cp-1', 'w-1']
    bad = run_module('fleet_gate', src=src(data), machine='castle', backups=[done], backup_max_age_hours=0)
    assert bad.failed and bad['msg'] == 'backup_max_age_hours must be more than 0, not 0'
