//! argon2id on a fixed pool of hashing threads, each reusing its own 19 MiB: never on the async runtime, memory bounded at threads x 19 MiB, and a burst of logins queues briefly, then gets 503. Uses: crypto.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::Block;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::Error;
use crate::crypto::secrets;

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

pub struct PasswordHasher {
    /// One per hashing thread: a caller holds one while its hash runs.
    permits: Arc<Semaphore>,
    max_wait: Duration,
    jobs: SyncSender<Job>,
    /// Checked instead of a real hash when the user does not exist, so the answer takes as long.
    dummy_phc: String,
    /// Verifications started on this pool.
    verifications: AtomicU64,
}

impl PasswordHasher {
    /// `threads` hashing threads (argon2id, 19 MiB each); a caller waits at most `max_wait`
    /// for a turn. The threads end when the hasher is dropped.
    pub fn new(threads: usize, max_wait: Duration) -> Self {
        let threads = threads.max(1);
        let (jobs, queue) = sync_channel::<Job>(threads);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    let mut memory = Vec::new();
                    loop {
                        let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(_) => break,
                        }
                    }
                })
                .expect("a hashing thread starts");
        }
        let dummy = format!(
            "dummy-{}",
            crate::crypto::keys::base64url(&crate::crypto::random_bytes::<16>())
        );
        Self {
            permits: Arc::new(Semaphore::new(threads)),
            max_wait,
            jobs,
            dummy_phc: secrets::hash_password(&dummy),
            verifications: AtomicU64::new(0),
        }
    }

    /// Verifies `password` against `phc`, or against the dummy hash when there is no user.
    pub async fn verify(&self, phc: Option<&str>, password: &str) -> Result<bool, Error> {
        let phc = phc.unwrap_or(&self.dummy_phc).to_owned();
        let password = password.to_owned();
        let verifications = &self.verifications;
        self.run(move |memory| secrets::verify_password_in(&phc, &password, memory))
            .await
            .inspect(|_| {
                verifications.fetch_add(1, Ordering::Relaxed);
            })
    }

    /// Passwords and secrets verified on this pool so far.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    pub async fn hash(&self, password: &str) -> Result<String, Error> {
        let password = password.to_owned();
        self.run(move |_| secrets::hash_password(&password)).await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let queued = metrics::gauge!(crate::metrics::ARGON2_QUEUE_DEPTH);
        queued.increment(1.0);
        let started = std::time::Instant::now();
        let permit =
            tokio::time::timeout(self.max_wait, Arc::clone(&self.permits).acquire_owned()).await;
        metrics::histogram!(crate::metrics::ARGON2_WAIT).record(started.elapsed().as_secs_f64());
        let permit: OwnedSemaphorePermit = match permit {
            Ok(Ok(permit)) => permit,
            _ => {
                queued.decrement(1.0);
                return Err(Error::Busy);
            }
        };
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _ = done.send(work(memory));
            drop(permit);
            queued.decrement(1.0);
        });
        // Never blocks: a permit is held, and there are as many queue slots as permits.
        self.jobs.send(job).map_err(|_| Error::Busy)?;
        result.await.map_err(|_| Error::Busy)
    }
}

impl super::Issuer {
    /// Passwords and operator-chosen client secrets this instance has verified (argon2id runs):
    /// what the login throttle bounds.
    pub fn password_verifications(&self) -> u64 {
        self.passwords.verifications()
    }
}
