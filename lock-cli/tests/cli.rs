//! The real `lock` binary on the file backend: every subcommand and exit code, the seed's
//! sequence, and `run` under loss and signals.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn lock(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lock"));
    cmd.arg("--backend")
        .arg(format!("file://{}", dir.display()))
        .args(args)
        .env_remove("LOCK_URL");
    cmd
}

/// Runs `lock --json ARGS`, checks it printed exactly one JSON object, returns it and the code.
fn json(dir: &Path, args: &[&str]) -> (Value, i32) {
    let out = lock(dir, &[&["--json"], args].concat()).output().unwrap();
    parse(&out)
}

fn parse(out: &Output) -> (Value, i32) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let value: Value = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}): {stdout:?} / {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (value, out.status.code().expect("exited"))
}

fn outcome(v: &Value) -> &str {
    v["outcome"].as_str().unwrap()
}

#[test]
fn every_subcommand_says_its_outcome_with_its_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cases: &[(&[&str], &str, i32)] = &[
        (&["status", "job"], "open", 0),
        (&["acquire", "job", "--owner", "a"], "acquired", 0),
        (&["acquire", "job", "--owner", "b"], "held", 1),
        (
            &["acquire", "job", "--owner", "b", "--wait", "200ms"],
            "timeout",
            1,
        ),
        (&["status", "job"], "locked", 0),
        (&["renew", "job", "--owner", "a"], "renewed", 0),
        (&["renew", "job", "--owner", "b"], "lost", 1),
        (&["release", "job", "--owner", "b"], "not_owner", 1),
        (&["release", "job", "--owner", "a"], "released", 0),
        (&["release", "job", "--owner", "a"], "not_locked", 1),
        (&["release", "job", "--force"], "not_locked", 1),
    ];
    for (args, want, code) in cases {
        let (v, got) = json(d, args);
        assert_eq!((outcome(&v), got), (*want, *code), "{args:?}: {v}");
        assert_eq!(v["name"], "job");
    }
    let (v, _) = json(d, &["acquire", "job", "--owner", "a", "--ttl", "5m"]);
    assert!(v["fencing_token"].as_u64().unwrap() > 0);
    assert_eq!(
        (v["owner"].as_str(), v["expires_in_ms"].as_u64()),
        (Some("a"), Some(300_000))
    );
}

#[test]
fn bad_input_exits_2_and_a_dead_backend_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let usage: &[&[&str]] = &[
        &["acquire", "", "--owner", "a"],
        &["acquire", &"x".repeat(256), "--owner", "a"],
        &["acquire", "job", "--owner", "has space"],
        &["acquire", "job", "--owner", "a", "--ttl", "0s"],
        &["acquire", "job", "--owner", "a", "--ttl", "-1s"],
        &["acquire", "job", "--owner", "a", "--ttl", "500us"],
        &["acquire", "job", "--owner", "a", "--ttl", "366days"],
        &["acquire", "job", "--owner", "a", "--ttl", "soon"],
        &["acquire", "job"],
        &["release", "job"],
        &["run", "job"],
        &["frobnicate"],
    ];
    for args in usage {
        let (v, code) = json(d, args);
        assert_eq!((outcome(&v), code), ("error", 2), "{args:?}: {v}");
        assert!(v["error"].as_str().unwrap().len() > 10, "{v}");
    }
    for url in ["ftp://x/y", "redis-cluster://x", "file://", "not a url"] {
        let out = Command::new(env!("CARGO_BIN_EXE_lock"))
            .args(["--json", "--backend", url, "status", "job"])
            .output()
            .unwrap();
        let (v, code) = parse(&out);
        assert_eq!((outcome(&v), code), ("error", 2), "{url}: {v}");
    }
    // A lock directory that cannot exist: the backend fails, exit 3.
    let file = d.join("file");
    std::fs::write(&file, "").unwrap();
    let (v, code) = json(&file.join("locks"), &["status", "job"]);
    assert_eq!((outcome(&v), code), ("error", 3), "{v}");
    // Nothing was taken along the way.
    assert_eq!(outcome(&json(d, &["status", "job"]).0), "open");
}

#[test]
fn invalid_utf8_names_exit_2() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let out = lock(tmp.path(), &["status"])
        .arg(std::ffi::OsStr::from_bytes(b"bad\xff"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The seed's sequence: A locks; B is refused; A clears; B locks; B renews after 500 ms at
/// ttl 1 s; A's renew is refused; A is refused; after B's expiry A locks; B force-clears;
/// status open; a second force-clear says not locked.
#[test]
fn the_seed_sequence() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let step = |args: &[&str], want: &str| {
        let (v, _) = json(d, args);
        assert_eq!(outcome(&v), want, "{args:?}: {v}");
        v
    };
    step(
        &["acquire", "seed", "--owner", "A", "--ttl", "1s"],
        "acquired",
    );
    step(&["acquire", "seed", "--owner", "B", "--ttl", "1s"], "held");
    step(&["release", "seed", "--owner", "A"], "released");
    let b = step(
        &["acquire", "seed", "--owner", "B", "--ttl", "1s"],
        "acquired",
    );
    std::thread::sleep(Duration::from_millis(500));
    let renewed = step(&["renew", "seed", "--owner", "B", "--ttl", "1s"], "renewed");
    assert_eq!(renewed["fencing_token"], b["fencing_token"]);
    step(&["renew", "seed", "--owner", "A", "--ttl", "1s"], "lost");
    step(&["acquire", "seed", "--owner", "A", "--ttl", "1s"], "held");
    std::thread::sleep(Duration::from_millis(1100));
    let a = step(
        &["acquire", "seed", "--owner", "A", "--ttl", "1s"],
        "acquired",
    );
    assert!(a["fencing_token"].as_u64() > b["fencing_token"].as_u64());
    step(&["release", "seed", "--force"], "released");
    step(&["status", "seed"], "open");
    step(&["release", "seed", "--force"], "not_locked");
}

#[test]
fn run_runs_the_command_with_its_token_and_exits_as_it_did() {
    let tmp = tempfile::tempdir().unwrap();
    let out = lock(
        tmp.path(),
        &[
            "--json",
            "run",
            "job",
            "--",
            "sh",
            "-c",
            "echo \"$LOCK_NAME $LOCK_FENCING_TOKEN\"; exit 7",
        ],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (v, code) = parse(&out);
    assert_eq!(code, 7);
    assert_eq!(
        (outcome(&v), v["exit_code"].as_u64()),
        ("released", Some(7))
    );
    let token = v["fencing_token"].as_u64().unwrap();
    assert_eq!(
        stdout.lines().next(),
        Some(format!("job {token}").as_str()),
        "the command's own output first"
    );
    assert_eq!(outcome(&json(tmp.path(), &["status", "job"]).0), "open");
}

#[test]
fn run_does_not_start_the_command_when_the_lock_is_held() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    json(d, &["acquire", "job", "--owner", "other", "--ttl", "1m"]);
    let marker = d.join("ran");
    let touch = format!("touch {}", marker.display());
    let (v, code) = json(d, &["run", "--no-wait", "job", "--", "sh", "-c", &touch]);
    assert_eq!(
        (outcome(&v), code, v["owner"].as_str()),
        ("held", 75, Some("other"))
    );
    let conflict = ["run", "--wait", "200ms", "--conflict-exit-code", "9", "job"];
    let (v, code) = json(d, &[&conflict[..], &["--", "sh", "-c", &touch]].concat());
    assert_eq!((outcome(&v), code), ("timeout", 9));
    assert!(!marker.exists(), "the command never started");
}

#[test]
fn two_runs_never_overlap() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let log = d.join("log");
    let script = format!(
        "echo start >> {0}; sleep 0.3; echo end >> {0}",
        log.display()
    );
    let runs: Vec<_> = (0..3)
        .map(|_| {
            lock(d, &["run", "nightly", "--", "sh", "-c", &script])
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut run in runs {
        assert!(run.wait().unwrap().success());
    }
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(lines, "start\nend\n".repeat(3), "one at a time");
}

#[test]
fn run_stops_its_command_when_the_lock_is_force_released() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let run = lock(
        d,
        &[
            "--json",
            "run",
            "--ttl",
            "1s",
            "--kill-after",
            "1s",
            "job",
            "--",
            "sleep",
            "30",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    wait_until_locked(d);
    let forced = Instant::now();
    assert_eq!(
        outcome(&json(d, &["release", "job", "--force"]).0),
        "released"
    );
    let out = run.wait_with_output().unwrap();
    let stopped_in = forced.elapsed();
    let (v, code) = parse(&out);
    assert_eq!((outcome(&v), code), ("lost", 76));
    assert!(
        stopped_in < Duration::from_secs(2),
        "stopped {stopped_in:?} after the force release"
    );
}

#[test]
fn run_forwards_sigterm_releases_and_exits_as_the_command_did() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let run = lock(d, &["--json", "run", "job", "--", "sleep", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_locked(d);
    sigterm(&run);
    let out = run.wait_with_output().unwrap();
    let (v, code) = parse(&out);
    assert_eq!((outcome(&v), code), ("released", 128 + 15), "{v}");
    assert_eq!(outcome(&json(d, &["status", "job"]).0), "open");
}

#[test]
fn a_signal_while_waiting_stops_the_wait_and_takes_nothing() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    json(d, &["acquire", "job", "--owner", "other", "--ttl", "1m"]);
    let marker = d.join("ran");
    let touch = format!("touch {}", marker.display());
    let mut run = lock(d, &["--json", "run", "job", "--", "sh", "-c", &touch])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(run.stderr.take().unwrap());
    let mut said = String::new();
    stderr.read_line(&mut said).unwrap();
    assert!(said.contains("waiting"), "{said:?}");
    sigterm(&run);
    let out = run.wait_with_output().unwrap();
    let (v, code) = parse(&out);
    assert_eq!(
        (outcome(&v), code, v["owner"].as_str()),
        ("held", 128 + 15, Some("other"))
    );
    assert!(!marker.exists(), "the command never started");
    // The holder's lease is untouched, and the waiter left no lease and no place behind.
    let (v, _) = json(d, &["status", "job"]);
    assert_eq!(
        (outcome(&v), v["owner"].as_str()),
        ("locked", Some("other"))
    );
    json(d, &["release", "job", "--owner", "other"]);
    let (v, _) = json(d, &["acquire", "job", "--owner", "next", "--wait", "1s"]);
    assert_eq!(outcome(&v), "acquired", "{v}");
}

/// SIGTERM at every moment of a short run, from start-up to exit: whenever it lands, the lock
/// is open afterwards (a signal that found the lock held on the default action would leave
/// it locked for the ttl), and `run` either printed its outcome or died before it took
/// anything.
#[test]
fn a_signal_at_any_moment_of_a_run_never_leaves_the_lock_held() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let started = Instant::now();
    let out = lock(d, &["--json", "run", "job", "--", "true"])
        .output()
        .unwrap();
    let whole_run = started.elapsed();
    assert_eq!(parse(&out).1, 0);
    let steps = 40;
    let mut printed = 0;
    for step in 0..steps {
        let run = lock(d, &["--json", "run", "job", "--", "sleep", "0.05"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(whole_run * step / steps);
        sigterm(&run);
        let out = run.wait_with_output().unwrap();
        if !out.stdout.is_empty() {
            let (v, code) = parse(&out);
            // Released after the command, or (a signal before the grant came back) the
            // command never started: `held`, exit 128 + 15, as the README's table says.
            assert!(
                matches!((outcome(&v), code), ("released", 0 | 143) | ("held", 143)),
                "step {step}: {v}"
            );
            printed += 1;
        }
        let (v, _) = json(d, &["status", "job"]);
        assert_eq!(outcome(&v), "open", "step {step}: {v}");
    }
    assert!(
        printed > 0,
        "some signals landed after the handlers were in place"
    );
}

fn sigterm(child: &std::process::Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
}

fn wait_until_locked(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while outcome(&json(dir, &["status", "job"]).0) != "locked" {
        assert!(Instant::now() < deadline, "run never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_unreachable_server_exits_3_within_the_connect_timeout() {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for url in [
        format!("redis://127.0.0.1:{port}?connect_timeout=2s"),
        format!("postgres://u:hunter2@127.0.0.1:{port}/db?connect_timeout=2"),
    ] {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_lock"))
            .args(["--json", "--backend", &url, "status", "job"])
            .output()
            .unwrap();
        let (v, code) = parse(&out);
        assert_eq!((outcome(&v), code), ("error", 3), "{url}: {v}");
        assert!(!v.to_string().contains("hunter2"), "{v}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{url}: no hang"
        );
    }
}

#[test]
fn permits_and_shared_leases_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cases: &[(&[&str], &str, i32)] = &[
        (
            &["acquire", "sem", "--owner", "a", "--permits", "2"],
            "acquired",
            0,
        ),
        (
            &["acquire", "sem", "--owner", "b", "--permits", "2"],
            "acquired",
            0,
        ),
        (
            &["acquire", "sem", "--owner", "c", "--permits", "2"],
            "held",
            1,
        ),
        (
            &["acquire", "sem", "--owner", "c", "--permits", "3"],
            "error",
            2,
        ),
        (&["acquire", "sem", "--owner", "c"], "error", 2),
        (
            &["release", "sem", "--owner", "c", "--force"],
            "not_owner",
            1,
        ),
        (
            &["release", "sem", "--owner", "a", "--force"],
            "released",
            0,
        ),
        (
            &["acquire", "sem", "--owner", "c", "--permits", "2"],
            "acquired",
            0,
        ),
        (
            &["acquire", "rw", "--owner", "r1", "--shared"],
            "acquired",
            0,
        ),
        (
            &["acquire", "rw", "--owner", "r2", "--shared"],
            "acquired",
            0,
        ),
        (&["acquire", "rw", "--owner", "w"], "held", 1),
        (
            &["acquire", "rw", "--owner", "p", "--permits", "2"],
            "error",
            2,
        ),
        (&["release", "rw", "--owner", "r1"], "released", 0),
        (
            &["release", "rw", "--owner", "r9", "--force"],
            "not_owner",
            1,
        ),
        (
            &["release", "nothing", "--owner", "r9", "--force"],
            "not_locked",
            1,
        ),
    ];
    for (args, want, code) in cases {
        let (v, got) = json(d, args);
        assert_eq!((outcome(&v), got), (*want, *code), "{args:?}: {v}");
    }
    let (v, code) = json(d, &["status", "sem"]);
    assert_eq!((outcome(&v), code), ("locked", 0), "{v}");
    assert_eq!(
        (v["permits"].as_u64(), v["free"].as_u64()),
        (Some(2), Some(0)),
        "{v}"
    );
    let holders: Vec<&str> = v["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["owner"].as_str().unwrap())
        .collect();
    assert_eq!(holders, ["b", "c"], "{v}");
    assert!(v.get("owner").is_none(), "no top-level holder for two: {v}");
    let (v, _) = json(d, &["status", "rw"]);
    assert_eq!(v["holders"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(
        (v["owner"].as_str(), v["shared"].as_bool()),
        (Some("r2"), Some(true)),
        "{v}"
    );
    assert_eq!(v["holders"][0]["shared"], true, "{v}");
    assert!(v.get("permits").is_none(), "{v}");
    let (v, _) = json(d, &["acquire", "sem", "--owner", "c", "--permits", "3"]);
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains("semaphore of 2 permits"),
        "names the N in force: {error}"
    );
}

#[test]
fn bad_permits_are_usage_errors_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for args in [
        &["acquire", "x", "--owner", "a", "--permits", "0"][..],
        &["acquire", "x", "--owner", "a", "--permits", "10001"],
        &["acquire", "x", "--owner", "a", "--permits", "two"],
        &["acquire", "x", "--owner", "a", "--permits", "2", "--shared"],
        &["run", "x", "--permits", "0", "--", "true"],
        &["run", "x", "--shared", "--permits", "3", "--", "true"],
    ] {
        let out = lock(d, args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let (v, _) = json(d, &["status", "x"]);
    assert_eq!(outcome(&v), "open");
}

#[test]
fn run_with_permits_lets_n_commands_in_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let marks = tmp.path().join("marks");
    std::fs::create_dir(&marks).unwrap();
    // Each command enters (a file each), waits up to 10 s for a second one inside, records
    // how many it counts, and leaves: 2 when the permits let two in, never more.
    let script = format!(
        "touch {m}/$$; i=0; while [ $(ls {m} | wc -l) -lt 2 ] && [ $i -lt 100 ]; do \
         sleep 0.1; i=$((i+1)); done; ls {m} | wc -l >> {m}.seen; sleep 0.2; rm {m}/$$",
        m = marks.display()
    );
    let children: Vec<_> = (0..4)
        .map(|_| {
            lock(
                d,
                &["run", "pool", "--permits", "2", "--", "sh", "-c", &script],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
        })
        .collect();
    for mut child in children {
        assert_eq!(child.wait().unwrap().code(), Some(0));
    }
    let seen = std::fs::read_to_string(tmp.path().join("marks.seen")).unwrap();
    let most = seen.lines().map(|l| l.trim().parse::<u32>().unwrap()).max();
    assert_eq!(seen.lines().count(), 4, "every command ran: {seen}");
    assert_eq!(most, Some(2), "two inside at once, never more: {seen}");
}

/// `lock completions SHELL` and `lock man [SUBCOMMAND]` print what the clap definitions say,
/// touching no backend (here one that cannot be reached); an unknown shell or subcommand is
/// bad input (exit 2).
#[test]
fn completions_and_the_manual_come_from_the_cli_definitions() {
    let print = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_lock"))
            .args(["--backend", "redis://127.0.0.1:1"])
            .args(args)
            .env_remove("LOCK_URL")
            .output()
            .unwrap()
    };
    for shell in ["bash", "zsh", "fish"] {
        let out = print(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {out:?}");
        let script = String::from_utf8(out.stdout).unwrap();
        for word in ["acquire", "release", "status", "permits", "shared"] {
            assert!(script.contains(word), "{shell}'s script names {word}");
        }
    }
    let out = print(&["man"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH lock 1"), "{page}");
    for word in ["run", "acquire", "status", "backend"] {
        assert!(page.contains(word), "the page names {word}");
    }
    let out = print(&["man", "run"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH lock-run 1"), "{page}");
    assert!(
        page.contains("kill\\-after"),
        "run's page has its options: {page}"
    );
    let out = print(&["man", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = print(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcsh"));
}
