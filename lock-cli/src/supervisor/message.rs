//! What `lock` and its supervisor say to each other: one line of text a message, over a Unix
//! socket pair.

use std::time::Duration;

/// `lock` to its supervisor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToSupervisor {
    /// Start the command, its lease holding `token` until `deadline`; stop it `grace` before
    /// then if no later deadline comes. The lease's tie, if any, comes with this message; the
    /// command inherits it when `hand_down` (a file tie), else only the supervisor keeps it
    /// (a Postgres session's socket: the command has no business with it).
    Start {
        token: u64,
        deadline: Deadline,
        grace: Duration,
        hand_down: bool,
    },
    /// A renewal went through: the lease is good until this.
    Deadline(Deadline),
    /// Forward this signal to the command's process group.
    Signal(i32),
    /// The lease is lost: stop the command (TERM, then KILL after the grace).
    Stop,
}

/// The supervisor to `lock`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FromSupervisor {
    /// The command runs as this process id, the leader of its own process group.
    Started { pid: i32 },
    /// The command could not be started: exit with `code` (127: not found, 126: not run).
    Failed { code: u8, message: String },
    /// The command and everything left in its process group are gone.
    Exited { code: u8, why: Why },
}

/// Why the command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// By itself, or by a signal forwarded from `lock`.
    Itself,
    /// Stopped because `lock` asked ([`ToSupervisor::Stop`]).
    Stopped,
    /// Stopped because the lease's deadline came without a renewal.
    Deadline,
}

/// An instant on `CLOCK_MONOTONIC`, which every process of the machine shares, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(pub u64);

impl ToSupervisor {
    pub fn to_line(&self) -> String {
        match self {
            Self::Start {
                token,
                deadline,
                grace,
                hand_down,
            } => format!(
                "start {token} {} {} {}\n",
                deadline.0,
                grace.as_nanos(),
                u8::from(*hand_down)
            ),
            Self::Deadline(d) => format!("deadline {}\n", d.0),
            Self::Signal(s) => format!("signal {s}\n"),
            Self::Stop => "stop\n".into(),
        }
    }

    pub fn parse(line: &str) -> Option<Self> {
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        Some(match words.as_slice() {
            ["start", token, deadline, grace, hand_down] => Self::Start {
                token: token.parse().ok()?,
                deadline: Deadline(deadline.parse().ok()?),
                grace: Duration::from_nanos(grace.parse().ok()?),
                hand_down: match *hand_down {
                    "0" => false,
                    "1" => true,
                    _ => return None,
                },
            },
            ["deadline", d] => Self::Deadline(Deadline(d.parse().ok()?)),
            ["signal", s] => Self::Signal(s.parse().ok()?),
            ["stop"] => Self::Stop,
            _ => return None,
        })
    }
}

impl FromSupervisor {
    pub fn to_line(&self) -> String {
        match self {
            Self::Started { pid } => format!("started {pid}\n"),
            // The message last: it may hold spaces, never a newline.
            Self::Failed { code, message } => {
                format!("failed {code} {}\n", message.replace('\n', " "))
            }
            Self::Exited { code, why } => {
                let why = match why {
                    Why::Itself => "itself",
                    Why::Stopped => "stopped",
                    Why::Deadline => "deadline",
                };
                format!("exited {code} {why}\n")
            }
        }
    }

    pub fn parse(line: &str) -> Option<Self> {
        let line = line.trim_end_matches('\n');
        let (head, rest) = line.split_once(' ').unwrap_or((line, ""));
        Some(match head {
            "started" => Self::Started {
                pid: rest.parse().ok()?,
            },
            "failed" => {
                let (code, message) = rest.split_once(' ')?;
                Self::Failed {
                    code: code.parse().ok()?,
                    message: message.to_owned(),
                }
            }
            "exited" => {
                let (code, why) = rest.split_once(' ')?;
                let why = match why {
                    "itself" => Why::Itself,
                    "stopped" => Why::Stopped,
                    "deadline" => Why::Deadline,
                    _ => return None,
                };
                Self::Exited {
                    code: code.parse().ok()?,
                    why,
                }
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_to_the_supervisor_round_trip() {
        let cases = [
            ToSupervisor::Start {
                token: u64::MAX,
                deadline: Deadline(123_456_789),
                grace: Duration::from_millis(1500),
                hand_down: true,
            },
            ToSupervisor::Start {
                token: 1,
                deadline: Deadline(1),
                grace: Duration::ZERO,
                hand_down: false,
            },
            ToSupervisor::Deadline(Deadline(0)),
            ToSupervisor::Signal(15),
            ToSupervisor::Stop,
        ];
        for message in cases {
            assert_eq!(ToSupervisor::parse(&message.to_line()), Some(message));
        }
    }

    #[test]
    fn messages_from_the_supervisor_round_trip() {
        let cases = [
            FromSupervisor::Started { pid: 4242 },
            FromSupervisor::Failed {
                code: 127,
                message: "cannot start \"nope\": No such file or directory".into(),
            },
            FromSupervisor::Exited {
                code: 143,
                why: Why::Deadline,
            },
            FromSupervisor::Exited {
                code: 0,
                why: Why::Itself,
            },
            FromSupervisor::Exited {
                code: 137,
                why: Why::Stopped,
            },
        ];
        for message in cases {
            assert_eq!(FromSupervisor::parse(&message.to_line()), Some(message));
        }
    }

    #[test]
    fn garbled_lines_are_refused() {
        for line in [
            "",
            "start 1 2",
            "deadline x",
            "signal",
            "stopp",
            "start -1 2 3",
        ] {
            assert_eq!(ToSupervisor::parse(line), None, "{line:?}");
        }
        for line in [
            "",
            "started",
            "started x",
            "failed 1",
            "exited 0 why",
            "exited x itself",
        ] {
            assert_eq!(FromSupervisor::parse(line), None, "{line:?}");
        }
    }
}
