//! The batch channel: a blocking producer (the import parser, the generator) feeding
//! the importer's [`ConversationBatches`] stream, so storage writes while the producer
//! goes on, in one import.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pingback_application::{ConversationBatches, SourceAborted};
use pingback_domain::Conversation;
use tokio::sync::mpsc;

/// A batch is sent once it holds this many messages…
pub const BATCH_MESSAGES: usize = 5_000;
/// …or this many conversations (many short conversations make small batches otherwise).
const BATCH_CONVERSATIONS: usize = 1_000;
/// Batches in flight between the producer and the importer: enough to overlap the two,
/// few enough to bound memory.
const CHANNEL_BATCHES: usize = 2;

enum BatchItem {
    Conversations(Vec<Conversation>),
    Abort(String),
    /// The producer reached the end of its input: only now may the importer commit.
    Done,
}

/// The producer's end of the channel; blocking, so only for blocking threads.
pub(crate) struct BatchSender {
    tx: mpsc::Sender<BatchItem>,
    pending: Vec<Conversation>,
    pending_messages: usize,
    /// The importer still reads and nothing was aborted.
    open: bool,
    aborted: bool,
    cancel: Arc<AtomicBool>,
}

/// A channel whose receiving end is the importer's stream. The stream ends cleanly only
/// after an explicit `Done`: a producer that dies (panic, early return) makes it yield
/// `Err(SourceAborted)`, so a partial input is never committed.
pub(crate) fn batch_channel(cancel: Arc<AtomicBool>) -> (BatchSender, ConversationBatches) {
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    let stream = futures_util::stream::unfold(Some(rx), |state| async move {
        let mut rx: mpsc::Receiver<BatchItem> = state?;
        match rx.recv().await {
            Some(BatchItem::Conversations(batch)) => Some((Ok(batch), Some(rx))),
            Some(BatchItem::Abort(reason)) => Some((Err(SourceAborted(reason)), None)),
            Some(BatchItem::Done) => None,
            None => Some((
                Err(SourceAborted(
                    "the input stopped before its end was reached".to_owned(),
                )),
                None,
            )),
        }
    });
    let sender = BatchSender {
        tx,
        pending: Vec::new(),
        pending_messages: 0,
        open: true,
        aborted: false,
        cancel,
    };
    (sender, Box::pin(stream))
}

impl BatchSender {
    /// Queues a conversation. `false` when the caller should stop producing (cancelled).
    /// After the importer stopped reading, conversations are dropped: the import parser
    /// keeps validating to list errors.
    pub(crate) fn push(&mut self, conversation: Conversation) -> bool {
        if self.cancel.load(Ordering::Relaxed) {
            return false;
        }
        if !self.open {
            return true;
        }
        self.pending_messages += conversation.messages().len();
        self.pending.push(conversation);
        if self.pending_messages >= BATCH_MESSAGES || self.pending.len() >= BATCH_CONVERSATIONS {
            self.flush();
        }
        true
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open
    }

    fn flush(&mut self) {
        if self.pending.is_empty() || !self.open {
            return;
        }
        self.pending_messages = 0;
        let batch = std::mem::take(&mut self.pending);
        if self
            .tx
            .blocking_send(BatchItem::Conversations(batch))
            .is_err()
        {
            self.open = false;
        }
    }

    /// Makes the importer roll back; idempotent.
    pub(crate) fn abort(&mut self, reason: String) {
        if self.aborted {
            return;
        }
        self.aborted = true;
        self.pending = Vec::new();
        if self.open {
            // A closed channel means the importer already stopped: nothing to undo.
            let _ = self.tx.blocking_send(BatchItem::Abort(reason));
        }
        self.open = false;
    }

    /// Sends what is left and lets the importer commit.
    pub(crate) fn finish(mut self) {
        if self.aborted {
            return;
        }
        self.flush();
        if self.open {
            let _ = self.tx.blocking_send(BatchItem::Done);
        }
    }
}

/// Sets the flag when dropped, stopping a producer whose consumer went away.
pub(crate) struct CancelOnDrop(pub(crate) Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_producer_never_commits() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (sender, mut batches) = batch_channel(Arc::new(AtomicBool::new(false)));
        drop(sender);
        let first = rt.block_on(futures_util::StreamExt::next(&mut batches));
        assert!(matches!(first, Some(Err(SourceAborted(_)))));
    }
}
