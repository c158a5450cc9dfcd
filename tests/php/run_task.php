<?php
// Runs local_ebackpack's real observer and adhoc task on faked Moodle APIs (moodle/bootstrap.php), the
// way Moodle's cron runs an adhoc task: execute(), and on an exception the task manager's reschedule.
//
// stdin: {"mode": "execute"|"observe", "event": {...}, "config": {webhookurl, secret, siteid},
//         "wwwroot": "...", "faildelay": 0, "attempts": null|int}
// stdout: {"outcome": "completed"|"failed", "error", "faildelay", "nextdelay", "queued": [...], "log": [...],
//          "curl": {"settings", "url", "headers", "options", "body"}}

declare(strict_types=1);

$stub = json_decode((string) stream_get_contents(STDIN), true, 512, JSON_THROW_ON_ERROR);
require __DIR__ . '/moodle/bootstrap.php';

global $STUB;

function describe_task(\core\task\adhoc_task $task): array {
    return [
        'class' => get_class($task),
        'customdata' => json_decode((string) $task->get_custom_data_as_string(), true),
        'faildelay' => $task->get_fail_delay(),
        'runs_in' => $task->get_next_run_time() === null ? null : $task->get_next_run_time() - time(),
        'userid' => $task->get_userid(),
        'attempts' => method_exists($task, 'get_attempts_available') ? $task->get_attempts_available() : null,
    ];
}

$result = ['outcome' => 'completed', 'error' => null];
if ($stub['mode'] === 'observe') {
    $event = $stub['event']['eventname'] === '\\core\\event\\course_completed'
        ? new \core\event\course_completed($stub['event'], isset($stub['timecompleted'])
            ? (object) ['id' => $stub['event']['objectid'], 'timecompleted' => $stub['timecompleted']] : null)
        : new \core\event\base($stub['event']);
    \local_ebackpack\observer::forward($event);
} else {
    $task = new \local_ebackpack\task\post_event();
    $task->set_custom_data($stub['event']);
    $task->set_fail_delay($stub['faildelay'] ?? 0);
    if ($stub['attempts'] !== null) {
        $task->set_attempts_available($stub['attempts']);
    }
    try {
        $task->execute();
    } catch (\Throwable $e) {
        // \core\task\manager::adhoc_task_failed(): 60 s, doubled, at most 24 h.
        $delay = $task->get_fail_delay() ? min($task->get_fail_delay() * 2, 86400) : 60;
        $result = ['outcome' => 'failed', 'error' => get_class($e) . ': ' . $e->getMessage(),
            'faildelay' => $task->get_fail_delay(), 'nextdelay' => $delay];
    }
}
$result['queued'] = array_map('describe_task', $STUB->queued);
$result['log'] = $STUB->log;
$result['curl'] = $STUB->curl;
echo json_encode($result, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR), "\n";
