//! Original files on disk: `UPLOAD_PATH/{user_id}/{document_id}.pdf`.
//! Uploads are written under a temporary name and renamed once complete,
//! so a file under its real name is always whole.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::error::{DocumentsError, Result};

const PDF_MAGIC: &[u8] = b"%PDF-";

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

/// A file being received. Dropped before [`Incoming::finish`] (the upload
/// was refused, or its call cancelled), it removes what was received.
pub struct Incoming {
    file: tokio::fs::File,
    /// The temporary file, until it is renamed to `target`.
    partial: Option<PathBuf>,
    target: PathBuf,
    hasher: Sha256,
    head: Vec<u8>,
    bytes: u64,
    limit: u64,
}

impl BlobStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn user_dir(&self, user_id: Uuid) -> PathBuf {
        self.root.join(user_id.to_string())
    }

    pub fn path(&self, user_id: Uuid, id: Uuid) -> PathBuf {
        self.user_dir(user_id).join(format!("{id}.pdf"))
    }

    /// Starts receiving a document of at most `limit` bytes.
    pub async fn create(&self, user_id: Uuid, id: Uuid, limit: u64) -> Result<Incoming> {
        let dir = self.user_dir(user_id);
        tokio::fs::create_dir_all(&dir).await?;
        let partial = dir.join(format!(".{id}.partial"));
        Ok(Incoming {
            file: tokio::fs::File::create(&partial).await?,
            partial: Some(partial),
            target: self.path(user_id, id),
            hasher: Sha256::new(),
            head: Vec::with_capacity(PDF_MAGIC.len()),
            bytes: 0,
            limit,
        })
    }

    pub async fn delete(&self, user_id: Uuid, id: Uuid) -> Result<()> {
        remove_if_present(&self.path(user_id, id)).await
    }

    /// Removes the user's whole folder.
    pub async fn delete_user(&self, user_id: Uuid) -> Result<()> {
        match tokio::fs::remove_dir_all(self.user_dir(user_id)).await {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err.into()),
        }
    }
}

async fn remove_if_present(path: &Path) -> Result<()> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err.into()),
    }
}

impl Incoming {
    /// Appends bytes, refusing a file over the limit or one that is not a PDF.
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.bytes += data.len() as u64;
        if self.bytes > self.limit {
            return Err(DocumentsError::TooLarge(self.limit));
        }
        if self.head.len() < PDF_MAGIC.len() {
            let wanted = PDF_MAGIC.len() - self.head.len();
            self.head.extend(data.iter().take(wanted));
            if !PDF_MAGIC.starts_with(&self.head) {
                return Err(DocumentsError::NotPdf);
            }
        }
        self.hasher.update(data);
        self.file.write_all(data).await?;
        Ok(())
    }

    /// How many bytes were received so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Finishes the file under its real name; returns (bytes, sha256 hex).
    pub async fn finish(mut self) -> Result<(u64, String)> {
        if self.head.as_slice() != PDF_MAGIC {
            self.abort().await;
            return Err(DocumentsError::NotPdf);
        }
        self.file.flush().await?;
        self.file.sync_all().await?;
        if let Some(partial) = &self.partial {
            tokio::fs::rename(partial, &self.target).await?;
        }
        self.partial = None;
        let digest = std::mem::take(&mut self.hasher).finalize();
        Ok((self.bytes, hex::encode(digest)))
    }

    /// Drops what was received.
    pub async fn abort(mut self) {
        if let Some(partial) = self.partial.take()
            && let Err(err) = remove_if_present(&partial).await
        {
            tracing::warn!(error = %err, "removing a partial upload failed");
        }
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if let Some(partial) = self.partial.take()
            && let Err(err) = std::fs::remove_file(&partial)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %err, "removing a partial upload failed");
        }
    }
}
