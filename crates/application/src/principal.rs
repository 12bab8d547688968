use std::fmt;

use pingback_domain::BusinessId;

/// Why a token's subject is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("the subject is empty")]
    Empty,
    #[error("the subject is longer than {max} bytes")]
    TooLong { max: usize },
    #[error("the subject contains a control character")]
    Control,
}

/// The caller (an agent or an API client), as named by its verified token.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Subject(String);

impl Subject {
    pub const MAX_BYTES: usize = 256;

    pub fn new(value: impl Into<String>) -> Result<Self, SubjectError> {
        let value = value.into();
        if value.is_empty() {
            return Err(SubjectError::Empty);
        }
        if value.len() > Self::MAX_BYTES {
            return Err(SubjectError::TooLong {
                max: Self::MAX_BYTES,
            });
        }
        if value.chars().any(char::is_control) {
            return Err(SubjectError::Control);
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a credential allows (least privilege: a token names its scopes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Scope {
    /// Read conversations, messages, the list, the event feed and stream.
    ConversationsRead,
    /// Create conversations, post messages, update conversations.
    ConversationsWrite,
    /// Register, list, change and delete webhook endpoints.
    WebhooksManage,
}

impl Scope {
    pub const ALL: [Self; 3] = [
        Self::ConversationsRead,
        Self::ConversationsWrite,
        Self::WebhooksManage,
    ];

    /// The scope's name in tokens (`scope` claim) and in `WWW-Authenticate`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ConversationsRead => "conversations:read",
            Self::ConversationsWrite => "conversations:write",
            Self::WebhooksManage => "webhooks:manage",
        }
    }

    /// The scope named `name`, if it is one we know (unknown names are ignored: they
    /// grant nothing).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// What a token without a `scope` claim may do: read.
    pub const READ_ONLY: Self = Self(1);

    pub fn all() -> Self {
        Scope::ALL.into_iter().collect()
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & Self::bit(scope) != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    const fn bit(scope: Scope) -> u8 {
        match scope {
            Scope::ConversationsRead => 1,
            Scope::ConversationsWrite => 2,
            Scope::WebhooksManage => 4,
        }
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |bits, s| bits | Self::bit(s)))
    }
}

/// The principal lacks the scope an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this operation needs the `{0}` scope")]
pub struct InsufficientScope(pub Scope);

/// Who is asking, established only from a verified credential. The business here is
/// the tenant every use case is scoped to.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Principal {
    business_id: BusinessId,
    subject: Subject,
    scopes: Scopes,
    /// When the credential expires (Unix seconds), if it does.
    expires_at: Option<i64>,
}

impl Principal {
    /// A principal that may read (a token without a `scope` claim).
    pub fn new(business_id: BusinessId, subject: Subject) -> Self {
        Self::with_scopes(business_id, subject, Scopes::READ_ONLY)
    }

    pub fn with_scopes(business_id: BusinessId, subject: Subject, scopes: Scopes) -> Self {
        Self {
            business_id,
            subject,
            scopes,
            expires_at: None,
        }
    }

    /// The same principal, whose credential expires at `unix_seconds`.
    pub fn expiring_at(mut self, unix_seconds: i64) -> Self {
        self.expires_at = Some(unix_seconds);
        self
    }

    /// When the credential expires (Unix seconds): a long-lived request (an event
    /// stream) ends then.
    pub fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }

    pub fn scopes(&self) -> Scopes {
        self.scopes
    }

    /// Succeeds when the principal holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), InsufficientScope> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(InsufficientScope(scope))
        }
    }

    pub fn business_id(&self) -> BusinessId {
        self.business_id
    }

    pub fn subject(&self) -> &Subject {
        &self.subject
    }
}
