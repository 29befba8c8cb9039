//! argon2id off the async runtime, with bounded concurrency: a burst of logins queues briefly, then gets 503, and memory stays at permits x 19 MiB. Uses: crypto.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::Error;
use crate::crypto::secrets;

pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    max_wait: Duration,
    /// Checked instead of a real hash when the user does not exist, so the answer takes as long.
    dummy_phc: String,
}

impl PasswordHasher {
    /// `concurrency` hashes at once (argon2id with 19 MiB each); a caller waits at most
    /// `max_wait` for a turn.
    pub fn new(concurrency: usize, max_wait: Duration) -> Self {
        let dummy = format!(
            "dummy-{}",
            crate::crypto::keys::base64url(&crate::crypto::random_bytes::<16>())
        );
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            max_wait,
            dummy_phc: secrets::hash_password(&dummy),
        }
    }

    /// Verifies `password` against `phc`, or against the dummy hash when there is no user.
    pub async fn verify(&self, phc: Option<&str>, password: &str) -> Result<bool, Error> {
        let phc = phc.unwrap_or(&self.dummy_phc).to_owned();
        let password = password.to_owned();
        self.run(move || secrets::verify_password(&phc, &password))
            .await
    }

    pub async fn hash(&self, password: &str) -> Result<String, Error> {
        let password = password.to_owned();
        self.run(move || secrets::hash_password(&password)).await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let permit = tokio::time::timeout(self.max_wait, Arc::clone(&self.permits).acquire_owned())
            .await
            .map_err(|_| Error::Busy)?
            .map_err(|_| Error::Busy)?;
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .expect("password hashing does not panic");
        Ok(result)
    }
}
