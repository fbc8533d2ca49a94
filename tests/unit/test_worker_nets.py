"""Under pytest-xdist every worker's lab takes a loopback network of its own, derived from CASTLE_TEST_LAB_NET."""

import pytest

from conftest import spare_net, worker_net


def test_the_first_worker_and_a_run_without_workers_keep_the_base_network():
    assert worker_net('127.0.61', 'gw0') == '127.0.61'
    assert worker_net('127.0.61', 'master') == '127.0.61'


def test_each_worker_takes_the_next_network_up():
    nets = [worker_net('127.0.61', 'gw{0}'.format(n)) for n in range(4)]
    assert nets == ['127.0.61', '127.0.62', '127.0.63', '127.0.64']


def test_spare_networks_are_clear_of_every_workers_network():
    workers = [worker_net('127.0.20', 'gw{0}'.format(n)) for n in range(3)]
    spares = [spare_net(net) for net in workers]
    assert spares == ['127.1.20', '127.1.21', '127.1.22']
    assert not set(spares) & set(workers)


@pytest.mark.parametrize('base', ['10.0.61', '127.0', '127.0.61.1', '127.0.256', '127.x.61', ''])
def test_a_network_outside_loopback_or_malformed_is_refused(base):
    with pytest.raises(ValueError, match='CASTLE_TEST_LAB_NET must be the first three octets'):
        worker_net(base, 'gw0')


def test_a_worker_past_the_last_network_is_refused():
    assert worker_net('127.0.254', 'gw1') == '127.0.255'
    with pytest.raises(ValueError, match="'127.0.254' leaves no network for worker gw2"):
        worker_net('127.0.254', 'gw2')
    with pytest.raises(ValueError, match='no spare network beside 127.255.1'):
        spare_net('127.255.1')
