//! Profiles: the totals of every shape, exact send times, and every refusal.

use proptest::prelude::*;

use super::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance * b.abs().max(1.0)
}

/// Every request's time, checked to be monotone and to invert `due_by`.
fn check_schedule(p: &Profile) {
    let total = p.total();
    let mut last = 0.0;
    for n in 0..total {
        let t = p.due_at(n).expect("request before the total is due");
        assert!(t >= last, "{}: request {n} at {t} before {last}", p.name());
        assert!(t <= p.duration().as_secs_f64() + 1e-9);
        assert!(
            close(p.due_by(t), n as f64, 1e-9),
            "{}: due_by(due_at({n})) = {}",
            p.name(),
            p.due_by(t)
        );
        last = t;
    }
    assert_eq!(p.due_at(total), None);
}

#[test]
fn constant_sends_request_n_at_n_over_rate() {
    let p = Profile::constant(1_000.0, secs(10)).expect("valid");
    assert_eq!(p.name(), "constant");
    assert_eq!(p.total(), 10_000);
    assert_eq!(p.duration(), secs(10));
    assert_eq!(p.peak_rate(), 1_000.0);
    for n in [0, 1, 7, 999, 5_000, 9_999] {
        assert_eq!(p.due_at(n), Some(n as f64 / 1_000.0), "{n}");
    }
    assert_eq!(p.due_at(10_000), None);
    assert_eq!(p.rate_at(3.3), 1_000.0);
    assert_eq!(p.rate_at(-1.0), 0.0);
    assert_eq!(p.rate_at(10.5), 0.0);
    assert_eq!(p.due_by(2.5), 2_500.0);
    assert_eq!(p.due_by(99.0), 10_000.0);
    check_schedule(&p);

    // A rate whose product with the duration is whole only on paper.
    let p = Profile::constant(0.1, secs(30)).expect("valid");
    assert_eq!(p.total(), 3);
    let p = Profile::constant(7.3, secs(10)).expect("valid");
    assert_eq!(p.total(), 73);
    assert_eq!(p.due_at(72), Some(72.0 / 7.3));
}

#[test]
fn ramp_times_solve_the_quadratic() {
    // From 0 to 100/s over 10 s: due_by(t) = 5·t², 500 in all.
    let p = Profile::ramp(0.0, 100.0, secs(10)).expect("valid");
    assert_eq!(p.total(), 500);
    assert_eq!(p.rate_at(2.5), 25.0);
    assert!(close(p.due_by(4.0), 80.0, 1e-12));
    assert_eq!(p.due_at(0), Some(0.0));
    for n in [1u64, 5, 80, 245, 499] {
        let want = (n as f64 / 5.0).sqrt();
        let got = p.due_at(n).expect("due");
        assert!(close(got, want, 1e-12), "{n}: {got} vs {want}");
    }
    check_schedule(&p);

    // Down from 100/s to 0: due_by(t) = 100·t − 5·t².
    let p = Profile::ramp(100.0, 0.0, secs(10)).expect("valid");
    assert_eq!(p.total(), 500);
    let got = p.due_at(375).expect("due");
    assert!(close(got, 5.0, 1e-12), "{got}");
    check_schedule(&p);

    // A nearly flat ramp, where the textbook root would cancel.
    let p = Profile::ramp(1_000.0, 1_000.001, secs(10)).expect("valid");
    assert_eq!(p.total(), 10_000);
    let got = p.due_at(1_000).expect("due");
    assert!(close(got, 1.0, 1e-7), "{got}");
    check_schedule(&p);
}

#[test]
fn spike_steps_up_and_down_at_burst_boundaries() {
    // 10/s, with 100/s for 2 s starting at 5 s and at 10 s, for 12 s.
    let p = Profile::spike(10.0, 100.0, secs(5), secs(2), secs(12)).expect("valid");
    assert_eq!(p.name(), "spike");
    assert_eq!(p.total(), 120 + 2 * 2 * 90);
    assert_eq!(p.peak_rate(), 100.0);
    assert_eq!(p.rate_at(4.999), 10.0);
    assert_eq!(p.rate_at(5.0), 100.0);
    assert_eq!(p.rate_at(6.999), 100.0);
    assert_eq!(p.rate_at(7.0), 10.0);
    assert_eq!(p.rate_at(10.0), 100.0);
    // The last burst runs to the end.
    assert_eq!(p.rate_at(12.0), 100.0);
    assert_eq!(p.due_by(5.0), 50.0);
    assert_eq!(p.due_by(7.0), 250.0);
    // Request 50 is the first of the burst, 250 the first after it.
    assert_eq!(p.due_at(49), Some(4.9));
    assert_eq!(p.due_at(50), Some(5.0));
    assert!(close(p.due_at(51).expect("due"), 5.01, 1e-12));
    assert_eq!(p.due_at(250), Some(7.0));
    check_schedule(&p);

    // A burst cut short by the end.
    let p = Profile::spike(0.0, 100.0, secs(5), secs(2), secs(6)).expect("valid");
    assert_eq!(p.total(), 100);
    assert_eq!(p.rate_at(6.0), 100.0);
    // Nothing is due before the first burst but request 0, at the start.
    assert_eq!(p.due_at(0), Some(0.0));
    assert!(close(p.due_at(1).expect("due"), 5.01, 1e-12));
    check_schedule(&p);
}

#[test]
fn spring_festival_passes_through_the_reported_figures() {
    let p = Profile::spring_festival(3_600.0, 0.001).expect("valid");
    assert_eq!(p.name(), "spring-festival");
    assert_eq!(p.duration(), secs(24));
    assert_eq!(p.total(), 15_000);
    assert!(close(p.peak_rate(), 2_200.0, 1e-12), "{}", p.peak_rate());
    assert!(close(p.rate_at(4.5), 2_200.0, 1e-12));
    assert!(close(p.rate_at(0.5), 150.0, 1e-12));
    for (hour, millions) in [(3.0, 1.0), (5.0, 5.0), (9.0, 10.2), (24.0, 15.0)] {
        let due = p.due_by(hour);
        assert!(close(due, millions * 1_000.0, 1e-9), "hour {hour}: {due}");
    }
    check_schedule(&p);

    // A slower replay: an hour a minute, a hundredth of the volume.
    let p = Profile::spring_festival(60.0, 0.01).expect("valid");
    assert_eq!(p.duration(), secs(24 * 60));
    assert_eq!(p.total(), 150_000);
    for (hour, millions) in SPRING_FESTIVAL {
        let due = p.due_by(hour * 60.0);
        assert!(close(due, millions * 10_000.0, 1e-9), "hour {hour}: {due}");
    }
    // Reported: a million by hour 3, so request 10,000 is due at 3 min.
    let t = p.due_at(10_000).expect("due");
    assert!(close(t, 180.0, 1e-9), "{t}");
}

#[test]
fn truncate_keeps_the_start() {
    let p = Profile::ramp(0.0, 100.0, secs(10)).expect("valid");
    let head = p.clone().truncate(secs(4));
    assert_eq!(head.duration(), secs(4));
    assert_eq!(head.total(), 80);
    assert_eq!(head.rate_at(4.0), 40.0);
    for n in 0..80 {
        assert_eq!(head.due_at(n), p.due_at(n), "{n}");
    }
    assert_eq!(head.due_at(80), None);
    assert_eq!(p.clone().truncate(secs(10)), p);
    assert_eq!(p.clone().truncate(secs(60)), p);

    // Cut inside a burst: the burst's rate holds to the new end.
    let p = Profile::spike(10.0, 100.0, secs(5), secs(2), secs(12)).expect("valid");
    let head = p.truncate(Duration::from_millis(6_500));
    assert_eq!(head.total(), 50 + 150);
    assert_eq!(head.rate_at(6.5), 100.0);
    // Cut at a step: the rate before it.
    let p = Profile::spike(10.0, 100.0, secs(5), secs(2), secs(12)).expect("valid");
    let head = p.truncate(secs(5));
    assert_eq!(head.total(), 50);
    assert_eq!(head.rate_at(5.0), 10.0);
    assert_eq!(head.peak_rate(), 10.0);
    let nothing = head.truncate(Duration::ZERO);
    assert_eq!(nothing.total(), 0);
    assert_eq!(nothing.due_at(0), None);
    assert_eq!(nothing.due_by(1.0), 0.0);
}

#[test]
fn bad_profiles_are_refused_with_what_to_do() {
    let message = |r: Result<Profile, ProfileError>| r.expect_err("refused").to_string();
    let e = message(Profile::constant(0.0, secs(10)));
    assert!(e.contains("--rate a rate above 0"), "{e}");
    for bad in [-1.0, 1_000_001.0, f64::NAN, f64::INFINITY] {
        let e = message(Profile::constant(bad, secs(10)));
        assert!(
            e.starts_with("--rate must be between 0 and 1,000,000"),
            "{e}"
        );
    }
    let e = message(Profile::ramp(10.0, -5.0, secs(10)));
    assert!(e.starts_with("--to must be between"), "{e}");
    let e = message(Profile::ramp(f64::NAN, 5.0, secs(10)));
    assert!(e.starts_with("--from must be between"), "{e}");
    assert!(matches!(
        Profile::ramp(0.0, 0.0, secs(10)),
        Err(ProfileError::AllZero { .. })
    ));
    let e = message(Profile::constant(5.0, Duration::ZERO));
    assert_eq!(
        e,
        "--duration must be more than 0 and at most 7 days; got 0s"
    );
    let e = message(Profile::constant(5.0, MAX_DURATION + secs(1)));
    assert!(e.contains("at most 7 days"), "{e}");
    Profile::constant(1.0, MAX_DURATION).expect("seven days is allowed");

    let e = message(Profile::spike(1.0, 10.0, secs(5), secs(5), secs(60)));
    assert!(e.contains("--burst must be shorter than --every"), "{e}");
    let e = message(Profile::spike(1.0, 10.0, Duration::ZERO, secs(1), secs(60)));
    assert!(e.starts_with("--every must be more than 0"), "{e}");
    let e = message(Profile::spike(1.0, 10.0, secs(5), Duration::ZERO, secs(60)));
    assert!(e.starts_with("--burst must be more than 0"), "{e}");
    let e = message(Profile::spike(1.0, -10.0, secs(5), secs(1), secs(60)));
    assert!(e.starts_with("--peak must be between"), "{e}");
    let e = message(Profile::spike(0.0, 0.0, secs(5), secs(1), secs(60)));
    assert!(e.contains("give --peak a rate above 0"), "{e}");
    let e = message(Profile::spike(
        1.0,
        10.0,
        Duration::from_millis(2),
        Duration::from_millis(1),
        secs(3_600),
    ));
    assert!(e.contains("179999") && e.contains("raise --every"), "{e}");

    for bad in [0.5, 2e6, f64::NAN] {
        let e = message(Profile::spring_festival(bad, 0.001));
        assert!(
            e.starts_with("--time-scale must be between 1 and 1,000,000"),
            "{e}"
        );
    }
    for bad in [0.0, -1.0, f64::INFINITY, f64::NAN] {
        let e = message(Profile::spring_festival(3_600.0, bad));
        assert!(
            e.starts_with("--scale must be a finite number above 0"),
            "{e}"
        );
    }
    let e = message(Profile::spring_festival(3_600.0, 1.0));
    assert!(e.contains("peak would be 2200000 requests/s"), "{e}");
    assert!(e.contains("lower --scale or --time-scale"), "{e}");

    // Fewer than one request, or too many.
    let e = message(Profile::constant(0.5, secs(1)));
    assert!(e.contains("no request at all") && e.contains("1s"), "{e}");
    let e = message(Profile::spike(0.0, 100.0, secs(60), secs(1), secs(30)));
    assert!(e.contains("no request at all"), "{e}");
    let e = message(Profile::constant(1_000_000.0, secs(101)));
    assert!(
        e.contains("101000000 requests, more than 100,000,000"),
        "{e}"
    );
    assert!(e.contains("lower the rate, the duration or --scale"), "{e}");
    Profile::constant(1_000_000.0, secs(100)).expect("exactly the most");
    let e = message(Profile::spring_festival(1.0, 10.0));
    assert!(e.contains("150000000 requests"), "{e}");
}

#[test]
fn profiles_serialise_their_knots() {
    let p = Profile::ramp(1.0, 3.0, secs(2)).expect("valid");
    let json = serde_json::to_value(&p).expect("serialises");
    assert_eq!(
        json,
        serde_json::json!({"name": "ramp", "knots": [[0.0, 1.0], [2.0, 3.0]]})
    );
}

fn profiles() -> impl Strategy<Value = Profile> {
    let rate = 0.0..5_000.0f64;
    let millis = 1..20_000u64;
    prop_oneof![
        (rate.clone(), millis.clone()).prop_filter_map("sends something", |(r, d)| {
            Profile::constant(r, Duration::from_millis(d)).ok()
        }),
        (rate.clone(), rate.clone(), millis.clone()).prop_filter_map(
            "sends something",
            |(a, b, d)| Profile::ramp(a, b, Duration::from_millis(d)).ok()
        ),
        (rate.clone(), rate, 2..5_000u64, 1..5_000u64, millis).prop_filter_map(
            "sends something",
            |(base, peak, every, burst, d)| {
                let ms = Duration::from_millis;
                Profile::spike(base, peak, ms(every), ms(burst.min(every - 1)), ms(d)).ok()
            }
        ),
        (3_600.0..1e6f64, 1e-5..1e-3f64)
            .prop_filter_map("sends something", |(ts, s)| Profile::spring_festival(ts, s)
                .ok()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Send times are monotone, within the profile, and invert `due_by`;
    /// `total` is the whole part of the profile's integral.
    #[test]
    fn due_at_inverts_due_by(p in profiles(), cut in 0.0..1.5f64) {
        let total = p.total();
        prop_assert!((1..=MAX_TOTAL).contains(&total));
        let end = p.duration().as_secs_f64();
        prop_assert!(p.due_by(end) + 1e-6 >= total as f64);
        prop_assert!(p.due_by(end) < total as f64 + 1.0);
        let mut last = 0.0;
        // Every request of small profiles, a spread of large ones.
        let step = (total / 2_000).max(1);
        for n in (0..total).step_by(step as usize).chain([total - 1]) {
            let t = p.due_at(n);
            prop_assert!(t.is_some());
            let t = t.unwrap_or_default();
            prop_assert!(t >= last && t <= end, "request {n}: {t} after {last}, end {end}");
            let due = p.due_by(t);
            prop_assert!((due - n as f64).abs() <= 1e-6 * (n as f64).max(1.0), "request {n}: {due}");
            last = t;
        }
        prop_assert_eq!(p.due_at(total), None);
        // A truncated profile is the same schedule, stopped early.
        let head = p.clone().truncate(Duration::from_secs_f64(end * cut));
        prop_assert!(head.total() <= total);
        for n in (0..head.total()).step_by(step as usize) {
            let (a, b) = (head.due_at(n).unwrap_or_default(), p.due_at(n).unwrap_or_default());
            prop_assert!((a - b).abs() <= 1e-9 * b.max(1.0), "request {n}: {a} vs {b}");
        }
    }
}
