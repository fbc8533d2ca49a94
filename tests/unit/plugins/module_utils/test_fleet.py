"""The fleet model: validation errors (file, key path, expectation), fleet_check codes, drain waves, gates."""

import copy
import datetime
import pathlib

import pytest

from ansible_collections.ephemeral.castle.plugins.module_utils import fleet, fleet_rules, fleet_schema

REPO = pathlib.Path(__file__).resolve().parents[4]
FIXTURES = REPO / 'tests' / 'fixtures' / 'fleet'
NOW = datetime.datetime(2026, 11, 20, 12, 0, tzinfo=datetime.timezone.utc)
DIGEST = 'sha256:' + 'ab' * 32


def base():
    return {
        'machines': [{'name': 'pve-old', 'role': 'frozen', 'state': 'draining'},
                     {'name': 'pve-new', 'role': 'production'},
                     {'name': 'laptop', 'role': 'workstation'}],
        'workloads': [
            {'name': 'app', 'current_host': 'pve-old', 'target_host': 'castle', 'owner': 'web', 'wave': 1,
             'depends_on': ['db', 'vault']},
            {'name': 'db', 'current_host': 'pve-old', 'target_host': 'castle', 'owner': 'data', 'wave': 2,
             'depends_on': ['vault'], 'stateful': True},
            {'name': 'vault', 'current_host': 'pve-old', 'target_host': 'castle', 'owner': 'platform', 'wave': 3,
             'stateful': True}],
        'tunnels': [{'name': 'shell', 'from': 'laptop', 'to': 'pve-new', 'direction': 'forward'}],
        'clusters': [{'name': 'castle', 'nodes': [{'name': 'cp-1', 'role': 'controlplane'},
                                                  {'name': 'w-1', 'role': 'worker'}]}]}


def errors_of(data, source='site.fleet.yml'):
    with pytest.raises(fleet_schema.FleetError) as caught:
        fleet_schema.validate(data, source)
    assert str(caught.value).startswith(source + ': ')
    return caught.value.errors


def test_a_good_fleet_validates_with_defaults_filled_in():
    found = fleet_schema.validate(base())
    assert found['machines'][1]['state'] == 'active'
    assert found['machines'][0]['labels'] == {} and found['machines'][0]['connection'] == {}
    assert found['workloads'][2]['depends_on'] == [] and found['workloads'][0]['stateful'] is False
    assert found['workloads'][0]['promotion']['stages'] == {s: False for s in fleet_schema.STAGES}
    assert found['clusters'][0]['role'] == 'production'
    # Defaults are fresh per row, never shared.
    assert found['machines'][0]['labels'] is not found['machines'][1]['labels']


@pytest.mark.parametrize('change, expected', [
    (lambda f: f['workloads'][2].update(target_host=42),
     "fleet.workloads[2].target_host: expected a string, got 42"),
    (lambda f: f['workloads'][1].update(target_host='nowhere'),
     "fleet.workloads[1].target_host: expected a machine, cluster or cluster node of the fleet, got unknown "
     "'nowhere'"),
    (lambda f: f['tunnels'][0].update(to='ghost'),
     "fleet.tunnels[0].to: expected a machine, cluster or cluster node of the fleet, got unknown 'ghost'"),
    (lambda f: f['machines'][0].update(role='legacy'),
     "fleet.machines[0].role: expected one of production, frozen, workstation, experimental, got 'legacy'"),
    (lambda f: f['machines'][1].pop('role'), "fleet.machines[1].role: required key is missing"),
    (lambda f: f['workloads'][0].update(wave='first'), "fleet.workloads[0].wave: expected an integer, got 'first'"),
    (lambda f: f['workloads'][0].update(stateful='yes'),
     "fleet.workloads[0].stateful: expected a boolean (true/false), got 'yes'"),
    (lambda f: f['workloads'][0].update(depends_on=['db', 'cache']),
     "fleet.workloads[0].depends_on[1]: expected a workload of the fleet, got unknown 'cache'"),
    (lambda f: f['machines'][0].update(colour='blue'),
     "fleet.machines[0].colour: unknown key; expected one of name, address, role, state, successor, connection, "
     "labels"),
    (lambda f: f['machines'].append({'name': 'pve-new', 'role': 'production'}),
     "fleet.machines[3].name: machine 'pve-new' is already defined at fleet.machines[1]"),
    (lambda f: f['clusters'][0]['nodes'].append({'name': 'laptop', 'role': 'worker'}),
     "fleet.clusters[0].nodes[2].name: host 'laptop' is already defined at fleet.machines[2]"),
    (lambda f: f['machines'][0].update(successor='pve-9'),
     "fleet.machines[0].successor: expected a machine of the fleet, got 'pve-9'"),
    (lambda f: f['clusters'][0].update(proxmox={'api_host': 'pve', 'api_token_secret': 's3cr3t'}),
     "fleet.clusters[0].proxmox.api_token_secret: expected a template that looks the secret up"),
    (lambda f: f['workloads'][1].update(promotion={'backup_restore': {'date': 'last week', 'reference': 'r'}}),
     "fleet.workloads[1].promotion.backup_restore.date: expected a date or time (ISO 8601"),
    (lambda f: f['clusters'][0].update(nodes=[{'name': 'w-1', 'role': 'worker'}]),
     "fleet.clusters[0].nodes: expected at least one node with role controlplane"),
    (lambda f: f.update(machines={'pve-old': {}}), "fleet.machines: expected a list, got a mapping"),
    (lambda f: f['clusters'][0]['nodes'][1].update(mac='BC:24:11:40:00'),
     "fleet.clusters[0].nodes[1].mac: expected a MAC address such as BC:24:11:40:00:01, got 'BC:24:11:40:00'"),
    (lambda f: [n.update(mac='bc:24:11:40:00:01') for n in f['clusters'][0]['nodes']],
     "fleet.clusters[0].nodes[1].mac: MAC bc:24:11:40:00:01 is already given at fleet.clusters[0].nodes[0].mac"),
    (lambda f: f['clusters'][0].update(talos={'endpoint': '10.0.40.20:6443'}),
     "fleet.clusters[0].talos.endpoint: expected the Kubernetes API as https://<host>:<port>, got '10.0.40.20:6443'"),
])
def test_validation_errors_name_the_key_path_and_the_expectation(change, expected):
    data = base()
    change(data)
    assert any(e.startswith(expected) for e in errors_of(data)), errors_of(data)


def test_a_node_is_placed_on_one_of_the_clusters_proxmox_nodes():
    data = base()
    data['clusters'][0]['proxmox'] = {'nodes': ['pve1', 'pve2'], 'node': 'pve1'}
    data['clusters'][0]['nodes'][1]['proxmox_node'] = 'pve2'
    assert fleet_schema.validate(data)['clusters'][0]['nodes'][1]['proxmox_node'] == 'pve2'
    data['clusters'][0]['nodes'][1]['proxmox_node'] = 'pve3'
    assert errors_of(data) == ["fleet.clusters[0].nodes[1].proxmox_node: expected one of the cluster's Proxmox VE "
                               "nodes (pve1, pve2), got 'pve3'"]
    # Only `node` given: that one is the cluster's node list.
    data['clusters'][0]['proxmox'] = {'node': 'pve1'}
    assert errors_of(data)[0].endswith("nodes (pve1), got 'pve3'")
    # No Proxmox nodes named at all: any node is accepted, Proxmox VE refuses an unknown one.
    data['clusters'][0]['proxmox'] = {}
    assert fleet_schema.validate(data)['clusters'][0]['nodes'][1]['proxmox_node'] == 'pve3'
    data['clusters'][0]['nodes'][1]['proxmox_node'] = 2
    assert errors_of(data)[0].startswith('fleet.clusters[0].nodes[1].proxmox_node: expected a string')


def test_a_literal_secret_is_refused_without_being_echoed():
    data = base()
    data['clusters'][0]['proxmox'] = {'api_host': 'pve', 'api_token_secret': 's3cr3t'}
    assert 's3cr3t' not in '\n'.join(errors_of(data))


def test_every_error_is_reported_at_once():
    data = base()
    data['workloads'][0]['wave'] = 'x'
    data['tunnels'][0]['direction'] = 'sideways'
    assert len(errors_of(data)) == 2


def test_a_fleet_file_error_names_the_file(tmp_path):
    path = tmp_path / 'bad.fleet.yml'
    path.write_text('plugin: ephemeral.castle.fleet\nfleet:\n  machines:\n    - {name: a, role: boss}\n')
    with pytest.raises(fleet_schema.FleetError) as caught:
        fleet.load_file(str(path))
    assert str(caught.value).startswith(str(path) + ': ')
    assert caught.value.errors == ["fleet.machines[0].role: expected one of production, frozen, workstation, "
                                   "experimental, got 'boss'"]
    path.write_text('machines: []\n')
    with pytest.raises(fleet_schema.FleetError, match='the fleet under the key `fleet:`'):
        fleet.load_file(str(path))


def codes(data):
    return [v['code'] for v in fleet_rules.check(fleet_schema.validate(data))]


def test_a_clean_fleet_has_no_violation():
    assert codes(base()) == []


def test_lab_and_fixed_fleets_pass_and_the_workstation_one_fails_per_critical_tunnel():
    assert fleet_rules.check(fleet.load_file(str(REPO / 'inventories' / 'lab' / 'lab.fleet.yml'))) == []
    assert fleet_rules.check(fleet.load_file(str(FIXTURES / 'fixed.fleet.yml'))) == []
    found = fleet_rules.check(fleet.load_file(str(FIXTURES / 'workstation-tunnels.fleet.yml')))
    assert [(v['code'], v['rows'][0]['tunnel']) for v in found] == [
        ('critical-tunnel-on-workstation', 'vault-reverse'), ('critical-tunnel-on-workstation', 'gateway-runtime')]
    assert 'starts on workstation laptop' in found[0]['message']
    assert 'ends on workstation laptop' in found[1]['message']


def test_workload_without_target_or_owner():
    data = base()
    del data['workloads'][0]['target_host']
    data['workloads'][2]['owner'] = ''
    found = fleet_rules.check(fleet_schema.validate(data))
    assert [(v['code'], v['rows']) for v in found] == [
        ('workload-no-target', [{'workload': 'app'}]), ('workload-no-owner', [{'workload': 'vault'}])]


def test_workload_targeting_a_frozen_machine():
    data = base()
    data['workloads'][1]['target_host'] = 'pve-old'
    found = fleet_rules.check(fleet_schema.validate(data))
    assert [(v['code'], v['rows']) for v in found] == [
        ('workload-targets-frozen', [{'workload': 'db', 'target_host': 'pve-old'}])]


def test_critical_tunnel_on_a_workstation_but_not_a_plain_one():
    data = base()
    assert codes(data) == []
    data['tunnels'][0]['critical'] = True
    assert codes(data) == ['critical-tunnel-on-workstation']


def test_a_dependency_moves_after_its_dependents():
    data = base()
    # vault is a dependency of db and app; moving it in db's wave or earlier breaks the rule for db and app.
    data['workloads'][2]['wave'] = 2
    found = fleet_rules.check(fleet_schema.validate(data))
    assert [(v['code'], [r['workload'] for r in v['rows']]) for v in found] == [
        ('wave-before-dependent', ['vault', 'db'])]
    data['workloads'][2]['wave'] = 1
    found = fleet_rules.check(fleet_schema.validate(data))
    assert [[r['workload'] for r in v['rows']] for v in found] == [['vault', 'app'], ['vault', 'db']]


def test_dependency_cycles_are_reported_once_per_tangle():
    data = base()
    data['workloads'][2]['depends_on'] = ['app']
    data['workloads'].append({'name': 'x', 'target_host': 'castle', 'owner': 'o', 'wave': 9, 'depends_on': ['y']})
    data['workloads'].append({'name': 'y', 'target_host': 'castle', 'owner': 'o', 'wave': 8, 'depends_on': ['x']})
    found = [v for v in fleet_rules.check(fleet_schema.validate(data)) if v['code'] == 'dependency-cycle']
    assert [[r['workload'] for r in v['rows']] for v in found] == [['app', 'vault'], ['x', 'y']]
    assert found[0]['message'] == 'dependency cycle: app -> vault -> app'


def test_a_long_dependency_chain_is_no_cycle():
    chain = [{'name': 'w{0}'.format(i), 'target_host': 'castle', 'owner': 'o', 'wave': i,
              'depends_on': ['w{0}'.format(i + 1)] if i < 4999 else []} for i in range(5000)]
    data = base()
    data['workloads'] = chain
    assert fleet_rules.check(fleet_schema.validate(data)) == []


def test_drain_plan_orders_waves_and_names_what_blocks_them():
    data = base()
    data['workloads'].append({'name': 'log', 'current_host': 'pve-old', 'target_host': 'pve-old', 'owner': 'ops',
                              'wave': 1})
    plan = fleet_rules.drain_plan(fleet_schema.validate(data), 'pve-old')
    assert [(w['wave'], w['workloads']) for w in plan['waves']] == [(1, ['app']), (2, ['db']), (3, ['vault'])]
    assert plan['waves'][0]['blocked_by'] == []
    assert plan['waves'][1]['blocked_by'] == [
        {'workload': 'db', 'reason': 'app (wave 1) depends on it and has not moved yet', 'waits_for': 'app'}]
    assert [b['waits_for'] for b in plan['waves'][2]['blocked_by']] == ['app', 'db']
    assert plan['staying'] == ['log'] and plan['workloads'] == 3


def test_drain_plan_unblocks_once_dependents_moved_and_flags_bad_targets():
    data = base()
    data['workloads'][0]['current_host'] = 'castle'
    data['machines'][1]['state'] = 'drained'
    data['workloads'][2]['target_host'] = 'pve-new'
    plan = fleet_rules.drain_plan(fleet_schema.validate(data), 'pve-old')
    assert [(w['wave'], w['blocked_by']) for w in plan['waves']] == [
        (2, []), (3, [{'workload': 'vault', 'reason': 'target pve-new is drained'},
                      {'workload': 'vault', 'reason': 'db (wave 2) depends on it and has not moved yet',
                       'waits_for': 'db'}])]
    with pytest.raises(fleet_schema.FleetError, match="'mars' is not a machine"):
        fleet_rules.drain_plan(fleet_schema.validate(data), 'mars')


def promoted(tmp_path, **changes):
    """A fleet whose workload `app` meets every promotion rule, changed by `changes`."""
    overlay = tmp_path / 'apps' / 'app'
    (overlay / 'observe').mkdir(parents=True, exist_ok=True)
    (overlay / 'app.toml').write_text('name = "app"\n')
    for name in ('deploy.yaml', 'observe/kustomization.yaml', 'promote.yml', 'rollback.yaml'):
        (overlay / name).write_text('{}\n')
    data = base()
    data['workloads'][0]['stateful'] = True
    data['workloads'][0]['promotion'] = {
        'overlay': 'apps/app', 'stages': {s: True for s in fleet_schema.STAGES},
        'backup_restore': {'date': '2026-11-19', 'reference': 'restore-drill-42'},
        'canary': {'date': '2026-11-18T09:30:00Z', 'reference': 'canary-7'},
        'approval': {'by': 'alice', 'at': '2026-11-19T10:00:00Z'}, 'image': 'ghcr.io/x/app:1.4.2'}
    data['workloads'][0]['promotion'].update(changes)
    return fleet_schema.validate(data)


def test_gate_passes_a_fully_promoted_workload(tmp_path):
    assert fleet_rules.gate_workload(promoted(tmp_path), 'app', str(tmp_path)) == (True, [])
    assert fleet_rules.gate_workload(promoted(tmp_path, image='reg:5000/x/app@' + DIGEST), 'app', str(tmp_path))[0]


@pytest.mark.parametrize('image, why', [
    ('ghcr.io/x/app:latest', 'uses the latest tag'), ('ghcr.io/x/app', 'is untagged'),
    ('reg:5000/x/app', 'is untagged'), ('ghcr.io/x/app:stable', "tag 'stable', which is not a version"),
    ('ghcr.io/x/app@sha256:abc', 'malformed digest'), (None, 'no image reference')])
def test_gate_refuses_an_unpinned_image(tmp_path, image, why):
    passed, reasons = fleet_rules.gate_workload(promoted(tmp_path, image=image), 'app', str(tmp_path))
    assert not passed
    assert [r['code'] for r in reasons] == ['image-not-pinned'] and why in reasons[0]['message']


def test_gate_lists_every_reason(tmp_path):
    data = promoted(tmp_path, stages={'deploy': True, 'observe': False, 'promote': True, 'rollback': False})
    for key in ('backup_restore', 'canary', 'approval'):
        del data['workloads'][0]['promotion'][key]
    (tmp_path / 'apps' / 'app' / 'app.toml').unlink()
    (tmp_path / 'apps' / 'app' / 'promote.yml').unlink()
    data['workloads'][0]['target_host'] = 'laptop'
    passed, reasons = fleet_rules.gate_workload(data, 'app', str(tmp_path))
    assert not passed
    assert [r['code'] for r in reasons] == ['target-not-production', 'app-toml-missing', 'stage-manifest-missing',
                                            'stage-not-proven', 'stage-not-proven', 'no-backup-restore',
                                            'no-canary', 'no-approval']
    assert 'promote' in reasons[2]['message'] and 'observe' in reasons[3]['message']


def test_gate_refuses_a_missing_overlay(tmp_path):
    passed, reasons = fleet_rules.gate_workload(promoted(tmp_path, overlay='apps/none'), 'app', str(tmp_path))
    assert [r['code'] for r in reasons] == ['overlay-missing']


def test_machine_gate_wants_every_workload_drained_and_fresh_evidence():
    data = base()
    data['workloads'][1]['promotion'] = {'backup_restore': {'date': '2026-11-01', 'reference': 'drill-1'}}
    passed, reasons = fleet_rules.gate_machine(fleet_schema.validate(data), 'pve-old', NOW, 7)
    assert not passed
    assert [r['code'] for r in reasons] == ['not-drained'] * 3 + ['backup-restore-stale', 'no-backup-restore']
    for w in data['workloads']:
        w['previous_host'], w['current_host'] = 'pve-old', 'castle'
    data['workloads'][1]['promotion']['backup_restore']['date'] = '2026-11-18'
    data['workloads'][2]['promotion'] = {'backup_restore': {'date': '2026-11-21', 'reference': 'drill-2'}}
    passed, reasons = fleet_rules.gate_machine(fleet_schema.validate(data), 'pve-old', NOW, 7)
    assert [r['code'] for r in reasons] == ['backup-restore-in-future']
    data['workloads'][2]['promotion']['backup_restore']['date'] = '2026-11-20T08:00:00Z'
    assert fleet_rules.gate_machine(fleet_schema.validate(data), 'pve-old', NOW, 7) == (True, [])
    assert fleet_rules.gate_machine(fleet_schema.validate(copy.deepcopy(data)), 'pve-new', NOW, 7) == (True, [])


def backed_up(claim, state='Completed', created='2026-11-20T11:00:00Z', error=''):
    return {'name': 'backup-' + claim.replace('/', '-'), 'kind': 'volume', 'claim': claim, 'state': state,
            'created': created, 'error': error}


def test_machine_gate_reads_the_backups_just_taken():
    data = base()
    data['workloads'][1].update(volumes=['data/db-0'], current_host='castle', target_host='castle',
                                previous_host='pve-old')
    data['workloads'][1]['promotion'] = {'backup_restore': {'date': '2025-01-01', 'reference': 'old drill'}}
    data['workloads'][1]['current_host'] = 'pve-new'
    fleet_data = fleet_schema.validate(data)
    # A recorded date is not enough where a real backup can be looked up: no backup of the claim refuses.
    passed, reasons = fleet_rules.gate_machine(fleet_data, 'castle', NOW, 7, backups=[])
    assert not passed and [r['code'] for r in reasons] == ['backup-missing']
    assert 'data/db-0' in reasons[0]['message'] and 'db' in reasons[0]['message']
    # Without backups given, the old rule reads the recorded evidence only (db does not run on castle).
    assert fleet_rules.gate_machine(fleet_data, 'castle', NOW, 7) == (True, [])
    assert fleet_rules.gate_machine(fleet_data, 'castle', NOW, 7, backups=[backed_up('data/db-0')]) == (True, [])
    failed = backed_up('data/db-0', state='Error', error='backup target default is unavailable')
    etcd = {'name': 'etcd-castle.snapshot', 'kind': 'etcd', 'state': 'Completed', 'created': '2026-11-18T00:00:00Z'}
    passed, reasons = fleet_rules.gate_machine(fleet_data, 'castle', NOW, 7, backups=[failed, etcd],
                                               backup_max_age_hours=24)
    assert [r['code'] for r in reasons] == ['backup-failed', 'backup-stale']
    assert reasons[0]['message'] == ('volume backup backup-data-db-0 of claim data/db-0 did not complete (Error): '
                                     'backup target default is unavailable')
    assert 'etcd backup etcd-castle.snapshot' in reasons[1]['message'] and '24 hours' in reasons[1]['message']
    # On pve-old, which db left, its claim must be backed up too; vault, with no claims listed, needs evidence.
    passed, reasons = fleet_rules.gate_machine(fleet_data, 'pve-old', NOW, 7, backups=[])
    assert [r['code'] for r in reasons] == ['not-drained', 'not-drained', 'backup-missing', 'no-backup-restore']


def test_backup_settings_and_volumes_are_checked():
    data = base()
    data['workloads'][1]['volumes'] = ['data/db-0', 'no-namespace', 'Data/Upper']
    data['clusters'][0]['backup'] = {'target': 'https://bucket', 'secret_access_key': 'plain'}
    errors = errors_of(data)
    assert 'fleet.workloads[1].volumes[1]: expected a PersistentVolumeClaim as <namespace>/<name>, got ' \
           "'no-namespace'" in errors
    assert any(e.startswith('fleet.workloads[1].volumes[2]:') for e in errors)
    assert any(e.startswith('fleet.clusters[0].backup.secret_access_key: expected a template') for e in errors)
    assert "fleet.clusters[0].backup.target: expected a Longhorn S3 backup target as s3://<bucket>@<region>/[<path>], " \
           "got 'https://bucket'" in errors
    data['workloads'][1]['volumes'] = ['data/db-0']
    data['clusters'][0]['backup'] = {'target': 's3://castle-backups@us-east-1/',
                                     'secret_access_key': "{{ lookup('ansible.builtin.env', 'S3_KEY') }}"}
    backup = fleet_schema.validate(data)['clusters'][0]['backup']
    assert backup['credential_secret'] == 'longhorn-backup-credentials' and backup['max_age_hours'] == 24
