//! Test helpers (the `testing` feature, and this crate's own tests): the contract's JSON
//! shape of a conversation, a synchronous parse, and an in-memory importer that honours
//! the port's transaction rules.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use pingback_application::{
    ConversationBatches, ConversationImporter, ImportConflict, ImportError, ImportSummary,
};
use pingback_domain::{Attachment, Conversation, Customer, Message, Text};
use serde_json::{Value, json};

use crate::ImportIssue;
use crate::parse::{Sink, parse_source};
use crate::progress::NoProgress;

fn opt<T: ToString>(v: Option<T>) -> Value {
    v.map_or(Value::Null, |v| Value::String(v.to_string()))
}

fn opt_text(v: Option<&Text>) -> Value {
    v.map_or(Value::Null, |t| Value::String(t.as_str().to_owned()))
}

fn customer_json(c: &Customer) -> Value {
    json!({
        "id": c.id().to_string(),
        "business_id": c.business_id().to_string(),
        "name": opt_text(c.name()),
        "email": opt_text(c.email()),
        "phone": opt_text(c.phone()),
        "external_id": opt_text(c.external_id()),
        "created_at": c.created_at().to_string(),
    })
}

fn attachment_json(a: &Attachment) -> Value {
    json!({
        "id": a.id().to_string(),
        "file_name": a.file_name().as_str(),
        "content_type": a.content_type().as_str(),
        "byte_size": a.byte_size().get(),
        "url": a.url().as_str(),
    })
}

fn message_json(conversation: &Conversation, m: &Message) -> Value {
    json!({
        "id": m.id().to_string(),
        "conversation_id": conversation.id().to_string(),
        "sender_type": m.sender_type().as_str(),
        "sender_id": opt(m.sender_id()),
        "content": m.content().as_str(),
        "attachments": m.attachments().iter().map(attachment_json).collect::<Vec<_>>(),
        "created_at": m.created_at().to_string(),
    })
}

/// The GET response body of the contract.
pub fn conversation_json(c: &Conversation) -> Value {
    json!({
        "id": c.id().to_string(),
        "business_id": c.business_id().to_string(),
        "customer_id": opt(c.customer_id()),
        "assignee_id": opt(c.assignee_id()),
        "status": c.status().as_str(),
        "channel_type": c.channel_type().as_str(),
        "channel_id": opt(c.channel_id()),
        "created_at": c.created_at().to_string(),
        "updated_at": c.updated_at().to_string(),
        "first_response_at": opt(c.first_response_at()),
        "customer": c.customer().map_or(Value::Null, customer_json),
        "messages": c.messages().iter().map(|m| message_json(c, m)).collect::<Vec<_>>(),
    })
}

struct VecSink(Vec<Conversation>);

impl Sink for VecSink {
    fn accept(&mut self, conversation: Conversation) -> bool {
        self.0.push(conversation);
        true
    }
    fn abort(&mut self) {}
}

/// Parses a whole input synchronously: the conversations, or the listed errors.
pub fn parse_all(input: &[u8]) -> Result<Vec<Conversation>, Vec<ImportIssue>> {
    let mut sink = VecSink(Vec::new());
    let report = parse_source(input, &mut sink, Arc::new(NoProgress));
    if report.found == 0 && report.read_error.is_none() {
        Ok(sink.0)
    } else {
        Err(report.issues)
    }
}

/// Stages batches and "commits" them only when the stream ends cleanly, like a
/// transaction; optionally refuses with conflicts after reading everything.
#[derive(Default)]
pub struct FakeImporter {
    pub committed: Mutex<Vec<Conversation>>,
    pub calls: AtomicUsize,
    pub batches: AtomicUsize,
    pub aborted: AtomicBool,
    pub conflicts: Vec<ImportConflict>,
}

impl FakeImporter {
    pub fn committed(&self) -> Vec<Conversation> {
        self.committed.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

// Spelled out as `async_trait` expands it: the crate is not a dependency here.
impl ConversationImporter for FakeImporter {
    fn import<'life0, 'async_trait>(
        &'life0 self,
        mut batches: ConversationBatches,
    ) -> Pin<Box<dyn Future<Output = Result<ImportSummary, ImportError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let mut staged = Vec::new();
            while let Some(batch) = batches.next().await {
                match batch {
                    Ok(batch) => {
                        self.batches.fetch_add(1, Ordering::SeqCst);
                        staged.extend(batch);
                    }
                    Err(aborted) => {
                        self.aborted.store(true, Ordering::SeqCst);
                        return Err(ImportError::Aborted(aborted));
                    }
                }
            }
            if !self.conflicts.is_empty() {
                return Err(ImportError::Conflicts(self.conflicts.clone()));
            }
            let mut summary = ImportSummary::default();
            let mut customers = std::collections::HashSet::new();
            for c in &staged {
                summary.conversations += 1;
                if let Some(id) = c.customer_id()
                    && customers.insert(id)
                {
                    summary.customers += 1;
                }
                summary.messages += c.messages().len() as u64;
                summary.attachments += c
                    .messages()
                    .iter()
                    .map(|m| m.attachments().len() as u64)
                    .sum::<u64>();
            }
            if let Ok(mut committed) = self.committed.lock() {
                committed.extend(staged);
            }
            Ok(summary)
        })
    }
}
