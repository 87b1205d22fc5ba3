//! Versioned schema migrations for the analytics database.
//!
//! The SQL lives in `connectors/migrations/NNNN_name.sql` and is compiled in,
//! so a binary always carries the schema it writes. `migrate` applies, in
//! order, every migration the `schema_migrations` table does not record yet,
//! then records it. Every statement is idempotent (`IF NOT EXISTS`), so two
//! processes migrating at once, or a crash between a statement and its
//! record, only repeat harmless work. An applied migration is never edited:
//! its checksum is recorded and a changed file is refused; change the schema
//! with a new migration instead.
//!
//! The SQL stays within what ClickHouse 18.16 understands. Where a newer
//! server does better, a placeholder in the SQL is filled according to the
//! server's version ([`Dialect`]): `LowCardinality(String)` for repetitive
//! strings, and a deduplication window so a retried insert with the same
//! `insert_deduplication_token` is dropped by the server.

use clickhouse::Row;
use serde::Deserialize;

use super::ClickHouseConfig;
use crate::ConnectorError;

/// One migration as shipped.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    /// The SQL with its `{Placeholder}`s, as in the file.
    pub sql: &'static str,
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "events",
        sql: include_str!("../../migrations/0001_events.sql"),
    },
    Migration {
        version: 2,
        name: "campaigns",
        sql: include_str!("../../migrations/0002_campaigns.sql"),
    },
    Migration {
        version: 3,
        name: "surge_views",
        sql: include_str!("../../migrations/0003_surge_views.sql"),
    },
    Migration {
        version: 4,
        name: "front_door_views",
        sql: include_str!("../../migrations/0004_front_door_views.sql"),
    },
];

/// A server's `version()`, e.g. `18.16.1` or `24.8.4.13`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    pub major: u32,
    pub minor: u32,
    pub text: String,
}

impl ServerVersion {
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(Self {
            major,
            minor,
            text: text.trim().to_owned(),
        })
    }

    fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

/// What the connected server supports beyond 18.16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dialect {
    /// `LowCardinality(String)` without experimental settings (20.1).
    pub low_cardinality: bool,
    /// `insert_deduplication_token` and, on a plain MergeTree,
    /// `non_replicated_deduplication_window` (22.2).
    pub dedup_token: bool,
}

impl Dialect {
    pub fn of(version: &ServerVersion) -> Self {
        Self {
            low_cardinality: version.at_least(20, 1),
            dedup_token: version.at_least(22, 2),
        }
    }

    /// `sql` with its placeholders filled for this server.
    pub fn render(&self, sql: &str) -> String {
        let string = if self.low_cardinality {
            "LowCardinality(String)"
        } else {
            "String"
        };
        // Enough to cover every batch the sink could retry after an
        // ambiguous failure, and small enough to cost nothing.
        let settings = if self.dedup_token {
            " SETTINGS non_replicated_deduplication_window = 1000"
        } else {
            ""
        };
        sql.replace("{LowCardinalityString}", string)
            .replace("{EventsSettings}", settings)
    }
}

/// The statements of a migration: `--` comments dropped, split at `;`.
pub fn statements(sql: &str) -> Vec<String> {
    let code: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    code.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A stable fingerprint of a migration's text (FNV-1a, 64 bits), recorded
/// so an edited migration is noticed.
pub fn checksum(sql: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in sql.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// What `migrate` found and did.
#[derive(Debug, Clone)]
pub struct Migrated {
    pub server: ServerVersion,
    pub dialect: Dialect,
    /// Versions applied by this call.
    pub applied: Vec<u32>,
    /// Versions that were already recorded.
    pub present: Vec<u32>,
}

const MIGRATIONS_DDL: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32,
    name String,
    checksum String,
    server_version String,
    applied_at DateTime DEFAULT now()
) ENGINE = MergeTree ORDER BY version";

#[derive(Debug, Row, Deserialize)]
struct Recorded {
    version: u32,
    checksum: String,
}

/// The server's version.
pub async fn server_version(config: &ClickHouseConfig) -> Result<ServerVersion, ConnectorError> {
    let text: String = config
        .client()
        .with_database("default")
        .query("SELECT version()")
        .fetch_one()
        .await?;
    ServerVersion::parse(&text).ok_or_else(|| ConnectorError::Migration {
        version: 0,
        message: format!("the server reports version `{text}`, which is not MAJOR.MINOR…; is clickhouse.url a ClickHouse server?"),
    })
}

/// Creates the database if needed and applies every migration it lacks.
pub async fn migrate(config: &ClickHouseConfig) -> Result<Migrated, ConnectorError> {
    let server = server_version(config).await?;
    let dialect = Dialect::of(&server);
    // `database` was checked by `validate` to be a plain identifier.
    config
        .client()
        .with_database("default")
        .query(&format!(
            "CREATE DATABASE IF NOT EXISTS {}",
            config.database
        ))
        .execute()
        .await?;
    let client = config.client();
    let tables: Vec<String> = client
        .query("SELECT name FROM system.tables WHERE database = ? AND name IN ('events', 'schema_migrations')")
        .bind(&config.database)
        .fetch_all()
        .await?;
    if tables.iter().any(|t| t == "events") && !tables.iter().any(|t| t == "schema_migrations") {
        return Err(ConnectorError::Migration {
            version: 1,
            message: format!(
                "database `{db}` has an `events` table made before schema migrations; drop it (DROP TABLE {db}.events) or set clickhouse.database to a new database",
                db = config.database
            ),
        });
    }
    client.query(MIGRATIONS_DDL).execute().await?;
    let recorded: Vec<Recorded> = client
        .query("SELECT version, any(checksum) FROM schema_migrations GROUP BY version ORDER BY version")
        .fetch_all()
        .await?;
    if let Some(newest) = recorded.last()
        && !MIGRATIONS.iter().any(|m| m.version == newest.version)
    {
        return Err(ConnectorError::Migration {
            version: newest.version,
            message: format!(
                "database `{}` was migrated by a newer chatcart (migration {} is unknown to this build); run the newer build",
                config.database, newest.version
            ),
        });
    }
    let mut migrated = Migrated {
        server,
        dialect,
        applied: Vec::new(),
        present: Vec::new(),
    };
    for m in MIGRATIONS {
        let sum = checksum(m.sql);
        if let Some(r) = recorded.iter().find(|r| r.version == m.version) {
            if r.checksum != sum {
                return Err(ConnectorError::Migration {
                    version: m.version,
                    message: format!(
                        "migration {:04}_{} differs from the one applied to `{}` (checksum {} recorded, {sum} shipped): never edit an applied migration, add a new one",
                        m.version, m.name, config.database, r.checksum
                    ),
                });
            }
            migrated.present.push(m.version);
            continue;
        }
        for statement in statements(&dialect.render(m.sql)) {
            client
                .query(&statement)
                .execute()
                .await
                .map_err(|e| ConnectorError::Migration {
                    version: m.version,
                    message: format!("{:04}_{} failed: {e}", m.version, m.name),
                })?;
        }
        client
            .query("INSERT INTO schema_migrations (version, name, checksum, server_version) VALUES (?, ?, ?, ?)")
            .bind(m.version)
            .bind(m.name)
            .bind(&sum)
            .bind(&migrated.server.text)
            .execute()
            .await?;
        tracing::info!(version = m.version, name = m.name, "migration applied");
        migrated.applied.push(m.version);
    }
    Ok(migrated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_pick_a_dialect() {
        let old = ServerVersion::parse("18.16.1\n").unwrap();
        assert_eq!((old.major, old.minor), (18, 16));
        assert_eq!(Dialect::of(&old), Dialect::default());
        let new = ServerVersion::parse("24.8.4.13").unwrap();
        assert!(Dialect::of(&new).low_cardinality && Dialect::of(&new).dedup_token);
        let mid = ServerVersion::parse("21.8.15.7").unwrap();
        assert!(Dialect::of(&mid).low_cardinality && !Dialect::of(&mid).dedup_token);
        assert_eq!(ServerVersion::parse("garbage"), None);
    }

    /// An insert lands whole only while it is one part: no partition key
    /// (rows of two partitions would be two parts) and a plain MergeTree
    /// (no Distributed or Buffer table splitting or delaying it). See
    /// `store::insert_events`; `chatcart audit --clickhouse` finds a hole
    /// if this is ever broken.
    #[test]
    fn the_events_table_writes_one_insert_as_one_part() {
        let events = MIGRATIONS[0].sql;
        assert!(events.contains("CREATE TABLE IF NOT EXISTS events ("));
        let upper = events.to_uppercase();
        assert!(!upper.contains("PARTITION BY"), "{events}");
        assert!(upper.contains("ENGINE = MERGETREE ORDER BY"), "{events}");
        for later in &MIGRATIONS[1..] {
            let sql = later.sql.to_uppercase();
            assert!(
                !(sql.contains("ALTER TABLE EVENTS") || sql.contains("TABLE EVENTS ENGINE")),
                "{} changes the events table",
                later.name
            );
        }
    }

    #[test]
    fn migrations_are_numbered_in_order_and_fully_rendered() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.name);
            for dialect in [
                Dialect::default(),
                Dialect::of(&ServerVersion::parse("24.8").unwrap()),
            ] {
                let sql = dialect.render(m.sql);
                let statements = statements(&sql);
                assert!(!statements.is_empty(), "{}", m.name);
                for s in statements {
                    assert!(!s.contains('{'), "unfilled placeholder in {}: {s}", m.name);
                    // Idempotence is what makes a concurrent or repeated
                    // migration harmless.
                    assert!(s.contains("IF NOT EXISTS"), "{}: {s}", m.name);
                }
            }
        }
    }

    #[test]
    fn the_modern_dialect_changes_types_and_settings_only_where_marked() {
        let sql = MIGRATIONS[0].sql;
        let old = Dialect::default().render(sql);
        let new = Dialect::of(&ServerVersion::parse("24.8").unwrap()).render(sql);
        assert!(!old.contains("LowCardinality") && !old.contains("SETTINGS"));
        assert!(new.contains("topic LowCardinality(String)"));
        assert!(new.contains("non_replicated_deduplication_window"));
    }

    #[test]
    fn checksums_are_stable_and_notice_edits() {
        assert_eq!(checksum(""), "cbf29ce484222325");
        assert_ne!(checksum(MIGRATIONS[0].sql), checksum(MIGRATIONS[1].sql));
    }
}
