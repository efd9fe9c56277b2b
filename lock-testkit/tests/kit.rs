//! The kit against real servers. Nothing is skipped: a missing binary fails the test.

use std::env;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use lock_testkit::{PgBouncer, PostgresServer, RedisServer, free_port, try_psql};

/// Sends one inline command to Redis and returns the raw reply.
fn redis_command(port: u16, command: &str, timeout: Duration) -> io::Result<String> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(format!("{command}\r\n").as_bytes())?;
    let mut reply = [0u8; 512];
    let len = stream.read(&mut reply)?;
    Ok(String::from_utf8_lossy(&reply[..len]).into_owned())
}

fn ask(port: u16, command: &str) -> String {
    redis_command(port, command, Duration::from_secs(5))
        .unwrap_or_else(|err| panic!("`{command}` on port {port}: {err}"))
}

/// True while `pid` exists and is not a zombie.
fn is_running(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat[stat.rfind(')').unwrap() + 1..]
            .split_whitespace()
            .next();
        !matches!(state, Some("Z" | "X"))
    })
}

/// Waits up to 5 s for `pid` to be gone.
fn wait_until_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while is_running(pid) {
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

#[test]
fn free_port_can_be_bound() {
    let port = free_port();
    assert_ne!(port, 0);
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("the port is free");
}

#[test]
fn redis_answers_ping_on_its_own_port() {
    let redis = RedisServer::start();
    assert_ne!(redis.port(), 6379);
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));
    assert_eq!(ask(redis.port(), "PING"), "+PONG\r\n");
}

#[test]
fn redis_kill_refuses_connections_and_restart_loses_the_data() {
    let mut redis = RedisServer::start();
    let port = redis.port();
    assert_eq!(ask(port, "SET fence 7"), "+OK\r\n");
    assert_eq!(ask(port, "GET fence"), "$1\r\n7\r\n");

    let pid = redis.pid().expect("running");
    redis.kill();
    assert_eq!(redis.pid(), None);
    assert!(wait_until_gone(pid));
    let refused = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap_err();
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);

    redis.restart();
    assert_eq!(redis.port(), port);
    assert_ne!(redis.pid(), Some(pid));
    assert_eq!(ask(port, "PING"), "+PONG\r\n");
    assert_eq!(ask(port, "GET fence"), "$-1\r\n");
}

#[test]
fn redis_restart_waits_for_its_port_to_be_free() {
    let mut redis = RedisServer::start();
    redis.kill();
    let thief = TcpListener::bind((Ipv4Addr::LOCALHOST, redis.port())).unwrap();
    let release = thread::spawn(move || {
        thread::sleep(Duration::from_millis(500));
        drop(thief);
    });
    redis.restart();
    release.join().unwrap();
    assert_eq!(ask(redis.port(), "PING"), "+PONG\r\n");
}

#[test]
fn redis_pause_stalls_and_resume_answers() {
    let redis = RedisServer::start();
    redis.pause();
    let stalled = redis_command(redis.port(), "PING", Duration::from_millis(300)).unwrap_err();
    assert!(
        matches!(
            stalled.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        "{stalled}"
    );
    redis.resume();
    assert_eq!(ask(redis.port(), "PING"), "+PONG\r\n");
}

#[test]
fn redis_restart_keeps_the_extra_args() {
    let mut redis = RedisServer::start_with_args(&["--requirepass", "s3cret"]);
    assert!(ask(redis.port(), "PING").starts_with("-NOAUTH"));
    redis.restart();
    assert!(ask(redis.port(), "PING").starts_with("-NOAUTH"));
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, redis.port())).unwrap();
    stream.write_all(b"AUTH s3cret\r\nPING\r\n").unwrap();
    let mut replies = BufReader::new(stream).lines();
    assert_eq!(replies.next().unwrap().unwrap(), "+OK");
    assert_eq!(replies.next().unwrap().unwrap(), "+PONG");
}

#[test]
fn redis_drop_stops_the_server_and_removes_its_dir() {
    let redis = RedisServer::start();
    let pid = redis.pid().unwrap();
    let dir = redis.dir().to_path_buf();
    assert!(dir.join("redis.log").exists());
    drop(redis);
    assert!(wait_until_gone(pid));
    assert!(!dir.exists());
}

#[test]
fn redis_drop_stops_a_paused_server() {
    let redis = RedisServer::start();
    let pid = redis.pid().unwrap();
    redis.pause();
    drop(redis);
    assert!(wait_until_gone(pid));
}

#[test]
fn a_server_outlives_the_thread_that_started_it() {
    // PR_SET_PDEATHSIG fires when the forking thread ends; the kit forks from its own thread.
    let redis = thread::spawn(RedisServer::start).join().unwrap();
    thread::sleep(Duration::from_millis(200));
    assert_eq!(ask(redis.port(), "PING"), "+PONG\r\n");
}

#[test]
fn postgres_runs_sql_on_its_own_port() {
    let postgres = PostgresServer::start();
    assert_ne!(postgres.port(), 5432);
    assert_eq!(
        postgres.url(),
        format!("postgres://postgres@127.0.0.1:{}/postgres", postgres.port())
    );
    assert_eq!(postgres.psql("select 1"), "1");
    let over_tcp = try_psql(&postgres.url(), "select 1, 2", Duration::from_secs(10));
    assert_eq!(over_tcp.as_deref(), Ok("1|2"));
    assert_eq!(postgres.psql("show fsync"), "on");
}

#[test]
fn postgres_recovers_from_a_kill_on_the_same_port() {
    let mut postgres = PostgresServer::start();
    let port = postgres.port();
    postgres.psql("create table fences (token bigint); insert into fences values (41), (42)");

    let pid = postgres.pid().unwrap();
    postgres.kill();
    assert_eq!(postgres.pid(), None);
    assert!(wait_until_gone(pid));
    assert!(try_psql(&postgres.url(), "select 1", Duration::from_secs(5)).is_err());

    postgres.restart();
    assert_eq!(postgres.port(), port);
    assert_eq!(postgres.psql("select max(token) from fences"), "42");
}

#[test]
fn postgres_pause_stalls_new_and_open_connections() {
    let postgres = PostgresServer::start();
    let mut session = Command::new("psql")
        .args(["-X", "-A", "-t", "-q", "-d", &postgres.url()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start psql");
    let mut input = session.stdin.take().unwrap();
    let (lines, answers) = mpsc::channel();
    let output = BufReader::new(session.stdout.take().unwrap());
    thread::spawn(move || {
        output
            .lines()
            .map_while(Result::ok)
            .try_for_each(|l| lines.send(l))
    });
    writeln!(input, "select 1;").unwrap();
    assert_eq!(answers.recv_timeout(Duration::from_secs(10)).unwrap(), "1");

    postgres.pause();
    let one_second = Duration::from_secs(1);
    assert!(try_psql(&postgres.url(), "select 1", one_second).is_err());
    writeln!(input, "select 2;").unwrap();
    assert!(
        answers.recv_timeout(one_second).is_err(),
        "an open session still answers"
    );

    postgres.resume();
    assert_eq!(answers.recv_timeout(Duration::from_secs(10)).unwrap(), "2");
    assert_eq!(
        try_psql(&postgres.url(), "select 3", one_second).as_deref(),
        Ok("3")
    );
    drop(input);
    session.wait().unwrap();
}

#[test]
fn postgres_with_password_refuses_a_wrong_one() {
    let postgres = PostgresServer::start_with_password("alice", "right horse");
    let port = postgres.port();
    assert_eq!(
        postgres.url(),
        format!("postgres://alice:right%20horse@127.0.0.1:{port}/postgres")
    );
    let timeout = Duration::from_secs(10);
    let wrong = format!("postgres://alice:wrong@127.0.0.1:{port}/postgres");
    let refused = try_psql(&wrong, "select 1", timeout).unwrap_err();
    assert!(
        refused.contains("password authentication failed"),
        "{refused}"
    );
    let without = format!("postgres://alice@127.0.0.1:{port}/postgres");
    assert!(try_psql(&without, "select 1", timeout).is_err());

    let sql = "create table t (id int); select current_user";
    assert_eq!(
        try_psql(&postgres.url(), sql, timeout).as_deref(),
        Ok("alice")
    );
    assert_eq!(postgres.psql("select current_user"), "postgres");
}

#[test]
fn postgres_drop_stops_the_cluster_and_removes_its_dir() {
    let mut postgres = PostgresServer::start();
    postgres.kill();
    postgres.restart();
    let pid = postgres.pid().unwrap();
    let dir = postgres.dir().to_path_buf();
    postgres.pause();
    drop(postgres);
    assert!(wait_until_gone(pid));
    assert!(!dir.exists());
}

#[test]
fn postgres_drop_after_a_kill_leaves_no_shared_memory() {
    let mut postgres = PostgresServer::start();
    let shmid = shmid_of(&postgres.dir().join("data"));
    assert!(shared_memory_exists(&shmid));
    postgres.kill();
    assert!(
        shared_memory_exists(&shmid),
        "a killed postmaster leaves it"
    );
    drop(postgres);
    assert!(!shared_memory_exists(&shmid));
}

#[test]
#[should_panic(expected = "redis-server on port")]
fn a_server_that_cannot_start_panics_with_its_log() {
    RedisServer::start_with_args(&["--no-such-option", "1"]);
}

#[test]
fn pgbouncer_runs_sql_in_front_of_postgres() {
    let postgres = PostgresServer::start();
    let bouncer = PgBouncer::start(&postgres);
    assert_ne!(bouncer.port(), postgres.port());
    assert_eq!(
        bouncer.url(),
        format!("postgres://postgres@127.0.0.1:{}/postgres", bouncer.port())
    );
    let answer = try_psql(&bouncer.url(), "select 1", Duration::from_secs(10));
    assert_eq!(answer.as_deref(), Ok("1"));
    let pid = bouncer.pid();
    drop(bouncer);
    assert!(wait_until_gone(pid));
}

#[test]
fn pgbouncer_logs_in_with_the_password() {
    let postgres = PostgresServer::start_with_password("bob", "pa:ss@word");
    let bouncer = PgBouncer::start(&postgres);
    let answer = try_psql(
        &bouncer.url(),
        "select current_user",
        Duration::from_secs(10),
    );
    assert_eq!(answer.as_deref(), Ok("bob"));
}

const ORPHAN_HELPER: &str = "LOCK_TESTKIT_ORPHAN_HELPER";

/// Servers die with the test process, even when it is killed and no `Drop` runs. The test
/// re-runs itself as the process to kill: with `ORPHAN_HELPER` set, it starts the servers,
/// reports them and sleeps until killed.
#[test]
fn servers_die_with_the_test_process() {
    if env::var_os(ORPHAN_HELPER).is_some() {
        return start_servers_and_wait_to_be_killed();
    }
    let mut helper = Command::new(env::current_exe().unwrap())
        .args([
            "servers_die_with_the_test_process",
            "--exact",
            "--nocapture",
        ])
        .env(ORPHAN_HELPER, "1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the helper");
    let report = BufReader::new(helper.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("servers: ").map(str::to_owned))
        .expect("the helper reports its servers");
    helper.kill().unwrap();
    helper.wait().unwrap();

    let [redis_pid, postgres_pid, redis_dir, postgres_dir] =
        <[&str; 4]>::try_from(report.split(' ').collect::<Vec<_>>()).unwrap();
    let redis_gone = wait_until_gone(redis_pid.parse().unwrap());
    let postgres_gone = wait_until_gone(postgres_pid.parse().unwrap());
    // Drop never ran in the killed helper: clean up what it left.
    remove_dead_cluster_shared_memory(&PathBuf::from(postgres_dir).join("data"));
    fs::remove_dir_all(redis_dir).unwrap();
    fs::remove_dir_all(postgres_dir).unwrap();
    assert!(redis_gone, "redis-server outlived the test process");
    assert!(postgres_gone, "postgres outlived the test process");
}

/// The helper's side of `servers_die_with_the_test_process`, which kills it.
fn start_servers_and_wait_to_be_killed() {
    let redis = RedisServer::start();
    let postgres = PostgresServer::start();
    println!(
        "servers: {} {} {} {}",
        redis.pid().unwrap(),
        postgres.pid().unwrap(),
        redis.dir().display(),
        postgres.dir().display()
    );
    io::stdout().flush().unwrap();
    thread::sleep(Duration::from_secs(60));
}

/// The System V shared memory segment of a cluster, from line 7 of `postmaster.pid`.
fn shmid_of(data_dir: &Path) -> String {
    let pid_file = fs::read_to_string(data_dir.join("postmaster.pid")).unwrap();
    let line = pid_file.lines().nth(6).unwrap();
    line.split_whitespace().nth(1).unwrap().to_owned()
}

fn shared_memory_exists(shmid: &str) -> bool {
    let segments = fs::read_to_string("/proc/sysvipc/shm").unwrap();
    segments
        .lines()
        .any(|line| line.split_whitespace().nth(1) == Some(shmid))
}

/// A killed postmaster leaves its shared memory segment behind.
fn remove_dead_cluster_shared_memory(data_dir: &Path) {
    let shmid = shmid_of(data_dir);
    let status = Command::new("ipcrm").args(["-m", &shmid]).status().unwrap();
    assert!(status.success());
}
