//! The metrics of the layer above the backends, read back through `metrics-util`'s debugging
//! recorder after a known run on the memory backend: acquisitions by outcome and kind, wait
//! and hold times, a loss by reason, and the waiters' gauge back at zero. (A test binary of
//! its own: the recorder is installed for the whole process.)

use std::sync::Arc;
use std::time::Duration;

use lock_core::{
    AcquireOptions, Acquisition, Claim, Guard, Kind, Lock, LockName, LossReason, MemoryLock,
    OwnerId, Permits, Ttl, Wait, acquire,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// The value of metric `name` with exactly `labels` (sorted by label name).
fn find<'a>(
    snapshot: &'a [(metrics_util::CompositeKey, DebugValue)],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'a DebugValue> {
    snapshot.iter().find_map(|(key, value)| {
        let key = key.key();
        let mut have: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        have.sort();
        let mut want: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        want.sort();
        (key.name() == name && have == want).then_some(value)
    })
}

fn counter(value: Option<&DebugValue>) -> u64 {
    match value {
        Some(DebugValue::Counter(n)) => *n,
        None => 0,
        other => panic!("not a counter: {other:?}"),
    }
}

fn samples(value: Option<&DebugValue>) -> Vec<f64> {
    match value {
        Some(DebugValue::Histogram(v)) => v.iter().map(|f| f.into_inner()).collect(),
        None => Vec::new(),
        other => panic!("not a histogram: {other:?}"),
    }
}

#[tokio::test]
async fn a_known_run_reads_back_as_its_metrics() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this process");

    let lock: Arc<dyn Lock> = Arc::new(MemoryLock::new());
    let name = LockName::new("nightly").unwrap();
    let ttl = Ttl::from_millis(1_000).unwrap();
    let options = || {
        AcquireOptions::new()
            .ttl(ttl)
            .renew_every(Duration::from_millis(20))
    };

    // Acquired (a guard), held (one try), timed out (a wait of 60 ms).
    let first = Guard::acquire(lock.clone(), name.clone(), options().wait(Wait::No))
        .await
        .unwrap()
        .acquired()
        .expect("open");
    let other = OwnerId::random();
    let held = acquire(&*lock, Claim::new(&name, &other, ttl), Wait::No)
        .await
        .unwrap();
    assert!(matches!(held, Acquisition::Held(_)));
    let waited = acquire(
        &*lock,
        Claim::new(&name, &other, ttl),
        Wait::For(Duration::from_millis(60)),
    )
    .await
    .unwrap();
    assert!(matches!(waited, Acquisition::TimedOut(_)));

    // A force release: the guard's next renewal is refused, a loss.
    lock.force_release(&name).await.unwrap();
    assert_eq!(first.lost().await, LossReason::Refused);
    drop(first);

    // A permit, acquired and released.
    let three = Kind::permit(Permits::new(3).unwrap());
    let permit = Guard::acquire(lock.clone(), name.clone(), options().kind(three))
        .await
        .unwrap()
        .acquired()
        .expect("open");
    permit.release().await.unwrap();

    let snapshot: Vec<_> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key, value))
        .collect();
    let acquisitions = |kind, outcome| {
        counter(find(
            &snapshot,
            "lock_acquisitions_total",
            &[("backend", "memory"), ("kind", kind), ("outcome", outcome)],
        ))
    };
    assert_eq!(acquisitions("exclusive", "acquired"), 1);
    assert_eq!(acquisitions("exclusive", "held"), 1);
    assert_eq!(acquisitions("exclusive", "timed_out"), 1);
    assert_eq!(acquisitions("exclusive", "error"), 0);
    assert_eq!(acquisitions("permit", "acquired"), 1);

    let waits = samples(find(
        &snapshot,
        "lock_wait_seconds",
        &[("backend", "memory"), ("kind", "exclusive")],
    ));
    assert_eq!(waits.len(), 3, "{waits:?}");
    assert!(
        waits.iter().any(|&w| w >= 0.060),
        "the timed-out wait lasted its 60 ms: {waits:?}"
    );
    let holds = |kind| {
        samples(find(
            &snapshot,
            "lock_hold_seconds",
            &[("backend", "memory"), ("kind", kind)],
        ))
    };
    assert_eq!(holds("exclusive").len(), 1);
    assert_eq!(holds("permit").len(), 1);
    let losses = |reason| {
        counter(find(
            &snapshot,
            "lock_losses_total",
            &[("backend", "memory"), ("reason", reason)],
        ))
    };
    assert_eq!((losses("refused"), losses("unreachable")), (1, 0));
    match find(&snapshot, "lock_waiters", &[("backend", "memory")]) {
        Some(DebugValue::Gauge(v)) => assert_eq!(v.into_inner(), 0.0, "every wait ended"),
        other => panic!("the waiters' gauge: {other:?}"),
    }
}
