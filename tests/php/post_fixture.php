<?php
// POSTs a Moodle observer payload to the e-Backpack webhook the way local_ebackpack does, with the plugin's
// own payload(), headers() and classify(), under the plain PHP CLI (no Moodle).
//
//   php post_fixture.php --url=URL --secret=S --site=ID --fixture=FILE [--transport=curl|stream]
//                        [--timestamp=UNIX]
//
// Prints one JSON object: status (0 = no HTTP answer), body, classify, retry_after, timestamp, signature,
// payload (the exact bytes sent) and transport.

declare(strict_types=1);

require __DIR__ . '/../../infra/moodle/local_ebackpack/classes/client.php';

use local_ebackpack\client;

$opts = getopt('', ['url:', 'secret:', 'site:', 'fixture:', 'transport::', 'timestamp::']);
foreach (['url', 'secret', 'site', 'fixture'] as $required) {
    if (!isset($opts[$required])) {
        fwrite(STDERR, "missing --{$required}\n");
        exit(2);
    }
}
$transport = $opts['transport'] ?? (extension_loaded('curl') ? 'curl' : 'stream');
$event = json_decode((string) file_get_contents($opts['fixture']), true, 512, JSON_THROW_ON_ERROR);
$timestamp = isset($opts['timestamp']) ? (int) $opts['timestamp'] : time();
$body = client::payload($opts['site'], [$event]);
$headers = client::headers($opts['site'], $opts['secret'], $body, $timestamp);
$url = client::endpoint($opts['url']);

if ($transport === 'curl') {
    if (!extension_loaded('curl')) {
        fwrite(STDERR, "the curl extension is not loaded (Debian: php-curl)\n");
        exit(3);
    }
    $responseheaders = [];
    $ch = curl_init($url);
    curl_setopt_array($ch, [
        CURLOPT_POST => true,
        CURLOPT_POSTFIELDS => $body,
        CURLOPT_HTTPHEADER => array_merge($headers, ['Expect:']),
        CURLOPT_RETURNTRANSFER => true,
        CURLOPT_CONNECTTIMEOUT => 10,
        CURLOPT_TIMEOUT => 30,
        CURLOPT_FOLLOWLOCATION => false,
        CURLOPT_HEADERFUNCTION => function ($ch, string $line) use (&$responseheaders): int {
            $parts = explode(':', rtrim($line, "\r\n"), 2);
            if (count($parts) === 2) {
                $responseheaders[trim($parts[0])] = trim($parts[1]);
            }
            return strlen($line);
        },
    ]);
    $answer = curl_exec($ch);
    $status = curl_errno($ch) ? 0 : (int) curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
    $error = curl_error($ch);
    unset($ch);
} else {
    $context = stream_context_create(['http' => [
        'method' => 'POST',
        'header' => implode("\r\n", $headers),
        'content' => $body,
        'timeout' => 30,
        'ignore_errors' => true,     // the body of a 4xx/5xx answer too
        'follow_location' => 0,
        'protocol_version' => 1.1,
    ]]);
    $answer = @file_get_contents($url, false, $context);
    $status = 0;
    $error = $answer === false ? (error_get_last()['message'] ?? 'network error') : '';
    $responseheaders = [];
    foreach ($http_response_header ?? [] as $line) {
        if (preg_match('#^HTTP/\S+\s+(\d{3})#', $line, $m)) {
            $status = (int) $m[1];
            $responseheaders = [];
        } else if (strpos($line, ':') !== false) {
            [$name, $value] = explode(':', $line, 2);
            $responseheaders[trim($name)] = trim($value);
        }
    }
}

echo json_encode([
    'status' => $status,
    'body' => $answer === false ? '' : $answer,
    'error' => $error,
    'classify' => client::classify($status),
    'retry_after' => client::retry_after(client::header_value($responseheaders, 'Retry-After'), time()),
    'timestamp' => $timestamp,
    'signature' => client::sign($opts['secret'], $timestamp, $body),
    'payload' => $body,
    'transport' => $transport,
], JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR), "\n";
