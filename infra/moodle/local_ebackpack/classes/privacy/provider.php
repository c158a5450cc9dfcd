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

namespace local_ebackpack\privacy;

use core_privacy\local\metadata\collection;
use core_privacy\local\request\approved_contextlist;
use core_privacy\local\request\approved_userlist;
use core_privacy\local\request\contextlist;
use core_privacy\local\request\userlist;

/**
 * Privacy API: the plugin stores no personal data of its own; it sends event data to the e-Backpack.
 *
 * The events wait in Moodle's own adhoc task queue (core table task_adhoc) until they are delivered, and
 * are then deleted with the task. What leaves the site is described here as an external location; the
 * e-Backpack service is the controller of what it keeps and answers requests about it itself.
 *
 * Moodle counts a plugin that declares personal data as compliant only if it also implements the request
 * interfaces: with nothing stored locally there is nothing to find, export or delete here. Deleting a user
 * (also through a data deletion request) triggers \core\event\user_deleted, which this plugin forwards so
 * that the e-Backpack erases the learner too.
 *
 * @package    local_ebackpack
 * @copyright  2025 e-Backpack
 * @license    https://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class provider implements
    \core_privacy\local\metadata\provider,
    \core_privacy\local\request\plugin\provider,
    \core_privacy\local\request\core_userlist_provider {
    /**
     * Describes the data sent to the external e-Backpack service.
     *
     * @param collection $collection
     * @return collection
     */
    public static function get_metadata(collection $collection): collection {
        $collection->add_external_location_link('ebackpack', [
            'site' => 'privacy:metadata:ebackpack:site',
            'eventname' => 'privacy:metadata:ebackpack:eventname',
            'userid' => 'privacy:metadata:ebackpack:userid',
            'relateduserid' => 'privacy:metadata:ebackpack:relateduserid',
            'courseid' => 'privacy:metadata:ebackpack:courseid',
            'contextinstanceid' => 'privacy:metadata:ebackpack:contextinstanceid',
            'objectid' => 'privacy:metadata:ebackpack:objectid',
            'other' => 'privacy:metadata:ebackpack:other',
            'timecreated' => 'privacy:metadata:ebackpack:timecreated',
            'timecompleted' => 'privacy:metadata:ebackpack:timecompleted',
        ], 'privacy:metadata:ebackpack');
        return $collection;
    }

    /**
     * No context holds data of this plugin.
     *
     * @param int $userid
     * @return contextlist
     */
    public static function get_contexts_for_userid(int $userid): contextlist {
        return new contextlist();
    }

    /**
     * No user has data of this plugin in a context.
     *
     * @param userlist $userlist
     */
    public static function get_users_in_context(userlist $userlist) {
    }

    /**
     * Nothing to export: the plugin keeps no data.
     *
     * @param approved_contextlist $contextlist
     */
    public static function export_user_data(approved_contextlist $contextlist) {
    }

    /**
     * Nothing to delete: the plugin keeps no data.
     *
     * @param \context $context
     */
    public static function delete_data_for_all_users_in_context(\context $context) {
    }

    /**
     * Nothing to delete: the plugin keeps no data.
     *
     * @param approved_contextlist $contextlist
     */
    public static function delete_data_for_user(approved_contextlist $contextlist) {
    }

    /**
     * Nothing to delete: the plugin keeps no data.
     *
     * @param approved_userlist $userlist
     */
    public static function delete_data_for_users(approved_userlist $userlist) {
    }
}
