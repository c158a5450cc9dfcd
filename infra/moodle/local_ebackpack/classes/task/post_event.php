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

namespace local_ebackpack\task;

use local_ebackpack\client;

/**
 * Adhoc task: POSTs one event (its custom data, \core\event\base::get_data()) to the e-Backpack webhook.
 *
 * Accepted: done. Refused (401/403: secret, clock or site id; 400/413/415/422: malformed): logged with
 * mtrace and dropped, since sending it again cannot succeed. Anything else (503 with Retry-After, other
 * 5xx, 429, no answer at all): the task throws, and Moodle's task manager runs it again with its
 * exponential backoff (60 s doubling up to 24 h), stretched to honour Retry-After. On Moodle 4.4+, whose
 * adhoc tasks have a limited number of attempts, the last attempt queues a fresh copy instead of failing
 * for good, so an outage of any length loses nothing.
 *
 * @package    local_ebackpack
 * @copyright  2025 e-Backpack
 * @license    https://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class post_event extends \core\task\adhoc_task {
    /** Seconds to wait for the TCP (and TLS) connection. */
    private const CONNECT_TIMEOUT = 10;

    /** Seconds the whole request may take. */
    private const TIMEOUT = 30;

    /**
     * Name shown on the admin task pages (Moodle 4.2+).
     *
     * @return string
     */
    public function get_name(): string {
        return get_string('taskpostevent', 'local_ebackpack');
    }

    /**
     * Sends the event.
     *
     * @throws \moodle_exception to have the task manager retry it later
     */
    public function execute() {
        global $CFG;
        require_once($CFG->libdir . '/filelib.php');

        $event = json_decode((string) $this->get_custom_data_as_string(), true);
        if (!is_array($event) || empty($event['eventname'])) {
            mtrace('local_ebackpack: dropping a task without event data');
            return;
        }
        $what = self::describe($event);

        $config = get_config('local_ebackpack');
        $url = trim((string) ($config->webhookurl ?? ''));
        $secret = (string) ($config->secret ?? '');
        if ($url === '' || $secret === '') {
            // Kept for later rather than lost: it goes out once the plugin is configured again.
            throw new \moodle_exception('errornotconfigured', 'local_ebackpack');
        }
        $site = trim((string) ($config->siteid ?? ''));
        if ($site === '') {
            $site = client::default_site_id($CFG->wwwroot);
        }

        $body = client::payload($site, [$event]);
        $timestamp = time();
        // The URL can only be set by a site administrator and usually points into the site's own network,
        // which the default cURL security settings block: do not apply them to it.
        $curl = new \curl(['ignoresecurity' => true]);
        $curl->setHeader(client::headers($site, $secret, $body, $timestamp));
        $curl->setHeader('Expect:');
        $response = $curl->post(client::endpoint($url), $body, [
            'CURLOPT_CONNECTTIMEOUT' => self::CONNECT_TIMEOUT,
            'CURLOPT_TIMEOUT' => self::TIMEOUT,
            // A signed event is never sent on to another address.
            'CURLOPT_FOLLOWLOCATION' => 0,
        ]);
        $info = $curl->get_info();
        $status = $curl->get_errno() ? 0 : (int) ($info['http_code'] ?? 0);
        $answer = $status ? "HTTP {$status}" : 'no answer (' . ($curl->error ?: 'network error') . ')';

        switch (client::classify($status)) {
            case client::ACCEPTED:
                mtrace("local_ebackpack: {$what} accepted by the e-Backpack gateway");
                return;

            case client::REFUSED:
                mtrace("local_ebackpack: ERROR {$what} refused by the e-Backpack gateway with {$answer}, "
                    . 'not retried: ' . self::excerpt((string) $response)
                    . ' (check the shared secret, the site id and the server clock)');
                return;

            default:
                $retryafter = client::retry_after(
                    client::header_value((array) $curl->getResponse(), 'Retry-After'), time());
                $attempts = method_exists($this, 'get_attempts_available') ? (int) $this->get_attempts_available() : null;
                $plan = client::plan_retry((int) $this->get_fail_delay(), $retryafter, $attempts);
                if ($plan['requeue']) {
                    $next = new self();
                    $next->set_custom_data_as_string($this->get_custom_data_as_string());
                    $next->set_fail_delay($plan['faildelay']);
                    $next->set_next_run_time(time() + $plan['delay']);
                    \core\task\manager::queue_adhoc_task($next);
                    mtrace("local_ebackpack: {$what}: {$answer}; last attempt of this task, queued again "
                        . "in {$plan['delay']} s");
                    return;
                }
                $this->set_fail_delay($plan['faildelay']);
                throw new \moodle_exception('errorretry', 'local_ebackpack', '',
                    (object) ['event' => $what, 'answer' => $answer, 'delay' => $plan['delay']]);
        }
    }

    /**
     * Names an event for the log without its personal data (no username or e-mail address).
     *
     * @param array $event \core\event\base::get_data()
     * @return string
     */
    private static function describe(array $event): string {
        return sprintf('%s (object %s, related user %s, course %s)', $event['eventname'],
            $event['objectid'] ?? '-', $event['relateduserid'] ?? '-', $event['courseid'] ?? '-');
    }

    /**
     * The start of a response body, on one line, for the log.
     *
     * @param string $body
     * @return string
     */
    private static function excerpt(string $body): string {
        $body = trim(preg_replace('/\s+/', ' ', $body));
        return \core_text::strlen($body) > 300 ? \core_text::substr($body, 0, 300) . '…' : $body;
    }
}
