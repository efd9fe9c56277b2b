//! Smoke test: the built binary, `--quick --json`, on all three backends, gives a report with
//! every section and positive figures. Behaviour only: no speed is ever asserted here.

use std::process::Command;
use std::time::Instant;

use serde_json::Value;

fn positive(v: &Value, path: &str) {
    let x = v
        .pointer(path)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{path} is missing or not a number in {v}"));
    assert!(x > 0.0, "{path} = {x}, expected a positive figure");
}

#[test]
fn quick_json_run_has_every_section_with_positive_figures() {
    let start = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_lock-bench"))
        .args(["--quick", "--json"])
        .args([
            "--backend",
            "redis",
            "--backend",
            "postgres",
            "--backend",
            "file",
        ])
        .output()
        .expect("lock-bench runs");
    assert!(
        output.status.success(),
        "lock-bench failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON object on stdout");
    assert_eq!(report["quick"], Value::Bool(true));
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(report["steal"]["percent"].as_f64().unwrap() >= 0.0);

    let backends = report["backends"].as_array().expect("backends");
    let names: Vec<&str> = backends
        .iter()
        .map(|b| b["backend"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["redis", "postgres", "file"]);
    for b in backends {
        let name = b["backend"].as_str().unwrap();
        let sides = b["uncontended"]["sides"].as_array().expect("sides");
        assert!(sides.len() >= 3, "{name}: a floor, ours and the guard");
        for i in 0..sides.len() {
            for field in ["cycles", "p50_us", "p99_us", "cycles_per_s"] {
                positive(b, &format!("/uncontended/sides/{i}/{field}"));
            }
        }
        let ratios = b["uncontended"]["ratios"].as_array().expect("ratios");
        assert!(ratios.iter().any(|r| r["key"] == "ours_vs_floor"));
        for i in 0..ratios.len() {
            positive(b, &format!("/uncontended/ratios/{i}/median_ratio"));
        }

        assert_eq!(b["contention"]["counter_ok"], Value::Bool(true), "{name}");
        assert_eq!(b["contention"]["workers"], 4);
        for path in [
            "/contention/total_cycles",
            "/contention/cycles_per_s",
            "/contention/wait/max_us",
            "/scale/leases/held",
            "/scale/leases/rss_held_bytes",
            "/scale/leases/acquire_per_s",
            "/scale/leases/release_per_s",
            "/scale/waiters/waiters",
            "/scale/waiters/connections_all_waiters",
            "/scale/waiters/wake/mean_us",
            "/scale/waiters/all_through_ms",
        ] {
            positive(b, path);
        }
        let waiters = b["scale"]["waiters"]["waiters"].as_u64().unwrap();
        let used = b["scale"]["waiters"]["connections_all_waiters"]
            .as_u64()
            .unwrap();
        assert!(
            used < waiters,
            "{name}: {used} connections for {waiters} waiters"
        );
        // Every backend here has permits and shared leases: a permit's cycle beside the
        // exclusive one, a semaphore and readers with a writer, none let in over the room.
        assert!(
            ratios.iter().any(|r| r["key"] == "permit_vs_exclusive"),
            "{name}"
        );
        for mix in ["semaphore", "readers_writer"] {
            assert_eq!(b[mix]["over_admissions"], 0, "{name} {mix}");
            positive(b, &format!("/{mix}/cycles_per_s"));
            positive(b, &format!("/{mix}/wait/max_us"));
        }
        assert!(
            b["semaphore"]["most_inside"].as_u64().unwrap() <= 3,
            "{name}"
        );
        assert_eq!(b["semaphore"]["workers"], 8, "{name}");
        positive(b, "/readers_writer/writer_wait/max_us");
        assert_eq!(
            b["readers_writer"]["counter_ok"],
            Value::Bool(true),
            "{name}"
        );
    }
    let fast = &backends[1]["contention_async"];
    assert_eq!(
        fast["counter_ok"],
        Value::Bool(true),
        "Postgres without durable commits"
    );
    positive(&backends[1], "/contention_async/handoff/mean_us");
    // A handoff floor beside Postgres's and the files' contention; Redis has none.
    positive(&backends[1], "/handoff_floor/mean_us");
    positive(&backends[2], "/handoff_floor/mean_us");
    assert!(backends[0].get("handoff_floor").is_none());
    let durability = backends[1]["durability"]["combinations"]
        .as_array()
        .expect("Postgres has the durability section");
    assert_eq!(durability.len(), 4);
    assert_eq!(durability[0]["crash_safe"], Value::Bool(true));
    for i in 0..4 {
        positive(
            &backends[1],
            &format!("/durability/combinations/{i}/cycles_per_s"),
        );
        positive(
            &backends[1],
            &format!("/durability/combinations/{i}/speedup_vs_default"),
        );
    }
    assert!(backends[0].get("durability").is_none());

    let targets = report["targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 24, "eight targets per backend");
    for t in targets {
        assert!(t["held"].is_boolean() && t["limit"].as_f64().unwrap() >= 0.0);
    }
    eprintln!("smoke run took {:?}", start.elapsed());
}
