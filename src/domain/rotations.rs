//! Group commit for refresh-token rotations on PostgreSQL: concurrent rotations are gathered for a bounded wait and carried out in one transaction, each answered with its own outcome. Uses: store, model.
//!
//! One transaction per rotation is the ceiling of a refresh-heavy load (each pays a commit and a
//! round trip), so rotations arriving together share one. A request's answer still waits for
//! its own rotation's commit: nothing is answered from a transaction that may not be durable.
//! SQLite has a single writer and keeps one transaction per rotation.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::store::{Backend, Consumed, Rotation, Store, StoreError};

/// Batches carried out at once. Each holds a pooled connection while it runs; the requests
/// that arrive meanwhile gather into the next batch, so a busy database gets fewer, larger
/// transactions. Half the default pool, leaving the rest to lookups and other requests.
const BATCHES_IN_FLIGHT: usize = 4;

/// How rotations are gathered (`TESSERA_REFRESH_BATCH_WAIT_US`, `TESSERA_REFRESH_BATCH_SIZE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationBatching {
    /// The longest a rotation waits for batch-mates before its batch starts.
    pub max_wait: Duration,
    /// A batch starts as soon as it has this many rotations; 1 turns batching off.
    pub max_size: usize,
}

/// A rotation waiting for its batch, and where its outcome goes.
struct Pending {
    rotation: Rotation,
    reply: oneshot::Sender<Result<Consumed, StoreError>>,
}

/// Carries out rotations: batched on PostgreSQL, one at a time otherwise.
pub struct Rotations(Mode);

enum Mode {
    Direct(Arc<dyn Store>),
    Batched(mpsc::UnboundedSender<Pending>),
}

impl Rotations {
    /// Batching starts a task that gathers rotations; it ends when this is dropped.
    pub fn new(store: Arc<dyn Store>, batching: RotationBatching) -> Self {
        if store.backend() != Backend::Postgres || batching.max_size <= 1 {
            return Self(Mode::Direct(store));
        }
        let (queue, arrivals) = mpsc::unbounded_channel();
        tokio::spawn(gather(store, arrivals, batching));
        Self(Mode::Batched(queue))
    }

    /// Carries out one rotation, with whatever others arrive together; answers once its
    /// transaction has committed (or failed).
    pub async fn consume(&self, rotation: Rotation) -> Result<Consumed, StoreError> {
        match &self.0 {
            Mode::Direct(store) => consume_one(store.as_ref(), rotation).await,
            Mode::Batched(queue) => {
                let (reply, outcome) = oneshot::channel();
                queue
                    .send(Pending { rotation, reply })
                    .map_err(|_| BATCHER_GONE)?;
                outcome.await.map_err(|_| BATCHER_GONE)?
            }
        }
    }
}

/// The gathering task stopped (the runtime is shutting down): nothing was written.
const BATCHER_GONE: StoreError = StoreError::Unavailable {
    kind: "rotation batcher stopped",
};

async fn consume_one(store: &dyn Store, rotation: Rotation) -> Result<Consumed, StoreError> {
    let outcomes = store
        .consume_refresh_tokens(std::slice::from_ref(&rotation))
        .await?;
    Ok(outcomes.first().copied().unwrap_or(Consumed::NotLive))
}

/// Gathers a batch: the first rotation, then those arriving within `max_wait` of it, up to
/// `max_size`, plus those that arrived while every batch slot was busy; then runs it.
async fn gather(
    store: Arc<dyn Store>,
    mut arrivals: mpsc::UnboundedReceiver<Pending>,
    batching: RotationBatching,
) {
    let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    while let Some(first) = arrivals.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + batching.max_wait;
        while batch.len() < batching.max_size {
            match arrivals.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) if batching.max_wait.is_zero() => break,
                Err(_) => match tokio::time::timeout_at(deadline, arrivals.recv()).await {
                    Ok(Some(pending)) => batch.push(pending),
                    Ok(None) | Err(_) => break,
                },
            }
        }
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        while batch.len() < batching.max_size {
            match arrivals.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            run(store.as_ref(), batch).await;
            drop(slot);
        });
    }
}

/// One transaction for the batch. If it fails as a whole (a deadlock with an offboarding, a
/// serialization failure, a value one rotation carries), nothing of it was written, and each
/// rotation is tried again on its own, so one rotation's failure is never its batch-mates'. An
/// unavailable database fails them all at once (503, nothing written: clients retry).
async fn run(store: &dyn Store, batch: Vec<Pending>) {
    let (rotations, replies): (Vec<Rotation>, Vec<_>) =
        batch.into_iter().map(|p| (p.rotation, p.reply)).unzip();
    metrics::histogram!(crate::metrics::REFRESH_BATCH_SIZE).record(rotations.len() as f64);
    match store.consume_refresh_tokens(&rotations).await {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                // A requester that went away finds its rotation done, and a retry inside the
                // window gets the same successor.
                let _ = reply.send(Ok(outcome));
            }
        }
        // The database does not answer: one by one would only wait for it once per rotation.
        Err(StoreError::Unavailable { kind }) => {
            for reply in replies {
                let _ = reply.send(Err(StoreError::Unavailable { kind }));
            }
        }
        Err(error) if rotations.len() == 1 => {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(error));
            }
        }
        Err(error) => {
            tracing::warn!(%error, size = rotations.len(), "a rotation batch failed; its rotations are tried again one by one");
            for (rotation, reply) in rotations.into_iter().zip(replies) {
                let _ = reply.send(consume_one(store, rotation).await);
            }
        }
    }
}
