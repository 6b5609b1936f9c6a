//! The schema migrations, embedded in the binary so a deployed daemon needs no
//! `migrations/` directory. A test checks this list against the directory, so
//! a new file cannot be forgotten here.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};

/// `(version, description, sql)` for every file in `migrations/`, in order.
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "cycles observations history",
        include_str!("../../migrations/0001_cycles_observations_history.sql"),
    ),
    (
        2,
        "alert instances",
        include_str!("../../migrations/0002_alert_instances.sql"),
    ),
    (
        3,
        "actions effects approvals",
        include_str!("../../migrations/0003_actions_effects_approvals.sql"),
    ),
    (4, "llm usage", include_str!("../../migrations/0004_llm_usage.sql")),
    (5, "learning", include_str!("../../migrations/0005_learning.sql")),
    (6, "schedules", include_str!("../../migrations/0006_schedules.sql")),
    (
        7,
        "groups quiet hours",
        include_str!("../../migrations/0007_groups_quiet_hours.sql"),
    ),
    (
        8,
        "write ahead plan",
        include_str!("../../migrations/0008_write_ahead_plan.sql"),
    ),
    (
        9,
        "delivery per target",
        include_str!("../../migrations/0009_delivery_per_target.sql"),
    ),
    (
        10,
        "absent evaluations",
        include_str!("../../migrations/0010_absent_evaluations.sql"),
    ),
    (
        11,
        "forgotten instances",
        include_str!("../../migrations/0011_forgotten_instances.sql"),
    ),
    (
        12,
        "one instance state index",
        include_str!("../../migrations/0012_one_instance_state_index.sql"),
    ),
    (
        13,
        "message lists",
        include_str!("../../migrations/0013_message_lists.sql"),
    ),
    (14, "silences", include_str!("../../migrations/0014_silences.sql")),
];

/// The migrator over [`MIGRATIONS`].
pub(crate) fn migrator() -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    (*sql).into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

use sqlx::SqlSafeStr as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        assert_eq!(
            files.len(),
            MIGRATIONS.len(),
            "migrations/ and MIGRATIONS differ: {files:?}"
        );
        for (file, (version, _, sql)) in files.iter().zip(MIGRATIONS) {
            let n: i64 = file[..4].parse().unwrap();
            assert_eq!(n, *version, "{file}");
            let on_disk = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
            assert_eq!(&on_disk, sql, "{file} differs from its embedded copy");
        }
    }
}
