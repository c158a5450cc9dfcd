<?php
// TCPDF certificates for bench/render_benchmark.py: TCPDF is the engine of Moodle's mod_customcert.
//
//     php bench/tcpdf/certificate.php RECORDS.json OUT_DIR
//
// RECORDS.json holds a list of certificate records (learner_name, course_name, issued_on (ISO 8601),
// awarding_body, verification_code, verify_url, credential_id, achievement_name, achievement_description).
// Writes one A4 landscape PDF per record (OUT_DIR/0000.pdf, ...) and prints timing JSON on stdout.
// Like mod_customcert, every certificate gets its own TCPDF object and each text element is placed with
// writeHTMLCell(); the QR code is TCPDF's own vector barcode. DejaVu fonts (shipped with TCPDF), so
// Polish diacritics print. Set TCPDF_PATH if tcpdf.php is not where Debian's php-tcpdf puts it.

declare(strict_types=1);

$phpStarted = (float) $_SERVER['REQUEST_TIME_FLOAT'];
if (!extension_loaded('mbstring')) {
    fwrite(STDERR, "PHP's mbstring extension is missing (Debian: apt-get install php-mbstring)\n");
    exit(3);
}
$requireStarted = microtime(true);
require_once getenv('TCPDF_PATH') ?: '/usr/share/php/tcpdf/tcpdf.php';
$requireDone = microtime(true);

const NAVY = [31, 51, 84];
const GOLD = [176, 141, 60];
const INK = [43, 43, 43];
const DARK = [20, 33, 58];
const GREY = [90, 90, 90];
const LABEL = [122, 122, 122];
const FAINT = [138, 138, 138];
const PAPER = [255, 253, 248];
const MONTHS_PL = ['stycznia', 'lutego', 'marca', 'kwietnia', 'maja', 'czerwca', 'lipca', 'sierpnia',
                   'września', 'października', 'listopada', 'grudnia'];
const PT = 25.4 / 72;  // mm per point

function polish_date(string $iso): string
{
    $date = new DateTimeImmutable($iso);
    return $date->format('j') . ' ' . MONTHS_PL[(int) $date->format('n') - 1] . ' ' . $date->format('Y') . ' r.';
}

/** Same thresholds as the WeasyPrint template: long names shrink so the page stays one page. */
function name_size(string $name): float
{
    $length = mb_strlen($name);
    return $length > 48 ? 18.0 : ($length > 30 ? 24.0 : 30.0);
}

/** One text element, as mod_customcert places it: font, colour, then writeHTMLCell. Returns its bottom. */
function text(TCPDF $pdf, array $font, array $colour, float $x, float $y, float $w, string $html,
              string $align = 'C', float $spacing = 0.0): float
{
    $pdf->SetFont($font[0], $font[1], $font[2]);
    $pdf->SetTextColor(...$colour);
    $pdf->setFontSpacing($spacing);
    $pdf->writeHTMLCell($w, 0, $x, $y, $html, 0, 1, false, true, $align);
    $pdf->setFontSpacing(0);
    return $pdf->GetY();
}

function esc(string $text): string
{
    return htmlspecialchars($text, ENT_QUOTES | ENT_HTML5, 'UTF-8');
}

function new_pdf(array $r): TCPDF
{
    $pdf = new TCPDF('L', 'mm', 'A4', true, 'UTF-8', false);
    $pdf->setPrintHeader(false);
    $pdf->setPrintFooter(false);
    $pdf->SetMargins(0, 0, 0);
    $pdf->SetAutoPageBreak(false, 0);
    $pdf->setCellPaddings(0, 0, 0, 0);
    $pdf->SetCreator('e-Backpack bench (TCPDF)');
    $pdf->SetAuthor($r['awarding_body']);
    $pdf->SetTitle('Zaświadczenie o ukończeniu: ' . $r['learner_name'] . ' – ' . $r['course_name']);
    $pdf->AddPage();
    return $pdf;
}

function frame(TCPDF $pdf): void
{
    $pdf->Rect(0, 0, 297, 210, 'F', [], PAPER);
    $pdf->Rect(8, 8, 281, 194, 'D', ['all' => ['width' => 0.9, 'color' => NAVY]]);
    $pdf->Rect(10.5, 10.5, 276, 189, 'D', ['all' => ['width' => 0.3, 'color' => GOLD]]);
}

function ornament(TCPDF $pdf, float $y): void
{
    $pdf->Line(113.5, $y, 183.5, $y, ['width' => 0.3, 'color' => GOLD]);
    $d = 2.1;  // half diagonal of the 3 mm square turned by 45 degrees
    $pdf->Polygon([148.5, $y - $d, 148.5 + $d, $y, 148.5, $y + $d, 148.5 - $d, $y], 'F', [], GOLD);
}

function learner(TCPDF $pdf, string $name, float $y): float
{
    $size = name_size($name);
    $bottom = text($pdf, ['dejavuserif', 'B', $size], DARK, 28, $y, 241, esc($name));
    $pdf->SetFont('dejavuserif', 'B', $size);
    $width = min(241.0, $pdf->GetStringWidth($name) + 16);
    $line = $bottom + 1.5;
    $pdf->Line(148.5 - $width / 2, $line, 148.5 + $width / 2, $line, ['width' => 0.3, 'color' => GOLD]);
    return $line;
}

function body(TCPDF $pdf, array $r): void
{
    $y = text($pdf, ['dejavusans', '', 10.5], NAVY, 28, 22, 241, esc(mb_strtoupper($r['awarding_body'])),
              'C', 0.05 * 10.5 * PT);
    $y = text($pdf, ['dejavuserif', '', 30], NAVY, 28, $y + 6, 241, 'Zaświadczenie o ukończeniu');
    ornament($pdf, $y + 7);
    $y = text($pdf, ['dejavusans', '', 10.5], GREY, 28, $y + 15, 241, 'Niniejszym zaświadcza się, że');
    $y = learner($pdf, $r['learner_name'], $y + 2.5);
    $y = text($pdf, ['dejavusans', '', 10.5], GREY, 28, $y + 7, 241, 'ukończył(a) z wynikiem pozytywnym kurs');
    $y = text($pdf, ['dejavuserif', 'B', 17], NAVY, 28, $y + 2, 241, esc($r['course_name']));
    $y = text($pdf, ['dejavusans', '', 10.5], GREY, 28, $y + 7, 241, 'i uzyskał(a) osiągnięcie');
    $y = text($pdf, ['dejavuserif', 'I', 13], NAVY, 28, $y + 1.5, 241, esc($r['achievement_name']));
    $y = text($pdf, ['dejavusans', '', 9.5], GREY, 63.5, $y + 1.5, 170, esc($r['achievement_description']));
    outcomes($pdf, $r, $y);
}

// EU micro-credential elements, as the e-Backpack templates print them under the description.
function outcomes(TCPDF $pdf, array $r, float $y): void
{
    if ($r['learning_outcomes']) {
        $y = text($pdf, ['dejavusans', 'B', 8.5], NAVY, 28, $y + 3, 241, 'Efekty uczenia się');
        foreach ($r['learning_outcomes'] as $outcome) {
            $y = text($pdf, ['dejavusans', '', 8], GREY, 58.5, $y, 180, '· ' . esc($outcome));
        }
    }
    if ($r['workload'] !== '') {
        text($pdf, ['dejavusans', '', 8], NAVY, 28, $y + 1.5, 241, 'Nakład pracy: ' . esc($r['workload']));
    }
}

function facts(TCPDF $pdf, array $r): void
{
    $label = ['dejavusans', '', 7.5];
    $spacing = 0.08 * 7.5 * PT;
    $y = text($pdf, $label, LABEL, 24, 161, 80, 'DATA WYDANIA', 'L', $spacing);
    $y = text($pdf, ['dejavuserif', '', 12], DARK, 24, $y, 80, esc(polish_date($r['issued_on'])), 'L');
    $y = text($pdf, $label, LABEL, 24, $y + 3, 80, 'KOD WERYFIKACYJNY', 'L', $spacing);
    $y = text($pdf, ['dejavusansmono', 'B', 13], DARK, 24, $y, 80, esc($r['verification_code']), 'L');
    text($pdf, ['dejavusans', '', 6.5], FAINT, 24, $y + 4, 80,
         'Identyfikator poświadczenia:<br>' . esc($r['credential_id']), 'L');
}

function signature(TCPDF $pdf, array $r): void
{
    $pdf->Line(114.5, 182, 182.5, 182, ['width' => 0.3, 'color' => INK]);
    $y = text($pdf, ['dejavusans', '', 7.5], LABEL, 108.5, 183.5, 80, 'PODPIS OSOBY UPOWAŻNIONEJ', 'C',
              0.08 * 7.5 * PT);
    text($pdf, ['dejavuserif', '', 10.5], DARK, 108.5, $y, 80, esc($r['awarding_body']));
}

function verify(TCPDF $pdf, array $r): void
{
    $style = ['border' => false, 'padding' => 'auto', 'fgcolor' => [0, 0, 0], 'bgcolor' => [255, 255, 255]];
    $pdf->write2DBarcode($r['verify_url'], 'QRCODE,M', 225, 142, 42, 42, $style, 'N');
    text($pdf, ['dejavusans', '', 7], GREY, 210, 184.5, 72,
         'Sprawdź autentyczność:<br><span style="color:#1f3354">' . esc($r['verify_url']) . '</span>');
}

function certificate(array $r, string $path): void
{
    $pdf = new_pdf($r);
    frame($pdf);
    body($pdf, $r);
    facts($pdf, $r);
    signature($pdf, $r);
    verify($pdf, $r);
    $pdf->Output($path, 'F');
}

function main(array $argv, float $phpStarted, float $requireStarted, float $requireDone): int
{
    if (count($argv) !== 3) {
        fwrite(STDERR, "usage: php certificate.php RECORDS.json OUT_DIR\n");
        return 2;
    }
    $records = json_decode(file_get_contents($argv[1]), true, 512, JSON_THROW_ON_ERROR);
    $outDir = realpath($argv[2]);  // TCPDF's Output() wants an absolute path
    if ($outDir === false) {
        fwrite(STDERR, "no such directory: {$argv[2]}\n");
        return 2;
    }
    $loopStarted = microtime(true);
    foreach ($records as $i => $record) {
        certificate($record, sprintf('%s/%04d.pdf', $outDir, $i));
    }
    $loopDone = microtime(true);
    $count = count($records);
    echo json_encode([
        'count' => $count,
        'php_version' => PHP_VERSION,
        'tcpdf_version' => TCPDF_STATIC::getTCPDFVersion(),
        'require_s' => $requireDone - $requireStarted,
        'startup_s' => $loopStarted - $phpStarted,
        'loop_s' => $loopDone - $loopStarted,
        'ms_each' => $count ? 1000 * ($loopDone - $loopStarted) / $count : 0,
    ]), "\n";
    return 0;
}

exit(main($argv, $phpStarted, $requireStarted, $requireDone));
