"""The store's schema: every table, as numbered migrations applied in order.

One place for the whole schema (the layers above only read and write rows).
A change is a new migration appended to ``MIGRATIONS``, never an edit of one
that has been applied: a store records the names it has applied in
``schema_migrations`` and applies only the others, in order, at open.

``RENAMED`` maps names that earlier versions recorded to the names used now
(two migrations were once both numbered 0003), so an old store is not
migrated twice.
"""

from __future__ import annotations

Migration = tuple[str, str]

CORE = """
CREATE TABLE terminal_state (
    terminal TEXT PRIMARY KEY,
    osn INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE operator_state (
    operator TEXT PRIMARY KEY,
    -- failed sign-on times (epoch seconds, space separated) inside the window
    failures TEXT NOT NULL DEFAULT '',
    locked INTEGER NOT NULL DEFAULT 0,
    locked_at TEXT
);
"""

# The hash-chained audit journal and the dissemination log (lems.store.journal).
JOURNAL = """
CREATE TABLE journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,           -- UTC CCYYMMDDhhmmssff
    kind TEXT NOT NULL,         -- in, out, security, admin
    terminal TEXT,
    ori TEXT,
    operator TEXT,
    session TEXT,
    remote TEXT,                -- address:port
    mke TEXT,
    dests TEXT,                 -- comma separated
    ref TEXT,
    control TEXT,
    cls TEXT,                   -- R U S E, or NULL
    outcome TEXT,               -- OK, HIT, NO HIT, or a switch code such as .22.
    bytes INTEGER,
    osn INTEGER,
    text TEXT,
    event TEXT,                 -- security and admin records: SIGN-ON, LOCK, ...
    prev TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX journal_ts ON journal (ts);
CREATE INDEX journal_ori_ts ON journal (ori, ts);
CREATE INDEX journal_terminal_ts ON journal (terminal, ts);
CREATE INDEX journal_operator_ts ON journal (operator, ts);
CREATE INDEX journal_mke_ts ON journal (mke, ts);
CREATE TABLE dissemination (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,
    operator TEXT,
    ori TEXT,
    terminal TEXT,
    mke TEXT,
    atn TEXT,
    pur TEXT,
    subject TEXT,
    journal_seq INTEGER,        -- the journal record of the inquiry
    prev TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX dissemination_ts ON dissemination (ts);
CREATE INDEX dissemination_ori_ts ON dissemination (ori, ts);
CREATE INDEX dissemination_operator_ts ON dissemination (operator, ts);
CREATE INDEX dissemination_subject ON dissemination (subject);
-- Where each chain resumes after retention pruning: the last pruned record.
CREATE TABLE journal_anchor (
    chain TEXT PRIMARY KEY,     -- table name: journal or dissemination
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    pruned_at TEXT NOT NULL,
    cutoff TEXT NOT NULL
);
"""

# Durable per-terminal output queues (lems.traffic.delivery).
DELIVERY_QUEUE = """
CREATE TABLE outbound (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    terminal TEXT NOT NULL,
    ori TEXT NOT NULL,          -- the terminal's agency (console: queue_for)
    priority INTEGER NOT NULL,  -- 0 SM, 1 hit confirmation, 2 ordinary, 3 broadcast
    cls TEXT NOT NULL,
    ref TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL,
    queued TEXT NOT NULL,       -- UTC CCYYMMDDhhmmssff
    osn INTEGER,                -- set once written to an ack terminal, kept for the resend
    payload BLOB                -- the frame as written, resent byte for byte until ACK
);
CREATE INDEX outbound_terminal ON outbound (terminal, priority, id);
CREATE INDEX outbound_ori ON outbound (ori);
"""

# Open hit confirmation requests and their timers (lems.traffic.hits).
HIT_CONFIRMATION = """
CREATE TABLE hit_request (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    nic TEXT NOT NULL,
    requester TEXT NOT NULL,     -- ORI that sent the YQ
    terminal TEXT NOT NULL,      -- terminal it came from
    entering TEXT NOT NULL,      -- ORI that entered the record (the YQ's destination)
    control TEXT,
    priority TEXT NOT NULL,      -- U or R
    rno INTEGER NOT NULL,        -- the request now outstanding, 1 to 3
    fields TEXT NOT NULL,        -- the YQ's fields (JSON pairs), to send the next request
    wait REAL NOT NULL,          -- minutes allowed for the outstanding request
    opened TEXT NOT NULL,        -- UTC ISO times; they sort as text
    due TEXT NOT NULL,
    state TEXT NOT NULL,         -- open, pending (CNF/P), expired (after RNO/3), closed
    answer TEXT,                 -- last CNF
    closed TEXT
);
CREATE INDEX hit_request_due ON hit_request (state, due);
CREATE INDEX hit_request_nic ON hit_request (nic, requester, entering);
"""

# Records entered at run time and the NIC sequence (lems.files.filehandler).
ENTERED_RECORDS = """
CREATE TABLE nic_sequence (
    letter TEXT PRIMARY KEY,     -- NIC file letter
    last INTEGER NOT NULL        -- the last number given; the next entry gets a higher one
);
CREATE TABLE entered_record (
    id INTEGER PRIMARY KEY AUTOINCREMENT,   -- entry order (indexes are rebuilt in it)
    nic TEXT NOT NULL UNIQUE,
    file TEXT NOT NULL,
    record_set TEXT NOT NULL,
    status TEXT NOT NULL,
    record TEXT NOT NULL,        -- the record as it is now (JSON, lems.files.records.record_to_json)
    action TEXT NOT NULL,        -- the last change: enter, modify, cancel, locate, clear
    ori TEXT NOT NULL,           -- the ORI that made the last change
    changed TEXT NOT NULL        -- UTC ISO time of the last change
);
"""

# When journal retention last ran (lems.store.retention): at most once a switch-clock day.
RETENTION_RUN = """
CREATE TABLE retention_run (
    id INTEGER PRIMARY KEY CHECK (id = 1),   -- one row
    day TEXT NOT NULL,           -- UTC date of the switch clock, YYYY-MM-DD
    ran TEXT NOT NULL,           -- UTC CCYYMMDDhhmmssff
    days INTEGER NOT NULL,       -- retention applied (never below the floor)
    pruned INTEGER NOT NULL,     -- journal and dissemination records removed
    refused TEXT                 -- why nothing was pruned, when a chain failed to verify
);
"""

# The time stamp of the record a retention anchor names (the last one pruned), so that
# ``verify`` can tell an anchor younger than the retention allows (lems.store.integrity).
ANCHOR_STAMPED = """
ALTER TABLE journal_anchor ADD COLUMN stamped TEXT;  -- UTC CCYYMMDDhhmmssff; NULL for anchors made before
"""

# Registry changes other processes made (lems ca issue, terminal add, operator add):
# the running switch reads terminals/ again when the newest id grows (PROTOCOL.md 8).
REGISTRY_CHANGE = """
CREATE TABLE registry_change (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,            -- UTC CCYYMMDDhhmmssff
    what TEXT NOT NULL           -- what changed, for the journal (TERMINAL T0200001 CERTIFICATE ...)
);
"""

# The emulated clock of an adjustable home (lems.store.switch_time, PROTOCOL.md 8): how far
# the console moved switch time ahead of the system clock, so a restart resumes there.
SWITCH_CLOCK = """
CREATE TABLE switch_clock (
    id INTEGER PRIMARY KEY CHECK (id = 1),   -- one row, once the clock was first advanced
    offset_seconds REAL NOT NULL,            -- switch time minus system time; only grows
    reached TEXT NOT NULL,                   -- UTC ISO: the switch time the last advance reached (never earlier)
    advances INTEGER NOT NULL                -- how many advances made the offset
);
"""

# When each scheduled job last ran (lems.core.schedule): a restart neither repeats nor forgets one.
SCHEDULE_RUN = """
CREATE TABLE schedule_run (
    job TEXT PRIMARY KEY,        -- the job's name (nics transmit, validation lists, ...)
    last_run TEXT NOT NULL       -- UTC ISO switch time it last ran (or was first seen)
);
"""

# The record sets in the store (lems.store.records, lems.files.index): records, their search
# keys, the record files they were imported from.  Replaces the in-memory indexes.
RECORDS = """
CREATE TABLE record_home (
    id INTEGER PRIMARY KEY,
    file TEXT NOT NULL,          -- files.toml file name: wanted, vehicle...
    record_set TEXT NOT NULL,    -- LEDS, NCIC or a state code
    records INTEGER NOT NULL DEFAULT 0,   -- rows in record with this home (kept by every write)
    UNIQUE (file, record_set)
);
CREATE TABLE record_source (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,   -- the file, relative to routes/: records/wanted.jsonl
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    records INTEGER NOT NULL,
    imported TEXT NOT NULL       -- UTC ISO time
);
CREATE TABLE record (
    id INTEGER PRIMARY KEY,      -- entry order
    nic TEXT NOT NULL UNIQUE,
    home INTEGER NOT NULL,       -- record_home.id
    status TEXT NOT NULL,        -- active, located, cleared, cancelled (lems.files.records)
    ori TEXT NOT NULL,
    entered TEXT NOT NULL,       -- CCYYMMDD
    caution TEXT,
    fields TEXT NOT NULL,        -- MFC and value pairs (lems.files.index.encode_fields)
    source INTEGER,              -- record_source.id; NULL: entered at run time
    line INTEGER                 -- its line in the source file
);
-- The search index: one row per number value and per (phonetic surname key, DOB).
CREATE TABLE record_key (
    key TEXT NOT NULL,           -- SOC=123456789, ~D500|19800101
    home INTEGER NOT NULL,
    record INTEGER NOT NULL,
    PRIMARY KEY (key, home, record)
) WITHOUT ROWID;
CREATE TABLE record_meta (
    name TEXT PRIMARY KEY,       -- keys: the search rules the keys were made with
    value TEXT NOT NULL
);
"""

# Firearms instant checks (PROTOCOL.md 10, lems.core.fics): one row per check, kept
# [dealer] retention_days, and the counters that number transactions (per year) and
# approvals (never reused, also after a purge).
DEALER_CHECKS = """
CREATE TABLE fics_check (
    txn TEXT PRIMARY KEY,            -- F<CCYY>-<6 digits>
    dealer TEXT NOT NULL,            -- D + 7 digits
    dealer_reference TEXT NOT NULL,
    status TEXT NOT NULL,            -- approved | denied | pending
    approval_number TEXT UNIQUE,     -- approved checks only, unique across all checks
    received TEXT NOT NULL,          -- UTC ISO 8601, switch time
    decided TEXT,                    -- UTC ISO 8601 of the decision (NULL while pending)
    decided_by TEXT,                 -- SWITCH, or the examiner's console name
    estimated_completion TEXT,       -- UTC ISO 8601, once pending past [dealer] pending_minutes
    firearms INTEGER NOT NULL,
    buyer TEXT NOT NULL,             -- the buyer as submitted (JSON), for examiners
    guns TEXT NOT NULL,              -- the firearms as submitted (JSON)
    reasons TEXT NOT NULL            -- what the searches found (JSON), for examiners only
);
CREATE INDEX fics_check_dealer ON fics_check (dealer, status, received);
CREATE INDEX fics_check_received ON fics_check (received);
CREATE TABLE fics_counter (
    name TEXT PRIMARY KEY,           -- "txn <CCYY>" or "approval"
    last INTEGER NOT NULL
);
"""

# Record validation and operator training (PROTOCOL.md 11, lems.traffic.validation and
# lems.store.training): validation state by NIC, the lists sent, and each operator's first sign-on.
VALIDATION_TRAINING = """
CREATE TABLE validation_record (
    nic TEXT PRIMARY KEY,
    ori TEXT NOT NULL,            -- the entering agency
    validated TEXT,               -- YYYY-MM-DD (switch local date) of the last validation
    validated_by TEXT,            -- VLN: the person who validated it
    how TEXT,                     -- MODIFY <MKE> or VCL <list id>
    list_id TEXT,                 -- the last validation list that named it
    retired TEXT                  -- UTC ISO when it was retired, not validated in time
);
CREATE TABLE validation_list (
    list_id TEXT PRIMARY KEY,     -- VL000001 ...
    ori TEXT NOT NULL,
    sent TEXT NOT NULL,           -- UTC ISO switch time the list went out
    certify_by TEXT NOT NULL,     -- YYYY-MM-DD: records not validated by then are retired
    certified TEXT,               -- UTC ISO of the VCL that certified it
    certified_by TEXT,            -- its VLN
    closed TEXT,                  -- UTC ISO when its deadline was processed (records retired)
    text TEXT NOT NULL            -- the list as sent (first frame and those after it)
);
CREATE INDEX validation_list_ori ON validation_list (ori, sent);
CREATE TABLE validation_item (
    list_id TEXT NOT NULL,
    nic TEXT NOT NULL,
    file TEXT NOT NULL,
    record_set TEXT NOT NULL,
    mke TEXT NOT NULL,
    oca TEXT NOT NULL,
    ident TEXT NOT NULL,          -- the record's main identifier, MFC/value
    PRIMARY KEY (list_id, nic)
);
CREATE INDEX validation_item_nic ON validation_item (nic);
CREATE TABLE operator_training (
    operator TEXT PRIMARY KEY,
    first_signon TEXT NOT NULL    -- YYYY-MM-DD (switch local date): the 10-day guide deadline runs from it
);
"""

# The prohibited persons file's reporting to NICS and the emulated NICS index (PROTOCOL.md 9;
# lems.traffic.ppf, lems.traffic.nics), and the announcement of records another process
# entered (lems ppf load), which a running switch lays over its record indexes
# (lems.store.record_change, RecordFileHandler.refresh).
PPF_NICS = """
CREATE TABLE record_change (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,            -- UTC CCYYMMDDhhmmssff
    what TEXT NOT NULL           -- what was entered, for the journal (PPF LOAD 3 RECORDS ...)
);
CREATE TABLE ppf_report (
    nic TEXT PRIMARY KEY,        -- the PPF record
    ori TEXT NOT NULL,           -- the submitting (entering) agency
    pending TEXT,                -- the change not yet sent: enter, modify, cancel, relief; NULL: none
    changed TEXT,                -- UTC ISO time of the pending change
    nrn TEXT,                    -- the NICS record number, once NICS took the entry
    ntd TEXT,                    -- CCYYMMDD (switch local date) the record was last sent
    sent TEXT                    -- the fields as last sent (JSON pairs), for reconciliation
);
CREATE INDEX ppf_report_pending ON ppf_report (pending);
CREATE INDEX ppf_report_nrn ON ppf_report (nrn);
CREATE TABLE ppf_run (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,          -- transmit, relief, reconcile
    at TEXT NOT NULL,            -- UTC ISO switch time
    summary TEXT NOT NULL        -- the notice the control terminal got
);
CREATE TABLE ppf_load (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,            -- UTC ISO
    ori TEXT NOT NULL,
    source TEXT NOT NULL,        -- the file loaded
    entered INTEGER NOT NULL,
    skipped INTEGER NOT NULL,    -- duplicates of records on file
    first_nic TEXT,
    last_nic TEXT,
    journaled INTEGER NOT NULL DEFAULT 0   -- the running switch journals each load once
);
CREATE TABLE nics_record (
    nrn TEXT PRIMARY KEY,        -- NICS record number: NR + 10 digits
    state_ori TEXT NOT NULL,     -- the ORI that reported it (the state's switch: the record's ORI)
    nic TEXT NOT NULL,           -- the state's record
    name_key TEXT NOT NULL,      -- NAM upper case, single spaces, none after the comma (QDP by name)
    dob TEXT NOT NULL,           -- DOB CCYYMMDD
    fields TEXT NOT NULL,        -- JSON pairs as NICS holds them
    relief TEXT,                 -- CCYYMMDD relief reported
    status TEXT NOT NULL,        -- active, cancelled
    entered TEXT NOT NULL,       -- UTC ISO
    changed TEXT NOT NULL
);
CREATE INDEX nics_record_nic ON nics_record (nic);
CREATE INDEX nics_record_name ON nics_record (name_key, dob);
CREATE TABLE nics_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    up INTEGER NOT NULL,         -- 0 after the console's `nics down`
    changed TEXT NOT NULL
);
CREATE TABLE nics_sequence (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL        -- the last NICS record number given (never again, also after a forget)
);
"""

MIGRATIONS: tuple[Migration, ...] = (
    ("0001_core", CORE),
    ("0002_journal", JOURNAL),
    ("0003_delivery_queue", DELIVERY_QUEUE),
    ("0004_hit_confirmation", HIT_CONFIRMATION),
    ("0005_entered_records", ENTERED_RECORDS),
    ("0006_retention_run", RETENTION_RUN),
    ("0007_anchor_stamped", ANCHOR_STAMPED),
    ("0008_registry_change", REGISTRY_CHANGE),
    ("0009_switch_clock", SWITCH_CLOCK),
    ("0010_schedule_run", SCHEDULE_RUN),
    ("0011_records", RECORDS),
    ("0012_ppf_nics", PPF_NICS),
    ("0013_dealer_checks", DEALER_CHECKS),
    ("0014_validation_training", VALIDATION_TRAINING),
)

RENAMED = {
    "0003_hit_confirmation": "0004_hit_confirmation",
    "0004_entered_records": "0005_entered_records",
}
