//! [`Report`]: what a command says, as a human line or one JSON object, and its exit code.

use std::time::Duration;

use lock::{Error, Holder, Holders, Kind, Lease, LockName};
use serde_json::{Map, Value, json};

/// Exit code of `run` when the lock is lost while the command runs.
pub const EXIT_LOST: u8 = 76;
/// Exit code for bad usage or bad input.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the backend cannot be reached or fails.
pub const EXIT_BACKEND: u8 = 3;

/// The outcomes of the contract (`docs/contract.md`), spelled as the JSON spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Acquired,
    Held,
    Renewed,
    Lost,
    Released,
    NotOwner,
    NotLocked,
    Open,
    Locked,
    Timeout,
    Error,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Acquired => "acquired",
            Self::Held => "held",
            Self::Renewed => "renewed",
            Self::Lost => "lost",
            Self::Released => "released",
            Self::NotOwner => "not_owner",
            Self::NotLocked => "not_locked",
            Self::Open => "open",
            Self::Locked => "locked",
            Self::Timeout => "timeout",
            Self::Error => "error",
        }
    }
}

/// What one invocation of `lock` says.
#[derive(Debug)]
pub struct Report {
    name: Option<String>,
    outcome: Outcome,
    owner: Option<String>,
    token: Option<u64>,
    expires_in: Option<Duration>,
    /// `status` only: every holder of a locked name.
    holders: Option<Vec<Holder>>,
    /// A semaphore's N and how many permits are free, for `status`.
    permits: Option<(u32, u32)>,
    /// The lease shown (the caller's, or the lone holder's) is shared.
    shared: bool,
    error: Option<String>,
    exit: u8,
    /// `run` only: the command's exit code goes into the JSON object.
    run_exit: Option<u8>,
}

impl Report {
    /// An outcome of `acquire`, `renew`, `release` or `status`, with the contract's exit code.
    pub fn new(name: &LockName, outcome: Outcome) -> Self {
        let exit = match outcome {
            Outcome::Acquired
            | Outcome::Renewed
            | Outcome::Released
            | Outcome::Open
            | Outcome::Locked => 0,
            Outcome::Error => EXIT_BACKEND,
            _ => 1,
        };
        Self {
            name: Some(name.to_string()),
            outcome,
            owner: None,
            token: None,
            expires_in: None,
            holders: None,
            permits: None,
            shared: false,
            error: None,
            exit,
            run_exit: None,
        }
    }

    /// The caller's lease.
    pub fn lease(mut self, lease: &Lease) -> Self {
        self.owner = Some(lease.owner.to_string());
        self.token = Some(lease.token.get());
        self.expires_in = Some(lease.ttl.duration());
        self.shared = lease.kind == Kind::Shared;
        self
    }

    /// Someone's live lease.
    pub fn holder(mut self, holder: &Holder) -> Self {
        self.owner = Some(holder.owner.to_string());
        self.token = Some(holder.token.get());
        self.expires_in = holder.expires_in;
        self.shared = holder.kind == Kind::Shared;
        self
    }

    /// Everyone holding a locked name (`status`): a lone holder also at the top level, as
    /// [`holder`](Self::holder) shows it; a semaphore's permits and free count.
    pub fn holders(mut self, holders: &Holders) -> Self {
        if holders.len() == 1 {
            self = self.holder(holders.first());
        }
        self.permits = holders.permits();
        self.holders = Some(holders.as_slice().to_vec());
        self
    }

    /// An error: exit 2 for invalid input, 3 for everything the backend did.
    pub fn error(name: Option<&LockName>, error: &Error) -> Self {
        let exit = if error.is_invalid_input() {
            EXIT_USAGE
        } else {
            EXIT_BACKEND
        };
        Self::failure(name.map(ToString::to_string), error_chain(error), exit)
    }

    /// An error with a message and an exit code of its own (bad usage, say).
    pub fn failure(name: Option<String>, message: String, exit: u8) -> Self {
        Self {
            name,
            outcome: Outcome::Error,
            owner: None,
            token: None,
            expires_in: None,
            holders: None,
            permits: None,
            shared: false,
            error: Some(message),
            exit,
            run_exit: None,
        }
    }

    /// `run`'s ending: its outcome, and the exit code `run` itself ends with.
    pub fn run_ended(mut self, exit: u8) -> Self {
        self.exit = exit;
        self.run_exit = Some(exit);
        self.expires_in = None;
        self
    }

    /// The process's exit code.
    pub fn exit_code(&self) -> u8 {
        self.exit
    }

    /// Prints the report: one JSON object on stdout, or a human line: on stderr for errors
    /// and for `run`, whose stdout belongs to the command.
    ///
    /// A closed stdout or stderr (`lock status x | head -c0`) is not an error of the lock
    /// operation, which has happened: the exit code still says how it went, and nothing panics.
    pub fn print(&self, json: bool) {
        use std::io::Write;
        let _ = if json {
            writeln!(std::io::stdout(), "{}", self.to_json())
        } else if let Some(error) = &self.error {
            writeln!(std::io::stderr(), "lock: error: {error}")
        } else if self.run_exit.is_some() {
            writeln!(std::io::stderr(), "lock: {}", self.human())
        } else {
            writeln!(std::io::stdout(), "{}", self.human())
        };
    }

    fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("name".into(), json!(self.name));
        o.insert("outcome".into(), json!(self.outcome.as_str()));
        if let Some(owner) = &self.owner {
            o.insert("owner".into(), json!(owner));
        }
        if let Some(token) = self.token {
            o.insert("fencing_token".into(), json!(token));
        }
        if let Some(left) = self.expires_in {
            o.insert("expires_in_ms".into(), json!(left.as_millis() as u64));
        }
        if self.shared {
            o.insert("shared".into(), json!(true));
        }
        if let Some(holders) = &self.holders {
            let holders: Vec<Value> = holders.iter().map(holder_json).collect();
            o.insert("holders".into(), Value::Array(holders));
        }
        if let Some((permits, free)) = self.permits {
            o.insert("permits".into(), json!(permits));
            o.insert("free".into(), json!(free));
        }
        if let Some(code) = self.run_exit {
            o.insert("exit_code".into(), json!(code));
        }
        if let Some(error) = &self.error {
            o.insert("error".into(), json!(error));
        }
        Value::Object(o)
    }

    fn human(&self) -> String {
        let name = self.name.as_deref().unwrap_or("");
        let mut line = format!("{name}: {}", self.outcome.as_str().replace('_', " "));
        if let Some(holders) = self.holders.as_ref().filter(|h| h.len() > 1) {
            let kind = match self.permits {
                Some((n, free)) => format!("{n} permits, {free} free"),
                None => "shared".to_owned(),
            };
            line.push_str(&format!(" by {} holders ({kind}):", holders.len()));
            let each: Vec<String> = holders.iter().map(holder_words).collect();
            line.push_str(&format!(" {}", each.join("; ")));
            return line;
        }
        if let Some(owner) = &self.owner {
            line.push_str(&format!(" by {owner}"));
        }
        if let Some(token) = self.token {
            line.push_str(&format!(", fencing token {token}"));
        }
        if let Some(left) = self.expires_in {
            let left = Duration::from_millis(left.as_millis() as u64);
            line.push_str(&format!(
                ", expires in {}",
                humantime::format_duration(left)
            ));
        }
        if self.shared {
            line.push_str(", shared");
        }
        if let Some((n, free)) = self.permits {
            line.push_str(&format!(", {n} permits, {free} free"));
        }
        if let Some(code) = self.run_exit {
            line.push_str(&format!(", exit code {code}"));
        }
        line
    }
}

/// One holder in `status --json`'s `holders`.
fn holder_json(holder: &Holder) -> Value {
    let mut o = Map::new();
    o.insert("owner".into(), json!(holder.owner.as_str()));
    o.insert("fencing_token".into(), json!(holder.token.get()));
    if let Some(left) = holder.expires_in {
        o.insert("expires_in_ms".into(), json!(left.as_millis() as u64));
    }
    o.insert("shared".into(), json!(holder.kind == Kind::Shared));
    Value::Object(o)
}

/// One holder in `status`'s human line: `a (fencing token 5, expires in 29s)`.
fn holder_words(holder: &Holder) -> String {
    let mut words = format!("{} (fencing token {}", holder.owner, holder.token.get());
    if let Some(left) = holder.expires_in {
        let left = Duration::from_millis(left.as_millis() as u64);
        words.push_str(&format!(
            ", expires in {}",
            humantime::format_duration(left)
        ));
    }
    words.push(')');
    words
}

/// The error and its sources, one after the other.
fn error_chain(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(&format!(": {more}"));
        }
        source = s.source();
    }
    text
}
