<?php
// The few Moodle APIs local_ebackpack's observer and task call, faked for the plain PHP CLI, so that the
// plugin's real classes run against a real webhook receiver without a Moodle site.
//
// Set $stub (an array) before requiring this file: 'config' (the plugin settings), 'wwwroot', and
// 'attempts' (null: Moodle 4.1-4.3, adhoc tasks without an attempt limit; an int: Moodle 4.4+).

declare(strict_types=1);

namespace {
    define('MOODLE_INTERNAL', true);

    const STUB_PLUGIN_DIR = __DIR__ . '/../../../infra/moodle/local_ebackpack';

    global $CFG, $STUB;
    $CFG = (object) ['libdir' => __DIR__ . '/lib', 'wwwroot' => $stub['wwwroot'] ?? 'https://moodle.example.org'];
    $STUB = (object) ['config' => (object) ($stub['config'] ?? []), 'log' => [], 'queued' => [],
        'attempts' => $stub['attempts'] ?? null, 'curl' => []];

    // Moodle's autoloader, for this one plugin.
    spl_autoload_register(function (string $class): void {
        $prefix = 'local_ebackpack\\';
        if (strncmp($class, $prefix, strlen($prefix)) === 0) {
            $file = STUB_PLUGIN_DIR . '/classes/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
            if (is_file($file)) {
                require $file;
            }
        }
    });

    function get_config(string $plugin, ?string $name = null) {
        global $STUB;
        if ($plugin !== 'local_ebackpack') {
            throw new LogicException("get_config for {$plugin}");
        }
        return $name === null ? clone $STUB->config : ($STUB->config->$name ?? false);
    }

    function get_string(string $identifier, string $component = '', $a = null): string {
        static $strings = null;
        if ($strings === null) {
            $string = [];
            require STUB_PLUGIN_DIR . '/lang/en/local_ebackpack.php';
            $strings = $string;
        }
        if ($component !== 'local_ebackpack' || !isset($strings[$identifier])) {
            throw new LogicException("unknown string {$identifier}, {$component}");
        }
        $text = $strings[$identifier];
        if (is_object($a) || is_array($a)) {
            foreach ((array) $a as $key => $value) {
                $text = str_replace('{$a->' . $key . '}', (string) $value, $text);
            }
        } else if ($a !== null) {
            $text = str_replace('{$a}', (string) $a, $text);
        }
        return $text;
    }

    function mtrace(string $message): void {
        global $STUB;
        $STUB->log[] = $message;
    }

    class moodle_exception extends Exception {
        public string $errorcode;

        public function __construct(string $errorcode, string $module = '', string $link = '', $a = null) {
            $this->errorcode = $errorcode;
            parent::__construct(get_string($errorcode, $module, $a));
        }
    }

    class core_text {
        public static function strlen(string $text): int {
            return mb_strlen($text, 'UTF-8');
        }

        public static function substr(string $text, int $start, ?int $length = null): string {
            return mb_substr($text, $start, $length, 'UTF-8');
        }
    }
}

namespace {
    if (!class_exists('coding_exception')) {
        class coding_exception extends \Exception {
        }
    }
}

namespace core\event {
    /** An event as the observer receives it: only get_data() is used. */
    class base {
        public function __construct(private array $data) {
        }

        public function get_data(): array {
            return $this->data;
        }
    }

    /** course_completed with the record snapshot Moodle attaches (lib/classes/event/course_completed.php). */
    class course_completed extends base {
        public function __construct(array $data, private ?object $completion) {
            parent::__construct($data);
            $this->objectid = $data['objectid'] ?? null;
        }

        public $objectid;

        public function get_record_snapshot($table, $id) {
            if ($this->completion === null || $table !== 'course_completions') {
                throw new \coding_exception("no snapshot of $table $id");
            }
            return $this->completion;
        }
    }
}

namespace core\task {
    /** The parts of Moodle's adhoc_task (lib/classes/task/adhoc_task.php, task_base.php) the plugin uses. */
    abstract class adhoc_task_base {
        private ?string $customdata = null;
        private int $faildelay = 0;
        private ?int $nextruntime = null;
        private ?int $userid = null;

        abstract public function execute();

        public function set_custom_data($data): void {
            $this->customdata = json_encode($data);
        }

        public function get_custom_data() {
            return json_decode((string) $this->customdata);
        }

        public function set_custom_data_as_string(?string $data): void {
            $this->customdata = $data;
        }

        public function get_custom_data_as_string(): ?string {
            return $this->customdata;
        }

        public function set_fail_delay($delay): void {
            $this->faildelay = (int) $delay;
        }

        public function get_fail_delay(): int {
            return $this->faildelay;
        }

        public function set_next_run_time($time): void {
            $this->nextruntime = (int) $time;
        }

        public function get_next_run_time(): ?int {
            return $this->nextruntime;
        }

        public function set_userid($userid): void {
            $this->userid = (int) $userid;
        }

        public function get_userid(): ?int {
            return $this->userid;
        }
    }

    global $STUB;
    if ($STUB->attempts === null) {
        /** Moodle 4.1-4.3: no attempt limit. */
        abstract class adhoc_task extends adhoc_task_base {
        }
    } else {
        /** Moodle 4.4+: attemptsavailable, counted down by the task manager on each failure. */
        abstract class adhoc_task extends adhoc_task_base {
            private int $attemptsavailable = 12;

            public function set_attempts_available(int $attempts): void {
                $this->attemptsavailable = $attempts;
            }

            public function get_attempts_available(): int {
                return $this->attemptsavailable;
            }
        }
    }

    class manager {
        public static function queue_adhoc_task(adhoc_task $task, $checkforexisting = false) {
            global $STUB;
            $STUB->queued[] = $task;
            return count($STUB->queued);
        }
    }
}
