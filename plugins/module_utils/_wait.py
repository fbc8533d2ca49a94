# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Waiting and retrying, the same way in every layer: a deadline on the monotonic clock, and jittered
exponential backoff between tries. Clock, sleep and jitter are parameters, so tests run without waiting."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import random
import time

# Backoff between tries: up to BASE * 2**attempt seconds, never more than CAP.
BASE = 0.5
CAP = 8.0


class Deadline(object):
    """A time budget of `seconds` on the monotonic clock."""

    def __init__(self, seconds, clock=time.monotonic):
        self.seconds = seconds
        self._clock = clock
        self.end = clock() + seconds

    @property
    def left(self):
        return max(self.end - self._clock(), 0.0)

    @property
    def passed(self):
        return self._clock() >= self.end


def backoff(attempt, cap=CAP, jitter=random.uniform):
    """Seconds to wait before try number attempt + 1 (attempt counts from 0): full jitter."""
    return jitter(0, min(cap, BASE * 2 ** attempt))


def wait_until(probe, deadline, on_timeout, interval=0.2, max_interval=2.0, sleep=time.sleep):
    """Call probe() until it returns a true value and return that; between calls wait `interval`, growing by
    half each time up to max_interval. Once the deadline passes, raise on_timeout() (an exception)."""
    while True:
        found = probe()
        if found:
            return found
        if deadline.passed:
            raise on_timeout()
        sleep(min(interval, deadline.left))
        interval = min(interval * 1.5, max_interval)
