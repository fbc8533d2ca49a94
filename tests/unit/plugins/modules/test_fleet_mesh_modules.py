"""fleet_mesh_plan and fleet_probe run in-process: the plan of a fleet file (errors named, nothing changed) and one
request along a path, answered, refused, or answered without the expected text."""

import pathlib
import socket

import pytest

REPO = pathlib.Path(__file__).resolve().parents[4]
LAB_MESH = REPO / 'inventories' / 'lab-mesh' / 'mesh.fleet.yml'


@pytest.mark.parametrize('check_mode', [False, True])
def test_the_plan_of_the_lab_mesh_names_every_unit_and_changes_nothing(run_module, check_mode):
    result = run_module('fleet_mesh_plan', check_mode=check_mode, src=str(LAB_MESH))
    assert not result.failed and not result.changed
    assert [t['unit'] for t in result['machines']['railiance01']['tunnels']] == [
        'castle-tunnel-gateway-callback.service', 'castle-tunnel-gateway-identity.service',
        'castle-tunnel-gateway-runtime.service']
    assert result['targets'] == ['railiance01', 'railiance02']


def test_a_fleet_with_a_bad_tunnel_fails_naming_the_key(run_module):
    fleet = {'machines': [{'name': 'a', 'role': 'production'}, {'name': 'b', 'role': 'production'}],
             'tunnels': [{'name': 't', 'from': 'a', 'to': 'b', 'direction': 'forward', 'local_port': 1}]}
    result = run_module('fleet_mesh_plan', fleet=fleet)
    assert result.failed
    assert 'fleet.tunnels[0].remote_port: a tunnel with a unit needs both local_port and remote_port' in result['msg']


def test_a_path_that_answers_returns_its_status_and_latency(run_module, served):
    url, directory = served
    (directory / 'index.html').write_text('{"workload": "blog"}')
    result = run_module('fleet_probe', check_mode=True, url=url + '/index.html', expect='blog')
    assert not result.failed and not result.changed
    assert result['ok'] is True and result['status'] == 200 and result['error'] is None
    assert 0 <= result['latency_ms'] < 5000


def test_an_answer_without_the_expected_text_is_not_ok(run_module, served):
    url, directory = served
    (directory / 'index.html').write_text('{"workload": "keycloak"}')
    result = run_module('fleet_probe', url=url + '/index.html', expect='blog')
    assert result['ok'] is False and result['status'] == 200
    assert result['error'] == "the answer (200) does not contain 'blog'"


def closed_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_a_refused_path_is_returned_or_failed_as_asked(run_module):
    url = 'http://127.0.0.1:{0}/'.format(closed_port())
    result = run_module('fleet_probe', url=url)
    assert not result.failed and result['ok'] is False and result['status'] is None
    assert 'refused' in result['error'].lower()
    failed = run_module('fleet_probe', url=url, fail_on_error=True)
    assert failed.failed and failed['msg'].startswith(url + ': ')


def test_a_url_that_is_not_http_is_named(run_module):
    result = run_module('fleet_probe', url='ftp://example/')
    assert result.failed and result['msg'] == "url: expected an http:// or https:// address, got 'ftp://example/'"
