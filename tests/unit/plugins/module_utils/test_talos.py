"""The talosctl runner (argv, retries, errors, secret files), output parsing and config documents (patches:
test_talos_config_merge.py)."""

import os
import stat

import pytest

from ansible_collections.ephemeral.castle.plugins.module_utils import talos, talos_documents, talos_output

UNAVAILABLE = ('rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: '
               'dial tcp 10.0.40.11:50000: connect: connection refused"')


class FakeModule(object):
    """What the runner needs of an AnsibleModule."""

    def __init__(self, **params):
        self.params = dict(binary_path=None, talosconfig=None, talosconfig_content=None, context=None,
                           endpoints=None, nodes=None, retries=3, retry_timeout=60)
        self.params.update(params)

    def get_bin_path(self, name, required=False):
        return '/usr/local/bin/' + name


class FakeRun(object):
    """Answers run_command calls from a script of (rc, stdout, stderr) and records each argv, and
    what each file named on the command line held at the time."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []
        self.files = []

    def __call__(self, argv, check_rc=False, cwd=None):
        assert isinstance(argv, list)
        self.calls.append(argv)
        self.files.append(dict((a, open(a).read()) for a in argv if os.path.isfile(a)))
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class Clock(object):
    def __init__(self):
        self.now = 100.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def runner(answers, clock=None, **params):
    clock = clock or Clock()
    run = answers if isinstance(answers, FakeRun) else FakeRun(*answers)
    return talos.Talosctl(FakeModule(**params), run_command=run, sleep=clock.sleep, clock=clock,
                          jitter=lambda low, high: high), run, clock


# ------------------------------------------------------------------------ argv

def test_connection_options_become_global_flags():
    tc, run, dummy = runner([(0, '', '')], talosconfig='/etc/talos/lab', context='lab',
                            endpoints=['10.0.40.10'], nodes=['10.0.40.11', '10.0.40.12'])
    tc.run(['etcd', 'members'])
    assert run.calls == [['/usr/local/bin/talosctl', 'etcd', 'members', '--talosconfig', '/etc/talos/lab',
                          '--context', 'lab', '--endpoints', '10.0.40.10', '--nodes', '10.0.40.11,10.0.40.12']]


def test_binary_path_wins_over_the_search_path():
    tc, run, dummy = runner([(0, '', '')], binary_path='/opt/talos/talosctl')
    tc.run(['version', '--client'], connect=False)
    assert run.calls == [['/opt/talos/talosctl', 'version', '--client']]


def test_insecure_goes_to_the_node_without_talosconfig_or_endpoints():
    tc, run, dummy = runner([(0, '', '')], talosconfig='/etc/talos/lab', endpoints=['10.0.40.10'],
                            nodes=['10.0.40.11'])
    tc.run(['apply-config', '--file', '/x'], insecure=True, nodes=['10.0.40.21'])
    assert run.calls[0] == ['/usr/local/bin/talosctl', 'apply-config', '--file', '/x', '--insecure',
                            '--nodes', '10.0.40.21']


def test_local_commands_take_no_connection_flags():
    tc, run, dummy = runner([(0, '', '')], talosconfig='/etc/talos/lab', nodes=['10.0.40.11'])
    tc.run(['validate', '--config', 'c.yaml', '--mode', 'metal'], connect=False)
    assert run.calls[0] == ['/usr/local/bin/talosctl', 'validate', '--config', 'c.yaml', '--mode', 'metal']


# ------------------------------------------------------------- secrets handling

def test_talosconfig_content_reaches_talosctl_as_a_private_file_never_in_argv():
    content = 'context: lab\ncontexts:\n  lab:\n    key: c2VjcmV0LWtleQ==\n'
    tc, run, dummy = runner([(0, 'ok', '')], talosconfig_content=content, nodes=['10.0.40.11'])
    with tc:
        tc.run(['version'])
        path = run.calls[0][run.calls[0].index('--talosconfig') + 1]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        assert run.files[0][path] == content
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))
    assert not any(content in arg or 'c2VjcmV0' in arg for arg in run.calls[0])


def test_secret_files_are_removed_when_the_work_fails():
    tc, dummy, dummy2 = runner([(0, '', '')])
    with pytest.raises(RuntimeError):
        with tc:
            path = tc.secret_file('secrets.yaml', 'secret')
            raise RuntimeError('boom')
    assert not os.path.exists(path)


def test_sensitive_stdout_is_left_out_of_the_error():
    tc, dummy, dummy2 = runner([(1, 'apiVersion: v1\nusers: [{client-key-data: S3CR3T}]', 'error: boom')])
    with pytest.raises(talos.TalosError) as failed:
        tc.run(['kubeconfig', '-'], sensitive=True)
    assert 'S3CR3T' not in repr(failed.value.details())
    assert failed.value.stdout == talos_output.HIDDEN


# ------------------------------------------------------------------- errors

def test_a_failure_carries_rc_stdout_stderr_and_the_command():
    tc, dummy, dummy2 = runner([(1, 'partial', 'error validating config: 1 error occurred:\n\t* cluster name is empty')])
    with pytest.raises(talos.TalosError) as failed:
        tc.run(['validate', '--config', '/tmp/c.yaml', '--mode', 'metal'], connect=False)
    details = failed.value.details()
    assert details == dict(rc=1, stdout='partial',
                           stderr='error validating config: 1 error occurred:\n\t* cluster name is empty',
                           command='/usr/local/bin/talosctl validate --config /tmp/c.yaml --mode metal')
    assert str(failed.value) == 'talosctl validate failed (rc=1): * cluster name is empty'


# ------------------------------------------------------------------- retries

def test_unavailable_is_retried_with_growing_jittered_waits():
    tc, run, clock = runner([(1, '', UNAVAILABLE), (1, '', UNAVAILABLE), (0, 'members', '')], nodes=['10.0.40.11'])
    assert tc.run(['etcd', 'members']) == 'members'
    assert len(run.calls) == 3
    assert clock.slept == [0.5, 1.0]


def test_retries_are_bounded():
    tc, run, dummy = runner([(1, '', UNAVAILABLE)], retries=2, nodes=['10.0.40.11'])
    with pytest.raises(talos.TalosError) as failed:
        tc.run(['version'])
    assert len(run.calls) == 3
    assert 'after 3 tries' in str(failed.value)


def test_no_retry_starts_past_the_deadline():
    tc, run, clock = runner([(1, '', UNAVAILABLE)], retries=10, retry_timeout=2, nodes=['10.0.40.11'])
    with pytest.raises(talos.TalosError):
        tc.run(['version'])
    # 0.5 + 1.0, then the wait is cut to what is left (0.5), then the deadline has passed.
    assert clock.slept == [0.5, 1.0, 0.5]
    assert len(run.calls) == 4


@pytest.mark.parametrize('stderr', [
    'error applying new configuration: rpc error: code = InvalidArgument desc = configuration validation failed',
    'rpc error: code = PermissionDenied desc = not authorized',
    'rpc error: code = AlreadyExists desc = etcd data directory is not empty',
])
def test_other_failures_are_not_retried(stderr):
    tc, run, clock = runner([(1, '', stderr)], nodes=['10.0.40.11'])
    with pytest.raises(talos.TalosError):
        tc.run(['apply-config', '--file', 'x'])
    assert len(run.calls) == 1 and clock.slept == []


def test_local_commands_and_opted_out_calls_are_not_retried():
    tc, run, dummy = runner([(1, '', UNAVAILABLE)])
    with pytest.raises(talos.TalosError):
        tc.run(['gen', 'secrets'], connect=False)
    with pytest.raises(talos.TalosError):
        tc.run(['health'], retry=False)
    assert len(run.calls) == 2


# ---------------------------------------------------------------- node queries

def test_a_node_answering_only_insecurely_is_in_maintenance():
    status = '{"node": "10.0.40.21", "metadata": {"id": "machine"}, "spec": {"stage": "maintenance", "status": {"ready": false}}}'
    tc, run, dummy = runner([(1, '', 'rpc error: code = Unavailable desc = tls: certificate required'), (0, status, '')],
                            retries=0, talosconfig='/t', nodes=['10.0.40.21'])
    state, spec, detail = tc.machine_status('10.0.40.21')
    assert state == 'maintenance' and spec['stage'] == 'maintenance'
    assert '--insecure' in run.calls[1] and '--talosconfig' not in run.calls[1]


def machine_config(rid, machine_type):
    return ('node: 10.0.40.11\nmetadata:\n  namespace: config\n  type: MachineConfigs.config.talos.dev\n  id: {0}\n'
            'spec: |\n  version: v1alpha1\n  machine:\n    type: {1}\n'.format(rid, machine_type))


def test_running_config_reads_the_spec_text():
    tc, run, dummy = runner([(0, machine_config('v1alpha1', 'controlplane'), '')])
    assert tc.running_config('10.0.40.11') == [{'version': 'v1alpha1', 'machine': {'type': 'controlplane'}}]
    assert run.calls[0][1:5] == ['get', 'machineconfig', '--output', 'yaml']


def test_running_config_is_the_active_one_not_the_persistent_one():
    """Talos lists MachineConfigs `persistent` (on disk, ahead after a staged apply) then `v1alpha1` (running)."""
    out = machine_config('persistent', 'staged-one') + '---\n' + machine_config('v1alpha1', 'running-one')
    tc, run, dummy = runner([(0, out, '')])
    assert tc.running_config('10.0.40.11') == [{'version': 'v1alpha1', 'machine': {'type': 'running-one'}}]


def test_answers_on_stderr_are_returned_with_stdout():
    tc, run, dummy = runner([(0, '', 'Applied configuration without a reboot\n')])
    assert tc.run_both(['apply-config', '--file', 'x']) == ('', 'Applied configuration without a reboot\n')


def test_node_errors_of_a_multierror_are_named_per_node():
    err = ('error executing bootstrap: 2 errors occurred:\n\t* 10.0.40.11: rpc error: code = AlreadyExists desc = '
           'etcd data directory is not empty\n\t* fd00::12: rpc error: code = Unavailable desc = gone\n\n')
    assert talos_output.node_errors(err) == {
        '10.0.40.11': 'rpc error: code = AlreadyExists desc = etcd data directory is not empty',
        'fd00::12': 'rpc error: code = Unavailable desc = gone'}
    assert talos_output.node_errors('error getting version: rpc error: code = Unavailable desc = x') == {}
    tc, run, dummy = runner([(1, '', err)], retries=0)
    with pytest.raises(talos.TalosError) as failed:
        tc.run(['bootstrap'])
    assert str(failed.value) == (
        'talosctl bootstrap failed (rc=1): 10.0.40.11: rpc error: code = AlreadyExists desc = etcd data directory '
        'is not empty; fd00::12: rpc error: code = Unavailable desc = gone')


# ------------------------------------------------------------------ parsing

def test_json_stream_of_resources():
    text = '{\n  "node": "a",\n  "spec": {"x": 1}\n}\n{\n  "node": "b",\n  "spec": {"x": 2}\n}\n'
    assert [d['node'] for d in talos_output.parse_json_stream(text)] == ['a', 'b']
    with pytest.raises(talos.TalosError):
        talos_output.parse_json_stream('{"a": 1} not json')


def test_etcd_members_table():
    text = ('NODE         ID                 HOSTNAME   PEER URLS                 CLIENT URLS               LEARNER\n'
            '10.0.40.11   3a2f7c9d1e0b4a56   cp-1       https://10.0.40.11:2380   https://10.0.40.11:2379   false\n')
    (row,) = talos_output.parse_table(text)
    assert row['HOSTNAME'] == 'cp-1' and row['PEER URLS'] == 'https://10.0.40.11:2380' and row['LEARNER'] == 'false'
    assert talos_output.parse_table('') == []


def test_version_output():
    text = ('Client:\n\tTag:         v1.11.6\n\tSHA:         abc\nServer:\n\tNODE:        10.0.40.11\n'
            '\tTag:         v1.11.6\n\tEnabled:     RBAC\n')
    found = talos_output.parse_version(text)
    assert found['client']['tag'] == 'v1.11.6'
    assert found['servers'] == [{'node': '10.0.40.11', 'tag': 'v1.11.6', 'enabled': 'RBAC'}]


def test_short_version_output():
    """--short shortens the client's part to `Talos <tag>` (pkg/machinery/version Short()); servers stay long."""
    text = ('Client:\nTalos v1.11.6\nServer:\n\tNODE:        10.0.40.11\n\tTag:         v1.11.5\n'
            '\tSHA:         6dd14300\n\tEnabled:     RBAC\n')
    found = talos_output.parse_version(text)
    assert found['client'] == {'name': 'Talos', 'tag': 'v1.11.6'}
    assert found['servers'] == [{'node': '10.0.40.11', 'tag': 'v1.11.5', 'sha': '6dd14300', 'enabled': 'RBAC'}]


def test_redaction_hides_keys_and_tokens_but_not_the_rest():
    config = {'machine': {'token': 'abc.def', 'ca': {'crt': 'LS0t', 'key': 'LS0tS'}, 'certSANs': ['a']},
              'cluster': {'secretboxEncryptionSecret': 'x', 'clusterName': 'lab'}}
    shown = talos_documents.redacted(config)
    assert shown['machine']['certSANs'] == ['a'] and shown['cluster']['clusterName'] == 'lab'
    for value in (shown['machine']['token'], shown['machine']['ca']['crt'], shown['machine']['ca']['key'],
                  shown['cluster']['secretboxEncryptionSecret']):
        assert value.startswith(talos_output.HIDDEN)
    assert 'abc.def' not in repr(shown)


def test_kubeconfig_identity_ignores_the_client_certificate():
    first = ('apiVersion: v1\nclusters:\n- name: lab\n  cluster: {server: "https://10.0.40.10:6443", '
             'certificate-authority-data: Q0E=}\ncontexts:\n- name: admin@lab\nusers:\n- name: admin@lab\n'
             '  user: {client-certificate-data: T05F, client-key-data: a2V5}\n')
    second = first.replace('T05F', 'VFdP').replace('a2V5', 'a2V5Mg==')
    assert talos_documents.kubeconfig_identity(first) == talos_documents.kubeconfig_identity(second)
    assert talos_documents.kubeconfig_identity(first) != talos_documents.kubeconfig_identity(first.replace('Q0E=', 'Q0Ey'))
