//! `pingback generate`: deterministic synthetic conversations for demos and benchmarks.
//!
//! The same business, counts and seed always give the same data, ids included, so
//! generating twice re-imports (replaces) rather than duplicates. Randomness comes from
//! a small PRNG written here (SplitMix64), so output never changes with a dependency
//! upgrade. Ids are UUID v4-shaped values hashed from business, seed and counters.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use pingback_application::{ConversationImporter, ImportError};
use pingback_domain::{
    AgentId, Attachment, AttachmentId, AttachmentParts, BusinessId, ByteSize, ChannelId,
    ChannelType, Conversation, ConversationId, ConversationParts, Customer, CustomerId,
    CustomerParts, Message, MessageId, MessageParts, SenderId, SenderType, Status, Text, Timestamp,
};
use uuid::Uuid;

use crate::import::{CancelOnDrop, Progress, batch_channel};

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
    error: Option<GenerateError>,
}

impl Generator {
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
pub async fn generate_into(
    importer: Arc<dyn ConversationImporter>,
    business: BusinessId,
    conversations: usize,
    messages: usize,
    seed: u64,
    progress: Progress,
) -> Result<Vec<ConversationId>, GenerateError> {
    let cancel = Arc::new(AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    let (mut sender, batches) = batch_channel(cancel);
    let bar = progress.bar(
        Some(conversations as u64),
        "{spinner} {prefix} [{wide_bar}] {pos}/{len} conversations, {msg}",
        "generating",
    );

    let producer = tokio::task::spawn_blocking({
        let bar = bar.clone();
        move || {
            let mut generator = generate(business, conversations, messages, seed);
            let mut ids = Vec::with_capacity(conversations.min(1 << 20));
            let mut written = 0usize;
            for conversation in generator.by_ref() {
                ids.push(conversation.id());
                written += conversation.messages().len();
                bar.inc(1);
                if ids.len().is_multiple_of(64) {
                    bar.set_message(format!("{written} messages"));
                }
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
        }
    });

    let imported = importer.import(batches).await;
    let produced = producer
        .await
        .map_err(|e| GenerateError::Internal(format!("the generator thread failed: {e}")));
    bar.finish_and_clear();
    let ids = produced??;
    imported?;
    ids.ok_or_else(|| {
        GenerateError::Internal("the importer stopped reading before the end".to_owned())
    })
}

// ---------------------------------------------------------------------------------------
// Randomness and ids
// ---------------------------------------------------------------------------------------

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's finaliser: a bijective 64-bit mix.
fn fmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hashes a key, a kind and counters to 64 bits, starting from `init`.
fn chain(init: u64, key: [u64; 3], kind: u64, parts: &[u64]) -> u64 {
    let mut h = init;
    for word in key.iter().chain([kind].iter()).chain(parts) {
        h = fmix(h ^ word).wrapping_add(GOLDEN);
    }
    fmix(h)
}

fn mix(key: [u64; 3], kind: u64, parts: &[u64]) -> u64 {
    chain(0x243F_6A88_85A3_08D3, key, kind, parts)
}

/// A v4-shaped UUID from two independent 64-bit hashes, so distinct inputs collide only
/// with UUID-like odds.
fn derive_uuid(key: [u64; 3], kind: u64, parts: &[u64]) -> Uuid {
    let hi = chain(0x1319_8A2E_0370_7344, key, kind, parts);
    let lo = chain(0xA409_3822_299F_31D0, key, kind, parts);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

// What a derived value is for: distinct streams from one key.
const KIND_SEQUENCE: u64 = 1;
const KIND_CONVERSATION: u64 = 3;
const KIND_CUSTOMER: u64 = 4;
const KIND_CUSTOMER_RNG: u64 = 5;
const KIND_MESSAGE: u64 = 6;
const KIND_ATTACHMENT: u64 = 7;
const KIND_AGENT: u64 = 8;
const KIND_CHANNEL: u64 = 9;

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        fmix(self.0)
    }

    /// Uniform in `0..n` (0 when `n` is 0), by multiply-shift.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// Picks by weight from `(weight, value)` pairs.
    fn weighted<T: Copy>(&mut self, items: &[(u64, T)]) -> T {
        let total: u64 = items.iter().map(|(w, _)| w).sum();
        let mut roll = self.below(total);
        for &(w, value) in items {
            if roll < w {
                return value;
            }
            roll -= w;
        }
        items[items.len() - 1].1
    }
}

// ---------------------------------------------------------------------------------------
// Content
// ---------------------------------------------------------------------------------------

/// 2024-01-01T00:00:00Z.
const BASE_MICROS: i64 = 1_704_067_200_000_000;
const SECOND: i64 = 1_000_000;
const AGENTS: u64 = 12;

const CUSTOMER_SHORT: &[&str] = &[
    "Hi",
    "Hello?",
    "Thanks!",
    "Thank you 🙏",
    "ok",
    "Any update?",
    "Still waiting…",
    "That worked, thanks!",
    "Yes",
    "No, not yet.",
    "Merci beaucoup !",
    "¿Hola, hay alguien?",
    "Danke schön",
    "👍",
    "ありがとうございます",
    "Perfect 😊",
];

const AGENT_SHORT: &[&str] = &[
    "Hi there!",
    "Happy to help.",
    "One moment please.",
    "Done ✅",
    "You're welcome!",
    "Let me check.",
    "Could you share your order number?",
    "Thanks for your patience.",
    "Anything else I can help with?",
];

const CUSTOMER_SENTENCES: &[&str] = &[
    "I need help with my order.",
    "My package hasn't arrived yet.",
    "I was charged twice for the same purchase.",
    "The app crashes when I open the settings page.",
    "Can I change the delivery address?",
    "I'd like a refund for the damaged item.",
    "The discount code doesn't work at checkout.",
    "I can't log in since the last update.",
    "Where can I download my invoice?",
    "The tracking link shows no information.",
    "I ordered the blue one but received the red one.",
    "Is it possible to upgrade my plan mid-month?",
    "Je n'arrive pas à me connecter depuis hier.",
    "Mi pedido llegó incompleto.",
    "Die Rechnung enthält einen Fehler.",
    "I've attached a screenshot of the error.",
];

const AGENT_SENTENCES: &[&str] = &[
    "Thanks for reaching out.",
    "I'm sorry for the trouble.",
    "I've looked into your account.",
    "I can see the order was shipped yesterday.",
    "I've issued a refund; it should appear within 3–5 business days.",
    "Could you try clearing your browser cache and signing in again?",
    "I've escalated this to our technical team.",
    "Your new address has been saved.",
    "Here is a link to reset your password.",
    "I've applied a 10% discount to your next order.",
    "The invoice is available under Account → Billing.",
    "Let me know if there's anything else I can do.",
    "Nous avons bien reçu votre demande.",
    "Hemos enviado el artículo que faltaba.",
];

/// Display name and its ASCII form (for e-mail addresses).
const FIRST_NAMES: &[(&str, &str)] = &[
    ("Alex", "alex"),
    ("Maria", "maria"),
    ("José", "jose"),
    ("Zoë", "zoe"),
    ("Łukasz", "lukasz"),
    ("Aïcha", "aicha"),
    ("Søren", "soren"),
    ("Priya", "priya"),
    ("Chen", "chen"),
    ("Olivia", "olivia"),
    ("Mateo", "mateo"),
    ("Yuki", "yuki"),
    ("Fatima", "fatima"),
    ("Émile", "emile"),
];

const LAST_NAMES: &[(&str, &str)] = &[
    ("Johnson", "johnson"),
    ("García", "garcia"),
    ("Müller", "mueller"),
    ("Nowak", "nowak"),
    ("Rossi", "rossi"),
    ("Okafor", "okafor"),
    ("Nguyen", "nguyen"),
    ("Smith", "smith"),
    ("Dubois", "dubois"),
    ("Tanaka", "tanaka"),
    ("O'Brien", "obrien"),
];

const DOMAINS: &[&str] = &["example.com", "example.org", "mail.example.net"];

/// File name stem, extension, content type, size range in bytes.
const ATTACHMENT_KINDS: &[(&str, &str, &str, u64, u64)] = &[
    ("screenshot", "png", "image/png", 40_000, 2_500_000),
    ("IMG", "jpg", "image/jpeg", 200_000, 6_000_000),
    ("invoice", "pdf", "application/pdf", 30_000, 900_000),
    ("reçu", "pdf", "application/pdf", 30_000, 400_000),
    ("error-log", "txt", "text/plain", 500, 200_000),
    ("export", "csv", "text/csv", 1_000, 5_000_000),
];

const CHANNELS: &[(u64, usize)] = &[(40, 0), (25, 1), (15, 2), (10, 3), (10, 4)];
const CHANNEL_TYPES: &[&str] = &["widget", "email", "whatsapp", "sms", "api"];

const STATUSES: &[(u64, Status)] = &[
    (25, Status::Open),
    (15, Status::Pending),
    (40, Status::Resolved),
    (20, Status::Closed),
];

fn invalid(e: impl std::fmt::Display) -> GenerateError {
    GenerateError::Invalid(e.to_string())
}

fn text(value: String) -> Result<Text, GenerateError> {
    Text::new(value).map_err(invalid)
}

fn at(micros: i64) -> Result<Timestamp, GenerateError> {
    Timestamp::from_unix_micros(micros).map_err(invalid)
}

/// Message text: mostly short chat lines, some a few sentences, a few several paragraphs.
fn content(rng: &mut Rng, sender: SenderType) -> String {
    let (short, sentences) = match sender {
        SenderType::Customer => (CUSTOMER_SHORT, CUSTOMER_SENTENCES),
        SenderType::Agent => (AGENT_SHORT, AGENT_SENTENCES),
    };
    let paragraph = |rng: &mut Rng, n: u64| {
        (0..n)
            .map(|_| rng.pick(sentences))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match rng.below(100) {
        0..45 => rng.pick(short).to_owned(),
        45..85 => {
            let n = rng.between(1, 3);
            let mut text = paragraph(rng, n);
            if rng.percent(20) {
                text = format!("Order #{}: {text}", rng.between(10_000, 99_999));
            }
            text
        }
        _ => {
            let paragraphs = rng.between(2, 4);
            (0..paragraphs)
                .map(|_| {
                    let n = rng.between(2, 5);
                    paragraph(rng, n)
                })
                .collect::<Vec<_>>()
                .join("\n\n")
        }
    }
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

    fn build(&mut self, i: u64) -> Result<Conversation, GenerateError> {
        let count = self.messages;

        let rng = &mut self.rng;
        // Conversations start in order, some at the same instant.
        if !rng.percent(8) {
            let mut gap = rng.between(1, 1_200) as i64 * SECOND;
            if rng.percent(30) {
                gap += rng.below(1_000_000) as i64;
            }
            self.clock += gap;
        }
        let created_micros = self.clock;

        let customer = match rng.below(100) {
            0..12 => None,
            // Returning customers.
            12..42 if self.customers > 0 => Some(rng.below(self.customers)),
            _ => {
                self.customers += 1;
                Some(self.customers - 1)
            }
        };
        let rng = &mut self.rng;
        let assignee = rng.percent(80).then(|| rng.below(AGENTS));
        let status = rng.weighted(STATUSES);
        let channel = rng.weighted(CHANNELS);
        let channel_slot = rng.percent(80).then(|| rng.below(3));
        let customer = customer.map(|k| self.customer(k)).transpose()?;
        let assignee = assignee.map(|n| self.agent(n));
        let channel_type = ChannelType::new(CHANNEL_TYPES[channel]).map_err(invalid)?;
        let channel_id = channel_slot.map(|n| {
            ChannelId::from_uuid(derive_uuid(
                [self.key[0], self.key[1], 0],
                KIND_CHANNEL,
                &[channel as u64, n],
            ))
        });

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
        let mut messages = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        let mut clock = created_micros;
        let mut sender = SenderType::Customer;
        let mut first_response = None;
        for j in 0..count {
            let mut rng = Rng(self.rng.next_u64());
            if j == 0 {
                if !unanswered && rng.percent(12) {
                    sender = SenderType::Agent;
                }
            } else {
                if !unanswered && rng.percent(70) {
                    sender = match sender {
                        SenderType::Customer => SenderType::Agent,
                        SenderType::Agent => SenderType::Customer,
                    };
                }
                // Some replies share an instant (the history breaks ties by id).
                clock += match rng.below(100) {
                    0..6 => 0,
                    6..76 => rng.between(10, 600) as i64 * SECOND,
                    76..96 => rng.between(600, 14_400) as i64 * SECOND,
                    _ => rng.between(14_400, 259_200) as i64 * SECOND,
                };
                if rng.percent(25) {
                    clock += rng.below(1_000_000) as i64;
                }
            }
            let sender_id = match sender {
                SenderType::Customer => customer
                    .as_ref()
                    .filter(|_| rng.percent(75))
                    .map(|c| SenderId::from_uuid(*c.id().as_uuid())),
                SenderType::Agent => rng
                    .percent(90)
                    .then(|| SenderId::from_uuid(*responder.as_uuid())),
            };
            let attachments = if rng.percent(5) {
                (0..rng.between(1, 3))
                    .map(|a| self.attachment(&mut rng, [i, j, a]))
                    .collect::<Result<Vec<_>, _>>()?
            } else {
                Vec::new()
            };
            // An attachment may come alone.
            let body = if !attachments.is_empty() && rng.percent(20) {
                String::new()
            } else {
                content(&mut rng, sender)
            };
            let created_at = at(clock)?;
            if sender == SenderType::Agent && first_response.is_none() {
                first_response = Some(created_at);
            }
            messages.push(Message::new(MessageParts {
                id: MessageId::from_uuid(derive_uuid(self.key, KIND_MESSAGE, &[i, j])),
                sender_type: sender,
                sender_id,
                content: text(body)?,
                attachments,
                created_at,
            }));
        }

        Conversation::new(ConversationParts {
            id: ConversationId::from_uuid(derive_uuid(self.key, KIND_CONVERSATION, &[i])),
            business_id: self.business,
            customer,
            assignee_id: assignee,
            status,
            channel_type,
            channel_id,
            created_at: at(created_micros)?,
            updated_at: at(clock)?,
            first_response_at: first_response,
            messages,
        })
        .map_err(invalid)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::sync::atomic::Ordering;

    use serde_json::Value;

    use super::*;
    use crate::import::test_support::{FakeImporter, conversation_json, parse_all};

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
            Progress::hidden(),
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
            Progress::hidden(),
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
        let err = generate_into(importer.clone(), business(1), 5, 50, 1, Progress::hidden())
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            GenerateError::Import(ImportError::Conflicts(_))
        ));
        assert!(importer.committed().is_empty());
    }
}
