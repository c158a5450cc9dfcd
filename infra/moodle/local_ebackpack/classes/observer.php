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

namespace local_ebackpack;

/**
 * Event observer: hands each observed event to an adhoc task that POSTs it to the e-Backpack webhook.
 *
 * Declared in db/events.php with 'internal' => false, so it runs only once the database transaction that
 * triggered the event has committed (a completion that was rolled back is never sent). Nothing is sent
 * from the user's request itself: the task runs in cron, where a slow or absent gateway delays nobody.
 *
 * @package    local_ebackpack
 * @copyright  2025 e-Backpack
 * @license    https://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class observer {
    /**
     * Queues the event for the webhook.
     *
     * The task carries the whole of get_data(). For \core\event\user_deleted its 'other' holds the deleted
     * user's username and e-mail address: they go to the webhook only (the e-Backpack needs them to find and
     * erase that learner's data) and are never written to a log by this plugin.
     *
     * @param \core\event\base $event
     */
    public static function forward(\core\event\base $event): void {
        if (trim((string) get_config('local_ebackpack', 'webhookurl')) === '') {
            return; // Not configured: the plugin is off.
        }
        $data = $event->get_data();
        if ($event instanceof \core\event\course_completed) {
            $data['timecompleted'] = self::time_completed($event);
        }
        $task = new task\post_event();
        // No set_userid(): the task must also run for a user who has just been deleted.
        $task->set_custom_data($data);
        \core\task\manager::queue_adhoc_task($task);
    }

    /**
     * When the learner completed the course: course_completions.timecompleted, which certificates print
     * (the event itself may be logged later, by the completion cron). Null if the record is not there.
     *
     * @param \core\event\course_completed $event
     * @return int|null
     */
    private static function time_completed(\core\event\course_completed $event): ?int {
        try {
            $record = $event->get_record_snapshot('course_completions', $event->objectid);
        } catch (\Throwable $e) {
            return null;
        }
        return empty($record->timecompleted) ? null : (int) $record->timecompleted;
    }
}
