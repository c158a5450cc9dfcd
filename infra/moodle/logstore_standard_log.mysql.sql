-- mdl_logstore_standard_log as Moodle creates it on MySQL / MariaDB.
--
-- Source: the table's XMLDB definition, admin/tool/log/store/standard/db/install.xml (fields, lengths,
-- the primary key, the foreign key on contextid, the indexes timecreated, course-time and user-module),
-- turned into SQL the way lib/ddl/mysql_sql_generator.php does it: int(10) -> BIGINT(10), int(1) ->
-- TINYINT(1), char(n) -> VARCHAR(n), text -> LONGTEXT, the sequence -> auto_increment, the foreign key
-- -> a plain index (Moodle creates no FK constraints), utf8mb4_unicode_ci, InnoDB with ROW_FORMAT=Dynamic.
-- Index names are Moodle's generated ones (the same as on PostgreSQL, see
-- shared/fixtures/moodle/logstore_standard_log.pg.sql). The `mdl_` prefix is $CFG->prefix.
-- Used by the gateway's tests and benchmark as the log store the poller reads.
CREATE TABLE mdl_logstore_standard_log (
    id                BIGINT(10)   NOT NULL AUTO_INCREMENT,
    eventname         VARCHAR(255) NOT NULL DEFAULT '',
    component         VARCHAR(100) NOT NULL DEFAULT '',
    action            VARCHAR(100) NOT NULL DEFAULT '',
    target            VARCHAR(100) NOT NULL DEFAULT '',
    objecttable       VARCHAR(50),
    objectid          BIGINT(10),
    crud              VARCHAR(1)   NOT NULL DEFAULT '',
    edulevel          TINYINT(1)   NOT NULL,
    contextid         BIGINT(10)   NOT NULL,
    contextlevel      BIGINT(10)   NOT NULL,
    contextinstanceid BIGINT(10)   NOT NULL,
    userid            BIGINT(10)   NOT NULL,
    courseid          BIGINT(10),
    relateduserid     BIGINT(10),
    anonymous         TINYINT(1)   NOT NULL DEFAULT 0,
    other             LONGTEXT,
    timecreated       BIGINT(10)   NOT NULL,
    origin            VARCHAR(10),
    ip                VARCHAR(45),
    realuserid        BIGINT(10),
CONSTRAINT  PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT COLLATE = utf8mb4_unicode_ci ROW_FORMAT=Dynamic COMMENT='Standard log table';
CREATE INDEX mdl_logsstanlog_tim_ix ON mdl_logstore_standard_log (timecreated);
CREATE INDEX mdl_logsstanlog_couanotim_ix ON mdl_logstore_standard_log (courseid, anonymous, timecreated);
CREATE INDEX mdl_logsstanlog_useconconcrue_ix ON mdl_logstore_standard_log (userid, contextlevel, contextinstanceid, crud, edulevel, timecreated);
CREATE INDEX mdl_logsstanlog_con_ix ON mdl_logstore_standard_log (contextid);
