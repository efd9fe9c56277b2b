//! The checker against small hand-written histories: each broken promise is caught, and a
//! sound history passes. Times are in ns, ttl 100 ns unless a case says otherwise.

use super::*;

const A: u32 = 1; // hold 1.1
const B: u32 = 2; // hold 2.1

fn ttl(ns: u64) -> Rules {
    Rules {
        expires: true,
        frees_on_death: false,
        ttl: Duration::from_nanos(ns),
        starve_after: None,
    }
}

const LEASE: Rules = Rules {
    expires: true,
    frees_on_death: false,
    ttl: Duration::from_nanos(100),
    starve_after: None,
};
/// Leases tied to their holders' processes: a killed holder frees the lock at once.
const TIED: Rules = Rules {
    expires: true,
    frees_on_death: true,
    ttl: Duration::from_nanos(100),
    starve_after: None,
};
const SESSION: Rules = Rules {
    expires: false,
    frees_on_death: false,
    ttl: Duration::from_nanos(100),
    starve_after: None,
};

fn record(lines: &str, accesses: &str, final_value: u64, faults: Vec<Fault>) -> LaneRecord {
    let parse = |text: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    };
    LaneRecord {
        lines: parse(lines).iter().map(|l| l.parse().unwrap()).collect(),
        accesses: parse(accesses).iter().map(|l| l.parse().unwrap()).collect(),
        final_value,
        faults,
        panics: 0,
        end: 10_000_000_000,
        clock_steps: vec![],
    }
}

/// A (pid 1) stopped at `stop` and continued at `cont`.
fn paused(stop: u64, cont: u64) -> Vec<Fault> {
    vec![Fault::Pause {
        pid: A,
        stop,
        stopped: stop,
        cont,
        mid_operation: false,
    }]
}

/// A, holding until 300, killed at 20; B granted at 200 (early at a ttl of 290).
fn granted_early() -> LaneRecord {
    record(
        "10 acquired 1.1 1 300
         200 acquired 2.1 2 400",
        "",
        0,
        vec![Fault::Kill {
            pid: A,
            t: 20,
            confirmed: false,
            gone: None,
        }],
    )
}

/// A holds 10–20 with token 1, B holds 30–40 with token 2; both increment the counter.
const SOUND: &str = "
    10 acquired 1.1 1 110
    20 release 1.1 110
    21 released 1.1 released
    30 acquired 2.1 2 130
    40 release 2.1 130
    41 released 2.1 released";
const SOUND_ACCESSES: &str = "
    11 read 1.1 1 1 0 0
    12 write 1.1 1 1 1 0
    31 read 2.1 2 1 1 0
    32 write 2.1 2 1 2 0";

#[test]
fn a_sound_history_has_no_violation() {
    let t = check(&record(SOUND, SOUND_ACCESSES, 2, vec![]), LEASE);
    assert_eq!(t.holds, 2);
    assert_eq!(t.violations(true), 0, "{t:?}");
}

#[test]
fn each_broken_promise_is_counted() {
    type Case = (&'static str, LaneRecord, Rules, fn(&Tally) -> u64);
    let cases: Vec<Case> = vec![
        (
            "B granted before A released",
            record(
                &SOUND.replace("30 acquired", "15 acquired"),
                SOUND_ACCESSES,
                2,
                vec![],
            ),
            LEASE,
            |t| t.overlaps,
        ),
        (
            "B granted after A's valid_until passed is fine, but not before",
            record(
                "10 acquired 1.1 1 50
                 60 release 1.1 50
                 45 acquired 2.1 2 145",
                "",
                0,
                vec![],
            ),
            LEASE,
            |t| t.overlaps,
        ),
        (
            "B's token not above A's",
            record(
                &SOUND.replace("acquired 2.1 2", "acquired 2.1 1"),
                "",
                0,
                vec![],
            ),
            LEASE,
            |t| t.token_regressions,
        ),
        (
            "the newest holder refused by the resource",
            record(
                SOUND,
                "11 read 1.1 5 1 0 0
                 31 read 2.1 2 0 0 0",
                0,
                vec![],
            ),
            LEASE,
            |t| t.token_regressions,
        ),
        (
            "two accepted increments, counter at 1",
            record(SOUND, SOUND_ACCESSES, 1, vec![]),
            LEASE,
            |t| t.lost_updates,
        ),
        (
            "A's late write accepted after B used the resource",
            record(
                "10 acquired 1.1 1 50
                 70 release 1.1 50
                 60 acquired 2.1 2 160",
                "11 read 1.1 1 1 0 0
                 61 read 2.1 2 1 0 0
                 65 write 1.1 3 1 1 0",
                1,
                vec![],
            ),
            LEASE,
            |t| t.stale_writes_accepted,
        ),
        (
            "a paused holder's release went through after B took over",
            record(
                "10 acquired 1.1 1 50
                 60 acquired 2.1 2 160
                 70 lost 1.1 unreachable
                 80 release 1.1 50
                 81 released 1.1 released",
                "",
                0,
                paused(20, 65),
            ),
            LEASE,
            |t| t.stale_releases,
        ),
        (
            "a paused holder taken over and never told",
            record(
                "10 acquired 1.1 1 50
                 60 acquired 2.1 2 160
                 80 release 1.1 50
                 81 released 1.1 error",
                "",
                0,
                paused(20, 65),
            ),
            LEASE,
            |t| t.not_told,
        ),
        (
            "the guard did not say lost a second past valid_until",
            record(
                "10 acquired 1.1 1 50
                 70 not_told 1.1",
                "",
                0,
                vec![],
            ),
            LEASE,
            |t| t.not_told,
        ),
        (
            "not granted again within ttl + 1 s of the holder's death",
            record(
                "10 acquired 1.1 1 110
                 2000000000 acquired 2.1 2 2000000100",
                "",
                0,
                vec![Fault::Kill {
                    pid: A,
                    t: 20,
                    confirmed: true,
                    gone: None,
                }],
            ),
            LEASE,
            |t| t.stuck,
        ),
        (
            "granted again before the dead holder's lease can have expired",
            granted_early(),
            ttl(290),
            |t| t.early,
        ),
        (
            "a session lock granted to B while A, paused, still held it",
            record(
                "10 acquired 1.1 1 110
                 60 acquired 2.1 2 160
                 300 lost 1.1 unreachable",
                "",
                0,
                paused(20, 250),
            ),
            SESSION,
            |t| t.overlaps,
        ),
        (
            "a loss no fault explains",
            record(
                "10 acquired 1.1 1 110
                 50 lost 1.1 refused",
                "",
                0,
                vec![],
            ),
            LEASE,
            |t| t.spurious_losses,
        ),
    ];
    for (what, rec, rules, column) in cases {
        let t = check(&rec, rules);
        assert_eq!(column(&t), 1, "{what}: {t:?}");
    }
}

#[test]
fn faults_that_end_holds_are_not_overlaps() {
    // A session lock ends with its connection: B may take it after the termination.
    let terminated = record(
        "10 acquired 1.1 1 110
         30 acquired 2.1 2 130
         35 lost 1.1 refused
         40 release 1.1 110
         41 released 1.1 not_owner",
        "",
        0,
        vec![Fault::Terminate { t: 20, done: 20 }],
    );
    let t = check(&terminated, SESSION);
    assert_eq!((t.overlaps, t.spurious_losses), (0, 0), "{t:?}");

    // A termination takes a while (psql starts, connects, signals, the backends exit): a hold
    // whose try was sent before it returned may be among those it ends, even one granted
    // after (by a backend on its way out); one sent after it returned is not.
    for (lines, overlaps) in [
        (
            "25 acquired 1.1 1 125\n 30 acquired 2.1 2 130\n 35 lost 1.1 refused",
            0,
        ),
        ("30 acquired 1.1 1 127\n 31 acquired 2.1 2 131", 0),
        ("29 acquired 1.1 1 129\n 30 acquired 2.1 2 130", 1),
    ] {
        let rec = record(lines, "", 0, vec![Fault::Terminate { t: 20, done: 28 }]);
        let t = check(&rec, SESSION);
        assert_eq!(
            (t.overlaps, t.spurious_losses),
            (overlaps, 0),
            "{lines}: {t:?}"
        );
    }

    // A lease ends at valid_until: B may take it once a paused A's lease has lapsed, and A's
    // late write is refused.
    let paused = record(
        "10 acquired 1.1 1 50
         60 acquired 2.1 2 160
         70 lost 1.1 unreachable
         80 release 1.1 50
         81 released 1.1 not_owner",
        "11 read 1.1 1 1 0 0
         61 read 2.1 2 1 0 0
         71 write 1.1 1 0 0 0",
        0,
        paused(20, 65),
    );
    let t = check(&paused, LEASE);
    assert_eq!(t.violations(true), 0, "{t:?}");
    assert_eq!((t.faults, t.stale_writes_refused), (1, 1));

    // A killed holder counts until its death; B comes after its lease.
    let killed = record(
        "10 acquired 1.1 1 110
         120 acquired 2.1 2 220",
        "",
        0,
        vec![Fault::Kill {
            pid: A,
            t: 20,
            confirmed: true,
            gone: None,
        }],
    );
    let t = check(&killed, LEASE);
    assert_eq!(t.violations(true), 0, "{t:?}");
    assert_eq!(t.faults, 1);
    let _ = B;
}

#[test]
fn a_release_answering_not_owner_tells_a_paused_holder() {
    // Stopped after it last asked its guard, the worker learns it from its release instead.
    let rec = record(
        "10 acquired 1.1 1 50
         60 acquired 2.1 2 160
         80 release 1.1 50
         81 released 1.1 not_owner",
        "",
        0,
        paused(20, 65),
    );
    let t = check(&rec, LEASE);
    assert_eq!((t.faults, t.not_told), (1, 0), "{t:?}");
}

#[test]
fn a_grant_written_down_late_is_judged_where_it_may_have_happened() {
    // A's try was sent at 10 and granted; A was stopped before writing it down, its lease
    // lapsed at 110, B was granted (sent 115, written at 120), and A wrote `acquired` at 130.
    let rec = record(
        "130 acquired 1.1 1 110
         120 acquired 2.1 2 215
         140 release 1.1 110
         141 released 1.1 not_owner",
        "121 read 2.1 2 1 0 2
         131 read 1.1 1 0 0 2
         150 write 2.1 2 1 1 2",
        1,
        vec![],
    );
    let t = check(&rec, LEASE);
    assert_eq!(t.violations(true), 0, "{t:?}");
}

/// A killed holder whose lease was tied to its process frees the lock at once: the grant
/// before its lease's end is no early grant; but the lock must then be free again within the
/// slack alone, not the ttl.
#[test]
fn a_tied_lease_frees_at_its_holders_death_and_no_later() {
    let tied = |ttl_ns| Rules {
        ttl: Duration::from_nanos(ttl_ns),
        ..TIED
    };
    let t = check(&granted_early(), tied(290));
    assert_eq!((t.early, t.violations(true)), (0, 0), "{t:?}");
    let slow = record(
        "10 acquired 1.1 1 5000000010
         2000000000 acquired 2.1 2 7000000000",
        "",
        0,
        vec![Fault::Kill {
            pid: A,
            t: 20,
            confirmed: true,
            gone: None,
        }],
    );
    assert_eq!(
        check(&slow, ttl(5_000_000_000)).stuck,
        0,
        "within ttl + 1 s"
    );
    assert_eq!(
        check(&slow, tied(5_000_000_000)).stuck,
        1,
        "not free at once"
    );
}

#[test]
fn an_early_grant_names_the_wall_clock_steps_between() {
    let early = |steps: Vec<Step>| {
        let mut rec = granted_early();
        rec.clock_steps = steps;
        let t = check(&rec, ttl(290));
        assert_eq!(t.early, 1);
        t.early_details[0].clone()
    };
    assert!(early(vec![]).ends_with("no wall-clock step between them"));
    let outside = Step { at: 500, ns: 9 };
    assert!(early(vec![outside]).ends_with("no wall-clock step between them"));
    let inside = Step { at: 50, ns: 250 };
    assert!(
        early(vec![outside, inside]).ends_with("wall clock stepped +250 ns at 50"),
        "{}",
        early(vec![inside])
    );
}

#[test]
fn a_pause_inside_an_operation_is_counted_apart_even_inside_the_release() {
    let frozen = |stop| {
        let faults = vec![Fault::Pause {
            pid: A,
            stop,
            stopped: stop,
            cont: 25,
            mid_operation: true,
        }];
        check(&record(SOUND, SOUND_ACCESSES, 2, faults), LEASE)
    };
    for stop in [15, 20] {
        let t = frozen(stop);
        assert_eq!((t.paused_mid_operation, t.faults), (1, 0), "stop at {stop}");
        assert_eq!(t.violations(true), 0, "{t:?}");
    }
}

/// Found by a long run on Postgres (lease): the stop was sent as A began to release, A's
/// release went out and was served before A stopped, and B was granted meanwhile: A's
/// released hold is no pause of a holder (no early grant, no stale release, no loss untold).
#[test]
fn a_release_sent_before_the_stop_took_effect_ends_the_hold() {
    let history = "
        10 acquired 1.1 1 300
        21 release 1.1 300
        40 acquired 2.1 2 325
        60 released 1.1 released";
    let pause = |stopped| {
        vec![Fault::Pause {
            pid: A,
            stop: 20,
            stopped,
            cont: 50,
            mid_operation: false,
        }]
    };
    let late = check(&record(history, "", 0, pause(22)), ttl(290));
    assert_eq!((late.faults, late.violations(true)), (0, 0), "{late:?}");
    // Had it been stopped at once, the same history is a holder paused and passed over.
    let at_once = check(&record(history, "", 0, pause(20)), ttl(290));
    assert!(at_once.early > 0, "{at_once:?}");
}

/// Holds of `kind` (a history kind word: `x`, `s`, `p3`), each `(pid, grant, release)`, with
/// tokens 1, 2, … in the order given and a ttl of 100 ns from the grant.
fn spans(spans: &[(&str, u32, u64, u64)]) -> String {
    let mut s = String::new();
    for (i, &(kind, pid, grant, release)) in spans.iter().enumerate() {
        let (token, until) = (i + 1, grant + 100);
        s += &format!(
            "{} invoke {pid}.1 {kind}\n{grant} acquired {pid}.1 {token} {until}\n\
             {release} release {pid}.1 {until}\n{} released {pid}.1 released\n",
            grant - 1,
            release + 1,
        );
    }
    s
}

/// Writers starve after 1000 ns.
const STARVING: Rules = Rules {
    starve_after: Some(Duration::from_nanos(1000)),
    ..LEASE
};

/// A writer (pid 1) invoked at `from` that gave up at `to`, and two readers granted at 30 and
/// 60 (invoked at 29 and 59).
fn writer_waiting(from: u64, to: u64) -> LaneRecord {
    let readers = spans(&[("s", 2, 30, 40), ("s", 3, 60, 70)]);
    record(
        &format!("{from} invoke 1.1\n{to} not_acquired 1.1\n{readers}"),
        "",
        0,
        vec![],
    )
}

/// The rules of the semaphore and reader-writer lanes: each history breaks one (counted once
/// in its column), and its sibling keeps it (no violation at all).
#[test]
fn the_rules_of_several_holders_are_counted_when_broken_and_only_then() {
    type Case = (
        &'static str,
        LaneRecord,
        LaneRecord,
        Rules,
        fn(&Tally) -> u64,
    );
    let plain = |s: String| record(&s, "", 0, vec![]);
    let cases: Vec<Case> = vec![
        (
            "a fourth permit holder while three hold (three at once is fine)",
            plain(spans(&[
                ("p3", 1, 10, 50),
                ("p3", 2, 11, 50),
                ("p3", 3, 12, 50),
                ("p3", 4, 13, 50),
            ])),
            plain(spans(&[
                ("p3", 1, 10, 50),
                ("p3", 2, 11, 50),
                ("p3", 3, 12, 50),
                ("p3", 4, 60, 70),
            ])),
            LEASE,
            |t| t.over_capacity,
        ),
        (
            "a writer granted while a reader holds (readers together are fine)",
            plain(spans(&[
                ("s", 1, 10, 50),
                ("s", 2, 11, 50),
                ("x", 3, 20, 30),
            ])),
            plain(spans(&[
                ("s", 1, 10, 50),
                ("s", 2, 11, 50),
                ("x", 3, 60, 70),
            ])),
            LEASE,
            |t| t.writer_overlaps,
        ),
        (
            "a reader granted while a writer holds",
            plain(spans(&[("x", 1, 10, 50), ("s", 2, 20, 30)])),
            plain(spans(&[("x", 1, 10, 50), ("s", 2, 60, 70)])),
            LEASE,
            |t| t.writer_overlaps,
        ),
        (
            "two writers at once beside readers",
            plain(spans(&[("s", 2, 5, 8), ("x", 1, 10, 50), ("x", 3, 20, 30)])),
            plain(spans(&[("s", 2, 5, 8), ("x", 1, 10, 50), ("x", 3, 60, 70)])),
            LEASE,
            |t| t.writer_overlaps,
        ),
        (
            "two permits granted with the same token",
            plain(
                spans(&[("p3", 1, 10, 50), ("p3", 2, 11, 50)])
                    .replace("acquired 2.1 2", "acquired 2.1 1"),
            ),
            plain(spans(&[("p3", 1, 10, 50), ("p3", 2, 11, 50)])),
            LEASE,
            |t| t.repeated_tokens,
        ),
        (
            "a permit granted for certain after another with a lower token",
            plain(
                spans(&[("p3", 1, 10, 50), ("p3", 2, 200, 250)])
                    .replace("acquired 2.1 2", "acquired 2.1 0"),
            ),
            plain(spans(&[("p3", 1, 10, 50), ("p3", 2, 200, 250)])),
            LEASE,
            |t| t.token_regressions,
        ),
        (
            "a writer waited past the bound while readers came in after it \
             (a long wait without readers after it, or a short one with, is fine)",
            writer_waiting(5, 2000),
            writer_waiting(100, 2000),
            STARVING,
            |t| t.starved_writers,
        ),
        (
            "a writer waited past the bound while readers came in after it (a short wait)",
            writer_waiting(5, 2000),
            writer_waiting(5, 900),
            STARVING,
            |t| t.starved_writers,
        ),
        (
            "a dead permit holder's permit given while two others hold, before its lease \
             ended (with one other, a permit was free: no early grant)",
            record(
                &(spans(&[("p3", 1, 10, 200), ("p3", 2, 11, 60), ("p3", 3, 12, 60)])
                    .replace("200 release 1.1 110\n201 released 1.1 released\n", "")
                    + &spans(&[("p3", 4, 50, 55)]).replace(" 1 150", " 4 150")),
                "",
                0,
                vec![Fault::Kill {
                    pid: A,
                    t: 20,
                    confirmed: true,
                    gone: Some(30),
                }],
            ),
            record(
                &(spans(&[("p3", 1, 10, 200), ("p3", 2, 11, 40)])
                    .replace("200 release 1.1 110\n201 released 1.1 released\n", "")
                    + &spans(&[("p3", 4, 50, 55)]).replace(" 1 150", " 3 150")),
                "",
                0,
                vec![Fault::Kill {
                    pid: A,
                    t: 20,
                    confirmed: true,
                    gone: Some(30),
                }],
            ),
            LEASE,
            |t| t.early,
        ),
        (
            "a dead permit holder still listed past ttl + 1 s (its permit leaked)",
            record(
                &spans(&[("p3", 1, 10, 200), ("p3", 2, 11, 60)])
                    .replace("200 release 1.1 110\n201 released 1.1 released\n", ""),
                "",
                0,
                vec![Fault::Kill {
                    pid: A,
                    t: 20,
                    confirmed: true,
                    gone: None,
                }],
            ),
            record(
                &spans(&[("p3", 1, 10, 200), ("p3", 2, 11, 60)])
                    .replace("200 release 1.1 110\n201 released 1.1 released\n", ""),
                "",
                0,
                vec![Fault::Kill {
                    pid: A,
                    t: 20,
                    confirmed: true,
                    gone: Some(25),
                }],
            ),
            LEASE,
            |t| t.stuck,
        ),
    ];
    for (what, broken, kept, rules, column) in cases {
        let t = check(&broken, rules);
        assert_eq!(column(&t), 1, "{what}: {t:?}");
        let t = check(&kept, rules);
        assert_eq!(t.violations(true), 0, "{what}, kept: {t:?}");
    }
}

/// A writer's wait that a stop inside an operation on a lock file, a server restart or every
/// connection ended overlapped is not judged: nobody could keep a place meanwhile.
#[test]
fn a_wait_cut_off_by_a_fault_is_not_judged_for_starving() {
    let frozen = |mid_operation| {
        let mut rec = writer_waiting(5, 2000);
        rec.faults.push(Fault::Pause {
            pid: 99,
            stop: 100,
            stopped: 101,
            cont: 1500,
            mid_operation,
        });
        rec
    };
    assert_eq!(check(&frozen(true), STARVING).starved_writers, 0);
    assert_eq!(check(&frozen(false), STARVING).starved_writers, 1);
    // Every connection ended, or the server restarted, while the writer waited: the same.
    for fault in [
        Fault::Terminate { t: 100, done: 150 },
        Fault::ServerRestart { down: 100, up: 900 },
    ] {
        let mut rec = writer_waiting(5, 2000);
        rec.faults.push(fault.clone());
        assert_eq!(check(&rec, STARVING).starved_writers, 0, "{fault:?}");
    }
}

/// Without a fair line (`starve_after` `None`) a writer overtaken by readers is not judged.
#[test]
fn writers_are_not_judged_for_starving_without_a_fair_line() {
    assert_eq!(check(&writer_waiting(5, 2000), LEASE).starved_writers, 0);
}

/// A, paused while it holds a tied lease, is killed by something outside the run (someone's
/// `kill -9` of every stopped process): its lease ends with it, and B is granted at once.
/// Without the outside death on record, that reads as an overlap, an early grant and a loss
/// not told; with it, as one disturbed run and nothing against the library.
#[test]
fn a_holder_killed_from_outside_disturbs_the_run_and_frees_its_lock() {
    let lines = "10 acquired 1.1 1 300
                 50 acquired 2.1 2 345
                 60 release 2.1 345
                 61 released 2.1 released";
    let tied = Rules {
        ttl: Duration::from_nanos(300),
        ..TIED
    };
    let mut faults = paused(20, 400);
    let t = check(&record(lines, "", 0, faults.clone()), tied);
    assert_eq!((t.overlaps, t.early, t.not_told), (1, 1, 1), "{t:?}");
    faults.push(Fault::Outside { pid: A, signal: 9 });
    let t = check(&record(lines, "", 0, faults), tied);
    assert_eq!((t.overlaps, t.early, t.not_told), (0, 0, 0), "{t:?}");
    assert_eq!(t.outside_deaths, 1);
    assert_eq!(t.violations(true), 1, "the run fails, as disturbed: {t:?}");
}

/// Seen under load: a reader's worker wrote its grant down only after its own lease had
/// lapsed (and after a writer was granted and then stopped). The reader's lower token says it
/// was granted before the writer, so it took nothing of the stopped writer's room: no early
/// grant. The same reader granted after the writer (a higher token) is one.
#[test]
fn a_grant_before_the_stopped_hold_is_no_early_grant_however_late_it_is_written_down() {
    let history = |reader_token: u64| {
        format!(
            "0 invoke 2.1 s
             105 invoke 1.1 x
             106 acquired 1.1 2 205
             130 acquired 2.1 {reader_token} {until}",
            until = if reader_token < 2 { 100 } else { 230 },
        )
    };
    let pause = vec![Fault::Pause {
        pid: A,
        stop: 120,
        stopped: 120,
        cont: 1_000,
        mid_operation: false,
    }];
    let before = check(&record(&history(1), "", 0, pause.clone()), LEASE);
    assert_eq!(before.early, 0, "granted before the writer: {before:?}");
    let after = check(&record(&history(3), "", 0, pause), LEASE);
    assert_eq!(
        after.early, 1,
        "granted after the writer stopped: {after:?}"
    );
}
