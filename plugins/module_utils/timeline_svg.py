# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A run's timeline as an SVG Gantt chart: one bar per stage and one per node of each stage, on a time axis in
seconds from the run's start, each bar with its duration written on it. A pure function of the timeline (the
callback ephemeral.castle.timeline's JSON document), self-contained (no scripts, fonts or links). PRIVATE to the
collection."""

from ansible_collections.ephemeral.castle.plugins.module_utils.fleet_report import xml

LABEL_W, CHART_W, ROW_H, BAR_H, PAD, HEAD = 230, 640, 24, 16, 16, 54
STATUS_FILL = {'ok': '#3a7bd5', 'failed': '#c0392b', 'running': '#e67e22'}
NODE_FILL = {'ok': '#8fb8ec', 'failed': '#e6a198', 'running': '#f5c28e'}


def duration_text(seconds):
    """A duration as the summaries write it: seconds with one decimal."""
    return '{0:.1f} s'.format(round(seconds, 1))


def tick_step(total, most=10):
    """A round step (1, 2 or 5 times a power of ten, in seconds) giving at most `most` ticks over `total`."""
    step = 0.1
    while True:
        for factor in (1, 2, 5):
            if total / (step * factor) <= most:
                return step * factor
        step *= 10


def rows(timeline):
    """The chart's rows in order: (kind, label, start, end, duration, status) for each stage, then each of its
    nodes."""
    out = []
    for stage in timeline['stages']:
        out.append(('stage', stage['name'], stage['start'], stage['end'], stage['duration'], stage['status']))
        out.extend(('node', node['name'], node['start'], node['end'], node['duration'], node['status'])
                   for node in stage['nodes'])
    return out


def _text(x, y, value, size=12, anchor='start', weight='normal', fill='#222'):
    return ('<text x="{0:.1f}" y="{1:.1f}" font-size="{2}" text-anchor="{3}" font-weight="{4}" fill="{5}">{6}</text>'
            .format(x, y, size, anchor, weight, fill, xml(value)))


def render_svg(timeline, title):
    """The Gantt chart of `timeline` (start and end of every stage and node in seconds from the run's start)."""
    chart = rows(timeline)
    total = max([row[3] for row in chart] + [timeline.get('total') or 0, 0.1])
    scale = CHART_W / total
    left, top = PAD + LABEL_W, PAD + HEAD
    width = left + CHART_W + 70
    height = top + len(chart) * ROW_H + 24 + PAD
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<svg xmlns="http://www.w3.org/2000/svg" width="{0}" height="{1}" viewBox="0 0 {0} {1}" '
           'font-family="sans-serif">'.format(width, height),
           '<title>{0}</title>'.format(xml(title)),
           '<rect width="100%" height="100%" fill="#ffffff"/>',
           _text(PAD, PAD + 14, title, size=16, weight='bold'),
           _text(PAD, PAD + 32, 'total ' + duration_text(timeline.get('total') or 0), fill='#555')]
    axis_y = top + len(chart) * ROW_H + 4
    step = tick_step(total)
    out.append('<g id="axis">')
    count = int(total / step + 1e-9)
    for i in range(count + 1):
        x = left + i * step * scale
        out.append('<line x1="{0:.1f}" y1="{1}" x2="{0:.1f}" y2="{2}" stroke="#ddd"/>'.format(x, top - 6, axis_y))
        out.append(_text(x, axis_y + 14, '{0:g} s'.format(round(i * step, 1)), size=10, anchor='middle', fill='#555'))
    out.append('<line x1="{0}" y1="{1}" x2="{2:.1f}" y2="{1}" stroke="#888"/>'.format(left, axis_y, left + CHART_W))
    out.append('</g>')
    out.append('<g id="bars">')
    for i, (kind, label, start, end, duration, status) in enumerate(chart):
        y = top + i * ROW_H
        stage = kind == 'stage'
        fill = (STATUS_FILL if stage else NODE_FILL).get(status, '#999')
        x, bar_w = left + start * scale, max((end - start) * scale, 1.0)
        out.append(_text(PAD + (0 if stage else 16), y + 13, label, weight='bold' if stage else 'normal'))
        out.append('<rect class="{0}" x="{1:.1f}" y="{2}" width="{3:.1f}" height="{4}" rx="3" fill="{5}" '
                   'data-start="{6:.3f}" data-end="{7:.3f}"><title>{8}</title></rect>'
                   .format(kind, x, y + (ROW_H - BAR_H) // 2, bar_w, BAR_H, fill, start, end,
                           xml('{0}: {1} ({2})'.format(label, duration_text(duration), status))))
        # The duration inside a long enough bar, else just after it.
        inside = bar_w > 52
        out.append(_text(x + bar_w - 4 if inside else x + bar_w + 4, y + 13, duration_text(duration), size=11,
                         anchor='end' if inside else 'start', fill='#fff' if inside and stage else '#222'))
    out += ['</g>', '</svg>', '']
    return '\n'.join(out)
