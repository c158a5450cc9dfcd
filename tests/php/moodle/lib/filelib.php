<?php
// Moodle's \curl class (lib/filelib.php), faked over PHP's HTTP stream wrapper so that no curl extension
// is needed: the calls local_ebackpack makes, with the same results (get_info()['http_code'], get_errno(),
// $error, and getResponse() keyed by header name as the server spelled it).

declare(strict_types=1);

class curl {
    public array $response = [];
    public array $info = [];
    public string $error = '';
    public int $errno = 0;
    private array $header = [];

    public function __construct(public array $settings = []) {
        global $STUB;
        $STUB->curl['settings'] = $settings;
    }

    public function setHeader($header): void {
        foreach ((array) $header as $line) {
            $line = preg_replace('/[\r\n]/', '', $line);
            if (!in_array($line, $this->header, true)) {
                $this->header[] = $line;
            }
        }
    }

    public function post(string $url, $params = '', array $options = []) {
        global $STUB;
        $STUB->curl += ['url' => $url, 'headers' => $this->header, 'options' => $options, 'body' => $params];
        $this->response = [];
        $this->info = [];
        $this->error = '';
        $this->errno = 0;
        // Empty values ("Expect:") only tell cURL to leave a header out.
        $headers = array_filter($this->header, fn(string $line): bool => trim(explode(':', $line, 2)[1] ?? '') !== '');
        $context = stream_context_create(['http' => [
            'method' => 'POST', 'header' => implode("\r\n", $headers), 'content' => (string) $params,
            'timeout' => (float) ($options['CURLOPT_TIMEOUT'] ?? 30), 'ignore_errors' => true,
            'follow_location' => empty($options['CURLOPT_FOLLOWLOCATION']) ? 0 : 1, 'protocol_version' => 1.1,
        ]]);
        $body = @file_get_contents($url, false, $context);
        if ($body === false && empty($http_response_header)) {
            $this->errno = 7; // CURLE_COULDNT_CONNECT
            $this->error = error_get_last()['message'] ?? 'Failed to connect';
            $this->info = ['http_code' => 0];
            return false;
        }
        foreach ($http_response_header as $line) {
            if (preg_match('#^HTTP/\S+\s+(\d{3})#', $line, $m)) {
                $this->info = ['http_code' => (int) $m[1]];
                $this->response = [];
            }
            $parts = explode(' ', $line, 2);
            $this->response[rtrim($parts[0], ':')] = $parts[1] ?? null;
        }
        return $body;
    }

    public function get_info(): array {
        return $this->info;
    }

    public function get_errno(): int {
        return $this->errno;
    }

    public function getResponse(): array {
        return $this->response;
    }
}
