//! The simulation's seeds, and proof that it catches a broken fold.

use super::run;
use ledger::{Fault, with_fault};

/// Seeds per test; four tests run in parallel. Set `CHATCART_SIM_SEEDS` to
/// run more (or fewer) per test.
fn per_test() -> u64 {
    std::env::var("CHATCART_SIM_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_500)
}

/// The checks a run failed that it is held to.
pub(super) fn verdict(
    report: &ledger::audit::AuditReport,
    cfg: &super::world::SimConfig,
) -> Vec<&'static str> {
    report
        .checks
        .iter()
        .filter(|c| {
            let excused =
                (cfg.zombies || cfg.deadline_percent > 0) && c.name == "budget utilisation";
            !(c.ok || excused)
        })
        .map(|c| c.name)
        .collect()
}

/// Runs this test's share of the seeds, or only `CHATCART_SIM_SEED` when
/// it is set (in the first test).
fn check(part: u64) {
    let seeds: Vec<u64> = match std::env::var("CHATCART_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) if part == 0 => vec![seed],
        Some(_) => vec![],
        None => (part * per_test()..(part + 1) * per_test()).collect(),
    };
    for seed in seeds {
        let (report, cfg) = run(seed);
        assert!(
            verdict(&report, &cfg).is_empty(),
            "simulation seed {seed} failed; replay it with CHATCART_SIM_SEED={seed}\n{cfg:?}\n{report}"
        );
    }
}

#[test]
fn seeds_part_0() {
    check(0);
}

#[test]
fn seeds_part_1() {
    check(1);
}

#[test]
fn seeds_part_2() {
    check(2);
}

#[test]
fn seeds_part_3() {
    check(3);
}

#[test]
fn the_same_seed_gives_the_same_run() {
    for seed in [1, 77, 4_096] {
        assert_eq!(format!("{}", run(seed).0), format!("{}", run(seed).0));
    }
}

/// The first seed that fails `check` under `fault`, and the checks it failed.
fn caught(fault: Fault, check: &str) -> (u64, Vec<&'static str>) {
    with_fault(fault, || first_failing(check)).expect("the simulation catches the broken fold")
}

/// The first of 1,000 seeds that fails `check`, and the checks it failed.
fn first_failing(check: &str) -> Option<(u64, Vec<&'static str>)> {
    (0..1_000).find_map(|seed| {
        let (report, _) = run(seed);
        let failed: Vec<_> = report
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name)
            .collect();
        failed.contains(&check).then_some((seed, failed))
    })
}

#[test]
fn a_fold_that_ignores_the_allowance_is_caught() {
    let (seed, failed) = caught(Fault::IgnoreAllowance, "budget");
    eprintln!("caught by seed {seed}: {failed:?}");
}

#[test]
fn a_fold_that_ignores_the_per_user_limit_is_caught() {
    let (seed, failed) = caught(Fault::IgnoreUserLimit, "per-user limit");
    eprintln!("caught by seed {seed}: {failed:?}");
}

#[test]
fn a_checkpoint_image_that_forgets_users_is_caught() {
    let (seed, failed) = caught(Fault::ImageForgetsUsers, "checkpoint restores");
    eprintln!("caught by seed {seed}: {failed:?}");
}

/// The simulation drives the runner's own bookkeeping, so a runner that
/// stores offsets past a parked record (which a crash then skips) fails it.
#[test]
fn a_runner_that_stores_past_a_parked_record_is_caught() {
    let (seed, failed) =
        crate::progress::with_stores_past_parked(|| first_failing("one reply per request"))
            .expect("the simulation catches the broken bookkeeping");
    eprintln!("caught by seed {seed}: {failed:?}");
}

#[test]
#[ignore]
fn debug_seed() {
    let seed: u64 = std::env::var("CHATCART_SIM_SEED").unwrap().parse().unwrap();
    let id = std::env::var("CHATCART_SIM_REQUEST").unwrap_or_default();
    super::world::debug(seed, &id);
}

#[test]
#[ignore]
fn survey() {
    let n: u64 = std::env::var("CHATCART_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let start = std::time::Instant::now();
    let mut bad = 0;
    for seed in 0..n {
        let (report, cfg) = run(seed);
        if !verdict(&report, &cfg).is_empty() {
            bad += 1;
            let failed: Vec<_> = report
                .checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect();
            eprintln!("seed {seed} {cfg:?} {failed:?}");
        }
    }
    eprintln!("{bad} of {n} failed in {:?}", start.elapsed());
}
