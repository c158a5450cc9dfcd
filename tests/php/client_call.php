<?php
// Calls the plugin's pure functions (local_ebackpack\client) for the Python tests, under the plain PHP CLI.
//
// stdin: a JSON list of calls, [{"method": "classify", "args": [202]}, ...]
// stdout: a JSON list of their results, in order.

declare(strict_types=1);

require __DIR__ . '/../../infra/moodle/local_ebackpack/classes/client.php';

use local_ebackpack\client;

$calls = json_decode((string) stream_get_contents(STDIN), true, 512, JSON_THROW_ON_ERROR);
$results = [];
foreach ($calls as $call) {
    $results[] = call_user_func_array([client::class, $call['method']], $call['args']);
}
echo json_encode($results, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR), "\n";
