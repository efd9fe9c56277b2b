//! Racing clients, tasks sharing a handle, and processes.

use super::support::*;

/// racing try acquires on an open name: exactly one of 32 clients wins.
pub async fn racing_clients_exactly_one_wins(s: &Suite) {
    let name = s.name("n");
    let mut clients = Vec::new();
    for _ in 0..32 {
        clients.push(s.client().await);
    }
    let start = Arc::new(tokio::sync::Barrier::new(clients.len()));
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|c| {
            let (name, start) = (name.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let outcome = c.acquire(&name, ttl(LONG)).await;
                // The client stays connected until every try is in: on a backend whose lock
                // lives on the connection, dropping the winner's handle would release it.
                (c, outcome)
            })
        })
        .collect();
    let mut finished = Vec::new();
    for task in tasks {
        finished.push(task.await.expect("task"));
    }
    let mut winners = Vec::new();
    let mut seen_holders = HashSet::new();
    for (c, outcome) in &finished {
        match outcome {
            AcquireOutcome::Acquired(lease) => winners.push((c.owner.clone(), lease.token)),
            AcquireOutcome::Held(h) => {
                seen_holders.insert((h.owner.clone(), h.token));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner: {winners:?}");
    let expected: HashSet<_> = winners.into_iter().collect();
    assert_eq!(seen_holders, expected, "every loser saw the winner");
}

/// one handle shared by many tasks, each its own owner: one winner per name, every name its own.
pub async fn one_handle_many_tasks(s: &Suite) {
    let lock = s.handle().await;
    let shared = s.name("shared");
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (lock, shared, own) = (lock.clone(), shared.clone(), s.name(&format!("own-{i}")));
            tokio::spawn(async move {
                let owner = OwnerId::random();
                let won = lock
                    .try_acquire(Claim::new(&shared, &owner, ttl(LONG)))
                    .await
                    .expect("try_acquire");
                let mine = lock
                    .try_acquire(Claim::new(&own, &owner, ttl(LONG)))
                    .await
                    .expect("try_acquire");
                assert!(
                    matches!(mine, AcquireOutcome::Acquired(_)),
                    "{own:?}: {mine:?}"
                );
                assert_eq!(
                    lock.release(&own, &owner).await.expect("release"),
                    ReleaseOutcome::Released
                );
                matches!(won, AcquireOutcome::Acquired(_))
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        wins += usize::from(task.await.expect("task"));
    }
    assert_eq!(wins, 1);
}

/// racing processes: W processes × M cycles never overlap; tokens rise in order of entry; a shared counter is exact.
pub async fn cross_process_exclusion(s: &Suite) {
    crate::cross_process::check(s, crate::cross_process::Mode::Exclusive).await;
}

/// permits across processes: W processes on a semaphore of 3, never more than 3 inside (counted in a shared directory), every grant its own token.
pub async fn cross_process_semaphore(s: &Suite) {
    crate::cross_process::check(s, crate::cross_process::Mode::Semaphore).await;
}

/// shared across processes: readers and writers in W processes; no writer's hold overlaps any other, and the writers lose no update.
pub async fn cross_process_readers_writers(s: &Suite) {
    crate::cross_process::check(s, crate::cross_process::Mode::ReadersWriters).await;
}

/// permits: racing try acquires on a semaphore of 3 from 16 clients: exactly 3 win.
pub async fn racing_clients_on_a_semaphore_exactly_n_win(s: &Suite) {
    let mut clients = Vec::new();
    for _ in 0..16 {
        clients.push(s.client().await);
    }
    let name = s.name("n");
    let three = Kind::permit(Permits::new(3).expect("3"));
    let start = Arc::new(tokio::sync::Barrier::new(clients.len()));
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|c| {
            let (name, start) = (name.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                c.claim(&name, ttl(LONG), three).await.expect("claim")
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        if let AcquireOutcome::Acquired(lease) = task.await.expect("task") {
            tokens.push(lease.token);
        }
    }
    assert_eq!(
        tokens.len(),
        3,
        "exactly 3 of 16 win a semaphore of 3: {tokens:?}"
    );
    let distinct: HashSet<_> = tokens.iter().collect();
    assert_eq!(
        distinct.len(),
        3,
        "every winner has its own token: {tokens:?}"
    );
    assert_eq!(holders(s.client().await.inspect(&name).await).len(), 3);
}
