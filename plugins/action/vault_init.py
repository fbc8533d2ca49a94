# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vault_init runs as its module does; a result that holds unseal keys or a root token is marked no_log,
which a module cannot do for its own return values. Other modules returning secrets reuse this with their own
MODULE and SECRET_RETURNS (vault_approle)."""

from ansible.plugins.action import ActionBase

SECRET_RETURNS = ('unseal_keys_hex', 'unseal_keys_b64', 'root_token')


class ActionModule(ActionBase):
    MODULE = 'ephemeral.castle.vault_init'
    SECRET_RETURNS = SECRET_RETURNS
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        result.update(self._execute_module(module_name=self.MODULE, module_args=self._task.args, task_vars=task_vars))
        if any(key in result for key in self.SECRET_RETURNS):
            result['_ansible_no_log'] = True
        return result
