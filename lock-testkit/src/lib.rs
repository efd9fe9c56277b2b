//! Throw-away `redis-server`, Postgres and PgBouncer processes for tests, with the faults a
//! lock has to survive: kill, pause, restart.
//!
//! Each server runs on a free 127.0.0.1 port (never the machine's own 6379 or 5432) with its
//! files in a temporary directory. It is a direct child of the test process: dropping the
//! handle stops it and removes the directory, also when the test panics, and if the test
//! process itself is killed, the kernel kills the server (`PR_SET_PDEATHSIG`), so no
//! orphan is left listening. Only the temporary directory stays behind in that case.
//!
//! Everything is synchronous and panics with a clear message on failure (a missing binary
//! names the packages to install; a server that does not come up quotes its log). Nothing
//! is ever skipped.
//!
//! The binaries come from `PATH`, then `/usr/lib/postgresql/<newest>/bin`, `/usr/sbin`
//! (pgbouncer) and `/usr/bin` (redis-server). As root, Postgres and PgBouncer run as the
//! `postgres` system user, since both refuse root.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use lock_testkit::{PgBouncer, PostgresServer, RedisServer, try_psql};
//!
//! let mut redis = RedisServer::start();
//! let url = redis.url(); // "redis://127.0.0.1:PORT"
//! redis.pause(); // stops answering (SIGSTOP)
//! redis.resume();
//! redis.kill(); // a crash: connections are refused
//! redis.restart(); // the same port, all data gone
//!
//! let mut postgres = PostgresServer::start();
//! postgres.psql("create table fences (token bigint)");
//! postgres.kill();
//! postgres.restart(); // crash recovery: the table is still there
//! assert_eq!(postgres.psql("select count(*) from fences"), "0");
//!
//! let bouncer = PgBouncer::start(&postgres);
//! let answer = try_psql(&bouncer.url(), "select 1", Duration::from_secs(5));
//! assert_eq!(answer.as_deref(), Ok("1"));
//! ```
#![deny(missing_docs)]

mod binaries;
mod pgbouncer;
mod ports;
mod postgres;
mod process;
mod psql;
mod redis;
mod shared;
mod startup;

pub use pgbouncer::PgBouncer;
pub use ports::free_port;
pub use postgres::PostgresServer;
pub use psql::try_psql;
pub use redis::RedisServer;
pub use shared::Shared;
