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
 * Polish strings of local_ebackpack.
 *
 * @package    local_ebackpack
 * @copyright  2025 e-Backpack
 * @license    https://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

$string['errornotconfigured'] = 'Nie ustawiono adresu webhooka e-Backpack albo wspólnego sekretu; zdarzenie zostaje zachowane i zostanie wysłane po ich ustawieniu.';
$string['errorretry'] = '{$a->event}: {$a->answer} od bramy e-Backpack; ponowna próba za około {$a->delay} s.';
$string['pluginname'] = 'e-Backpack';
$string['privacy:metadata:ebackpack'] = 'Ukończenia kursów i zmiany kont użytkowników (także ich usunięcie) są przesyłane do usługi e-Backpack, która wystawia mikropoświadczenia za ukończone kursy i usuwa dane usuniętych użytkowników.';
$string['privacy:metadata:ebackpack:contextinstanceid'] = 'Identyfikator kursu lub użytkownika, którego dotyczy zdarzenie.';
$string['privacy:metadata:ebackpack:courseid'] = 'Identyfikator kursu.';
$string['privacy:metadata:ebackpack:eventname'] = 'Rodzaj zdarzenia (ukończenie kursu, zmiana lub usunięcie użytkownika).';
$string['privacy:metadata:ebackpack:objectid'] = 'Identyfikator rekordu, którego dotyczy zdarzenie, np. ukończenia kursu.';
$string['privacy:metadata:ebackpack:other'] = 'Dalsze szczegóły zdarzenia; dla usuniętego użytkownika jego nazwa użytkownika i adres e-mail.';
$string['privacy:metadata:ebackpack:relateduserid'] = 'Identyfikator użytkownika, którego dotyczy zdarzenie (uczącego się).';
$string['privacy:metadata:ebackpack:site'] = 'Identyfikator tej platformy Moodle.';
$string['privacy:metadata:ebackpack:timecompleted'] = 'Przy ukończeniu kursu: czas, w którym użytkownik ukończył kurs.';
$string['privacy:metadata:ebackpack:timecreated'] = 'Czas zdarzenia.';
$string['privacy:metadata:ebackpack:userid'] = 'Identyfikator użytkownika, który wywołał zdarzenie.';
$string['secret'] = 'Wspólny sekret';
$string['secret_desc'] = 'Sekret uzgodniony z bramą e-Backpack (jej ustawienie EBACKPACK_GATEWAY_SECRET). Każde żądanie jest podpisywane HMAC-SHA256 ze znacznika czasu i treści. Użyj długiego, losowego ciągu znaków.';
$string['siteid'] = 'Identyfikator platformy';
$string['siteid_desc'] = 'Pod jakim identyfikatorem e-Backpack zna tę platformę (jego ustawienie EBACKPACK_SITE_ID). Puste: nazwa hosta tej platformy, {$a}.';
$string['taskpostevent'] = 'Wysłanie zdarzenia do e-Backpack';
$string['webhookurl'] = 'Adres webhooka';
$string['webhookurl_desc'] = 'Adres webhooka bramy e-Backpack, np. https://backpack.example.org/moodle/events (do adresu bez ścieżki dopisywane jest /moodle/events). Puste: nic nie jest wysyłane.';
