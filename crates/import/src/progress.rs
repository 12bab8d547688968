//! What a running import or generation tells whoever shows progress. Presentation (a
//! bar on a terminal) is the caller's: this crate only reports counts.

/// Progress of one import or generation. Called from a blocking thread, often: keep
/// each call cheap. Every method does nothing unless overridden.
pub trait Progress: Send + Sync {
    /// Bytes of the input read so far (imports only).
    fn bytes_read(&self, _total: u64) {}

    /// Conversations and messages produced so far. An import reports every 64
    /// conversations and at the end; a generation after each conversation.
    fn produced(&self, _conversations: u64, _messages: u64) {}
}

/// Reports nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
