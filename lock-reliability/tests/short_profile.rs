//! The short profile, as CI runs it: every scenario on every backend, real servers, real
//! processes killed and paused; every violation column must be 0.

use std::process::Command;

use serde_json::Value;

#[test]
fn the_short_profile_finds_no_violation_on_any_backend() {
    let out = Command::new(env!("CARGO_BIN_EXE_lock-reliability"))
        .args(["--profile", "short", "--json"])
        .output()
        .expect("run lock-reliability");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("a JSON report ({e}); stderr:\n{stderr}"));
    assert!(out.status.success(), "{report:#}\nstderr:\n{stderr}");

    let rows = report["rows"].as_array().expect("rows");
    // The library's scenarios, then the four `lock run` ones (session locks have no lease
    // to lapse while `lock` is stopped: three), all exclusive; then the holder kill and pause
    // in a semaphore and a reader-writer lane each (run, or not applicable where the backend
    // lacks permits or shared leases).
    let expected = [
        ("file", 3 + 4),
        ("redis", 4 + 4),
        ("postgres-lease", 5 + 4),
        ("postgres-session", 5 + 3),
    ];
    for (backend, scenarios) in expected {
        let of: Vec<&Value> = rows.iter().filter(|r| r["backend"] == backend).collect();
        let exclusive = of.iter().filter(|r| r["kind"] == "exclusive").count();
        assert_eq!(exclusive, scenarios, "{backend}: {report:#}");
        assert_eq!(of.len(), scenarios + 4, "{backend}: {report:#}");
        for r in of {
            if !r["not_applicable"].is_null() {
                assert_ne!(r["kind"], "exclusive", "{r}");
                continue;
            }
            for column in [
                "overlaps",
                "over_capacity",
                "writer_overlaps",
                "starved_writers",
                "repeated_tokens",
                "lost_updates",
                "token_regressions",
                "stale_writes_accepted",
                "stale_releases",
                "not_told",
                "stuck",
                "early",
                "panics",
                "overlapping_commands",
                "pause_exits_not_lost",
            ] {
                assert_eq!(r[column], 0, "{backend} {}: {column}", r["scenario"]);
            }
            assert!(r["holds"].as_u64().unwrap() > 0, "{r}");
            if r["scenario"] == "cpu-stress" {
                assert_eq!(r["spurious_losses"], 0, "{r}");
            } else {
                assert!(r["faults"].as_u64().unwrap() > 0, "no fault hit: {r}");
            }
        }
    }
}
