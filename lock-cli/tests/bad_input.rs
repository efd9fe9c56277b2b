//! Bad input, row by row, against the real `lock` binary (`docs/contract.md`, "Bad input gets a clear
//! error and changes nothing").
//!
//! Each row is one bad input: a name, an owner, a ttl, a URL, a planted file. It runs on every
//! backend it applies to: files, Redis, Postgres leases, Postgres session locks. Before it, a
//! lock `sentinel` is held on that backend by a known owner (through the library, so that a
//! session lock stays held). Each row runs twice, with `--json` and without, and must:
//! exit with its code (2: the input itself is wrong; 3: the backend cannot be reached, refuses
//! the credentials, or its storage fails), say why (the JSON `error`, the stderr line), finish
//! within its bound, never panic, never print a password, leave the sentinel held by the same
//! owner with the same fencing token, and leave the backend's whole stored state (every lock
//! file, Redis key or table row) as it was: nothing created for a refused name.
//!
//! The names `.`, `..`, `../../etc/passwd`, `/abs` and `../outside/precious` are not bad
//! input: the contract allows every UTF-8 name without control characters. Their rows expect
//! `acquired`, a lock of their own, and (files) one new file right inside the lock directory.
//!
//! Both servers are shared by the whole file and need passwords, so that the wrong-credential
//! rows aim at the very server that holds the sentinel. Beside the matrix: a read-only lock
//! directory and a full file system (tmpfs mounts, as root), a NUL (which no argument can
//! carry), and a closed stdout or stderr.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileTypeExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, Instant};

use lock::{AcquireOutcome, Claim, Lock, LockName, LockState, OwnerId, ReleaseOutcome, Ttl};
use lock_testkit::{PostgresServer, RedisServer, Shared, free_port};
use serde_json::Value;

const REDIS_PW: &str = "redis-Pa55-7c1e";
const PG_USER: &str = "alice";
const PG_PW: &str = "pg-Pa55-41b9";
const WRONG_PW: &str = "wr0ng-Pa55-d2f0";

static REDIS: Shared<RedisServer> =
    Shared::new(|| RedisServer::start_with_args(&["--requirepass", REDIS_PW]));
static POSTGRES: Shared<PostgresServer> =
    Shared::new(|| PostgresServer::start_with_password(PG_USER, PG_PW));

/// For rows that never reach a server.
const FAST: Duration = Duration::from_secs(5);
/// For rows that connect: every URL carries a connect timeout of 1 or 2 s.
const NET: Duration = Duration::from_secs(10);

const SENTINEL: &str = "sentinel";
const SENTINEL_OWNER: &str = "sentinel-owner";

/// The library handles that hold the sentinels live on this runtime (a Redis connection and
/// a Postgres session need tasks running between rows).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(free_port)
}

/// A loopback port that accepts connections and never says a word.
fn silent_port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut open = Vec::new();
            for stream in listener.incoming() {
                open.push(stream);
            }
        });
        port
    })
}

fn redis_port() -> u16 {
    REDIS.with(RedisServer::port)
}

fn pg_port() -> u16 {
    POSTGRES.with(PostgresServer::port)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    File,
    Redis,
    Lease,
    Session,
}
use Kind::{File, Lease, Redis, Session};

const ALL: &[Kind] = &[File, Redis, Lease, Session];
const POSTGRES_BOTH: &[Kind] = &[Lease, Session];

/// One backend with its sentinel held.
struct Bed {
    kind: Kind,
    /// A URL that works.
    url: String,
    /// The handle that holds the sentinel.
    lock: Arc<dyn Lock>,
    sentinel: lock::Lease,
    /// Files: `locks/` (the lock directory) and `outside/` (what a planted link aims at).
    /// Every backend: the marker a `run` row must never create.
    root: tempfile::TempDir,
}

impl Bed {
    fn new(kind: Kind) -> Self {
        let bed = Self::in_root(kind, tempfile::tempdir().unwrap());
        if kind == File {
            bed.plant();
        }
        bed
    }

    /// A backend whose files, markers and (for files) lock directory `locks/` are in `root`.
    fn in_root(kind: Kind, root: tempfile::TempDir) -> Self {
        let url = match kind {
            File => format!("file://{}/locks", root.path().display()),
            Redis => format!(
                "redis://:{REDIS_PW}@127.0.0.1:{}?connect_timeout=2s&response_timeout=2s",
                redis_port()
            ),
            Lease => format!("{}?connect_timeout=2", POSTGRES.with(PostgresServer::url)),
            Session => format!(
                "{}?mode=session&connect_timeout=2",
                POSTGRES.with(PostgresServer::url)
            ),
        };
        let lock = runtime().block_on(lock::connect(&url)).unwrap();
        let owner = OwnerId::new(SENTINEL_OWNER).unwrap();
        let ttl = Ttl::from_millis(600_000).unwrap();
        let acquired = runtime()
            .block_on(lock.try_acquire(Claim::new(&LockName::new(SENTINEL).unwrap(), &owner, ttl)))
            .unwrap();
        let AcquireOutcome::Acquired(sentinel) = acquired else {
            panic!("{kind:?}: the sentinel is taken: {acquired:?}")
        };
        Self {
            kind,
            url,
            lock,
            sentinel,
            root,
        }
    }

    /// Lock files this library did not write, each at the path of the name it is called by.
    fn plant(&self) {
        let outside = self.root.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("precious"), "keep me\n").unwrap();
        let locks = self.root.path().join("locks");
        std::fs::write(locks.join("garbled.lock"), "someone else's data\n").unwrap();
        std::fs::write(
            locks.join("foreign.lock"),
            r#"{"v":3,"owner":"x","token":3,"expires_ms":0}"#,
        )
        .unwrap();
        std::fs::write(locks.join("oversized.lock"), " ".repeat((4 << 20) + 1)).unwrap();
        nix::unistd::mkfifo(&locks.join("fifo.lock"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        std::fs::create_dir(locks.join("dir.lock")).unwrap();
        symlink(outside.join("precious"), locks.join("planted.lock")).unwrap();
        symlink(outside.join("never"), locks.join("dangling.lock")).unwrap();
    }

    fn marker(&self) -> String {
        self.root.path().join("marker").display().to_string()
    }

    /// `--backend URL ARGS`.
    fn cli(&self, args: &[&str]) -> Vec<OsString> {
        at(&self.url, args)
    }

    /// `url` with `mode=session` added on the session backend.
    fn pg(&self, url: String) -> String {
        match self.kind {
            Session if url.contains('?') => format!("{url}&mode=session"),
            Session => format!("{url}?mode=session"),
            _ => url,
        }
    }

    /// Everything the backend stores, as text: any change to any lock shows.
    fn snapshot(&self) -> String {
        match self.kind {
            File => format!("{:#?}", self.files()),
            Redis => redis_keys(),
            Lease => POSTGRES.with(|s| s.psql("select * from public.lock_leases order by name")),
            Session => {
                POSTGRES.with(|s| s.psql("select * from public.lock_sessions order by name"))
            }
        }
    }

    /// Every file under the root (lock directory and beyond), and `/etc/passwd`.
    fn files(&self) -> BTreeMap<String, String> {
        let mut tree = BTreeMap::new();
        walk(self.root.path(), self.root.path(), &mut tree);
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        tree.insert("/etc/passwd".into(), passwd);
        tree
    }

    /// The sentinel is held by its owner with its token, as the holder and as `lock status`
    /// see it.
    fn assert_sentinel(&self, label: &str) {
        let name = LockName::new(SENTINEL).unwrap();
        match runtime().block_on(self.lock.inspect(&name)) {
            Ok(LockState::Locked(h))
                if h.first().owner == self.sentinel.owner
                    && h.first().token == self.sentinel.token => {}
            other => panic!("{label} [{:?}]: the sentinel changed: {other:?}", self.kind),
        }
    }

    /// The sentinel as `lock status` sees it (a Postgres login costs a third of a second in
    /// a debug build, so the rows check through the holder's handle and the stored state).
    fn assert_sentinel_status(&self, label: &str) {
        let ran = run_lock(&json(&self.cli(&["status", SENTINEL])), NET, label);
        let (v, code) = ran.json(label);
        assert_eq!(
            (
                outcome(&v),
                code,
                v["owner"].as_str(),
                v["fencing_token"].as_u64()
            ),
            (
                "locked",
                0,
                Some(SENTINEL_OWNER),
                Some(self.sentinel.token.get())
            ),
            "{label} [{:?}]: lock status of the sentinel: {v}",
            self.kind
        );
    }
}

/// Every file under `dir`, by path relative to `root`: its type, and a regular file's bytes.
fn walk(root: &Path, dir: &Path, tree: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let key = path.strip_prefix(root).unwrap().display().to_string();
        let t = meta.file_type();
        let what = if t.is_symlink() {
            format!("link to {}", std::fs::read_link(&path).unwrap().display())
        } else if t.is_fifo() {
            "fifo".to_owned()
        } else if t.is_dir() {
            walk(root, &path, tree);
            "dir".to_owned()
        } else {
            String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned()
        };
        tree.insert(key, what);
    }
}

/// Every key of the Redis server, with its type, value and whether it expires.
fn redis_keys() -> String {
    const SCRIPT: &str = "local out = {} \
        for _, k in ipairs(redis.call('KEYS', '*')) do \
          local t = redis.call('TYPE', k).ok \
          local v = '' \
          if t == 'string' then v = redis.call('GET', k) end \
          table.insert(out, k .. ' ' .. t .. ' ' .. v .. ' expires=' .. tostring(redis.call('PTTL', k) > 0)) \
        end \
        table.sort(out) \
        return out";
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &redis_port().to_string()])
        .args([
            "-a",
            REDIS_PW,
            "--no-auth-warning",
            "--raw",
            "EVAL",
            SCRIPT,
            "0",
        ])
        .output()
        .expect("redis-cli (it comes with redis-server)");
    assert!(out.status.success(), "redis-cli: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `--backend URL ARGS`.
fn at(url: &str, args: &[&str]) -> Vec<OsString> {
    let mut all: Vec<OsString> = vec!["--backend".into(), url.into()];
    all.extend(args.iter().map(OsString::from));
    all
}

/// `ARGS` with `bytes` (not UTF-8) put in place of the `@` argument.
fn with_bytes(mut args: Vec<OsString>, bytes: &[u8]) -> Vec<OsString> {
    let slot = args.iter().position(|a| a == "@").expect("an @ to replace");
    args[slot] = OsString::from_vec(bytes.to_vec());
    args
}

fn json(args: &[OsString]) -> Vec<OsString> {
    let mut all = vec![OsString::from("--json")];
    all.extend_from_slice(args);
    all
}

fn outcome(v: &Value) -> &str {
    v["outcome"].as_str().unwrap_or("(none)")
}

/// What one `lock` process did.
struct Ran {
    out: Output,
    took: Duration,
}

impl Ran {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    fn code(&self) -> i32 {
        self.out.status.code().expect("exited, not killed")
    }

    /// The one JSON object it printed, and its exit code.
    fn json(&self, label: &str) -> (Value, i32) {
        let stdout = self.stdout();
        let lines: Vec<_> = stdout.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{label}: not one line on stdout: {stdout:?} / {}",
            self.stderr()
        );
        let v: Value = serde_json::from_str(lines[0])
            .unwrap_or_else(|e| panic!("{label}: not JSON ({e}): {stdout:?}"));
        (v, self.code())
    }
}

/// Runs `lock ARGS`, killing it and failing when it takes longer than `within`.
fn run_lock(args: &[OsString], within: Duration, label: &str) -> Ran {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_lock"))
        .args(args)
        .env_remove("LOCK_URL")
        .env_remove("LOCK_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(within) {
        Ok(out) => Ran {
            out: out.unwrap(),
            took: started.elapsed(),
        },
        Err(_) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("{label}: `lock` still running after {within:?}: a hang");
        }
    }
}

/// What a row must end in.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Refused with this exit code, saying this.
    Error(i32, &'static str),
    /// Not bad input after all: the name is a valid one, and `acquire` takes it.
    Acquired,
    /// A normal answer (a read on a read-only directory, say).
    Outcome(&'static str, i32),
}

struct Row {
    label: &'static str,
    on: &'static [Kind],
    args: fn(&Bed) -> Vec<OsString>,
    expect: Expect,
    within: Duration,
}

fn row(
    label: &'static str,
    on: &'static [Kind],
    args: fn(&Bed) -> Vec<OsString>,
    expect: Expect,
    within: Duration,
) -> Row {
    Row {
        label,
        on,
        args,
        expect,
        within,
    }
}

/// Exit 2 for input no server would take.
fn usage(needle: &'static str) -> Expect {
    Expect::Error(2, needle)
}

/// Exit 3 for a backend that cannot be reached or refuses.
fn backend(needle: &'static str) -> Expect {
    Expect::Error(3, needle)
}

/// The matrix: (label, backends, arguments, expected end, time bound).
#[rustfmt::skip]
fn rows() -> Vec<Row> {
    vec![
        // Names.
        row("empty name", ALL, |b| b.cli(&["acquire", "", "--owner", "a"]), usage("lock name is empty"), FAST),
        row("empty name, status", ALL, |b| b.cli(&["status", ""]), usage("lock name is empty"), FAST),
        row("256-byte name", ALL, |b| b.cli(&["acquire", &"x".repeat(256), "--owner", "a"]), usage("256 bytes long; the most is 255"), FAST),
        row("256-byte name of 2-byte characters", ALL, |b| b.cli(&["status", &"é".repeat(128)]), usage("256 bytes long"), FAST),
        row("64 KiB name", ALL, |b| b.cli(&["acquire", &"x".repeat(65536), "--owner", "a"]), usage("65536 bytes long; the most is 255"), FAST),
        row("64 KiB name, force release", ALL, |b| b.cli(&["release", &"n".repeat(65536), "--force"]), usage("65536 bytes long"), FAST),
        row("64 KiB name, run", ALL, |b| b.cli(&["run", &"n".repeat(65536), "--", "touch", &b.marker()]), usage("65536 bytes long"), FAST),
        row("control character in name", ALL, |b| b.cli(&["acquire", "a\u{1}b", "--owner", "a"]), usage("control character U+0001 at byte 1"), FAST),
        row("newline in name", ALL, |b| b.cli(&["status", "sentinel\n"]), usage("control character U+000A"), FAST),
        row("escape sequence in name", ALL, |b| b.cli(&["acquire", "a\u{1b}[31mb", "--owner", "a"]), usage("U+001B"), FAST),
        row("DEL in name", ALL, |b| b.cli(&["release", "a\u{7f}", "--force"]), usage("U+007F"), FAST),
        row("invalid UTF-8 name", ALL, |b| with_bytes(b.cli(&["acquire", "@", "--owner", "a"]), b"bad\xff"), usage("a lock name must be valid UTF-8"), FAST),
        row("invalid UTF-8 name, run", ALL, |b| with_bytes(b.cli(&["run", "@", "--", "touch", &b.marker()]), b"\xc3\x28"), usage("a lock name must be valid UTF-8"), FAST),
        row("invalid UTF-8 owner", ALL, |b| with_bytes(b.cli(&["acquire", "job", "--owner", "@"]), b"o\xff"), usage("an owner id must be valid UTF-8"), FAST),
        row("invalid UTF-8 ttl", ALL, |b| with_bytes(b.cli(&["acquire", "job", "--owner", "a", "--ttl", "@"]), b"1\xffs"), usage("a ttl must be valid UTF-8"), FAST),
        row("invalid UTF-8 backend URL", ALL, |_| with_bytes(at("@", &["status", "job"]), b"file:///tmp/\xff"), usage("invalid UTF-8"), FAST),
        // Names the contract allows: locks of their own, never paths.
        row("name `.`", ALL, |b| b.cli(&["acquire", ".", "--owner", "dots"]), Expect::Acquired, NET),
        row("name `..`", ALL, |b| b.cli(&["acquire", "..", "--owner", "dots"]), Expect::Acquired, NET),
        row("name `../../etc/passwd`", ALL, |b| b.cli(&["acquire", "../../etc/passwd", "--owner", "dots"]), Expect::Acquired, NET),
        row("name `/abs`", ALL, |b| b.cli(&["acquire", "/abs", "--owner", "dots"]), Expect::Acquired, NET),
        row("name `../outside/precious`", ALL, |b| b.cli(&["acquire", "../outside/precious", "--owner", "dots"]), Expect::Acquired, NET),
        // Owners.
        row("empty owner", ALL, |b| b.cli(&["acquire", "job", "--owner", ""]), usage("an owner id is 1 to 128 characters"), FAST),
        row("owner with a space", ALL, |b| b.cli(&["acquire", "job", "--owner", "has space"]), usage("an owner id is 1 to 128 characters"), FAST),
        row("129-character owner", ALL, |b| b.cli(&["renew", "job", "--owner", &"o".repeat(129)]), usage("an owner id is 1 to 128 characters"), FAST),
        row("64 KiB owner", ALL, |b| b.cli(&["acquire", "job", "--owner", &"o".repeat(65536)]), usage("an owner id is 1 to 128 characters"), FAST),
        // Bad input aimed at the held sentinel, by its own owner: it must not move.
        row("renew the sentinel with ttl 0", ALL, |b| b.cli(&["renew", SENTINEL, "--owner", SENTINEL_OWNER, "--ttl", "0s"]), usage("out of range"), FAST),
        row("re-acquire the sentinel with ttl 500us", ALL, |b| b.cli(&["acquire", SENTINEL, "--owner", SENTINEL_OWNER, "--ttl", "500us"]), usage("ttl 500µs is out of range"), FAST),
        row("--shared with --permits", ALL, |b| b.cli(&["acquire", SENTINEL, "--owner", "x", "--shared", "--permits", "3"]), usage("cannot be used with"), FAST),
        row("permits on the sentinel's exclusive lease", &[File, Redis, Lease], |b| b.cli(&["acquire", SENTINEL, "--owner", "x", "--permits", "3"]), usage("is held exclusively"), FAST),
        row("permits on session mode", &[Session], |b| b.cli(&["acquire", SENTINEL, "--owner", "x", "--permits", "3"]), usage("does not offer permit leases"), FAST),
        row("0 permits", ALL, |b| b.cli(&["acquire", SENTINEL, "--owner", "x", "--permits", "0"]), usage("from 1 to 10000"), FAST),
        row("10001 permits", ALL, |b| b.cli(&["acquire", SENTINEL, "--owner", "x", "--permits", "10001"]), usage("from 1 to 10000"), FAST),
        row("permits not a number", ALL, |b| b.cli(&["run", SENTINEL, "--permits", "all", "--", "true"]), usage("from 1 to 10000"), FAST),
        row("release the sentinel as a bad owner", ALL, |b| b.cli(&["release", SENTINEL, "--owner", "sentinel owner"]), usage("an owner id"), FAST),
        row("run on the sentinel with ttl 0", ALL, |b| b.cli(&["run", SENTINEL, "--ttl", "0", "--", "touch", &b.marker()]), usage("out of range"), FAST),
        // Ttls and durations.
        row("ttl 0", ALL, |b| b.cli(&["acquire", "job", "--owner", "a", "--ttl", "0"]), usage("out of range: it must be from 1ms to 365 days"), FAST),
        row("ttl 0ms", ALL, |b| b.cli(&["acquire", "job", "--owner", "a", "--ttl", "0ms"]), usage("out of range"), FAST),
        row("ttl -1s", ALL, |b| b.cli(&["acquire", "job", "--owner", "a", "--ttl", "-1s"]), usage("ttl of -1000 ms is negative"), FAST),
        row("ttl =-1", ALL, |b| b.cli(&["acquire", "job", "--owner", "a", "--ttl=-1"]), usage("a ttl cannot be negative"), FAST),
        row("ttl -1", ALL, |b| b.cli(&["acquire", "job", "--owner", "a", "--ttl", "-1"]), usage("a ttl cannot be negative"), FAST),
        row("ttl -1s on run", ALL, |b| b.cli(&["run", "job", "--ttl", "-1s", "--", "touch", &b.marker()]), usage("is negative"), FAST),
        row("ttl swallowing the next option", ALL, |b| b.cli(&["renew", "job", "--ttl", "--owner", "a"]), usage("unexpected argument 'a'"), FAST),
        row("ttl 500us", ALL, |b| b.cli(&["acquire", "job", "--owner", "a", "--ttl", "500us"]), usage("out of range"), FAST),
        row("ttl u64::MAX ms", ALL, |b| b.cli(&["acquire", "job", "--owner", "a", "--ttl", "18446744073709551615ms"]), usage("too large"), FAST),
        row("ttl u64::MAX+1 ms", ALL, |b| b.cli(&["acquire", "job", "--owner", "a", "--ttl", "18446744073709551616ms"]), usage("too large"), FAST),
        row("ttl i64::MAX s", ALL, |b| b.cli(&["renew", "job", "--owner", "a", "--ttl", "9223372036854775807s"]), usage("out of range"), FAST),
        row("ttl u64::MAX, no unit", ALL, |b| b.cli(&["acquire", "job", "--owner", "a", "--ttl", "18446744073709551615"]), usage("not a duration"), FAST),
        row("ttl 366 days", ALL, |b| b.cli(&["acquire", "job", "--owner", "a", "--ttl", "366days"]), usage("out of range"), FAST),
        row("ttl unparsable", ALL, |b| b.cli(&["acquire", "job", "--owner", "a", "--ttl", "soon"]), usage("not a duration like 250ms, 30s or 5m"), FAST),
        row("ttl empty", ALL, |b| b.cli(&["acquire", "job", "--owner", "a", "--ttl", ""]), usage("not a duration"), FAST),
        row("ttl of 64 KiB digits", ALL, |b| b.cli(&["acquire", "job", "--owner", "a", "--ttl", &"9".repeat(65536)]), usage("not a duration"), FAST),
        row("wait -1s", ALL, |b| b.cli(&["acquire", "job", "--owner", "a", "--wait", "-1s"]), usage("a duration cannot be negative"), FAST),
        row("wait swallowing --no-wait", ALL, |b| b.cli(&["run", "job", "--wait", "--no-wait", "--", "touch", &b.marker()]), usage("--no-wait is an option, not a duration"), FAST),
        row("wait unparsable", ALL, |b| b.cli(&["acquire", "job", "--owner", "a", "--wait", "forever"]), usage("not a duration"), FAST),
        row("kill-after unparsable", ALL, |b| b.cli(&["run", "job", "--kill-after", "later", "--", "touch", &b.marker()]), usage("not a duration"), FAST),
        row("conflict exit code 256", ALL, |b| b.cli(&["run", "job", "--conflict-exit-code", "256", "--", "touch", &b.marker()]), usage("256 is not in 0..=255"), FAST),
        row("run without a command", ALL, |b| b.cli(&["run", "job"]), usage("<CMD>..."), FAST),
        row("unknown subcommand", ALL, |b| b.cli(&["frobnicate", "job"]), usage("unrecognized subcommand"), FAST),
        // URLs that name no backend.
        row("unknown scheme", &[File], |_| at("ftp://host/x", &["status", "job"]), usage("unknown lock URL scheme \"ftp\": supported are file://"), FAST),
        row("no scheme", &[File], |_| at("not a url", &["status", "job"]), usage("not a lock URL"), FAST),
        row("empty URL", &[File], |_| at("", &["status", "job"]), usage("not a lock URL"), FAST),
        row("unknown scheme with a password", &[File], |_| at(&format!("mysql://u:{WRONG_PW}@h/db"), &["status", "job"]), usage("supported are"), FAST),
        // File URLs.
        row("file URL with a host", &[File], |_| at("file://server/share", &["status", "job"]), usage("only local directories"), FAST),
        row("file URL, relative", &[File], |_| at("file:relative/dir", &["status", "job"]), usage("not a lock URL"), FAST),
        row("file URL, the root", &[File], |_| at("file:///", &["status", "job"]), usage("no directory below the root"), FAST),
        row("file URL with a query", &[File], |b| at(&format!("{}?prefix=x", b.url), &["status", "job"]), usage("takes no query"), FAST),
        row("file URL with %00", &[File], |b| at(&format!("{}/a%00b", b.url), &["acquire", "job", "--owner", "a"]), usage("NUL byte"), FAST),
        row("lock directory is a file", &[File], |b| at(&format!("file://{}/outside/precious", b.root.path().display()), &["acquire", "job", "--owner", "a"]), backend("outside/precious is not a directory"), FAST),
        row("lock directory below a file", &[File], |b| at(&format!("file://{}/outside/precious/locks", b.root.path().display()), &["acquire", "job", "--owner", "a"]), backend("cannot create lock directory"), FAST),
        // Lock files this library did not write.
        row("garbled lock file, acquire", &[File], |b| b.cli(&["acquire", "garbled", "--owner", "a"]), backend("corrupt lock state for \"garbled\""), FAST),
        row("garbled lock file, status", &[File], |b| b.cli(&["status", "garbled"]), backend("not a lock record of this library"), FAST),
        row("garbled lock file, renew", &[File], |b| b.cli(&["renew", "garbled", "--owner", "a"]), backend("corrupt lock state"), FAST),
        row("garbled lock file, release", &[File], |b| b.cli(&["release", "garbled", "--owner", "a"]), backend("corrupt lock state"), FAST),
        row("foreign record version", &[File], |b| b.cli(&["acquire", "foreign", "--owner", "a"]), backend("unknown record version 3"), FAST),
        row("oversized lock file", &[File], |b| b.cli(&["acquire", "oversized", "--owner", "a"]), backend("4194305 bytes, more than a lock record"), FAST),
        row("FIFO at the lock file's path", &[File], |b| b.cli(&["acquire", "fifo", "--owner", "a"]), backend("not a regular file"), FAST),
        row("FIFO at the lock file's path, status", &[File], |b| b.cli(&["status", "fifo"]), backend("not a regular file"), FAST),
        row("directory at the lock file's path", &[File], |b| b.cli(&["acquire", "dir", "--owner", "a"]), backend("dir.lock"), FAST),
        row("symlink planted, acquire", &[File], |b| b.cli(&["acquire", "planted", "--owner", "a"]), backend("a symbolic link stands there; it is never followed"), FAST),
        row("symlink planted, status", &[File], |b| b.cli(&["status", "planted"]), backend("symbolic link"), FAST),
        row("symlink planted, renew", &[File], |b| b.cli(&["renew", "planted", "--owner", "a"]), backend("symbolic link"), FAST),
        row("symlink planted, release", &[File], |b| b.cli(&["release", "planted", "--owner", "a"]), backend("symbolic link"), FAST),
        row("symlink planted, force release", &[File], |b| b.cli(&["release", "planted", "--force"]), backend("symbolic link"), FAST),
        row("symlink planted, run", &[File], |b| b.cli(&["run", "planted", "--", "touch", &b.marker()]), backend("symbolic link"), FAST),
        row("dangling symlink planted, acquire", &[File], |b| b.cli(&["acquire", "dangling", "--owner", "a"]), backend("symbolic link"), FAST),
        // Redis URLs.
        row("redis port 0", &[Redis], |_| at(&format!("redis://:{REDIS_PW}@127.0.0.1:0"), &["status", "job"]), usage("port 0"), FAST),
        row("redis port 65536", &[Redis], |_| at(&format!("redis://:{REDIS_PW}@127.0.0.1:65536"), &["status", "job"]), usage("invalid port"), FAST),
        row("redis db x", &[Redis], |_| at(&format!("redis://:{REDIS_PW}@127.0.0.1:{}/x", redis_port()), &["acquire", "job", "--owner", "a"]), usage("database \"x\"; it must be a number"), FAST),
        row("redis db -1", &[Redis], |_| at(&format!("redis://:{REDIS_PW}@127.0.0.1:{}/-1", redis_port()), &["status", "job"]), usage("database \"-1\""), FAST),
        row("redis empty host", &[Redis], |_| at(&format!("redis://:{REDIS_PW}@:{}/0", redis_port()), &["status", "job"]), usage("empty host"), FAST),
        row("redis no host", &[Redis], |_| at("redis://", &["status", "job"]), usage("names no host"), FAST),
        row("redis malformed IPv6 host", &[Redis], |_| at(&format!("redis://:{REDIS_PW}@[::1:{}", redis_port()), &["status", "job"]), usage("cannot read the Redis URL"), FAST),
        row("redis unknown option", &[Redis], |_| at(&format!("redis://:{REDIS_PW}@127.0.0.1:{}?colour=red", redis_port()), &["status", "job"]), usage("unknown option \"colour\""), FAST),
        row("redis connect_timeout 0s", &[Redis], |_| at(&format!("redis://:{REDIS_PW}@127.0.0.1:{}?connect_timeout=0s", redis_port()), &["status", "job"]), usage("at least 1ms"), FAST),
        row("redis prefix with braces", &[Redis], |_| at(&format!("redis://:{REDIS_PW}@127.0.0.1:{}?prefix=%7Bx%7D", redis_port()), &["acquire", "job", "--owner", "a"]), usage("braces"), FAST),
        row("redis user without password", &[Redis], |_| at(&format!("redis://alice@127.0.0.1:{}", redis_port()), &["status", "job"]), usage("no password"), FAST),
        row("redis db 99 (the server has 16)", &[Redis], |_| at(&format!("redis://:{REDIS_PW}@127.0.0.1:{}/99?connect_timeout=2s", redis_port()), &["acquire", "job", "--owner", "a"]), backend("DB index is out of range"), NET),
        row("redis wrong password", &[Redis], |_| at(&format!("redis://:{WRONG_PW}@127.0.0.1:{}?connect_timeout=2s", redis_port()), &["acquire", "job", "--owner", "a"]), backend("authentication failed"), NET),
        row("redis wrong user", &[Redis], |_| at(&format!("redis://nobody:{REDIS_PW}@127.0.0.1:{}?connect_timeout=2s", redis_port()), &["release", SENTINEL, "--force"]), backend("authentication failed"), NET),
        row("redis no password", &[Redis], |_| at(&format!("redis://127.0.0.1:{}?connect_timeout=2s", redis_port()), &["release", SENTINEL, "--force"]), backend("requires authentication"), NET),
        row("rediss (TLS) to a plain server", &[Redis], |_| at(&format!("rediss://:{REDIS_PW}@127.0.0.1:{}?connect_timeout=1s", redis_port()), &["release", SENTINEL, "--force"]), backend("did not answer within 1s"), NET),
        row("redis URL aimed at the Postgres port", POSTGRES_BOTH, |_| at(&format!("redis://:{REDIS_PW}@127.0.0.1:{}?connect_timeout=2s", pg_port()), &["release", SENTINEL, "--force"]), backend("closed the connection without answering (is it a Redis server"), NET),
        row("redis, nothing listening", &[Redis], |_| at(&format!("redis://:{REDIS_PW}@127.0.0.1:{}?connect_timeout=2s", closed_port()), &["status", "job"]), backend("refused"), NET),
        row("redis, a server that never answers", &[Redis], |_| at(&format!("redis://:{REDIS_PW}@127.0.0.1:{}?connect_timeout=1s", silent_port()), &["status", "job"]), backend("did not answer within 1s"), NET),
        row("redis, unknown host", &[Redis], |_| at(&format!("redis://:{REDIS_PW}@no-such-host.invalid?connect_timeout=2s"), &["status", "job"]), backend("no-such-host.invalid"), NET),
        // Postgres URLs, in lease and in session mode.
        row("postgres port 0", POSTGRES_BOTH, |b| at(&b.pg(format!("postgres://{PG_USER}:{PG_PW}@127.0.0.1:0/postgres")), &["status", "job"]), usage("port 0"), FAST),
        row("postgres port 65536", POSTGRES_BOTH, |b| at(&b.pg(format!("postgres://{PG_USER}:{PG_PW}@127.0.0.1:65536/postgres")), &["status", "job"]), usage("invalid port"), FAST),
        row("postgres empty host", POSTGRES_BOTH, |b| at(&b.pg(format!("postgres://{PG_USER}:{PG_PW}@:{}/postgres", pg_port())), &["status", "job"]), usage("empty host"), FAST),
        row("postgres malformed IPv6 host", POSTGRES_BOTH, |b| at(&b.pg(format!("postgres://{PG_USER}:{PG_PW}@[::1/postgres")), &["status", "job"]), usage("not a valid Postgres URL"), FAST),
        row("postgres unknown sslmode", POSTGRES_BOTH, |b| at(&b.pg(format!("postgres://{PG_USER}:{PG_PW}@127.0.0.1:{}/postgres?sslmode=sometimes", pg_port())), &["acquire", "job", "--owner", "a"]), usage("sslmode=\"sometimes\" is not one of"), FAST),
        row("postgres unknown parameter", POSTGRES_BOTH, |b| at(&b.pg(format!("postgres://{PG_USER}:{PG_PW}@127.0.0.1:{}/postgres?mod=session", pg_port())), &["status", "job"]), usage("unknown URL parameter `mod`"), FAST),
        row("postgres parameter given twice", &[Session], |b| at(&b.pg(format!("postgres://{PG_USER}:{PG_PW}@127.0.0.1:{}/postgres?mode=lease", pg_port())), &["status", "job"]), usage("given twice"), FAST),
        row("postgres unknown mode", &[Lease], |_| at(&format!("postgres://{PG_USER}:{PG_PW}@127.0.0.1:{}/postgres?mode=exclusive", pg_port()), &["status", "job"]), usage("mode=\"exclusive\""), FAST),
        row("postgres connect_timeout 0", POSTGRES_BOTH, |b| at(&b.pg(format!("postgres://{PG_USER}:{PG_PW}@127.0.0.1:{}/postgres?connect_timeout=0", pg_port())), &["status", "job"]), usage("never waits forever"), FAST),
        row("postgres table name with SQL", POSTGRES_BOTH, |b| at(&b.pg(format!("postgres://{PG_USER}:{PG_PW}@127.0.0.1:{}/postgres?table=x;drop", pg_port())), &["acquire", "job", "--owner", "a"]), usage("table=\"x;drop\""), FAST),
        row("postgres session mode through pgbouncer", &[Session], |b| at(&b.pg(format!("postgres://{PG_USER}:{PG_PW}@127.0.0.1:{}/postgres?pgbouncer=true", pg_port())), &["status", "job"]), usage("mode=session cannot work"), FAST),
        row("postgres wrong password", POSTGRES_BOTH, |b| at(&b.pg(format!("postgres://{PG_USER}:{WRONG_PW}@127.0.0.1:{}/postgres?connect_timeout=2", pg_port())), &["release", SENTINEL, "--force"]), backend("refused the login"), NET),
        row("postgres no password", POSTGRES_BOTH, |b| at(&b.pg(format!("postgres://{PG_USER}@127.0.0.1:{}/postgres?connect_timeout=2", pg_port())), &["release", SENTINEL, "--force"]), backend("refused the login: password authentication failed for user \"alice\""), NET),
        row("postgres wrong database", POSTGRES_BOTH, |b| at(&b.pg(format!("postgres://{PG_USER}:{PG_PW}@127.0.0.1:{}/nosuchdb?connect_timeout=2", pg_port())), &["acquire", "job", "--owner", "a"]), backend("has no such database: database \"nosuchdb\" does not exist"), NET),
        row("postgres sslmode=require on a server without TLS", POSTGRES_BOTH, |b| at(&b.pg(format!("postgres://{PG_USER}:{PG_PW}@127.0.0.1:{}/postgres?sslmode=require&connect_timeout=2", pg_port())), &["status", SENTINEL]), backend("server does not support TLS"), NET),
        row("postgres URL aimed at the Redis port", &[Redis], |_| at(&format!("postgres://{PG_USER}:{PG_PW}@127.0.0.1:{}/postgres?connect_timeout=1", redis_port()), &["release", SENTINEL, "--force"]), backend("no answer from Postgres"), NET),
        row("postgres, nothing listening", POSTGRES_BOTH, |b| at(&b.pg(format!("postgres://{PG_USER}:{PG_PW}@127.0.0.1:{}/postgres?connect_timeout=2", closed_port())), &["status", "job"]), backend("connection refused"), NET),
        row("postgres, a server that never answers", POSTGRES_BOTH, |b| at(&b.pg(format!("postgres://{PG_USER}:{PG_PW}@127.0.0.1:{}/postgres?connect_timeout=1", silent_port())), &["status", "job"]), backend("no answer"), NET),
        row("postgres, unknown host", POSTGRES_BOTH, |b| at(&b.pg(format!("postgres://{PG_USER}:{PG_PW}@no-such-host.invalid/postgres?connect_timeout=2")), &["status", "job"]), backend("no-such-host.invalid"), NET),
    ]
}

/// Runs every row that applies to `kind`, and checks the sentinel and the stored state after
/// each.
fn run_rows(kind: Kind) {
    let bed = Bed::new(kind);
    let rows: Vec<Row> = rows()
        .into_iter()
        .filter(|r| r.on.contains(&kind))
        .collect();
    assert!(!rows.is_empty());
    bed.assert_sentinel_status("before the rows");
    for row in &rows {
        check(&bed, row);
    }
    bed.assert_sentinel_status("after the rows");
    assert!(
        !Path::new(&bed.marker()).exists(),
        "[{kind:?}] a `run` with bad input started its command"
    );
    eprintln!("[{kind:?}] {} rows passed", rows.len());
}

/// One row on one backend: first with `--json`, then as a person sees it; then the
/// sentinel and the stored state.
fn check(bed: &Bed, row: &Row) {
    let label = format!("{} [{:?}]", row.label, bed.kind);
    let label = label.as_str();
    let args = (row.args)(bed);
    let before = bed.snapshot();
    let files_before = (bed.kind == File).then(|| bed.files());
    let ran = run_lock(&json(&args), row.within, label);
    let v = checked(&ran, row, label).json(label).0;
    let human = run_lock(&args, row.within, label);
    let (stdout, stderr) = (checked(&human, row, label).stdout(), human.stderr());
    match row.expect {
        Expect::Error(code, needle) => {
            assert_eq!((outcome(&v), ran.code()), ("error", code), "{label}: {v}");
            let message = v["error"].as_str().unwrap_or_default();
            assert!(
                message.contains(needle),
                "{label}: {message:?} lacks {needle:?}"
            );
            assert!(
                message.len() < 1000,
                "{label}: a message of {} bytes is not a clear one",
                message.len()
            );
            assert_eq!(human.code(), code, "{label}: {stderr}");
            assert_eq!(stdout, "", "{label}: errors go to stderr");
            assert!(
                stderr.contains(needle),
                "{label}: {stderr:?} lacks {needle:?}"
            );
            assert!(
                stderr.starts_with("error: ") || stderr.starts_with("lock: error: "),
                "{label}: {stderr:?}"
            );
            assert!(
                stderr.len() < 2000,
                "{label}: {} bytes on stderr",
                stderr.len()
            );
            assert_eq!(bed.snapshot(), before, "{label}: the stored state changed");
        }
        Expect::Acquired => {
            // The JSON run acquired it; the human run acquired it again: the same lease (an
            // idempotent retry), or in session mode a new one, since the first ended with
            // its process.
            assert_eq!((outcome(&v), ran.code()), ("acquired", 0), "{label}: {v}");
            assert_ne!(v["fencing_token"], bed.sentinel.token.get(), "{label}: {v}");
            assert_eq!(human.code(), 0, "{label}: {stderr}");
            let name = v["name"].as_str().unwrap();
            let want = match bed.kind {
                Session => format!("{name}: acquired by dots, fencing token "),
                _ => format!(
                    "{name}: acquired by dots, fencing token {}, ",
                    v["fencing_token"]
                ),
            };
            assert!(
                stdout.starts_with(&want),
                "{label}: {stdout:?}, not {want:?}"
            );
            if let Some(files_before) = &files_before {
                assert_contained(files_before, &bed.files(), label);
            }
            release_again(bed, name, label);
        }
        Expect::Outcome(want, code) => {
            assert_eq!((outcome(&v), ran.code()), (want, code), "{label}: {v}");
            assert_eq!(human.code(), code, "{label}: {stderr}");
            assert_eq!(bed.snapshot(), before, "{label}: the stored state changed");
        }
    }
    bed.assert_sentinel(label);
}

/// `ran` after the checks every row makes: no panic, no password, in time.
fn checked<'a>(ran: &'a Ran, row: &Row, label: &str) -> &'a Ran {
    let all = format!("{}\n{}", ran.stdout(), ran.stderr());
    assert!(!all.contains("panicked"), "{label}: a panic: {all}");
    for secret in [REDIS_PW, PG_PW, WRONG_PW] {
        assert!(!all.contains(secret), "{label}: the password shows: {all}");
    }
    assert!(
        ran.took < row.within,
        "{label}: took {:?}, more than {:?}",
        ran.took,
        row.within
    );
    ran
}

/// A valid name changed one plain file right inside `locks/`, and nothing else.
fn assert_contained(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    label: &str,
) {
    let changed: Vec<_> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        changed.len() == 1
            && changed[0]
                .strip_prefix("locks/")
                .is_some_and(|f| !f.contains('/') && f.ends_with(".lock")),
        "{label}: changed files {changed:?}"
    );
    assert!(
        before.keys().all(|k| after.contains_key(k)),
        "{label}: a file went away"
    );
}

/// Gives back the lock a valid-name row took (through the holder's handle: a Postgres login
/// costs a third of a second in a debug build), and checks it is open.
fn release_again(bed: &Bed, name: &str, label: &str) {
    let name = LockName::new(name).unwrap();
    let released = runtime().block_on(bed.lock.force_release(&name)).unwrap();
    // A session lock ended with the process that took it.
    if bed.kind != Session {
        assert_eq!(released, ReleaseOutcome::Released, "{label}");
    }
    let state = runtime().block_on(bed.lock.inspect(&name)).unwrap();
    assert_eq!(state, LockState::Open, "{label}");
}

/// The matrix, on the four backends at once (the rows mostly wait: on processes, timeouts
/// and servers).
#[test]
fn every_row_on_every_backend() {
    let failures: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = ALL
            .iter()
            .map(|&kind| (kind, scope.spawn(move || run_rows(kind))))
            .collect();
        runs.into_iter()
            .filter_map(|(kind, run)| {
                let panic = run.join().err()?;
                let text = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                Some(format!("[{kind:?}] {text}"))
            })
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A tmpfs mounted on `dir` (made first), unmounted on drop, also when the test fails.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: PathBuf, size: &str) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&dir)
            .status()
            .expect("mount(8)");
        assert!(status.success(), "root must be able to mount a tmpfs here");
        Self { dir }
    }

    fn read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(status.success(), "remount read-only");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let done = Command::new("umount").arg(&self.dir).status();
        if !done.is_ok_and(|s| s.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A lock directory that cannot be written: every write is a backend error (3) that changes
/// nothing, and reads still answer. Root ignores file modes, so it is a read-only tmpfs then
/// (`chmod 500` otherwise).
#[test]
fn a_read_only_lock_directory() {
    let root = tempfile::tempdir().unwrap();
    let locks = root.path().join("locks");
    let mount = is_root().then(|| Tmpfs::mount(locks.clone(), "1m"));
    let bed = Bed::in_root(File, root);
    // Dropped before the bed, whose directory it is mounted in, also on a failure.
    let mount = mount;
    let ran = run_lock(
        &json(&bed.cli(&["acquire", "other", "--owner", "o", "--ttl", "10m"])),
        NET,
        "other",
    );
    assert_eq!(outcome(&ran.json("other").0), "acquired");
    let why = match &mount {
        Some(m) => {
            m.read_only();
            "Read-only file system"
        }
        None => {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&locks, std::fs::Permissions::from_mode(0o500)).unwrap();
            "Permission denied"
        }
    };
    let e = |code| Expect::Error(code, why);
    #[rustfmt::skip]
    let rows = [
        row("read-only: acquire a new name", &[File], |b| b.cli(&["acquire", "new", "--owner", "a"]), e(3), FAST),
        row("read-only: run on a new name", &[File], |b| b.cli(&["run", "new", "--", "touch", &b.marker()]), e(3), FAST),
        row("read-only: re-acquire the sentinel as its owner", &[File], |b| b.cli(&["acquire", SENTINEL, "--owner", SENTINEL_OWNER]), e(3), FAST),
        row("read-only: renew the sentinel", &[File], |b| b.cli(&["renew", SENTINEL, "--owner", SENTINEL_OWNER, "--ttl", "1h"]), e(3), FAST),
        row("read-only: release the sentinel", &[File], |b| b.cli(&["release", SENTINEL, "--owner", SENTINEL_OWNER]), e(3), FAST),
        row("read-only: force-release another lock", &[File], |b| b.cli(&["release", "other", "--force"]), e(3), FAST),
        row("read-only: status of the sentinel", &[File], |b| b.cli(&["status", SENTINEL]), Expect::Outcome("locked", 0), FAST),
        row("read-only: status of a new name", &[File], |b| b.cli(&["status", "new"]), Expect::Outcome("open", 0), FAST),
    ];
    for row in &rows {
        check(&bed, row);
    }
    bed.assert_sentinel_status("read-only, after the rows");
    assert!(!Path::new(&bed.marker()).exists(), "the command never ran");
    if mount.is_none() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&locks, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    drop(mount);
}

/// The record a lock file holds, read raw: it must always be exactly one whole record.
fn record(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(bytes.len(), 256, "{}: {bytes:?}", path.display());
    serde_json::from_slice(bytes.trim_ascii_end()).unwrap()
}

/// A full file system: taking a new lock is a backend error (3) saying so; a lock that exists
/// is renewed, released and taken again in place, never torn.
#[test]
fn a_full_file_system() {
    if !is_root() {
        eprintln!("a full file system needs root to mount a tmpfs; not run");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let locks = root.path().join("locks");
    let mount = Tmpfs::mount(locks.clone(), "64k");
    let bed = Bed::in_root(File, root);
    // Dropped before the bed, whose directory it is mounted in, also on a failure.
    let _mount = mount;
    let step = |args: &[&str], want: (&str, i32)| {
        let label = args.join(" ");
        let ran = run_lock(&json(&bed.cli(args)), FAST, &label);
        let (v, code) = ran.json(&label);
        assert!(
            !ran.stderr().contains("panicked"),
            "{label}: {}",
            ran.stderr()
        );
        assert_eq!((outcome(&v), code), want, "{label}: {v}");
        v
    };
    let existing = locks.join("existing.lock");
    let token = step(
        &["acquire", "existing", "--owner", "e", "--ttl", "10m"],
        ("acquired", 0),
    )["fencing_token"]
        .as_u64()
        .unwrap();

    // Fill it up.
    let mut filler = std::fs::File::create(locks.join("filler")).unwrap();
    let chunk = vec![7u8; 4096];
    let full = loop {
        use std::io::Write;
        if let Err(e) = filler.write_all(&chunk).and_then(|()| filler.sync_all()) {
            break e;
        }
    };
    assert_eq!(full.raw_os_error(), Some(nix::libc::ENOSPC), "{full}");
    drop(filler);
    let filled = std::fs::metadata(locks.join("filler")).unwrap().len();

    // A new name: refused with the reason, before a byte of a record is written. The lock
    // file it opened stays, empty, which reads as a name never acquired: removing it could
    // race with another process that opened it meanwhile.
    let before = bed.files();
    for _ in 0..2 {
        let v = step(&["acquire", "new", "--owner", "a"], ("error", 3));
        let message = v["error"].as_str().unwrap();
        assert!(
            message.contains("No space left on device") && message.contains("new.lock"),
            "{message}"
        );
    }
    let mut after = bed.files();
    assert_eq!(after.remove("locks/new.lock").as_deref(), Some(""));
    assert_eq!(after, before, "only an empty new.lock was made");
    step(&["status", "new"], ("open", 0));
    let ran = run_lock(&bed.cli(&["acquire", "new", "--owner", "a"]), FAST, "human");
    assert_eq!(ran.code(), 3);
    assert!(
        ran.stderr().contains("No space left on device"),
        "{}",
        ran.stderr()
    );

    // The existing lock: renewed, released and taken again, in place.
    let expires = record(&existing)["expires_ms"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(5));
    let v = step(
        &["renew", "existing", "--owner", "e", "--ttl", "20m"],
        ("renewed", 0),
    );
    assert_eq!(v["fencing_token"], token);
    let r = record(&existing);
    assert_eq!(
        (r["owner"].as_str(), r["token"].as_u64()),
        (Some("e"), Some(token))
    );
    assert!(r["expires_ms"].as_u64().unwrap() > expires, "{r}");
    step(&["status", "existing"], ("locked", 0));
    step(&["release", "existing", "--owner", "e"], ("released", 0));
    let r = record(&existing);
    assert_eq!(
        (r["owner"].as_str(), r["token"].as_u64()),
        (None, Some(token))
    );
    let v = step(&["acquire", "existing", "--owner", "f"], ("acquired", 0));
    assert_eq!(v["fencing_token"], token + 1);
    assert_eq!(record(&existing)["owner"], "f");
    step(&["release", "existing", "--force"], ("released", 0));
    step(&["status", "existing"], ("open", 0));

    bed.assert_sentinel("full file system");
    bed.assert_sentinel_status("full file system");
    assert_eq!(
        std::fs::metadata(locks.join("filler")).unwrap().len(),
        filled
    );
}

/// A NUL cannot reach the CLI: an argument is a C string, so `execve` has no way to carry
/// one (Rust refuses to spawn with it; a C caller's argument simply ends there). The library
/// refuses a name with one.
#[test]
fn a_nul_in_a_name_never_reaches_the_cli_and_the_library_refuses_it() {
    let spawned = Command::new(env!("CARGO_BIN_EXE_lock"))
        .args(["status", "a\0b"])
        .output();
    assert_eq!(
        spawned.map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::InvalidInput)
    );
    let e = LockName::new("a\0b").unwrap_err();
    assert_eq!(
        e.to_string(),
        "lock name has control character U+0000 at byte 1"
    );
    let e = lock::Error::from(e);
    assert!(e.is_invalid_input(), "{e:?}");
}

/// A pipe whose reading end is closed: writing to it fails with EPIPE.
fn closed_pipe() -> Stdio {
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    Stdio::from(write)
}

/// `lock status x | head -c0`, or a `run` whose stderr reader went away: the operation still
/// happens and says so by its exit code, without a panic (exit 101).
#[test]
fn a_closed_stdout_or_stderr_is_no_panic() {
    let bed = Bed::new(File);
    let lock = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lock"));
        cmd.args(bed.cli(args)).env_remove("LOCK_URL");
        cmd
    };
    for args in [
        &["status", SENTINEL][..],
        &["--json", "status", SENTINEL],
        &["acquire", "piped", "--owner", "p"],
    ] {
        let out = lock(args)
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let piped = runtime()
        .block_on(bed.lock.inspect(&LockName::new("piped").unwrap()))
        .unwrap();
    assert!(
        matches!(&piped, LockState::Locked(h) if h.first().owner.as_str() == "p"),
        "{piped:?}"
    );
    // `run` speaks on stderr: that it waits, that the lock is held, how it ended.
    let marker = bed.marker();
    for (args, code) in [
        (
            &["run", "--wait", "100ms", SENTINEL, "--", "touch", &marker][..],
            75,
        ),
        (&["run", "fresh", "--", "true"], 0),
        (&["run", "--json", "fresh", "--", "sh", "-c", "exit 7"], 7),
    ] {
        let out = lock(args)
            .stdout(closed_pipe())
            .stderr(closed_pipe())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}");
    }
    assert!(!Path::new(&marker).exists(), "the command never ran");
    bed.assert_sentinel("closed output");
}
