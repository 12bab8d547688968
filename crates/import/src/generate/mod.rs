//! `pingback generate`: deterministic synthetic conversations for demos and benchmarks.
//!
//! The same business, counts and seed always give the same data, ids included, so
//! generating twice re-imports (replaces) rather than duplicates: see `random` for the
//! PRNG and the ids, `content` for what the data says.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use pingback_application::{ConversationImporter, ImportError};
use pingback_domain::{
    AgentId, Attachment, AttachmentId, AttachmentParts, BusinessId, ByteSize, ChannelId,
    ChannelType, Conversation, ConversationId, ConversationParts, Customer, CustomerId,
    CustomerParts, Message, MessageId, MessageParts, SenderId, SenderType, Status, Text, Timestamp,
};

use self::content::{
    AGENTS, ATTACHMENT_KINDS, BASE_MICROS, CHANNEL_TYPES, CHANNELS, DOMAINS, FIRST_NAMES,
    LAST_NAMES, SECOND, STATUSES, content, long_content,
};
use self::random::{
    KIND_AGENT, KIND_ATTACHMENT, KIND_CHANNEL, KIND_CONVERSATION, KIND_CUSTOMER, KIND_CUSTOMER_RNG,
    KIND_MESSAGE, KIND_SEQUENCE, Rng, derive_uuid, mix,
};
use crate::batches::{CancelOnDrop, batch_channel};
use crate::progress::Progress;

mod content;
mod random;

/// Why generation failed. Nothing of it was written.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// A generated value was refused by the domain (a bug, or a timeline pushed past
    /// the year 9999 by absurd counts).
    #[error("generated an invalid value: {0}")]
    Invalid(String),
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// What generated messages look like. The ids do not depend on it: the same business,
/// counts and seed give the same ids in either style.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GenerateStyle {
    /// Chat: mostly short lines, some a few sentences, a few several paragraphs; 5 % of
    /// the messages carry attachments (a fifth of those no text). Demos and tests.
    #[default]
    Chat,
    /// Every message 20–400 characters of text (uniform), with some non-ASCII text,
    /// quotes, line and paragraph breaks; 10 % carry attachments (1–3). The histories
    /// issue 18 measured reads on; `make bench`'s read scenario uses it.
    Long,
}

/// Synthetic conversations of `business`: `conversations` of them, each holding exactly
/// `messages` messages (benchmarks need conversations of a known size). Deterministic
/// for a seed.
///
/// Memory stays constant whatever the counts. The iterator ends early only on a
/// [`GenerateError`], available from [`Generator::take_error`].
pub fn generate(
    business: BusinessId,
    conversations: usize,
    messages: usize,
    seed: u64,
) -> Generator {
    let (hi, lo) = business.as_uuid().as_u64_pair();
    let key = [hi, lo, seed];
    let conversations = conversations as u64;
    Generator {
        business,
        key,
        conversations,
        messages: messages as u64,
        next: 0,
        customers: 0,
        clock: BASE_MICROS,
        rng: Rng(mix(key, KIND_SEQUENCE, &[])),
        style: GenerateStyle::Chat,
        error: None,
    }
}

/// The iterator [`generate`] returns.
pub struct Generator {
    business: BusinessId,
    /// Business id halves and seed: the root of every derived value.
    key: [u64; 3],
    conversations: u64,
    /// Messages per conversation.
    messages: u64,
    next: u64,
    /// Customers created so far (later conversations may reuse one).
    customers: u64,
    /// The last conversation's start, in microseconds since the epoch.
    clock: i64,
    rng: Rng,
    style: GenerateStyle,
    error: Option<GenerateError>,
}

impl Generator {
    /// The same conversations (same ids) with messages in `style`.
    #[must_use]
    pub fn with_style(mut self, style: GenerateStyle) -> Self {
        self.style = style;
        self
    }

    /// Why the iteration ended early, if it did.
    pub fn take_error(&mut self) -> Option<GenerateError> {
        self.error.take()
    }
}

impl Iterator for Generator {
    type Item = Conversation;

    fn next(&mut self) -> Option<Conversation> {
        if self.error.is_some() || self.next >= self.conversations {
            return None;
        }
        let i = self.next;
        self.next += 1;
        match self.build(i) {
            Ok(conversation) => Some(conversation),
            Err(error) => {
                self.error = Some(error);
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.conversations - self.next).unwrap_or(usize::MAX);
        (0, Some(left))
    }
}

/// Generates and writes the data through `importer` in one import (one transaction),
/// batch by batch while generating. Returns the conversation ids in generation order.
/// `progress` hears after each conversation; drawing it is the caller's business.
pub async fn generate_into(
    importer: Arc<dyn ConversationImporter>,
    business: BusinessId,
    conversations: usize,
    messages: usize,
    seed: u64,
    style: GenerateStyle,
    progress: Arc<dyn Progress>,
) -> Result<Vec<ConversationId>, GenerateError> {
    let cancel = Arc::new(AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    let (mut sender, batches) = batch_channel(cancel);

    let producer = tokio::task::spawn_blocking(move || {
        let mut generator = generate(business, conversations, messages, seed).with_style(style);
        let mut ids = Vec::with_capacity(conversations.min(1 << 20));
        let mut written = 0u64;
        for conversation in generator.by_ref() {
            ids.push(conversation.id());
            written += conversation.messages().len() as u64;
            progress.produced(ids.len() as u64, written);
            if !sender.push(conversation) || !sender.is_open() {
                // The importer stopped reading: its result says why.
                return Ok(None);
            }
        }
        if let Some(error) = generator.take_error() {
            sender.abort(error.to_string());
            return Err(error);
        }
        sender.finish();
        Ok(Some(ids))
    });

    let imported = importer.import(batches).await;
    let produced = producer
        .await
        .map_err(|e| GenerateError::Internal(format!("the generator thread failed: {e}")));
    let ids = produced??;
    imported?;
    ids.ok_or_else(|| {
        GenerateError::Internal("the importer stopped reading before the end".to_owned())
    })
}

fn invalid(e: impl std::fmt::Display) -> GenerateError {
    GenerateError::Invalid(e.to_string())
}

fn text(value: String) -> Result<Text, GenerateError> {
    Text::new(value).map_err(invalid)
}

fn at(micros: i64) -> Result<Timestamp, GenerateError> {
    Timestamp::from_unix_micros(micros).map_err(invalid)
}

impl Generator {
    fn agent(&self, n: u64) -> AgentId {
        // Agents and channels belong to the business, whatever the seed.
        AgentId::from_uuid(derive_uuid([self.key[0], self.key[1], 0], KIND_AGENT, &[n]))
    }

    /// Customer `k`, the same every time it is asked for.
    fn customer(&self, k: u64) -> Result<Customer, GenerateError> {
        let mut rng = Rng(mix(self.key, KIND_CUSTOMER_RNG, &[k]));
        let (first, first_ascii) = rng.pick(FIRST_NAMES);
        let (last, last_ascii) = rng.pick(LAST_NAMES);
        let name = rng
            .percent(85)
            .then(|| text(format!("{first} {last}")))
            .transpose()?;
        let email = rng
            .percent(70)
            .then(|| {
                let domain = rng.pick(DOMAINS);
                text(format!("{first_ascii}.{last_ascii}{k}@{domain}"))
            })
            .transpose()?;
        let phone = rng
            .percent(40)
            .then(|| {
                text(format!(
                    "+1 555 {:03} {:04}",
                    rng.below(1000),
                    rng.below(10_000)
                ))
            })
            .transpose()?;
        let external_id = rng
            .percent(30)
            .then(|| text(format!("crm-{:06}", rng.below(1_000_000))))
            .transpose()?;
        // Up to a year before the first conversation.
        let age = rng.below(365 * 86_400) as i64 * SECOND;
        Ok(Customer::new(CustomerParts {
            id: CustomerId::from_uuid(derive_uuid(self.key, KIND_CUSTOMER, &[k])),
            business_id: self.business,
            name,
            email,
            phone,
            external_id,
            created_at: at(BASE_MICROS - age)?,
        }))
    }

    fn attachment(&self, rng: &mut Rng, ids: [u64; 3]) -> Result<Attachment, GenerateError> {
        let (stem, ext, content_type, min, max) = rng.pick(ATTACHMENT_KINDS);
        let id = AttachmentId::from_uuid(derive_uuid(self.key, KIND_ATTACHMENT, &ids));
        Ok(Attachment::new(AttachmentParts {
            id,
            file_name: text(format!("{stem}-{}.{ext}", rng.below(10_000)))?,
            content_type: text(content_type.to_owned())?,
            byte_size: ByteSize::new(rng.between(min, max)).map_err(invalid)?,
            url: text(format!("https://files.example.com/attachments/{id}"))?,
        }))
    }

    /// Conversation `i`: drawn in a fixed order from the generator's stream, so the
    /// same seed always gives the same conversation.
    fn build(&mut self, i: u64) -> Result<Conversation, GenerateError> {
        let start = self.next_start();
        let customer = self.next_customer();
        let routing = self.next_routing()?;
        let customer = customer.map(|k| self.customer(k)).transpose()?;
        let history = self.history(i, start, customer.as_ref(), routing.assignee)?;
        Conversation::new(ConversationParts {
            id: ConversationId::from_uuid(derive_uuid(self.key, KIND_CONVERSATION, &[i])),
            business_id: self.business,
            customer,
            assignee_id: routing.assignee,
            status: routing.status,
            channel_type: routing.channel_type,
            channel_id: routing.channel_id,
            created_at: at(start)?,
            updated_at: at(history.last_micros)?,
            first_response_at: history.first_response,
            messages: history.messages,
        })
        .map_err(invalid)
    }

    /// The next conversation's start: conversations start in order, some at the same
    /// instant.
    fn next_start(&mut self) -> i64 {
        let rng = &mut self.rng;
        if !rng.percent(8) {
            let mut gap = rng.between(1, 1_200) as i64 * SECOND;
            if rng.percent(30) {
                gap += rng.below(1_000_000) as i64;
            }
            self.clock += gap;
        }
        self.clock
    }

    /// The next conversation's customer: none, a returning one or a new one.
    fn next_customer(&mut self) -> Option<u64> {
        let rng = &mut self.rng;
        match rng.below(100) {
            0..12 => None,
            // Returning customers.
            12..42 if self.customers > 0 => Some(rng.below(self.customers)),
            _ => {
                self.customers += 1;
                Some(self.customers - 1)
            }
        }
    }

    fn next_routing(&mut self) -> Result<Routing, GenerateError> {
        let rng = &mut self.rng;
        let assignee = rng.percent(80).then(|| rng.below(AGENTS));
        let status = rng.weighted(STATUSES);
        let channel = rng.weighted(CHANNELS);
        let channel_slot = rng.percent(80).then(|| rng.below(3));
        let channel_id = channel_slot.map(|n| {
            ChannelId::from_uuid(derive_uuid(
                [self.key[0], self.key[1], 0],
                KIND_CHANNEL,
                &[channel as u64, n],
            ))
        });
        Ok(Routing {
            assignee: assignee.map(|n| self.agent(n)),
            status,
            channel_type: ChannelType::new(CHANNEL_TYPES[channel]).map_err(invalid)?,
            channel_id,
        })
    }

    /// The messages of conversation `i`, which starts at `start`.
    fn history(
        &mut self,
        i: u64,
        start: i64,
        customer: Option<&Customer>,
        assignee: Option<AgentId>,
    ) -> Result<History, GenerateError> {
        // Whoever answers: the assignee mostly, a colleague sometimes.
        let responder = match assignee {
            Some(agent) if self.rng.percent(85) => agent,
            _ => {
                let n = self.rng.below(AGENTS);
                self.agent(n)
            }
        };
        // Some conversations are still waiting for their first answer.
        let unanswered = self.rng.percent(8);
        let mut history = History {
            messages: Vec::with_capacity(usize::try_from(self.messages).unwrap_or(0)),
            last_micros: start,
            first_response: None,
        };
        let mut sender = SenderType::Customer;
        for j in 0..self.messages {
            let mut rng = Rng(self.rng.next_u64());
            sender = next_sender(&mut rng, j == 0, sender, unanswered);
            if j > 0 {
                history.last_micros += reply_delay(&mut rng);
            }
            let sender_id = match sender {
                SenderType::Customer => customer
                    .filter(|_| rng.percent(75))
                    .map(|c| SenderId::from_uuid(*c.id().as_uuid())),
                SenderType::Agent => rng
                    .percent(90)
                    .then(|| SenderId::from_uuid(*responder.as_uuid())),
            };
            let message = self.message(&mut rng, [i, j], sender, sender_id, history.last_micros)?;
            if sender == SenderType::Agent && history.first_response.is_none() {
                history.first_response = Some(message.created_at());
            }
            history.messages.push(message);
        }
        Ok(history)
    }

    /// Message `j` of conversation `i`, sent at `micros`.
    fn message(
        &self,
        rng: &mut Rng,
        [i, j]: [u64; 2],
        sender: SenderType,
        sender_id: Option<SenderId>,
        micros: i64,
    ) -> Result<Message, GenerateError> {
        let with_attachments = match self.style {
            GenerateStyle::Chat => 5,
            GenerateStyle::Long => 10,
        };
        let attachments = if rng.percent(with_attachments) {
            (0..rng.between(1, 3))
                .map(|a| self.attachment(rng, [i, j, a]))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };
        let body = match self.style {
            // An attachment may come alone.
            GenerateStyle::Chat if !attachments.is_empty() && rng.percent(20) => String::new(),
            GenerateStyle::Chat => content(rng, sender),
            GenerateStyle::Long => long_content(rng, sender),
        };
        let created_at = at(micros)?;
        Ok(Message::new(MessageParts {
            id: MessageId::from_uuid(derive_uuid(self.key, KIND_MESSAGE, &[i, j])),
            sender_type: sender,
            sender_id,
            content: text(body)?,
            attachments,
            created_at,
        }))
    }
}

/// Who handles a conversation and where it came from.
struct Routing {
    assignee: Option<AgentId>,
    status: Status,
    channel_type: ChannelType,
    channel_id: Option<ChannelId>,
}

/// A conversation's messages, the last one's time and the first answer's.
struct History {
    messages: Vec<Message>,
    last_micros: i64,
    first_response: Option<Timestamp>,
}

/// Who sends the next message: the first is mostly the customer's; replies alternate
/// mostly, and nobody answers in an unanswered conversation.
fn next_sender(rng: &mut Rng, first: bool, previous: SenderType, unanswered: bool) -> SenderType {
    if first {
        if !unanswered && rng.percent(12) {
            return SenderType::Agent;
        }
        return previous;
    }
    if !unanswered && rng.percent(70) {
        return match previous {
            SenderType::Customer => SenderType::Agent,
            SenderType::Agent => SenderType::Customer,
        };
    }
    previous
}

/// Time until the next message: some replies share an instant (the history breaks ties
/// by id), most come within minutes, a few days later.
fn reply_delay(rng: &mut Rng) -> i64 {
    let mut delay = match rng.below(100) {
        0..6 => 0,
        6..76 => rng.between(10, 600) as i64 * SECOND,
        76..96 => rng.between(600, 14_400) as i64 * SECOND,
        _ => rng.between(14_400, 259_200) as i64 * SECOND,
    };
    if rng.percent(25) {
        delay += rng.below(1_000_000) as i64;
    }
    delay
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::sync::atomic::Ordering;

    use serde_json::Value;

    use super::*;
    use uuid::Uuid;

    use crate::NoProgress;
    use crate::testing::{FakeImporter, conversation_json, parse_all};

    fn business(n: u128) -> BusinessId {
        BusinessId::from_uuid(Uuid::from_u128(0xB000 + n))
    }

    fn all(conversations: usize, messages: usize, seed: u64) -> Vec<Conversation> {
        let mut generator = generate(business(1), conversations, messages, seed);
        let out: Vec<Conversation> = generator.by_ref().collect();
        assert!(generator.take_error().is_none());
        out
    }

    #[test]
    fn the_same_seed_gives_the_same_data() {
        assert_eq!(all(40, 10, 7), all(40, 10, 7));
        assert_ne!(all(40, 10, 7), all(40, 10, 8));
        let other = generate(business(2), 40, 10, 7).collect::<Vec<_>>();
        let ids: HashSet<_> = all(40, 10, 7).iter().map(|c| c.id()).collect();
        assert!(other.iter().all(|c| !ids.contains(&c.id())));
        assert!(other.iter().all(|c| c.business_id() == business(2)));
    }

    #[test]
    fn counts_are_exact() {
        for (n, m) in [(0, 0), (0, 5), (1, 0), (1, 7), (10, 3), (25, 40), (300, 20)] {
            let conversations = all(n, m, 1);
            assert_eq!(conversations.len(), n);
            let messages: usize = conversations.iter().map(|c| c.messages().len()).sum();
            assert_eq!(messages, n * m, "{n} {m}");
            assert!(conversations.iter().all(|c| c.messages().len() == m));
        }
    }

    #[test]
    fn timelines_and_references_are_consistent() {
        let conversations = all(300, 20, 3);
        let mut previous = None;
        let mut equal_starts = 0;
        let mut ids = HashSet::new();
        let mut customers: HashMap<CustomerId, Customer> = HashMap::new();
        for c in &conversations {
            assert!(ids.insert(*c.id().as_uuid()));
            if let Some(previous) = previous {
                assert!(c.created_at() >= previous);
                equal_starts += usize::from(c.created_at() == previous);
            }
            previous = Some(c.created_at());
            let last = c.messages().iter().map(Message::created_at).max();
            assert_eq!(c.updated_at(), last.unwrap_or(c.created_at()));
            let first_agent = c
                .messages()
                .iter()
                .find(|m| m.sender_type() == SenderType::Agent)
                .map(Message::created_at);
            assert_eq!(c.first_response_at(), first_agent);
            for m in c.messages() {
                assert!(m.created_at() >= c.created_at());
                assert!(ids.insert(*m.id().as_uuid()));
                for a in m.attachments() {
                    assert!(ids.insert(*a.id().as_uuid()));
                }
            }
            if let Some(customer) = c.customer() {
                assert_eq!(customer.business_id(), c.business_id());
                assert!(customer.created_at() <= c.created_at());
                // A shared customer is the same everywhere.
                let first = customers.entry(customer.id()).or_insert(customer.clone());
                assert_eq!(first, customer);
            }
        }
        assert!(equal_starts > 0);
    }

    #[test]
    fn data_is_varied_like_real_traffic() {
        let conversations = all(300, 20, 11);
        let messages: Vec<&Message> = conversations.iter().flat_map(|c| c.messages()).collect();
        let with_attachments = messages
            .iter()
            .filter(|m| !m.attachments().is_empty())
            .count();
        let share = with_attachments * 1000 / messages.len();
        assert!((20..=90).contains(&share), "{share}‰ with attachments");
        assert!(
            messages
                .iter()
                .all(|m| (0..=3).contains(&m.attachments().len()))
        );
        let statuses: HashSet<Status> = conversations.iter().map(|c| c.status()).collect();
        assert_eq!(statuses.len(), 4);
        let channels: HashSet<&str> = conversations
            .iter()
            .map(|c| c.channel_type().as_str())
            .collect();
        assert!(channels.len() >= 4);
        assert!(conversations.iter().any(|c| c.customer().is_none()));
        assert!(conversations.iter().any(|c| c.assignee_id().is_none()));
        assert!(conversations.iter().any(|c| c.channel_id().is_none()));
        assert!(
            conversations
                .iter()
                .any(|c| c.first_response_at().is_none())
        );
        let mut uses: HashMap<CustomerId, usize> = HashMap::new();
        for id in conversations.iter().filter_map(|c| c.customer_id()) {
            *uses.entry(id).or_default() += 1;
        }
        assert!(uses.values().any(|&n| n > 1), "no shared customer");
        let customers: Vec<&Customer> = conversations.iter().filter_map(|c| c.customer()).collect();
        assert!(customers.iter().any(|c| c.email().is_none()));
        assert!(customers.iter().any(|c| c.phone().is_some()));
        for sender in SenderType::ALL {
            assert!(messages.iter().any(|m| m.sender_type() == *sender));
        }
        assert!(messages.iter().any(|m| m.sender_id().is_none()));
        assert!(messages.iter().any(|m| !m.content().as_str().is_ascii()));
        assert!(
            messages
                .iter()
                .any(|m| m.content().as_str().contains("\n\n"))
        );
        assert!(messages.iter().any(|m| m.content().as_str().len() < 12));
        for c in &conversations {
            let times: Vec<Timestamp> = c.messages().iter().map(Message::created_at).collect();
            if times.windows(2).any(|w| w[0] == w[1]) {
                return;
            }
        }
        panic!("no equal message timestamps");
    }

    #[test]
    fn the_long_style_is_what_issue_18_measured_on() {
        let chat = all(200, 20, 13);
        let mut generator = generate(business(1), 200, 20, 13).with_style(GenerateStyle::Long);
        let long: Vec<Conversation> = generator.by_ref().collect();
        assert!(generator.take_error().is_none());
        // The same conversations and messages (ids, times, senders); other texts.
        assert_eq!(long.len(), chat.len());
        for (l, c) in long.iter().zip(&chat) {
            assert_eq!(l.id(), c.id());
            assert_eq!(l.created_at(), c.created_at());
            let ids = |c: &Conversation| c.messages().iter().map(Message::id).collect::<Vec<_>>();
            assert_eq!(ids(l), ids(c));
        }
        let messages: Vec<&Message> = long.iter().flat_map(|c| c.messages()).collect();
        let lengths: Vec<usize> = messages
            .iter()
            .map(|m| m.content().as_str().chars().count())
            .collect();
        assert!(
            lengths.iter().all(|n| (20..=400).contains(n)),
            "{lengths:?}"
        );
        assert!(lengths.iter().any(|&n| n < 60) && lengths.iter().any(|&n| n > 360));
        let with_attachments = messages
            .iter()
            .filter(|m| !m.attachments().is_empty())
            .count();
        let share = with_attachments * 1000 / messages.len();
        assert!((80..=120).contains(&share), "{share}‰ with attachments");
        let having =
            |f: fn(&str) -> bool| messages.iter().filter(|m| f(m.content().as_str())).count();
        assert!(having(|t| !t.is_ascii()) > messages.len() / 4);
        assert!(having(|t| t.contains('\n')) > messages.len() / 4);
        assert!(having(|t| t.contains('"')) > messages.len() / 10);
        assert!(having(|t| t.contains('\\')) > 0);
        // It survives the import parser too.
        let json = Value::Array(long.iter().map(conversation_json).collect());
        let parsed = parse_all(&serde_json::to_vec(&json).unwrap()).unwrap();
        assert_eq!(parsed, long);
    }

    #[test]
    fn generated_data_survives_the_import_parser() {
        let conversations = all(60, 900, 5);
        let json = Value::Array(conversations.iter().map(conversation_json).collect());
        let text = serde_json::to_vec(&json).unwrap();
        let parsed = parse_all(&text).unwrap();
        assert_eq!(parsed, conversations);
    }

    #[tokio::test]
    async fn generate_into_writes_everything_in_one_import() {
        let importer = Arc::new(FakeImporter::default());
        let ids = generate_into(
            importer.clone(),
            business(1),
            50,
            12_000,
            9,
            GenerateStyle::Chat,
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
        let expected = all(50, 12_000, 9);
        assert_eq!(ids, expected.iter().map(|c| c.id()).collect::<Vec<_>>());
        assert_eq!(importer.committed(), expected);
        assert_eq!(importer.calls.load(Ordering::SeqCst), 1);
        assert!(importer.batches.load(Ordering::SeqCst) >= 2);

        // Again: the same ids, so an import replaces instead of adding.
        let again = generate_into(
            importer.clone(),
            business(1),
            50,
            12_000,
            9,
            GenerateStyle::Chat,
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
        assert_eq!(again, ids);
    }

    #[tokio::test]
    async fn generate_into_reports_storage_failures() {
        let importer = Arc::new(FakeImporter {
            conflicts: vec![pingback_application::ImportConflict {
                entity: pingback_application::ImportedEntity::Conversation,
                id: Uuid::from_u128(1).to_string(),
                conversation_id: ConversationId::from_uuid(Uuid::from_u128(1)),
                owner: pingback_application::ImportConflictOwner::Business(business(9)),
            }],
            ..FakeImporter::default()
        });
        let err = generate_into(
            importer.clone(),
            business(1),
            5,
            50,
            1,
            GenerateStyle::Chat,
            Arc::new(NoProgress),
        )
        .await
        .unwrap_err();
        assert!(matches!(
            err,
            GenerateError::Import(ImportError::Conflicts(_))
        ));
        assert!(importer.committed().is_empty());
    }
}
