//! The one error type of the crate.

/// Why the text of a document could not be extracted.
///
/// `Display` is a sentence a user can read: the documents service stores it
/// as the document's failure reason. [`ExtractError::kind`] is the short,
/// stable name the child process writes into its JSON answer.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The document is encrypted with a user password (an empty password does
    /// not open it).
    #[error("encrypted PDF (it needs a password to open)")]
    Encrypted,
    /// The pages hold no extractable text, as in a scanned document.
    #[error("no text layer (a scanned document; OCR is not supported yet)")]
    NoTextLayer,
    /// The bytes are not a PDF at all (no `%PDF-` header or no objects).
    #[error("not a valid PDF")]
    NotPdf,
    /// The PDF is damaged beyond what the parser can recover.
    #[error("corrupt PDF: {0}")]
    Corrupt(String),
    /// Extraction ran past its time limit and was stopped.
    #[error("extraction timed out")]
    TimedOut,
    /// The extraction process died (a signal, an abort, the memory limit) or
    /// answered something unreadable.
    #[error("the PDF could not be processed (the extractor crashed: {0})")]
    Crashed(String),
    /// The file could not be read, or the child could not be started.
    #[error("could not read the document: {0}")]
    Io(#[from] std::io::Error),
}

impl ExtractError {
    /// Returns the stable machine name of the error, as written in the child's
    /// JSON answer: `encrypted`, `no_text_layer`, `not_pdf`, `corrupt`,
    /// `timed_out`, `crashed` or `io`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Encrypted => "encrypted",
            Self::NoTextLayer => "no_text_layer",
            Self::NotPdf => "not_pdf",
            Self::Corrupt(_) => "corrupt",
            Self::TimedOut => "timed_out",
            Self::Crashed(_) => "crashed",
            Self::Io(_) => "io",
        }
    }

    /// Returns the message the child writes beside the kind: the detail of
    /// `Corrupt`, `Crashed` and `Io`, the sentence of the others.
    pub(crate) fn detail(&self) -> String {
        match self {
            Self::Corrupt(detail) | Self::Crashed(detail) => detail.clone(),
            Self::Io(error) => error.to_string(),
            Self::Encrypted | Self::NoTextLayer | Self::NotPdf | Self::TimedOut => self.to_string(),
        }
    }

    /// Returns whether trying the same file again could succeed.
    ///
    /// Only I/O failures are transient; every other variant is a property of
    /// the file (a timeout or crash repeats with the same bytes), so the
    /// worker should mark the document failed instead of retrying.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Io(_))
    }

    /// Rebuilds an error from the child's JSON `kind` and `message`.
    pub(crate) fn from_kind(kind: &str, message: String) -> Self {
        match kind {
            "encrypted" => Self::Encrypted,
            "no_text_layer" => Self::NoTextLayer,
            "not_pdf" => Self::NotPdf,
            "corrupt" => Self::Corrupt(message),
            "timed_out" => Self::TimedOut,
            "io" => Self::Io(std::io::Error::other(message)),
            _ => Self::Crashed(message),
        }
    }
}
