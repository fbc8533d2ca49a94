# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
name: timeline
type: aggregate
short_description: Each stage and node of a run as it advances, then its timeline as JSON and an SVG Gantt chart
version_added: 0.1.0
description:
  - Follows the stages of a run (bootstrap, phoenix, rotate) and prints one line when a stage starts, when a node
    of a stage starts and when it ends, and when the stage ends, each with the time elapsed since the run began.
    It runs beside the stdout callback (the default one, or ansible-runner's, whose event stream carries these
    lines as C(verbose) events), and needs enabling, with C(callbacks_enabled) in ansible.cfg or
    E(ANSIBLE_CALLBACKS_ENABLED).
  - A stage starts where a play or a task carries the variable C(castle_stage), a literal string naming it, in the
    C(vars) of the play, of an C(import_playbook) (which override those of the plays it imports), of a block, of
    the task, or of the include that brought the task in. It starts when that task's first result arrives (or
    when the play starts) and lasts until another stage starts or C(castle_stage) is set to an empty string.
    Plays and tasks without C(castle_stage) belong to the current stage; tasks before the first stage belong to
    none.
  - A task that takes a stage's time itself (a C(set_fact) of C(now()), say) can name that fact in the variable
    C(castle_stage_mark) beside C(castle_stage), as a dotted path into the facts it sets (for example
    C(phoenix_marks.gate)); the stage then starts at that time (seconds since the epoch), so that the timeline's
    durations are those the playbook computes from its own marks.
  - A stage's nodes are the hosts its tasks ran on, or, for a task looping over inventory hosts, the host each
    loop item's label names (the label of the item of an C(include_tasks) or C(include_role) loop counts for
    every task it includes). A node lasts from its first task's start to its last task's end in the stage.
  - At the end of the run it writes the timeline as JSON (every stage and node with its start and end in seconds
    from the run's start, its duration and whether it failed) and as an SVG Gantt chart, in O(output_dir).
    Durations are the same in the lines, the JSON and the chart.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
requirements:
  - enable it in C(callbacks_enabled) in ansible.cfg, or with E(ANSIBLE_CALLBACKS_ENABLED)
options:
  output_dir:
    description:
      - Directory of the timeline's JSON and SVG files.
      - By default the directory of the fleet file (C(fleet_file), where the phoenix journal lives), else that of
        the first inventory source, else the current directory.
    type: path
    env:
      - name: CASTLE_TIMELINE_DIR
    ini:
      - section: callback_timeline
        key: output_dir
  file_name:
    description:
      - Name of the JSON and SVG files without their extension (C(.json), C(.svg)).
      - By default the playbook's name followed by C(-timeline), for example C(phoenix-timeline).
    type: str
    env:
      - name: CASTLE_TIMELINE_NAME
    ini:
      - section: callback_timeline
        key: file_name
  live:
    description: Print a line for each stage and node as the run advances.
    type: bool
    default: true
    env:
      - name: CASTLE_TIMELINE_LIVE
    ini:
      - section: callback_timeline
        key: live
  records:
    description:
      - A file to append each of those lines to as it happens, as one JSON object a line (C(event), C(stage),
        C(node), C(elapsed), C(duration), C(status)), for a process following the run.
      - Written whether or not O(live) is on; nothing is written when unset.
    type: path
    env:
      - name: CASTLE_TIMELINE_RECORDS
    ini:
      - section: callback_timeline
        key: records
"""

EXAMPLES = r"""
# ansible.cfg
# [defaults]
# callbacks_enabled = ephemeral.castle.timeline
#
# or for one run:
#   ANSIBLE_CALLBACKS_ENABLED=ephemeral.castle.timeline ansible-playbook playbooks/phoenix.yml -e target=castle
#
# A play's stage, and a task starting another one:
- name: S0 gate, S1 wipe
  hosts: controller
  vars:
    castle_stage: S0 backups
  tasks:
    - name: Start the gate
      ansible.builtin.set_fact:
        gate_started: true
      vars:
        castle_stage: S0 gate
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase
from ansible_collections.ephemeral.castle.plugins.module_utils.timeline_svg import duration_text, render_svg

STAGE_VAR = 'castle_stage'
MARK_VAR = 'castle_stage_mark'


def stage_of(variables):
    """The stage a play's or a task's own variables name: a name, '' (the stage ends), or None (not named, or a
    template, which the callback cannot resolve)."""
    value = (variables or {}).get(STAGE_VAR)
    if value is None or not isinstance(value, str) or '{{' in value or '{%' in value:
        return None
    return value.strip()


def stage_time(facts, mark, default):
    """The time (seconds since the epoch) at the dotted path `mark` in the facts a stage's marking task set,
    else `default`."""
    if not isinstance(mark, str) or not mark:
        return default
    value = facts
    try:
        for key in mark.split('.'):
            value = value[key]
        return float(value)
    except (KeyError, TypeError, ValueError):
        return default


def node_of(host, item_label, include_label, is_host):
    """The node a result counts for: the host its loop item's label names, else the host the label of the
    include that brought the task in names, else the host it ran on."""
    for label in (item_label, include_label):
        if isinstance(label, str) and is_host(label):
            return label
    return host


class Timeline:
    """Stages and their nodes as events arrive, times in seconds since the epoch. Each method returns the
    records (dicts) of what it changed, for the live lines."""

    def __init__(self, started):
        self.started = started
        self.stages = []
        self.current = None

    def _record(self, event, at, stage, node=None, duration=None, status=None):
        record = {'event': event, 'stage': stage['name'], 'elapsed': round(at - self.started, 3)}
        if node is not None:
            record['node'] = node
        if duration is not None:
            record['duration'] = round(duration, 3)
        if status is not None:
            record['status'] = status
        return record

    def begin(self, name, at):
        """Start stage `name` (ending the current one); '' only ends the current one. Naming the current stage
        again changes nothing."""
        if self.current is not None and self.current['name'] == name:
            return []
        records = self.end(at)
        if name:
            self.current = {'name': name, 'start': at, 'end': None, 'status': 'ok', 'nodes': {}}
            self.stages.append(self.current)
            records.append(self._record('stage_start', at, self.current))
        return records

    def node(self, name, start, end, failed=False):
        """A task of the current stage ran for node `name` from `start` to `end`."""
        stage = self.current
        if stage is None:
            return []
        records = []
        start = max(start, stage['start'])
        node = stage['nodes'].get(name)
        if node is None:
            node = stage['nodes'][name] = {'name': name, 'start': start, 'end': start, 'status': 'running'}
            records.append(self._record('node_start', start, stage, name))
        node['start'] = min(node['start'], start)
        node['end'] = max(node['end'], end)
        if failed and node['status'] != 'failed':
            node['status'] = stage['status'] = 'failed'
            records.append(self._record('node_failed', node['end'], stage, name, node['end'] - node['start'], 'failed'))
        return records

    def end(self, at):
        """End the current stage at `at`, and each of its nodes."""
        stage, self.current = self.current, None
        if stage is None:
            return []
        stage['end'] = max(at, stage['start'])
        records = []
        for node in stage['nodes'].values():
            if node['status'] == 'running':
                node['status'] = 'ok'
            records.append(self._record('node_end', node['end'], stage, node['name'], node['end'] - node['start'],
                                        node['status']))
        records.append(self._record('stage_end', stage['end'], stage, None, stage['end'] - stage['start'],
                                    stage['status']))
        return records

    def document(self, playbook):
        """The timeline as a JSON-ready dict: times in seconds from the run's start."""
        def span(entry):
            return {'start': round(entry['start'] - self.started, 3), 'end': round(entry['end'] - self.started, 3),
                    'duration': round(entry['end'] - entry['start'], 3), 'status': entry['status']}
        stages = []
        for stage in self.stages:
            nodes = [dict(name=node['name'], **span(node)) for node in stage['nodes'].values()]
            stages.append(dict(name=stage['name'], nodes=nodes, **span(stage)))
        first = self.stages[0]['start'] if self.stages else self.started
        last = self.stages[-1]['end'] if self.stages else self.started
        return {'playbook': playbook, 'started': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(self.started)),
                'total': round(last - first, 3), 'stages': stages}


def line(record):
    """A live line: elapsed time, stage, node and what happened."""
    what = {'stage_start': 'started', 'node_start': 'started', 'node_failed': 'failed after',
            'node_end': 'done', 'stage_end': 'done'}[record['event']]
    if record.get('status') == 'failed' and record['event'] in ('node_end', 'stage_end'):
        what = 'failed,'
    text = 'timeline {0:>8} | {1}'.format('+' + duration_text(record['elapsed']), record['stage'])
    if 'node' in record:
        text += ' | ' + record['node']
    text += ' ' + what
    if 'duration' in record:
        text += ' ' + duration_text(record['duration'])
    return text


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'ephemeral.castle.timeline'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, clock=time.time, **kwargs):
        super().__init__(*args, **kwargs)
        self._clock = clock
        self._timeline = Timeline(clock())
        self._playbook = None
        self._inventory = None
        # The stage a task names, started by the task's first result: (task uuid, stage name, mark).
        self._pending = None
        # When each host started a task, and when its last loop item ended: {(host, task uuid): time}.
        self._started = {}
        self._item_ended = {}

    def _emit(self, records):
        for record in records:
            if self.get_option('live'):
                self._display.display(line(record))
            path = self.get_option('records')
            if path:
                with open(path, 'a', encoding='utf-8') as handle:
                    handle.write(json.dumps(record, sort_keys=True) + '\n')

    def _is_host(self, name):
        return self._inventory is not None and self._inventory.get_host(name) is not None

    def _flush_pending(self, at):
        if self._pending is not None:
            self._emit(self._timeline.begin(self._pending[1], at))
            self._pending = None

    def v2_playbook_on_start(self, playbook):
        self._playbook = os.path.basename(playbook._file_name)

    def v2_playbook_on_play_start(self, play):
        now = self._clock()
        self._flush_pending(now)
        manager = play.get_variable_manager()
        self._inventory = getattr(manager, '_inventory', None)
        name = stage_of(play.vars)
        if name is not None:
            self._emit(self._timeline.begin(name, now))

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._flush_pending(self._clock())
        variables = task.get_vars()
        name = stage_of(variables)
        if name is not None:
            self._pending = (task._uuid, name, variables.get(MARK_VAR))

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def v2_runner_on_start(self, host, task):
        self._started[(host.get_name(), task._uuid)] = self._clock()

    def _marked(self, task, now, values=None):
        """The first result of the task that names a stage starts it, at the time of the fact its mark names."""
        if self._pending is not None and self._pending[0] == task._uuid:
            self._flush_pending(stage_time((values or {}).get('ansible_facts'), self._pending[2], now))

    def _result(self, result, failed=False, item=False):
        now = self._clock()
        host, task = result.host.get_name(), result.task
        self._marked(task, now, result.result)
        key = (host, task._uuid)
        if item:
            # Items run one after the other: the next one starts when this one ends.
            start = self._item_ended.get(key) or self._started.get(key, now)
            self._item_ended[key] = now
        else:
            start = self._started.pop(key, now)
            self._item_ended.pop(key, None)
        values = result.result
        item_label = None if values.get('_ansible_no_log') else values.get('_ansible_item_label', values.get('item'))
        include_label = task.get_vars().get('_ansible_item_label')
        node = node_of(host, item_label if item else None, include_label, self._is_host)
        self._emit(self._timeline.node(node, start, now, failed))

    def v2_runner_on_ok(self, result):
        self._result(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result, failed=not ignore_errors)

    def v2_runner_on_unreachable(self, result):
        self._result(result, failed=True)

    def v2_runner_on_skipped(self, result):
        self._marked(result.task, self._clock())
        key = (result.host.get_name(), result.task._uuid)
        self._started.pop(key, None)
        self._item_ended.pop(key, None)

    def v2_runner_item_on_ok(self, result):
        self._result(result, item=True)

    def v2_runner_item_on_failed(self, result):
        # The loop's own result says whether the task failed.
        self._result(result, item=True)

    def v2_runner_item_on_skipped(self, result):
        self._marked(result.task, self._clock())
        self._item_ended[(result.host.get_name(), result.task._uuid)] = self._clock()

    def v2_playbook_on_stats(self, stats):
        now = self._clock()
        self._flush_pending(now)
        self._emit(self._timeline.end(now))
        if not self._timeline.stages:
            return
        document = self._timeline.document(self._playbook)
        directory = self.get_option('output_dir') or self._default_dir()
        base = os.path.join(directory, self.get_option('file_name')
                            or os.path.splitext(self._playbook or 'run')[0] + '-timeline')
        try:
            os.makedirs(directory, exist_ok=True)
            with open(base + '.json', 'w', encoding='utf-8') as handle:
                handle.write(json.dumps(document, indent=2) + '\n')
            with open(base + '.svg', 'w', encoding='utf-8') as handle:
                handle.write(render_svg(document, 'Timeline of {0}'.format(self._playbook)))
        except OSError as exc:
            self._display.warning('timeline: cannot write {0}.json/.svg: {1}'.format(base, exc.strerror or exc))
            return
        self._display.display('timeline: written to {0}.json and {0}.svg'.format(base))

    def _default_dir(self):
        """Beside the fleet file (and so the phoenix journal), else beside the first inventory source."""
        inventory = self._inventory
        if inventory is not None:
            group = inventory.groups.get('all')
            fleet_file = group.get_vars().get('fleet_file') if group is not None else None
            if isinstance(fleet_file, str) and '{{' not in fleet_file:
                return os.path.dirname(os.path.abspath(fleet_file))
            for source in getattr(inventory, '_sources', None) or []:
                if isinstance(source, str) and os.path.exists(source):
                    return source if os.path.isdir(source) else os.path.dirname(os.path.abspath(source))
        return os.getcwd()
