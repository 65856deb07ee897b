"""The relational schema, declared once with SQLAlchemy Core.

The Alembic migrations in ``migrations/versions`` must produce exactly these
tables; ``tests/unit/stores/test_migrations.py`` proves it. When you change a
table here, add a migration and bump :data:`SCHEMA_REVISION`.

Conventions:
- Public ids are 32-hex strings (``core.ids``); runs also carry an integer
  surrogate ``pk`` so the high-volume tables (metrics) stay narrow.
- Times are integer milliseconds since the epoch.
- A metric value of NULL means NaN (SQLite cannot store NaN; PostgreSQL could,
  but one behaviour on both matters more). +/-inf are stored as floats.
- ``lineage_edges`` links any two records (run, dataset version, model version,
  pipeline run, deployment...) by kind and id, so later services add lineage
  without new join tables.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

#: The Alembic revision these tables correspond to.
SCHEMA_REVISION = "0010"

# Integer primary keys must be INTEGER on SQLite to alias the rowid (autoincrement).
PK = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

projects = Table(
    "projects",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(250), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("project_id", String(32), ForeignKey("projects.id"), nullable=False),
    Column("name", String(250), nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger, nullable=True),
    Column("parent_id", String(32), nullable=True),
    Column("user", String(250), nullable=False, default=""),
    Column("heartbeat_at", BigInteger, nullable=True),
    Column("env", JSON, nullable=False),
    Index(None, "project_id", "start_time"),
    Index(None, "status", "heartbeat_at"),
    Index(None, "parent_id"),
    sqlite_autoincrement=True,  # a deleted run's key is never handed to a new run (migration 0010)
)

params = Table(
    "params",
    metadata,
    Column("run_pk", PK, ForeignKey("runs.pk"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("run_pk", "key"),
    Index(None, "key", "value"),
)

tags = Table(
    "tags",
    metadata,
    Column("run_pk", PK, ForeignKey("runs.pk"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("run_pk", "key"),
    Index(None, "key", "value"),
)

# Every logged point. No foreign key: bulk inserts stay cheap; runs are never deleted
# without their points (the store deletes both in one transaction).
metrics = Table(
    "metrics",
    metadata,
    Column("run_pk", PK, nullable=False),
    Column("key", String(250), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("value", Float, nullable=True),
    Index(None, "run_pk", "key", "step"),
)

# The latest point per (run, key): what search filters and orders on.
latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_pk", PK, nullable=False),
    Column("key", String(250), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("value", Float, nullable=True),
    PrimaryKeyConstraint("run_pk", "key"),
    Index(None, "key", "value"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("run_pk", PK, ForeignKey("runs.pk"), nullable=False),
    Column("path", String(1024), nullable=False),
    Column("digest", String(80), nullable=False),
    Column("size", BigInteger, nullable=False),
    PrimaryKeyConstraint("run_pk", "path"),
    Index(None, "digest"),
)

lineage_edges = Table(
    "lineage_edges",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("src_kind", String(32), nullable=False),
    Column("src_id", String(255), nullable=False),
    Column("dst_kind", String(32), nullable=False),
    Column("dst_id", String(255), nullable=False),
    Column("relation", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("attributes", JSON, nullable=False),
    UniqueConstraint("src_kind", "src_id", "dst_kind", "dst_id", "relation"),
    Index(None, "dst_kind", "dst_id"),
)

# Named counters: gap-free numbers per parent (model versions, dataset versions...).
# See ``sequences.py``: the increment commits or rolls back with the caller's write.
sequences = Table(
    "sequences",
    metadata,
    Column("scope", String(300), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# The append-only audit trail, hash-chained in ``seq`` order (see ``audit.py``).
audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", PK, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("at", BigInteger, nullable=False),
    Column("actor", String(250), nullable=False),
    Column("action", String(64), nullable=False),
    Column("object_kind", String(32), nullable=False),
    Column("object_id", String(255), nullable=False),
    Column("project", String(250), nullable=True),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Column("details", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index(None, "project", "at"),
    Index(None, "object_kind", "object_id"),
    Index(None, "at"),
)


# ------------------------------------------------------------------------ data
# Datasets and their immutable versions (``stores/metadata/sql/datasets.py``). The
# bytes live in the artifact store: a version points at its manifest blob, whose
# digest is also its content hash. Version numbers come from ``sequences``
# (scope ``dataset-versions:<dataset id>``), so they are gap-free per dataset.

datasets = Table(
    "datasets",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(250), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("dataset_id", String(32), ForeignKey("datasets.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("content_hash", String(80), nullable=False),
    Column("kind", String(16), nullable=False),  # "table" or "files"
    Column("num_files", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("num_rows", BigInteger, nullable=True),
    Column("schema", JSON, nullable=True),
    Column("profile", JSON, nullable=True),
    Column("description", Text, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("creator", String(250), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("dataset_id", "version"),
    Index(None, "content_hash"),
)

# One row per validation: what was checked, against which dataset, and the report.
dataset_checks = Table(
    "dataset_checks",
    metadata,
    Column("seq", PK, primary_key=True, autoincrement=True),  # newest-first order, ties broken
    Column("id", String(32), nullable=False, unique=True),
    Column("dataset", String(250), nullable=False),
    Column("version", Integer, nullable=True),
    Column("target", Text, nullable=False),
    Column("suite", String(250), nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("num_failures", Integer, nullable=False),
    Column("report", JSON, nullable=False),
    Column("run_id", String(32), nullable=True),
    Column("actor", String(250), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index(None, "dataset", "seq"),
)


# ------------------------------------------------------------------------ registry
# Registered models live in a project; versions are numbered 1, 2, 3 ... per model
# through ``sequences`` (scope ``model-versions:<model id>``). A version points at
# its package by the digest of the package's file manifest in the content store.

registered_models = Table(
    "registered_models",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project_id", String(32), ForeignKey("projects.id"), nullable=False),
    Column("name", String(250), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("tags", JSON, nullable=False),
    Column("gate", JSON, nullable=True),  # the declared promotion gate, if any
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("project_id", "name"),
    Index(None, "project_id", "updated_at"),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("model_id", String(32), ForeignKey("registered_models.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # ready | archived
    Column("description", Text, nullable=False, default=""),
    Column("tags", JSON, nullable=False),
    Column("run_id", String(32), nullable=True),
    Column("flavour", String(32), nullable=False),
    Column("format", String(32), nullable=False),
    Column("package_digest", String(80), nullable=False),
    Column("signature", JSON, nullable=True),
    Column("info", JSON, nullable=False),  # framework versions, size, code commit...
    Column("created_by", String(250), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("model_id", "version"),
    Index(None, "run_id"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("model_id", String(32), ForeignKey("registered_models.id"), nullable=False),
    Column("alias", String(250), nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("model_id", "alias"),
)

# Every alias move in order: what rollback replays to find the previous holder.
alias_history = Table(
    "alias_history",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("model_id", String(32), nullable=False),
    Column("alias", String(250), nullable=False),
    Column("action", String(16), nullable=False),  # set | promote | rollback | remove
    Column("version", Integer, nullable=True),  # the new holder (NULL: alias removed)
    Column("previous", Integer, nullable=True),  # the holder before
    Column("actor", String(250), nullable=False),
    Column("at", BigInteger, nullable=False),
    Index(None, "model_id", "alias", "id"),
)

# Every promotion gate that ran, passed, failed or was forced.
gate_evaluations = Table(
    "gate_evaluations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("model_id", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("alias", String(250), nullable=False),
    Column("champion_version", Integer, nullable=True),
    Column("passed", Boolean, nullable=False),
    Column("forced", Boolean, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("report", JSON, nullable=False),
    Column("actor", String(250), nullable=False),
    Column("at", BigInteger, nullable=False),
    Index(None, "model_id", "version"),
)


# ------------------------------------------------------------------ governance
# Who may do what on the server (see ``governance.py``): users and service
# accounts, their API tokens (only a SHA-256 of each token is kept), their role
# per project, and the idempotency keys that make client retries safe.

principals = Table(
    "principals",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(250), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # "user" | "service"
    Column("is_admin", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("principal_id", String(32), ForeignKey("principals.id"), nullable=False),
    Column("name", String(250), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
    Index(None, "principal_id"),
)

project_roles = Table(
    "project_roles",
    metadata,
    Column("principal_id", String(32), ForeignKey("principals.id"), nullable=False),
    Column("project", String(250), nullable=False),
    Column("role", String(16), nullable=False),  # "viewer" | "editor" | "owner"
    PrimaryKeyConstraint("principal_id", "project"),
    Index(None, "project"),
)

# A write retried after a lost response carries the same key: the key is inserted in
# the write's own transaction, so the second attempt finds it and changes nothing.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    Column("result", String(64), nullable=True),  # e.g. the id a create returned
)


# Which model packages and dataset versions reference a blob, written when they are
# registered through the server (``sql/blob_refs.py``): a run's files are in
# ``artifacts``, but a package or a dataset version is a manifest blob no table
# lists, and the server must know who may read each of its files. ``project`` is
# the model's project, and "" for a dataset (datasets belong to the whole server);
# ``source`` is the model version's or dataset version's id, so deleting a version
# deletes its references in the same transaction.
blob_refs = Table(
    "blob_refs",
    metadata,
    Column("digest", String(80), nullable=False),
    Column("kind", String(16), nullable=False),  # "model" | "dataset"
    Column("project", String(250), nullable=False),
    Column("source", String(32), nullable=False),
    PrimaryKeyConstraint("digest", "kind", "project", "source"),
    Index(None, "source"),
)

# Who proved they hold a blob's bytes by uploading them through the server (a
# streamed PUT, or a direct upload the server hashed): only then, or when they can
# already read it, may they name the blob in a record (``sql/blob_refs.py``).
blob_receipts = Table(
    "blob_receipts",
    metadata,
    Column("digest", String(80), nullable=False),
    Column("principal", String(250), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("digest", "principal"),
)

# ------------------------------------------------------------------ monitoring
# Stored monitors (``stores/metadata/sql/monitors.py``): what to watch and the
# reference reduced once to a profile; every evaluation as a row of a time
# series; and incidents, at most one open per monitor, which is what keeps a
# lasting problem from sending an alert on every evaluation.

monitors = Table(
    "monitors",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(250), nullable=False),
    Column("name", String(250), nullable=False),
    Column("model", String(250), nullable=False),
    Column("config", JSON, nullable=False),  # window, thresholds, metric, alert channels, features
    Column("reference", JSON, nullable=False),  # a ReferenceProfile as data
    Column("outliers", JSON, nullable=True),  # an OutlierDetector as data
    Column("created_by", String(250), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("project", "name"),
)

monitor_results = Table(
    "monitor_results",
    metadata,
    Column("seq", PK, primary_key=True, autoincrement=True),  # evaluation order, ties broken
    Column("id", String(32), nullable=False, unique=True),
    Column("monitor_id", String(32), ForeignKey("monitors.id"), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("window_start", BigInteger, nullable=False),
    Column("window_end", BigInteger, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("labelled_rows", Integer, nullable=False),
    Column("share_drifted", Float, nullable=True),
    Column("drifted_columns", JSON, nullable=False),
    Column("metric_value", Float, nullable=True),
    Column("baseline", Float, nullable=True),
    Column("outlier_rate", Float, nullable=True),
    Column("status", String(16), nullable=False),  # ok | drift | degraded | no-data
    Column("reasons", JSON, nullable=False),
    Column("report", JSON, nullable=True),  # the DriftReport as data
    Index(None, "monitor_id", "seq"),
)

monitor_incidents = Table(
    "monitor_incidents",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("monitor_id", String(32), ForeignKey("monitors.id"), nullable=False),
    Column("status", String(16), nullable=False),  # open | resolved
    Column("reason", Text, nullable=False),
    Column("opened_at", BigInteger, nullable=False),
    Column("opened_by", String(32), nullable=False),  # the result that opened it
    Column("resolved_at", BigInteger, nullable=True),
    Column("resolved_by", String(32), nullable=True),
    Column("deliveries", JSON, nullable=False),  # every alert sent for it, and how it went
    Index(None, "monitor_id", "status"),
)


# ------------------------------------------------------------------ automation
# Continuous training (``stores/metadata/sql/automation.py``): each automation's
# spec and the cursors of its triggers; every firing with the steps it went
# through, numbered 1, 2, 3 ... per automation through ``sequences`` (scope
# ``automation-firings:<automation id>``) and unique per (automation, key), so a
# trigger never fires twice; and the leases that elect one agent at a time.

automations = Table(
    "automations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(250), nullable=False),
    Column("name", String(250), nullable=False),
    Column("spec", JSON, nullable=False),  # the parsed automation spec
    Column("cursors", JSON, nullable=False),  # per trigger: what it last fired on or saw
    Column("enabled", Boolean, nullable=False),
    Column("created_by", String(250), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("project", "name"),
)

automation_firings = Table(
    "automation_firings",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("automation_id", String(32), ForeignKey("automations.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("trigger", String(32), nullable=False),
    Column("key", String(500), nullable=False),  # what fired, e.g. "new_data:bikes-raw@3"
    Column("reason", Text, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("state", String(16), nullable=False),  # pending ... done | failed | rejected | rolled_back
    Column("steps", JSON, nullable=False),  # [{"at", "state", "message", "details"}], oldest first
    Column("run_id", String(32), nullable=True),
    Column("candidate", Integer, nullable=True),  # the model version the pipeline registered
    Column("previous", Integer, nullable=True),  # the alias holder before the rollout
    Column("error", Text, nullable=True),
    Column("created_by", String(250), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=True),
    UniqueConstraint("automation_id", "key"),
    UniqueConstraint("automation_id", "number"),
    Index(None, "state", "created_at"),  # the active firings an agent works on
)

# One row per lease name; ``token`` grows each time the holder changes (a fencing token).
agent_leases = Table(
    "agent_leases",
    metadata,
    Column("name", String(250), primary_key=True),
    Column("holder", String(250), nullable=False),
    Column("token", BigInteger, nullable=False),
    Column("acquired_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)
