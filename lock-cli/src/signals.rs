//! The signals `lock run` takes over: SIGINT, SIGTERM, SIGHUP, SIGQUIT.
//!
//! They are taken over before the first try, so that no signal can find the lock held and
//! `lock run` still on the default action (dying on the spot, the lease left to lapse and the
//! command, in its own process group, orphaned).

use std::future::Future as _;
use std::task::{Context, Poll, Waker};

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};

/// The handled signals, each a stream of deliveries since [`Signals::install`].
pub struct Signals {
    streams: [(Signal, tokio::signal::unix::Signal); 4],
}

impl Signals {
    /// Takes the signals over from their default actions.
    pub fn install() -> Self {
        let take = |kind: SignalKind| signal(kind).expect("a signal handler");
        Self {
            streams: [
                (Signal::SIGINT, take(SignalKind::interrupt())),
                (Signal::SIGTERM, take(SignalKind::terminate())),
                (Signal::SIGHUP, take(SignalKind::hangup())),
                (Signal::SIGQUIT, take(SignalKind::quit())),
            ],
        }
    }

    /// The next signal received (one already received comes at once).
    pub async fn recv(&mut self) -> Signal {
        let [(a, sa), (b, sb), (c, sc), (d, sd)] = &mut self.streams;
        // `recv` gives `None` only once the runtime shuts down; the other arms carry on.
        tokio::select! {
            Some(()) = sa.recv() => *a,
            Some(()) = sb.recv() => *b,
            Some(()) = sc.recv() => *c,
            Some(()) = sd.recv() => *d,
            else => std::future::pending().await,
        }
    }

    /// A signal already received, if any, without waiting.
    pub fn received(&mut self) -> Option<Signal> {
        // `Signal::recv` is cancel-safe: a delivery not taken here stays for the next call.
        let recv = std::pin::pin!(self.recv());
        match recv.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(signal) => Some(signal),
            Poll::Pending => None,
        }
    }
}

/// The exit code of a process that a signal stopped, as shells report it.
pub fn exit_code(signal: Signal) -> u8 {
    128 + signal as u8
}
