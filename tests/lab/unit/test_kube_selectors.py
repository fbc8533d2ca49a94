"""Label and field selectors of the lab's Kubernetes API."""

import pytest

from castle_lab.kube.api.selectors import SelectorError, fields_match, labels_match, parse_fields, parse_labels

LABELS = {'app': 'web', 'tier': 'front'}


@pytest.mark.parametrize('selector, matches', [
    ('', True),
    ('app=web', True),
    ('app==web', True),
    ('app!=web', False),
    ('app!=db', True),
    ('missing!=x', True),
    ('app in (web, db)', True),
    ('app notin (web,db)', False),
    ('tier', True),
    ('!tier', False),
    ('!missing', True),
    ('app=web,tier in (front),!missing', True),
    ('app=web,tier=back', False),
])
def test_label_selectors(selector, matches):
    assert labels_match(parse_labels(selector), LABELS) is matches


def test_set_terms_keep_their_commas():
    assert parse_labels('a in (x,y),b') == [('a', 'in', {'x', 'y'}), ('b', 'exists', set())]


@pytest.mark.parametrize('selector', ['a in (x', 'a=b=c', '=x'])
def test_malformed_label_selectors_are_refused(selector):
    with pytest.raises(SelectorError):
        parse_labels(selector)


def test_field_selectors_on_name_and_namespace():
    obj = {'metadata': {'name': 'cm', 'namespace': 'ns'}}
    assert fields_match(parse_fields('metadata.name=cm,metadata.namespace==ns'), obj)
    assert not fields_match(parse_fields('metadata.name!=cm'), obj)
    with pytest.raises(SelectorError):
        parse_fields('spec.other=1')
