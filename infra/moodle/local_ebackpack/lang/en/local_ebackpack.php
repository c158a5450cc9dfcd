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
 * English strings of local_ebackpack.
 *
 * @package    local_ebackpack
 * @copyright  2025 e-Backpack
 * @license    https://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

$string['errornotconfigured'] = 'The e-Backpack webhook URL or shared secret is not set; the event is kept and sent once they are.';
$string['errorretry'] = '{$a->event}: {$a->answer} from the e-Backpack gateway; trying again in about {$a->delay} s.';
$string['pluginname'] = 'e-Backpack';
$string['privacy:metadata:ebackpack'] = 'Course completions and changes to user accounts (including deletions) are sent to the e-Backpack service, which issues micro-credentials for completed courses and erases the data of deleted users.';
$string['privacy:metadata:ebackpack:contextinstanceid'] = 'The id of the course or user the event is about.';
$string['privacy:metadata:ebackpack:courseid'] = 'The id of the course.';
$string['privacy:metadata:ebackpack:eventname'] = 'The kind of event (course completed, user updated, user deleted).';
$string['privacy:metadata:ebackpack:objectid'] = 'The id of the record the event is about, such as the course completion.';
$string['privacy:metadata:ebackpack:other'] = 'Further event details; for a deleted user, the username and e-mail address.';
$string['privacy:metadata:ebackpack:relateduserid'] = 'The id of the user the event is about (the learner).';
$string['privacy:metadata:ebackpack:site'] = 'The identifier of this Moodle site.';
$string['privacy:metadata:ebackpack:timecompleted'] = 'For a course completion, the time the user completed the course.';
$string['privacy:metadata:ebackpack:timecreated'] = 'The time of the event.';
$string['privacy:metadata:ebackpack:userid'] = 'The id of the user who caused the event.';
$string['secret'] = 'Shared secret';
$string['secret_desc'] = 'The secret shared with the e-Backpack gateway (its setting EBACKPACK_GATEWAY_SECRET). Each request is signed with HMAC-SHA256 over the timestamp and the body. Use a long random string.';
$string['siteid'] = 'Site id';
$string['siteid_desc'] = 'How the e-Backpack knows this site (its setting EBACKPACK_SITE_ID). Empty: the host name of this site, {$a}.';
$string['taskpostevent'] = 'Send an event to the e-Backpack';
$string['webhookurl'] = 'Webhook URL';
$string['webhookurl_desc'] = 'Address of the e-Backpack gateway\'s webhook, such as https://backpack.example.org/moodle/events (a URL without a path gets /moodle/events). Empty: nothing is sent.';
