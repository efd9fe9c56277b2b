//! The command line, as the contract page (`docs/contract.md`) writes it.

use std::ffi::{OsStr, OsString};
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};
use lock::{InvalidInput, Kind, LockName, OwnerId, Permits, Ttl};

const EXAMPLES: &str = "\
Examples:
  lock run nightly -- ./nightly-report.sh          wait for the lock, run, release
  lock run --no-wait backup -- pg_dump mydb        skip (exit 75) if another run holds it
  lock --backend redis://cache:6379 run migrate -- ./migrate.sh
  lock acquire deploy --owner ci-42 --ttl 10m      hold across shell commands…
  lock renew deploy --owner ci-42 --ttl 10m        …keep it…
  lock release deploy --owner ci-42                …and give it back
  lock --json status deploy

Backends: --backend URL, else $LOCK_URL, else lock files in a private per-user directory.
  file:///abs/dir   redis://[user:pass@]host[:port][/db][?prefix=P]   rediss://…
  postgres://…  postgresql://…  (add ?mode=session for a session advisory lock)";

/// Keep a command from running twice, on one machine or many.
#[derive(Debug, Parser)]
#[command(name = "lock", version, after_help = EXAMPLES)]
pub struct Cli {
    /// Backend URL (file:///dir, redis://…, postgres://…); default: $LOCK_URL, else a private
    /// per-user lock directory.
    #[arg(long, global = true, value_name = "URL")]
    pub backend: Option<String>,
    /// Print exactly one JSON object on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Take the lock, run CMD while renewing it, release when CMD ends; exit as CMD did.
    ///
    /// CMD never outlives `lock` nor its lease: a supervisor process between them stops CMD's
    /// process group (TERM, then KILL after --kill-after) when `lock` ends, however it ends,
    /// when the lock is lost, and before the lease could lapse when no renewal got through
    /// (`lock` stopped, backend unreachable). What CMD leaves running in its group is stopped
    /// when it ends. A process that leaves the group (setsid) is out of reach. On the file
    /// backend the lock is free at once when `lock` and CMD's processes are all gone.
    Run(RunArgs),
    /// Take the lock once for --owner (no waiting unless --wait).
    Acquire(AcquireArgs),
    /// Extend --owner's lease by --ttl.
    Renew(RenewArgs),
    /// Give the lock up as --owner, or remove whoever's lease with --force.
    Release(ReleaseArgs),
    /// Say whether the lock is open, or who holds it and for how long.
    Status(LockArg),
    /// Print a completion script for SHELL (bash, zsh, fish, elvish, powershell).
    ///
    /// bash: `lock completions bash > ~/.local/share/bash-completion/completions/lock`;
    /// zsh: `lock completions zsh > ~/.zfunc/_lock` (with `~/.zfunc` in `fpath`);
    /// fish: `lock completions fish > ~/.config/fish/completions/lock.fish`.
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
    /// Print a manual page (roff): `lock man > ~/.local/share/man/man1/lock.1`, and each
    /// subcommand's, `lock man run > ~/.local/share/man/man1/lock-run.1`.
    Man {
        /// The subcommand whose page to print (lock-SUBCOMMAND(1)); without it, lock(1).
        subcommand: Option<String>,
    },
}

impl Command {
    /// The lock the command is about (`None` for the commands that print the CLI's own
    /// completions and manual).
    pub fn name(&self) -> Option<&LockName> {
        match self {
            Self::Run(a) => Some(&a.lock.name),
            Self::Acquire(a) => Some(&a.lock.name),
            Self::Renew(a) => Some(&a.lock.name),
            Self::Release(a) => Some(&a.lock.name),
            Self::Status(a) => Some(&a.name),
            Self::Completions { .. } | Self::Man { .. } => None,
        }
    }
}

/// The lock a subcommand acts on.
#[derive(Debug, Args)]
pub struct LockArg {
    /// The lock's name: 1 to 255 bytes of UTF-8, no control characters.
    #[arg(value_parser = Checked::new("a lock name", parse_name))]
    pub name: LockName,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub lock: LockArg,
    /// Lease time without renewal; renewed every ttl/3 while CMD runs.
    #[arg(long, default_value = "30s", allow_hyphen_values = true, value_parser = Checked::new("a ttl", parse_ttl))]
    pub ttl: Ttl,
    /// Wait at most this long for the lock (default: as long as it takes).
    #[arg(long, allow_hyphen_values = true, value_parser = Checked::new("a duration", parse_duration), conflicts_with = "no_wait")]
    pub wait: Option<Duration>,
    /// Do not wait: exit at once if the lock is held.
    #[arg(long)]
    pub no_wait: bool,
    /// When the command must stop: grace between TERM and KILL [default: 5s, at most a third
    /// of the ttl].
    #[arg(long, allow_hyphen_values = true, value_parser = Checked::new("a duration", parse_duration))]
    pub kill_after: Option<Duration>,
    /// Exit code when the lock is not taken.
    #[arg(long, default_value_t = 75)]
    pub conflict_exit_code: u8,
    #[command(flatten)]
    pub kind: KindArgs,
    /// The command and its arguments.
    #[arg(last = true, required = true, num_args = 1.., value_name = "CMD")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct AcquireArgs {
    #[command(flatten)]
    pub lock: LockArg,
    /// Who takes it; give the same id to renew and release.
    #[arg(long, value_parser = Checked::new("an owner id", parse_owner))]
    pub owner: OwnerId,
    /// Lease time without renewal.
    #[arg(long, default_value = "30s", allow_hyphen_values = true, value_parser = Checked::new("a ttl", parse_ttl))]
    pub ttl: Ttl,
    /// Wait at most this long for the lock (default: one try).
    #[arg(long, allow_hyphen_values = true, value_parser = Checked::new("a duration", parse_duration))]
    pub wait: Option<Duration>,
    #[command(flatten)]
    pub kind: KindArgs,
}

/// How a lease holds its name: alone (the default), shared, or as one of N permits.
#[derive(Debug, Args)]
pub struct KindArgs {
    /// Take one of N permits: at most N holders at once (1 to 10000; 1 is the plain lock).
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = Checked::new("a number of permits", parse_permits), conflicts_with = "shared")]
    pub permits: Option<Permits>,
    /// Take a shared lease, beside other shared ones (a reader); without it, an exclusive one
    /// (a writer).
    #[arg(long)]
    pub shared: bool,
}

impl KindArgs {
    /// The kind asked for.
    pub fn kind(&self) -> Kind {
        match (self.permits, self.shared) {
            (Some(n), _) => Kind::permit(n),
            (None, true) => Kind::Shared,
            (None, false) => Kind::Exclusive,
        }
    }
}

#[derive(Debug, Args)]
pub struct RenewArgs {
    #[command(flatten)]
    pub lock: LockArg,
    /// Whose lease to extend.
    #[arg(long, value_parser = Checked::new("an owner id", parse_owner))]
    pub owner: OwnerId,
    /// New lease time from now.
    #[arg(long, default_value = "30s", allow_hyphen_values = true, value_parser = Checked::new("a ttl", parse_ttl))]
    pub ttl: Ttl,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = true, args = ["owner", "force"])]
pub struct ReleaseArgs {
    #[command(flatten)]
    pub lock: LockArg,
    /// Release this owner's lease only (with --force: an operator removing that one lease of
    /// a semaphore or of a reader).
    #[arg(long, value_parser = Checked::new("an owner id", parse_owner))]
    pub owner: Option<OwnerId>,
    /// Remove every lease that stands (with --owner: only that owner's).
    #[arg(long)]
    pub force: bool,
}

/// A value parser that says what is wrong without echoing a huge or unprintable value back:
/// it shows at most [`SHOWN_CHARS`] characters of it, escaped, and names a value that is not
/// UTF-8 as such (clap would only say that some argument was not).
#[derive(Clone, Copy)]
struct Checked<T> {
    /// What the value is, with its article: "a lock name".
    what: &'static str,
    parse: fn(&str) -> Result<T, String>,
}

/// The most characters of a bad value an error message quotes.
const SHOWN_CHARS: usize = 64;

impl<T> Checked<T> {
    const fn new(what: &'static str, parse: fn(&str) -> Result<T, String>) -> Self {
        Self { what, parse }
    }
}

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Checked<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let why = match value.to_str() {
            Some(text) => match (self.parse)(text) {
                Ok(parsed) => return Ok(parsed),
                Err(why) => why,
            },
            None => format!("{} must be valid UTF-8", self.what),
        };
        let arg = arg.map_or_else(|| self.what.to_owned(), ToString::to_string);
        let usage = cmd.clone().render_usage();
        let message = format!(
            "invalid value {} for '{arg}': {why}\n\n{usage}\n\nFor more information, try '--help'.\n",
            shown(value)
        );
        Err(clap::Error::raw(ErrorKind::ValueValidation, message).with_cmd(cmd))
    }
}

/// `value` quoted and escaped (control characters, and bytes that are not UTF-8, as
/// escapes), cut to [`SHOWN_CHARS`] characters with its length in bytes when longer.
fn shown(value: &OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    let (text, cut) = match value.to_str() {
        Some(text) => {
            let head: String = text.chars().take(SHOWN_CHARS).collect();
            let cut = head.len() < text.len();
            (format!("{head:?}"), cut)
        }
        None => {
            let bytes = value.as_bytes();
            let head = &bytes[..bytes.len().min(SHOWN_CHARS)];
            (
                format!("\"{}\"", head.escape_ascii()),
                head.len() < bytes.len(),
            )
        }
    };
    if cut {
        format!("{text}… ({} bytes)", value.len())
    } else {
        text
    }
}

fn parse_name(s: &str) -> Result<LockName, String> {
    LockName::new(s).map_err(|e| e.to_string())
}

fn parse_owner(s: &str) -> Result<OwnerId, String> {
    OwnerId::new(s).map_err(|e| match e {
        // Its message quotes the whole id, which the error shows (cut short) already.
        InvalidInput::BadOwner { .. } => {
            "an owner id is 1 to 128 characters of A-Z a-z 0-9 and -_.:@/+=".to_owned()
        }
        other => other.to_string(),
    })
}

/// A number of permits: a whole number from 1 to 10000.
fn parse_permits(s: &str) -> Result<Permits, String> {
    s.parse::<Permits>().map_err(|e| e.to_string())
}

/// Durations like `250ms`, `30s`, `5m`, `1h 30m`. Clap lets values that start with `-`
/// through to here, so that `--ttl -1s` is named for what it is, and `--wait --no-wait` too.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.starts_with("--") {
        return Err(format!("{s} is an option, not a duration such as 30s"));
    }
    if s.starts_with('-') {
        return Err("a duration cannot be negative".to_owned());
    }
    humantime::parse_duration(s).map_err(|e| format!("not a duration like 250ms, 30s or 5m: {e}"))
}

/// Durations as [`parse_duration`] reads them, from 1 ms to 365 days.
fn parse_ttl(s: &str) -> Result<Ttl, String> {
    let s = s.trim();
    if let Some(magnitude) = s.strip_prefix('-').filter(|m| !m.starts_with('-')) {
        let millis = parse_duration(magnitude).map_or(0, |d| {
            i64::try_from(d.as_millis()).map_or(i64::MIN, |ms| -ms)
        });
        return Err(if millis < 0 {
            InvalidInput::NegativeTtl { millis }.to_string()
        } else {
            "a ttl cannot be negative: it must be from 1ms to 365 days".to_owned()
        });
    }
    Ttl::new(parse_duration(s)?).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_or_say_why() {
        let kind = |args: &[&str]| {
            let mut argv = vec!["lock", "acquire", "x", "--owner", "o"];
            argv.extend_from_slice(args);
            Cli::try_parse_from(argv).map(|cli| match cli.command {
                Command::Acquire(a) => a.kind.kind(),
                _ => unreachable!(),
            })
        };
        let three = Kind::permit(Permits::new(3).unwrap());
        for (args, want) in [
            (&[][..], Ok(Kind::Exclusive)),
            (&["--shared"][..], Ok(Kind::Shared)),
            (&["--permits", "3"][..], Ok(three)),
            (&["--permits", "1"][..], Ok(Kind::Exclusive)),
            (
                &["--permits", "10000"][..],
                Ok(Kind::permit(Permits::new(10_000).unwrap())),
            ),
            (&["--permits", "0"][..], Err("from 1 to 10000")),
            (&["--permits", "10001"][..], Err("from 1 to 10000")),
            (&["--permits", "-3"][..], Err("from 1 to 10000")),
            (&["--permits", "many"][..], Err("from 1 to 10000")),
            (
                &["--permits", "3", "--shared"][..],
                Err("cannot be used with"),
            ),
        ] {
            match (kind(args), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{args:?}"),
                (Err(e), Err(words)) => {
                    assert_eq!(e.exit_code(), 2, "{args:?}");
                    assert!(e.to_string().contains(words), "{args:?}: {e}");
                }
                (got, want) => panic!("{args:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn durations_and_ttls_parse_or_say_why() {
        let cases: &[(&str, Result<u64, &str>)] = &[
            ("250ms", Ok(250)),
            ("30s", Ok(30_000)),
            ("5m", Ok(300_000)),
            ("1h 30m", Ok(5_400_000)),
            ("365days", Ok(365 * 86_400_000)),
            ("0s", Err("out of range")),
            ("500us", Err("out of range")),
            ("366days", Err("out of range")),
            ("-1s", Err("ttl of -1000 ms is negative")),
            ("-1", Err("cannot be negative")),
            ("-500us", Err("cannot be negative")),
            ("--owner", Err("is an option")),
            ("abc", Err("not a duration")),
            ("30", Err("not a duration")),
            ("", Err("not a duration")),
        ];
        for (input, want) in cases {
            match (parse_ttl(input), want) {
                (Ok(ttl), Ok(ms)) => assert_eq!(ttl.as_millis(), *ms, "{input}"),
                (Err(e), Err(needle)) => assert!(e.contains(needle), "{input}: {e}"),
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
