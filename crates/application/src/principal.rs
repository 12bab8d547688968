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

/// Who is asking, established only from a verified credential. The business here is
/// the tenant every use case is scoped to.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Principal {
    business_id: BusinessId,
    subject: Subject,
}

impl Principal {
    pub fn new(business_id: BusinessId, subject: Subject) -> Self {
        Self {
            business_id,
            subject,
        }
    }

    pub fn business_id(&self) -> BusinessId {
        self.business_id
    }

    pub fn subject(&self) -> &Subject {
        &self.subject
    }
}
