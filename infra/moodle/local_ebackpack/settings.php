<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <https://www.gnu.org/licenses/>.

/**
 * Admin settings of local_ebackpack: Site administration > Plugins > Local plugins > e-Backpack.
 *
 * @package    local_ebackpack
 * @copyright  2025 e-Backpack
 * @license    https://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

if ($hassiteconfig) {
    $settings = new admin_settingpage('local_ebackpack', new lang_string('pluginname', 'local_ebackpack'));
    $ADMIN->add('localplugins', $settings);

    if ($ADMIN->fulltree) {
        $settings->add(new admin_setting_configtext('local_ebackpack/webhookurl',
            new lang_string('webhookurl', 'local_ebackpack'),
            new lang_string('webhookurl_desc', 'local_ebackpack'), '', PARAM_URL, 60));

        $settings->add(new admin_setting_configpasswordunmask('local_ebackpack/secret',
            new lang_string('secret', 'local_ebackpack'),
            new lang_string('secret_desc', 'local_ebackpack'), ''));

        $settings->add(new admin_setting_configtext('local_ebackpack/siteid',
            new lang_string('siteid', 'local_ebackpack'),
            new lang_string('siteid_desc', 'local_ebackpack',
                \local_ebackpack\client::default_site_id($CFG->wwwroot)), '', PARAM_NOTAGS, 40));
    }
}
