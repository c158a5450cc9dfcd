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
 * The webhook contract of the e-Backpack gateway, free of any Moodle call.
 *
 * Everything here is a pure function of its arguments, so it runs (and is tested) under the plain PHP
 * CLI as well as inside Moodle. The adhoc task {@see \local_ebackpack\task\post_event} does the I/O.
 *
 * Contract: `POST <url>` with the body `{"site": "<site id>", "events": [<event get_data()>, ...]}` and the
 * headers `X-Ebackpack-Site`, `X-Ebackpack-Timestamp` (unix seconds) and `X-Ebackpack-Signature`
 * (`sha256=` + hex HMAC-SHA256 of `<timestamp>.<body>` keyed with the shared secret). The gateway answers
 * 202 (accepted), 401/403 (refused), 422 (malformed) or 503 with Retry-After (broker down or busy).
 *
 * @package    local_ebackpack
 * @copyright  2025 e-Backpack
 * @license    https://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
final class client {
    /** The gateway's path for Moodle events, appended when the configured URL has no path. */
    public const DEFAULT_PATH = '/moodle/events';

    /** Outcome: the gateway has the events; the task is done. */
    public const ACCEPTED = 'accepted';

    /** Outcome: try again later (gateway busy, broker down, network error, server error). */
    public const RETRY = 'retry';

    /** Outcome: the gateway refused this request for good (signature, site, malformed body): give up. */
    public const REFUSED = 'refused';

    /** Moodle's first fail delay of an adhoc task, in seconds (\core\task\manager::adhoc_task_failed). */
    public const FIRST_FAIL_DELAY = 60;

    /** Moodle's largest fail delay of an adhoc task, in seconds. */
    public const MAX_FAIL_DELAY = 86400;

    /** Flags of every JSON body: the signature covers these exact bytes. */
    private const JSON_FLAGS = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR;

    /**
     * The URL to POST to: the configured one, or its origin plus {@see self::DEFAULT_PATH} when it has no path.
     *
     * @param string $url webhook URL from the settings
     * @return string
     */
    public static function endpoint(string $url): string {
        $url = trim($url);
        $path = parse_url($url, PHP_URL_PATH);
        if ($path === null || $path === false || $path === '' || $path === '/') {
            return rtrim($url, '/') . self::DEFAULT_PATH;
        }
        return $url;
    }

    /**
     * The site id used when none is configured: the host (and port, if any) of the site's wwwroot.
     *
     * @param string $wwwroot $CFG->wwwroot
     * @return string
     */
    public static function default_site_id(string $wwwroot): string {
        $host = parse_url($wwwroot, PHP_URL_HOST);
        if (!is_string($host) || $host === '') {
            return $wwwroot;
        }
        $port = parse_url($wwwroot, PHP_URL_PORT);
        return strtolower($host) . (is_int($port) ? ':' . $port : '');
    }

    /**
     * The request body: a batch of events of one site.
     *
     * @param string $site site id
     * @param array $events \core\event\base::get_data() arrays
     * @return string JSON (slashes and Unicode unescaped; the signature covers exactly these bytes)
     */
    public static function payload(string $site, array $events): string {
        return json_encode(['site' => $site, 'events' => array_values($events)], self::JSON_FLAGS);
    }

    /**
     * The signature header value of a body sent at a time.
     *
     * @param string $secret shared secret
     * @param int $timestamp unix seconds, also sent as X-Ebackpack-Timestamp
     * @param string $body the exact request body
     * @return string "sha256=<hex>"
     */
    public static function sign(string $secret, int $timestamp, string $body): string {
        return 'sha256=' . hash_hmac('sha256', $timestamp . '.' . $body, $secret);
    }

    /**
     * The request headers, as "Name: value" lines (for \curl::setHeader() and CURLOPT_HTTPHEADER).
     *
     * @param string $site site id
     * @param string $secret shared secret
     * @param string $body the exact request body
     * @param int $timestamp unix seconds
     * @return string[]
     */
    public static function headers(string $site, string $secret, string $body, int $timestamp): array {
        return [
            'Content-Type: application/json',
            'X-Ebackpack-Site: ' . $site,
            'X-Ebackpack-Timestamp: ' . $timestamp,
            'X-Ebackpack-Signature: ' . self::sign($secret, $timestamp, $body),
        ];
    }

    /**
     * What an answer means for the task.
     *
     * 2xx: accepted. 401/403 (signature, timestamp or site refused) and 400/413/415/422 (a request that
     * will never be valid): refused, do not retry. Everything else, including status 0 (no answer: DNS,
     * connection refused, timeout), 408, 429, 5xx and a 404 or redirect of a misconfigured URL: retry, so
     * that no event is lost while the gateway, its broker or the settings are being fixed.
     *
     * @param int $status HTTP status, 0 when there was no HTTP answer
     * @return string self::ACCEPTED, self::RETRY or self::REFUSED
     */
    public static function classify(int $status): string {
        if ($status >= 200 && $status < 300) {
            return self::ACCEPTED;
        }
        if (in_array($status, [400, 401, 403, 413, 415, 422], true)) {
            return self::REFUSED;
        }
        return self::RETRY;
    }

    /**
     * A response header's value, whatever the case of its name.
     *
     * @param array $headers name => value (or list of values), as \curl::getResponse() returns them
     * @param string $name header name
     * @return string|null the last value, or null when absent
     */
    public static function header_value(array $headers, string $name): ?string {
        $found = null;
        foreach ($headers as $key => $value) {
            if (is_string($key) && strcasecmp(trim($key), $name) === 0) {
                $found = is_array($value) ? end($value) : $value;
            }
        }
        return $found === null || $found === false ? null : trim((string) $found);
    }

    /**
     * Seconds to wait according to a Retry-After header (delta-seconds or an HTTP date).
     *
     * @param string|null $value header value
     * @param int $now unix seconds
     * @return int|null null when absent or unreadable
     */
    public static function retry_after(?string $value, int $now): ?int {
        if ($value === null) {
            return null;
        }
        $value = trim($value);
        if ($value === '') {
            return null;
        }
        if (ctype_digit($value)) {
            return min((int) $value, self::MAX_FAIL_DELAY);
        }
        $when = strtotime($value);
        if ($when === false) {
            return null;
        }
        return min(max(0, $when - $now), self::MAX_FAIL_DELAY);
    }

    /**
     * The delay Moodle's task manager gives an adhoc task after a failure (60 s, doubled, at most 24 h).
     *
     * @param int $faildelay the task's current fail delay
     * @return int seconds
     */
    public static function next_fail_delay(int $faildelay): int {
        $delay = $faildelay <= 0 ? self::FIRST_FAIL_DELAY : $faildelay * 2;
        return min($delay, self::MAX_FAIL_DELAY);
    }

    /**
     * How to retry: Moodle's exponential backoff, stretched to honour Retry-After.
     *
     * Normally the task sets the returned fail delay and throws: Moodle's task manager then doubles it and
     * runs the task again after `delay` seconds. On Moodle 4.4+ an adhoc task has a limited number of
     * attempts; on the last one (`attemptsavailable` <= 1) the task instead queues a fresh copy of itself,
     * due in `delay` seconds with fail delay `faildelay`, so that a long outage loses no event.
     *
     * @param int $faildelay the task's current fail delay
     * @param int|null $retryafter seconds asked for by the gateway, if any
     * @param int|null $attemptsavailable the task's attempts left (null: Moodle < 4.4, unlimited)
     * @return array{requeue: bool, faildelay: int, delay: int}
     */
    public static function plan_retry(int $faildelay, ?int $retryafter, ?int $attemptsavailable): array {
        $natural = self::next_fail_delay($faildelay);
        $wanted = $retryafter === null ? $natural : min(max($natural, $retryafter), self::MAX_FAIL_DELAY);
        if ($attemptsavailable !== null && $attemptsavailable <= 1) {
            return ['requeue' => true, 'faildelay' => $wanted, 'delay' => $wanted];
        }
        $set = $wanted > $natural ? (int) ceil($wanted / 2) : max(0, $faildelay);
        return ['requeue' => false, 'faildelay' => $set, 'delay' => self::next_fail_delay($set)];
    }
}
