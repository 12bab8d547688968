//! What generated conversations say and where they come from: message texts in several
//! languages, names, attachments, channels and statuses, with their weights.
//!
//! Two styles of message ([`GenerateStyle`](super::GenerateStyle)): `content` (chat:
//! mostly short lines) and `long_content` (every message 20–400 characters).

use pingback_domain::{SenderType, Status};

use super::random::Rng;

/// 2024-01-01T00:00:00Z.
pub(super) const BASE_MICROS: i64 = 1_704_067_200_000_000;
pub(super) const SECOND: i64 = 1_000_000;
pub(super) const AGENTS: u64 = 12;

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

/// More sentences for `long_content`: quotes, a backslash, other scripts, emoji.
const CUSTOMER_EXTRA: &[&str] = &[
    "The error says \"Payment declined\" every time I try.",
    "I clicked \"Confirm order\" but nothing happened.",
    "Your site says \"out of stock\" — is that right?",
    "The log is in C:\\Users\\me\\AppData\\Local\\Shop\\error.log if you need it.",
    "日本語のサポートはありますか？",
    "Спасибо, но проблема всё ещё есть.",
    "It's the order from last Tuesday (the one for 49,90 €).",
    "Thanks a lot 😊 that was quick!",
];

const AGENT_EXTRA: &[&str] = &[
    "Please choose \"Forgot password\" on the sign-in page.",
    "Under Settings → Notifications, switch off \"Marketing e-mails\".",
    "You'll see the status \"Refunded\" within a day.",
    "Bitte prüfen Sie auch Ihren Spam-Ordner.",
    "ご不便をおかけして申し訳ありません。",
    "Our team is on it 👍 I'll update you as soon as I hear back.",
];

/// Display name and its ASCII form (for e-mail addresses).
pub(super) const FIRST_NAMES: &[(&str, &str)] = &[
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

pub(super) const LAST_NAMES: &[(&str, &str)] = &[
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

pub(super) const DOMAINS: &[&str] = &["example.com", "example.org", "mail.example.net"];

/// File name stem, extension, content type, size range in bytes.
pub(super) const ATTACHMENT_KINDS: &[(&str, &str, &str, u64, u64)] = &[
    ("screenshot", "png", "image/png", 40_000, 2_500_000),
    ("IMG", "jpg", "image/jpeg", 200_000, 6_000_000),
    ("invoice", "pdf", "application/pdf", 30_000, 900_000),
    ("reçu", "pdf", "application/pdf", 30_000, 400_000),
    ("error-log", "txt", "text/plain", 500, 200_000),
    ("export", "csv", "text/csv", 1_000, 5_000_000),
];

pub(super) const CHANNELS: &[(u64, usize)] = &[(40, 0), (25, 1), (15, 2), (10, 3), (10, 4)];
pub(super) const CHANNEL_TYPES: &[&str] = &["widget", "email", "whatsapp", "sms", "api"];

pub(super) const STATUSES: &[(u64, Status)] = &[
    (25, Status::Open),
    (15, Status::Pending),
    (40, Status::Resolved),
    (20, Status::Closed),
];

/// Message text: mostly short chat lines, some a few sentences, a few several paragraphs.
pub(super) fn content(rng: &mut Rng, sender: SenderType) -> String {
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

/// Message text as issue 18 measured reads on: 20–400 characters (uniform), sentences
/// of the sender's side with some non-ASCII text, quotes, line and paragraph breaks,
/// cut at the drawn length.
pub(super) fn long_content(rng: &mut Rng, sender: SenderType) -> String {
    let (sentences, extra) = match sender {
        SenderType::Customer => (CUSTOMER_SENTENCES, CUSTOMER_EXTRA),
        SenderType::Agent => (AGENT_SENTENCES, AGENT_EXTRA),
    };
    let length = usize::try_from(rng.between(LONG_MIN_CHARS, LONG_MAX_CHARS)).unwrap_or(20);
    let mut text = String::with_capacity(length * 2);
    let mut chars = 0;
    while chars < length {
        if chars > 0 {
            let separator = match rng.below(100) {
                0..8 => "\n\n",
                8..16 => "\n",
                _ => " ",
            };
            text.push_str(separator);
            chars += separator.len();
        }
        let sentence = if rng.percent(25) {
            rng.pick(extra)
        } else {
            rng.pick(sentences)
        };
        text.push_str(sentence);
        chars += sentence.chars().count();
    }
    match text.char_indices().nth(length) {
        Some((end, _)) => text[..end].to_owned(),
        None => text,
    }
}

/// The length range of `long_content`, in characters.
pub(super) const LONG_MIN_CHARS: u64 = 20;
pub(super) const LONG_MAX_CHARS: u64 = 400;
