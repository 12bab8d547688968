//! Importing one file: the parser on a blocking thread, the importer reading its
//! batches, and the two outcomes joined into one result.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pingback_application::{ConversationImporter, ImportError};
use pingback_domain::Conversation;

use crate::batches::{BatchSender, CancelOnDrop, batch_channel};
use crate::error::{ImportFileError, ImportOutcome};
use crate::parse::{Sink, parse_source};
use crate::progress::Progress;

/// Validates and imports one JSON file (one conversation object or an array of them)
/// in one transaction. `name` is only for messages (`-` for stdin by convention).
///
/// Nothing of the file is written unless all of it is valid and storage accepts it.
/// `progress` hears how far reading got; drawing it (and clearing it afterwards) is the
/// caller's business.
pub async fn import_file(
    importer: Arc<dyn ConversationImporter>,
    name: &str,
    reader: impl Read + Send + 'static,
    progress: Arc<dyn Progress>,
) -> Result<ImportOutcome, ImportFileError> {
    let file = name.to_owned();
    let cancel = Arc::new(AtomicBool::new(false));
    // Dropping this future (Ctrl-C) must not leave the parser reading a huge file.
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    let (sender, batches) = batch_channel(cancel.clone());

    let parser = tokio::task::spawn_blocking({
        let reason = format!("{file} is invalid");
        move || {
            let mut sink = ChannelSink { sender, reason };
            let report = parse_source(reader, &mut sink, progress);
            if report.found == 0 && report.read_error.is_none() && !report.cancelled {
                sink.sender.finish();
            } else {
                sink.abort();
            }
            report
        }
    });

    let imported = importer.import(batches).await;
    if matches!(imported, Err(ImportError::Storage(_))) {
        // Storage is gone: listing more input errors would only delay the report.
        cancel.store(true, Ordering::Relaxed);
    }
    let report = parser.await.map_err(|e| ImportFileError::Internal {
        file: file.clone(),
        detail: format!("the parser thread failed: {e}"),
    });
    let mut report = report?;
    if let Some(source) = report.read_error.take() {
        return Err(ImportFileError::Read { file, source });
    }

    match imported {
        Ok(summary) if report.found == 0 => Ok(ImportOutcome { file, summary }),
        Ok(_) => {
            // The adapter committed although the stream was aborted (or never read it
            // to the end): a broken adapter. The input is still invalid.
            tracing::error!(file = %file, "the importer committed an aborted import");
            Err(report.into_invalid(file, Vec::new()))
        }
        Err(ImportError::Storage(source)) => Err(ImportFileError::Storage { file, source }),
        Err(ImportError::Aborted(_)) if report.found > 0 => {
            Err(report.into_invalid(file, Vec::new()))
        }
        Err(ImportError::Aborted(reason)) => Err(ImportFileError::Internal {
            file,
            detail: reason.to_string(),
        }),
        Err(ImportError::Conflicts(conflicts)) => Err(report.into_invalid(file, conflicts)),
    }
}

/// Valid conversations go to the importer; an invalid input makes it roll back.
struct ChannelSink {
    sender: BatchSender,
    reason: String,
}

impl Sink for ChannelSink {
    fn accept(&mut self, conversation: Conversation) -> bool {
        self.sender.push(conversation)
    }
    fn abort(&mut self) {
        self.sender.abort(self.reason.clone());
    }
}
